// cluster::NatsLink: every transition with a fake clock (the `now` passed in) and a seeded random
// source: pool and URL parsing, handshake (INFO -> CONNECT + PING -> PONG), keepalive and stale
// detection, resubscription, publishing bounds, -ERR policy, discovery and back-off
// (nats_link.h; the NATS client protocol reference, docs.nats.io "Client Protocol").
#include "cluster/nats_link.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace ringmq::cluster {
namespace {

constexpr std::string_view kConnectDefault =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,"
    "\"lang\":\"ringmq\",\"version\":\"0.1.0\",\"protocol\":1,\"echo\":false,"
    "\"headers\":true,\"no_responders\":true}\r\n";

struct RecordingSink : NatsLinkSink {
  std::vector<std::string> events;
  std::function<void(const NatsMessage&)> on_message;

  void OnReady(const nats::ServerInfo& info) override {
    events.push_back("ready " + info.server_id);
  }
  void OnMessage(const NatsMessage& m) override {
    events.push_back("msg " + std::string(m.subject) + " " + std::to_string(m.sid) + " [" +
                     std::string(m.reply) + "] [" + std::string(m.headers) + "] [" +
                     std::string(m.payload) + "]");
    if (on_message) on_message(m);
  }
  void OnDisconnected(DisconnectReason reason, std::string_view detail) override {
    events.push_back("down " + std::string(DisconnectReasonName(reason)) + " " +
                     std::string(detail));
  }
  void OnServerError(std::string_view text) override {
    events.push_back("error " + std::string(text));
  }
};

NatsLinkOptions Options(std::vector<std::string> urls) {
  NatsLinkOptions options;
  options.urls = std::move(urls);
  options.random_seed = 42;
  return options;
}

class NatsLinkTest : public ::testing::Test {
 protected:
  void Make(NatsLinkOptions options) {
    absl::StatusOr<std::unique_ptr<NatsLink>> made = NatsLink::Create(std::move(options), &sink_);
    ASSERT_TRUE(made.ok()) << made.status();
    link_ = std::move(*made);
  }

  std::string Output() {
    std::string out;
    link_->TakeOutput(out);
    return out;
  }

  // BeginConnect + transport up + INFO + PONG: returns what the link wrote.
  std::string Handshake(uint64_t now, std::string_view info = R"({"server_id":"S"})") {
    link_->BeginConnect(now);
    link_->OnTransportConnected(now);
    EXPECT_EQ(link_->state(), NatsLinkState::kAwaitInfo);
    link_->OnReceived(now, "INFO " + std::string(info) + "\r\n");
    EXPECT_EQ(link_->state(), NatsLinkState::kAwaitPong);
    link_->OnReceived(now, "PONG\r\n");
    EXPECT_EQ(link_->state(), NatsLinkState::kReady);
    return Output();
  }

  RecordingSink sink_;
  std::unique_ptr<NatsLink> link_;
};

TEST(NatsUrl, Forms) {
  absl::StatusOr<NatsServerAddress> a = ParseNatsUrl("nats://127.0.0.1:4223");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 4223);
  EXPECT_FALSE(a->tls);
  a = ParseNatsUrl("nats://u:p:w@host");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->user, "u");
  EXPECT_EQ(a->pass, "p:w");
  EXPECT_EQ(a->port, 4222);  // the default port
  a = ParseNatsUrl("tls://tok@[::1]:5000/");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->token, "tok");
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 5000);
  EXPECT_TRUE(a->tls);
  a = ParseNatsUrl("10.0.0.1:4224");  // INFO connect_urls form
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 4224);
  for (std::string_view bad :
       {"", "nats://", "http://h:1", "nats://h:", "nats://h:0", "nats://h:65536", "nats://h:x",
        "nats://@h", "nats://[::1", "nats://[::1]x", "nats://a b:1", "nats://h:1/path"}) {
    EXPECT_FALSE(ParseNatsUrl(bad).ok()) << bad;
  }
}

