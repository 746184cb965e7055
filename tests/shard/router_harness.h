// A sans-IO harness for Router tests: a broker of N shards played on the test's thread.
//
// Each shard is a real Router with its counters and ConnectionContext, over one SharedState,
// with FakeServices standing in for the event loop: it records hand-offs, dirty connections and
// doorbells, and reads a clock the test moves by hand. Clients are real net::Connections fed the
// bytes a client would send (OnReceive); what the broker sends them is read with NextSend and
// OnSent, the way a completed io_uring send reports it. RunIteration does what Shard::Loop does
// between its waits, shard after shard: DrainMailboxes, RunJobs, Router::Flush, the connection
// flush (buffer charges), RingDoorbells. ReadOutput lets every client read and, if it is an
// auto-acknowledging client, answer as a conforming MQTT client does (PUBACK, PUBREC, PUBREL,
// PUBCOMP); Settle alternates the two until nothing moves.
//
// The steady-state paths (Send of pre-encoded bytes, RunIteration, ReadOutput, Settle) allocate
// nothing of their own once their buffers have grown, so that tests/shard/
// steady_state_noalloc_test.cc can count the broker's allocations through them.
//
// Thread safety: none. The test's thread plays every shard and owns reader slot 0 of the epoch
// domain for all of them (Online from construction to destruction).
#ifndef RINGMQ_TESTS_SHARD_ROUTER_HARNESS_H_
#define RINGMQ_TESTS_SHARD_ROUTER_HARNESS_H_

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connect/client_id.h"
#include "memory/budget.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "shard/connection_context.h"
#include "shard/router.h"
#include "shard/shared_state.h"

namespace ringmq::shard::harness {

using Bytes = std::vector<uint8_t>;

// Names the peer in log lines only; a harness connection never does I/O.
inline constexpr int kFd = 7;

inline Bytes Encode(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet));
  EXPECT_EQ(mqtt::Encode(packet, bytes), bytes.size());
  return bytes;
}

inline mqtt::Connect ConnectPacket(std::string_view client_id, bool clean_session = true) {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311);
  connect.clean_session = clean_session;
  connect.keepalive_s = 60;
  connect.client_id = client_id;
  return connect;
}

inline Bytes ConnectBytes(std::string_view client_id, bool clean_session = true) {
  return Encode(ConnectPacket(client_id, clean_session));
}

inline Bytes PublishBytes(std::string_view topic, std::string_view payload, mqtt::QoS qos,
                          uint16_t packet_id = 0) {
  mqtt::Publish publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.packet_id = qos == mqtt::QoS::k0 ? 0 : packet_id;
  return Encode(publish);
}

class FakeServices final : public ShardServices {
 public:
  explicit FakeServices(const uint64_t& now_ms) : now_ms_(now_ms) {}
  void AdoptConnection(HandoffRecord handoff) override {
    adopted.emplace_back(handoff.fd, std::move(handoff.bytes));
  }
  void ConnectionDirty(uint32_t tag) override { dirty.push_back(tag); }
  void RingDoorbell(uint32_t shard) override {
    rung.push_back(shard);
    ++doorbells;
  }
  uint64_t now_ms() const override { return now_ms_; }
  memory::Pressure memory_pressure() const override { return pressure; }

  std::vector<std::pair<int, Bytes>> adopted;  // hand-offs received, in order
  std::vector<uint32_t> dirty;  // tags since the last RunIteration of the shard (repeats kept)
  std::vector<uint32_t> rung;   // doorbells rung since the shard's last RunIteration began
  uint64_t doorbells = 0;       // doorbells rung in all
  memory::Pressure pressure = memory::Pressure::kNone;

 private:
  const uint64_t& now_ms_;
};

// A client: its connection on the broker and what it read from it.
struct Client {
  static constexpr size_t kPacketTypes = 16;

