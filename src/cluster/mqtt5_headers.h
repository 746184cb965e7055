// MQTT 5.0 PUBLISH properties as NATS headers, for messages that cross nodes of the cluster over
// NATS (docs/cluster.md, "MQTT 5.0 properties across nodes"), and for retained messages in the
// cluster's JetStream stream (retained_sync.h: the same fields, without Message Expiry).
//
// A node that forwards a PUBLISH writes the properties a receiver must see (5.0:3.3.2.3) as
// header fields of the NATS message (NATS client protocol, "HPUB": a "NATS/1.0" block of
// "Name: value" lines); the receiving node rebuilds a property block from them. Header values
// are CRLF-delimited text (trimmed of spaces and tabs by readers), so:
//
//   property                    header field                      value
//   Payload Format Indicator    Ringmq-Payload-Format             "0" or "1"
//   Message Expiry Interval     Ringmq-Message-Expiry-Ms          decimal ms left (MQTT-3.3.2-6)
//   Content Type                Ringmq-Content-Type               the string, when plain (below)
//                               Ringmq-Content-Type-B64           base64 of it, otherwise
//   Response Topic              Ringmq-Response-Topic[-B64]       as Content Type
//   Correlation Data            Ringmq-Correlation-Data           base64 (binary data)
//   User Property (name, value) name: value                       when both are plain (below)
//                               Ringmq-User-Property              base64(name) "," base64(value)
//
// Base64 is RFC 4648 §4 (standard alphabet, '=' padding). User properties keep their order
// (MQTT-3.3.2-17, -18): one field each, in the order of the block, native and escaped ones
// interleaved as they come. A user property is written as a native NATS header ("name: value")
// when its name is a header token (1..kNativeNameMax bytes of '!'..'~' without ':', and not
// beginning with the reserved "Ringmq-" or "Nats-", case-insensitively) and its value is plain:
// no byte below ' ' or equal to DEL, and no space or tab at either end (readers trim them). So
// NATS applications see user properties as ordinary headers, and their own headers become user
// properties of the MQTT delivery (nats-server's MQTT code instead ignores the headers of NATS
// messages; its MQTT 5.0 forks carry the whole block as one base64 header, opaque to NATS
// applications). A text that is not plain, e.g. with CR/LF (MQTT strings may hold control
// characters, MQTT-1.5.4-2 forbids only U+0000), goes base64 in a Ringmq-* field.
//
// Not carried (5.0:3.3.4): Topic Alias (per connection, never crosses), Subscription Identifier
// (the receiving node adds its own subscribers', MQTT-3.3.4-3). Message Expiry Interval is
// carried from the message's deadline, not from the block: the time left when forwarded.
//
// Reading (Mqtt5HeaderDecoder): fields named Nats-* (the server's and JetStream's) and Ringmq-*
// fields other than the above are not properties. Every other field is a user property. A field
// whose value gives no valid property (bad base64, invalid UTF-8 or U+0000, MQTT-1.5.4-1/-2; a
// wildcard in a Response Topic, MQTT-3.3.2-14; a string over 65,535 bytes; a second value of a
// single-valued property) is left out and counted in dropped(). The block built is always one
// that mqtt::ValidateProperties accepts for a PUBLISH.
//
// Bounds: AppendMqtt5Headers writes at most `fields_max` fields (the caller's share of
// nats::kHeaderFieldsMax) or refuses the message (kTooManyFields); NATS's max_payload bounds the
// rest (the link refuses the publish: kTooLarge). The decoder's output is at most the size of
// the header block it reads plus 5 bytes per field (bounded by the server's max_payload).
//
// Allocation: none for a message without properties or expiry, on either side; otherwise only
// to grow the caller's scratch buffers, whose capacity is kept.
//
// Thread safety: plain functions; a decoder and the buffers belong to one thread.
#ifndef RINGMQ_CLUSTER_MQTT5_HEADERS_H_
#define RINGMQ_CLUSTER_MQTT5_HEADERS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/nats_protocol.h"

