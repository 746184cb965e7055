// Stateful libFuzzer target: one connection's state machine (src/net/connection.h) driven by a
// whole client byte stream, as a shard drives it.
//
// Input: an 8-byte control header, then the bytes a client sends (the seeds in
// corpus/connection/ are real mosquitto_pub/sub and paho sessions behind such a header).
//   byte 0  options: bit 0 unused (ignored, so that existing seeds keep their meaning); bit 1
//           the sink hands the first CONNECT off to another shard (which adopts it); bit 2
//           silent reject policy; bit 3 a small output cap; bit 4 max_connections 1 with one
//           slot already taken; bits 5..7 send progress per step (0: all)
//   byte 1  max_packet_size: 0 -> 1 MiB, else byte * 16
//   bytes 2..7  the receive split pattern: chunk lengths (0 -> 1 byte), used cyclically; the
//           time advances by the chunk length in ms between chunks, so deadlines fire too
//
// Every input runs twice:
//  1. whole stream in one OnReceive vs. split at the pattern, draining only at the end: the
//     sent bytes, state and counters must be identical (framing is split-proof end to end);
//  2. split, with partial sends, deadlines and the transport close interleaved, checking after
//     every step: no crash or sanitizer report; output never above max_output_bytes; kClosing
//     is sticky and queues nothing more; OnClosing at most once and only for a served
//     connection; what is sent is a sequence of well-formed server-to-client packets that
//     starts with CONNACK; a connection never admitted sends at most one refusal CONNACK
//     (MQTT-8: never one for a malformed CONNECT); the connected-client slot is released.
#include "net/connection.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "auth/siphash.h"
#include "common/byte_buffer.h"
#include "connect/admission.h"
#include "connect/client_id.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "ringmq/config.h"

namespace ringmq::net {
namespace {

#define FUZZ_CHECK(condition)                                                                    \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "connection invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

using Bytes = std::vector<uint8_t>;
constexpr size_t kHeaderBytes = 8;
constexpr uint64_t kStartMs = 1'000'000;
constexpr uint32_t kConnectTimeoutMs = 10'000;

struct Options {
  bool handoff = false;
  bool silent = false;
  bool small_output = false;
  bool full = false;
  uint8_t send_step = 0;  // bytes per OnSent; 0: whole
  uint32_t max_packet_size = 1 << 20;
  uint8_t splits[6] = {};
};

// Answers like the broker's router does, minus routing: acknowledges QoS 1/2, answers PUBREL,
// grants subscriptions, and echoes PUBLISHes on "echo/..." back as deliveries, bounded by half
// the output cap as the router bounds them.
class FakeSink : public PacketSink {
 public:
  FakeSink(ConnectionContext& context, bool handoff) : context_(context), handoff_(handoff) {}

  ConnectAction OnConnect(Connection& connection, const mqtt::Connect& connect) override {
    FUZZ_CHECK(connect.level_supported);
    ++connects;
    if (handoff_ && connects == 1) return ConnectAction::kHandoff;
    connection.SendConnack(false);
    served = true;
    return ConnectAction::kServe;
  }

  void OnPacket(Connection& connection, const mqtt::Packet& packet) override {
    FUZZ_CHECK(served);
    FUZZ_CHECK(closings == 0);
    FUZZ_CHECK(connection.state() == Connection::State::kOpen);
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      if (publish->qos == mqtt::QoS::k1) {
        connection.QueuePacket(mqtt::Puback{publish->packet_id}, context_);
      } else if (publish->qos == mqtt::QoS::k2) {
        connection.QueuePacket(mqtt::Pubrec{publish->packet_id}, context_);
      }
      if (publish->topic.starts_with("echo/") && connection.state() == Connection::State::kOpen) {
        mqtt::Publish delivery = *publish;
        delivery.qos = mqtt::QoS::k0;
        delivery.dup = false;
        delivery.packet_id = 0;
        delivery.properties = {};  // the publisher's (its Topic Alias) are not forwarded here
        const mqtt::ProtocolLevel level = connection.level();
        const size_t size = mqtt::EncodedSize(delivery, level);
        if (connection.pending_output_bytes() + size <= context_.max_output_bytes / 2) {
          ByteBuffer& out = connection.output_buffer();
          const size_t old_size = out.size();
          out.resize(old_size + size);
          FUZZ_CHECK(mqtt::Encode(delivery, std::span<uint8_t>(out).subspan(old_size), level) ==
                     size);
        }
      }
    } else if (const auto* pubrel = std::get_if<mqtt::Pubrel>(&packet)) {
      connection.QueuePacket(mqtt::Pubcomp{pubrel->packet_id}, context_);
    } else if (const auto* subscribe = std::get_if<mqtt::Subscribe>(&packet)) {
      std::vector<uint8_t> codes;
      for (const mqtt::TopicRequest request : subscribe->topics) {
        codes.push_back(static_cast<uint8_t>(request.qos));
      }
      FUZZ_CHECK(!codes.empty());
      connection.QueuePacket(mqtt::Suback{subscribe->packet_id, codes}, context_);
    } else if (const auto* unsubscribe = std::get_if<mqtt::Unsubscribe>(&packet)) {
      FUZZ_CHECK(unsubscribe->topics.size() > 0);
      // 5.0: one reason code per filter (Success); none at 3.1.x.
      const std::vector<uint8_t> codes(
          connection.level() == mqtt::ProtocolLevel::kMqtt5 ? unsubscribe->topics.size() : 0,
          0x00);
      connection.QueuePacket(mqtt::Unsuback{unsubscribe->packet_id, codes}, context_);
    } else {
      // PUBACK, PUBREC, PUBCOMP: nothing is in flight in this fake; they are accepted.
      const mqtt::PacketType type = mqtt::TypeOf(packet);
      FUZZ_CHECK(type == mqtt::PacketType::kPuback || type == mqtt::PacketType::kPubrec ||
                 type == mqtt::PacketType::kPubcomp);
    }
  }

