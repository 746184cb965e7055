// The per-shard broker core: the life of sessions on their home shard (CONNECT, takeover,
// wills, offline expiry and eviction), routing of PUBLISH through the shared subscription trie,
// delivery to local sessions and to other shards, the hand-off of connections to the shard that
// owns their client id, SUBSCRIBE / UNSUBSCRIBE work, ACL checks, $SYS and the session gauges.
// It keeps its sessions in a SessionTable (session_table.h: client id to slot, handles with
// generations, connection tags) and sends to other shards through an Outbox (outbox.h: record
// encoding, the bounded overflow queue in front of a full mailbox, doorbells); it decodes and
// dispatches the records other shards send it.
//
// Home shard: a client id's session lives on shard hash(client_id) % shards. A connection
// admitted elsewhere is moved there before its CONNACK (fd plus the bytes already read, through
// the mailbox), so session lookup, takeover (MQTT-3.1.4-2) and persistent sessions are local
// to one thread and the session table needs no lock. A server-assigned id (empty client id,
// clean session) is drawn so that its home is the accepting shard (connect/client_id.h) and is
// served there, in that shard's session table like any other id.
//
// MQTT 5.0: the Message keeps the publisher's property block, its expiry deadline and the
// publishing session; each session encodes deliveries at its connection's level (session.h).
// A subscription with delivery options (No Local, Retain As Published, a Subscription
// Identifier) sets sub::Subscriber::options, and only then does DeliverLocal ask the session
// (Session::MatchDelivery) whether and how it gets the message. Retain Handling is applied at
// SUBSCRIBE. A 5.0 PUBLISH that matched nobody is acknowledged with 0x10.
//
// Publish path (per PUBLISH, on the publisher's shard): one immutable Message, one trie match
// (each session once, at the highest granted QoS, grouped by shard); local sessions get a
// reference queued directly; each other shard gets one mailbox record per 63 subscribers
// carrying one reference and the subscriber handles. The receiving shard queues to its
// sessions. Bytes are produced at the end of the loop iteration, per connection, into its
// output buffer (one send per connection per iteration).
//
// Mailbox records, their overflow bound and what a dropped one gives back: outbox.h. Records
// still in an inbound mailbox when the Router is destroyed are dropped the same way
// (Outbox::DropRecord).
//
// Retained consistency: every message is stamped (shard, sequence) when created and routed at
// once; a retained message from another shard queued for a new subscription is recorded in the
// shard's RetainedFence, which drops the live copies that would duplicate it or arrive older
// (retained_live_superseded) until a fence round trip proves none is left in flight.
//
// Session expiry: each session has an expiry interval in seconds (5.0:3.1.2.11.2): at 5.0 the
// CONNECT's Session Expiry Interval (absent: 0; 0xFFFFFFFF: never), replaced by the DISCONNECT's
// if it carries one; at 3.1 / 3.1.1 0 for clean session 1 and persistent_session_expiry (0:
// never) for clean session 0; at every level capped by max_session_expiry (a 5.0 client is
// told the value in CONNACK). A session with interval 0 ends with its connection; any other
// joins the shard's OfflineList when its connection ends, in detach order and by due time.
// Once per tick ExpireOfflineSessions destroys those whose interval ran out, earliest first
// and at most kExpiriesPerTick per tick.
//
// Wills: a will falls due when its connection ends without DISCONNECT (or with 5.0's DISCONNECT
// 0x04), or when a takeover ends it. Its delay is min(Will Delay Interval, session expiry
// interval) (5.0:3.1.3.2.2; 0 at 3.1 / 3.1.1): 0 publishes it at once; otherwise it stays in
// the offline session, which is due at the end of the delay, and is published then
// (ExpireOfflineSessions), or when the session ends first (eviction, Clean Start 1), or never
// if a connection resumes the session before (5.0:MQTT-3.1.3-9, wills_cancelled). A broker that
// is shutting down publishes none.
//
// Offline bound: the number of offline sessions over all shards is one shared atomic (touched
// only when a session goes offline, comes back or ends, never per message): the shard whose
// session takes it past
// max_offline_sessions destroys its own longest-offline session (the one that just went
// offline if it is the shard's only one), so at rest the bound is exact broker-wide, while the
// victim is the oldest of that shard rather than of the broker. Both are counted
// (sessions_expired, sessions_evicted) and logged like connection events.
//
// Authorization (acl_file configured, docs/auth.md): each session entry holds the ClientAcl of
// its (last) connection, compiled at the first check with %c and %u substituted and compiled
// again, lazily, after a reload changed the shared auth data. A PUBLISH not allowed is
// acknowledged as usual (at MQTT 5.0 with reason code 0x87) and dropped (publish_denied). A
// filter is classified at SUBSCRIBE (auth::ReadScope): nothing readable gets SUBACK 0x80 (5.0:
// 0x87; subscribe_denied); everything readable
// is a plain subscription; partly readable is granted with acl_check set on its trie handle
// (subscribe_filtered), and each message delivered through it alone is checked with CanRead on
// the subscriber's home shard, retained ones included (deliver_denied when refused). The
// subscriptions of a session are classified again when a CONNECT with another user name resumes
// it and, on every shard, in the first Flush after a reload. Without an ACL file the only cost
// is one branch per PUBLISH / SUBSCRIBE and one flag test per delivery.
//
// SUBSCRIBE / UNSUBSCRIBE work is budgeted: at most max_filters_per_iteration filters (trie
// update plus retained delivery each) per loop iteration per shard. A packet that fits in what
// is left of this iteration's budget, with no earlier work waiting, is answered at once. Any
// other becomes a FilterJob: its filters are copied, its connection is paused (later packets of
// that connection wait, MQTT-4.6.0 order, and the SUBACK precedes anything they cause), and
// RunJobs works through the jobs in arrival order, a budget per iteration; the last filter
// queues the SUBACK / UNSUBACK and resumes the connection. The session's output is held while
// its job runs so that the SUBACK also precedes the retained messages the job queued. A job
// whose connection goes away is abandoned: the filters done so far stay done, as they would
// after a SUBACK lost with the connection.
//
// Shared subscriptions ("$share/{name}/{filter}", every protocol level; docs/architecture.md):
// the session records the whole filter; the trie holds the membership in the group, with the
// member's offline flag, which the home shard sets when the session goes offline or comes back.
// Route passes a ShareChoice whose eligibility check, for members on this shard, is their room
// (Session::CanTake); members elsewhere are judged by their offline flag only. A shared delivery
// that its member cannot keep — the session ended meanwhile or its queue is full when the record
// arrives, or a clean session ends with such messages unacknowledged — is re-routed at QoS 1/2:
// matched again against the groups alone (MatchShared) and given to the member chosen, at most
// once per message (a re-routed delivery that fails again is dropped and counted as usual).
// Retained messages are not sent for a shared subscription (5.0 §4.8.2).
//
// Persistence (Config::persistence, docs/persistence.md): a session with a non-zero expiry
// interval is durable: it has a sid (an id in this shard's log) and the router appends to the
// shard's Journal what changes it (the session and its expiry, going offline, subscriptions,
// each QoS 1/2 delivery queued, its packet id when first sent, its acknowledgements, inbound
// QoS 2 ids) and, for every retained PUBLISH, the topic's new value with the store's version.
// A delivered message is written to this shard's log once (kMessage, then one kEnqueue per
// durable session): each shard's log makes durable the deliveries to its own sessions.
// Holding acknowledgements (durability fsync): what a connection's output holds after such
// records were appended (the PUBACK / PUBREC of the PUBLISH, a SUBACK, the PUBLISHes whose
// packet ids were just logged) is held (Connection::HoldOutput) with a token that names
// (the journal epoch of the last record appended, this shard's last message sequence). The
// token is released when that epoch is durable here and every other shard that was sent one
// of our messages up to that sequence has confirmed that its own records for them are durable
// (a kDurable mailbox record with our sequence, sent after its epoch holding them completed).
// So a PUBACK leaves only when the message is on disk on every shard with a durable session
// that matched it. With durability interval the journal counts an epoch durable once written
// (the fdatasync follows every sync_interval_ms), so the same holds make an acknowledged
// message survive a crash of the process, and a machine crash lose at most that window.
// Degraded log: a QoS 1/2 PUBLISH while some shard's log is failing or over its pending bound
// is not acknowledged; the publisher's connection is closed (5.0: DISCONNECT 0x97) and the
// client resends after reconnecting (counted in persist_publish_refused).
//
// Thread safety: one Router per shard, used only on that shard's thread. The trie and the
// retained store are shared and internally synchronized; mailboxes are SPSC per shard pair.
#ifndef RINGMQ_SHARD_ROUTER_H_
#define RINGMQ_SHARD_ROUTER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "auth/acl.h"
#include "cluster/claim.h"
#include "cluster/mqtt5_headers.h"
#include "cluster/nats_link.h"
#include "memory/budget.h"
#include "message/message.h"
#include "metrics/counters.h"
#include "metrics/sys_topics.h"
#include "net/connection.h"
#include "persist/journal.h"
#include "ringmq/config.h"
#include "session/offline_list.h"
#include "session/session.h"
#include "shard/cluster_owner.h"
#include "shard/cluster_sessions.h"
#include "shard/mailbox.h"
#include "shard/outbox.h"
#include "shard/retained_fence.h"
#include "shard/session_table.h"
#include "shard/shared_state.h"
#include "sub/trie.h"

