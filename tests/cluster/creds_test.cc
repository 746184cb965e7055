// jwt lane: NATS user credentials (.creds) read for decentralized authentication
// (cluster/nkey.h "User credentials") and CONNECT's "jwt" + "sig" (the NATS client protocol's
// CONNECT section). The server's side runs in tests/integration/test_cluster_tls.py
// (nats-server in operator mode).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cluster/nats_link.h"
#include "cluster/nats_protocol.h"
#include "cluster/nkey.h"

namespace ringmq::cluster {
namespace {

// A user seed "SU..." for 32 bytes of `fill`, encoded with the library's own pieces.
std::string CredsTestSeed(uint8_t fill, uint8_t type = 20 << 3) {
  std::vector<uint8_t> bytes = {static_cast<uint8_t>((18 << 3) | (type >> 5)),
                                static_cast<uint8_t>((type & 31) << 3)};
  bytes.insert(bytes.end(), 32, fill);
  const uint16_t crc = NkeyCrc16(bytes);
  bytes.push_back(static_cast<uint8_t>(crc & 0xff));
  bytes.push_back(static_cast<uint8_t>(crc >> 8));
  return Base32Encode(bytes);
}

constexpr std::string_view kCredsTestJwt =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJl";

// A .creds file as nsc writes it (its comment text included), with `eol` line ends.
std::string CredsTestFile(std::string_view jwt, std::string_view seed,
                          std::string_view eol = "\n") {
  std::string text;
  auto line = [&](std::string_view l) { text.append(l).append(eol); };
  line("-----BEGIN NATS USER JWT-----");
  line(jwt);
  line("------END NATS USER JWT------");
  line("");
  line("************************* IMPORTANT *************************");
  line("NKEY Seed printed below can be used to sign and prove identity.");
  line("NKEYs are sensitive and should be treated as secrets.");
  line("");
  line("-----BEGIN USER NKEY SEED-----");
  line(seed);
  line("------END USER NKEY SEED------");
  line("");
  line("*************************************************************");
  return text;
}

TEST(UserCredentials, CredsFileGivesTheJwtAndTheSeedsKey) {
  const std::string seed = CredsTestSeed(7);
  absl::StatusOr<UserCredentials> creds = ParseCredentials(CredsTestFile(kCredsTestJwt, seed));
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->jwt, kCredsTestJwt);
  absl::StatusOr<Nkey> expected = Nkey::FromSeed(seed);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(creds->nkey.public_key(), expected->public_key());
  EXPECT_EQ(creds->nkey.Sign("nonce"), expected->Sign("nonce"));
}

TEST(UserCredentials, CrlfLineEndsAndOtherDashCountsAreAccepted) {
  const std::string seed = CredsTestSeed(9);
  absl::StatusOr<UserCredentials> crlf =
      ParseCredentials(CredsTestFile(kCredsTestJwt, seed, "\r\n"));
  ASSERT_TRUE(crlf.ok()) << crlf.status();
  EXPECT_EQ(crlf->jwt, kCredsTestJwt);
  // Markers of 3 dashes (the least NATS clients accept), indentation, no final line end.
  absl::StatusOr<UserCredentials> short_markers = ParseCredentials(
      "  ---BEGIN NATS USER JWT---\n" + std::string(kCredsTestJwt) + "\n---END---\n" +
      "---BEGIN USER NKEY SEED---\n\t" + seed + "\n------END USER NKEY SEED------");
  ASSERT_TRUE(short_markers.ok()) << short_markers.status();
  EXPECT_EQ(short_markers->jwt, kCredsTestJwt);
  EXPECT_EQ(short_markers->nkey.public_key(), crlf->nkey.public_key());
}

TEST(UserCredentials, PlainAndDecoratedSeedFilesHaveNoJwt) {
  const std::string seed = CredsTestSeed(3);
  absl::StatusOr<UserCredentials> plain = ParseCredentials("# node 1\n\n" + seed + "\n");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->jwt.empty());
  absl::StatusOr<UserCredentials> decorated = ParseCredentials(
      "-----BEGIN USER NKEY SEED-----\n" + seed + "\n------END USER NKEY SEED------\n");
  ASSERT_TRUE(decorated.ok()) << decorated.status();
  EXPECT_TRUE(decorated->jwt.empty());
  EXPECT_EQ(decorated->nkey.public_key(), plain->nkey.public_key());
}

TEST(UserCredentials, MissingBlocksAreRefused) {
  EXPECT_EQ(ParseCredentials("").status().message(), "no user seed (a line SU...)");
  EXPECT_EQ(ParseCredentials("-----BEGIN NATS USER JWT-----\n" + std::string(kCredsTestJwt) +
                             "\n------END NATS USER JWT------\n")
                .status()
                .message(),
            "a JWT block but no USER NKEY SEED block after it");
  // A marker line alone (no value line) is a malformed block, not a plain seed file.
  EXPECT_EQ(ParseCredentials("------\n\n------\n").status().message(),
            "the block opened on line 1 has no value line of [A-Za-z0-9_.=-]");
  EXPECT_EQ(ParseCredentials("-----BEGIN-----\nabc\nnot a marker\n").status().message(),
            "the block opened on line 1 is not closed by a line ---...---");
}

