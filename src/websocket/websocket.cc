#include "websocket/websocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/assert.h"
#include "mqtt/topic.h"

namespace ringmq::websocket {
namespace {

using Result = net::TransportLayer::Result;

constexpr uint8_t kOpContinuation = 0x0;
constexpr uint8_t kOpText = 0x1;
constexpr uint8_t kOpBinary = 0x2;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kOpPing = 0x9;
constexpr uint8_t kOpPong = 0xA;

// RFC6455-1.3.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Why an upgrade is refused: its counter and its HTTP answer.
struct Refusal {
  metrics::Counter metrics::ShardCounters::*counter;
  int status;
  std::string_view text;
  std::string_view headers;  // extra header lines, each ending in CRLF
};

constexpr Refusal kRefuseMalformed{&metrics::ShardCounters::websocket_refused_malformed, 400,
                                   "Bad Request", ""};
constexpr Refusal kRefuseTooLarge{&metrics::ShardCounters::websocket_refused_request_too_large, 431,
                                  "Request Header Fields Too Large", ""};
constexpr Refusal kRefuseMethod{&metrics::ShardCounters::websocket_refused_method, 405,
                                "Method Not Allowed", "Allow: GET\r\n"};
constexpr Refusal kRefusePath{&metrics::ShardCounters::websocket_refused_path, 404, "Not Found",
                              ""};
constexpr Refusal kRefuseNotUpgrade{&metrics::ShardCounters::websocket_refused_not_upgrade, 426,
                                    "Upgrade Required",
                                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"};
constexpr Refusal kRefuseVersion{&metrics::ShardCounters::websocket_refused_version, 426,
                                 "Upgrade Required",
                                 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"};
constexpr Refusal kRefuseKey{&metrics::ShardCounters::websocket_refused_key, 400, "Bad Request",
                             ""};
constexpr Refusal kRefuseSubprotocol{&metrics::ShardCounters::websocket_refused_subprotocol, 400,
                                     "Bad Request", ""};
constexpr Refusal kRefuseOrigin{&metrics::ShardCounters::websocket_refused_origin, 403, "Forbidden",
                                ""};
constexpr Refusal kRefuseForwardedFor{&metrics::ShardCounters::websocket_refused_forwarded_for, 400,
                                      "Bad Request", ""};

void Append(ByteBuffer& out, std::string_view text) {
  out.insert(out.end(), text.begin(), text.end());
}

// Text helpers on std::string_view (this abseil's string_view is its own type).
bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// The pieces of `text` between occurrences of `separator`.
std::vector<std::string_view> Split(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> pieces;
  while (true) {
    const size_t at = text.find(separator);
    pieces.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return pieces;
    text.remove_prefix(at + separator.size());
  }
}

bool IsAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

Result Refuse(const Refusal& refusal, ByteBuffer& down, metrics::ShardCounters& counters) {
  (counters.*refusal.counter).Add();
  Append(down, "HTTP/1.1 ");
  Append(down, std::to_string(refusal.status));
  Append(down, " ");
  Append(down, refusal.text);
  Append(down, "\r\nConnection: close\r\nContent-Length: 0\r\n");
  Append(down, refusal.headers);
  Append(down, "\r\n");
  return Result::kClose;
}

// A comma-separated header value (RFC 7230 §7) holds `token`, compared case-insensitively.
bool ListHas(std::string_view list, std::string_view token) {
  for (std::string_view element : Split(list, ",")) {
    if (EqualsIgnoreCase(Trim(element), token)) return true;
  }
  return false;
}

// What the upgrade looks at; list-valued headers that appear more than once are joined.
struct Request {
  std::string_view method;
  std::string_view target;
  bool host = false;
  std::string upgrade;
  std::string connection;
  std::string protocols;
  std::string forwarded_for;
  std::string_view version;
  std::string_view key;
  std::string_view origin;
  int keys = 0;
};

void Join(std::string& list, std::string_view value) {
  if (!list.empty()) list += ',';
  list += value;
}

bool IsTokenChar(char c) {
  return IsAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Parses the request line and headers (RFC 7230 §3); false when they are off the grammar.
bool Parse(std::string_view text, Request& request) {
  RINGMQ_ASSERT(text.ends_with("\r\n\r\n"));
  text.remove_suffix(4);
  bool first = true;
  for (std::string_view line : Split(text, "\r\n")) {
    if (first) {
      first = false;
      const std::vector<std::string_view> parts = Split(line, " ");
      if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) return false;
      if (!std::all_of(parts[0].begin(), parts[0].end(), IsTokenChar)) return false;
      // RFC6455-4.1: HTTP/1.1 or higher.
      if (parts[2] != "HTTP/1.1") return false;
      request.method = parts[0];
      request.target = parts[1];
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return false;  // no folding either
    const std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "Host")) {
      request.host = true;
    } else if (EqualsIgnoreCase(name, "Upgrade")) {
      Join(request.upgrade, value);
    } else if (EqualsIgnoreCase(name, "Connection")) {
      Join(request.connection, value);
    } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Protocol")) {
      Join(request.protocols, value);
    } else if (EqualsIgnoreCase(name, "X-Forwarded-For")) {
      Join(request.forwarded_for, value);
    } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Version")) {
      request.version = value;
    } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Key")) {
      request.key = value;
      ++request.keys;
    } else if (EqualsIgnoreCase(name, "Origin")) {
      request.origin = value;
    }
  }
  return !first;
}

