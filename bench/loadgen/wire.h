// Minimal MQTT 3.1.1 and 5.0 client-side wire format for ringmq-bench: encoders for the packets a
// load generator sends, a frame splitter, and parsers for what it receives (at 5.0: CONNACK,
// SUBACK and ack reason codes, property blocks, PUBLISH with properties). Kept separate from the
// broker's codec on purpose: the generator must be able to send what the broker's codec would
// refuse (a bad protocol level) and it should not share the code under test. Parsers check the
// framing they rely on (lengths, Variable Byte Integers, property types) and return false on
// anything else; they do not validate what the generator does not use (UTF-8, property rules).
//
// Thread safety: stateless functions.
#ifndef RINGMQ_BENCH_LOADGEN_WIRE_H_
#define RINGMQ_BENCH_LOADGEN_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace ringmq::bench::wire {

// Protocol levels (CONNECT byte 7, §3.1.2.2).
inline constexpr uint8_t kMqtt311 = 4;
inline constexpr uint8_t kMqtt5 = 5;

enum PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // 5.0 only
};

// The 5.0 property identifiers the generator writes or reads (§2.2.2.2); PropertyValueSize knows
// the type of every identifier the spec defines.
enum PropertyId : uint8_t {
  kPropSessionExpiryInterval = 0x11,
  kPropReasonString = 0x1F,
  kPropReceiveMaximum = 0x21,
  kPropTopicAliasMaximum = 0x22,
  kPropTopicAlias = 0x23,
  kPropMaximumQos = 0x24,
  kPropUserProperty = 0x26,
  kPropMaximumPacketSize = 0x27,
};

// An append-only byte buffer with a consumed prefix (for partial writes and partial reads).
// Memory is never zero-filled (a 64 KiB read reservation per recv would otherwise cost more
// than everything else the generator does); it grows by doubling and is compacted in place.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    data_ = std::move(other.data_);
    capacity_ = other.capacity_;
    head_ = other.head_;
    tail_ = other.tail_;
    other.capacity_ = other.head_ = other.tail_ = 0;
    return *this;
  }

  uint8_t* Append(size_t n) {
    uint8_t* p = Room(n);
    tail_ += n;
    return p;
  }
  void Put(uint8_t b) { *Append(1) = b; }
  void PutU16(uint16_t v) {
    uint8_t* p = Append(2);
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
  }
  void PutBytes(const void* p, size_t n) {
    if (n != 0) std::memcpy(Append(n), p, n);
  }
  void PutString(std::string_view s) {
    PutU16(static_cast<uint16_t>(s.size()));
    PutBytes(s.data(), s.size());
  }
  void PutU32(uint32_t v) {
    PutU16(static_cast<uint16_t>(v >> 16));
    PutU16(static_cast<uint16_t>(v));
  }
  // A Variable Byte Integer (§1.5.5, minimal): the remaining length and 5.0's Property Length.
  void PutRemainingLength(uint32_t length) {
    do {
      uint8_t byte = length % 128;
      length /= 128;
      if (length > 0) byte |= 0x80;
      Put(byte);
    } while (length > 0);
  }

  const uint8_t* data() const { return data_.get() + head_; }
  size_t size() const { return tail_ - head_; }
  bool empty() const { return tail_ == head_; }
  void Consume(size_t n) {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;
  }
  void Clear() { head_ = tail_ = 0; }
  // Room for a read of up to n bytes at the end; Commit(k) keeps k of them.
  uint8_t* Reserve(size_t n) { return Room(n); }
  void Commit(size_t n) { tail_ += n; }

 private:
  // Pointer to n writable bytes at the tail (not yet counted in size()).
  uint8_t* Room(size_t n) {
    if (tail_ + n > capacity_) {
      if (head_ != 0 && size() + n <= capacity_) {
        std::memmove(data_.get(), data_.get() + head_, size());
      } else {
        size_t capacity = capacity_ == 0 ? 4096 : capacity_;
        while (capacity < size() + n) capacity *= 2;
        std::unique_ptr<uint8_t[]> bigger(new uint8_t[capacity]);  // not zero-filled
        if (size() != 0) std::memcpy(bigger.get(), data_.get() + head_, size());
        data_ = std::move(bigger);
        capacity_ = capacity;
      }
      tail_ -= head_;
      head_ = 0;
    }
    return data_.get() + tail_;
  }

  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
  size_t head_ = 0;
  size_t tail_ = 0;
};