namespace ringmq::shard {

struct ClusterAckOptions;  // cluster_acks.h

// What the router needs from its shard's event loop.
class ShardServices {
 public:
  virtual ~ShardServices() = default;
  // Takes over a connection handed off by another shard.
  virtual void AdoptConnection(HandoffRecord handoff) = 0;
  // The connection has new bytes in its output buffer (or must close): flush it this iteration.
  virtual void ConnectionDirty(uint32_t tag) = 0;
  // Persistence: output of the connection held for the log was released. The shard lets a
  // connection held back at its bound of held replies (net::Connection::held_back) process
  // the frames that waited, then flushes it as for ConnectionDirty.
  virtual void OutputReleased(uint32_t tag) { ConnectionDirty(tag); }
  // Wakes shard `shard` (its mailbox from us went from empty to non-empty).
  virtual void RingDoorbell(uint32_t shard) = 0;
  virtual uint64_t now_ms() const = 0;
  // The shard's view of the max_memory budget (memory/budget.h).
  virtual memory::Pressure memory_pressure() const = 0;
};

class Router final : public net::PacketSink {
 public:
  Router(uint32_t shard, const Config& config, SharedState& shared,
         metrics::ShardCounters& counters, net::ConnectionContext& context,
         ShardServices& services);
  // Drops what is still queued for or addressed to this shard; the caller guarantees that no
  // shard thread runs any more (every mailbox's producer and consumer have stopped).
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // net::PacketSink
  ConnectAction OnConnect(net::Connection& connection, const mqtt::Connect& connect) override;
  void OnPacket(net::Connection& connection, const mqtt::Packet& packet) override;
  // Deferred to the next Flush: the caller may be in the middle of a packet of this session.
  void OnClosing(net::Connection& connection) override { closing_.push_back(&connection); }

  // The connection is about to be released. Its will falls due unless DISCONNECT was received
  // (MQTT-3.1.2-8, MQTT-3.14.4-3; see "Wills"), and a session whose expiry interval is 0
  // ends; any other goes offline.
  void OnConnectionClosed(net::Connection& connection);
  // A send of the connection completed: its session may write more.
  void OnConnectionWritable(net::Connection& connection);

  uint32_t HomeShard(std::string_view client_id) const;
  // Moves a connection in kHandoff to its home shard: its socket, the bytes it has read and its
  // transport. The caller then calls connection.ReleaseForHandoff().
  void Handoff(net::Connection& connection);

  // Delivers what other shards sent: drains the mailboxes signalled since the last call and
  // those it left at their budget. Returns true if records were left (do not sleep).
  bool DrainMailboxes();
  // Records the last DrainMailboxes delivered, and sessions with output for the next Flush
  // (what a loop iteration handled, for the stall detector).
  size_t drained_records() const { return drained_records_; }
  size_t dirty_session_count() const { return dirty_sessions_.size(); }
  // Works on pending SUBSCRIBE / UNSUBSCRIBE jobs with what is left of this iteration's filter
  // budget, then renews the budget for the next iteration. Once per loop iteration.
  void RunJobs();
  // Jobs are waiting: the loop must not sleep.
  bool has_jobs() const { return !jobs_.empty(); }
  // Retries overflowed mailbox records, then writes session output into connection buffers.
  void Flush();
  // Signals and wakes the shards whose mailbox from us went from empty to non-empty this
  // iteration. Last in the iteration, after the shard's own flush, which can hand off
  // connections.
  void RingDoorbells();

