// libFuzzer target for the NATS client protocol parser (src/cluster/nats_protocol.h) and the
// NatsLink that consumes it (src/cluster/nats_link.h).
//
// Input: two control bytes, then server bytes. Byte 0 picks the split point (as a fraction of
// the stream), byte 1 the bounds (max_control_line from 16 to 527, max_payload from 0 to 1023).
// Properties that must hold for any bytes:
//  - Feed never crashes or asserts, whatever the split;
//  - the events (rendered) and the outcome (ok or error) are the same for one feed, a feed in
//    two pieces at the split point, and (for inputs up to 2 KiB) one byte at a time;
//  - bounds hold: a MSG's headers + payload never exceed max_payload, a control line parsed
//    never exceeds max_control_line, the spill buffer never exceeds
//    max_control_line + max_payload + 4, header bytes never exceed the total;
//  - ParseServerInfo on any INFO's JSON and ParseHeaderBlock on any HMSG's block never crash,
//    and an INFO that parses has at most kInfoConnectUrlsMax connect_urls;
//  - a NatsLink fed the same bytes after its transport connected never crashes, never holds
//    more than its outbound bound, and leaves a connected state only through OnDisconnected.
#include "cluster/nats_protocol.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/nats_link.h"

namespace ringmq::cluster::nats {
namespace {

#define FUZZ_CHECK(condition)                                                              \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      std::fprintf(stderr, "nats invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

struct Outcome {
  std::vector<std::string> events;
  bool ok = true;
};

class Checker {
 public:
  Checker(size_t max_control_line, size_t max_payload)
      : max_control_line_(max_control_line), max_payload_(max_payload) {}

  void Check(const ServerOp& op, std::vector<std::string>& events) const {
    std::string event(1, static_cast<char>('0' + static_cast<int>(op.kind)));
    switch (op.kind) {
      case ServerOpKind::kInfo: {
        FUZZ_CHECK(op.info_json.size() <= max_control_line_);
        absl::StatusOr<ServerInfo> info = ParseServerInfo(op.info_json);
        if (info.ok()) FUZZ_CHECK(info->connect_urls.size() <= kInfoConnectUrlsMax);
        event.append(op.info_json);
        break;
      }
      case ServerOpKind::kMsg:
        FUZZ_CHECK(op.headers.size() + op.payload.size() <= max_payload_);
        FUZZ_CHECK(op.subject.size() <= max_control_line_);
        FUZZ_CHECK(!op.has_headers ? op.headers.empty() : true);
        if (op.has_headers) (void)ParseHeaderBlock(op.headers);
        event.append(op.subject).append("|").append(std::to_string(op.sid)).append("|");
        event.append(op.reply).append("|").append(op.headers).append("|").append(op.payload);
        event.append(op.has_headers ? "|h" : "|m");
        break;
      case ServerOpKind::kErr:
        FUZZ_CHECK(op.error.size() <= max_control_line_);
        event.append(op.error);
        break;
      default:
        break;
    }
    events.push_back(std::move(event));
  }

  Outcome Run(std::span<const std::string_view> pieces) const {
    Parser parser(max_control_line_, max_payload_);
    Outcome outcome;
    for (std::string_view piece : pieces) {
      absl::Status status =
          parser.Feed(piece, [&](const ServerOp& op) { Check(op, outcome.events); });
      FUZZ_CHECK(parser.buffered_bytes() <= max_control_line_ + max_payload_ + 4);
      if (!status.ok()) {
        outcome.ok = false;
        // Sticky: a later feed reports the error again and calls no sink.
        FUZZ_CHECK(!parser.Feed("PING\r\n", [](const ServerOp&) { std::abort(); }).ok());
        break;
      }
    }
    return outcome;
  }

 private:
  size_t max_control_line_;
  size_t max_payload_;
};

class NullSink : public NatsLinkSink {
 public:
  void OnReady(const ServerInfo&) override {}
  void OnMessage(const NatsMessage&) override {}
  void OnDisconnected(DisconnectReason, std::string_view) override { ++disconnects; }
  void OnServerError(std::string_view) override {}
  int disconnects = 0;
};

void FuzzLink(std::string_view stream, size_t split, size_t max_control_line) {
  NullSink sink;
  NatsLinkOptions options;
  options.urls = {"nats://127.0.0.1:4222"};
  options.max_control_line = std::max<size_t>(max_control_line, 64);
  options.outbound_bytes_max = 4096;
  std::unique_ptr<NatsLink> link = *NatsLink::Create(options, &sink);
  (void)link->Subscribe("a.*", "q");
  link->BeginConnect(0);
  link->OnTransportConnected(0);
  link->OnReceived(1, stream.substr(0, split));
  (void)link->Publish("a.b", {}, "payload");
  link->OnReceived(2, stream.substr(split));
  link->OnTimer(1'000'000);
  // Publishes stay within the bound; PONGs answer PINGs (at most 6 bytes per 5 received).
  FUZZ_CHECK(link->pending_bytes() <= 4096 + 256 + 2 * stream.size());
  const bool left = link->state() == NatsLinkState::kWaiting;
  FUZZ_CHECK(left == (sink.disconnects == 1));
}

}  // namespace
}  // namespace ringmq::cluster::nats

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::cluster::nats;
  if (size < 2) return 0;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t split = stream.size() * data[0] / 255;
  const size_t max_control_line = 16 + (static_cast<size_t>(data[1] & 0x0F) << 5);
  const size_t max_payload = static_cast<size_t>(data[1] >> 4) << 6;
  const Checker checker(max_control_line, max_payload);

  const std::string_view whole[] = {stream};
  const Outcome one = checker.Run(whole);
  const std::string_view halves[] = {stream.substr(0, split), stream.substr(split)};
  const Outcome two = checker.Run(halves);
  FUZZ_CHECK(one.ok == two.ok);
  FUZZ_CHECK(one.events == two.events);
  if (stream.size() <= 2048) {
    std::vector<std::string_view> bytes;
    for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
    const Outcome many = checker.Run(bytes);
    FUZZ_CHECK(one.ok == many.ok);
    FUZZ_CHECK(one.events == many.events);
  }
  FuzzLink(stream, split, max_control_line);
  return 0;
}