  net::Connection connection;
  uint32_t shard = 0;
  // Answers PUBLISH (QoS 1: PUBACK, QoS 2: PUBREC), PUBREC (PUBREL) and PUBREL (PUBCOMP).
  bool auto_ack = true;
  std::array<uint64_t, kPacketTypes> received{};  // packets read, by mqtt::PacketType
  std::array<uint64_t, 3> publishes_by_qos{};     // PUBLISH packets read, by QoS
  Bytes replies;                                  // scratch for the answers of one read
  // Without auto_ack: the packet ids of the QoS 1 PUBLISHes read, for the test to acknowledge.
  std::vector<uint16_t> unacknowledged;
  Bytes connack;  // the CONNACK's bytes, as read
  uint64_t packets_before_connack = 0;  // read while no CONNACK had been read
  // With record: the PUBLISH packets read, each as its bytes (decode at connection.level()).
  bool record = false;
  std::vector<Bytes> recorded;

  uint64_t Received(mqtt::PacketType type) const { return received[static_cast<size_t>(type)]; }
};

// One shard: what Shard gives its Router, and the clients it serves (tag = index).
struct HarnessShard {
  HarnessShard(uint32_t index, const Config& config, SharedState& shared, const uint64_t& now_ms)
      : services(now_ms) {
    ConfigureConnectionContext(index, config, shared, counters, context);
    router = std::make_unique<Router>(index, config, shared, counters, context, services);
    context.sink = router.get();
  }

  metrics::ShardCounters counters;
  net::ConnectionContext context;
  FakeServices services;
  std::unique_ptr<Router> router;
  std::deque<Client> clients;  // stable addresses: the router points at the connections
};

class RouterHarness {
 public:
  RouterHarness(const Config& config, uint32_t shard_count) : config_(config) {
    shared_ = std::make_unique<SharedState>(shard_count);
    shared_->epochs.Online(0);
    for (uint32_t i = 0; i < shard_count; ++i) {
      shards_.push_back(std::make_unique<HarnessShard>(i, config_, *shared_, now_ms_));
    }
  }
  // The routers go in shard order (each drops what is still addressed to it), as at broker stop.
  ~RouterHarness() {
    for (auto& shard : shards_) shard.reset();
    shared_->epochs.Offline(0);
  }
  RouterHarness(const RouterHarness&) = delete;
  RouterHarness& operator=(const RouterHarness&) = delete;

  uint32_t shard_count() const { return static_cast<uint32_t>(shards_.size()); }
  HarnessShard& shard(uint32_t index) { return *shards_[index]; }
  Router& router(uint32_t index) { return *shards_[index]->router; }
  metrics::ShardCounters& counters(uint32_t index) { return shards_[index]->counters; }
  SharedState& shared() { return *shared_; }
  const Config& config() const { return config_; }
  // The clock every shard reads; tests move it by hand.
  uint64_t& now_ms() { return now_ms_; }

  // Destroys shard `index`'s router, as a stopping broker does; the shard is gone afterwards.
  void Stop(uint32_t index) { shards_[index].reset(); }

  uint32_t HomeOf(std::string_view client_id) const {
    return connect::HomeShard(client_id, shard_count());
  }
  // A client id made from `base` whose home is `shard`.
  std::string IdOn(uint32_t shard, std::string_view base) const {
    for (int suffix = 0;; ++suffix) {
      std::string id = std::string(base) + "-" + std::to_string(suffix);
      if (HomeOf(id) == shard) return id;
    }
  }

  // Connects `client_id` on its home shard and reads the CONNACK, which must accept it;
  // `session_present` gets its flag.
  Client& Connect(const std::string& client_id, bool clean_session = true,
                  bool* session_present = nullptr) {
    return Connect(ConnectPacket(client_id, clean_session), session_present);
  }
  // The same with a CONNECT of the test's making (a will, a user name).
  Client& Connect(const mqtt::Connect& connect, bool* session_present = nullptr) {
    Client& client = NewClient(HomeOf(connect.client_id));
    client.connection.Open(kFd, now_ms_);
    SetTag(client);
    Send(client, Encode(connect));
    ReadConnack(client, session_present);
    return client;
  }