  size_t session_count() const { return sessions_.size(); }

  // A hash of `client_id` for shared_subscription_strategy = hash.
  static uint64_t PublisherKey(std::string_view client_id);

  // Once per tick: publishes the delayed wills whose delay ran out and destroys the offline
  // sessions whose expiry interval ran out, earliest due first, at most kExpiriesPerTick of
  // them (the rest on the next ticks).
  void ExpireOfflineSessions();
  // Bounds the work of one ExpireOfflineSessions call (each expiry removes the session's
  // subscriptions from the shared trie, each will is routed), so a mass expiry cannot stall
  // the loop.
  static constexpr uint32_t kExpiriesPerTick = 1024;

  // Publishes the $SYS/broker/... values that changed (retained, QoS 0), from every shard's
  // counters. Called by one shard only, every sys_interval_s.
  void PublishSys(uint64_t now_ms);

  // bridge lane: a retained QoS 0 message in the broker's own name (a bridge's notification
  // state, docs/bridges.md), routed and retained like the $SYS values.
  void PublishOwn(std::string_view topic, std::string_view payload);

  // ---- Cluster over NATS (docs/cluster.md; router_cluster.cc) ----
  // Clustering on: `link` (the shard's, outliving the router) carries this shard's messages
  // to other nodes and their messages to this shard's sessions. Called once, before any
  // session exists (before StartPersistence). Without it every cluster hook is one branch.
  //   - Interest: each non-shared filter not starting with '$' a session of this shard comes
  //     to hold or stops holding is acquired / released in the shard's ClusterInterest (NATS
  //     SUB / UNSUB when a subject's count goes between 0 and 1).
  //   - Outbound: a client's PUBLISH and a will whose topic does not start with '$' is, after
  //     local routing, published once on the link (HPUB with headers Ringmq-Node, Ringmq-Qos,
  //     Ringmq-Retain; payload as is). At most once across nodes, whatever its QoS, unless
  //     StartClusterAcks (below) makes QoS 1/2 at least once.
  //   - Inbound: OnClusterMessage.
  void AttachCluster(cluster::NatsLink* link, std::string node_name, std::string subject_prefix);
  // A MSG/HMSG of the link: dropped if this node published it (Ringmq-Node), if it is an extra
  // copy of overlapping subscriptions (ClusterInterest::KeepCopy), or if its subject maps to
  // no MQTT topic or to a '$' topic (counted); else delivered to this shard's matching
  // non-shared subscriptions only, through DeliverLocal, at min(Ringmq-Qos (0 without it: a
  // NATS application), subscription QoS), RETAIN 0 (MQTT-3.3.1-9: not a new subscription).
  void OnClusterMessage(const cluster::NatsMessage& message);
  // NATS subscriptions the link holds for this shard (0 unclustered).
  size_t cluster_subject_count() const;
  // Shared subscriptions across the cluster (router_cluster_shared.cc; docs/cluster.md,
  // "Shared subscriptions"), once after AttachCluster: `share_link` (the shard's second link,
  // which only holds queue subscriptions and never publishes) subscribes each group a session of
  // this shard is a member of as a NATS queue group (ClusterShares). While the main link is
  // ready, a message Route forwards to NATS is given to no group member locally (Route leaves
  // the groups out): NATS picks one member link of each group across all nodes, this node's
  // included, and that shard's OnClusterShareMessage picks one of its members. While the link
  // is not ready, for '$' topics, and for a message the link does not take (a topic no subject
  // carries, too large, no room: ForwardToCluster sees it), the local choice applies.
  void AttachClusterShares(cluster::NatsLink* share_link);
  // A MSG/HMSG of the share link: the group of its sid chooses a member (configured strategy,
  // this shard's members first; with none eligible, QoS 0 goes nowhere and QoS 1/2 to the
  // strategy's member, as in a local match), delivered at min(Ringmq-Qos, subscription QoS),
  // RETAIN 0. Not dropped as an echo: NATS picked this link for this copy, whoever published.
  void OnClusterShareMessage(const cluster::NatsMessage& message);
  // NATS queue subscriptions the share link holds for this shard (0 unclustered).
  size_t cluster_share_subscription_count() const;

  // ---- Client ids across nodes (docs/cluster.md; router_cluster_owner.cc) ----
  // After AttachCluster: this shard subscribes its claim buckets (cluster/claim.h) and from now
  // on claims every client id a CONNECT binds here, except server-assigned ones (MQTT-3.1.3-6:
  // no other node can hold them). A claim from another node for a client id with a session
  // here (received on the bucket's shard, passed to the id's home shard through the mailbox if
  // that is another shard) is judged by ClusterOwnership::Judge: newer, the session's
  // connection is closed as in a takeover (MQTT-3.1.4-2: its will falls due unless it sent
  // DISCONNECT; 5.0: DISCONNECT 0x8E) and the session ends here; older, the session stays
  // and, if online, is claimed again with its own key so that the other node's connection
  // yields. A claimant that means to resume its session (clean session / Clean Start 0) names
  // its shard's session subject as the claim's reply subject: a persistent session that yields
  // sends its subscriptions and deliveries there (cluster/session_state.h; its delayed will is
  // cancelled, 5.0:MQTT-3.1.3-9), and the claimant's shard merges them into the session it
  // bound (SUBSCRIBE with Retain Handling 2, each message queued as a delivery). Fails if the
  // link refuses a subscription.
  // Claims are sent in batches (cluster_owner.h, "Batches"; the bounds in `options`): one
  // NATS message per shard per window on $RINGMQ[.prefix].claims.<shard % 256>.
  absl::Status StartClusterOwnership(const ClaimBatchOptions& options = {});
  // Once per loop iteration, before the link's output is taken: sends the claim batch whose
  // window ended (the first form reads the monotonic clock, only while a batch is held).
  void ClaimStep();
  void ClaimStep(uint64_t now_us);
  // How long the loop may sleep without overshooting the held batch's window: `longest_ms`
  // without one, else the milliseconds left (rounded up; 0 when due).
  uint32_t ClaimWaitMs(uint32_t longest_ms) const;
  // Retained messages cluster-wide (router_cluster_retained.cc; cluster/retained_sync.h): a
  // retained PUBLISH or will of this shard is also published to the node's retained stream;
  // shard 0 consumes the stream into the retained store. Call every loop iteration when
  // clustered (requests, retries, heartbeat checks).
  void ClusterTick(uint64_t now_ms);