inline size_t RemainingLengthSize(uint32_t length) {
  size_t n = 1;
  while (length >= 128) {
    length /= 128;
    ++n;
  }
  return n;
}

struct ConnectFields {
  std::string_view client_id;
  std::string_view username;  // empty: none
  std::string_view password;  // empty: none (only sent with a user name)
  uint8_t protocol_level = kMqtt311;  // 4 = MQTT 3.1.1, 5 = MQTT 5.0; anything else is for the
                                      // reject scenario (sent in the 3.1.1 layout)
  uint16_t keepalive_s = 0;
  bool clean_session = true;  // 5.0: Clean Start
  uint16_t receive_maximum = 0;  // 5.0: sent as Receive Maximum (§3.1.2.11.3) when not 0
  // 5.0: sent as Session Expiry Interval (§3.1.2.11.2) when not 0; absent, the session ends with
  // the connection, like a clean 3.1.1 session.
  uint32_t session_expiry_s = 0;
};

// Level 5: the CONNECT properties block holds Session Expiry Interval then Receive Maximum,
// each only when set (empty otherwise).
inline void EncodeConnect(const ConnectFields& f, Buffer& out) {
  const bool has_user = !f.username.empty();
  const bool has_password = has_user && !f.password.empty();
  const bool mqtt5 = f.protocol_level == kMqtt5;
  uint32_t properties = 0;
  if (mqtt5 && f.session_expiry_s != 0) properties += 5;
  if (mqtt5 && f.receive_maximum != 0) properties += 3;
  uint32_t length = 2 + 4 + 1 + 1 + 2 + 2 + static_cast<uint32_t>(f.client_id.size());
  if (mqtt5) length += static_cast<uint32_t>(RemainingLengthSize(properties)) + properties;
  if (has_user) length += 2 + static_cast<uint32_t>(f.username.size());
  if (has_password) length += 2 + static_cast<uint32_t>(f.password.size());
  out.Put(kConnect << 4);
  out.PutRemainingLength(length);
  out.PutString("MQTT");
  out.Put(f.protocol_level);
  uint8_t flags = f.clean_session ? 0x02 : 0x00;
  if (has_user) flags |= 0x80;
  if (has_password) flags |= 0x40;
  out.Put(flags);
  out.PutU16(f.keepalive_s);
  if (mqtt5) {
    out.PutRemainingLength(properties);
    if (f.session_expiry_s != 0) {
      out.Put(kPropSessionExpiryInterval);
      out.PutU32(f.session_expiry_s);
    }
    if (f.receive_maximum != 0) {
      out.Put(kPropReceiveMaximum);
      out.PutU16(f.receive_maximum);
    }
  }
  out.PutString(f.client_id);
  if (has_user) out.PutString(f.username);
  if (has_password) out.PutString(f.password);
}

// Level 5: an empty property block after the packet id; the subscription options byte carries
// only the QoS (No Local, Retain As Published and Retain Handling 0, §3.8.3.1).
inline void EncodeSubscribe(uint16_t packet_id, std::string_view filter, uint8_t qos,
                            uint8_t level, Buffer& out) {
  const uint32_t properties = level == kMqtt5 ? 1 : 0;
  out.Put(static_cast<uint8_t>(kSubscribe << 4 | 0x02));
  out.PutRemainingLength(static_cast<uint32_t>(2 + properties + 2 + filter.size() + 1));
  out.PutU16(packet_id);
  if (properties != 0) out.Put(0);
  out.PutString(filter);
  out.Put(qos);
}

inline void EncodeUnsubscribe(uint16_t packet_id, std::string_view filter, uint8_t level,
                              Buffer& out) {
  const uint32_t properties = level == kMqtt5 ? 1 : 0;
  out.Put(static_cast<uint8_t>(kUnsubscribe << 4 | 0x02));
  out.PutRemainingLength(static_cast<uint32_t>(2 + properties + 2 + filter.size()));
  out.PutU16(packet_id);
  if (properties != 0) out.Put(0);
  out.PutString(filter);
}