TEST(NatsLinkCreate, RefusesBadOptions) {
  RecordingSink sink;
  EXPECT_FALSE(NatsLink::Create(Options({}), &sink).ok());
  EXPECT_FALSE(NatsLink::Create(Options({"nats://h:x"}), &sink).ok());
  NatsLinkOptions options = Options({"h"});
  options.reconnect_wait_max_ms = 1;
  EXPECT_FALSE(NatsLink::Create(options, &sink).ok());
  options = Options({"a", "b"});
  options.servers_max = 1;
  EXPECT_FALSE(NatsLink::Create(options, &sink).ok());
  options = Options({"h"});
  options.max_pings_outstanding = 0;
  EXPECT_FALSE(NatsLink::Create(options, &sink).ok());
  absl::StatusOr<std::unique_ptr<NatsLink>> link =
      NatsLink::Create(Options({"nats://a:1", "a:1", "b:1"}), &sink);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ((*link)->server_count(), 2u);  // duplicates collapse
}

TEST_F(NatsLinkTest, HandshakeSendsConnectAndPingAfterInfoThenReadyOnPong) {
  Make(Options({"nats://127.0.0.1:4222"}));
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(link_->connect_at_ms(), 0u);
  const NatsServerAddress& server = link_->BeginConnect(1000);
  EXPECT_EQ(server.port, 4222);
  EXPECT_EQ(link_->state(), NatsLinkState::kConnecting);
  EXPECT_EQ(link_->next_deadline_ms(), 3000u);
  link_->OnTransportConnected(1010);
  EXPECT_FALSE(link_->has_output());  // the client speaks after INFO
  link_->OnReceived(1020, "INFO {\"server_id\":\"S\",\"max_payload\":100}\r\n");
  EXPECT_EQ(Output(), std::string(kConnectDefault) + "PING\r\n");
  EXPECT_FALSE(link_->ready());
  link_->OnReceived(1030, "PONG\r\n");
  EXPECT_TRUE(link_->ready());
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"ready S"}));
  EXPECT_EQ(link_->server_info().max_payload, 100);
  EXPECT_EQ(link_->next_deadline_ms(), 1030u + 120'000u);  // the first PING
  EXPECT_EQ(link_->counters().connects, 1u);
  EXPECT_EQ(link_->counters().reconnects, 0u);
}

TEST_F(NatsLinkTest, ConnectCarriesNameAndCredentialsFromUrlOrOptions) {
  NatsLinkOptions options = Options({"nats://alice:secret@h:1", "nats://h:2"});
  options.name = "node-1";
  options.auth_token = "T";
  Make(options);
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {}\r\n");
  std::string out = Output();
  EXPECT_NE(out.find("\"name\":\"node-1\",\"user\":\"alice\",\"pass\":\"secret\"}"),
            std::string::npos)
      << out;
  link_->OnTransportClosed(0, "eof");
  link_->BeginConnect(link_->connect_at_ms());
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {}\r\n");
  out = Output();
  EXPECT_NE(out.find("\"auth_token\":\"T\"}"), std::string::npos) << out;
  EXPECT_EQ(out.find("\"user\""), std::string::npos);
}

TEST_F(NatsLinkTest, TlsIsRequiredByTheUrlOrByInfo) {
  Make(Options({"tls://a:1", "nats://b:2"}));
  link_->BeginConnect(0);
  EXPECT_TRUE(link_->tls_required());
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {\"tls_available\":true}\r\n");
  EXPECT_NE(Output().find("\"tls_required\":true"), std::string::npos);
  link_->OnTransportClosed(0, "eof");
  link_->BeginConnect(link_->connect_at_ms());
  link_->OnTransportConnected(0);
  EXPECT_FALSE(link_->tls_required());
  link_->OnReceived(0, "INFO {\"tls_required\":true}\r\n");
  EXPECT_TRUE(link_->tls_required());
  EXPECT_NE(Output().find("\"tls_required\":true"), std::string::npos);
}