  // Sends a CONNECT on the id's home shard without reading: its CONNACK may be held
  // (router_cluster_session.cc); TryReadConnack reads it once it is sent.
  Client& ConnectWithoutReading(const mqtt::Connect& connect) {
    Client& client = NewClient(HomeOf(connect.client_id));
    client.connection.Open(kFd, now_ms_);
    SetTag(client);
    Send(client, Encode(connect));
    return client;
  }
  // False if no CONNACK was sent to `client` yet; otherwise its session-present flag (read
  // now, or by an earlier ReadOutput).
  bool TryReadConnack(Client& client, bool* session_present) {
    if (!client.connack.empty()) {
      if (session_present != nullptr) *session_present = (client.connack[2] & 0x01) != 0;
      return true;
    }
    net::Connection& connection = client.connection;
    const std::span<const uint8_t> connack = connection.NextSend();  // marks no send if empty
    if (connack.empty()) return false;
    client.connack.assign(connack.begin(), connack.end());
    EXPECT_GE(connack.size(), 4u);
    if (connack.size() >= 4) {
      EXPECT_EQ(connack[0], 0x20) << "the CONNACK comes first";
      EXPECT_EQ(connack[3], 0x00) << "CONNACK accepted";
      if (session_present != nullptr) *session_present = (connack[2] & 0x01) != 0;
    }
    connection.OnSent(connack.size());
    return true;
  }

  // Connects through shard `accepting`, as when the kernel gives the socket to a shard that is
  // not the client id's home: the CONNECT is admitted there and, if the home is another shard,
  // the connection is handed off the way Shard does it (Router::Handoff) and adopted by the home
  // shard once a loop iteration has delivered the record. Returns the client on its home shard.
  Client& ConnectVia(uint32_t accepting, const mqtt::Connect& connect,
                     bool* session_present = nullptr) {
    const uint32_t home = HomeOf(connect.client_id);
    if (home == accepting) return Connect(connect, session_present);
    HarnessShard& from = *shards_[accepting];
    net::Connection admitted;
    admitted.Open(kFd, now_ms_);
    admitted.OnReceive(Encode(connect), now_ms_, from.context);
    EXPECT_EQ(admitted.state(), net::Connection::State::kHandoff);
    from.router->Handoff(admitted);
    admitted.ReleaseForHandoff();
    std::vector<std::pair<int, Bytes>>& adopted = shards_[home]->services.adopted;
    const size_t before = adopted.size();
    RunIteration();  // the sender rings; the home shard drains on the next iteration
    RunIteration();
    EXPECT_EQ(adopted.size(), before + 1) << "the hand-off reached its home shard";
    Client& client = NewClient(home);
    if (adopted.size() != before + 1) return client;
    client.connection.Adopt(adopted.back().first, now_ms_);
    SetTag(client);
    Send(client, adopted.back().second);
    ReadConnack(client, session_present);
    return client;
  }

  // Subscribes to `filter` at `qos` (one SUBSCRIBE, answered at once) and reads the SUBACK.
  // Returns its return code.
  uint8_t Subscribe(Client& client, std::string_view filter, mqtt::QoS qos = mqtt::QoS::k1) {
    HarnessShard& shard = *shards_[client.shard];
    Bytes entries;
    const mqtt::TopicRequest request{filter, qos};
    const std::span<const mqtt::TopicRequest> requests(&request, 1);
    entries.resize(mqtt::TopicListEncodedSize(requests, true));
    mqtt::EncodeTopicList(requests, true, entries);
    shard.router->RunJobs();  // a new loop iteration: the filter budget is renewed
    client.connection.OnReceive(Encode(mqtt::Subscribe{1, mqtt::TopicList(entries, true)}), now_ms_,
                                shard.context);
    const std::span<const uint8_t> suback = client.connection.NextSend();
    if (suback.size() < 5) {
      ADD_FAILURE() << "SUBACK";
      return 0xFF;
    }
    EXPECT_EQ(suback[0], 0x90);
    const uint8_t code = suback[4];
    client.connection.OnSent(suback.size());
    return code;
  }

