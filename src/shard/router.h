// The per-shard broker core: sessions on their home shard, routing of PUBLISH through the
// shared subscription trie, delivery to local sessions and to other shards' mailboxes, and the
// hand-off of connections to the shard that owns their client id.
//
// Home shard: a client id's session lives on shard hash(client_id) % shards. A connection
// admitted elsewhere is moved there before its CONNACK (fd plus the bytes already read, through
// the mailbox), so session lookup, takeover (MQTT-3.1.4-2) and persistent sessions are local
// to one thread and the session map needs no lock. A server-assigned id (empty client id,
// clean session) is unique by construction and served where it was accepted.
//
// Publish path (per PUBLISH, on the publisher's shard): one immutable Message, one trie match
// (each session once, at the highest granted QoS, grouped by shard); local sessions get a
// reference queued directly; each other shard gets one mailbox record per 63 subscribers
// carrying one reference and the subscriber handles. The receiving shard queues to its
// sessions. Bytes are produced at the end of the loop iteration, per connection, into its
// output buffer (one send per connection per iteration).
//
// Mailbox records (16-byte slots):
//   kMessage       aux = handle count, value = Message* (the record owns one reference)
//   kHandle        aux = session index, value = generation << 8 | QoS
//   kHandoff       value = Handoff* (the receiver owns and deletes it)
//   kFenceRequest  aux = requesting shard (retained_fence.h)
//   kFenceReply    aux = answering shard, value = its last message sequence number
// A full mailbox is not waited on: records wait in a per-destination overflow queue (bounded,
// drops counted as mailbox_overflow) and are retried, in order, every iteration.
//
// Retained consistency: every message is stamped (shard, sequence) when created and routed at
// once; a retained message from another shard queued for a new subscription is recorded in the
// shard's RetainedFence, which drops the live copies that would duplicate it or arrive older
// (retained_live_superseded) until a fence round trip proves none is left in flight. Fence
// records are never dropped at the overflow bound (at most one each way per shard pair).
//
// Authorization (acl_file configured, docs/auth.md): each session entry holds its connection's
// ClientAcl, compiled at CONNECT with %c and %u substituted and compiled again, lazily at the
// next PUBLISH or SUBSCRIBE, after a reload changed the shared auth data. A PUBLISH not allowed
// is acknowledged as usual and dropped (publish_denied); a filter not allowed gets SUBACK 0x80
// (subscribe_denied). Subscriptions made before a reload are kept. Without an ACL file the
// only cost is one branch per PUBLISH / SUBSCRIBE.
//
// Thread safety: one Router per shard, used only on that shard's thread. The trie and the
// retained store are shared and internally synchronized; mailboxes are SPSC per shard pair.
#ifndef RINGMQ_SHARD_ROUTER_H_
#define RINGMQ_SHARD_ROUTER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "auth/acl.h"
#include "message/message.h"
#include "metrics/counters.h"
#include "metrics/sys_topics.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "session/session.h"
#include "shard/mailbox.h"
#include "shard/retained_fence.h"
#include "shard/shared_state.h"
#include "sub/trie.h"

namespace ringmq::shard {

// What the router needs from its shard's event loop.
class ShardServices {
 public:
  virtual ~ShardServices() = default;
  // Takes over a connection handed off by another shard.
  virtual void AdoptConnection(int fd, std::vector<uint8_t> bytes) = 0;
  // The connection has new bytes in its output buffer (or must close): flush it this iteration.
  virtual void ConnectionDirty(uint32_t tag) = 0;
  // Wakes shard `shard` (its mailbox from us went from empty to non-empty).
  virtual void RingDoorbell(uint32_t shard) = 0;
  virtual uint64_t now_ms() const = 0;
};

class Router final : public net::PacketSink {
 public:
  Router(uint32_t shard, const Config& config, SharedState& shared,
         metrics::ShardCounters& counters, net::ConnectionContext& context,
         ShardServices& services);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // net::PacketSink
  ConnectAction OnConnect(net::Connection& connection, const mqtt::Connect& connect) override;
  void OnPacket(net::Connection& connection, const mqtt::Packet& packet) override;
  // Deferred to the next Flush: the caller may be in the middle of a packet of this session.
  void OnClosing(net::Connection& connection) override { closing_.push_back(&connection); }

  // The connection is about to be released. Publishes the will unless DISCONNECT was received
  // (MQTT-3.1.2-8, MQTT-3.14.4-3) and ends a clean session.
  void OnConnectionClosed(net::Connection& connection);
  // A send of the connection completed: its session may write more.
  void OnConnectionWritable(net::Connection& connection);

  uint32_t HomeShard(std::string_view client_id) const;
  // Moves a connection in kHandoff to its home shard.
  void Handoff(const net::Connection& connection, int fd, std::vector<uint8_t> bytes);

  // Delivers what other shards sent. Returns true if records were left (do not sleep).
  bool DrainMailboxes();
  // Retries overflowed mailbox records, then writes session output into connection buffers.
  void Flush();
  // Wakes the shards whose mailbox from us went from empty to non-empty this iteration. Last
  // in the iteration, after the shard's own flush, which can hand off connections.
  void RingDoorbells();