// nats-server 2.10's handshake_first: TLS from the first byte only where the configuration
// asks for TLS (a tls:// URL or options.tls), never because of an INFO (there is none yet).
TEST_F(NatsLinkTest, TlsFirstOnlyWhereTheConfigurationWantsTls) {
  NatsLinkOptions options = Options({"tls://a:1", "nats://b:2"});
  options.tls_handshake_first = true;
  Make(options);
  link_->BeginConnect(0);
  EXPECT_TRUE(link_->tls_first());
  link_->OnTransportConnected(0);
  link_->OnTransportClosed(0, "eof");
  link_->BeginConnect(link_->connect_at_ms());
  EXPECT_EQ(link_->current_server().host, "b");
  EXPECT_FALSE(link_->tls_first());  // b is nats:// and options.tls is off
  options.tls = true;
  Make(options);
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnTransportClosed(0, "eof");
  link_->BeginConnect(link_->connect_at_ms());
  EXPECT_EQ(link_->current_server().host, "b");
  EXPECT_TRUE(link_->tls_first());
  options.tls_handshake_first = false;
  Make(options);
  link_->BeginConnect(0);
  EXPECT_FALSE(link_->tls_first());
  EXPECT_TRUE(link_->tls_required());
}

TEST_F(NatsLinkTest, HandshakeTimeoutWithoutInfoOrPong) {
  NatsLinkOptions options = Options({"a:1", "b:2"});
  options.handshake_timeout_ms = 500;
  Make(options);
  link_->BeginConnect(0);
  link_->OnTimer(499);  // a connect that hangs counts too
  EXPECT_EQ(link_->state(), NatsLinkState::kConnecting);
  link_->OnTransportConnected(100);
  link_->OnTimer(500);
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(link_->current_server().host, "b");
  EXPECT_EQ(link_->counters().handshake_timeouts, 1u);
  // Waiting for PONG times out the same way.
  link_->BeginConnect(link_->connect_at_ms());
  link_->OnTransportConnected(1000);
  link_->OnReceived(1000, "INFO {}\r\n");
  link_->OnTimer(link_->connect_at_ms() + 499);
  EXPECT_EQ(link_->state(), NatsLinkState::kAwaitPong);
  link_->OnTimer(link_->next_deadline_ms());
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(link_->counters().handshake_timeouts, 2u);
  EXPECT_EQ(sink_.events.size(), 2u);
  EXPECT_EQ(sink_.events[0], "down handshake_timeout NATS handshake timed out");
}

TEST_F(NatsLinkTest, ServerPingIsAnsweredInEveryConnectedState) {
  Make(Options({"h"}));
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "PING\r\n");
  EXPECT_EQ(Output(), "PONG\r\n");
  link_->OnReceived(0, "INFO {}\r\nPING\r\n");
  EXPECT_EQ(Output(), std::string(kConnectDefault) + "PING\r\nPONG\r\n");
  link_->OnReceived(0, "PONG\r\nPING\r\n");
  EXPECT_EQ(Output(), "PONG\r\n");
  EXPECT_EQ(link_->counters().server_pings, 3u);
}

TEST_F(NatsLinkTest, KeepalivePingsAndStaleAfterMaxOutstanding) {
  NatsLinkOptions options = Options({"h"});
  options.ping_interval_ms = 1000;
  options.max_pings_outstanding = 2;
  Make(options);
  Handshake(0);
  link_->OnTimer(999);
  EXPECT_FALSE(link_->has_output());
  link_->OnTimer(1000);
  EXPECT_EQ(Output(), "PING\r\n");
  link_->OnReceived(1001, "PONG\r\n");  // answered: outstanding back to 0
  link_->OnTimer(2000);
  link_->OnTimer(3000);
  EXPECT_EQ(Output(), "PING\r\nPING\r\n");
  EXPECT_EQ(link_->counters().pings_sent, 3u);
  EXPECT_TRUE(link_->ready());
  link_->OnTimer(4000);  // two unanswered at the next interval: stale
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(link_->counters().stale, 1u);
  EXPECT_EQ(sink_.events.back(), "down stale NATS server did not answer PINGs");
  // After a connection that was ready, the next attempt is immediate.
  EXPECT_EQ(link_->connect_at_ms(), 4000u);
}

TEST_F(NatsLinkTest, OnePongAnswersOnePing) {
  NatsLinkOptions options = Options({"h"});
  options.ping_interval_ms = 1000;
  options.max_pings_outstanding = 2;
  Make(options);
  Handshake(0);
  link_->OnTimer(1000);
  link_->OnTimer(2000);
  link_->OnReceived(2001, "PONG\r\n");  // one of two
  link_->OnTimer(3000);                 // 2 outstanding again, not stale yet
  EXPECT_TRUE(link_->ready());
  link_->OnTimer(4000);
  EXPECT_FALSE(link_->ready());
}