  // ---- Cluster acknowledgements (docs/cluster.md; router_cluster_acks.cc) ----
  // QoS 1 and 2 at least once across nodes, after AttachCluster (before any session exists):
  //   - Interest: the link announces this shard's NATS subjects to the other links (deltas
  //     with a sequence number, snapshots when asked, heartbeats) and keeps theirs
  //     (RemoteInterest, cluster_acks.h); other links of this node are tracked for their
  //     groups only (they drop our plain messages as echoes).
  //   - A QoS 1/2 message forwarded while remote links match its subject carries a
  //     Ringmq-Id header and a reply subject naming this link; the publisher's PUBACK / PUBREC
  //     (and every later one of that connection: acks keep their order) waits until every
  //     such link acknowledged it, or was forgotten (silent for link_timeout_ms), and, with
  //     persistence, for the log too. At pending_max messages or pending_bytes_max bytes the
  //     publishing connection is paused (its frames wait, its socket is not read) until the
  //     pending messages fall below 3/4 of the bounds.
  //   - A message not acknowledged after retransmit_ms (or when the link reconnects) is sent
  //     again to each missing link on its own retransmit subject, with header Ringmq-Subject.
  //   - Receiving: a message with an id is acknowledged (batched: one PUB per origin link per
  //     step), and one whose (origin, id) the duplicate window knows is not delivered again.
  //   - Shared-subscription groups (sacks lane): the share link's queue subjects are announced
  //     too ("q <queue> <subject>"), a group is one acknowledger whichever member shard NATS
  //     picks (this node's shards included), its members acknowledge in its name, and its
  //     retransmits go to $RINGMQ[.p].rtq.<queue>, which all its members' share links
  //     subscribe in its queue group. A group is forgotten with its last member link.
  void StartClusterAcks(const ClusterAckOptions& options);
  // Once per loop iteration, after the completions (the link's messages) and mailboxes:
  // announcements, acks, retransmits, forgetting, and the release of held PUBACK / PUBREC.
  void ClusterAckStep();
  // The link finished a handshake: snapshot asked and sent, pending messages due again.
  void OnClusterReady();
  // QoS 0 batching between nodes (router_cluster_batch.cc; docs/cluster.md "Batching QoS 0"):
  // with batching on, a QoS 0 message is appended to one batch per other node's link whose
  // announced interest matches it. Publishes every non-empty batch as one NATS message; the
  // shard calls it before the link's output is taken (and ClusterAckStep before forgetting).
  void FlushClusterBatches();
  // After StartClusterAcks: subscribes this link's batch subject (batches from other nodes are
  // received whether or not this node batches) and, if `batching`, batches QoS 0 messages of
  // at most `bytes_max` bytes per batch (and the server's max_payload).
  void StartClusterBatches(bool batching, size_t bytes_max);

  // ---- Persistence (see the header comment) ----
  // Set-up, before the shard serves: logs to `journal` from now on, recovers the sessions of
  // shared.recovered homed on this shard and appends the start snapshot of its state.
  void StartPersistence(persist::Journal* journal);
  bool persistence() const { return persist_ != nullptr; }
  // Once per loop iteration, after Flush and the journal's I/O submission: releases held
  // output, confirms other shards' messages, and counts the start snapshot (shard 0 commits
  // the run when every shard's is durable).
  void PersistStep();
  // Releases the held output whose records are durable and confirmed (ShardServices::
  // OutputReleased). Called by PersistStep, and by the shard right after the completions and
  // mailboxes of an iteration, so that frames of held-back connections processed on release
  // are routed and flushed in the same iteration.
  void ReleaseHolds();
  // The loop ended and the journal was drained: counts the start snapshot if it is durable now
  // (the broker then commits the run of a broker stopped before it did).
  void PersistStopped();
  // Graceful stop, after the journal was drained: a final snapshot replaces the segment (so the
  // next start reads only live state). Begin rotates and appends it (false: not needed or not
  // possible); the caller drains the journal again; End deletes the old segment once the
  // snapshot is durable.
  bool BeginFinalSnapshot();
  void EndFinalSnapshot();
  // Appends a snapshot of this shard's durable state (after Journal::Rotate: a compaction),
  // with `all_retained` the whole retained store (kRetainedAll). Returns the records appended.
  uint64_t AppendSnapshot(bool all_retained);

 private:
  static constexpr uint32_t kNone = SessionTable::kNone;
  // A Session Expiry Interval of 0xFFFFFFFF: the session does not expire (5.0:3.1.2.11.2).
  static constexpr uint32_t kExpiryNever = UINT32_MAX;
  // A SUBSCRIBE or UNSUBSCRIBE worked through over several loop iterations. It owns a copy of
  // the filters (the receive buffer the packet was decoded from is gone by then): at most
  // max_packet_size bytes plus 8 bytes per filter, one job per paused connection.
  struct FilterJob {
    struct Item {
      uint32_t offset = 0;  // into `filters`
      uint16_t length = 0;
      uint8_t options = 0;  // requested subscription options byte (SUBSCRIBE only)
    };
    uint32_t session = 0;
    uint32_t identifier = 0;  // the SUBSCRIBE's Subscription Identifier (5.0), 0: none
    uint16_t packet_id = 0;
    bool unsubscribe = false;
    bool abandoned = false;  // the connection went away: dropped by the next RunJobs
    size_t next = 0;         // items done
    std::string filters;     // every filter's bytes, back to back
    std::vector<Item> items;
    std::vector<uint8_t> codes;  // SUBACK / UNSUBACK codes of the items done
  };