  size_t session_count() const { return by_client_id_.size(); }

  // Publishes the $SYS/broker/... values that changed (retained, QoS 0), from every shard's
  // counters. Called by one shard only, every sys_interval_s.
  void PublishSys(uint64_t now_ms);

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  // The bound connection's ACL and what it was compiled from.
  struct ConnectionAcl {
    auth::ClientAcl rules;
    uint64_t version = 0;  // auth::AuthData::version; 0: not compiled
    std::optional<std::string> user_name;
  };
  struct SessionEntry {
    std::optional<session::Session> session;
    uint32_t generation = 0;
    net::Connection* connection = nullptr;  // bound connection on this shard, if online
    bool dirty = false;
    // acl_file only: the bound connection's rules. Behind a pointer so that brokers without
    // an ACL (and their idle connections) do not pay for it.
    std::unique_ptr<ConnectionAcl> acl;
  };
  struct HandoffRecord;

  session::Session* SessionOf(const net::Connection& connection, uint32_t* index = nullptr);
  uint32_t CreateSession(const std::string& client_id, bool clean_session);
  void DestroySession(uint32_t index);
  void Detach(uint32_t index, bool publish_will);
  void MarkSessionDirty(uint32_t index);

  // The ACL of the session's connection, compiled again if the auth data was reloaded.
  const auth::ClientAcl& AclOf(SessionEntry& entry);
  void OnPublish(net::Connection& connection, const mqtt::Publish& publish);
  void OnSubscribe(net::Connection& connection, uint32_t index, const mqtt::Subscribe& subscribe);
  void OnUnsubscribe(net::Connection& connection, uint32_t index,
                     const mqtt::Unsubscribe& unsubscribe);
  // Stores `message` as its topic's retained message, within the store's bounds (counted when
  // refused). Callers route it right after, whatever the outcome.
  void Retain(const message::MessageRef& message);
  // Routes a message this shard has just created, before it creates another: other shards
  // then receive our messages in sequence order, which RetainedFence relies on (and asserts).
  // `from_client` false: a broker message ($SYS), not counted as a client's unrouted PUBLISH.
  void Route(const message::MessageRef& message, bool from_client = true);
  // MQTT-4.7.2-1 / Mosquitto: $SYS/ belongs to the broker; a client's PUBLISH there is
  // acknowledged and dropped (counted).
  void DropSysPublish(net::Connection& connection, const mqtt::Publish& publish);
  // Gauge bookkeeping: a session's queued and in-flight counts before an operation, and the
  // difference applied after it.
  struct Levels {
    int64_t queued = 0;
    int64_t inflight = 0;
    int64_t subscriptions = 0;
  };
  static Levels LevelsOf(session::Session& session);
  void AccountLevels(const Levels& before, session::Session& session);
  // Returns true if the message was queued to the session.
  bool DeliverLocal(uint32_t index, uint32_t generation, uint8_t qos, message::Message* message,
                    bool retain);
  // `retained` was queued to the session for a new subscription (retained_fence.h).
  void RecordRetainedDelivery(uint32_t index, uint32_t generation,
                              const message::Message& retained);
  // The stamp of the next message this shard creates (message.h, "Origin").
  message::Message::Origin NextOrigin() {
    return {.shard = static_cast<uint16_t>(shard_), .sequence = ++last_sequence_};
  }
  void SendRemote(uint32_t destination, message::Message* message,
                  std::span<const sub::Subscriber> subscribers);
  void Push(uint32_t destination, std::span<const Slot> record);
  void OnRecord(std::span<const Slot> record);
  void PublishWill(session::Session& session);

  const uint32_t shard_;
  const uint32_t shard_count_;
  SharedState& shared_;
  metrics::ShardCounters& counters_;
  net::ConnectionContext& context_;
  ShardServices& services_;
  session::SessionLimits limits_;
  bool queue_full_disconnects_ = false;
  bool acl_enabled_ = false;  // acl_file configured

  std::deque<SessionEntry> sessions_;  // deque: stable addresses while growing
  std::vector<uint32_t> free_sessions_;
  // Keys view the sessions' own client_id strings (stable: sessions_ is a deque and a session's
  // id never changes), so an id is stored once per session, not twice.
  absl::flat_hash_map<std::string_view, uint32_t> by_client_id_;
  std::vector<uint32_t> session_of_tag_;  // connection tag -> session index
  std::vector<uint32_t> dirty_sessions_;
  std::vector<net::Connection*> closing_;  // OnClosing, handled first in Flush
  std::vector<uint32_t> slow_consumers_;   // sessions to disconnect (queue_full_policy)

  sub::MatchResult match_;
  std::vector<Slot> record_;                             // scratch for building mailbox records
  std::vector<std::deque<std::vector<Slot>>> overflow_;  // per destination shard
  std::vector<bool> doorbell_due_;
  uint64_t last_sequence_ = 0;  // of the last message created here
  RetainedFence retained_fence_;
  std::unique_ptr<metrics::SysTopics> sys_topics_;  // on the publishing shard, once used
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_ROUTER_H_
