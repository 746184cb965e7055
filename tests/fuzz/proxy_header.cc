// libFuzzer target for the PROXY protocol header parser and layer (src/proxy/).
//
// Input: one control byte, then the first bytes of a connection. The control byte's low two
// bits choose the listener's proxy_protocol (v1, v2, any); the rest seed how the bytes are cut
// into receives. Properties that must hold for any bytes:
//  - ParseHeader never crashes or asserts;
//  - it asks for more only below the bound: kNeedMore implies fewer than kMaxHeaderBytes bytes;
//  - a decision is made by a prefix and kept: each strict prefix of the input needs more or is
//    refused for the same cause as the whole; a header's strict prefixes all need more, and
//    the header alone parses to the same header; a done header has 0 < size <= input;
//  - a header that names a source names an AF_INET or AF_INET6 address;
//  - ProxyLayer fed the same bytes in pieces ends as one receive does (open or refused, the
//    same bytes passed up, the same source), never sends anything, and holds at most
//    kMaxHeaderBytes while closed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "metrics/counters.h"
#include "net/transport.h"
#include "proxy/header.h"
#include "proxy/layer.h"

namespace ringmq::proxy {
namespace {

#define FUZZ_CHECK(condition)                                                               \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "proxy invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

using Status = ParseResult::Status;

bool SameAddress(const std::optional<sockaddr_storage>& a,
                 const std::optional<sockaddr_storage>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a.has_value() || std::memcmp(&*a, &*b, sizeof(sockaddr_storage)) == 0;
}

// Prefix lengths to check: all of them for short inputs, a spread for long ones (each parse is
// linear in its input, so all prefixes of a 2 KiB header would be slow to fuzz).
std::vector<size_t> PrefixLengths(size_t size) {
  std::vector<size_t> lengths;
  if (size <= 160) {
    for (size_t n = 0; n < size; ++n) lengths.push_back(n);
    return lengths;
  }
  for (size_t n = 0; n < 160; ++n) lengths.push_back(n);
  for (size_t n = 160; n < size; n += size / 32 + 1) lengths.push_back(n);
  lengths.push_back(size - 1);
  return lengths;
}

void CheckParser(std::span<const uint8_t> bytes, ProxyProtocol accept) {
  const ParseResult whole = ParseHeader(bytes, accept);
  if (whole.status == Status::kNeedMore) FUZZ_CHECK(bytes.size() < kMaxHeaderBytes);
  if (whole.status == Status::kDone) {
    const Header& header = whole.header;
    FUZZ_CHECK(header.size > 0 && header.size <= bytes.size());
    FUZZ_CHECK(header.version == 1 || header.version == 2);
    FUZZ_CHECK(header.size <= (header.version == 1 ? kMaxV1Bytes : kMaxV2Bytes));
    if (header.source.has_value()) {
      FUZZ_CHECK(header.source->ss_family == AF_INET || header.source->ss_family == AF_INET6);
      FUZZ_CHECK(header.destination.has_value() &&
                 header.destination->ss_family == header.source->ss_family);
    }
    const ParseResult alone = ParseHeader(bytes.first(header.size), accept);
    FUZZ_CHECK(alone.status == Status::kDone && alone.header.size == header.size);
    FUZZ_CHECK(SameAddress(alone.header.source, header.source));
  }
  const size_t decided_at = whole.status == Status::kDone ? whole.header.size : bytes.size();
  for (const size_t n : PrefixLengths(decided_at)) {
    const ParseResult prefix = ParseHeader(bytes.first(n), accept);
    if (whole.status == Status::kDone) {
      FUZZ_CHECK(prefix.status == Status::kNeedMore);
    } else if (prefix.status == Status::kRefused) {
      FUZZ_CHECK(whole.status == Status::kRefused && prefix.refusal == whole.refusal);
    } else {
      FUZZ_CHECK(prefix.status == Status::kNeedMore);
    }
  }
}

struct LayerRun {
  net::TransportLayer::Result result = net::TransportLayer::Result::kOk;
  bool open = false;
  ByteBuffer up;
  net::PeerInfo peer;
};

// Feeds `bytes` in pieces whose sizes come from `seed` (0: one receive).
LayerRun RunLayer(std::span<const uint8_t> bytes, ProxyProtocol accept, uint8_t seed) {
  ProxyLayer layer(accept);
  metrics::ShardCounters counters;
  LayerRun run;
  uint32_t state = seed;
  size_t offset = 0;
  while (offset < bytes.size()) {
    size_t piece = bytes.size() - offset;
    if (seed != 0) {
      state = state * 1103515245 + 12345;
      piece = std::min(piece, size_t{1} + (state >> 16) % 24);
    }
    ByteBuffer down;
    run.result = layer.Receive(bytes.subspan(offset, piece), run.up, down, run.peer, counters);
    FUZZ_CHECK(down.empty());
    offset += piece;
    if (run.result == net::TransportLayer::Result::kClose) break;
    if (!layer.open()) FUZZ_CHECK(layer.memory_bytes() <= 2 * kMaxHeaderBytes);
  }
  run.open = layer.open();
  if (run.open) FUZZ_CHECK(layer.memory_bytes() == 0);
  return run;
}

void CheckLayer(std::span<const uint8_t> bytes, ProxyProtocol accept, uint8_t seed) {
  const LayerRun once = RunLayer(bytes, accept, 0);
  const LayerRun pieces = RunLayer(bytes, accept, seed | 1);
  FUZZ_CHECK(once.result == pieces.result);
  FUZZ_CHECK(once.open == pieces.open);
  FUZZ_CHECK(once.up == pieces.up);
  FUZZ_CHECK(SameAddress(once.peer.source, pieces.peer.source));
  FUZZ_CHECK(once.peer.tls_description == pieces.peer.tls_description);
  const ParseResult parsed = ParseHeader(bytes, accept);
  FUZZ_CHECK(once.open == (parsed.status == Status::kDone));
  if (once.open) {
    FUZZ_CHECK(once.up.size() == bytes.size() - parsed.header.size);
    FUZZ_CHECK(std::equal(once.up.begin(), once.up.end(), bytes.begin() + parsed.header.size));
  } else {
    FUZZ_CHECK(once.up.empty());
  }
}

}  // namespace
}  // namespace ringmq::proxy

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringmq::ProxyProtocol;
  if (size == 0 || size > 3 * ringmq::proxy::kMaxHeaderBytes) return 0;
  const uint8_t control = data[0];
  const ProxyProtocol modes[] = {ProxyProtocol::kV1, ProxyProtocol::kV2, ProxyProtocol::kAny,
                                 ProxyProtocol::kAny};
  const ProxyProtocol accept = modes[control & 3];
  const std::span<const uint8_t> bytes(data + 1, size - 1);
  ringmq::proxy::CheckParser(bytes, accept);
  ringmq::proxy::CheckLayer(bytes, accept, static_cast<uint8_t>(control >> 2));
  return 0;
}