// RFC6455-4.1: the key is 16 random bytes, base64-encoded: 22 characters and "==".
bool ValidKey(std::string_view key) {
  if (key.size() != 24 || !key.ends_with("==")) return false;
  return std::all_of(key.begin(), key.end() - 2,
                     [](char c) { return IsAlnum(c) || c == '+' || c == '/'; });
}

// The last address of an X-Forwarded-For list: an IPv4 or IPv6 address, the latter optionally
// in brackets.
bool ParseForwardedFor(std::string_view list, sockaddr_storage& address) {
  const size_t comma = list.rfind(',');
  std::string_view last = Trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
  if (last.size() >= 2 && last.front() == '[' && last.back() == ']') {
    last = last.substr(1, last.size() - 2);
  }
  if (last.empty() || last.size() >= INET6_ADDRSTRLEN) return false;
  const std::string text(last);
  address = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    return true;
  }
  return false;
}

// RFC6455-5.5.1 / RFC6455-8.1: a close frame's reason (after the code) is UTF-8. U+0000 is
// valid UTF-8 here (mqtt::ValidateUtf8 refuses it for MQTT strings), so each NUL-separated part
// is checked on its own: a NUL byte is never inside a multi-byte sequence.
bool ValidCloseReason(std::span<const uint8_t> reason) {
  std::string_view text(reinterpret_cast<const char*>(reason.data()), reason.size());
  for (;;) {
    const size_t nul = text.find('\0');
    if (mqtt::ValidateUtf8(text.substr(0, nul)) != mqtt::Violation::kNone) return false;
    if (nul == std::string_view::npos) return true;
    text.remove_prefix(nul + 1);
  }
}

// RFC6455-7.4: the status codes a peer may send in a close frame.
bool ValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

Options Options::ForListener(const ListenerConfig& listener, uint32_t max_packet_size) {
  Options options;
  options.path = listener.path;
  options.allowed_origins = listener.allowed_origins;
  options.trust_x_forwarded_for = listener.trust_x_forwarded_for;
  options.max_frame_bytes = uint64_t{max_packet_size} + kFrameSlackBytes;
  options.max_message_bytes = options.max_frame_bytes;
  return options;
}

std::string AcceptKey(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int length = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  RINGMQ_ASSERT(length == 28);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(length));
}