namespace ringmq::cluster {

inline constexpr std::string_view kPayloadFormatHeader = "Ringmq-Payload-Format";
inline constexpr std::string_view kMessageExpiryHeader = "Ringmq-Message-Expiry-Ms";
inline constexpr std::string_view kContentTypeHeader = "Ringmq-Content-Type";
inline constexpr std::string_view kContentTypeBase64Header = "Ringmq-Content-Type-B64";
inline constexpr std::string_view kResponseTopicHeader = "Ringmq-Response-Topic";
inline constexpr std::string_view kResponseTopicBase64Header = "Ringmq-Response-Topic-B64";
inline constexpr std::string_view kCorrelationDataHeader = "Ringmq-Correlation-Data";
inline constexpr std::string_view kUserPropertyHeader = "Ringmq-User-Property";

// The longest user property name written as a native header name.
inline constexpr size_t kNativeNameMax = 256;

// Whether `name` / `value` of a user property is written as a native header (see above).
bool IsNativeHeaderName(std::string_view name);
bool IsPlainHeaderValue(std::string_view value);

enum class Mqtt5EncodeResult : uint8_t {
  kNone,           // nothing to carry: no field written
  kWritten,        // fields appended
  kTooManyFields,  // more than fields_max: nothing appended (the message is not forwarded)
};

// Appends the fields for `properties` (a block mqtt::ValidateProperties accepted for a PUBLISH
// or a will; empty for none) and `expiry_left_ms` (set when the message expires) to `fields`.
// `text` is this function's scratch: cleared, then holds the encoded values `fields` points
// into (valid until the next call with it).
Mqtt5EncodeResult AppendMqtt5Headers(std::span<const uint8_t> properties,
                                     std::optional<uint64_t> expiry_left_ms, size_t fields_max,
                                     std::vector<nats::HeaderField>& fields, std::string& text);

// Calls fn(name, value) for each field of a NATS header block ("NATS/1.0[ status]\r\n" then
// "Name: value\r\n" lines), names and values trimmed of spaces and tabs, until fn returns false.
// A block that does not start with "NATS/1.0" has no fields. Allocation-free; O(block size).
template <typename Fn>
void ForEachHeaderField(std::string_view block, Fn fn) {
  if (!block.starts_with("NATS/1.0")) return;
  auto trim = [](std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
  };
  size_t end = block.find("\r\n");
  while (end != std::string_view::npos) {
    block.remove_prefix(end + 2);
    end = block.find("\r\n");
    const std::string_view line = block.substr(0, end);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the empty line that ends the block
    if (!fn(trim(line.substr(0, colon)), trim(line.substr(colon + 1)))) return;
  }
}

// Rebuilds a property block from the fields of one received message, fed one at a time.
class Mqtt5HeaderDecoder {
 public:
  // `block` receives the property block: cleared here, its capacity kept.
  explicit Mqtt5HeaderDecoder(std::vector<uint8_t>& block) : block_(block) { block_.clear(); }

  // One field (name and value trimmed). Returns false for fields that are no property (the
  // caller's own Ringmq-* and the Nats-* ones).
  bool Field(std::string_view name, std::string_view value);

  // The block built so far (valid for a PUBLISH; empty for none).
  std::span<const uint8_t> properties() const { return block_; }
  // The Message Expiry Interval left, in ms, if the message expires.
  std::optional<uint64_t> expiry_left_ms() const { return expiry_left_ms_; }
  // Fields that named a property but whose value gave none (left out).
  uint32_t dropped() const { return dropped_; }

 private:
  // Appends a string (or binary) property / a user property from `value`, base64-decoded when
  // `base64`; a value that gives none is dropped (counted).
  void AppendString(uint8_t id, std::string_view value, bool base64);
  void AppendPair(std::string_view name, std::string_view value, bool base64);
  // Appends a two-byte length and the bytes; false if they make no string (the caller cuts the
  // block back).
  bool AppendBytes(std::string_view value, bool base64);
  // Keeps the property that starts at `start` if it validates, else drops it.
  void Check(size_t start);
  bool FirstOf(uint8_t id);

  std::vector<uint8_t>& block_;
  std::optional<uint64_t> expiry_left_ms_;
  uint64_t seen_ = 0;  // bit per single-valued property id (< 64, mqtt/properties.h)
  uint32_t dropped_ = 0;
};

// The whole block at once: ForEachHeaderField + Mqtt5HeaderDecoder::Field.
void DecodeMqtt5Headers(std::string_view header_block, Mqtt5HeaderDecoder& decoder);

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_MQTT5_HEADERS_H_
