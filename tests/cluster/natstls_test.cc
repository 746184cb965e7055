// natstls lane: the NATS link's part of TLS and nkey credentials (cluster/nats_link.h "TLS",
// cluster/nkey.h). The shard's TLS handshake itself runs against real nats-servers in
// tests/integration/test_cluster_tls.py.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "cluster/nats_link.h"
#include "cluster/nkey.h"

namespace ringmq::cluster {
namespace {

std::vector<uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }

std::vector<uint8_t> FromHex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// An nkey string for `raw` under `prefix` bytes, built with the library's own pieces.
std::string Encode(std::vector<uint8_t> prefix, const std::vector<uint8_t>& raw) {
  prefix.insert(prefix.end(), raw.begin(), raw.end());
  const uint16_t crc = NkeyCrc16(prefix);
  prefix.push_back(static_cast<uint8_t>(crc & 0xff));
  prefix.push_back(static_cast<uint8_t>(crc >> 8));
  return Base32Encode(prefix);
}

// RFC 8032 §7.1, TEST 1: the secret key, its public key and the signature of the empty message.
constexpr std::string_view kRfc8032Secret =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kRfc8032Public =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr std::string_view kRfc8032Signature =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b";
// A user seed's prefix bytes: (18 << 3) | ((20 << 3) >> 5), ((20 << 3) & 31) << 3.
const std::vector<uint8_t> kUserSeedPrefix = {(18 << 3) | ((20 << 3) >> 5),
                                              static_cast<uint8_t>(((20 << 3) & 31) << 3)};

TEST(NkeyEncoding, Crc16XmodemAndRfc4648Vectors) {
  EXPECT_EQ(NkeyCrc16(Bytes("123456789")), 0x31C3);  // CRC-16/XMODEM check value
  EXPECT_EQ(NkeyCrc16({}), 0);
  // RFC 4648 §10, without padding.
  EXPECT_EQ(Base32Encode(Bytes("f")), "MY");
  EXPECT_EQ(Base32Encode(Bytes("foob")), "MZXW6YQ");
  EXPECT_EQ(Base32Encode(Bytes("foobar")), "MZXW6YTBOI");
  std::string decoded;
  ASSERT_TRUE(Base32Decode("MZXW6YTBOI", decoded));
  EXPECT_EQ(decoded, "foobar");
  EXPECT_FALSE(Base32Decode("mzxw", decoded)) << "lower case is not the alphabet";
  EXPECT_FALSE(Base32Decode("MZ1", decoded));
  EXPECT_FALSE(Base32Decode("MZ", decoded)) << "non-zero trailing bits";
  // RFC 4648 §10 base64 vectors in the URL alphabet, without padding.
  EXPECT_EQ(Base64UrlEncode(Bytes("fo")), "Zm8");
  EXPECT_EQ(Base64UrlEncode(Bytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode(std::vector<uint8_t>{0xfb, 0xff}), "-_8");
}

TEST(Nkey, SeedGivesTheRfc8032PublicKeyAndSignature) {
  const std::string seed = Encode(kUserSeedPrefix, FromHex(kRfc8032Secret));
  ASSERT_EQ(seed.substr(0, 2), "SU");
  ASSERT_EQ(seed.size(), 58u);
  absl::StatusOr<Nkey> key = Nkey::FromSeed(seed);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->public_key(), Encode({20 << 3}, FromHex(kRfc8032Public)));
  EXPECT_EQ(key->public_key().size(), 56u);
  EXPECT_EQ(key->public_key()[0], 'U');
  EXPECT_EQ(key->Sign(""), Base64UrlEncode(FromHex(kRfc8032Signature)));
  EXPECT_EQ(key->Sign("").size(), 86u);  // 64 bytes, base64url without padding
  EXPECT_NE(key->Sign("nonce-1"), key->Sign("nonce-2"));
}

TEST(Nkey, BadSeedsAreRefused) {
  std::string seed = Encode(kUserSeedPrefix, FromHex(kRfc8032Secret));
  std::string corrupt = seed;
  corrupt[10] = corrupt[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Nkey::FromSeed(corrupt).status().message(), "nkey seed: bad checksum");
  // An account seed (type 0: "SA...") is not a user's.
  const std::vector<uint8_t> account_prefix = {18 << 3, 0};
  EXPECT_EQ(Nkey::FromSeed(Encode(account_prefix, FromHex(kRfc8032Secret))).status().message(),
            "nkey seed: not a user seed (SU...)");
  EXPECT_FALSE(Nkey::FromSeed("SUshort").ok());
  EXPECT_FALSE(Nkey::FromSeed("").ok());
}

TEST(Nkey, FileHoldsASeedOrACredsFile) {
  const std::string seed = Encode(kUserSeedPrefix, FromHex(kRfc8032Secret));
  const std::string path = ::testing::TempDir() + "/natstls_user.creds";
  {
    std::ofstream out(path);
    out << "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.e30.x\n"
           "------END NATS USER JWT------\n\n"
           "-----BEGIN USER NKEY SEED-----\n  "
        << seed << "  \n------END USER NKEY SEED------\n";
  }
  absl::StatusOr<Nkey> key = Nkey::FromFile(path);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->public_key(), Encode({20 << 3}, FromHex(kRfc8032Public)));
  {
    std::ofstream out(path);
    out << "no seed here\n";
  }
  EXPECT_EQ(Nkey::FromFile(path).status().message(),
            "nkey seed file " + path + ": no user seed (a line SU...)");
  EXPECT_FALSE(Nkey::FromFile(path + ".missing").ok());
}