  // At MQTT 5.0: subscribes with `request`'s options and, if not 0, Subscription Identifier
  // `identifier`, and reads the SUBACK.
  void Subscribe5(Client& client, const mqtt::TopicRequest& request, uint32_t identifier = 0) {
    HarnessShard& shard = *shards_[client.shard];
    const std::span<const mqtt::TopicRequest> requests(&request, 1);
    Bytes entries(mqtt::TopicListEncodedSize(requests, true));
    mqtt::EncodeTopicList(requests, true, entries);
    uint8_t properties[8] = {};
    const size_t properties_size =
        identifier == 0 ? 0
                        : mqtt::EncodeIntegerProperty(mqtt::PropertyId::kSubscriptionIdentifier,
                                                      identifier, properties);
    const mqtt::Packet subscribe = mqtt::Subscribe{
        .packet_id = 1,
        .topics = mqtt::TopicList(entries, true),
        .properties = mqtt::Properties(std::span<const uint8_t>(properties, properties_size))};
    Bytes bytes(mqtt::EncodedSize(subscribe, mqtt::ProtocolLevel::kMqtt5));
    mqtt::Encode(subscribe, bytes, mqtt::ProtocolLevel::kMqtt5);
    shard.router->RunJobs();
    client.connection.OnReceive(bytes, now_ms_, shard.context);
    const std::span<const uint8_t> suback = client.connection.NextSend();
    ASSERT_FALSE(suback.empty()) << "SUBACK";
    EXPECT_EQ(suback[0], 0x90);
    client.connection.OnSent(suback.size());
  }

  // The client sends `bytes` (whole or partial packets) and the shard receives them.
  void Send(Client& client, std::span<const uint8_t> bytes) {
    client.connection.OnReceive(bytes, now_ms_, shards_[client.shard]->context);
  }
  void Send(Client& client, const mqtt::Packet& packet) { Send(client, Encode(packet)); }

  // The peer goes away: the shard sees the transport close and flushes its router, which ends
  // the connection's session (or keeps it offline).
  void Drop(Client& client) {
    HarnessShard& shard = *shards_[client.shard];
    client.connection.OnTransportClosed(now_ms_);
    shard.router->Flush();
    client.connection.OnClosed(shard.context);
  }

  // One loop iteration of every shard, in shard order.
  void RunIteration() {
    for (auto& shard : shards_) {
      if (shard == nullptr) continue;
      Router& router = *shard->router;
      shard->services.rung.clear();
      router.DrainMailboxes();
      router.RunJobs();
      router.Flush();
      for (const uint32_t tag : shard->services.dirty) {
        if (tag < shard->clients.size()) {
          memory::Charge(shard->clients[tag].connection.TakeBufferChargeDelta());
        }
      }
      shard->services.dirty.clear();
      router.RingDoorbells();
    }
  }

  // Every client reads everything its connection has to send (one completed send each) and
  // answers what it read. Returns the bytes read.
  size_t ReadOutput() {
    size_t bytes = 0;
    for (auto& shard : shards_) {
      if (shard == nullptr) continue;
      for (Client& client : shard->clients) bytes += Read(*shard, client);
    }
    return bytes;
  }

  // RunIteration and ReadOutput until an iteration delivers nothing, rings no doorbell and no
  // client reads anything. Returns the iterations run (at most max_iterations; the test fails
  // beyond).
  size_t Settle(size_t max_iterations = 64) {
    for (size_t iteration = 1; iteration <= max_iterations; ++iteration) {
      RunIteration();
      // A doorbell rung late in the iteration is for a shard that already had its turn.
      size_t moved = 0;
      for (auto& shard : shards_) {
        if (shard == nullptr) continue;
        moved += shard->router->drained_records() + shard->services.rung.size();
      }
      if (ReadOutput() == 0 && moved == 0) return iteration;
    }
    ADD_FAILURE() << "still busy after " << max_iterations << " iterations";
    return max_iterations;
  }

 private:
  static constexpr uint32_t kReadPacketSizeMax = mqtt::kMaxRemainingLength + 5;

  // A client on shard `shard`, not yet opened.
  Client& NewClient(uint32_t shard) {
    Client& client = shards_[shard]->clients.emplace_back();
    client.shard = shard;
    return client;
  }
  // After Open or Adopt (which reset the connection): its tag is its index on its shard.
  void SetTag(Client& client) {
    client.connection.set_tag(static_cast<uint32_t>(shards_[client.shard]->clients.size() - 1));
  }