TEST_F(NatsLinkTest, SubscriptionsAreSentAgainAfterEveryHandshakeBeforeHeldPublishes) {
  Make(Options({"a", "b"}));
  absl::StatusOr<uint64_t> s1 = link_->Subscribe("x.*", "");
  absl::StatusOr<uint64_t> s2 = link_->Subscribe("y.>", "grp");
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(*s1, 1u);
  EXPECT_EQ(*s2, 2u);
  EXPECT_EQ(link_->Publish("x.1", {}, "held"), PublishResult::kHeld);
  EXPECT_FALSE(link_->has_output());
  std::string out = Handshake(0);
  EXPECT_EQ(out, std::string(kConnectDefault) +
                     "PING\r\nSUB x.* 1\r\nSUB y.> grp 2\r\nPUB x.1 4\r\nheld\r\n");
  // While ready: SUB and UNSUB go out at once.
  absl::StatusOr<uint64_t> s3 = link_->Subscribe("z", "");
  ASSERT_TRUE(s3.ok());
  EXPECT_TRUE(link_->Unsubscribe(*s1));
  EXPECT_FALSE(link_->Unsubscribe(*s1));
  EXPECT_EQ(Output(), "SUB z 3\r\nUNSUB 1\r\n");
  // A reconnect (to the next server) sends the live ones again, in sid order.
  link_->OnTransportClosed(10, "eof");
  EXPECT_EQ(link_->current_server().host, "b");
  EXPECT_TRUE(link_->Unsubscribe(*s3));  // while down: simply not sent again
  out = Handshake(link_->connect_at_ms());
  EXPECT_EQ(out, std::string(kConnectDefault) + "PING\r\nSUB y.> grp 2\r\n");
  EXPECT_EQ(link_->counters().reconnects, 1u);
  EXPECT_EQ(link_->subscription_count(), 1u);
}

TEST_F(NatsLinkTest, InvalidSubscriptionsAreRefused) {
  Make(Options({"h"}));
  EXPECT_FALSE(link_->Subscribe("", "").ok());
  EXPECT_FALSE(link_->Subscribe("a b", "").ok());
  EXPECT_FALSE(link_->Subscribe("a", "q q").ok());
  EXPECT_EQ(link_->subscription_count(), 0u);
  Handshake(0);
  EXPECT_FALSE(link_->Subscribe("a..b", "").ok());
  EXPECT_FALSE(link_->has_output());
}

TEST_F(NatsLinkTest, MessagesReachTheSinkAndUnknownSidsAreCounted) {
  Make(Options({"h"}));
  ASSERT_TRUE(link_->Subscribe("a.*", "").ok());
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {}\r\nMSG a.b 1 2\r\nno\r\n");  // before ready: dropped
  link_->OnReceived(0,
                    "PONG\r\nMSG a.b 1 r.1 3\r\nabc\r\nHMSG a.c 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
                    "MSG a.d 9 1\r\nz\r\n");
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"ready ", "msg a.b 1 [r.1] [] [abc]",
                                                    "msg a.c 1 [] [NATS/1.0\r\n\r\n] [hi]"}));
  EXPECT_EQ(link_->counters().messages_in, 2u);
  EXPECT_EQ(link_->counters().bytes_in, 3u + 14u);
  EXPECT_EQ(link_->counters().messages_unknown_sid, 2u);
}

TEST_F(NatsLinkTest, PublishQueuedWhenReadyWithHeaders) {
  Make(Options({"h"}));
  Handshake(0);
  const nats::HeaderField fields[] = {{"Q", "1"}};
  EXPECT_EQ(link_->Publish("a.b", fields, "pl", "r"), PublishResult::kQueued);
  EXPECT_EQ(link_->Publish("a.b", {}, "x"), PublishResult::kQueued);
  EXPECT_EQ(Output(), "HPUB a.b r 18 20\r\nNATS/1.0\r\nQ: 1\r\n\r\npl\r\nPUB a.b 1\r\nx\r\n");
  EXPECT_EQ(link_->counters().messages_out, 2u);
  EXPECT_EQ(link_->counters().bytes_out, 20u + 1u);
}

