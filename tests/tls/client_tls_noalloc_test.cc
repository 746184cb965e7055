// natstls lane: a client TLS connection made with ClientTlsOptions::keep_record_buffers (the
// cluster's NATS links, tls/client_context.h) encrypts and decrypts records without allocating
// a record buffer once open and warm: no operator new in TlsLayer::Send / Receive, and of
// OpenSSL's allocations (counted through CRYPTO_set_mem_functions) only its record layer's small
// WPACKET bookkeeping, a bounded number per record. The same loop with the record buffers
// released (the bridges' setting) allocates a 16 KiB+ buffer per record, which shows that the
// count can fail.
//
// Its own executable (tests/tls/meson.build): it replaces the global operator new and OpenSSL's
// allocator for the whole program.
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "../common/counting_new.h"
#include "listener/listener.h"
#include "test_pki.h"
#include "tls/client_context.h"
#include "tls/tls_layer.h"

using alloc_counting::counting;

namespace {

// OpenSSL's allocations while counting (also in `allocations`): how many, the largest, and
// where the first few were ("file:line size"), for failure messages.
std::atomic<size_t> crypto_allocations{0};
std::atomic<size_t> crypto_largest{0};
std::string crypto_sites;

void NoteCryptoAllocation(size_t size, const char* file, int line) {
  if (!counting.load(std::memory_order_relaxed)) return;
  alloc_counting::CountAllocation();
  crypto_allocations.fetch_add(1);
  if (size > crypto_largest.load()) crypto_largest.store(size);
  counting.store(false);  // the note's own allocation is not counted
  if (crypto_sites.size() < 300) {
    crypto_sites += std::string(file != nullptr ? file : "?") + ":" + std::to_string(line) + " " +
                    std::to_string(size) + "; ";
  }
  counting.store(true);
}
// tidy2 lane: what OpenSSL holds, in bytes (each block carries its size in a header).
std::atomic<int64_t> crypto_live_bytes{0};
constexpr size_t kHeaderBytes = alignof(std::max_align_t);

void* Track(void* block, size_t size) {
  if (block == nullptr) return nullptr;
  *static_cast<size_t*>(block) = size;
  crypto_live_bytes.fetch_add(static_cast<int64_t>(size));
  return static_cast<char*>(block) + kHeaderBytes;
}
// The block of `pointer` (null: none), its size taken off the live bytes.
void* Untrack(void* pointer) {
  if (pointer == nullptr) return nullptr;
  void* block = static_cast<char*>(pointer) - kHeaderBytes;
  crypto_live_bytes.fetch_sub(static_cast<int64_t>(*static_cast<size_t*>(block)));
  return block;
}
void* CountedCryptoMalloc(size_t size, const char* file, int line) {
  NoteCryptoAllocation(size, file, line);
  return Track(std::malloc(size + kHeaderBytes), size);
}
void* CountedCryptoRealloc(void* pointer, size_t size, const char* file, int line) {
  NoteCryptoAllocation(size, file, line);
  return Track(std::realloc(Untrack(pointer), size + kHeaderBytes), size);
}
void CryptoFree(void* pointer, const char*, int) { std::free(Untrack(pointer)); }

// Before main: OpenSSL accepts new functions only before its first allocation.
const bool kCryptoCounted =
    CRYPTO_set_mem_functions(CountedCryptoMalloc, CountedCryptoRealloc, CryptoFree) == 1;

}  // namespace