// --- The link ---------------------------------------------------------------------------------

struct Sink : NatsLinkSink {
  std::vector<std::string> events;
  void OnReady(const nats::ServerInfo&) override { events.push_back("ready"); }
  void OnMessage(const NatsMessage&) override {}
  void OnDisconnected(DisconnectReason reason, std::string_view detail) override {
    events.push_back(std::string(DisconnectReasonName(reason)) + ": " + std::string(detail));
  }
  void OnServerError(std::string_view) override {}
};

class NatsLinkTlsTest : public ::testing::Test {
 protected:
  void Make(NatsLinkOptions options) {
    options.random_seed = 7;
    options.reconnect_jitter_percent = 0;
    absl::StatusOr<std::unique_ptr<NatsLink>> made = NatsLink::Create(std::move(options), &sink_);
    ASSERT_TRUE(made.ok()) << made.status();
    link_ = std::move(*made);
  }
  std::string Output() {
    std::string out;
    link_->TakeOutput(out);
    return out;
  }
  Sink sink_;
  std::unique_ptr<NatsLink> link_;
};

// The NATS client protocol's order: INFO in clear, then TLS, then CONNECT. The link leaves
// CONNECT + PING in its output for the shard to send once TLS is up; it never writes before
// INFO.
TEST_F(NatsLinkTlsTest, TlsOptionWantsTlsOnEveryServerAndConnectWaitsForInfo) {
  NatsLinkOptions options;
  options.urls = {"nats://u:p@a:1", "b:2"};
  options.tls = true;
  Make(options);
  link_->BeginConnect(0);
  EXPECT_TRUE(link_->tls_required());
  link_->OnTransportConnected(0);
  EXPECT_FALSE(link_->has_output()) << "nothing before INFO";
  link_->OnReceived(0, "INFO {\"tls_required\":true}\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kAwaitPong);
  const std::string out = Output();
  EXPECT_EQ(out.rfind("CONNECT {", 0), 0u) << out;
  EXPECT_NE(out.find("\"tls_required\":true"), std::string::npos) << out;
  EXPECT_NE(out.find("PING\r\n"), std::string::npos);
  link_->OnReceived(0, "PONG\r\n");
  EXPECT_TRUE(link_->ready());
}

TEST_F(NatsLinkTlsTest, ServerWithoutTlsIsLeftBeforeCredentialsGoOut) {
  NatsLinkOptions options;
  options.urls = {"tls://u:secret@a:1"};
  Make(options);
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {\"server_id\":\"S\"}\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_FALSE(link_->has_output()) << "no CONNECT: its password would go out in clear";
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0],
            "tls: TLS is configured but the NATS server a:1 offers none (INFO without "
            "tls_required or tls_available)");
  // A failed attempt: the back-off applies.
  EXPECT_EQ(link_->connect_at_ms(), 100u);
}

TEST_F(NatsLinkTlsTest, TlsFailureIsAFailedAttemptThatBacksOff) {
  NatsLinkOptions options;
  options.urls = {"tls://a:1"};
  Make(options);
  uint64_t now = 0;
  uint64_t previous_wait = 0;
  for (int attempt = 1; attempt <= 4; ++attempt) {
    link_->BeginConnect(now);
    link_->OnTransportConnected(now);
    link_->OnReceived(now, "INFO {\"tls_required\":true}\r\n");
    link_->OnTlsFailed(now, "TLS handshake failed: unknown_ca");
    EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
    EXPECT_EQ(sink_.events.back(), "tls: TLS handshake failed: unknown_ca");
    const uint64_t wait = link_->connect_at_ms() - now;
    EXPECT_GT(wait, previous_wait) << "attempt " << attempt;
    previous_wait = wait;
    now = link_->connect_at_ms();
  }
  EXPECT_EQ(link_->counters().connects, 0u);
  // Once the server is fixed, the link gets there.
  link_->BeginConnect(now);
  link_->OnTransportConnected(now);
  link_->OnReceived(now, "INFO {\"tls_required\":true}\r\nPONG\r\n");
  EXPECT_TRUE(link_->ready());
  EXPECT_EQ(link_->counters().connects, 1u);
}

TEST_F(NatsLinkTlsTest, NkeySignsTheNonceInConnect) {
  absl::StatusOr<Nkey> key = Nkey::FromSeed(Encode(kUserSeedPrefix, FromHex(kRfc8032Secret)));
  ASSERT_TRUE(key.ok());
  SharedCredentials credentials;
  credentials.Replace(std::make_unique<UserCredentials>(UserCredentials{.jwt = {}, .nkey = *key}), nullptr);
  NatsLinkOptions options;
  options.urls = {"a:1"};
  options.credentials = &credentials;
  Make(options);
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {\"auth_required\":true,\"nonce\":\"n0nce-XYZ\"}\r\n");
  const std::string out = Output();
  EXPECT_NE(out.find("\"nkey\":\"" + key->public_key() + "\",\"sig\":\"" + key->Sign("n0nce-XYZ") +
                     "\"}"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace ringmq::cluster