void AppendFrameHeader(uint8_t opcode, uint64_t payload_bytes, ByteBuffer& out) {
  RINGMQ_ASSERT(opcode <= 0xF);
  out.push_back(static_cast<uint8_t>(0x80 | opcode));  // FIN, no RSV, not masked
  if (payload_bytes <= 125) {
    out.push_back(static_cast<uint8_t>(payload_bytes));
  } else if (payload_bytes <= 0xFFFF) {
    out.push_back(126);
    out.push_back(static_cast<uint8_t>(payload_bytes >> 8));
    out.push_back(static_cast<uint8_t>(payload_bytes));
  } else {
    RINGMQ_ASSERT(payload_bytes >> 63 == 0);
    out.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<uint8_t>(payload_bytes >> shift));
    }
  }
}

WebSocketLayer::WebSocketLayer(std::shared_ptr<const Options> options)
    : options_(std::move(options)) {
  RINGMQ_ASSERT(options_ != nullptr);
}

Result WebSocketLayer::Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down,
                               net::PeerInfo& peer, metrics::ShardCounters& counters) {
  if (!open_) {
    if (ReceiveRequest(in, down, peer, counters) == Result::kClose) return Result::kClose;
    if (!open_) return Result::kOk;
  }
  return ReceiveFrames(in, up, down, counters);
}

Result WebSocketLayer::ReceiveRequest(std::span<const uint8_t>& in, ByteBuffer& down,
                                      net::PeerInfo& peer, metrics::ShardCounters& counters) {
  const size_t old_size = request_.size();
  const size_t take = std::min(in.size(), kMaxRequestBytes - old_size);
  request_.append(reinterpret_cast<const char*>(in.data()), take);
  const size_t end = request_.find("\r\n\r\n", old_size < 3 ? 0 : old_size - 3);
  if (end == std::string::npos) {
    in = in.subspan(take);
    if (request_.size() < kMaxRequestBytes) return Result::kOk;
    return Refuse(kRefuseTooLarge, down, counters);
  }
  const size_t request_bytes = end + 4;
  in = in.subspan(request_bytes - old_size);
  request_.resize(request_bytes);
  const Result result = AnswerRequest(request_, down, peer, counters);
  std::string().swap(request_);
  return result;
}