namespace ringmq::tls {
namespace {

using Result = net::TransportLayer::Result;

class ClientTlsNoAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kCryptoCounted) << "OpenSSL allocated before main";
    pki_.Issue("server", testing::Leaf("nats.test", "DNS:localhost"));
    ListenerConfig listener;
    listener.port = 4222;
    listener.certfile = pki_.Path("server.crt");
    listener.keyfile = pki_.Path("server.key");
    absl::StatusOr<std::shared_ptr<LayerFactory>> factory = LayerFactory::Create(listener);
    ASSERT_TRUE(factory.ok()) << factory.status();
    factory_ = *factory;
  }

  struct Counts {
    size_t send = 0;     // all allocations in the client's Send calls
    size_t receive = 0;  // in its Receive calls
    size_t operator_new = 0;
    size_t largest = 0;  // the largest OpenSSL allocation
  };

  // A client layer (record buffers kept, as the NATS links', or released, as the bridges') and
  // a server layer, with their buffers. Each of the client's calls goes through `client_call`
  // (a callable taking the call), so that a test can count or measure around it.
  struct Pair {
    std::unique_ptr<ClientContext> context;
    std::unique_ptr<TlsLayer> client;
    std::unique_ptr<net::TransportLayer> server;
    ByteBuffer client_down, client_up, server_down, server_up;
    net::PeerInfo client_peer, server_peer;
  };

  // Makes `pair` and runs the handshake; pair.client stays null if the context fails.
  template <typename ClientCall>
  void Connect(Pair& pair, bool keep_record_buffers, ClientCall client_call) {
    absl::StatusOr<std::unique_ptr<ClientContext>> context = ClientContext::Create(
        ClientTlsOptions{"test", pki_.ca_file(), "", "", false, keep_record_buffers});
    EXPECT_TRUE(context.ok()) << context.status();
    if (!context.ok()) return;
    pair.context = std::move(*context);
    client_call([&] { pair.client = pair.context->NewLayer("localhost"); });
    pair.server = factory_->Make();
    for (ByteBuffer* b : {&pair.client_down, &pair.client_up, &pair.server_down, &pair.server_up}) {
      b->reserve(1 << 16);
    }
    // The handshake: flights back and forth until both are open.
    client_call([&] {
      EXPECT_EQ(
          pair.client->Receive({}, pair.client_up, pair.client_down, pair.client_peer, counters_),
          Result::kOk);
    });
    for (int i = 0; i < 10 && !(pair.client->open() && pair.server->open()); ++i) {
      pair.server_down.clear();
      EXPECT_EQ(pair.server->Receive(pair.client_down, pair.server_up, pair.server_down,
                                     pair.server_peer, counters_),
                Result::kOk);
      pair.client_down.clear();
      client_call([&] {
        EXPECT_EQ(pair.client->Receive(pair.server_down, pair.client_up, pair.client_down,
                                       pair.client_peer, counters_),
                  Result::kOk);
      });
    }
    EXPECT_TRUE(pair.client->open() && pair.server->open());
  }

  // One round trip of a 1 KiB batch each way; the client's Send and Receive go through
  // `send_call` and `receive_call`.
  template <typename SendCall, typename ReceiveCall>
  void RoundTrip(Pair& pair, SendCall send_call, ReceiveCall receive_call) {
    static const std::string batch(1024, 'm');
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(batch.data()),
                                         batch.size());
    pair.client_down.clear();
    send_call([&] { pair.client->Send(bytes, pair.client_down); });
    pair.server_up.clear();
    pair.server_down.clear();
    EXPECT_EQ(pair.server->Receive(pair.client_down, pair.server_up, pair.server_down,
                                   pair.server_peer, counters_),
              Result::kOk);
    EXPECT_EQ(pair.server_up.size(), batch.size());
    pair.server->Send(bytes, pair.server_down);
    pair.client_up.clear();
    pair.client_down.clear();
    receive_call([&] {
      EXPECT_EQ(pair.client->Receive(pair.server_down, pair.client_up, pair.client_down,
                                     pair.client_peer, counters_),
                Result::kOk);
    });
    EXPECT_EQ(pair.client_up.size(), batch.size());
  }

  // Allocations of the client side's Send and Receive over `rounds` round trips of one 1 KiB
  // batch each way, after a warm-up.
  Counts ClientAllocations(bool keep_record_buffers, int rounds) {
    Counts counts;
    crypto_sites.clear();
    crypto_largest.store(0);
    const auto run = [](auto&& call) { call(); };
    Pair pair;
    Connect(pair, keep_record_buffers, run);
    if (pair.client == nullptr) return counts;
    for (int round = 0; round < 20; ++round) RoundTrip(pair, run, run);  // session tickets
    const auto counted = [&](size_t& total) {
      return [&total, &counts](auto&& call) {
        crypto_allocations.store(0);
        const size_t all = alloc_counting::AllocationsDuring(call);
        total += all;
        counts.operator_new += all - crypto_allocations.load();
      };
    };
    for (int round = 0; round < rounds; ++round) {
      RoundTrip(pair, counted(counts.send), counted(counts.receive));
    }
    counts.largest = crypto_largest.load();
    return counts;
  }

  testing::TestPki pki_;
  std::shared_ptr<LayerFactory> factory_;
  metrics::ShardCounters counters_;
};

// What OpenSSL 3.0 still allocates per record: the WPACKET bookkeeping of its record layer
// (crypto/packet.c, 40 bytes each; measured: 3 per record written, 1 per record read, for the
// header and the TLS 1.3 additional data); never a record buffer.
constexpr size_t kBookkeepingBytesMax = 64;
constexpr size_t kBookkeepingPerWriteMax = 3;
constexpr size_t kBookkeepingPerReadMax = 1;