// Each truncation of a good file is refused, or (once the seed block's closing line is a
// marker, ---...---) reads the same JWT and seed: a cut file never yields other credentials.
TEST(UserCredentials, EveryTruncationIsRefusedOrReadsTheSameCredentials) {
  const std::string seed = CredsTestSeed(5);
  const std::string full = CredsTestFile(kCredsTestJwt, seed);
  absl::StatusOr<Nkey> expected = Nkey::FromSeed(seed);
  ASSERT_TRUE(expected.ok());
  const size_t close_begin = full.find(seed) + seed.size() + 1;  // the closing marker line
  const size_t close_end = full.find('\n', close_begin);
  size_t accepted = 0;
  for (size_t length = 0; length < full.size(); ++length) {
    const std::string_view closing =
        length <= close_begin
            ? std::string_view()
            : std::string_view(full).substr(close_begin, std::min(length, close_end) - close_begin);
    const bool whole = closing.size() >= 6 && closing.substr(0, 3) == "---" &&
                       closing.substr(closing.size() - 3) == "---";
    absl::StatusOr<UserCredentials> creds = ParseCredentials(full.substr(0, length));
    EXPECT_EQ(creds.ok(), whole) << length << ": " << creds.status();
    if (!creds.ok()) continue;
    ++accepted;
    EXPECT_EQ(creds->jwt, kCredsTestJwt) << length;
    EXPECT_EQ(creds->nkey.public_key(), expected->public_key()) << length;
  }
  // "------" (6 dashes, then "END..."), "...SEED---" to "...SEED-----" (3 cuts), then the
  // whole line and each length after it.
  EXPECT_EQ(accepted, 1 + 3 + (full.size() - close_end));
}

TEST(UserCredentials, WrongSeedPrefixAndBadSeedAreRefused) {
  const std::string account_seed = CredsTestSeed(1, 0 << 3);  // "SA...": an account seed
  ASSERT_EQ(account_seed.substr(0, 2), "SA");
  EXPECT_EQ(ParseCredentials(CredsTestFile(kCredsTestJwt, account_seed)).status().message(),
            "nkey seed: not a user seed (SU...)");
  std::string corrupt = CredsTestSeed(1);
  corrupt[10] = corrupt[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(ParseCredentials(CredsTestFile(kCredsTestJwt, corrupt)).status().message(),
            "nkey seed: bad checksum");
}

TEST(UserCredentials, JwtThatIsNotThreeBase64UrlPartsIsRefused) {
  const std::string seed = CredsTestSeed(4);
  auto error = [&](std::string_view jwt) {
    return std::string(ParseCredentials(CredsTestFile(jwt, seed)).status().message());
  };
  EXPECT_EQ(error("abc.def"), "the user JWT is not three parts header.claims.signature");
  EXPECT_EQ(error("a.b.c.d"), "the user JWT is not three parts header.claims.signature");
  EXPECT_EQ(error("a..c"), "the user JWT has an empty part");
  EXPECT_EQ(error("a.b=c.d"), "the user JWT is not base64url (RFC 7515 §7.1)");
  // A character outside the block value class ends the block's value line: not a block.
  EXPECT_EQ(error("a.b+c.d"), "the block opened on line 1 has no value line of [A-Za-z0-9_.=-]");
  EXPECT_EQ(error("a.b c.d"), "the block opened on line 1 has no value line of [A-Za-z0-9_.=-]");
  EXPECT_TRUE(ParseCredentials(CredsTestFile("aa==.bb=.cc", seed)).ok()) << "padded parts";
  EXPECT_EQ(error(std::string(kUserJwtBytesMax - 4, 'a') + ".b.c"), "");
  EXPECT_EQ(error(std::string(kUserJwtBytesMax - 3, 'a') + ".b.c"),
            "the user JWT is over 16384 bytes");
}

TEST(UserCredentials, FileOverTheBoundAndMissingFileAreRefusedNamingTheFile) {
  const std::string path = ::testing::TempDir() + "/jwt_lane_user.creds";
  {
    std::ofstream out(path, std::ios::binary);
    out << CredsTestFile(kCredsTestJwt, CredsTestSeed(6))
        << std::string(kCredentialsFileBytesMax, '\n');
  }
  EXPECT_EQ(ReadCredentialsFile(path).status().message(),
            "credentials file " + path + ": over 65536 bytes");
  {
    std::ofstream out(path, std::ios::binary);
    out << CredsTestFile(kCredsTestJwt, CredsTestSeed(6));
  }
  absl::StatusOr<UserCredentials> creds = ReadCredentialsFile(path);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->jwt, kCredsTestJwt);
  EXPECT_EQ(ReadCredentialsFile(path + ".missing").status().message(),
            "credentials file " + path + ".missing: unreadable");
}

// --- CONNECT ----------------------------------------------------------------------------------