Result WebSocketLayer::AnswerRequest(std::string_view text, ByteBuffer& down, net::PeerInfo& peer,
                                     metrics::ShardCounters& counters) {
  Request request;
  if (!Parse(text, request) || !request.host) return Refuse(kRefuseMalformed, down, counters);
  if (request.method != "GET") return Refuse(kRefuseMethod, down, counters);
  const std::string_view path = request.target.substr(0, request.target.find('?'));
  if (path != options_->path) return Refuse(kRefusePath, down, counters);
  if (!ListHas(request.upgrade, "websocket") || !ListHas(request.connection, "upgrade")) {
    return Refuse(kRefuseNotUpgrade, down, counters);
  }
  if (request.version != "13") return Refuse(kRefuseVersion, down, counters);
  if (request.keys != 1 || !ValidKey(request.key)) return Refuse(kRefuseKey, down, counters);
  if (!options_->allowed_origins.empty() && !request.origin.empty() &&
      std::none_of(
          options_->allowed_origins.begin(), options_->allowed_origins.end(),
          [&](const std::string& allowed) { return EqualsIgnoreCase(allowed, request.origin); })) {
    return Refuse(kRefuseOrigin, down, counters);
  }
  // MQTT-6.0.0-3/4: "mqtt" (3.1.1 and 5.0) or "mqttv3.1", in the client's order of preference.
  if (!request.protocols.empty()) {
    for (std::string_view offer : Split(request.protocols, ",")) {
      offer = Trim(offer);
      if (offer == "mqtt" || offer == "mqttv3.1") {
        subprotocol_ = std::string(offer);
        break;
      }
    }
    if (subprotocol_.empty()) return Refuse(kRefuseSubprotocol, down, counters);
  }
  if (options_->trust_x_forwarded_for && !request.forwarded_for.empty()) {
    sockaddr_storage source;
    if (!ParseForwardedFor(request.forwarded_for, source)) {
      return Refuse(kRefuseForwardedFor, down, counters);
    }
    if (!peer.source.has_value()) peer.source = source;  // a PROXY header below comes first
  }
  Append(down, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  Append(down, "Sec-WebSocket-Accept: ");
  Append(down, AcceptKey(request.key));
  Append(down, "\r\n");
  if (!subprotocol_.empty()) {
    Append(down, "Sec-WebSocket-Protocol: ");
    Append(down, subprotocol_);
    Append(down, "\r\n");
  }
  Append(down, "\r\n");
  counters.websocket_upgrades.Add();
  open_ = true;
  return Result::kOk;
}

Result WebSocketLayer::ReceiveFrames(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down,
                                     metrics::ShardCounters& counters) {
  size_t i = 0;
  while (i < in.size()) {
    if (!in_payload_) {
      header_[header_bytes_++] = in[i++];
      if (header_bytes_ == 2 || header_bytes_ >= 6) {
        const uint8_t length7 = header_[1] & 0x7F;
        const size_t extended = length7 == 127 ? 8 : (length7 == 126 ? 2 : 0);
        // The mask bit is checked at 2 bytes: an unmasked frame never gets this far.
        if (header_bytes_ == 2 || header_bytes_ == 2 + extended + 4) {
          if (StartFrame(down, counters) == Result::kClose) return Result::kClose;
        }
      }
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size() - i, payload_left_));
    if (opcode_ >= kOpClose) {
      for (size_t k = 0; k < n; ++k) {
        control_[control_bytes_++] = in[i + k] ^ mask_[(payload_offset_ + k) & 3];
      }
    } else {
      const size_t old_size = up.size();
      up.resize(old_size + n);
      uint8_t* out = up.data() + old_size;
      for (size_t k = 0; k < n; ++k) out[k] = in[i + k] ^ mask_[(payload_offset_ + k) & 3];
    }
    i += n;
    payload_left_ -= n;
    payload_offset_ += n;
    if (payload_left_ == 0) {
      in_payload_ = false;
      if (opcode_ >= kOpClose && EndControlFrame(down, counters) == Result::kClose) {
        return Result::kClose;
      }
    }
  }
  return Result::kOk;
}

// Called with the first two header bytes (the frame's kind is checked), then again with the
// whole header (its length is checked and its payload begins).
Result WebSocketLayer::StartFrame(ByteBuffer& down, metrics::ShardCounters& counters) {
  const uint8_t opcode = header_[0] & 0x0F;
  const uint8_t length7 = header_[1] & 0x7F;
  const bool control = opcode >= kOpClose;
  if (header_bytes_ == 2) {
    if ((header_[0] & 0x70) != 0) {  // RFC6455-5.2: RSV1-3 without a negotiated extension
      counters.websocket_error_reserved_bits.Add();
      return Close(kCloseProtocolError, down);
    }
    if ((header_[1] & 0x80) == 0) {  // RFC6455-5.1: a client masks every frame
      counters.websocket_error_unmasked.Add();
      return Close(kCloseProtocolError, down);
    }
    if (opcode == kOpText) {  // MQTT-6.0.0-1: MQTT travels in binary frames
      counters.websocket_error_text_frame.Add();
      return Close(kCloseUnsupportedData, down);
    }
    if ((opcode > kOpBinary && opcode < kOpClose) || opcode > kOpPong) {  // RFC6455-5.2
      counters.websocket_error_opcode.Add();
      return Close(kCloseProtocolError, down);
    }
    // RFC6455-5.5: control frames are at most 125 bytes and never fragmented.
    if (control && ((header_[0] & 0x80) == 0 || length7 > kMaxControlPayloadBytes)) {
      counters.websocket_error_control_frame.Add();
      return Close(kCloseProtocolError, down);
    }
    // RFC6455-5.4: a continuation only inside a fragmented message, a new message only
    // outside one.
    if (!control && (opcode == kOpContinuation) != in_message_) {
      counters.websocket_error_continuation.Add();
      return Close(kCloseProtocolError, down);
    }
    return Result::kOk;
  }
  uint64_t length = length7;
  if (length7 >= 126) {
    const size_t bytes = length7 == 126 ? 2 : 8;
    length = 0;
    for (size_t k = 0; k < bytes; ++k) length = (length << 8) | header_[2 + k];
  }
  std::memcpy(mask_.data(), header_.data() + header_bytes_ - 4, 4);
  header_bytes_ = 0;
  opcode_ = opcode;
  final_ = (header_[0] & 0x80) != 0;
  if (!control) {
    if (length > options_->max_frame_bytes) {  // also a 64-bit length with its top bit set
      counters.websocket_frame_too_large.Add();
      return Close(kCloseTooBig, down);
    }
    const uint64_t message = (in_message_ ? message_bytes_ : 0) + length;
    if (message > options_->max_message_bytes) {
      counters.websocket_message_too_large.Add();
      return Close(kCloseTooBig, down);
    }
    in_message_ = !final_;
    message_bytes_ = in_message_ ? message : 0;
  }
  control_bytes_ = 0;
  payload_left_ = length;
  payload_offset_ = 0;
  in_payload_ = length != 0;
  if (control && length == 0) return EndControlFrame(down, counters);
  return Result::kOk;
}