TEST_F(NatsLinkTest, PublishRefusals) {
  Make(Options({"h"}));
  Handshake(0, R"({"server_id":"S","max_payload":10})");
  EXPECT_EQ(link_->Publish("a", {}, std::string(10, 'x')), PublishResult::kQueued);
  // Bound: the server's max_payload (it would close the connection otherwise).
  EXPECT_EQ(link_->Publish("a", {}, std::string(11, 'x')), PublishResult::kTooLarge);
  const nats::HeaderField fields[] = {{"K", "v"}};  // a 17-byte block
  EXPECT_EQ(link_->Publish("a", fields, ""), PublishResult::kTooLarge);
  EXPECT_EQ(link_->Publish("a b", {}, "x"), PublishResult::kInvalid);
  EXPECT_EQ(link_->Publish("a.*", {}, "x"), PublishResult::kInvalid);
  const nats::HeaderField bad[] = {{"K", "v\r\n"}};
  EXPECT_EQ(link_->Publish("a", bad, "x"), PublishResult::kInvalid);
  EXPECT_EQ(link_->counters().publishes_refused, 5u);
  EXPECT_EQ(link_->counters().messages_out, 1u);
  EXPECT_EQ(Output(), "PUB a 10\r\nxxxxxxxxxx\r\n");
}

// Bound: outbound_bytes_max, both while ready (output not yet taken) and while down (held).
TEST_F(NatsLinkTest, OutboundBoundRefusesBeyondItReadyOrDown) {
  NatsLinkOptions options = Options({"h"});
  options.outbound_bytes_max = 1000;
  Make(options);
  const std::string payload(90, 'p');
  size_t held = 0;
  while (link_->Publish("a", {}, payload) == PublishResult::kHeld) ++held;
  EXPECT_GT(held, 5u);
  EXPECT_LE(link_->pending_bytes(), 1000u);
  EXPECT_EQ(link_->Publish("a", {}, payload), PublishResult::kNoRoom);
  EXPECT_EQ(link_->counters().publishes_refused, 2u);
  std::string out = Handshake(0);
  // Held publishes are flushed into the output on ready; taking it frees room.
  EXPECT_EQ(link_->pending_bytes(), 0u);
  size_t queued = 0;
  while (link_->Publish("a", {}, payload) == PublishResult::kQueued) ++queued;
  EXPECT_EQ(queued, held);
  EXPECT_LE(link_->pending_bytes(), 1000u);
  Output();
  EXPECT_EQ(link_->Publish("a", {}, payload), PublishResult::kQueued);
}

// weak lane (issue 16): the link's buffers are charged to max_memory by their capacity, and
// while the budget is spent (set_memory_full) a publish may use the capacity the buffers hold
// but never grow them: refused with kNoRoom, counted apart.
TEST_F(NatsLinkTest, MemoryFullRefusesOnlyPublishesThatWouldGrowTheBuffers) {
  Make(Options({"h"}));
  const size_t idle = link_->buffer_capacity_bytes();
  Handshake(0);
  const std::string payload(1000, 'p');
  for (int i = 0; i < 8; ++i) ASSERT_EQ(link_->Publish("a", {}, payload), PublishResult::kQueued);
  EXPECT_GE(link_->buffer_capacity_bytes(), idle + 8000) << "the output's growth is visible";
  std::string taken;
  link_->TakeOutput(taken);  // the shard's send buffer takes the bytes; capacity moves with them
  // The output now has the (empty) buffer swapped in: no capacity to publish into.
  link_->set_memory_full(true);
  EXPECT_EQ(link_->Publish("a", {}, payload), PublishResult::kNoRoom);
  EXPECT_EQ(link_->counters().publishes_refused_memory, 1u);
  EXPECT_EQ(link_->counters().publishes_refused, 1u);
  // The send is done: the shard's next TakeOutput swaps its emptied buffer (~8 KB of
  // capacity) back into the link.
  taken.clear();
  link_->TakeOutput(taken);
  const size_t capacity = link_->buffer_capacity_bytes();
  size_t accepted = 0;
  while (link_->Publish("a", {}, payload) == PublishResult::kQueued) ++accepted;
  EXPECT_GE(accepted, 7u) << "the capacity held is used";
  EXPECT_EQ(link_->buffer_capacity_bytes(), capacity) << "and never grown";
  EXPECT_EQ(link_->counters().publishes_refused_memory, 2u);
  link_->set_memory_full(false);
  EXPECT_EQ(link_->Publish("a", {}, payload), PublishResult::kQueued) << "grows again";
  // Held (link down) publishes follow the same rule.
  link_->OnTransportClosed(1, "reset");
  link_->set_memory_full(true);
  EXPECT_EQ(link_->Publish("a", {}, payload), PublishResult::kNoRoom);
  EXPECT_EQ(link_->counters().publishes_refused_memory, 3u);
}

