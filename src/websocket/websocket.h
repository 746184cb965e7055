// MQTT over WebSockets, server side (RFC 6455; MQTT 3.1.1 §6 and MQTT 5.0 §6): the HTTP/1.1
// upgrade and then the framing, as a net::TransportLayer. It is the top layer of a websockets
// listener's stack (above TLS for wss://, above PROXY), so it sees plain bytes from below and
// passes MQTT bytes up.
//
// Upgrade (RFC6455-4.2): the request is buffered until its blank line, at most
// kMaxRequestBytes (request line and headers); beyond that it is refused with 431. A request
// is accepted only as `GET <path>[?query] HTTP/1.1` with the listener's path, `Upgrade:
// websocket`, `Connection: upgrade`, `Sec-WebSocket-Version: 13`, a Host header, a
// Sec-WebSocket-Key of 16 base64-encoded bytes and, when the listener lists allowed origins,
// an Origin among them (a request without Origin is not from a browser and is let through:
// the check protects browsers from foreign pages, and any other client could send any
// Origin). Subprotocol (MQTT-6.0.0-3, MQTT-6.0.0-4): the first of the client's offers that is
// `mqtt` or `mqttv3.1` is selected; a client that offers others only is refused (400); one
// that offers none gets no Sec-WebSocket-Protocol header (RFC6455-4.1: a client must fail a
// connection whose answer names a subprotocol it did not offer). With trust_x_forwarded_for,
// the last address of X-Forwarded-For (the one the trusted proxy in front added) becomes
// PeerInfo::source; an address that does not parse is refused (400). Each refusal answers an
// HTTP status (400, 403, 404, 405, 426, 431) with `Connection: close`, is counted by cause and
// closes. Bytes that follow the request in the same read are frames.
//
// Frames (RFC6455-5): every client frame must be masked (RFC6455-5.1; else close 1002); RSV
// bits must be clear (no extension is negotiated, RFC6455-5.2); binary data frames and their
// continuations carry MQTT (a text frame closes with 1003, MQTT-6.0.0-1); control frames are
// at most 125 bytes and not fragmented (RFC6455-5.5); a ping is answered with a pong of the
// same payload, a pong is ignored, a close is answered with a close (RFC6455-5.5.1) and ends
// the connection. A frame whose payload is above max_frame_bytes, or a fragmented message
// above max_message_bytes, closes with 1009. The payload stream of the binary messages goes
// up as it arrives, unmasked in place of copying: MQTT packets may span frames and a frame
// may carry several packets (MQTT-6.0.0-2), the MQTT decoder reassembles them. Only a frame
// header (at most 14 bytes) and a control frame's payload (at most 125) are ever buffered.
// Outgoing MQTT bytes are sent as one unmasked binary frame per Send (RFC6455-5.1: a server
// does not mask); Shutdown sends a close frame (1000) unless one was sent already.
//
// Thread safety: a layer belongs to one connection and is used by one thread at a time (it may
// move to another shard with its connection); it keeps no thread-local or shared state.
#ifndef RINGMQ_WEBSOCKET_WEBSOCKET_H_
#define RINGMQ_WEBSOCKET_WEBSOCKET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_buffer.h"
#include "metrics/counters.h"
#include "net/transport.h"
#include "ringmq/config.h"

namespace ringmq::websocket {

// The upgrade request, request line and headers up to and including the blank line.
inline constexpr size_t kMaxRequestBytes = 8 << 10;
// Room beside one packet of max_packet_size in a frame or message: a client may put several
// packets in one frame (MQTT-6.0.0-2), so the frame bound is the packet bound plus this.
inline constexpr uint64_t kFrameSlackBytes = 64 << 10;
// RFC6455-5.5: a control frame's payload.
inline constexpr size_t kMaxControlPayloadBytes = 125;

// Close status codes sent (RFC6455-7.4.1).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseUnsupportedData = 1003;
inline constexpr uint16_t kCloseInvalidPayload = 1007;
inline constexpr uint16_t kCloseTooBig = 1009;

struct Options {
  std::string path = "/mqtt";
  std::vector<std::string> allowed_origins;  // empty: any
  bool trust_x_forwarded_for = false;
  uint64_t max_frame_bytes = (1 << 20) + kFrameSlackBytes;    // one frame's payload
  uint64_t max_message_bytes = (1 << 20) + kFrameSlackBytes;  // a fragmented message's payload