// 5.0 PUBLISH properties, appended to a block a publisher builds once and sends with every
// PUBLISH (EncodePublish's `properties`).
inline void AppendTopicAlias(uint16_t alias, std::string& block) {
  block.push_back(static_cast<char>(kPropTopicAlias));
  block.push_back(static_cast<char>(alias >> 8));
  block.push_back(static_cast<char>(alias));
}
inline void AppendUserProperty(std::string_view name, std::string_view value,
                               std::string& block) {
  block.push_back(static_cast<char>(kPropUserProperty));
  for (std::string_view s : {name, value}) {
    block.push_back(static_cast<char>(s.size() >> 8));
    block.push_back(static_cast<char>(s.size()));
    block.append(s);
  }
}

// Appends the PUBLISH header and reserves `payload_size` bytes for the payload, returned. At
// level 5 the property block `properties` (without its length, which is written here) follows
// the packet id; an empty topic is allowed there with a Topic Alias in `properties`
// (§3.3.2.3.4). Below 5 `properties` must be empty.
inline uint8_t* EncodePublish(std::string_view topic, uint8_t qos, bool retain, uint16_t packet_id,
                              uint8_t level, std::string_view properties, size_t payload_size,
                              Buffer& out) {
  const bool mqtt5 = level == kMqtt5;
  const uint32_t properties_size = static_cast<uint32_t>(properties.size());
  uint32_t length = static_cast<uint32_t>(2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size);
  if (mqtt5) {
    length += static_cast<uint32_t>(RemainingLengthSize(properties_size)) + properties_size;
  }
  out.Put(static_cast<uint8_t>(kPublish << 4 | qos << 1 | (retain ? 1 : 0)));
  out.PutRemainingLength(length);
  out.PutString(topic);
  if (qos > 0) out.PutU16(packet_id);
  if (mqtt5) {
    out.PutRemainingLength(properties_size);
    out.PutBytes(properties.data(), properties.size());
  }
  return out.Append(payload_size);
}

// PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP. At 5.0 the same 2-byte form means Success
// without properties (§3.4.2.1).
inline void EncodeAck(PacketType type, uint16_t packet_id, Buffer& out) {
  out.Put(static_cast<uint8_t>(type << 4 | (type == kPubrel ? 0x02 : 0x00)));
  out.Put(2);
  out.PutU16(packet_id);
}

// At 5.0 the same 2 bytes mean Normal disconnection without properties (§3.14.2.1).
inline void EncodeDisconnect(Buffer& out) {
  out.Put(kDisconnect << 4);
  out.Put(0);
}

// One received packet: type, flags and body, viewing the receive buffer.
struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  const uint8_t* body = nullptr;
  uint32_t body_size = 0;
  size_t total_size = 0;  // header + body
};

enum class SplitStatus { kComplete, kNeedMore, kInvalid };

// Splits one packet off the front of [data, data + size). Rejects bodies above max_body.
inline SplitStatus SplitFrame(const uint8_t* data, size_t size, uint32_t max_body, Frame* frame) {
  if (size < 2) return SplitStatus::kNeedMore;
  uint32_t length = 0;
  uint32_t multiplier = 1;
  size_t i = 1;
  for (;; ++i) {
    if (i > 4) return SplitStatus::kInvalid;
    if (i >= size) return SplitStatus::kNeedMore;
    length += (data[i] & 0x7f) * multiplier;
    multiplier *= 128;
    if ((data[i] & 0x80) == 0) break;
  }
  if (length > max_body) return SplitStatus::kInvalid;
  const size_t header = i + 1;
  if (size < header + length) return SplitStatus::kNeedMore;
  frame->type = data[0] >> 4;
  frame->flags = data[0] & 0x0f;
  frame->body = data + header;
  frame->body_size = length;
  frame->total_size = header + length;
  return SplitStatus::kComplete;
}

inline uint16_t ReadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t ReadU32(const uint8_t* p) {
  return static_cast<uint32_t>(ReadU16(p)) << 16 | ReadU16(p + 2);
}

