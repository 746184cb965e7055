// The cluster side of the Router harness (router_harness.h): a NatsLink per shard, brought to
// kReady with a server's bytes, whose sink hands what NATS delivers to the shard's Router, the
// way the shard's loop does (shard.cc). The tests of Router's cluster hooks read what the link
// would send (TakeOutput) and feed it what NATS would deliver (OnReceived). ClusterRouterTest
// is the fixture they share: the harness, its links, and the acks layer's fixed sids.
//
// Thread safety: none, like the harness: the test's thread plays every shard.
#ifndef RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_
#define RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cluster/nats_link.h"
#include "ringmq/config.h"
#include "router_harness.h"  // beside this file
#include "shard/cluster_acks.h"
#include "shard/router.h"

namespace ringmq::shard::harness {

// Hands a link's messages to a Router: to OnClusterMessage for the main link, to
// OnClusterShareMessage for the link of the shared subscriptions (AttachClusterShares).
class RouterSink final : public cluster::NatsLinkSink {
 public:
  enum class Feed { kMain, kShares };

  explicit RouterSink(Router& router, Feed feed = Feed::kMain) : router_(router), feed_(feed) {}
  void OnReady(const cluster::nats::ServerInfo&) override {}
  void OnMessage(const cluster::NatsMessage& message) override {
    if (feed_ == Feed::kShares) {
      router_.OnClusterShareMessage(message);
    } else {
      router_.OnClusterMessage(message);
    }
  }
  void OnDisconnected(cluster::DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}

 private:
  Router& router_;
  const Feed feed_;
};

// The ready handshake of the NATS client protocol (docs.nats.io, "Client Protocol": the server's
// INFO, the client's CONNECT and PING, the server's PONG): `link` connects, reads an INFO with
// headers on and `max_payload`, then the PONG, and must then be ready. What it sent until then
// (CONNECT and PING) is taken and dropped, so that the test's first read starts after it.
// A fatal gtest failure if the link is not ready: callers wrap it in ASSERT_NO_FATAL_FAILURE.
inline void MakeReady(cluster::NatsLink& link, uint32_t max_payload) {
  link.BeginConnect(0);
  link.OnTransportConnected(0);
  link.OnReceived(0, "INFO {\"server_id\":\"s\",\"headers\":true,\"max_payload\":" +
                         std::to_string(max_payload) + "}\r\n");
  link.OnReceived(0, "PONG\r\n");
  ASSERT_TRUE(link.ready());
  std::string out;
  link.TakeOutput(out);  // CONNECT and PING
}

// Appends to `links` a ready link (MakeReady) whose sink, appended to `sinks`, feeds `router`.
// Callers wrap it in ASSERT_NO_FATAL_FAILURE and then attach links.back() to the router.
inline void AddReadyLink(Router& router, RouterSink::Feed feed, uint32_t max_payload,
                         std::vector<std::unique_ptr<RouterSink>>& sinks,
                         std::vector<std::unique_ptr<cluster::NatsLink>>& links) {
  sinks.push_back(std::make_unique<RouterSink>(router, feed));
  cluster::NatsLinkOptions options;
  options.urls = {"nats://127.0.0.1:4222"};
  auto link = cluster::NatsLink::Create(options, sinks.back().get());
  ASSERT_TRUE(link.ok()) << link.status();
  links.push_back(std::move(*link));
  MakeReady(*links.back(), max_payload);
}

// What NATS delivers for a message with headers (NATS client protocol, "HMSG"): subject, sid,
// the reply subject if any, the header block's size and the total size, then the block
// ("NATS/1.0" and `headers`, each line ending in CRLF) and the payload.
inline std::string HmsgBytes(std::string_view subject, uint64_t sid, std::string_view reply,
                             std::string_view headers, std::string_view payload) {
  const std::string block = "NATS/1.0\r\n" + std::string(headers) + "\r\n";
  return "HMSG " + std::string(subject) + " " + std::to_string(sid) + " " +
         (reply.empty() ? "" : std::string(reply) + " ") + std::to_string(block.size()) + " " +
         std::to_string(block.size() + payload.size()) + "\r\n" + block + std::string(payload) +
         "\r\n";
}

// What NATS delivers for a message without headers (NATS client protocol, "MSG").
inline std::string MsgBytes(std::string_view subject, uint64_t sid, std::string_view payload) {
  return "MSG " + std::string(subject) + " " + std::to_string(sid) + " " +
         std::to_string(payload.size()) + "\r\n" + std::string(payload) + "\r\n";
}

// The subscriptions StartClusterAcks makes first on a shard's main link, in this order
// (router_cluster_acks.cc): the sids a test delivers the acks layer's messages to.
inline constexpr uint64_t kAnnounceSid = 1;    // $RINGMQ.interest.a.>
inline constexpr uint64_t kAskAllSid = 2;      // $RINGMQ.interest.q.all
inline constexpr uint64_t kAskSid = 3;         // $RINGMQ.interest.q.<node>.<shard>
inline constexpr uint64_t kAckSid = 4;         // $RINGMQ.ack.<node>.<shard>
inline constexpr uint64_t kRetransmitSid = 5;  // $RINGMQ.rt.<node>.<shard>

// The ids (Ringmq-Id header values) of the messages in a link's output, in order.
inline std::vector<std::string> MessageIds(const std::string& output) {
  std::vector<std::string> ids;
  static const std::regex kId("Ringmq-Id: ([0-9]+)");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), kId);
       it != std::sregex_iterator(); ++it) {
    ids.push_back((*it)[1]);
  }
  return ids;
}

