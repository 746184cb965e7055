#include "metrics/exposition.h"

#include <algorithm>
#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/assert.h"

namespace ringmq::metrics {
namespace {

enum class Type : uint8_t { kCounter, kGauge, kHistogram };

struct Family {
  std::string_view name;
  Type type;
  std::string_view help;
};

// Every family, in exposition order. SeriesOf() below names families from this table.
constexpr Family kFamilies[] = {
    // Connections and CONNECT.
    {"ringmq_connections", Type::kGauge, "Open TCP connections, closing ones included."},
    {"ringmq_connections_accepted_total", Type::kCounter, "TCP connections accepted."},
    {"ringmq_connections_closed_total", Type::kCounter, "TCP connections closed, any reason."},
    {"ringmq_accept_errors_total", Type::kCounter,
     "Failed accepts (e.g. EMFILE); accepting resumes after one tick."},
    {"ringmq_connections_handed_off_total", Type::kCounter,
     "Connections moved to the home shard of their client id before CONNACK."},
    {"ringmq_connect_outcomes_total", Type::kCounter,
     "CONNECT outcomes: result accepted, refused (CONNACK code 1-5 sent), closed_malformed, "
     "closed_silent_policy (refusal closed without CONNACK) or connect_timeout, by reason."},
    {"ringmq_connect_silent_closes_total", Type::kCounter,
     "Refusals closed without CONNACK under reject_policy silent, all reasons."},
    {"ringmq_clients_connected", Type::kGauge, "MQTT clients connected (CONNECT accepted)."},
    {"ringmq_max_connections", Type::kGauge, "The max_connections setting."},
    {"ringmq_connect_accepted_by_level_total", Type::kCounter,
     "CONNECTs accepted, by protocol level (3.1, 3.1.1, 5.0)."},
    {"ringmq_disconnects_sent_total", Type::kCounter,
     "DISCONNECT packets sent to MQTT 5.0 clients, by reason code."},
    {"ringmq_closes_lingered_total", Type::kCounter,
     "MQTT 5.0 closes that, after their DISCONNECT was sent, shut down the sending side and read "
     "on until the client's EOF, 256 KiB or 2 s."},
    {"ringmq_linger_discarded_bytes_total", Type::kCounter,
     "Bytes received and discarded by lingering closes."},
    {"ringmq_closes_linger_reset_total", Type::kCounter,
     "Lingering closes that reached 256 KiB or 2 s before the client's EOF and so ended with a "
     "reset (RST)."},
    {"ringmq_topic_aliases_total", Type::kCounter,
     "MQTT 5.0 PUBLISHes with a Topic Alias: inbound use set (alias mapped) or used (topic "
     "taken from the alias); deliveries use out_set (topic sent with a new alias) or out_used "
     "(alias sent instead of the topic)."},
    {"ringmq_receive_maximum_exceeded_total", Type::kCounter,
     "MQTT 5.0 connections closed (DISCONNECT 0x93) for more QoS 2 PUBLISHes awaiting PUBREL "
     "than the broker's Receive Maximum."},
    {"ringmq_keepalive_timeouts_total", Type::kCounter,
     "Connections closed after 1.5 keepalive periods without a packet."},
    {"ringmq_protocol_violations_total", Type::kCounter,
     "Connections closed for a malformed packet after CONNECT."},
    {"ringmq_client_disconnects_total", Type::kCounter, "DISCONNECT packets received."},
    {"ringmq_output_overflows_total", Type::kCounter,
     "Connections closed because the peer did not read its replies."},
    {"ringmq_slow_consumer_disconnects_total", Type::kCounter,
     "Subscribers disconnected for a full queue (queue_full_policy disconnect)."},
    // Listeners (the default one and each [[listener]] table), summed over shards.
    {"ringmq_listener_connections", Type::kGauge,
     "Open TCP connections by listener, closing ones included."},
    {"ringmq_listener_connections_accepted_total", Type::kCounter,
     "TCP connections accepted by listener."},
    {"ringmq_listener_clients_connected", Type::kGauge,
     "MQTT clients connected (CONNECT accepted) by listener."},
    {"ringmq_listener_max_connections", Type::kGauge,
     "The listener's max_connections setting; 0: only the broker-wide bound."},
    {"ringmq_listener_connect_outcomes_total", Type::kCounter,
     "CONNECT outcomes by listener: accepted, or refused (with a CONNACK, closed silently or "
     "malformed; ringmq_connect_outcomes_total has the reasons)."},
    {"ringmq_listener_received_bytes_total", Type::kCounter,
     "Bytes received from clients by listener (as read from the socket)."},
    {"ringmq_listener_sent_bytes_total", Type::kCounter,
     "Bytes sent to clients by listener (as written to the socket)."},
    // Sessions and subscriptions.
    {"ringmq_sessions", Type::kGauge,
     "Sessions by state: online (connected) or offline (persistent, kept without a client)."},
    {"ringmq_sessions_created_total", Type::kCounter, "Sessions created."},
    {"ringmq_session_takeovers_total", Type::kCounter,
     "CONNECTs that took over the session of a connected client."},
    {"ringmq_sessions_expired_total", Type::kCounter,
     "Offline sessions destroyed when their session expiry interval ran out."},
    {"ringmq_sessions_evicted_total", Type::kCounter,
     "Offline persistent sessions destroyed to stay within max_offline_sessions."},
    {"ringmq_subscriptions", Type::kGauge, "Subscriptions held by sessions."},
    {"ringmq_subscriptions_added_total", Type::kCounter, "New subscriptions (SUBSCRIBE)."},
    {"ringmq_subscriptions_removed_total", Type::kCounter, "Subscriptions removed (UNSUBSCRIBE)."},
    {"ringmq_subscribe_denied_total", Type::kCounter,
     "SUBSCRIBE filters the ACL refused (SUBACK 0x80)."},
    {"ringmq_subscribe_filtered_total", Type::kCounter,
     "SUBSCRIBE filters granted that the ACL allows only in part: each message is checked."},
    {"ringmq_deliveries_denied_total", Type::kCounter,
     "Deliveries not made: the subscriber's ACL does not allow reading the topic."},
    {"ringmq_deliveries_no_local_total", Type::kCounter,
     "MQTT 5.0 deliveries not made: No Local, and the subscriber published the message."},
    {"ringmq_messages_expired_total", Type::kCounter,
     "Deliveries not sent: the message's Message Expiry Interval passed first (MQTT 5.0)."},
    {"ringmq_publish_sent_mqtt5_total", Type::kCounter,
     "PUBLISH packets encoded for MQTT 5.0 subscribers (included in ringmq_messages_sent_total)."},
    {"ringmq_subscribe_limit_total", Type::kCounter,
     "New SUBSCRIBE filters beyond max_subscriptions_per_session (SUBACK 0x80)."},
    {"ringmq_inbound_qos2_limit_total", Type::kCounter,
     "Connections closed with more than max_inbound_qos2_pending QoS 2 PUBLISHes awaiting "
     "PUBREL."},
    {"ringmq_subscribe_deferred_total", Type::kCounter,
     "SUBSCRIBE/UNSUBSCRIBE packets continued over later loop iterations "
     "(max_filters_per_iteration)."},
    {"ringmq_shared_deliveries_total", Type::kCounter,
     "Messages handed to the member a shared-subscription group chose."},
    {"ringmq_shared_skips_total", Type::kCounter,
     "Shared-subscription group members passed over: offline, or no room on the publisher's "
     "shard."},
    {"ringmq_shared_no_member_total", Type::kCounter,
     "Messages for which no member of a shared-subscription group was online with room (QoS 0 "
     "dropped; QoS 1/2 kept by the strategy's member)."},
    {"ringmq_shared_rerouted_total", Type::kCounter,
     "QoS 1/2 messages a shared-subscription member could not keep (session ended, queue full) "
     "given to another member of its group."},
    {"ringmq_shared_groups", Type::kGauge, "Shared-subscription groups."},
    {"ringmq_receive_paused_total", Type::kCounter,
     "Socket reads stopped because max_packet_size bytes waited behind a deferred SUBSCRIBE."},
    {"ringmq_retained_messages", Type::kGauge, "Retained messages stored, $SYS included."},
    {"ringmq_retained_walk_truncated_total", Type::kCounter,
     "SUBSCRIBE filters whose retained messages stopped at the first one the session had no "
     "room for (queue or byte cap, memory budget); the rest were not sent."},
    {"ringmq_retained_refused_total", Type::kCounter,
     "Retained PUBLISHes not stored (max_retained_messages / max_retained_bytes); still routed."},
    {"ringmq_retained_live_superseded_total", Type::kCounter,
     "Live copies from another shard not delivered: the session just got that message, or a newer "
     "one of the topic from that shard, as retained."},
    {"ringmq_retained_fence_full_total", Type::kCounter,
     "Retained deliveries sent without that protection: the shard's fence entries were at their "
     "bound."},
    // Persistence.
    {"ringmq_persist_records_total", Type::kCounter, "Records appended to the persistence log."},
    {"ringmq_persist_bytes_written_total", Type::kCounter,
     "Bytes written to the persistence log (snapshots included)."},
    {"ringmq_persist_syncs_total", Type::kCounter, "fdatasyncs of the persistence log completed."},
    {"ringmq_persist_write_errors_total", Type::kCounter,
     "Persistence log writes or fdatasyncs that failed (ENOSPC, EIO, ...); retried with back-off."},
    // Cluster over NATS (docs/cluster.md).
    {"ringmq_cluster_messages_total", Type::kCounter,
     "Messages that crossed to (direction=out) or from (direction=in) the NATS cluster."},
    {"ringmq_cluster_bytes_total", Type::kCounter,
     "Payload bytes of those messages, by direction."},
    {"ringmq_cluster_dropped_total", Type::kCounter,
     "Cluster messages not forwarded or not delivered, by reason: echo (published by this "
     "node), overlap (an extra copy of overlapping subscriptions), uncarried_topic (no NATS "
     "subject for the topic), unmappable_subject (no MQTT topic for the subject), "
     "link_refused (the NATS link had no room), properties_too_many and properties_too_large "
     "(MQTT 5.0 properties over a NATS header block's bounds), expired_in_transit (no Message "
     "Expiry Interval left on receipt)."},
    // MQTT 5.0 properties across nodes (props lane).
    {"ringmq_cluster_properties_dropped_total", Type::kCounter,
     "NATS header fields of received messages that named an MQTT 5.0 property but gave no "
     "valid one: left out, the message delivered without it."},
    {"ringmq_cluster_hop_latency_seconds", Type::kHistogram,
     "Time from a message's PUBLISH on one node to its delivery on this shard of another node "
     "(wall clocks of both nodes: their skew adds to it)."},
    {"ringmq_cluster_link_events_total", Type::kCounter,
     "NATS connection events of the shards' links: connect, reconnect, disconnect."},
    // sacks lane: at least once for shared-subscription groups across nodes.
    {"ringmq_cluster_group_acks_total", Type::kCounter,
     "Queue copies (and group retransmits) a member on this shard took and acknowledged in "
     "its group's name to the publisher's node."},
    {"ringmq_cluster_group_retransmits_total", Type::kCounter,
     "QoS 1/2 messages sent again to a group's rtq subject (no member acknowledged in time), "
     "also counted in ringmq_cluster_retransmits_total."},
    {"ringmq_cluster_groups_forgotten_total", Type::kCounter,
     "Shared-subscription groups whose last member link went silent or left: pending messages "
     "no longer wait for them."},
    {"ringmq_cluster_remote_groups", Type::kGauge,
     "Shared-subscription groups (NATS queue names) in the shards' interest tables."},
    // natstls lane
    {"ringmq_cluster_nats_tls_handshakes_total", Type::kCounter,
     "TLS handshakes of the shards' NATS links (main and share), by result: ok, failed "
     "(certificate refused, name mismatch, no client certificate, timeout...; the log says "
     "why)."},
    // jwt lane
    {"ringmq_cluster_link_auth_refused_total", Type::kCounter,
     "NATS connections of the shards' links (main and share) ended by an authorization error "
     "(-ERR 'Authorization Violation', user or account authentication expired or revoked)."},
    {"ringmq_cluster_nats_subscriptions", Type::kGauge,
     "NATS subscriptions the shards' links hold for their sessions' filters."},
    // Cluster acknowledgements (QoS 1/2 at least once across nodes).
    {"ringmq_cluster_acks_total", Type::kCounter,
     "Message ids acknowledged between nodes: sent by this node's shards (direction=out) for "
     "messages they received, received (direction=in) for messages they forwarded."},
    {"ringmq_cluster_retransmits_total", Type::kCounter,
     "QoS 1/2 messages sent again to a remote link that had not acknowledged them in time or "
     "whose connection to NATS was renewed."},
    {"ringmq_cluster_duplicates_total", Type::kCounter,
     "Messages received again from another node: dropped (result=dropped, already delivered) "
     "or delivered because older than the duplicate window (result=unknown)."},
    {"ringmq_cluster_ack_pending", Type::kGauge,
     "QoS 1/2 messages forwarded and not yet acknowledged by every remote link that must."},
    {"ringmq_cluster_ack_pending_bytes", Type::kGauge, "Payload bytes of those messages."},
    {"ringmq_cluster_ack_held_back_total", Type::kCounter,
     "Times a publisher's connection was paused because pending messages reached their bound."},
    {"ringmq_cluster_ack_untracked_total", Type::kCounter,
     "QoS 1/2 messages forwarded without acknowledgements (the span of ids kept was full)."},
    {"ringmq_cluster_links_forgotten_total", Type::kCounter,
     "Remote links forgotten after link_timeout_ms of silence."},
    {"ringmq_cluster_ack_forgotten_released_total", Type::kCounter,
     "Pending messages acknowledged to their publisher because the last links they waited for "
     "were forgotten."},
    {"ringmq_cluster_remote_links", Type::kGauge,
     "Other nodes' links in the shards' interest tables."},
    {"ringmq_cluster_interest_announcements_total", Type::kCounter,
     "Interest announcements between links: sent, received, gap (one was lost: a snapshot is "
     "asked), refused (a link or subject beyond the table's bounds)."},
    {"ringmq_cluster_control_refused_total", Type::kCounter,
     "Acks, announcements and retransmits the NATS link refused (its outbound bound)."},
    {"ringmq_cluster_owner_claims_total", Type::kCounter,
     "Client-id claims between nodes, by event: sent, received (from other nodes), forwarded "
     "(to the id's home shard), kept (older than the session's own claim), invalid, refused "
     "(by the NATS link), dropped (mailbox overflow)."},
    {"ringmq_cluster_owner_takeovers_total", Type::kCounter,
     "Connections closed because their client id connected on another node (MQTT-3.1.4-2)."},
    {"ringmq_cluster_owner_sessions_ended_total", Type::kCounter,
     "Sessions ended on this node because their client id connected on another node, by "
     "state: dropped (clean or ending anyway), moved (a persistent session the claimant "
     "resumes: its state sent there), not_moved (its state could not be sent)."},
    {"ringmq_cluster_owner_states_total", Type::kCounter,
     "Session states received from other nodes, by result: merged, stale (the session had "
     "claimed again or ended), invalid."},
    {"ringmq_cluster_owner_state_left_out_total", Type::kCounter,
     "Subscriptions and messages of moved sessions left out: over the NATS max_payload."},
    // claims lane: claim batches.
    {"ringmq_cluster_owner_claim_batches_total", Type::kCounter,
     "Claim batches (one NATS message each), by event: sent with reason window (its "
     "claim_batch_us ended), count (claim_batch_max claims), bytes (claim_batch_bytes), "
     "resume (at the end of the loop iteration: a claim in it resumes its session); received "
     "(from other nodes)."},
    // Shared subscriptions across the cluster (docs/cluster.md, "Shared subscriptions").
    {"ringmq_cluster_share_messages_total", Type::kCounter,
     "NATS queue-group messages the shards' share links received, by outcome: delivered (given "
     "to a member of the group), no_member (no member here could take it: dropped); "
     "not_forwarded: a message the link did not take (uncarried topic, too large, no room), "
     "whose groups chose among this node's members."},
    {"ringmq_cluster_share_link_events_total", Type::kCounter,
     "NATS connection events of the shards' share links: connect, reconnect, disconnect."},
    {"ringmq_cluster_share_subscriptions", Type::kGauge,
     "NATS queue subscriptions the shards' share links hold for their shared-subscription "
     "groups."},
    // Session lane: persistent sessions across nodes (docs/cluster.md "Where a persistent
    // session lives").
    {"ringmq_cluster_session_connacks_total", Type::kCounter,
     "Persistent CONNECTs without a session on this node, by what their CONNACK waited for: "
     "held (the key-value record was read), moved (the session's state arrived: session "
     "present 1), none (no record, or this node's: present 0), timeout (the record named "
     "another node, no state within session_wait_ms: present 0), read_error (present 0), "
     "taken_over (the session went to a newer connection meanwhile), abandoned (the client "
     "closed first), not_held (the bound of waiting CONNECTs: answered at once), no_bucket "
     "(the shard has no ready key-value bucket yet: answered at once, present 0)."},
    {"ringmq_cluster_session_bucket_events_total", Type::kCounter,
     "The key-value bucket of session records as each shard learns of it: ready (created or "
     "found; once per shard), unavailable (a creation refused or unanswered: asked "
     "again after 250 ms, doubling up to 5 s)."},
    {"ringmq_cluster_session_records_total", Type::kCounter,
     "Ownership records of persistent sessions in the JetStream key-value bucket: written, "
     "acked (stored), deleted (the session ended here), kept (not deleted: another node wrote "
     "a newer record), error (refused, JetStream errors), skipped (not "
     "written: bucket not ready, link down, client id over 1024 bytes)."},
    {"ringmq_cluster_session_inflight_total", Type::kCounter,
     "In-flight QoS 1/2 state of sessions moved to this node: restored (a delivery resent with "
     "its packet id, a PUBREL due, an inbound QoS 2 packet id kept), requeued (a delivery "
     "queued anew with a new packet id: the session was bound already), dropped (a released "
     "delivery or an inbound QoS 2 packet id not kept: the session was bound already, the id "
     "named twice, or max_inbound_qos2_pending)."},
    // Retained messages cluster-wide (docs/cluster.md "Retained messages").
    {"ringmq_cluster_retained_updates_total", Type::kCounter,
     "Retained updates published to the retained stream (direction=out) or applied from it "
     "to this node's retained store (direction=in)."},
    {"ringmq_cluster_retained_dropped_total", Type::kCounter,
     "Retained updates not carried or not applied, by reason: store_refused (over the retained "
     "store's bounds), link_refused (the NATS link had no room), uncarried_topic, "
     "unmappable_subject, duplicate (a stream sequence already applied), properties_too_many "
     "(more MQTT 5.0 property fields than a NATS header block holds: kept on this node)."},
    {"ringmq_cluster_retained_stream_events_total", Type::kCounter,
     "The retained stream's events: ack (PubAck of an update), error (JetStream error, no "
     "responders or timeout), consumer_start, gap (consumer gap or silence: recreated), resend (an "
     "update sent again: error or no PubAck in time), untracked (sent once, over the bound of "
     "updates awaiting a PubAck)."},
    // retained5 lane: MQTT 5.0 properties of retained messages in the stream.
    {"ringmq_cluster_retained_properties_dropped_total", Type::kCounter,
     "Header fields of retained stream messages that named an MQTT 5.0 property but gave no "
     "valid one (or a header block that did not parse): left out, the update applied without "
     "it."},
    // batch lane: QoS 0 batches between nodes (docs/cluster.md "Batching QoS 0").
    {"ringmq_cluster_batches_total", Type::kCounter,
     "QoS 0 batches between nodes (one NATS message each): published by this node's shards "
     "(direction=out), received for their links (direction=in)."},
    {"ringmq_cluster_batch_messages_total", Type::kCounter,
     "QoS 0 messages in those batches: appended, once per destination link (direction=out), "
     "delivered from received batches (direction=in)."},
    {"ringmq_cluster_batch_events_total", Type::kCounter,
     "Batching events: flush_bound (a batch flushed early at batch_bytes_max), oversize (a "
     "message too large for a batch, sent on its plain subject), mqtt5 (a message batched "
     "with MQTT 5.0 properties or an expiry in its record), refused (messages of a batch "
     "the NATS link had no room for: dropped, at most once), invalid (a received batch or "
     "record that did not decode: dropped)."},
    // weak lane (issue 16): duplicate node names (docs/cluster.md, "Node names").
    {"ringmq_cluster_node_name_conflicts_total", Type::kCounter,
     "Announcements received from another ringmq node with this node's node_name. The node "
     "started later stops (exit status 1); the one started earlier counts them and goes on."},
    {"ringmq_cluster_link_memory_refused_total", Type::kCounter,
     "Publishes the shards' NATS links refused because the accounted memory reached max_memory "
     "(their buffers do not grow then; counted in ringmq_cluster_dropped_total "
     "reason=link_refused too)."},
    {"ringmq_cluster_link_buffer_bytes", Type::kGauge,
     "Capacity of the shards' NATS link buffers (output, held, parser, send; with TLS, the TLS "
     "buffers and an estimate of OpenSSL's state), charged to max_memory."},
    // MQTT bridges (docs/bridges.md). bridge lane: the ringmq_bridge_ families but
    // ringmq_bridge_local_connections carry a `bridge` label (its name), no shard label.
    {"ringmq_bridge_messages_total", Type::kCounter,
     "Messages a bridge queued for the remote broker (direction=out) or for this broker "
     "(direction=in)."},
    {"ringmq_bridge_dropped_total", Type::kCounter,
     "Messages a bridge dropped at its queue bounds (max_queued_messages, max_queued_bytes) or "
     "too large for the remote, by direction."},
    {"ringmq_bridge_link_events_total", Type::kCounter,
     "Remote connection events of a bridge: connect (CONNACK accepted), disconnect (a "
     "connection or attempt ended), resend (an unacknowledged PUBLISH or PUBREL sent again)."},
    {"ringmq_bridge_notifications_total", Type::kCounter,
     "Connection state messages a bridge published (notifications)."},
    // bridgeq2 lane
    {"ringmq_bridge_qos2_recovered_total", Type::kCounter,
     "QoS 2 messages a durable bridge completed on the remote after a restart by PUBREL alone "
     "(outcome=pubrel_sent), or could not (outcome=abandoned: the remote's session was new)."},
    {"ringmq_bridge_connected", Type::kGauge,
     "1 while the bridge's remote connection is open, else 0."},
    {"ringmq_bridges_connected", Type::kGauge, "Bridges connected to their remote broker."},
    {"ringmq_bridge_local_connections", Type::kGauge,
     "Bridges' in-process local sessions (not counted in any listener or max_connections)."},
    {"ringmq_persist_publish_refused_total", Type::kCounter,
     "QoS 1/2 PUBLISHes not acknowledged because a shard's log was failing or behind its bound; "
     "the publisher was disconnected and resends after reconnecting."},
    {"ringmq_persist_input_held_back_total", Type::kCounter,
     "Times a connection's packets stopped being read because its replies waiting for the log "
     "reached their bound (max_output_bytes / 8); reading resumes when the log catches up."},
    {"ringmq_persist_dropped_disk_full_total", Type::kCounter,
     "Deliveries to durable sessions refused because the log reached max_disk_bytes "
     "(queue_full_policy applies)."},
    {"ringmq_persist_compactions_total", Type::kCounter,
     "Log segments replaced by a new segment that starts with a snapshot."},
    {"ringmq_persist_sessions_recovered_total", Type::kCounter, "Sessions recovered at start."},
    {"ringmq_persist_messages_recovered_total", Type::kCounter,
     "Queued and in-flight deliveries recovered at start."},
    // bridgeq2 lane
    {"ringmq_persist_bridge_sessions_removed_total", Type::kCounter,
     "Recovered sessions of bridges no longer configured, ended at start "
     "(remove_unconfigured_bridge_sessions)."},
    {"ringmq_persist_bridge_messages_removed_total", Type::kCounter,
     "Queued and in-flight messages of those sessions, dropped with them."},
    {"ringmq_persist_pending_bytes", Type::kGauge,
     "Persistence log bytes appended and not yet durable."},
    {"ringmq_persist_disk_bytes", Type::kGauge, "Bytes of the persistence log segments."},
    {"ringmq_persist_held_acks", Type::kGauge,
     "Connections whose output (acknowledgements, deliveries) waits for the log."},
    // WebSockets.
    {"ringmq_websocket_upgrades_total", Type::kCounter,
     "WebSocket upgrades completed (HTTP 101 sent)."},
    {"ringmq_websocket_upgrades_refused_total", Type::kCounter,
     "WebSocket upgrade requests refused with an HTTP status and closed, by reason."},
    {"ringmq_websocket_protocol_errors_total", Type::kCounter,
     "WebSocket connections closed for a frame against RFC 6455 or MQTT-6.0.0-1, by reason."},
    {"ringmq_websocket_too_large_total", Type::kCounter,
     "WebSocket connections closed (1009) for a frame or a fragmented message above the bound."},
    {"ringmq_websocket_closes_received_total", Type::kCounter,
     "WebSocket close frames received from clients (answered, connection closed)."},
    {"ringmq_websocket_pings_received_total", Type::kCounter,
     "WebSocket pings received (answered with a pong)."},
    // Messages.
    {"ringmq_messages_received_total", Type::kCounter, "PUBLISH packets received, by QoS."},
    {"ringmq_messages_sent_total", Type::kCounter,
     "PUBLISH packets sent to subscribers, by QoS (resends included)."},
    {"ringmq_messages_dropped_total", Type::kCounter, "Messages dropped, by reason."},
    {"ringmq_qos2_duplicates_total", Type::kCounter,
     "QoS 2 PUBLISH repeated before PUBREL: acknowledged, not delivered again."},
    {"ringmq_wills_published_total", Type::kCounter, "Wills published."},
    {"ringmq_wills_delayed_total", Type::kCounter,
     "Wills kept for their Will Delay Interval when the connection ended."},
    {"ringmq_wills_cancelled_total", Type::kCounter,
     "Delayed wills not published because the session resumed before the delay ran out."},
    {"ringmq_sys_messages_published_total", Type::kCounter, "$SYS messages published."},
    {"ringmq_queued_messages", Type::kGauge, "Messages waiting in session queues."},
    {"ringmq_inflight_messages", Type::kGauge,
     "QoS 1/2 messages sent and not yet acknowledged."},
    {"ringmq_mailbox_full_total", Type::kCounter,
     "Cross-shard records that waited for room in a full mailbox."},
    {"ringmq_mailbox_overflow_bytes", Type::kGauge,
     "Bytes of cross-shard records (and what they hold) waiting for room in full mailboxes."},
    {"ringmq_handoffs_dropped_total", Type::kCounter,
     "Connections closed because their hand-off to the home shard found the mailbox and its "
     "overflow full."},
    // Bytes.
    {"ringmq_received_bytes_total", Type::kCounter, "Bytes received from clients."},
    {"ringmq_sent_bytes_total", Type::kCounter, "Bytes sent to clients."},
    {"ringmq_delivered_bytes_total", Type::kCounter,
     "PUBLISH and PUBREL bytes encoded for subscribers."},
    // Authentication.
    {"ringmq_auth_cache_hits_total", Type::kCounter,
     "CONNECT credentials found already verified in the shard's cache."},
    {"ringmq_auth_verifications_total", Type::kCounter, "Password hashes computed."},
    {"ringmq_auth_scram_total", Type::kCounter,
     "SCRAM-SHA-256 exchanges (MQTT 5 enhanced authentication) ended, by result."},
    // Listeners.
    {"ringmq_proxy_headers_total", Type::kCounter,
     "PROXY protocol headers on listeners that expect one, by result: v1 or v2 (named the "
     "client), local (kept the socket's address), or why the connection was closed: missing, "
     "malformed_v1, malformed_v2, unsupported (the other version), too_large, timeout."},
    // TLS listeners.
    {"ringmq_tls_handshakes_total", Type::kCounter, "TLS handshakes completed."},
    {"ringmq_tls_sessions_resumed_total", Type::kCounter,
     "TLS handshakes that resumed a session from a ticket."},
    {"ringmq_tls_handshake_failures_total", Type::kCounter, "TLS handshakes failed, by cause."},
    {"ringmq_tls_record_errors_total", Type::kCounter,
     "TLS connections closed for a record error after the handshake."},
    // Shard loop and io_uring.
    {"ringmq_loop_iterations_total", Type::kCounter, "Shard event loop iterations."},
    {"ringmq_io_uring_sqes_submitted_total", Type::kCounter, "io_uring submission entries."},
    {"ringmq_io_uring_cqes_reaped_total", Type::kCounter, "io_uring completions reaped."},
    {"ringmq_receive_buffer_exhausted_total", Type::kCounter,
     "Receives that found no provided buffer (ENOBUFS) and were re-armed."},
    // tidy2 lane (shard_bridge.cc, AwaitBridgeSockets); tidy3 lane (shard.cc, AwaitNatsSockets).
    {"ringmq_stop_sockets_unclosed_total", Type::kCounter,
     "Bridge and NATS link sockets whose IORING_OP_SOCKET had not completed 1 s after the "
     "shard's loop ended at stop: their descriptor, if one comes, is not closed before the "
     "process exits."},
    {"ringmq_doorbell_failures_total", Type::kCounter,
     "msg_ring doorbells to another shard that failed (retried; the shard also polls each tick)."},
    {"ringmq_loop_stalls_total", Type::kCounter,
     "Shard loop iterations that ran longer than stall_warning_ms."},
    {"ringmq_loop_iteration_max_microseconds", Type::kGauge,
     "Longest shard loop iteration since start (measured when stall_warning_ms > 0)."},
    // Memory budget (max_memory).
    {"ringmq_memory_accounted_bytes", Type::kGauge,
     "Memory the broker accounts against max_memory: resident size at start plus what grows "
     "with traffic (messages, queues, buffers, sessions)."},
    {"ringmq_memory_max_bytes", Type::kGauge, "The max_memory budget; 0: none."},
    {"ringmq_memory_pressure", Type::kGauge,
     "Shedding level: 0 none, 1 QoS 0 to backlogged sessions dropped, 2 also CONNECTs refused, "
     "3 also QoS 1/2 to backlogged sessions dropped."},
    // Process.
    {"ringmq_build_info", Type::kGauge, "Constant 1, labelled with the broker version."},
    {"ringmq_shards", Type::kGauge, "Shards (threads) serving connections."},
    {"ringmq_start_time_seconds", Type::kGauge, "Broker start time since the Unix epoch."},
    {"ringmq_uptime_seconds", Type::kGauge, "Seconds since the broker started."},
    {"ringmq_metrics_requests_total", Type::kCounter,
     "Responses of the /metrics endpoint, by HTTP status code."},
};

constexpr bool FamilyExists(std::string_view name) {
  for (const Family& family : kFamilies) {
    if (family.name == name) return true;
  }
  return false;
}

constexpr Series Plain(std::string_view family) { return Series{family, {}, {}}; }
constexpr Series Labelled(std::string_view family, std::string_view name, std::string_view value) {
  return Series{family, name, value};
}

constexpr std::string_view kDropped = "ringmq_messages_dropped_total";
constexpr std::string_view kReceived = "ringmq_messages_received_total";
constexpr std::string_view kSent = "ringmq_messages_sent_total";
constexpr std::string_view kConnectOutcomes = "ringmq_connect_outcomes_total";
constexpr std::string_view kAcceptedByLevel = "ringmq_connect_accepted_by_level_total";
constexpr std::string_view kDisconnectsSent = "ringmq_disconnects_sent_total";
constexpr std::string_view kTopicAliases = "ringmq_topic_aliases_total";
constexpr std::string_view kScram = "ringmq_auth_scram_total";
constexpr std::string_view kProxyHeaders = "ringmq_proxy_headers_total";
constexpr std::string_view kTlsFailures = "ringmq_tls_handshake_failures_total";
constexpr std::string_view kWsRefused = "ringmq_websocket_upgrades_refused_total";
constexpr std::string_view kWsErrors = "ringmq_websocket_protocol_errors_total";
constexpr std::string_view kWsTooLarge = "ringmq_websocket_too_large_total";

// The CONNACK code a reason calls for (0xff: none), from the admission table: the 3.1.1
// return code, or for a 5.0-only reason (no 3.1.1 code) its 5.0 reason code. The 5.0 code of
// every reason is in docs/connect-admission.md.
uint8_t CodeOf(connect::Reason reason) {
  switch (reason) {
#define RINGMQ_REASON_CODE(name, label, code, code5) \
  case connect::Reason::name:                        \
    return code != 0xff ? code : code5;
    RINGMQ_CONNECT_REASONS(RINGMQ_REASON_CODE)
#undef RINGMQ_REASON_CODE
  }
  return 0xff;
}

void AppendSample(std::string& out, std::string_view name,
                  std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                  std::string_view value) {
  out.append(name);
  bool first = true;
  for (const auto& [label, label_value] : labels) {
    if (label.empty()) continue;
    out.append(first ? "{" : ",");
    first = false;
    out.append(label).append("=\"").append(EscapeLabelValue(label_value)).append("\"");
  }
  if (!first) out.append("}");
  out.append(" ").append(value).append("\n");
}

void AppendConnectOutcomes(std::string& out, std::string_view shard, const Snapshot& snapshot) {
  for (size_t i = 0; i < connect::kReasonCount; ++i) {
    const auto reason = static_cast<connect::Reason>(i);
    const std::string_view label = connect::LabelOf(reason);
    const uint64_t total = snapshot.connect[i];
    // Silenced is counted after the decision: clamp in case this read raced between the two.
    const uint64_t silenced = std::min(snapshot.connect_silenced[i], total);
    if (reason == connect::Reason::kAccepted) {
      AppendSample(out, kConnectOutcomes,
                   {{"shard", shard}, {"result", "accepted"}, {"reason", label}, {"code", "0"}},
                   absl::StrCat(total));
    } else if (reason == connect::Reason::kMalformed) {
      AppendSample(out, kConnectOutcomes,
                   {{"shard", shard}, {"result", "closed_malformed"}, {"reason", label}},
                   absl::StrCat(total));
    } else {
      AppendSample(out, kConnectOutcomes,
                   {{"shard", shard},
                    {"result", "refused"},
                    {"reason", label},
                    {"code", absl::StrCat(CodeOf(reason))}},
                   absl::StrCat(total - silenced));
      AppendSample(out, kConnectOutcomes,
                   {{"shard", shard}, {"result", "closed_silent_policy"}, {"reason", label}},
                   absl::StrCat(silenced));
    }
  }
}

// A histogram's samples for one shard: cumulative _bucket{le}, _sum (seconds), _count.
void AppendClusterHop(std::string& out, std::string_view family, std::string_view shard,
                      const Snapshot& snapshot) {
  const std::string bucket_name = std::string(family) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kClusterHopBuckets; ++i) {
    cumulative += snapshot.cluster_hop[i];
    const std::string le = i < kClusterHopBoundsUs.size()
                               ? absl::StrFormat("%g", kClusterHopBoundsUs[i] / 1e6)
                               : std::string("+Inf");
    AppendSample(out, bucket_name, {{"shard", shard}, {"le", le}}, absl::StrCat(cumulative));
  }
  AppendSample(out, std::string(family) + "_sum", {{"shard", shard}},
               absl::StrFormat("%.6f", snapshot.cluster_hop_sum_us / 1e6));
  AppendSample(out, std::string(family) + "_count", {{"shard", shard}}, absl::StrCat(cumulative));
}

// Per-shard samples of every counter and gauge in `family`.
void AppendShardSeries(std::string& out, const Family& family, const BrokerSample& sample) {
  for (size_t shard = 0; shard < sample.shards.size(); ++shard) {
    const std::string shard_label = absl::StrCat(shard);
    const Snapshot& snapshot = sample.shards[shard];
    if (family.name == kConnectOutcomes) AppendConnectOutcomes(out, shard_label, snapshot);
    if (family.type == Type::kHistogram) {
      RINGMQ_ASSERT(family.name == "ringmq_cluster_hop_latency_seconds");
      AppendClusterHop(out, family.name, shard_label, snapshot);
      continue;
    }
    for (size_t i = 0; i < kCounterCount; ++i) {
      const auto id = static_cast<CounterId>(i);
      const Series series = SeriesOf(id);
      if (series.family != family.name) continue;
      AppendSample(out, family.name,
                   {{"shard", shard_label}, {series.label_name, series.label_value}},
                   absl::StrCat(ValueOf(snapshot, id)));
    }
    for (size_t i = 0; i < kGaugeCount; ++i) {
      const auto id = static_cast<GaugeId>(i);
      const Series series = SeriesOf(id);
      if (series.family != family.name) continue;
      AppendSample(out, family.name,
                   {{"shard", shard_label}, {series.label_name, series.label_value}},
                   absl::StrCat(ValueOf(snapshot.gauges, id)));
    }
  }
}

// Per-listener families (a `listener` label, no shard label). Returns false if `family` is not
// one of them.
bool AppendListenerSeries(std::string& out, const Family& family, const BrokerSample& sample) {
  const std::string_view name = family.name;
  if (!name.starts_with("ringmq_listener_")) return false;
  for (const ListenerSample& listener : sample.listeners) {
    const ListenerSnapshot& counters = listener.counters;
    const std::pair<std::string_view, std::string_view> label = {"listener", listener.name};
    if (name == "ringmq_listener_connections") {
      AppendSample(out, name, {label}, absl::StrCat(counters.connections_open));
    } else if (name == "ringmq_listener_connections_accepted_total") {
      AppendSample(out, name, {label}, absl::StrCat(counters.connections_accepted));
    } else if (name == "ringmq_listener_clients_connected") {
      AppendSample(out, name, {label}, absl::StrCat(listener.clients_connected));
    } else if (name == "ringmq_listener_max_connections") {
      AppendSample(out, name, {label}, absl::StrCat(listener.max_connections));
    } else if (name == "ringmq_listener_connect_outcomes_total") {
      AppendSample(out, name, {label, {"result", "accepted"}},
                   absl::StrCat(counters.connect_accepted));
      AppendSample(out, name, {label, {"result", "refused"}},
                   absl::StrCat(counters.connect_refused));
    } else if (name == "ringmq_listener_received_bytes_total") {
      AppendSample(out, name, {label}, absl::StrCat(counters.bytes_received));
    } else if (name == "ringmq_listener_sent_bytes_total") {
      AppendSample(out, name, {label}, absl::StrCat(counters.bytes_sent));
    } else {
      RINGMQ_ASSERT(false && "every ringmq_listener_ family has its samples");
    }
  }
  return true;
}

// bridge lane: per-bridge families (a `bridge` label, no shard label). Returns false if
// `family` is not one of them.
bool AppendBridgeSeries(std::string& out, const Family& family, const BrokerSample& sample) {
  const std::string_view name = family.name;
  if (!name.starts_with("ringmq_bridge_") || name == "ringmq_bridge_local_connections") {
    return false;
  }
  for (const BridgeSample& bridge : sample.bridges) {
    const BridgeSnapshot& counters = bridge.counters;
    const std::pair<std::string_view, std::string_view> label = {"bridge", bridge.name};
    if (name == "ringmq_bridge_messages_total") {
      AppendSample(out, name, {label, {"direction", "out"}}, absl::StrCat(counters.messages_out));
      AppendSample(out, name, {label, {"direction", "in"}}, absl::StrCat(counters.messages_in));
    } else if (name == "ringmq_bridge_dropped_total") {
      AppendSample(out, name, {label, {"direction", "out"}}, absl::StrCat(counters.dropped_out));
      AppendSample(out, name, {label, {"direction", "in"}}, absl::StrCat(counters.dropped_in));
    } else if (name == "ringmq_bridge_link_events_total") {
      AppendSample(out, name, {label, {"event", "connect"}}, absl::StrCat(counters.connects));
      AppendSample(out, name, {label, {"event", "disconnect"}},
                   absl::StrCat(counters.disconnects));
      AppendSample(out, name, {label, {"event", "resend"}}, absl::StrCat(counters.resent));
    } else if (name == "ringmq_bridge_notifications_total") {
      AppendSample(out, name, {label}, absl::StrCat(counters.notifications));
    } else if (name == "ringmq_bridge_connected") {
      AppendSample(out, name, {label}, absl::StrCat(counters.connected));
    } else if (name == "ringmq_bridge_qos2_recovered_total") {  // bridgeq2 lane
      AppendSample(out, name, {label, {"outcome", "pubrel_sent"}},
                   absl::StrCat(counters.qos2_recovered));
      AppendSample(out, name, {label, {"outcome", "abandoned"}},
                   absl::StrCat(counters.qos2_abandoned));
    } else {
      RINGMQ_ASSERT(false && "every ringmq_bridge_ family has its samples");
    }
  }
  return true;
}

// Broker-wide families (no shard label). Returns false if `family` is not one of them.
bool AppendBrokerSeries(std::string& out, const Family& family, const BrokerSample& sample) {
  const std::string_view name = family.name;
  if (AppendListenerSeries(out, family, sample)) return true;
  if (AppendBridgeSeries(out, family, sample)) return true;
  if (name == "ringmq_clients_connected") {
    AppendSample(out, name, {}, absl::StrCat(sample.clients_connected));
  } else if (name == "ringmq_max_connections") {
    AppendSample(out, name, {}, absl::StrCat(sample.max_connections));
  } else if (name == "ringmq_retained_messages") {
    AppendSample(out, name, {}, absl::StrCat(sample.retained_messages));
  } else if (name == "ringmq_memory_accounted_bytes") {
    AppendSample(out, name, {}, absl::StrCat(sample.memory_accounted_bytes));
  } else if (name == "ringmq_memory_max_bytes") {
    AppendSample(out, name, {}, absl::StrCat(sample.memory_max_bytes));
  } else if (name == "ringmq_memory_pressure") {
    AppendSample(out, name, {}, absl::StrCat(sample.memory_pressure));
  } else if (name == "ringmq_build_info") {
    AppendSample(out, name, {{"version", sample.version}}, "1");
  } else if (name == "ringmq_shards") {
    AppendSample(out, name, {}, absl::StrCat(sample.shards.size()));
  } else if (name == "ringmq_start_time_seconds") {
    AppendSample(out, name, {}, absl::StrFormat("%.3f", sample.start_time_seconds));
  } else if (name == "ringmq_uptime_seconds") {
    AppendSample(out, name, {}, absl::StrFormat("%.3f", sample.uptime_seconds));
  } else if (name == "ringmq_metrics_requests_total") {
    for (const auto& [code, count] : sample.http_responses) {
      AppendSample(out, name, {{"code", absl::StrCat(code)}}, absl::StrCat(count));
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string_view NameOf(CounterId id) {
  switch (id) {
#define RINGMQ_COUNTER_NAME(name) \
  case CounterId::name:           \
    return #name;
    RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_NAME)
#undef RINGMQ_COUNTER_NAME
  }
  return "?";
}

std::string_view NameOf(GaugeId id) {
  switch (id) {
#define RINGMQ_GAUGE_NAME(name) \
  case GaugeId::name:           \
    return #name;
    RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_NAME)
#undef RINGMQ_GAUGE_NAME
  }
  return "?";
}

uint64_t ValueOf(const Snapshot& snapshot, CounterId id) {
  switch (id) {
#define RINGMQ_COUNTER_VALUE(name) \
  case CounterId::name:            \
    return snapshot.name;
    RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_VALUE)
#undef RINGMQ_COUNTER_VALUE
  }
  return 0;
}

int64_t ValueOf(const GaugeSnapshot& snapshot, GaugeId id) {
  switch (id) {
#define RINGMQ_GAUGE_VALUE(name) \
  case GaugeId::name:            \
    return snapshot.name;
    RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_VALUE)
#undef RINGMQ_GAUGE_VALUE
  }
  return 0;
}