  session::Session* SessionOf(const net::Connection& connection, uint32_t* index = nullptr);
  uint32_t CreateSession(const SharedString& client_id, bool clean_session);
  // A CONNECT found `index` for its client id: takes it over from its connection, if any, then
  // ends it (Clean Start 1, or expiry interval 0) or resumes it. Returns `index` if resumed,
  // else kNone.
  uint32_t ResumeOrEnd(uint32_t index, const net::Connection& connection, bool clean_start);
  // Ends a session without a connection; a will it still holds (delayed) is published.
  void DestroySession(uint32_t index);
  // Unbinds the session's connection. `will_due`: the connection ended in a way that publishes
  // the will; it is published now, or kept (delayed) when WillDelayS is not 0.
  void Detach(uint32_t index, bool will_due);
  // The session's will's delay: min(Will Delay Interval, session expiry interval).
  uint32_t WillDelayS(uint32_t index);
  // Publishes and drops the session's will, if it holds one (none while shutting down).
  void PublishPendingWill(uint32_t index);
  // `requested_s` within max_session_expiry.
  uint32_t CapExpiry(uint32_t requested_s) const;
  // When the session ends if offline since `since_ms` (OfflineList::kNever: never).
  uint64_t SessionEndMs(uint32_t index, uint64_t since_ms) const;
  // A DISCONNECT's Session Expiry Interval replaces the session's (5.0:3.14.2.2.2).
  void ApplyDisconnectExpiry(uint32_t index, const net::Connection& connection);
  // The connection of a session with a non-zero expiry interval ended: it joins the offline
  // list, and beyond max_offline_sessions broker-wide this shard's longest-offline session is
  // evicted.
  void GoOffline(uint32_t index) { GoOffline(index, services_.now_ms()); }
  // The same, offline since `since_ms` (recovery: before the restart).
  void GoOffline(uint32_t index, uint64_t since_ms);
  // The session leaves the offline list (reconnected or destroyed), if it is on it.
  void LeaveOffline(uint32_t index);
  // Destroys an offline session for expiry or eviction; `why` completes the log line.
  void EndOfflineSession(uint32_t index, const char* why);
  void MarkSessionDirty(uint32_t index);

  // The ACL of the session's connection, compiled again if the auth data was reloaded.
  const auth::ClientAcl& AclOf(SessionEntry& entry);
  // Sets acl_check on each of the session's subscriptions from its current ACL (kNone too:
  // such a subscription stays, and delivers nothing, as under Mosquitto).
  void ClassifySubscriptions(uint32_t index);
  // After a reload: ClassifySubscriptions for every session of this shard, once per version.
  void ApplyAclReload();
  void OnPublish(net::Connection& connection, const mqtt::Publish& publish);
  void OnSubscribe(net::Connection& connection, uint32_t index, const mqtt::Subscribe& subscribe);
  void OnUnsubscribe(net::Connection& connection, uint32_t index,
                     const mqtt::Unsubscribe& unsubscribe);
  // Whether `filters` more filters fit in this iteration's budget with no job waiting.
  bool FitsThisIteration(size_t filters) const;
  // Pauses the connection and queues a job for the packet's filters.
  void StartJob(net::Connection& connection, uint32_t index, uint16_t packet_id,
                const mqtt::TopicList& topics, bool unsubscribe, uint32_t identifier);
  void FinishJob(const FilterJob& job);
  void AbandonJob(uint32_t index);
  // One filter of a SUBSCRIBE (ACL, per-session cap, session record, trie, retained messages
  // as Retain Handling says): its SUBACK return code (3.1.1) or reason code (5.0: the granted
  // QoS, 0x87 refused by the ACL, 0x97 beyond max_subscriptions_per_session). `options_byte`
  // is the requested subscription options byte (§3.8.3.1; only the QoS bits at 3.1.1),
  // `identifier` the SUBSCRIBE's Subscription Identifier (0: none).
  uint8_t SubscribeOne(uint32_t index, std::string_view filter, uint8_t options_byte,
                       uint32_t identifier);
  // One filter of an UNSUBSCRIBE; a filter not held is no error (MQTT-3.10.4-5). Returns its
  // 5.0 UNSUBACK reason code: 0x00, or 0x11 No subscription existed.
  uint8_t UnsubscribeOne(uint32_t index, std::string_view filter);
  // The trie handle of a session's subscription; `offline` is set for a session without a
  // connection (used by shared-subscription groups only).
  sub::Subscriber HandleOf(uint32_t index, uint8_t qos, bool acl_check, bool options = false);
  // Adds, replaces or removes the trie entry of the session filter `filter`: a normal
  // subscription, or a membership of a shared-subscription group ("$share/...", already
  // validated by SubscribeOne).
  void TrieSubscribe(std::string_view filter, sub::Subscriber handle);
  void TrieUnsubscribe(std::string_view filter, sub::Subscriber handle);
  // Whether the session's ACL allows reading only part of what `filter` can match (acl_check).
  bool NeedsAclCheck(SessionEntry& entry, std::string_view filter);
  // The session went online or offline: its group memberships' offline flags follow.
  void UpdateSharedPresence(uint32_t index);
  // A shared delivery that its member could not keep: gives it to the member another matching
  // group chooses (see the header comment). `excluded` is never chosen (the member that failed).
  void RerouteShared(message::Message* message, sub::Subscriber excluded);
  // What EligibleMember needs about one message being routed.
  struct EligibleContext {
    Router* router;
    const message::Message* message;
    sub::Subscriber excluded;  // never eligible (a session index of kNone: nobody)
  };
  // ShareChoice::eligible: a member on another shard is judged by its offline flag alone (the
  // trie checks it); one on this shard must exist, be online and have room for the message.
  static bool EligibleMember(void* context, const sub::Subscriber& member);
  // The ShareChoice of a message matched on this shard: the configured strategy, this shard's
  // cursors, EligibleMember over `context`.
  sub::ShareChoice ChoiceFor(EligibleContext& context, uint64_t publisher_key) const;
  // Adds a match's shared_picks / skips / no_member to the counters.
  void CountShared(const sub::MatchResult& match);
  // Queues the retained messages matching a new subscription's filter (MQTT-3.3.1-6), with
  // RETAIN set (MQTT-3.3.1-8), at min(granted, published) QoS; `acl_check`: the subscription
  // is partly readable, so each is checked against the ACL.
  void DeliverRetained(uint32_t index, uint32_t generation, uint8_t granted_qos,
                       std::string_view filter, bool acl_check, bool options);
  // Stores `message` as its topic's retained message, within the store's bounds (counted when
  // refused). Callers route it right after, whatever the outcome.
  void Retain(const message::MessageRef& message);
  // Routes a message this shard has just created, before it creates another: other shards
  // then receive our messages in sequence order, which RetainedFence relies on (and asserts).
  // `from_client` false: a broker message ($SYS), not counted as a client's unrouted PUBLISH.
  // `publisher_key`: PublisherKey of the publisher's client id (shared_subscription_strategy =
  // hash; 0 otherwise and for broker messages). Returns whether any subscription matched.
  bool Route(const message::MessageRef& message, bool from_client = true,
             uint64_t publisher_key = 0);
  // MQTT-4.7.2-1 / Mosquitto: $SYS/ belongs to the broker; a client's PUBLISH there is
  // acknowledged and dropped (counted).
  void DropSysPublish(net::Connection& connection, const mqtt::Publish& publish);
  // publish_received_qos<qos> of every PUBLISH a client sends, whatever becomes of it.
  void CountPublishReceived(uint8_t qos);
  // What a received PUBLISH is answered with: PUBACK at QoS 1 (MQTT-4.3.2-2), PUBREC at QoS 2
  // (MQTT-4.3.3-2), nothing at QoS 0. At 5.0 with `reason` (e.g. 0x10 No matching subscribers,
  // 0x87 Not authorized); 3.1.1 acks have no reason code.
  void AcknowledgePublish(net::Connection& connection, const mqtt::Publish& publish,
                          mqtt::ReasonCode reason = mqtt::ReasonCode::kSuccess);
  // Gauge bookkeeping: a session's queued and in-flight counts before an operation, and the
  // difference applied after it.
  struct Levels {
    int64_t queued = 0;
    int64_t inflight = 0;
    int64_t subscriptions = 0;
  };
  static Levels LevelsOf(session::Session& session);
  void AccountLevels(const Levels& before, session::Session& session);
  enum class Delivery : uint8_t {
    kQueued,
    kSkipped,      // session gone, ACL, offline QoS 0: nothing about the session's room
    kSessionFull,  // dropped for the session's queue or byte cap, or the memory budget
  };
  // acl_check: deliver only if the session may read the message's topic (sub::Subscriber).
  // options: a matching subscription has 5.0 delivery options (sub::Subscriber::options), so
  // the session's subscriptions decide No Local, the QoS and Retain As Published.
  // The queued reference is taken from `references` if given (its message is `message`),
  // else made with Share.
  // `shared`: chosen by a shared-subscription group; `may_reroute`: if the session cannot keep it,
  // it is re-routed (RerouteShared) at QoS 1/2. `options`: the subscription handle's
  // sub::Subscriber::options (the session matches its own option-bearing subscriptions).
  Delivery DeliverLocal(uint32_t index, uint32_t generation, uint8_t qos, message::Message* message,
                        bool retain, bool acl_check, message::MessageRefBatch* references = nullptr,
                        bool shared = false, bool may_reroute = false, bool options = false);
  // max_memory: true if a delivery at `qos` to this session is shed (counted) because the
  // budget is under pressure and the session has a backlog.
  bool ShedForMemory(uint32_t index, SessionEntry& entry, uint8_t qos);
  // Encodes what the session may send now into its connection's output buffer (Flush).
  void WriteSessionOutput(SessionEntry& entry);
  // `retained` was queued to the session for a new subscription (retained_fence.h).
  void RecordRetainedDelivery(uint32_t index, uint32_t generation,
                              const message::Message& retained);
  // The stamp of the next message this shard creates (message.h, "Origin").
  // `session` / `generation`: the publishing session, if any (No Local).
  message::Message::Origin NextOrigin(uint32_t session = message::MessageOrigin::kNoSession,
                                      uint32_t generation = 0) {
    return {.shard = static_cast<uint16_t>(shard_),
            .sequence = ++last_sequence_,
            .session = session,
            .generation = generation};
  }
  void OnRecord(std::span<const Slot> record);
  void PublishWill(uint32_t index);