  void OnClosing(Connection& connection) override {
    FUZZ_CHECK(served);
    FUZZ_CHECK(connection.state() == Connection::State::kClosing);
    ++closings;
    FUZZ_CHECK(closings == 1);
  }

  int connects = 0;
  int closings = 0;
  bool served = false;

 private:
  ConnectionContext& context_;
  bool handoff_;
};

// One shard's worth of state for one connection.
struct Harness {
  explicit Harness(const Options& options) : options(options) {
    policy.reject_policy =
        options.silent ? RejectPolicy::kSilent : RejectPolicy::kVerbose;
    policy.max_connections = options.full ? 1 : 100'000;
    connected_clients.store(options.full ? 1 : 0);
    context.policy = policy;
    context.max_packet_size = options.max_packet_size;
    context.connect_timeout_ms = kConnectTimeoutMs;
    context.max_output_bytes = options.small_output ? 256 : 128 * 1024;
    context.connected_clients = &connected_clients;
    context.shutting_down = &shutting_down;
    context.counters = &counters;
    // A fixed key: both runs of an input must assign the same id (a 5.0 CONNACK carries it).
    context.assigned_ids = connect::AssignedClientIds(auth::SipKey{});
    sink = std::make_unique<FakeSink>(context, options.handoff);
    context.sink = sink.get();
    connection.Open(/*fd=*/3, kStartMs);
  }

  uint32_t Baseline() const { return options.full ? 1 : 0; }
  bool Admitted() const {
    return counters.connect[static_cast<size_t>(connect::Reason::kAccepted)].Load() != 0;
  }

  // Feeds bytes; when the connection hands off, a second connection adopts the socket and the
  // bytes, as the home shard does, and replaces the first.
  void Receive(std::span<const uint8_t> bytes, uint64_t now_ms) {
    connection.OnReceive(bytes, now_ms, context);
    if (connection.state() == Connection::State::kHandoff) {
      FUZZ_CHECK(connection.NextSend().empty());  // nothing answered before the move
      Bytes moved = connection.TakeHandoffBytes();
      connection.ReleaseForHandoff();
      Connection adopted;
      adopted.Adopt(/*fd=*/3, now_ms);
      connection.OnClosed(context);  // the first shard's slot object lets go
      connection = std::move(adopted);
      handed_off = true;
      connection.OnReceive(moved, now_ms, context);
    }
  }