  // Reads the CONNACK, which must accept the client.
  void ReadConnack(Client& client, bool* session_present) {
    net::Connection& connection = client.connection;
    EXPECT_EQ(connection.state(), net::Connection::State::kOpen);
    const std::span<const uint8_t> connack = connection.NextSend();
    EXPECT_GE(connack.size(), 4u);
    client.connack.assign(connack.begin(), connack.end());
    if (connack.size() >= 4) {
      EXPECT_EQ(connack[0], 0x20);
      EXPECT_EQ(connack[3], 0x00) << "CONNACK accepted";
      if (session_present != nullptr) *session_present = (connack[2] & 0x01) != 0;
    }
    connection.OnSent(connack.size());
  }

  size_t Read(HarnessShard& shard, Client& client) {
    net::Connection& connection = client.connection;
    const std::span<const uint8_t> bytes = connection.NextSend();
    if (bytes.empty()) return 0;
    std::span<const uint8_t> rest = bytes;
    while (!rest.empty()) {
      // The broker writes whole packets, and a harness send always completes in full.
      const mqtt::Frame frame = mqtt::PeekFrame(rest, kReadPacketSizeMax, connection.level());
      if (frame.status != mqtt::FrameStatus::kComplete) {
        ADD_FAILURE() << "the broker sent a broken packet";
        break;
      }
      const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
          frame.header, rest.subspan(frame.header.header_length, frame.header.remaining_length),
          connection.level());
      if (!packet.ok()) {
        ADD_FAILURE() << "the broker sent an invalid packet: " << mqtt::NameOf(packet.violation());
        break;
      }
      if (mqtt::TypeOf(packet.value()) == mqtt::PacketType::kConnack) {
        const std::span<const uint8_t> frame_bytes = rest.first(frame.header.total_length());
        client.connack.assign(frame_bytes.begin(), frame_bytes.end());
      } else if (client.connack.empty()) {
        ++client.packets_before_connack;
      }
      OnPacket(client, packet.value());
      if (client.record && mqtt::TypeOf(packet.value()) == mqtt::PacketType::kPublish) {
        const std::span<const uint8_t> frame_bytes = rest.first(frame.header.total_length());
        client.recorded.emplace_back(frame_bytes.begin(), frame_bytes.end());
      }
      rest = rest.subspan(frame.header.total_length());
    }
    connection.OnSent(bytes.size());
    shard.router->OnConnectionWritable(connection);
    if (!client.replies.empty()) {
      connection.OnReceive(client.replies, now_ms_, shard.context);
      client.replies.clear();
    }
    return bytes.size();
  }

  // Records a packet the client read and appends its answer, if any, to client.replies.
  static void OnPacket(Client& client, const mqtt::Packet& packet) {
    const mqtt::PacketType type = mqtt::TypeOf(packet);
    ++client.received[static_cast<size_t>(type)];
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      ++client.publishes_by_qos[static_cast<size_t>(publish->qos)];
    }
    if (!client.auto_ack) {
      const auto* publish = std::get_if<mqtt::Publish>(&packet);
      if (publish != nullptr && publish->qos == mqtt::QoS::k1) {
        client.unacknowledged.push_back(publish->packet_id);
      }
      return;
    }
    switch (type) {
      case mqtt::PacketType::kPublish: {
        const auto& publish = std::get<mqtt::Publish>(packet);
        if (publish.qos == mqtt::QoS::k1) Reply(client, mqtt::Puback{publish.packet_id});
        if (publish.qos == mqtt::QoS::k2) Reply(client, mqtt::Pubrec{publish.packet_id});
        return;
      }
      case mqtt::PacketType::kPubrec:
        return Reply(client, mqtt::Pubrel{std::get<mqtt::Pubrec>(packet).packet_id});
      case mqtt::PacketType::kPubrel:
        return Reply(client, mqtt::Pubcomp{std::get<mqtt::Pubrel>(packet).packet_id});
      default:
        return;
    }
  }

  static void Reply(Client& client, const mqtt::Packet& packet) {
    const size_t old_size = client.replies.size();
    client.replies.resize(old_size + mqtt::EncodedSize(packet));
    mqtt::Encode(packet, std::span<uint8_t>(client.replies).subspan(old_size));
  }

  Config config_;
  uint64_t now_ms_ = 1'000'000;
  std::unique_ptr<SharedState> shared_;
  std::vector<std::unique_ptr<HarnessShard>> shards_;
};

}  // namespace ringmq::shard::harness

#endif  // RINGMQ_TESTS_SHARD_ROUTER_HARNESS_H_
