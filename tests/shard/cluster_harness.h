// The cluster side of the Router harness (router_harness.h): a NatsLink per shard, brought to
// kReady with a server's bytes, whose sink hands what NATS delivers to the shard's Router, the
// way the shard's loop does (shard.cc). The tests of Router's cluster hooks read what the link
// would send (TakeOutput) and feed it what NATS would deliver (OnReceived).
//
// Thread safety: none, like the harness: the test's thread plays every shard.
#ifndef RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_
#define RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/nats_link.h"
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

}  // namespace ringmq::shard::harness

#endif  // RINGMQ_TESTS_SHARD_CLUSTER_HARNESS_H_