  // Sends whatever is queued, `step` bytes per completion (0: all at once).
  void Drain(size_t step, int max_sends) {
    for (int i = 0; i < max_sends; ++i) {
      const std::span<const uint8_t> out = connection.NextSend();
      if (out.empty()) return;
      const size_t n = step == 0 ? out.size() : std::min(step, out.size());
      sent.insert(sent.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
      connection.OnSent(n);
    }
  }

  Options options;
  connect::Policy policy;
  std::atomic<uint32_t> connected_clients{0};
  std::atomic<bool> shutting_down{false};
  metrics::ShardCounters counters;
  ConnectionContext context;
  std::unique_ptr<FakeSink> sink;
  Connection connection;
  Bytes sent;
  bool handed_off = false;
};

Options ParseOptions(const uint8_t* data) {
  Options options;
  options.handoff = (data[0] & 0x02) != 0;
  options.silent = (data[0] & 0x04) != 0;
  options.small_output = (data[0] & 0x08) != 0;
  options.full = (data[0] & 0x10) != 0;
  options.send_step = static_cast<uint8_t>(data[0] >> 5);
  options.max_packet_size = data[1] == 0 ? (1u << 20) : uint32_t{data[1]} * 16;
  std::copy(data + 2, data + kHeaderBytes, options.splits);
  return options;
}

size_t ChunkLength(const Options& options, size_t index) {
  const uint8_t length = options.splits[index % 6];
  return length == 0 ? 1 : length;
}

// The server-to-client packets the connection sent, checked to be well formed.
void CheckSentStream(const Harness& h, bool ever_open) {
  std::span<const uint8_t> rest(h.sent);
  size_t index = 0;
  // The layout of what was sent: the connection's level once admitted. A refused 5.0 CONNECT
  // gets a 5.0 CONNACK (never 2 bytes long: it carries a Reason String) on a connection that
  // never left 3.1.1; the first frame's header tells them apart.
  bool mqtt5 = ever_open && h.connection.level() == mqtt::ProtocolLevel::kMqtt5;
  while (!rest.empty()) {
    const mqtt::ProtocolLevel level =
        mqtt5 ? mqtt::ProtocolLevel::kMqtt5 : mqtt::ProtocolLevel::kMqtt311;
    const mqtt::Frame frame = mqtt::PeekFrame(rest, UINT32_MAX, level);
    // A send may stop mid-packet only when the connection gave up (close grace expired).
    if (frame.status == mqtt::FrameStatus::kNeedMore) {
      FUZZ_CHECK(h.connection.state() == Connection::State::kClosing);
      return;
    }
    if (index == 0 && !ever_open && !mqtt5 && frame.status == mqtt::FrameStatus::kInvalid) {
      mqtt5 = true;  // a 5.0 refusal CONNACK: longer than 3.1.1's fixed 2
      continue;
    }
    FUZZ_CHECK(frame.status == mqtt::FrameStatus::kComplete);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, rest.subspan(frame.header.header_length, frame.header.remaining_length),
        level);
    FUZZ_CHECK(packet.ok());
    const mqtt::PacketType type = mqtt::TypeOf(packet.value());
    if (index == 0) {
      FUZZ_CHECK(type == mqtt::PacketType::kConnack);
      const auto& connack = std::get<mqtt::Connack>(packet.value());
      FUZZ_CHECK(!connack.session_present);
      // Accepted exactly when the connection was ever open (MQTT-3.2.2-4: refused -> closed).
      const bool accepted = mqtt5 ? connack.reason_code == mqtt::ReasonCode::kSuccess
                                  : connack.return_code == mqtt::ConnackCode::kAccepted;
      FUZZ_CHECK(accepted == ever_open);
    } else {
      FUZZ_CHECK(ever_open);  // a refused connection sends its CONNACK and nothing else
      FUZZ_CHECK(type == mqtt::PacketType::kPuback || type == mqtt::PacketType::kPubrec ||
                 type == mqtt::PacketType::kPubcomp || type == mqtt::PacketType::kSuback ||
                 type == mqtt::PacketType::kUnsuback || type == mqtt::PacketType::kPingresp ||
                 type == mqtt::PacketType::kPublish ||
                 (mqtt5 && type == mqtt::PacketType::kDisconnect));
    }
    rest = rest.subspan(frame.header.total_length());
    ++index;
  }
}

// Run 1: one receive vs. the split receives, no sends until the end.
void CheckSplitProof(const Options& options, std::span<const uint8_t> stream) {
  Harness whole(options);
  Harness split(options);
  whole.Receive(stream, kStartMs);
  for (size_t offset = 0, i = 0; offset < stream.size(); ++i) {
    const size_t n = std::min(ChunkLength(options, i), stream.size() - offset);
    split.Receive(stream.subspan(offset, n), kStartMs);
    offset += n;
  }
  // A handed-off connection bounds what it buffers per receive, so a single huge receive and
  // many small ones may legitimately differ there; everything else must not.
  if (whole.handed_off || split.handed_off) return;
  whole.Drain(0, 64);
  split.Drain(0, 64);
  FUZZ_CHECK(whole.sent == split.sent);
  FUZZ_CHECK(whole.connection.state() == split.connection.state());
  const metrics::ShardCounters& a = whole.counters;
  const metrics::ShardCounters& b = split.counters;
  FUZZ_CHECK(a.protocol_violations.Load() == b.protocol_violations.Load());
  FUZZ_CHECK(a.packet_too_large.Load() == b.packet_too_large.Load());
  FUZZ_CHECK(a.output_overflow.Load() == b.output_overflow.Load());
  FUZZ_CHECK(a.client_disconnects.Load() == b.client_disconnects.Load());
  FUZZ_CHECK(a.bytes_received.Load() == b.bytes_received.Load());
  for (size_t r = 0; r < connect::kReasonCount; ++r) {
    FUZZ_CHECK(a.connect[r].Load() == b.connect[r].Load());
  }
}

// Run 2: the full life with sends, deadlines and the transport close interleaved.
void CheckLife(const Options& options, std::span<const uint8_t> stream) {
  Harness h(options);
  uint64_t now = kStartMs;
  bool ever_open = false;
  bool closing = false;
  size_t produced_at_close = 0;
  const size_t step = options.send_step == 0 ? 0 : size_t{1} << (options.send_step - 1);
  auto check_step = [&] {
    Connection& c = h.connection;
    FUZZ_CHECK(c.pending_output_bytes() <= h.context.max_output_bytes);
    if (h.Admitted()) ever_open = true;
    // Output produced so far: sent plus pending. pending_output_bytes() does not count the
    // pre-encoded CONNACK until its send starts, hence the slack: at most 64 bytes (a 5.0
    // refusal with its Reason String; 4 at 3.1.x).
    const size_t produced = h.sent.size() + c.pending_output_bytes();
    if (closing) {
      FUZZ_CHECK(c.state() == Connection::State::kClosing);  // sticky
      FUZZ_CHECK(produced <= produced_at_close + 64);        // nothing new is queued once closing
    } else if (c.state() == Connection::State::kClosing) {
      closing = true;
      produced_at_close = produced;
    }
    FUZZ_CHECK(h.sink->closings <= 1);
    FUZZ_CHECK(h.sink->closings == ((closing && h.sink->served) ? 1 : 0));
    // An admitted client holds one connected-client slot until OnClosed, whether or not it is
    // closing (and across a handoff); a refused or unfinished one holds none.
    const uint32_t slots = h.connected_clients.load() - h.Baseline();
    FUZZ_CHECK(slots == (h.Admitted() ? 1u : 0u));
  };
  size_t offset = 0;
  for (size_t i = 0; offset < stream.size(); ++i) {
    const size_t n = std::min(ChunkLength(options, i), stream.size() - offset);
    h.Receive(stream.subspan(offset, n), now);
    offset += n;
    check_step();
    h.Drain(step, 2);
    check_step();
    now += n;  // time passes with the bytes: keepalive and connect timeout can expire
    const Connection& c = h.connection;
    const bool connect_expired = c.state() == Connection::State::kAwaitConnect &&
                                 now - kStartMs >= kConnectTimeoutMs;
    if (connect_expired || (c.DeadlineMs() != 0 && now >= c.DeadlineMs())) {
      h.connection.OnDeadline(now, h.context);
      check_step();
    }
    if (h.connection.ReadyToClose()) break;
  }
  // The end of the stream: the peer stops; what is queued goes out; then the socket closes.
  h.Drain(0, 64);
  check_step();
  if (!closing) {
    h.connection.OnTransportClosed(now);
    check_step();
  }
  FUZZ_CHECK(h.connection.ReadyToClose() || h.connection.send_in_flight());
  if (h.connection.send_in_flight()) h.connection.OnSent(0);
  FUZZ_CHECK(h.connection.ReadyToClose());
  h.connection.OnClosed(h.context);
  FUZZ_CHECK(h.connected_clients.load() == h.Baseline());
  FUZZ_CHECK(h.counters.connections_closed.Load() == (h.handed_off ? 2u : 1u));

  CheckSentStream(h, ever_open);
  if (!ever_open) {
    // Never admitted: at most one refusal CONNACK (4 bytes at 3.1.x; at 5.0 one whose
    // remaining length fits one byte), and none when the CONNECT was malformed (MQTT-8) or the
    // silent policy holds.
    FUZZ_CHECK(h.sent.size() == 0 || h.sent.size() == 4 ||
               (h.sent.size() >= 2 && h.sent[1] < 0x80 && h.sent.size() == 2u + h.sent[1]));
    const uint64_t malformed =
        h.counters.connect[static_cast<size_t>(connect::Reason::kMalformed)].Load();
    if (malformed != 0 || options.silent) FUZZ_CHECK(h.sent.empty());
  }
}

}  // namespace
}  // namespace ringmq::net

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::net;
  if (size < kHeaderBytes) return 0;
  const Options options = ParseOptions(data);
  const std::span<const uint8_t> stream(data + kHeaderBytes, size - kHeaderBytes);
  CheckSplitProof(options, stream);
  CheckLife(options, stream);
  return 0;
}