  // ---- Cluster (router_cluster.cc) ----
  struct Cluster;
  // A session of this shard came to hold / stopped holding `filter` (see AttachCluster).
  void ClusterAcquire(std::string_view filter) {
    if (cluster_ != nullptr) ClusterInterestChange(filter, /*acquire=*/true);
  }
  void ClusterRelease(std::string_view filter) {
    if (cluster_ != nullptr) ClusterInterestChange(filter, /*acquire=*/false);
  }
  void ClusterInterestChange(std::string_view filter, bool acquire);
  // ClusterInterestChange for a "$share/..." filter (router_cluster_shared.cc): false if
  // `filter` is no shared filter.
  bool ClusterShareChange(std::string_view filter, bool acquire);
  // Whether Route leaves the groups out for `message`: NATS chooses their member (see
  // AttachClusterShares). If so, ForwardToCluster checks that the link took the message, and
  // else the groups choose locally after all (`publisher_key` as for Route).
  bool ClusterChoosesShares(message::Message* message, uint64_t publisher_key);
  void ForwardToClusterWithShares(const message::Message& message);
  // Delivers `message` to the group members in match_ (the picks of MatchGroup or MatchShared)
  // at min(`qos`, their QoS): other shards' through the outbox.
  void DeliverShared(message::Message* message, uint8_t qos, bool may_reroute);
  // After local routing of a client's message (PUBLISH or will): publishes it on the link.
  void ForwardToCluster(const message::Message& message) {
    if (cluster_ != nullptr) ForwardToClusterWithShares(message);  // router_cluster_shared.cc
  }
  void PublishToCluster(const message::Message& message);
  // Receiving side of a cluster message (OnClusterMessage after its checks, and retransmits):
  // delivery to this shard's matching non-shared subscriptions. `sent_at_us`: the
  // Ringmq-Sent-At header's value (0: none), observed as the hop's latency.
  // `mqtt5`: the properties the message carried (ClusterMqtt5Fields).
  void DeliverFromCluster(std::string_view subject, uint8_t qos, std::string_view payload,
                          uint64_t sent_at_us = 0, const message::Mqtt5Fields& mqtt5 = {});
  // The same for a topic already mapped (batches carry topics).
  void DeliverTopicFromCluster(std::string_view topic, uint8_t qos, std::string_view payload,
                               const message::Mqtt5Fields& fields);
  // Batching (router_cluster_batch.cc): appends a QoS 0 message on `subject` to the batches of
  // the remote links that match it; false if it must take the plain path (too large for a
  // batch, no interest table). True also when no remote link matches (nothing to send).
  bool BatchToCluster(const message::Message& message, std::string_view subject);
  // A batch addressed to this shard's link: its records delivered in order.
  void OnClusterBatch(const cluster::NatsMessage& message);
  // Publishes the batch of remote link `slot` if it has records.
  void FlushClusterBatch(uint32_t slot);
  // MQTT 5.0 properties across nodes (cluster/mqtt5_headers.h). Appends the property fields of
  // `message` to the cluster's header fields; false if it has more than they can hold (counted:
  // the message is not forwarded).
  bool AppendClusterPropertyHeaders(const message::Message& message,
                                    std::vector<cluster::nats::HeaderField>& headers);
  // The 5.0 fields of a received message from what `decoder` read (its block stays in the
  // cluster's scratch until the next message); false if it expired on the way (counted, not
  // delivered, 5.0:3.3.2.3.3).
  bool ClusterMqtt5Fields(const cluster::Mqtt5HeaderDecoder& decoder,
                          message::Mqtt5Fields& fields);
  // What is left of `message`'s Message Expiry Interval, in ms, if it expires (MQTT-3.3.2-6):
  // what a forward carries (as a header or in a batch record).
  std::optional<uint64_t> ClusterExpiryLeftMs(const message::Message& message) const;
  // The local deadline of a received message from the ms it had left (none: 0); false if it
  // expired on the way (counted, not delivered, 5.0:3.3.2.3.3).
  bool ClusterExpiryDeadline(std::optional<uint64_t> left_ms, uint64_t& deadline_ms);

