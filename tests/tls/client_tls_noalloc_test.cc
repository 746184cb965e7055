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

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "../common/counting_new.h"
#include "listener/listener.h"
#include "test_pki.h"
#include "tls/client_context.h"
#include "tls/tls_layer.h"

using alloc_counting::allocations;
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
void* CountedCryptoMalloc(size_t size, const char* file, int line) {
  NoteCryptoAllocation(size, file, line);
  return std::malloc(size);
}
void* CountedCryptoRealloc(void* pointer, size_t size, const char* file, int line) {
  NoteCryptoAllocation(size, file, line);
  return std::realloc(pointer, size);
}
void CryptoFree(void* pointer, const char*, int) { std::free(pointer); }

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

  // Allocations of the client side's Send and Receive over `rounds` round trips of one 1 KiB
  // batch each way, after a warm-up.
  Counts ClientAllocations(bool keep_record_buffers, int rounds) {
    Counts counts;
    crypto_sites.clear();
    crypto_largest.store(0);
    absl::StatusOr<std::unique_ptr<ClientContext>> context = ClientContext::Create(
        ClientTlsOptions{"test", pki_.ca_file(), "", "", false, keep_record_buffers});
    EXPECT_TRUE(context.ok()) << context.status();
    if (!context.ok()) return counts;
    std::unique_ptr<TlsLayer> client = (*context)->NewLayer("localhost");
    std::unique_ptr<net::TransportLayer> server = factory_->Make();
    ByteBuffer client_down, client_up, server_down, server_up;
    for (ByteBuffer* b : {&client_down, &client_up, &server_down, &server_up}) b->reserve(1 << 16);
    net::PeerInfo client_peer, server_peer;
    // The handshake: flights back and forth until both are open.
    EXPECT_EQ(client->Receive({}, client_up, client_down, client_peer, counters_), Result::kOk);
    for (int i = 0; i < 10 && !(client->open() && server->open()); ++i) {
      server_down.clear();
      EXPECT_EQ(server->Receive(client_down, server_up, server_down, server_peer, counters_),
                Result::kOk);
      client_down.clear();
      EXPECT_EQ(client->Receive(server_down, client_up, client_down, client_peer, counters_),
                Result::kOk);
    }
    EXPECT_TRUE(client->open() && server->open());
    const std::string batch(1024, 'm');
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(batch.data()),
                                         batch.size());
    for (int round = 0; round < 20 + rounds; ++round) {
      const bool measure = round >= 20;  // the first rounds carry the session tickets
      client_down.clear();
      allocations.store(0);
      crypto_allocations.store(0);
      counting.store(measure);
      client->Send(bytes, client_down);
      counting.store(false);
      counts.send += allocations.load();
      counts.operator_new += allocations.load() - crypto_allocations.load();
      server_up.clear();
      server_down.clear();
      EXPECT_EQ(server->Receive(client_down, server_up, server_down, server_peer, counters_),
                Result::kOk);
      EXPECT_EQ(server_up.size(), batch.size());
      server->Send(bytes, server_down);
      client_up.clear();
      client_down.clear();
      allocations.store(0);
      crypto_allocations.store(0);
      counting.store(measure);
      const Result result =
          client->Receive(server_down, client_up, client_down, client_peer, counters_);
      counting.store(false);
      counts.receive += allocations.load();
      counts.operator_new += allocations.load() - crypto_allocations.load();
      EXPECT_EQ(result, Result::kOk);
      EXPECT_EQ(client_up.size(), batch.size());
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

}  // namespace
}  // namespace ringmq::tls