TEST_F(NatsLinkTest, OutputNotTakenIsDiscardedAndCountedOnDisconnect) {
  Make(Options({"h"}));
  Handshake(0);
  ASSERT_EQ(link_->Publish("a", {}, "12345"), PublishResult::kQueued);
  const size_t bytes = link_->pending_bytes();
  link_->OnTransportClosed(1, "reset");
  EXPECT_EQ(link_->pending_bytes(), 0u);
  EXPECT_EQ(link_->counters().bytes_discarded, bytes);
  EXPECT_EQ(sink_.events.back(), "down transport_closed reset");
  link_->OnReceived(2, "MSG a 1 1\r\nx\r\n");  // the old socket's bytes: ignored
  EXPECT_EQ(link_->counters().messages_unknown_sid + link_->counters().messages_in, 0u);
}

TEST_F(NatsLinkTest, PermissionErrorsAreReportedAndTheConnectionStays) {
  Make(Options({"h"}));
  Handshake(0);
  link_->OnReceived(1,
                    "-ERR 'Permissions Violation for Subscription to \"x\"'\r\n"
                    "-ERR 'Invalid Subject'\r\n");
  EXPECT_TRUE(link_->ready());
  EXPECT_EQ(sink_.events, (std::vector<std::string>{
                              "ready S", "error Permissions Violation for Subscription to \"x\"",
                              "error Invalid Subject"}));
  EXPECT_EQ(link_->counters().server_errors, 2u);
}