// The NATS client protocol's CONNECT: with a user JWT, "jwt" and "sig"; "nkey" is not sent.
TEST(UserCredentialsConnect, JwtGoesWithSigAndWithoutNkey) {
  nats::ConnectOptions options;
  options.nkey = "UKEY";
  options.sig = "c2ln";
  options.jwt = "h.c.s";
  std::string out;
  ASSERT_TRUE(nats::AppendConnect(options, out).ok());
  EXPECT_NE(out.find(",\"jwt\":\"h.c.s\",\"sig\":\"c2ln\"}\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\"nkey\""), std::string::npos) << out;
  options.jwt = {};
  out.clear();
  ASSERT_TRUE(nats::AppendConnect(options, out).ok());
  EXPECT_NE(out.find(",\"nkey\":\"UKEY\",\"sig\":\"c2ln\"}\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\"jwt\""), std::string::npos) << out;
}

struct CredsTestSink : NatsLinkSink {
  void OnReady(const nats::ServerInfo&) override {}
  void OnMessage(const NatsMessage&) override {}
  void OnDisconnected(DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
};

TEST(UserCredentialsConnect, LinkSendsTheJwtAndTheNonceSignedByTheSeed) {
  absl::StatusOr<UserCredentials> creds =
      ParseCredentials(CredsTestFile(kCredsTestJwt, CredsTestSeed(8)));
  ASSERT_TRUE(creds.ok()) << creds.status();
  SharedCredentials credentials;
  credentials.Replace(std::make_unique<UserCredentials>(*creds), nullptr);
  NatsLinkOptions options;
  options.urls = {"a:1"};
  options.random_seed = 7;
  options.credentials = &credentials;
  CredsTestSink sink;
  absl::StatusOr<std::unique_ptr<NatsLink>> link = NatsLink::Create(std::move(options), &sink);
  ASSERT_TRUE(link.ok()) << link.status();
  (*link)->BeginConnect(0);
  (*link)->OnTransportConnected(0);
  (*link)->OnReceived(0, "INFO {\"auth_required\":true,\"nonce\":\"Xy-nonce_1\"}\r\n");
  std::string out;
  (*link)->TakeOutput(out);
  EXPECT_NE(out.find("\"jwt\":\"" + std::string(kCredsTestJwt) + "\",\"sig\":\"" +
                     creds->nkey.Sign("Xy-nonce_1") + "\"}\r\nPING\r\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("\"nkey\""), std::string::npos) << out;
}

// A user JWT renewed on SIGHUP (Broker::Reload replaces the shared credentials): the link's next
// CONNECT, after the server ended the connection with the expired one, carries the new JWT and
// a signature by the new seed; the connection already up is not touched.
TEST(UserCredentialsConnect, ReplacedCredentialsGoInTheNextConnect) {
  absl::StatusOr<UserCredentials> first =
      ParseCredentials(CredsTestFile(kCredsTestJwt, CredsTestSeed(8)));
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string renewed_jwt = std::string(kCredsTestJwt) + "x";
  absl::StatusOr<UserCredentials> second =
      ParseCredentials(CredsTestFile(renewed_jwt, CredsTestSeed(9)));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_NE(first->nkey.public_key(), second->nkey.public_key());
  SharedCredentials credentials;
  credentials.Replace(std::make_unique<UserCredentials>(*first), nullptr);
  NatsLinkOptions options;
  options.urls = {"a:1"};
  options.random_seed = 7;
  options.credentials = &credentials;
  CredsTestSink sink;
  absl::StatusOr<std::unique_ptr<NatsLink>> link = NatsLink::Create(std::move(options), &sink);
  ASSERT_TRUE(link.ok()) << link.status();
  (*link)->BeginConnect(0);
  (*link)->OnTransportConnected(0);
  (*link)->OnReceived(0, "INFO {\"auth_required\":true,\"nonce\":\"first\"}\r\nPONG\r\n");
  ASSERT_TRUE((*link)->ready());
  std::string out;
  (*link)->TakeOutput(out);
  EXPECT_NE(out.find("\"jwt\":\"" + std::string(kCredsTestJwt) + "\",\"sig\":\"" +
                     first->nkey.Sign("first") + "\"}"),
            std::string::npos)
      << out;

  credentials.Replace(std::make_unique<UserCredentials>(*second), nullptr);
  EXPECT_TRUE((*link)->ready());  // the connection up keeps going
  (*link)->OnReceived(1, "-ERR 'User Authentication Expired'\r\n");
  (*link)->OnTransportClosed(1, "eof");
  (*link)->BeginConnect((*link)->connect_at_ms());
  (*link)->OnTransportConnected((*link)->connect_at_ms());
  (*link)->OnReceived((*link)->connect_at_ms(),
                      "INFO {\"auth_required\":true,\"nonce\":\"second\"}\r\n");
  out.clear();
  (*link)->TakeOutput(out);
  EXPECT_NE(out.find("\"jwt\":\"" + renewed_jwt + "\",\"sig\":\"" +
                     second->nkey.Sign("second") + "\"}"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find(std::string(kCredsTestJwt) + "\""), std::string::npos) << out;
}

}  // namespace
}  // namespace ringmq::cluster