  // ---- Cluster acknowledgements (router_cluster_acks.cc) ----
  struct ClusterAcks;
  // A message on the control subjects of the acks layer: handled, returns true.
  bool OnClusterControl(const cluster::NatsMessage& message);
  // A data message with a Ringmq-Id: acknowledged; false if it is a duplicate (not delivered).
  bool AcceptClusterData(const cluster::NatsMessage& message);
  // The same for a queue copy (or a group retransmit) that a member of group (share_name,
  // filter) on this shard takes: the ack names the group; the duplicate window is the origin's for that group.
  bool AcceptClusterGroupData(const cluster::NatsMessage& message, std::string_view share_name,
                              std::string_view filter);
  // Message `id` from `origin` through the duplicate window: true if it is to be delivered (new,
  // or too old to tell: counted), false for a duplicate (counted).
  bool FirstSeen(std::string_view origin, uint64_t id);
  // Groups whose last member link went (silent, or its last member left): forgotten by the
  // pending messages, which may then be acknowledged to their publishers.
  void ForgetClusterGroups();
  // PublishToCluster of a QoS 1/2 message on `subject`: if remote links must acknowledge it,
  // tracks it and sets the id header's value and the reply subject; returns whether it did.
  bool TrackClusterMessage(const message::Message& message, std::string_view subject,
                           std::string& id_text, std::string_view& reply);
  // AcknowledgePublish: true if the ack waits for the cluster (or behind one that does).
  bool DeferClusterAck(net::Connection& connection, const mqtt::Publish& publish,
                       mqtt::ReasonCode reason);
  void ReleaseClusterAcks();
  // Publishes the ids acknowledged to the origin link of ack subject `reply`, then clears them.
  void SendAcks(std::string_view reply, std::string& ids);
  // Retained across nodes (router_cluster_retained.cc).
  struct ClusterRetainedSink;
  void AttachClusterRetained();
  void PublishRetainedToCluster(const message::Message& message);
  void ApplyClusterRetained(std::string_view topic, std::string_view payload, uint8_t qos,
                            uint64_t expires_at_unix_ms, std::span<const uint8_t> properties);

  // ---- Client ids across nodes (router_cluster_owner.cc) ----
  // OnConnect bound the session `index` for `connection`: claims its id (see
  // StartClusterOwnership).
  void ClaimClientId(uint32_t index, const mqtt::Connect& connect) {
    if (ownership_ != nullptr) ClaimOnConnect(index, connect);
  }
  void ClaimOnConnect(uint32_t index, const mqtt::Connect& connect);
  // Adds a claim to the shard's batch (sent first if the claim would overflow it).
  void PublishClaim(uint64_t key, bool clean_start, std::string_view client_id);
  void SendClaimBatch(ClusterOwnership::FlushReason reason);
  // A MSG of the link: true if it is a claim (handled or passed on), false if not one of the
  // claim subscriptions.
  bool OnClaimMessage(const cluster::NatsMessage& message);
  // On the client id's home shard. `reply`: the claim's NATS reply subject (a claimant that
  // means to resume the session: where its state goes).
  void HandleClaim(const cluster::Claim& claim, std::string_view reply);
  void YieldToClaim(uint32_t index, const cluster::Claim& claim, std::string_view reply);
  // Publishes the session's subscriptions and deliveries to `reply` (cluster/session_state.h).
  void SendSessionState(uint32_t index, uint64_t key, std::string_view reply);
  // A state another node sent for a session this shard claimed: merged into it.
  void OnSessionState(std::string_view bytes);

