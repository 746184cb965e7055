// libFuzzer target for the WebSocket layer (src/websocket/websocket.h): the HTTP upgrade parser
// and the frame decoder.
//
// Input: one flags byte, then the bytes a client sends. Flags bit 0 puts a valid upgrade
// request in front (so the rest reaches the frame decoder); bit 1 trusts X-Forwarded-For;
// bit 2 sets an allowed-Origin list; bits 3-7 choose a chunk size (1-32). The bytes are fed
// once whole and once in chunks of that size, and for any bytes:
//  - nothing crashes or asserts;
//  - the layer is split-proof: both runs give the same result, the same bytes up and down,
//    the same peer source and the same open() state;
//  - nothing goes up before the upgrade, and never more bytes than came in;
//  - a close always says something first (an HTTP status or a close frame).
#include "websocket/websocket.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace ringmq::websocket {
namespace {

#define FUZZ_CHECK(condition)                                                                   \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "websocket invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

constexpr std::string_view kUpgrade =
    "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n";

struct Run {
  net::TransportLayer::Result result = net::TransportLayer::Result::kOk;
  ByteBuffer up;
  ByteBuffer down;
  net::PeerInfo peer;
  bool open = false;
};

Run Feed(const std::shared_ptr<const Options>& options, std::span<const uint8_t> bytes,
         size_t chunk) {
  WebSocketLayer layer(options);
  metrics::ShardCounters counters;
  Run run;
  for (size_t at = 0; at < bytes.size(); at += chunk) {
    const size_t up_before = run.up.size();
    const bool was_open = layer.open();
    run.result = layer.Receive(bytes.subspan(at, std::min(chunk, bytes.size() - at)), run.up,
                               run.down, run.peer, counters);
    FUZZ_CHECK(layer.open() || run.up.size() == up_before);
    FUZZ_CHECK(!was_open || layer.open());
    if (run.result == net::TransportLayer::Result::kClose) {
      FUZZ_CHECK(!run.down.empty());
      break;
    }
  }
  FUZZ_CHECK(run.up.size() <= bytes.size());
  run.open = layer.open();
  return run;
}

}  // namespace
}  // namespace ringmq::websocket

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::websocket;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  auto options = std::make_shared<Options>();
  options->trust_x_forwarded_for = (flags & 2) != 0;
  if ((flags & 4) != 0) options->allowed_origins = {"https://a.example", "http://b"};
  options->max_frame_bytes = 1000;
  options->max_message_bytes = 2500;
  std::vector<uint8_t> bytes;
  if ((flags & 1) != 0) bytes.assign(kUpgrade.begin(), kUpgrade.end());
  bytes.insert(bytes.end(), data + 1, data + size);
  const size_t chunk = 1 + (flags >> 3);
  const Run whole = Feed(options, bytes, bytes.size() == 0 ? 1 : bytes.size());
  const Run split = Feed(options, bytes, chunk);
  FUZZ_CHECK(whole.result == split.result);
  FUZZ_CHECK(whole.up == split.up);
  FUZZ_CHECK(whole.down == split.down);
  FUZZ_CHECK(whole.open == split.open);
  FUZZ_CHECK(whole.peer.source.has_value() == split.peer.source.has_value());
  if (whole.peer.source.has_value()) {
    FUZZ_CHECK(std::memcmp(&*whole.peer.source, &*split.peer.source, sizeof(sockaddr_storage)) ==
               0);
  }
  return 0;
}