  // The listener's settings; frame and message bounds from the broker's max_packet_size.
  static Options ForListener(const ListenerConfig& listener, uint32_t max_packet_size);
};

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC6455-4.2.2 item 5.4): base64(SHA-1(key +
// the protocol's GUID)).
std::string AcceptKey(std::string_view key);

// Appends the header of an unmasked server frame (FIN set) of `opcode` and `payload_bytes`.
void AppendFrameHeader(uint8_t opcode, uint64_t payload_bytes, ByteBuffer& out);

class WebSocketLayer final : public net::TransportLayer {
 public:
  explicit WebSocketLayer(std::shared_ptr<const Options> options);

  Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down, net::PeerInfo& peer,
                 metrics::ShardCounters& counters) override;
  void Send(std::span<const uint8_t> in, ByteBuffer& down) override;
  void Shutdown(ByteBuffer& down) override;
  bool open() const override { return open_; }
  // The upgrade did not complete within the connect timeout (websocket_upgrade_timeout).
  void CountTimeout(metrics::ShardCounters& counters) override;
  // The request buffer's heap bytes (none inside std::string's own storage).
  size_t memory_bytes() const override {
    return request_.capacity() > std::string().capacity() ? request_.capacity() : 0;
  }

  // The subprotocol chosen at the upgrade ("mqtt", "mqttv3.1"; empty: none offered).
  std::string_view subprotocol() const { return subprotocol_; }

 private:
  // Upgrade: buffers the request; once complete answers it. Consumes the bytes it used from
  // `in` (the rest are frames).
  Result ReceiveRequest(std::span<const uint8_t>& in, ByteBuffer& down, net::PeerInfo& peer,
                        metrics::ShardCounters& counters);
  Result AnswerRequest(std::string_view request, ByteBuffer& down, net::PeerInfo& peer,
                       metrics::ShardCounters& counters);
  // Frames: consumes all of `in`.
  Result ReceiveFrames(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down,
                       metrics::ShardCounters& counters);
  // The frame header in header_ is complete: checks it and starts its payload.
  Result StartFrame(ByteBuffer& down, metrics::ShardCounters& counters);
  // A control frame's payload is complete in control_.
  Result EndControlFrame(ByteBuffer& down, metrics::ShardCounters& counters);
  // Appends a close frame with `code` (once) and returns kClose.
  Result Close(uint16_t code, ByteBuffer& down);

  std::shared_ptr<const Options> options_;
  // The upgrade request until it is answered, then released.
  std::string request_;
  std::string subprotocol_;
  bool open_ = false;
  bool close_sent_ = false;

  // The frame being received.
  std::array<uint8_t, 14> header_{};
  uint8_t header_bytes_ = 0;
  uint8_t opcode_ = 0;
  bool final_ = false;
  std::array<uint8_t, 4> mask_{};
  uint64_t payload_left_ = 0;
  uint64_t payload_offset_ = 0;  // into the current frame: selects the mask byte
  bool in_payload_ = false;
  // A fragmented binary message is in progress (its first frame lacked FIN); its bytes so far.
  bool in_message_ = false;
  uint64_t message_bytes_ = 0;
  std::array<uint8_t, kMaxControlPayloadBytes> control_{};
  uint8_t control_bytes_ = 0;
};

}  // namespace ringmq::websocket

#endif  // RINGMQ_WEBSOCKET_WEBSOCKET_H_