// No default: a new counter that is not given a series here is a compile error (-Wswitch).
Series SeriesOf(CounterId id) {
  using C = CounterId;
  switch (id) {
    case C::connections_accepted: return Plain("ringmq_connections_accepted_total");
    case C::connections_closed: return Plain("ringmq_connections_closed_total");
    case C::accept_errors: return Plain("ringmq_accept_errors_total");
    case C::connect_closed_silent_policy: return Plain("ringmq_connect_silent_closes_total");
    case C::connect_timeout:
      return Labelled(kConnectOutcomes, "result", "connect_timeout");
    case C::keepalive_timeout: return Plain("ringmq_keepalive_timeouts_total");
    case C::packet_too_large: return Labelled(kDropped, "reason", "packet_too_large");
    case C::connect_packet_too_large:
      return Labelled(kConnectOutcomes, "result", "connect_too_large");
    case C::protocol_violations: return Plain("ringmq_protocol_violations_total");
    case C::client_disconnects: return Plain("ringmq_client_disconnects_total");
    case C::output_overflow: return Plain("ringmq_output_overflows_total");
    case C::bytes_received: return Plain("ringmq_received_bytes_total");
    case C::bytes_sent: return Plain("ringmq_sent_bytes_total");
    case C::publish_received_qos0: return Labelled(kReceived, "qos", "0");
    case C::publish_received_qos1: return Labelled(kReceived, "qos", "1");
    case C::publish_received_qos2: return Labelled(kReceived, "qos", "2");
    case C::publish_dropped_no_subscribers: return Labelled(kDropped, "reason", "no_subscribers");
    case C::publish_sent_qos0: return Labelled(kSent, "qos", "0");
    case C::publish_sent_qos1: return Labelled(kSent, "qos", "1");
    case C::publish_sent_qos2: return Labelled(kSent, "qos", "2");
    case C::publish_dropped_sys_topic: return Labelled(kDropped, "reason", "sys_topic");
    case C::sys_messages_published: return Plain("ringmq_sys_messages_published_total");
    case C::sessions_created: return Plain("ringmq_sessions_created_total");
    case C::session_takeovers: return Plain("ringmq_session_takeovers_total");
    case C::sessions_expired: return Plain("ringmq_sessions_expired_total");
    case C::sessions_evicted: return Plain("ringmq_sessions_evicted_total");
    case C::connections_handed_off: return Plain("ringmq_connections_handed_off_total");
    case C::wills_published: return Plain("ringmq_wills_published_total");
    case C::wills_delayed: return Plain("ringmq_wills_delayed_total");
    case C::wills_cancelled: return Plain("ringmq_wills_cancelled_total");
    case C::publish_duplicates: return Plain("ringmq_qos2_duplicates_total");
    case C::subscriptions_added: return Plain("ringmq_subscriptions_added_total");
    case C::subscriptions_removed: return Plain("ringmq_subscriptions_removed_total");
    case C::dropped_queue_full: return Labelled(kDropped, "reason", "queue_full");
    case C::dropped_bytes_cap: return Labelled(kDropped, "reason", "bytes_cap");
    case C::slow_consumer_disconnects: return Plain("ringmq_slow_consumer_disconnects_total");
    case C::dropped_offline_qos0: return Labelled(kDropped, "reason", "offline_qos0");
    case C::dropped_memory_qos0: return Labelled(kDropped, "reason", "memory_qos0");
    case C::dropped_memory_qos12: return Labelled(kDropped, "reason", "memory_qos12");
    case C::mailbox_full: return Plain("ringmq_mailbox_full_total");
    case C::mailbox_overflow: return Labelled(kDropped, "reason", "mailbox_overflow");
    case C::handoffs_dropped: return Plain("ringmq_handoffs_dropped_total");
    case C::doorbell_failures: return Plain("ringmq_doorbell_failures_total");
    case C::loop_stalls: return Plain("ringmq_loop_stalls_total");
    case C::bytes_delivered: return Plain("ringmq_delivered_bytes_total");
    case C::retained_live_superseded: return Plain("ringmq_retained_live_superseded_total");
    case C::retained_fence_full: return Plain("ringmq_retained_fence_full_total");
    case C::retained_refused: return Plain("ringmq_retained_refused_total");
    case C::persist_records: return Plain("ringmq_persist_records_total");
    case C::persist_bytes_written: return Plain("ringmq_persist_bytes_written_total");
    case C::persist_syncs: return Plain("ringmq_persist_syncs_total");
    case C::persist_write_errors: return Plain("ringmq_persist_write_errors_total");
    case C::persist_publish_refused: return Plain("ringmq_persist_publish_refused_total");
    case C::cluster_messages_out:
      return Labelled("ringmq_cluster_messages_total", "direction", "out");
    case C::cluster_bytes_out: return Labelled("ringmq_cluster_bytes_total", "direction", "out");
    case C::cluster_messages_in:
      return Labelled("ringmq_cluster_messages_total", "direction", "in");
    case C::cluster_bytes_in: return Labelled("ringmq_cluster_bytes_total", "direction", "in");
    case C::cluster_echoes_dropped:
      return Labelled("ringmq_cluster_dropped_total", "reason", "echo");
    case C::cluster_overlap_dropped:
      return Labelled("ringmq_cluster_dropped_total", "reason", "overlap");
    case C::cluster_uncarried_topics:
      return Labelled("ringmq_cluster_dropped_total", "reason", "uncarried_topic");
    case C::cluster_unmappable_subjects:
      return Labelled("ringmq_cluster_dropped_total", "reason", "unmappable_subject");
    case C::cluster_publish_refused:
      return Labelled("ringmq_cluster_dropped_total", "reason", "link_refused");
    // MQTT 5.0 properties across nodes (props lane).
    case C::cluster_properties_too_many:
      return Labelled("ringmq_cluster_dropped_total", "reason", "properties_too_many");
    case C::cluster_properties_too_large:
      return Labelled("ringmq_cluster_dropped_total", "reason", "properties_too_large");
    case C::cluster_expired_in_transit:
      return Labelled("ringmq_cluster_dropped_total", "reason", "expired_in_transit");
    case C::cluster_properties_dropped: return Plain("ringmq_cluster_properties_dropped_total");
    case C::cluster_link_connects:
      return Labelled("ringmq_cluster_link_events_total", "event", "connect");
    case C::cluster_link_reconnects:
      return Labelled("ringmq_cluster_link_events_total", "event", "reconnect");
    case C::cluster_link_disconnects:
      return Labelled("ringmq_cluster_link_events_total", "event", "disconnect");
    case C::cluster_acks_sent: return Labelled("ringmq_cluster_acks_total", "direction", "out");
    case C::cluster_acks_received:
      return Labelled("ringmq_cluster_acks_total", "direction", "in");
    case C::cluster_retransmits: return Plain("ringmq_cluster_retransmits_total");
    case C::cluster_duplicates_dropped:
      return Labelled("ringmq_cluster_duplicates_total", "result", "dropped");
    case C::cluster_duplicates_unknown:
      return Labelled("ringmq_cluster_duplicates_total", "result", "unknown");
    case C::cluster_ack_held_back: return Plain("ringmq_cluster_ack_held_back_total");
    case C::cluster_ack_untracked: return Plain("ringmq_cluster_ack_untracked_total");
    case C::cluster_links_forgotten: return Plain("ringmq_cluster_links_forgotten_total");
    case C::cluster_ack_forgotten_released:
      return Plain("ringmq_cluster_ack_forgotten_released_total");
    case C::cluster_interest_sent:
      return Labelled("ringmq_cluster_interest_announcements_total", "event", "sent");
    case C::cluster_interest_received:
      return Labelled("ringmq_cluster_interest_announcements_total", "event", "received");
    case C::cluster_interest_gaps:
      return Labelled("ringmq_cluster_interest_announcements_total", "event", "gap");
    case C::cluster_interest_refused:
      return Labelled("ringmq_cluster_interest_announcements_total", "event", "refused");
    case C::cluster_control_refused: return Plain("ringmq_cluster_control_refused_total");
    case C::cluster_owner_claims_sent:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "sent");
    case C::cluster_owner_claims_received:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "received");
    case C::cluster_owner_claims_forwarded:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "forwarded");
    case C::cluster_owner_claims_kept:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "kept");
    case C::cluster_owner_claims_invalid:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "invalid");
    case C::cluster_owner_claims_refused:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "refused");
    case C::cluster_owner_claims_dropped:
      return Labelled("ringmq_cluster_owner_claims_total", "event", "dropped");
    case C::cluster_owner_takeovers: return Plain("ringmq_cluster_owner_takeovers_total");
    case C::cluster_owner_sessions_ended:
      return Labelled("ringmq_cluster_owner_sessions_ended_total", "state", "dropped");
    case C::cluster_owner_sessions_not_moved:
      return Labelled("ringmq_cluster_owner_sessions_ended_total", "state", "not_moved");
    case C::cluster_owner_sessions_moved:
      return Labelled("ringmq_cluster_owner_sessions_ended_total", "state", "moved");
    case C::cluster_owner_state_left_out:
      return Plain("ringmq_cluster_owner_state_left_out_total");
    case C::cluster_owner_states_merged:
      return Labelled("ringmq_cluster_owner_states_total", "result", "merged");
    case C::cluster_owner_states_stale:
      return Labelled("ringmq_cluster_owner_states_total", "result", "stale");
    case C::cluster_owner_states_invalid:
      return Labelled("ringmq_cluster_owner_states_total", "result", "invalid");
    // claims lane: claim batches.
    case C::cluster_owner_batches_window:
      return Labelled("ringmq_cluster_owner_claim_batches_total", "event", "sent_window");
    case C::cluster_owner_batches_count:
      return Labelled("ringmq_cluster_owner_claim_batches_total", "event", "sent_count");
    case C::cluster_owner_batches_bytes:
      return Labelled("ringmq_cluster_owner_claim_batches_total", "event", "sent_bytes");
    case C::cluster_owner_batches_resume:
      return Labelled("ringmq_cluster_owner_claim_batches_total", "event", "sent_resume");
    case C::cluster_owner_batches_received:
      return Labelled("ringmq_cluster_owner_claim_batches_total", "event", "received");
    case C::cluster_share_delivered:
      return Labelled("ringmq_cluster_share_messages_total", "outcome", "delivered");
    case C::cluster_share_no_member:
      return Labelled("ringmq_cluster_share_messages_total", "outcome", "no_member");
    case C::cluster_share_local:
      return Labelled("ringmq_cluster_share_messages_total", "outcome", "not_forwarded");
    // sacks lane
    case C::cluster_group_acks: return Plain("ringmq_cluster_group_acks_total");
    case C::cluster_group_retransmits: return Plain("ringmq_cluster_group_retransmits_total");
    case C::cluster_groups_forgotten: return Plain("ringmq_cluster_groups_forgotten_total");
    // natstls lane
    case C::cluster_nats_tls_handshakes:
      return Labelled("ringmq_cluster_nats_tls_handshakes_total", "result", "ok");
    case C::cluster_nats_tls_failures:
      return Labelled("ringmq_cluster_nats_tls_handshakes_total", "result", "failed");
    // jwt lane
    case C::cluster_link_auth_refused: return Plain("ringmq_cluster_link_auth_refused_total");
    case C::cluster_share_link_connects:
      return Labelled("ringmq_cluster_share_link_events_total", "event", "connect");
    case C::cluster_share_link_reconnects:
      return Labelled("ringmq_cluster_share_link_events_total", "event", "reconnect");
    case C::cluster_share_link_disconnects:
      return Labelled("ringmq_cluster_share_link_events_total", "event", "disconnect");
    case C::cluster_retained_out:
      return Labelled("ringmq_cluster_retained_updates_total", "direction", "out");
    case C::cluster_retained_in:
      return Labelled("ringmq_cluster_retained_updates_total", "direction", "in");
    case C::cluster_retained_store_refused:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "store_refused");
    case C::cluster_retained_publish_refused:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "link_refused");
    case C::cluster_retained_uncarried:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "uncarried_topic");
    case C::cluster_retained_unmappable:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "unmappable_subject");
    case C::cluster_retained_duplicates:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "duplicate");
    case C::cluster_retained_acks:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "ack");
    case C::cluster_retained_stream_errors:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "error");
    case C::cluster_retained_consumer_starts:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "consumer_start");
    case C::cluster_retained_gaps:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "gap");
    case C::cluster_retained_resent:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "resend");
    case C::cluster_retained_untracked:
      return Labelled("ringmq_cluster_retained_stream_events_total", "event", "untracked");
    // retained5 lane.
    case C::cluster_retained_properties_too_many:
      return Labelled("ringmq_cluster_retained_dropped_total", "reason", "properties_too_many");
    case C::cluster_retained_properties_dropped:
      return Plain("ringmq_cluster_retained_properties_dropped_total");
    // batch lane
    case C::cluster_batch_messages_out:
      return Labelled("ringmq_cluster_batch_messages_total", "direction", "out");
    case C::cluster_batches_out: return Labelled("ringmq_cluster_batches_total", "direction", "out");
    case C::cluster_batch_flush_bound:
      return Labelled("ringmq_cluster_batch_events_total", "event", "flush_bound");
    case C::cluster_batch_oversize:
      return Labelled("ringmq_cluster_batch_events_total", "event", "oversize");
    case C::cluster_batch_refused:
      return Labelled("ringmq_cluster_batch_events_total", "event", "refused");
    case C::cluster_batches_in: return Labelled("ringmq_cluster_batches_total", "direction", "in");
    case C::cluster_batch_messages_in:
      return Labelled("ringmq_cluster_batch_messages_total", "direction", "in");
    case C::cluster_batch_invalid:
      return Labelled("ringmq_cluster_batch_events_total", "event", "invalid");
    // batchprops lane
    case C::cluster_batch_mqtt5_out:
      return Labelled("ringmq_cluster_batch_events_total", "event", "mqtt5");
    // weak lane (issue 16).
    case C::cluster_node_name_conflicts:
      return Plain("ringmq_cluster_node_name_conflicts_total");
    case C::cluster_link_memory_refused:
      return Plain("ringmq_cluster_link_memory_refused_total");
    case C::cluster_session_held:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "held");
    case C::cluster_session_moved:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "moved");
    case C::cluster_session_none:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "none");
    case C::cluster_session_timeouts:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "timeout");
    case C::cluster_session_read_errors:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "read_error");
    case C::cluster_session_taken_over:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "taken_over");
    case C::cluster_session_abandoned:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "abandoned");
    case C::cluster_session_not_held:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "not_held");
    case C::cluster_session_no_bucket:
      return Labelled("ringmq_cluster_session_connacks_total", "result", "no_bucket");
    case C::cluster_session_bucket_ready:
      return Labelled("ringmq_cluster_session_bucket_events_total", "event", "ready");
    case C::cluster_session_bucket_unavailable:
      return Labelled("ringmq_cluster_session_bucket_events_total", "event", "unavailable");
    case C::cluster_session_records_written:
      return Labelled("ringmq_cluster_session_records_total", "event", "written");
    case C::cluster_session_records_acked:
      return Labelled("ringmq_cluster_session_records_total", "event", "acked");
    case C::cluster_session_record_errors:
      return Labelled("ringmq_cluster_session_records_total", "event", "error");
    case C::cluster_session_records_deleted:
      return Labelled("ringmq_cluster_session_records_total", "event", "deleted");
    case C::cluster_session_records_kept:
      return Labelled("ringmq_cluster_session_records_total", "event", "kept");
    case C::cluster_session_records_skipped:
      return Labelled("ringmq_cluster_session_records_total", "event", "skipped");
    case C::cluster_session_inflight_restored:
      return Labelled("ringmq_cluster_session_inflight_total", "state", "restored");
    case C::cluster_session_inflight_requeued:
      return Labelled("ringmq_cluster_session_inflight_total", "state", "requeued");
    case C::cluster_session_inflight_dropped:  // moveinflight lane
      return Labelled("ringmq_cluster_session_inflight_total", "state", "dropped");
    case C::persist_input_held_back: return Plain("ringmq_persist_input_held_back_total");
    case C::persist_dropped_disk_full: return Plain("ringmq_persist_dropped_disk_full_total");
    case C::persist_compactions: return Plain("ringmq_persist_compactions_total");
    case C::persist_sessions_recovered: return Plain("ringmq_persist_sessions_recovered_total");
    case C::persist_messages_recovered: return Plain("ringmq_persist_messages_recovered_total");
    case C::persist_bridge_sessions_removed:  // bridgeq2 lane
      return Plain("ringmq_persist_bridge_sessions_removed_total");
    case C::persist_bridge_messages_removed:
      return Plain("ringmq_persist_bridge_messages_removed_total");
    case C::retained_walk_truncated: return Plain("ringmq_retained_walk_truncated_total");
    case C::publish_denied: return Labelled(kDropped, "reason", "acl_denied");
    case C::subscribe_denied: return Plain("ringmq_subscribe_denied_total");
    case C::subscribe_filtered: return Plain("ringmq_subscribe_filtered_total");
    case C::deliver_denied: return Plain("ringmq_deliveries_denied_total");
    case C::deliver_no_local: return Plain("ringmq_deliveries_no_local_total");
    case C::messages_expired: return Plain("ringmq_messages_expired_total");
    case C::dropped_too_large_for_client:
      return Labelled(kDropped, "reason", "too_large_for_client");
    case C::publish_sent_mqtt5: return Plain("ringmq_publish_sent_mqtt5_total");
    case C::subscribe_limit: return Plain("ringmq_subscribe_limit_total");
    case C::inbound_qos2_limit: return Plain("ringmq_inbound_qos2_limit_total");
    case C::subscribe_deferred: return Plain("ringmq_subscribe_deferred_total");
    case C::receive_paused: return Plain("ringmq_receive_paused_total");
    case C::connect_accepted_mqtt31: return Labelled(kAcceptedByLevel, "level", "3.1");
    case C::connect_accepted_mqtt311: return Labelled(kAcceptedByLevel, "level", "3.1.1");
    case C::connect_accepted_mqtt5: return Labelled(kAcceptedByLevel, "level", "5.0");
    case C::disconnect_sent_malformed_packet:
      return Labelled(kDisconnectsSent, "reason", "malformed_packet");
    case C::disconnect_sent_protocol_error:
      return Labelled(kDisconnectsSent, "reason", "protocol_error");
    case C::disconnect_sent_server_shutting_down:
      return Labelled(kDisconnectsSent, "reason", "server_shutting_down");
    case C::disconnect_sent_keep_alive_timeout:
      return Labelled(kDisconnectsSent, "reason", "keep_alive_timeout");
    case C::disconnect_sent_session_taken_over:
      return Labelled(kDisconnectsSent, "reason", "session_taken_over");
    case C::disconnect_sent_receive_maximum_exceeded:
      return Labelled(kDisconnectsSent, "reason", "receive_maximum_exceeded");
    case C::disconnect_sent_topic_alias_invalid:
      return Labelled(kDisconnectsSent, "reason", "topic_alias_invalid");
    case C::disconnect_sent_packet_too_large:
      return Labelled(kDisconnectsSent, "reason", "packet_too_large");
    case C::disconnect_sent_retain_not_supported:
      return Labelled(kDisconnectsSent, "reason", "retain_not_supported");
    case C::disconnect_sent_qos_not_supported:
      return Labelled(kDisconnectsSent, "reason", "qos_not_supported");
    case C::disconnect_sent_other: return Labelled(kDisconnectsSent, "reason", "other");
    case C::closes_lingered: return Plain("ringmq_closes_lingered_total");
    case C::linger_discarded_bytes: return Plain("ringmq_linger_discarded_bytes_total");
    case C::closes_linger_reset: return Plain("ringmq_closes_linger_reset_total");
    case C::topic_alias_set: return Labelled(kTopicAliases, "use", "set");
    case C::topic_alias_used: return Labelled(kTopicAliases, "use", "used");
    case C::topic_alias_out_set: return Labelled(kTopicAliases, "use", "out_set");
    case C::topic_alias_out_used: return Labelled(kTopicAliases, "use", "out_used");
    case C::receive_maximum_exceeded: return Plain("ringmq_receive_maximum_exceeded_total");
    case C::shared_deliveries: return Plain("ringmq_shared_deliveries_total");
    case C::shared_skips: return Plain("ringmq_shared_skips_total");
    case C::shared_no_member: return Plain("ringmq_shared_no_member_total");
    case C::shared_rerouted: return Plain("ringmq_shared_rerouted_total");
    case C::auth_cache_hits: return Plain("ringmq_auth_cache_hits_total");
    case C::auth_verifications: return Plain("ringmq_auth_verifications_total");
    case C::auth_scram_success: return Labelled(kScram, "result", "success");
    case C::auth_scram_malformed: return Labelled(kScram, "result", "malformed");
    case C::auth_scram_user_mismatch: return Labelled(kScram, "result", "user_mismatch");
    case C::auth_scram_unknown_user: return Labelled(kScram, "result", "unknown_user");
    case C::auth_scram_no_scram_credentials:
      return Labelled(kScram, "result", "no_scram_credentials");
    case C::auth_scram_bad_proof: return Labelled(kScram, "result", "bad_proof");
    case C::auth_scram_rate_limited: return Labelled(kScram, "result", "rate_limited");
    case C::proxy_header_v1: return Labelled(kProxyHeaders, "result", "v1");
    case C::proxy_header_v2: return Labelled(kProxyHeaders, "result", "v2");
    case C::proxy_header_local: return Labelled(kProxyHeaders, "result", "local");
    case C::proxy_refused_missing: return Labelled(kProxyHeaders, "result", "missing");
    case C::proxy_refused_malformed_v1: return Labelled(kProxyHeaders, "result", "malformed_v1");
    case C::proxy_refused_malformed_v2: return Labelled(kProxyHeaders, "result", "malformed_v2");
    case C::proxy_refused_unsupported: return Labelled(kProxyHeaders, "result", "unsupported");
    case C::proxy_refused_too_large: return Labelled(kProxyHeaders, "result", "too_large");
    case C::proxy_timeout: return Labelled(kProxyHeaders, "result", "timeout");
    case C::tls_handshakes_completed: return Plain("ringmq_tls_handshakes_total");
    case C::tls_sessions_resumed: return Plain("ringmq_tls_sessions_resumed_total");
    case C::tls_failed_no_certificate: return Labelled(kTlsFailures, "cause", "no_certificate");
    case C::tls_failed_unknown_ca: return Labelled(kTlsFailures, "cause", "unknown_ca");
    case C::tls_failed_certificate_expired:
      return Labelled(kTlsFailures, "cause", "certificate_expired");
    case C::tls_failed_bad_certificate: return Labelled(kTlsFailures, "cause", "bad_certificate");
    case C::tls_failed_protocol_version:
      return Labelled(kTlsFailures, "cause", "protocol_version");
    case C::tls_failed_no_shared_cipher:
      return Labelled(kTlsFailures, "cause", "no_shared_cipher");
    case C::tls_failed_not_tls: return Labelled(kTlsFailures, "cause", "not_tls");
    case C::tls_failed_peer_alert: return Labelled(kTlsFailures, "cause", "peer_alert");
    case C::tls_failed_timeout: return Labelled(kTlsFailures, "cause", "timeout");
    case C::tls_failed_other: return Labelled(kTlsFailures, "cause", "other");
    case C::tls_record_errors: return Plain("ringmq_tls_record_errors_total");
    case C::websocket_upgrades: return Plain("ringmq_websocket_upgrades_total");
    case C::websocket_refused_malformed: return Labelled(kWsRefused, "reason", "malformed");
    case C::websocket_refused_request_too_large:
      return Labelled(kWsRefused, "reason", "request_too_large");
    case C::websocket_refused_method: return Labelled(kWsRefused, "reason", "method");
    case C::websocket_refused_path: return Labelled(kWsRefused, "reason", "path");
    case C::websocket_refused_not_upgrade: return Labelled(kWsRefused, "reason", "not_upgrade");
    case C::websocket_refused_version: return Labelled(kWsRefused, "reason", "version");
    case C::websocket_refused_key: return Labelled(kWsRefused, "reason", "key");
    case C::websocket_refused_subprotocol: return Labelled(kWsRefused, "reason", "subprotocol");
    case C::websocket_refused_origin: return Labelled(kWsRefused, "reason", "origin");
    case C::websocket_refused_forwarded_for:
      return Labelled(kWsRefused, "reason", "forwarded_for");
    case C::websocket_upgrade_timeout: return Labelled(kWsRefused, "reason", "timeout");
    case C::websocket_error_unmasked: return Labelled(kWsErrors, "reason", "unmasked");
    case C::websocket_error_reserved_bits: return Labelled(kWsErrors, "reason", "reserved_bits");
    case C::websocket_error_opcode: return Labelled(kWsErrors, "reason", "opcode");
    case C::websocket_error_control_frame: return Labelled(kWsErrors, "reason", "control_frame");
    case C::websocket_error_continuation: return Labelled(kWsErrors, "reason", "continuation");
    case C::websocket_error_text_frame: return Labelled(kWsErrors, "reason", "text_frame");
    case C::websocket_error_close_frame: return Labelled(kWsErrors, "reason", "close_frame");
    case C::websocket_frame_too_large: return Labelled(kWsTooLarge, "what", "frame");
    case C::websocket_message_too_large: return Labelled(kWsTooLarge, "what", "message");
    case C::websocket_closes_received: return Plain("ringmq_websocket_closes_received_total");
    case C::websocket_pings_received: return Plain("ringmq_websocket_pings_received_total");
    case C::recv_enobufs: return Plain("ringmq_receive_buffer_exhausted_total");
    case C::stop_sockets_unclosed: return Plain("ringmq_stop_sockets_unclosed_total");  // tidy2
    case C::loop_iterations: return Plain("ringmq_loop_iterations_total");
    case C::sqes_submitted: return Plain("ringmq_io_uring_sqes_submitted_total");
    case C::cqes_reaped: return Plain("ringmq_io_uring_cqes_reaped_total");
  }
  RINGMQ_ASSERT(false && "every CounterId has a series");
  return Plain("");
}