  // ---- Persistent sessions across nodes (router_cluster_session.cc; session lane) ----
  // OnConnect in two steps, so that a CONNECT can be bound later: what binding needs from the
  // CONNECT (copied), and the binding of the connection to session `index` (attached, its
  // will set, the CONNACK queued with `session_present`).
  BindTerms TermsOfConnect(const net::Connection& connection, const mqtt::Connect& connect,
                           uint32_t expiry_s, uint32_t requested_expiry_s) const;
  void BindConnect(net::Connection& connection, uint32_t index, bool session_present,
                   BindTerms terms);
  // A persistent CONNECT for an id with no session here: if the bucket is ready, creates the
  // session unbound, claims the id, reads its record, pauses the connection and returns true
  // (the CONNACK waits); false: bind at once, as without the bucket.
  bool HoldConnack(net::Connection& connection, BindTerms& terms);
  // Binds a held CONNECT: session present if `moved` (the state arrived and merged).
  void CompleteHeld(ClusterSessions::Wait* wait, bool moved);
  // A MSG on this shard's inbox: true if it was one (record reads, writes, bucket creation).
  bool OnSessionInboxMessage(const cluster::NatsMessage& message);
  // Each loop iteration: the bucket's creation, the waits' deadlines.
  void SessionsTick(uint64_t now_ms);
  // A bucket creation failed or went unanswered: counted, asked again after a backoff.
  void BucketUnavailable(uint64_t now_ms);
  // The session `index` started on this node (or moved to it): its record names this node.
  void WriteSessionRecord(uint32_t index);
  // The session `index` ends here: its record, if JetStream stored it and nothing newer
  // replaced it, is deleted (not when `moving`: the claimant writes its own).
  void DeleteSessionRecord(uint32_t index, bool moving);
  void ForgetSessionWait(net::Connection& connection);
  // OnSessionState merged a state into session `index`: a CONNACK waiting for it goes.
  void OnSessionMerged(uint32_t index);

  // ---- Persistence (router_persist.cc) ----
  struct Persist;
  // The session's sid, 0 if it is not durable.
  uint64_t SidOf(uint32_t index) const;
  // After OnConnect set its expiry, or a DISCONNECT changed it: the session becomes durable
  // (kSession), stays so with its new expiry, or stops being durable (kSessionEnd).
  void PersistSession(uint32_t index);
  void PersistOffline(uint32_t index);
  void PersistEnd(uint32_t index);
  void PersistSubscribe(uint32_t index, std::string_view filter,
                        const session::SubscriptionOptions& options);
  void PersistUnsubscribe(uint32_t index, std::string_view filter);
  void PersistEnqueue(uint32_t index, const message::Message& message, uint8_t qos, bool retain);
  void PersistPacketId(uint32_t index, persist::RecordType type, uint16_t packet_id);
  // A delivery restored in flight (a moved session, router_cluster_owner.cc): logged as a
  // snapshot logs one, so recovery rebuilds it with its packet id and stage. `message` null: a
  // released QoS 2 delivery (PUBREL due).
  void PersistRestored(uint32_t index, const message::Message* message, uint8_t qos, bool retain,
                       uint16_t packet_id);
  void PersistRetained(const message::Message& message, uint64_t version, bool deleted);
  // P side: `message` went to `shard` (it will confirm); S side: a message of another shard
  // arrived here; its origin's confirmation follows once this epoch is durable.
  void PersistSentTo(uint32_t shard, const message::Message& message);
  void PersistArrived(uint32_t origin_shard, uint64_t sequence);
  void OnDurable(uint32_t shard, uint64_t sequence);
  // Holds the connection's output if records were appended (or messages sent to other shards)
  // since the last call, or `always` (see the header comment).
  void HoldIfLogged(net::Connection& connection, bool always = false);
  // Whether a QoS 1/2 PUBLISH may be accepted now (the log can take it).
  bool PersistAvailable() const;
  // Recovery (StartPersistence).
  void RecoverSessions();
  // The segment size beyond which a compaction starts (router_persist.cc).
  uint64_t CompactThreshold() const;

  const uint32_t shard_;
  const uint32_t shard_count_;
  SharedState& shared_;
  metrics::ShardCounters& counters_;
  net::ConnectionContext& context_;
  ShardServices& services_;
  session::SessionLimits limits_;  // every session of this shard refers to it
  uint32_t max_filters_per_iteration_ = 0;
  uint32_t filters_this_iteration_ = 0;  // SUBSCRIBE / UNSUBSCRIBE filters done since RunJobs
  bool queue_full_disconnects_ = false;
  bool acl_enabled_ = false;           // acl_file configured
  bool memory_budget_ = false;         // max_memory configured
  uint32_t persistent_session_expiry_s_ = kExpiryNever;  // 3.1 / 3.1.1 clean session 0
  uint32_t max_session_expiry_s_ = 0;                    // 0: no cap
  sub::ShareStrategy share_strategy_ = sub::ShareStrategy::kRoundRobin;
  uint32_t max_offline_sessions_ = 0;                    // broker-wide
  uint32_t max_message_expiry_s_ = 0;                    // 0: no cap
  uint64_t acl_version_ = 0;           // auth data the subscriptions were classified under
  uint64_t max_disk_bytes_ = 0;        // 0: no bound

  SessionTable sessions_;
  // Each session's expiry interval in seconds, by slot (beside the table: SessionEntry's size
  // is pinned; 4 bytes per slot ever used).
  std::vector<uint32_t> expiry_s_;
  // Sessions without a connection that outlive it, oldest first and by due time.
  session::OfflineList offline_;
  std::vector<uint32_t> dirty_sessions_;
  std::vector<net::Connection*> closing_;  // OnClosing, handled first in Flush
  std::vector<uint32_t> slow_consumers_;   // sessions to disconnect (queue_full_policy)
  std::deque<FilterJob> jobs_;             // in arrival order; at most one per connection

  sub::MatchResult match_;
  sub::MatchResult reroute_match_;  // RerouteShared may run while match_ is iterated
  Outbox outbox_;
  // Sources whose last drain stopped at its budget (bit source % 64 of word source / 64).
  std::vector<uint64_t> pending_mail_;
  size_t drained_records_ = 0;  // by the last DrainMailboxes
  uint64_t last_sequence_ = 0;  // of the last message created here
  RetainedFence retained_fence_;
  std::unique_ptr<metrics::SysTopics> sys_topics_;  // on the publishing shard, once used
  std::unique_ptr<Persist> persist_;                 // null: persistence off
  std::unique_ptr<Cluster> cluster_;                 // null: not clustered
  std::unique_ptr<ClusterAcks> cluster_acks_;        // null: no acks between nodes
  std::unique_ptr<ClusterOwnership> ownership_;      // null: no claims (StartClusterOwnership)
  // null: no key-value records (the first ClusterTick after StartClusterOwnership creates it)
  std::unique_ptr<ClusterSessions> cluster_sessions_;
  uint32_t session_wait_ms_ = 0;  // [cluster] session_wait_ms
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_ROUTER_H_