Result WebSocketLayer::EndControlFrame(ByteBuffer& down, metrics::ShardCounters& counters) {
  const std::span<const uint8_t> payload(control_.data(), control_bytes_);
  switch (opcode_) {
    case kOpPing:  // RFC6455-5.5.2: a pong with the ping's payload
      counters.websocket_pings_received.Add();
      if (!close_sent_) {
        AppendFrameHeader(kOpPong, payload.size(), down);
        down.insert(down.end(), payload.begin(), payload.end());
      }
      return Result::kOk;
    case kOpPong:  // RFC6455-5.5.3: unsolicited pongs are allowed and need no answer
      return Result::kOk;
    default:
      break;
  }
  RINGMQ_ASSERT(opcode_ == kOpClose);
  counters.websocket_closes_received.Add();
  if (payload.empty()) return Close(0, down);  // RFC6455-5.5.1: answered without a code
  const uint16_t code =
      payload.size() < 2 ? 0 : static_cast<uint16_t>(payload[0] << 8 | payload[1]);
  if (!ValidCloseCode(code)) {
    counters.websocket_error_close_frame.Add();
    return Close(kCloseProtocolError, down);
  }
  if (!ValidCloseReason(payload.subspan(2))) {  // RFC6455-8.1: fail the connection, 1007
    counters.websocket_error_close_frame.Add();
    return Close(kCloseInvalidPayload, down);
  }
  return Close(code, down);  // echoed, as RFC6455-5.5.1 suggests
}

Result WebSocketLayer::Close(uint16_t code, ByteBuffer& down) {
  if (!close_sent_) {
    close_sent_ = true;
    AppendFrameHeader(kOpClose, code == 0 ? 0 : 2, down);
    if (code != 0) {
      down.push_back(static_cast<uint8_t>(code >> 8));
      down.push_back(static_cast<uint8_t>(code));
    }
  }
  return Result::kClose;
}

void WebSocketLayer::Send(std::span<const uint8_t> in, ByteBuffer& down) {
  RINGMQ_ASSERT(open_);
  if (close_sent_ || in.empty()) return;  // RFC6455-5.5.1: no data after a close frame
  AppendFrameHeader(kOpBinary, in.size(), down);
  down.insert(down.end(), in.begin(), in.end());
}

void WebSocketLayer::CountTimeout(metrics::ShardCounters& counters) {
  counters.websocket_upgrade_timeout.Add();
}

void WebSocketLayer::Shutdown(ByteBuffer& down) {
  if (open_) Close(kCloseNormal, down);
}

}  // namespace ringmq::websocket