// One PUB or HPUB a link would send (NATS client protocol: "PUB <subject> [reply] <size>",
// "HPUB <subject> [reply] <header size> <total size>"); for an HPUB, `payload` holds the header
// block and the payload together.
struct LinkPub {
  bool headers = false;
  std::string subject;
  std::string reply;
  std::string payload;
};

// The PUBs and HPUBs in a link's output, in order; `subs` (if not null) gets the SUB lines.
inline std::vector<LinkPub> LinkPubs(std::string_view output,
                                     std::vector<std::string>* subs = nullptr) {
  std::vector<LinkPub> pubs;
  while (!output.empty()) {
    const size_t end = output.find("\r\n");
    if (end == std::string_view::npos) break;
    const std::string_view line = output.substr(0, end);
    output.remove_prefix(end + 2);
    if (line.starts_with("SUB ") && subs != nullptr) subs->emplace_back(line);
    const bool hpub = line.starts_with("HPUB ");
    if (!hpub && !line.starts_with("PUB ")) continue;  // SUB, UNSUB, PING, ...
    std::vector<std::string_view> tokens;
    for (std::string_view rest = line; !rest.empty();) {
      const size_t space = rest.find(' ');
      tokens.push_back(rest.substr(0, space));
      rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    }
    const size_t sizes = hpub ? 2 : 1;  // the tokens after the subject and reply
    EXPECT_GE(tokens.size(), 2 + sizes) << line;
    if (tokens.size() < 2 + sizes) break;
    const size_t size = std::stoul(std::string(tokens.back()));
    pubs.push_back(LinkPub{hpub, std::string(tokens[1]),
                           tokens.size() > 2 + sizes ? std::string(tokens[2]) : std::string(),
                           std::string(output.substr(0, size))});
    output.remove_prefix(std::min(output.size(), size + 2));
  }
  return pubs;
}

// The fixture of the tests of Router's cluster hooks: a RouterHarness whose shards each have a
// ready main link (and a share link) attached. A test sets config_ and ack_options_, then builds
// the shards with AddShards in its SetUp.
class ClusterRouterTest : public ::testing::Test {
 protected:
  struct Shards {
    uint32_t count = 2;
    uint32_t max_payload = 65536;  // the servers' INFO
    std::string_view node = "node-a";
    bool acks = false;    // StartClusterAcks(ack_options_) after AttachCluster
    bool shares = false;  // a share link, attached after the acks layer (shard.cc's order)
  };

  // A fatal gtest failure if a link is not ready: callers wrap it in ASSERT_NO_FATAL_FAILURE.
  void AddShards(const Shards& shards) {
    config_.threads = shards.count;
    harness_ = std::make_unique<RouterHarness>(config_, shards.count);
    links_per_shard_ = shards.shares ? 2 : 1;
    for (uint32_t shard = 0; shard < shards.count; ++shard) {
      Router& router = harness_->router(shard);
      ASSERT_NO_FATAL_FAILURE(
          AddReadyLink(router, RouterSink::Feed::kMain, shards.max_payload, sinks_, links_));
      if (shards.shares) {
        ASSERT_NO_FATAL_FAILURE(
            AddReadyLink(router, RouterSink::Feed::kShares, shards.max_payload, sinks_, links_));
      }
      router.AttachCluster(&Main(shard), std::string(shards.node), "");
      if (shards.acks) router.StartClusterAcks(ack_options_);
      if (shards.shares) router.AttachClusterShares(&Share(shard));
    }
  }

  cluster::NatsLink& Main(uint32_t shard) { return *links_[links_per_shard_ * shard]; }
  cluster::NatsLink& Share(uint32_t shard) { return *links_[links_per_shard_ * shard + 1]; }

  // What the link would send since the last call.
  static std::string Output(cluster::NatsLink& link) {
    std::string out;
    link.TakeOutput(out);
    return out;
  }
  std::string Output(uint32_t shard) { return Output(Main(shard)); }

  // What the shard's loop does once per iteration for the acks, then the harness's flush; what
  // the main link would send.
  std::string Step(uint32_t shard) {
    harness_->router(shard).ClusterAckStep();
    harness_->Settle();
    return Output(shard);
  }

  // NATS delivers `bytes` to the link at the harness's time; the shards settle.
  void Deliver(cluster::NatsLink& link, std::string_view bytes) {
    link.OnReceived(harness_->now_ms(), bytes);
    harness_->Settle();
  }
  void Deliver(uint32_t shard, std::string_view bytes) { Deliver(Main(shard), bytes); }

  // A message with headers and no reply subject (HmsgBytes).
  static std::string Hmsg(std::string_view subject, uint64_t sid, std::string_view headers,
                          std::string_view payload) {
    return HmsgBytes(subject, sid, "", headers, payload);
  }

  Config config_;
  ClusterAckOptions ack_options_;
  std::unique_ptr<RouterHarness> harness_;
  std::vector<std::unique_ptr<RouterSink>> sinks_;
  std::vector<std::unique_ptr<cluster::NatsLink>> links_;
  uint32_t links_per_shard_ = 1;
};

// The PUBLISHes a recording 5.0 client read.
inline std::vector<mqtt::Publish> Publishes5(const Client& client) {
  std::vector<mqtt::Publish> out;
  for (const Bytes& bytes : client.recorded) {
    const mqtt::Frame frame =
        mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, mqtt::ProtocolLevel::kMqtt5);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
        mqtt::ProtocolLevel::kMqtt5);
    EXPECT_TRUE(packet.ok());
    if (packet.ok()) out.push_back(std::get<mqtt::Publish>(packet.value()));
  }
  return out;
}

}  // namespace ringmq::shard::harness

#endif  // RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_