TEST_F(NatsLinkTest, AuthorizationViolationEndsTheConnectionAndBacksOff) {
  NatsLinkOptions options = Options({"a", "b"});
  options.reconnect_jitter_percent = 0;
  Make(options);
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {\"auth_required\":true}\r\n-ERR 'Authorization Violation'\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(sink_.events.back(), "down authorization Authorization Violation");
  EXPECT_EQ(link_->connect_at_ms(), 100u);  // first failed attempt: the initial wait
  EXPECT_EQ(link_->current_server().host, "b");
  EXPECT_EQ(link_->server_count(), 2u);  // configured servers stay
  link_->BeginConnect(100);
  link_->OnTransportConnected(100);
  link_->OnReceived(100, "-ERR 'Unknown Protocol Operation'\r\n");
  EXPECT_EQ(sink_.events.back(), "down server_error Unknown Protocol Operation");
  EXPECT_EQ(link_->connect_at_ms(), 300u);
}

TEST_F(NatsLinkTest, FatalErrorSplitAcrossReadsEndsTheConnectionOnce) {
  Make(Options({"h"}));
  Handshake(0);
  const std::string bytes = "-ERR 'Stale Connection'\r\nPING\r\nMSG a 1 1\r\nx\r\n";
  for (char c : bytes) link_->OnReceived(1, std::string_view(&c, 1));
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(sink_.events,
            (std::vector<std::string>{"ready S", "down server_error Stale Connection"}));
  EXPECT_FALSE(link_->has_output());
  Handshake(link_->connect_at_ms());  // the parser starts clean on the next connection
  EXPECT_EQ(sink_.events.back(), "ready S");
}

TEST_F(NatsLinkTest, ExponentialBackoffIsCappedAndResetByReady) {
  NatsLinkOptions options = Options({"a", "b", "c"});
  options.reconnect_jitter_percent = 0;
  options.reconnect_wait_initial_ms = 100;
  options.reconnect_wait_max_ms = 1000;
  Make(options);
  std::vector<uint64_t> waits;
  uint64_t now = 0;
  for (int i = 0; i < 7; ++i) {
    link_->BeginConnect(now);
    link_->OnTransportClosed(now, "refused");
    waits.push_back(link_->connect_at_ms() - now);
    now = link_->connect_at_ms();
  }
  EXPECT_EQ(waits, (std::vector<uint64_t>{100, 200, 400, 800, 1000, 1000, 1000}));
  EXPECT_EQ(sink_.events.back(), "down connect_failed refused");
  Handshake(now);
  link_->OnTransportClosed(now + 5, "eof");
  EXPECT_EQ(link_->connect_at_ms(), now + 5);  // ready reset the back-off
  link_->BeginConnect(now + 5);
  link_->OnTransportClosed(now + 5, "refused");
  EXPECT_EQ(link_->connect_at_ms(), now + 5 + 100);
}

TEST_F(NatsLinkTest, JitterStaysWithinItsBoundAndFollowsTheSeed) {
  auto waits = [](uint64_t seed) {
    RecordingSink sink;
    NatsLinkOptions options = Options({"a"});
    options.random_seed = seed;
    options.reconnect_jitter_percent = 50;
    options.reconnect_wait_initial_ms = 1000;
    options.reconnect_wait_max_ms = 1000;
    std::unique_ptr<NatsLink> link = *NatsLink::Create(options, &sink);
    std::vector<uint64_t> result;
    uint64_t now = 0;
    for (int i = 0; i < 50; ++i) {
      link->BeginConnect(now);
      link->OnTransportClosed(now, "refused");
      result.push_back(link->connect_at_ms() - now);
      now = link->connect_at_ms();
    }
    return result;
  };
  const std::vector<uint64_t> a = waits(1);
  EXPECT_EQ(a, waits(1));
  EXPECT_NE(a, waits(2));
  for (uint64_t wait : a) {
    EXPECT_GE(wait, 500u);
    EXPECT_LE(wait, 1000u);
  }
  EXPECT_NE(*std::min_element(a.begin(), a.end()), *std::max_element(a.begin(), a.end()));
}

TEST_F(NatsLinkTest, DiscoveryAddsConnectUrlsWithCredentialsAndDropsFailingOnes) {
  NatsLinkOptions options = Options({"nats://u:p@127.0.0.1:4222"});
  options.discovered_failures_max = 2;
  Make(options);
  Handshake(0, R"({"server_id":"S","connect_urls":["127.0.0.1:4222","127.0.0.1:4223",)"
               R"("127.0.0.1:4224","bad:port:x"]})");
  EXPECT_EQ(link_->server_count(), 3u);
  EXPECT_EQ(link_->counters().servers_discovered, 2u);
  // An asynchronous INFO (a server joined) adds more.
  link_->OnReceived(1, "INFO {\"connect_urls\":[\"127.0.0.1:4225\"]}\r\n");
  EXPECT_EQ(link_->server_count(), 4u);
  EXPECT_TRUE(link_->ready());
  link_->OnTransportClosed(2, "eof");
  EXPECT_EQ(link_->current_server().port, 4223);
  EXPECT_EQ(link_->current_server().user, "u");  // inherited from the announcer
  EXPECT_EQ(link_->current_server().pass, "p");
  // 4223, 4224, 4225 refuse twice each: all three discovered servers are dropped.
  uint64_t now = 2;
  for (int i = 0; i < 8; ++i) {
    link_->BeginConnect(now);
    link_->OnTransportClosed(now, "refused");
    now = link_->connect_at_ms();
  }
  EXPECT_EQ(link_->server_count(), 1u);
  EXPECT_EQ(link_->counters().servers_dropped, 3u);
  EXPECT_EQ(link_->current_server().port, 4222);
}

// Bound: servers_max.
TEST_F(NatsLinkTest, DiscoveryStopsAtServersMax) {
  NatsLinkOptions options = Options({"h:1"});
  options.servers_max = 3;
  Make(options);
  Handshake(0, R"({"connect_urls":["h:2","h:3","h:4","h:5"]})");
  EXPECT_EQ(link_->server_count(), 3u);
  options.discover = false;
  Make(options);
  Handshake(0, R"({"connect_urls":["h:2"]})");
  EXPECT_EQ(link_->server_count(), 1u);
}

TEST_F(NatsLinkTest, ProtocolErrorsEndTheConnection) {
  Make(Options({"h"}));
  link_->BeginConnect(0);
  link_->OnTransportConnected(0);
  link_->OnReceived(0, "INFO {bad}\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_EQ(link_->counters().protocol_errors, 1u);
  Handshake(link_->connect_at_ms());
  link_->OnReceived(1, "HELLO\r\nPING\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
  EXPECT_FALSE(link_->has_output());  // nothing answered after the error
  EXPECT_EQ(link_->counters().protocol_errors, 2u);
  EXPECT_EQ(sink_.events.back().substr(0, 19), "down protocol_error");
}

// Bound: the INFO's max_payload becomes the parser's bound.
TEST_F(NatsLinkTest, MessageOverTheServersMaxPayloadIsAProtocolError) {
  Make(Options({"h"}));
  ASSERT_TRUE(link_->Subscribe("a", "").ok());
  Handshake(0, R"({"max_payload":4})");
  link_->OnReceived(1, "MSG a 1 4\r\nabcd\r\nMSG a 1 5\r\nabcde\r\n");
  EXPECT_EQ(link_->counters().messages_in, 1u);
  EXPECT_EQ(link_->state(), NatsLinkState::kWaiting);
}

TEST_F(NatsLinkTest, SinkMayPublishAndStopFromItsCallbacks) {
  Make(Options({"h"}));
  ASSERT_TRUE(link_->Subscribe("a", "").ok());
  Handshake(0);
  sink_.on_message = [&](const NatsMessage& m) {
    if (m.payload == "echo") {
      EXPECT_EQ(link_->Publish("b", {}, m.payload), PublishResult::kQueued);
    }
    if (m.payload == "stop") link_->Stop();
  };
  link_->OnReceived(1, "MSG a 1 4\r\necho\r\n");
  EXPECT_EQ(Output(), "PUB b 4\r\necho\r\n");
  link_->OnReceived(2, "MSG a 1 4\r\nstop\r\nMSG a 1 4\r\nlost\r\n");
  EXPECT_EQ(link_->state(), NatsLinkState::kStopped);
  EXPECT_EQ(link_->counters().messages_in, 2u);
  EXPECT_EQ(sink_.events.back(), "down stopped stopped");
  EXPECT_EQ(link_->next_deadline_ms(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(link_->Publish("a", {}, "x"), PublishResult::kNoRoom);
  EXPECT_FALSE(link_->Subscribe("a", "").ok());
}

TEST_F(NatsLinkTest, StopWhileWaitingSendsNoEvent) {
  Make(Options({"h"}));
  link_->Stop();
  EXPECT_EQ(link_->state(), NatsLinkState::kStopped);
  EXPECT_TRUE(sink_.events.empty());
}

TEST_F(NatsLinkTest, EveryByteSplitOfAHandshakeAndMessagesGivesTheSameEvents) {
  const std::string stream =
      "INFO {\"server_id\":\"S\"}\r\nPING\r\nPONG\r\nMSG a 1 3\r\nabc\r\n+OK\r\n"
      "HMSG a 1 r 12 13\r\nNATS/1.0\r\n\r\nd\r\n";
  std::vector<std::string> expected;
  for (size_t piece : {stream.size(), size_t{1}, size_t{2}, size_t{5}}) {
    sink_.events.clear();
    Make(Options({"h"}));
    ASSERT_TRUE(link_->Subscribe("a", "").ok());
    link_->BeginConnect(0);
    link_->OnTransportConnected(0);
    for (size_t i = 0; i < stream.size(); i += piece) {
      link_->OnReceived(0, std::string_view(stream).substr(i, piece));
    }
    EXPECT_EQ(Output(), std::string(kConnectDefault) + "PING\r\nPONG\r\nSUB a 1\r\n");
    if (expected.empty()) expected = sink_.events;
    EXPECT_EQ(sink_.events, expected) << piece;
  }
  EXPECT_EQ(expected.size(), 3u);
}

}  // namespace
}  // namespace ringmq::cluster