// Reads a Variable Byte Integer from [p, p + size): the bytes it took, or 0 if it is truncated,
// longer than 4 bytes, or not in its shortest form (5.0:MQTT-1.5.5-1).
inline size_t ReadVarInt(const uint8_t* p, size_t size, uint32_t* value) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4 && i < size; ++i) {
    v |= static_cast<uint32_t>(p[i] & 0x7f) << (7 * i);
    if ((p[i] & 0x80) == 0) {
      if (i > 0 && p[i] == 0) return 0;  // a last byte of 0 adds nothing: not minimal
      *value = v;
      return i + 1;
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// 5.0 property blocks (§2.2.2)

// One property of a block: its identifier and its value's bytes (for a string, binary data or
// pair: with their 2-byte lengths).
struct Property {
  uint8_t id = 0;
  const uint8_t* value = nullptr;
  size_t size = 0;
};

// The size of the value of property `id` at [p, p + size), by the type §2.2.2.2 gives the
// identifier; 0 if the identifier is not defined or the value is truncated.
inline size_t PropertyValueSize(uint8_t id, const uint8_t* p, size_t size) {
  auto prefixed = [&](size_t at) -> size_t {  // a 2-byte length and its bytes, at offset `at`
    if (size < at + 2) return 0;
    const size_t end = at + 2 + ReadU16(p + at);
    return end <= size ? end : 0;
  };
  size_t n = 0;
  switch (id) {
    case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
      n = 1;  // Byte
      break;
    case 0x13: case 0x21: case 0x22: case 0x23:
      n = 2;  // Two Byte Integer
      break;
    case 0x02: case 0x11: case 0x18: case 0x27:
      n = 4;  // Four Byte Integer
      break;
    case 0x0B: {  // Variable Byte Integer (Subscription Identifier)
      uint32_t unused;
      return ReadVarInt(p, size, &unused);
    }
    case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A: case 0x1C:
    case 0x1F:
      return prefixed(0);  // UTF-8 string or binary data
    case 0x26: {  // UTF-8 string pair
      const size_t name = prefixed(0);
      return name == 0 ? 0 : prefixed(name);
    }
    default:
      return 0;
  }
  return n <= size ? n : 0;
}

// Calls f(const Property&) for each property of the block [p, p + size) in order. Returns false,
// possibly after some calls, if the block is malformed (an undefined identifier, a truncated
// value).
template <typename F>
bool ForEachProperty(const uint8_t* p, size_t size, F&& f) {
  size_t offset = 0;
  while (offset < size) {
    const uint8_t id = p[offset++];
    const size_t n = PropertyValueSize(id, p + offset, size - offset);
    if (n == 0) return false;
    f(Property{id, p + offset, n});
    offset += n;
  }
  return true;
}

// Reads a Property Length and its block from body[*offset]: the block is [*block, *block +
// *block_size), *offset moves past it. False if truncated or malformed.
inline bool ReadProperties(const uint8_t* body, size_t body_size, size_t* offset,
                           const uint8_t** block, size_t* block_size) {
  if (*offset > body_size) return false;
  uint32_t length = 0;
  const size_t n = ReadVarInt(body + *offset, body_size - *offset, &length);
  if (n == 0 || length > body_size - *offset - n) return false;
  *block = body + *offset + n;
  *block_size = length;
  *offset += n + length;
  return ForEachProperty(*block, *block_size, [](const Property&) {});
}

// ---------------------------------------------------------------------------------------------
// What the broker sends

struct Connack {
  bool mqtt5 = false;  // the 5.0 layout: a property block follows the reason code
  bool session_present = false;
  uint8_t code = 0;  // 3.1.1 return code or 5.0 reason code
  // 5.0 (§3.2.2.3), with the values their absence means.
  uint16_t receive_maximum = 65535;
  uint16_t topic_alias_maximum = 0;  // 0: no Topic Alias may be sent (5.0:MQTT-3.2.2-18)
  uint8_t maximum_qos = 2;
  uint32_t maximum_packet_size = 0;  // 0: no limit beyond the protocol's
};

// A CONNACK of 2 bytes is the 3.1.1 layout at any level: a broker that does not speak 5.0
// answers a level-5 CONNECT that way (0x01, MQTT-3.1.2-2). At level 5 anything longer is
// flags, reason code and properties (§3.2.2).
inline bool ParseConnack(const Frame& f, uint8_t level, Connack* out) {
  *out = Connack{};
  if (f.body_size < 2) return false;
  out->session_present = (f.body[0] & 1) != 0;
  out->code = f.body[1];
  if (f.body_size == 2) return true;
  if (level != kMqtt5) return false;
  out->mqtt5 = true;
  size_t offset = 2;
  const uint8_t* block = nullptr;
  size_t block_size = 0;
  if (!ReadProperties(f.body, f.body_size, &offset, &block, &block_size)) return false;
  if (offset != f.body_size) return false;
  ForEachProperty(block, block_size, [out](const Property& p) {
    switch (p.id) {
      case kPropReceiveMaximum: out->receive_maximum = ReadU16(p.value); break;
      case kPropTopicAliasMaximum: out->topic_alias_maximum = ReadU16(p.value); break;
      case kPropMaximumQos: out->maximum_qos = p.value[0]; break;
      case kPropMaximumPacketSize: out->maximum_packet_size = ReadU32(p.value); break;
      default: break;
    }
  });
  return true;
}

// SUBACK (at least one return/reason code) and UNSUBACK (none at 3.1.1, at least one at 5.0):
// the packet id, at 5.0 a property block, then one code per filter.
struct Suback {
  uint16_t packet_id = 0;
  const uint8_t* codes = nullptr;
  size_t count = 0;
};

inline bool ParseSuback(const Frame& f, uint8_t level, Suback* out) {
  *out = Suback{};
  if (f.body_size < 2) return false;
  out->packet_id = ReadU16(f.body);
  size_t offset = 2;
  if (level == kMqtt5) {
    const uint8_t* block = nullptr;
    size_t block_size = 0;
    if (!ReadProperties(f.body, f.body_size, &offset, &block, &block_size)) return false;
  }
  out->codes = f.body + offset;
  out->count = f.body_size - offset;
  const bool codes_required = f.type == kSuback || level == kMqtt5;
  return !codes_required || out->count > 0;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP: the packet id; at 5.0 optionally a reason code and then a
// property block (§3.4.2.1: no reason code means 0x00 Success).
struct Ack {
  uint16_t packet_id = 0;
  uint8_t reason = 0;
};

inline bool ParseAck(const Frame& f, uint8_t level, Ack* out) {
  *out = Ack{};
  if (f.body_size < 2) return false;
  out->packet_id = ReadU16(f.body);
  if (f.body_size == 2) return true;
  if (level != kMqtt5) return false;
  out->reason = f.body[2];
  if (f.body_size == 3) return true;
  size_t offset = 3;
  const uint8_t* block = nullptr;
  size_t block_size = 0;
  return ReadProperties(f.body, f.body_size, &offset, &block, &block_size) &&
         offset == f.body_size;
}

struct PublishView {
  uint8_t qos = 0;
  bool retain = false;
  std::string_view topic;
  uint16_t packet_id = 0;  // QoS > 0
  const uint8_t* properties = nullptr;  // 5.0: the block without its length
  size_t properties_size = 0;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

// Topic, packet id (QoS > 0), at 5.0 the property block, then the payload (§3.3.2). False for
// QoS 3 or a truncated or malformed variable header.
inline bool ParsePublish(const Frame& f, uint8_t level, PublishView* out) {
  *out = PublishView{};
  out->qos = (f.flags >> 1) & 3;
  out->retain = (f.flags & 1) != 0;
  if (out->qos == 3 || f.body_size < 2) return false;
  size_t offset = 2 + ReadU16(f.body);
  if (offset > f.body_size) return false;
  out->topic = std::string_view(reinterpret_cast<const char*>(f.body + 2), offset - 2);
  if (out->qos > 0) {
    if (offset + 2 > f.body_size) return false;
    out->packet_id = ReadU16(f.body + offset);
    offset += 2;
  }
  if (level == kMqtt5 &&
      !ReadProperties(f.body, f.body_size, &offset, &out->properties, &out->properties_size)) {
    return false;
  }
  out->payload = f.body + offset;
  out->payload_size = f.body_size - offset;
  return true;
}

// A DISCONNECT from the server, which only 5.0 has (§3.14): no body means 0x00.
inline bool ParseDisconnect(const Frame& f, uint8_t* reason) {
  *reason = f.body_size == 0 ? 0 : f.body[0];
  if (f.body_size <= 1) return true;
  size_t offset = 1;
  const uint8_t* block = nullptr;
  size_t block_size = 0;
  return ReadProperties(f.body, f.body_size, &offset, &block, &block_size) &&
         offset == f.body_size;
}

// The benchmark payload header, little-endian, at the start of every payload.
struct PayloadHeader {
  static constexpr uint32_t kMagic = 0x42514d52;  // "RMQB"
  static constexpr size_t kSize = 24;
  uint32_t magic;
  uint32_t publisher;
  uint64_t sequence;
  uint64_t send_ns;
};
static_assert(sizeof(PayloadHeader) == PayloadHeader::kSize);

inline void WritePayload(uint8_t* out, size_t size, uint32_t publisher, uint64_t sequence,
                         uint64_t send_ns) {
  const PayloadHeader h{PayloadHeader::kMagic, publisher, sequence, send_ns};
  std::memcpy(out, &h, sizeof h);
  if (size > sizeof h) std::memset(out + sizeof h, 'x', size - sizeof h);
}

inline bool ReadPayload(const uint8_t* p, size_t size, PayloadHeader* h) {
  if (size < sizeof(PayloadHeader)) return false;
  std::memcpy(h, p, sizeof *h);
  return h->magic == PayloadHeader::kMagic;
}

// --user-properties N: property i (from 0) of every measured PUBLISH is the pair
// ("name%04d", "value%011d"), 8 + 16 bytes of text and kUserPropertyWireSize bytes on the wire,
// so the cost per property is the same whatever N.
inline constexpr int kMaxUserProperties = 1000;
inline constexpr size_t kUserPropertyWireSize = 1 + 2 + 8 + 2 + 16;

// The value bytes of bench user property i as they are on the wire (both lengths included, the
// identifier not): what a subscriber compares a received property against.
inline std::string BenchUserPropertyValue(int i) {
  char name[16];
  char value[24];
  std::snprintf(name, sizeof name, "name%04d", i % 10000);
  std::snprintf(value, sizeof value, "value%011d", i);
  std::string block;
  AppendUserProperty(name, value, block);
  return block.substr(1);
}

inline void AppendBenchUserProperties(int count, std::string& block) {
  for (int i = 0; i < count && i < kMaxUserProperties; ++i) {
    block.push_back(static_cast<char>(kPropUserProperty));
    block.append(BenchUserPropertyValue(i));
  }
}

enum class PropertyCheck { kOk, kMalformed, kTopicAlias, kUserPropertiesDiffer };

// Judges the property block of a PUBLISH a 5.0 subscriber received: its User Properties must be
// exactly `expected` (BenchUserPropertyValue(0), (1), ... of its publisher), in that order (the
// server forwards them unchanged and in order, 5.0:MQTT-3.3.2-17, 5.0:MQTT-3.3.2-18), and it
// must carry no Topic Alias (the generator's CONNECT allows none, 5.0:MQTT-3.1.2-27). Other
// properties a broker may add (Subscription Identifier, Message Expiry Interval) are ignored.
// No allocation: one walk, one comparison per User Property.
inline PropertyCheck CheckReceivedProperties(const uint8_t* block, size_t size,
                                             std::span<const std::string> expected) {
  size_t seen = 0;
  bool alias = false;
  bool differ = false;
  const bool ok = ForEachProperty(block, size, [&](const Property& p) {
    if (p.id == kPropTopicAlias) alias = true;
    if (p.id != kPropUserProperty) return;
    if (seen >= expected.size() ||
        std::string_view(reinterpret_cast<const char*>(p.value), p.size) != expected[seen]) {
      differ = true;
    }
    ++seen;
  });
  if (!ok) return PropertyCheck::kMalformed;
  if (alias) return PropertyCheck::kTopicAlias;
  if (differ || seen != expected.size()) return PropertyCheck::kUserPropertiesDiffer;
  return PropertyCheck::kOk;
}

}  // namespace ringmq::bench::wire

#endif  // RINGMQ_BENCH_LOADGEN_WIRE_H_
