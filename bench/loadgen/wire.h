// Minimal MQTT 3.1.1 client-side wire format for ringmq-bench: encoders for the packets a load
// generator sends and a frame splitter for what it receives. Kept separate from the broker's
// codec on purpose: the generator must be able to send what the broker's codec would refuse
// (a bad protocol level) and it should not share the code under test.
//
// Thread safety: stateless functions.
#ifndef RINGMQ_BENCH_LOADGEN_WIRE_H_
#define RINGMQ_BENCH_LOADGEN_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace ringmq::bench::wire {

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
  uint8_t protocol_level = 4; // 4 = MQTT 3.1.1; anything else is for the reject scenario
  uint16_t keepalive_s = 0;
  bool clean_session = true;
};

inline void EncodeConnect(const ConnectFields& f, Buffer& out) {
  const bool has_user = !f.username.empty();
  const bool has_password = has_user && !f.password.empty();
  uint32_t length = 2 + 4 + 1 + 1 + 2 + 2 + static_cast<uint32_t>(f.client_id.size());
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
  out.PutString(f.client_id);
  if (has_user) out.PutString(f.username);
  if (has_password) out.PutString(f.password);
}

inline void EncodeSubscribe(uint16_t packet_id, std::string_view filter, uint8_t qos,
                            Buffer& out) {
  out.Put(static_cast<uint8_t>(kSubscribe << 4 | 0x02));
  out.PutRemainingLength(static_cast<uint32_t>(2 + 2 + filter.size() + 1));
  out.PutU16(packet_id);
  out.PutString(filter);
  out.Put(qos);
}

inline void EncodeUnsubscribe(uint16_t packet_id, std::string_view filter, Buffer& out) {
  out.Put(static_cast<uint8_t>(kUnsubscribe << 4 | 0x02));
  out.PutRemainingLength(static_cast<uint32_t>(2 + 2 + filter.size()));
  out.PutU16(packet_id);
  out.PutString(filter);
}

// Appends the PUBLISH header and reserves `payload_size` bytes for the payload, returned.
inline uint8_t* EncodePublish(std::string_view topic, uint8_t qos, bool retain, uint16_t packet_id,
                              size_t payload_size, Buffer& out) {
  const uint32_t length =
      static_cast<uint32_t>(2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size);
  out.Put(static_cast<uint8_t>(kPublish << 4 | qos << 1 | (retain ? 1 : 0)));
  out.PutRemainingLength(length);
  out.PutString(topic);
  if (qos > 0) out.PutU16(packet_id);
  return out.Append(payload_size);
}

// PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP.
inline void EncodeAck(PacketType type, uint16_t packet_id, Buffer& out) {
  out.Put(static_cast<uint8_t>(type << 4 | (type == kPubrel ? 0x02 : 0x00)));
  out.Put(2);
  out.PutU16(packet_id);
}

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

}  // namespace ringmq::bench::wire

#endif  // RINGMQ_BENCH_LOADGEN_WIRE_H_