Series SeriesOf(GaugeId id) {
  using G = GaugeId;
  switch (id) {
    case G::connections_open: return Plain("ringmq_connections");
    case G::sessions_online: return Labelled("ringmq_sessions", "state", "online");
    case G::sessions_offline: return Labelled("ringmq_sessions", "state", "offline");
    case G::subscriptions: return Plain("ringmq_subscriptions");
    case G::cluster_nats_subscriptions: return Plain("ringmq_cluster_nats_subscriptions");
    case G::cluster_ack_pending: return Plain("ringmq_cluster_ack_pending");
    case G::cluster_ack_pending_bytes: return Plain("ringmq_cluster_ack_pending_bytes");
    case G::cluster_remote_links: return Plain("ringmq_cluster_remote_links");
    case G::cluster_share_subscriptions:
      return Plain("ringmq_cluster_share_subscriptions");
    case G::bridges_connected: return Plain("ringmq_bridges_connected");
    case G::shared_groups: return Plain("ringmq_shared_groups");
    case G::queued_messages: return Plain("ringmq_queued_messages");
    case G::persist_pending_bytes: return Plain("ringmq_persist_pending_bytes");
    case G::persist_disk_bytes: return Plain("ringmq_persist_disk_bytes");
    case G::persist_held_acks: return Plain("ringmq_persist_held_acks");
    case G::bridge_local_connections: return Plain("ringmq_bridge_local_connections");
    case G::inflight_messages: return Plain("ringmq_inflight_messages");
    case G::mailbox_overflow_bytes: return Plain("ringmq_mailbox_overflow_bytes");
    case G::loop_iteration_max_us: return Plain("ringmq_loop_iteration_max_microseconds");
    // sacks lane.
    case G::cluster_remote_groups: return Plain("ringmq_cluster_remote_groups");
    // weak lane (issue 16).
    case G::cluster_link_buffer_bytes: return Plain("ringmq_cluster_link_buffer_bytes");
  }
  RINGMQ_ASSERT(false && "every GaugeId has a series");
  return Plain("");
}

std::string Render(const BrokerSample& sample) {
  std::string out;
  out.reserve(16384 + sample.shards.size() * 8192);
  for (const Family& family : kFamilies) {
    out.append("# HELP ").append(family.name).append(" ").append(EscapeHelp(family.help));
    out.append("\n# TYPE ").append(family.name).append(" ");
    out.append(family.type == Type::kCounter ? "counter\n"
               : family.type == Type::kGauge ? "gauge\n"
                                             : "histogram\n");
    if (!AppendBrokerSeries(out, family, sample)) AppendShardSeries(out, family, sample);
  }
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Each family a series names exists (checked at compile time for the literal names above).
static_assert(FamilyExists(kDropped) && FamilyExists(kReceived) && FamilyExists(kSent) &&
              FamilyExists(kConnectOutcomes) && FamilyExists(kProxyHeaders));

}  // namespace ringmq::metrics