TEST_F(ClientTlsNoAllocTest, KeptRecordBuffersAllocateOnlyOpenSslBookkeeping) {
  const int rounds = 200;
  const Counts counts = ClientAllocations(/*keep_record_buffers=*/true, rounds);
  EXPECT_EQ(counts.operator_new, 0u) << "ringmq's own code allocated";
  EXPECT_LE(counts.send, kBookkeepingPerWriteMax * rounds) << crypto_sites;
  EXPECT_LE(counts.receive, kBookkeepingPerReadMax * rounds) << crypto_sites;
  EXPECT_LE(counts.largest, kBookkeepingBytesMax) << "a record buffer: " << crypto_sites;
}

TEST_F(ClientTlsNoAllocTest, ReleasedRecordBuffersAllocateABufferEveryRecord) {
  // The control: SSL_MODE_RELEASE_BUFFERS frees the buffers after each record, so each Send
  // and each Receive allocates one again (16 KiB and more).
  const int rounds = 200;
  const Counts counts = ClientAllocations(/*keep_record_buffers=*/false, rounds);
  EXPECT_GE(counts.receive, static_cast<size_t>(rounds));
  EXPECT_GT(counts.send, static_cast<size_t>(rounds));
  EXPECT_GE(counts.largest, size_t{16} << 10);
}

// tidy2 lane: what OpenSSL holds for a client layer (its live bytes over the client's own calls:
// NewLayer, Receive, Send) stays within TlsLayer::memory_bytes(), the estimate the NATS links
// charge to max_memory with their buffers (Shard::ChargeNatsMemory): at every step of the
// handshake, and open after traffic, with the record buffers kept (the NATS links' setting)
// or released (the bridges').
struct Held {
  int64_t handshake_peak = 0;  // OpenSSL's live bytes for the client, at most, until open
  size_t handshake_reported = 0;
  int64_t open = 0;  // after the round trips
  size_t open_reported = 0;

  void Print(const char* setting) const {
    std::printf(
        "client layer, record buffers %s: handshake %lld bytes (reported %zu), open %lld "
        "(reported %zu)\n",
        setting, static_cast<long long>(handshake_peak), handshake_reported,
        static_cast<long long>(open), open_reported);
  }
};

class ClientTlsMemoryTest : public ClientTlsNoAllocTest {
 protected:
  Held ClientHeld(bool keep_record_buffers) {
    Held held;
    Pair pair;
    int64_t client_bytes = 0;
    const auto measured = [&](auto&& call) {
      const int64_t before = crypto_live_bytes.load();
      call();
      client_bytes += crypto_live_bytes.load() - before;
      if (pair.client != nullptr && !pair.client->open()) {
        held.handshake_peak = std::max(held.handshake_peak, client_bytes);
        held.handshake_reported = std::max(held.handshake_reported, pair.client->memory_bytes());
        EXPECT_LE(client_bytes, static_cast<int64_t>(pair.client->memory_bytes())) << "handshake";
      }
    };
    Connect(pair, keep_record_buffers, measured);
    if (pair.client == nullptr) return held;
    for (int round = 0; round < 20; ++round) RoundTrip(pair, measured, measured);
    held.open = client_bytes;
    held.open_reported = pair.client->memory_bytes();
    return held;
  }
};

TEST_F(ClientTlsMemoryTest, KeptRecordBuffersAreWithinTheReportedBytes) {
  const Held held = ClientHeld(/*keep_record_buffers=*/true);
  held.Print("kept");
  EXPECT_GT(held.open, static_cast<int64_t>(TlsLayer::kClientIdleBytes)) << "the record buffers";
  EXPECT_LE(held.open, static_cast<int64_t>(held.open_reported));
  EXPECT_LE(held.handshake_peak, static_cast<int64_t>(held.handshake_reported));
}

TEST_F(ClientTlsMemoryTest, ReleasedRecordBuffersAreWithinTheReportedBytes) {
  const Held held = ClientHeld(/*keep_record_buffers=*/false);
  held.Print("released");
  EXPECT_LE(held.open, static_cast<int64_t>(held.open_reported));
  EXPECT_EQ(held.open_reported, TlsLayer::kClientIdleBytes);
  EXPECT_LE(held.handshake_peak, static_cast<int64_t>(held.handshake_reported));
}

}  // namespace
}  // namespace ringmq::tls
