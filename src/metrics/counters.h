// Per-shard event counters.
//
// Each shard owns one ShardCounters and is its only writer: an increment is a relaxed load plus
// a relaxed store (no read-modify-write, no lock, no shared cache line with other shards).
// Readers on other threads (the shutdown summary, the /metrics scraper, the $SYS publisher on
// shard 0) load relaxed and sum over shards; a reader may see a value a few events old, never a
// torn one. Gauges follow the same single-writer rule; a sum of gauges over shards read at
// slightly different moments may be off by the events in between, never drift.
//
// One shard's sample (AddTo) is no snapshot, but its gauges are never newer than its counters:
// a gauge is stored with release and AddTo loads the gauges first, with acquire, then the
// counters. So when a sample shows a gauge change, it also shows every count the shard added
// before that change (e.g. the bytes of the PUBACK that released an in-flight message). Across
// shards nothing is ordered (docs/metrics.md, "Consistency of a scrape").
//
// Every counter and gauge here is exposed by metrics/exposition.cc; its switch over the ids
// below does not compile when one is missing.
//
// Thread safety: Add()/Set() only on the owning shard's thread; Load()/AddTo() from any thread.
#ifndef RINGMQ_METRICS_COUNTERS_H_
#define RINGMQ_METRICS_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/assert.h"
#include "connect/admission.h"

namespace ringmq::metrics {

// X(name): monotonic event counts unless the name says otherwise.
#define RINGMQ_SHARD_COUNTERS(X)                                                        \
  X(connections_accepted)         /* TCP connections accepted */                        \
  X(connections_closed)           /* TCP connections closed, any reason */              \
  X(accept_errors)                /* accept completions with an error (e.g. EMFILE) */  \
  X(connect_closed_silent_policy) /* refusals closed without CONNACK (reject_policy) */ \
  X(connect_timeout)              /* no complete CONNECT within connect_timeout_ms */   \
  X(keepalive_timeout)            /* nothing received for keepalive x 1.5 */            \
  X(packet_too_large)             /* packet above max_packet_size: closed */            \
  X(connect_packet_too_large)     /* CONNECT above max_connect_packet_size: closed */   \
  X(protocol_violations)          /* malformed packets after CONNECT: closed */         \
  X(client_disconnects)           /* DISCONNECT received */                             \
  X(output_overflow)              /* peer did not read its replies: closed */           \
  X(bytes_received)                                                                     \
  X(bytes_sent)                                                                         \
  X(publish_received_qos0)                                                              \
  X(publish_received_qos1)                                                              \
  X(publish_received_qos2)                                                              \
  X(publish_dropped_no_subscribers)                                                     \
  X(publish_sent_qos0)             /* PUBLISH packets encoded for subscribers, resends too */ \
  X(publish_sent_qos1)                                                                       \
  X(publish_sent_qos2)                                                                       \
  X(publish_dropped_sys_topic)     /* client PUBLISH to a $SYS/ topic: acked, dropped */    \
  X(sys_messages_published)        /* $SYS/broker/... messages published by the broker */   \
  X(sessions_created)                                                                         \
  X(session_takeovers)             /* CONNECT with the id of a connected client */           \
  X(sessions_expired)              /* offline longer than its session expiry interval */    \
  X(sessions_evicted)              /* oldest offline, beyond max_offline_sessions */         \
  X(connections_handed_off)        /* moved to their client id's home shard */               \
  X(wills_published)                                                                         \
  X(wills_delayed)                 /* kept for its Will Delay Interval at disconnect */     \
  X(wills_cancelled)               /* delayed will dropped: the session resumed in time */   \
  X(publish_duplicates)            /* QoS 2 PUBLISH repeated before PUBREL: not delivered */ \
  X(subscriptions_added)                                                                     \
  X(subscriptions_removed)                                                                   \
  X(dropped_queue_full)            /* QoS 1/2 beyond max_queued_messages */                  \
  X(dropped_bytes_cap)             /* any QoS beyond max_queued_bytes */                     \
  X(slow_consumer_disconnects)     /* queue full under queue_full_policy = disconnect */     \
  X(dropped_offline_qos0)          /* QoS 0 for a disconnected persistent session */         \
  X(dropped_memory_qos0)           /* QoS 0 to a backlogged session, max_memory pressure */  \
  X(dropped_memory_qos12)          /* QoS 1/2 to a backlogged session, max_memory spent */   \
  X(mailbox_full)                  /* records waiting for room in a shard mailbox */         \
  X(mailbox_overflow)              /* records dropped: mailbox and its overflow full */      \
  X(handoffs_dropped)              /* hand-off records dropped: connection closed */         \
  X(doorbell_failures)             /* msg_ring doorbells to another shard that failed */     \
  X(loop_stalls)                   /* loop iterations longer than stall_warning_ms */        \
  X(bytes_delivered)               /* PUBLISH/PUBREL bytes encoded for subscribers */        \
  X(retained_live_superseded)      /* live copies skipped: the session got it as retained */  \
  X(retained_fence_full)           /* retained deliveries not fenced: entries at their bound */ \
  X(retained_walk_truncated)       /* retained walk at SUBSCRIBE stopped: session full */  \
  X(retained_refused)              /* retained PUBLISHes not stored: retained store bounds */ \
  X(persist_records)               /* records appended to the persistence log */ \
  X(persist_bytes_written)         /* bytes written to the persistence log */ \
  X(persist_syncs)                 /* fdatasyncs of the persistence log completed */ \
  X(persist_write_errors)          /* log writes or fdatasyncs that failed (retried) */ \
  X(persist_publish_refused)       /* QoS 1/2 PUBLISHes not acknowledged: log degraded */ \
  X(persist_dropped_disk_full)     /* deliveries to durable sessions refused: max_disk_bytes */ \
  X(persist_input_held_back)       /* reads stopped: replies held for the log at their bound */ \
  X(persist_compactions)           /* log segments replaced by a snapshot */ \
  X(persist_sessions_recovered)    /* sessions recovered at start */ \
  X(persist_messages_recovered)    /* queued and in-flight deliveries recovered at start */ \
  /* bridgeq2 lane: recovered sessions of bridges no longer configured, ended at start */    \
  X(persist_bridge_sessions_removed) /* such sessions */                                      \
  X(persist_bridge_messages_removed) /* their queued and in-flight messages, dropped */       \
  X(publish_denied)                /* PUBLISH the ACL does not allow: acked, dropped */       \
  X(subscribe_denied)              /* SUBSCRIBE filters the ACL does not allow: SUBACK 0x80 */ \
  X(subscribe_filtered)            /* filters granted partly readable: checked per message */  \
  X(deliver_denied)                /* deliveries dropped: subscriber may not read the topic */ \
  X(deliver_no_local)   /* 5.0 deliveries skipped: No Local and the publisher's own session */ \
  X(messages_expired)   /* 5.0 deliveries not sent: Message Expiry Interval passed */          \
  X(dropped_too_large_for_client) /* 5.0 deliveries above the client's Maximum Packet Size */ \
  X(publish_sent_mqtt5) /* of publish_sent, those encoded for 5.0 subscribers */               \
  X(subscribe_limit)   /* new filters beyond max_subscriptions_per_session: SUBACK 0x80 */     \
  X(inbound_qos2_limit) /* closed: over max_inbound_qos2_pending QoS 2 ids await PUBREL */     \
  X(subscribe_deferred) /* SUBSCRIBE/UNSUBSCRIBE continued in later iterations */              \
  X(shared_deliveries)  /* messages handed to the member a shared-subscription group chose */   \
  X(shared_skips)       /* group members passed over: offline, or queue full on this shard */  \
  X(shared_no_member)   /* group had no member online with room (QoS 0: dropped) */             \
  X(shared_rerouted)    /* QoS 1/2 a group member did not keep, given to another member */      \
  X(receive_paused)     /* reads stopped: max_packet_size bytes behind a deferred SUBSCRIBE */ \
  X(connect_accepted_mqtt31)       /* CONNECTs accepted, by protocol level */               \
  X(connect_accepted_mqtt311)                                                                  \
  X(connect_accepted_mqtt5)                                                                    \
  X(disconnect_sent_malformed_packet)         /* 5.0 DISCONNECTs sent, by reason code */      \
  X(disconnect_sent_protocol_error)                                                            \
  X(disconnect_sent_server_shutting_down)                                                      \
  X(disconnect_sent_keep_alive_timeout)                                                        \
  X(disconnect_sent_session_taken_over)                                                        \
  X(disconnect_sent_receive_maximum_exceeded)                                                  \
  X(disconnect_sent_topic_alias_invalid)                                                       \
  X(disconnect_sent_packet_too_large)                                                          \
  X(disconnect_sent_retain_not_supported)                                                      \
  X(disconnect_sent_qos_not_supported)                                                         \
  X(disconnect_sent_other)                                                                     \
  X(closes_lingered)        /* 5.0 closes that read on after their DISCONNECT (linger) */ \
  X(linger_discarded_bytes) /* bytes read and discarded while lingering */                \
  X(closes_linger_reset)    /* lingers ended at a bound, peer still open: closed by RST */ \
  X(topic_alias_set)              /* 5.0 PUBLISHes that set an inbound topic alias */          \
  X(topic_alias_used)             /* 5.0 PUBLISHes whose topic came from an alias */           \
  X(topic_alias_out_set)          /* 5.0 deliveries that carried a topic and set an alias */   \
  X(topic_alias_out_used)         /* 5.0 deliveries sent with an alias and an empty topic */   \
  X(receive_maximum_exceeded)     /* 5.0 clients over the broker's Receive Maximum: closed */  \
  X(auth_cache_hits)               /* CONNECT credentials found verified in the shard cache */ \
  X(auth_verifications)            /* password hashes computed (PBKDF2 / SHA-512) */           \
  X(auth_scram_success)            /* SCRAM-SHA-256 exchanges that proved the user */          \
  X(auth_scram_malformed)          /* SCRAM messages off the grammar or unsupported: 0x87 */   \
  X(auth_scram_user_mismatch)      /* SCRAM user other than the CONNECT User Name: 0x87 */     \
  X(auth_scram_unknown_user)       /* SCRAM for a user not in the password file: 0x86 */       \
  X(auth_scram_no_scram_credentials) /* SCRAM for a user with a $6$/$7$ entry: 0x86 */         \
  X(auth_scram_bad_proof)          /* SCRAM proofs that did not verify: 0x86 */                \
  X(auth_scram_rate_limited)       /* SCRAM refused, failure budget spent: 0x97 */             \
  X(proxy_header_v1)       /* PROXY v1 headers that named the client (TCP4/TCP6) */          \
  X(proxy_header_v2)       /* PROXY v2 headers that named the client (PROXY, AF_INET/6) */   \
  X(proxy_header_local)    /* PROXY headers that kept the socket's address (LOCAL, UNKNOWN) */ \
  X(proxy_refused_missing) /* PROXY listener: first bytes not a PROXY header: closed */      \
  X(proxy_refused_malformed_v1) /* PROXY v1 line off the grammar or over 107 bytes */        \
  X(proxy_refused_malformed_v2) /* PROXY v2 header off the format (lengths, TLVs, CRC) */    \
  X(proxy_refused_unsupported)  /* PROXY header of a version the listener does not take */   \
  X(proxy_refused_too_large)    /* PROXY v2 header above proxy::kMaxV2Bytes */               \
  X(proxy_timeout)         /* no complete PROXY header within connect_timeout_ms */          \
  X(tls_handshakes_completed)      /* TLS handshakes that completed (resumed ones too) */     \
  X(tls_sessions_resumed)          /* of those, resumed from a session ticket */              \
  X(tls_failed_no_certificate)     /* TLS handshakes failed, by cause (tls/tls_layer.h) */    \
  X(tls_failed_unknown_ca)                                                                     \
  X(tls_failed_certificate_expired)                                                            \
  X(tls_failed_bad_certificate)                                                                \
  X(tls_failed_protocol_version)                                                               \
  X(tls_failed_no_shared_cipher)                                                               \
  X(tls_failed_not_tls)                                                                        \
  X(tls_failed_peer_alert)                                                                     \
  X(tls_failed_timeout)                                                                        \
  X(tls_failed_other)                                                                          \
  X(tls_record_errors)             /* TLS records after the handshake that failed: closed */  \
  X(websocket_upgrades)                  /* WebSocket upgrades answered 101 */              \
  X(websocket_refused_malformed)         /* upgrade off the HTTP grammar or no Host: 400 */ \
  X(websocket_refused_request_too_large) /* upgrade request above 8 KiB: 431 */             \
  X(websocket_refused_method)            /* not GET: 405 */                                 \
  X(websocket_refused_path)              /* not the listener's path: 404 */                 \
  X(websocket_refused_not_upgrade)       /* no Upgrade: websocket / Connection: upgrade */  \
  X(websocket_refused_version)           /* Sec-WebSocket-Version not 13: 426 */            \
  X(websocket_refused_key)               /* Sec-WebSocket-Key missing or malformed: 400 */  \
  X(websocket_refused_subprotocol)       /* subprotocols offered, none of them MQTT: 400 */ \
  X(websocket_refused_origin)            /* Origin not in allowed_origins: 403 */           \
  X(websocket_refused_forwarded_for)     /* trusted X-Forwarded-For not an address: 400 */  \
  X(websocket_upgrade_timeout)           /* no complete upgrade within connect_timeout_ms */ \
  X(websocket_error_unmasked)            /* unmasked client frame: close 1002 */            \
  X(websocket_error_reserved_bits)       /* RSV bits set: close 1002 */                     \
  X(websocket_error_opcode)              /* reserved opcode: close 1002 */                  \
  X(websocket_error_control_frame)       /* control frame fragmented or > 125 B: 1002 */    \
  X(websocket_error_continuation)        /* continuation out of a message, or missing */    \
  X(websocket_error_text_frame)          /* text frame (MQTT-6.0.0-1): close 1003 */        \
  X(websocket_error_close_frame)         /* close frame with a bad status code: 1002 */     \
  X(websocket_frame_too_large)           /* frame payload above the bound: close 1009 */    \
  X(websocket_message_too_large)         /* fragmented message above the bound: 1009 */     \
  X(websocket_closes_received)           /* close frames received (answered) */             \
  X(websocket_pings_received)            /* pings received (answered with a pong) */        \
  X(cluster_messages_out)        /* PUBLISHes and wills sent to NATS (cluster) */            \
  X(cluster_bytes_out)           /* their header + payload bytes */                          \
  X(cluster_messages_in)         /* NATS messages delivered to this shard's sessions */      \
  X(cluster_bytes_in)            /* their payload bytes */                                   \
  X(cluster_echoes_dropped)      /* NATS messages this node published itself */              \
  X(cluster_overlap_dropped)     /* extra copies of overlapping NATS subscriptions */        \
  X(cluster_uncarried_topics)    /* topics no NATS subject can carry: not forwarded */       \
  X(cluster_unmappable_subjects) /* NATS subjects that are no MQTT topic: dropped */          \
  X(cluster_publish_refused)     /* NATS link refused a publish (no room, too large) */      \
  X(cluster_link_connects)       /* NATS handshakes completed */                             \
  X(cluster_link_reconnects)     /* of those, after the first */                             \
  X(cluster_link_disconnects)    /* NATS connections ended, failed attempts included */      \
  X(cluster_acks_sent)           /* message ids acknowledged to other nodes (acks) */        \
  X(cluster_acks_received)       /* message ids other nodes acknowledged to this shard */    \
  X(cluster_retransmits)         /* messages sent again to a link that had not acked */      \
  X(cluster_duplicates_dropped)  /* messages received again and not delivered again */       \
  X(cluster_duplicates_unknown)  /* ids older than the duplicate window: delivered */        \
  X(cluster_ack_held_back)       /* publishers paused at the pending-acks bound */           \
  X(cluster_ack_untracked)       /* QoS 1/2 forwarded without acks: id span full */          \
  X(cluster_links_forgotten)     /* remote links silent beyond link_timeout_ms */            \
  X(cluster_ack_forgotten_released) /* pending messages released by a forgotten link */      \
  X(cluster_interest_sent)       /* interest announcements published */                      \
  X(cluster_interest_received)   /* interest announcements of other links received */        \
  X(cluster_interest_gaps)       /* announcements lost (a snapshot is asked) */              \
  X(cluster_interest_refused)    /* links, subjects beyond the interest table's bounds */    \
  X(cluster_control_refused)     /* acks, announcements, retransmits the link refused */     \
  X(cluster_owner_claims_sent)          /* client-id claims published (cluster/claim.h) */   \
  X(cluster_owner_claims_received)      /* other nodes' claims received on this shard */     \
  X(cluster_owner_claims_forwarded)     /* of those, passed to the id's home shard */        \
  X(cluster_owner_claims_kept)          /* claims older than the session's own: it stays */  \
  X(cluster_owner_claims_invalid)       /* claim payloads that did not parse */              \
  X(cluster_owner_claims_refused)       /* claims the NATS link refused (no room) */         \
  X(cluster_owner_claims_dropped)       /* claims dropped at the mailbox overflow bound */   \
  X(cluster_owner_takeovers)            /* connections closed for a newer claim */           \
  X(cluster_owner_sessions_ended)       /* sessions ended here for a newer claim */          \
  X(cluster_owner_sessions_not_moved)   /* persistent, its state not sent to the claimant */ \
  X(cluster_owner_sessions_moved)       /* persistent, its state sent to the claimant */     \
  X(cluster_owner_state_left_out)       /* subscriptions / messages over max_payload */      \
  X(cluster_owner_states_merged)        /* states received and merged into a session */      \
  X(cluster_owner_states_stale)         /* states for a session no longer the claimant's */  \
  X(cluster_owner_states_invalid)       /* state payloads that did not parse */              \
  /* claims lane: claim batches (shard/cluster_owner.h, "Batches") */                         \
  X(cluster_owner_batches_window)       /* claim batches sent at the end of their window */  \
  X(cluster_owner_batches_count)        /* sent early: claim_batch_max claims */             \
  X(cluster_owner_batches_resume)       /* sent at once: a claim in it resumes its session */ \
  X(cluster_owner_batches_bytes)        /* sent early: claim_batch_bytes bytes */            \
  X(cluster_owner_batches_received)     /* other nodes' claim batches received */            \
  X(cluster_share_delivered)       /* NATS queue messages given to a group member */       \
  X(cluster_share_no_member)       /* NATS queue messages no member here could take */     \
  X(cluster_share_local)   /* link up but message not forwarded: groups chose locally */    \
  X(cluster_share_link_connects)   /* share link: NATS handshakes completed */              \
  X(cluster_share_link_reconnects) /* of those, after the first */                          \
  X(cluster_share_link_disconnects) /* share link: connections ended, attempts included */  \
  X(cluster_retained_out)              /* retained updates published to the stream */     \
  X(cluster_retained_in)               /* stream updates applied to the retained store */ \
  X(cluster_retained_store_refused)    /* of those, refused by the store's bounds */      \
  X(cluster_retained_publish_refused)  /* the link refused an update (bound, size) */     \
  X(cluster_retained_uncarried)        /* retained topics no subject carries: local */    \
  X(cluster_retained_unmappable)       /* stream subjects that are no topic: skipped */   \
  X(cluster_retained_acks)             /* PubAcks of this shard's updates */              \
  X(cluster_retained_stream_errors)    /* JetStream errors, no responders, timeouts */    \
  X(cluster_retained_duplicates)       /* stream sequences already applied: skipped */    \
  X(cluster_retained_consumer_starts)  /* stream consumers created */                     \
  X(cluster_retained_gaps)             /* consumer gaps or silences: consumer recreated */ \
  X(cluster_retained_resent)           /* updates sent again (no PubAck, error, 503) */   \
  X(cluster_retained_untracked)        /* updates sent once: too many awaited PubAcks */  \
  /* retained5 lane: MQTT 5.0 properties of retained messages in the stream */            \
  X(cluster_retained_properties_too_many) /* not published: more property fields than fit */ \
  X(cluster_retained_properties_dropped)  /* stream header fields that gave no property */   \
  /* batch lane: QoS 0 batches between nodes (router_cluster_batch.cc) */                    \
  X(cluster_batch_messages_out)  /* QoS 0 records appended to batches, per destination */   \
  X(cluster_batches_out)         /* batches published (one NATS message each) */            \
  X(cluster_batch_flush_bound)   /* batches flushed early at batch_bytes_max */             \
  X(cluster_batch_oversize)      /* QoS 0 messages too large for a batch: plain path */     \
  X(cluster_batch_refused)       /* records of batches the NATS link refused (no room) */   \
  X(cluster_batches_in)          /* batches received for this shard's link */               \
  X(cluster_batch_messages_in)   /* records delivered from them */                          \
  X(cluster_batch_invalid)       /* batches or records that did not decode: dropped */      \
  /* batchprops lane: MQTT 5.0 properties in QoS 0 batch records */                        \
  X(cluster_batch_mqtt5_out)     /* QoS 0 messages batched with 5.0 properties or expiry */ \
  /* weak lane (issue 16): duplicate node names, the NATS links' memory */                \
  X(cluster_node_name_conflicts) /* announcements of another node with this node's name */ \
  X(cluster_link_memory_refused) /* NATS publishes refused: max_memory spent (no growth) */ \
  /* Session lane: persistent sessions across nodes (docs/cluster.md "Where a persistent    \
     session lives"; cluster/session_record.h). */                                         \
  X(cluster_session_held)          /* CONNACKs held for the session's key-value record */  \
  X(cluster_session_moved)         /* of those, sent with session present 1: state came */ \
  X(cluster_session_none)          /* no record, or this node's: session present 0 */      \
  X(cluster_session_timeouts)      /* the wait ran out: session present 0 */               \
  X(cluster_session_read_errors)   /* record reads failed (status, bad value): present 0 */ \
  X(cluster_session_taken_over)    /* the waiting connection lost its session meanwhile */  \
  X(cluster_session_abandoned)     /* the waiting connection closed before its CONNACK */   \
  X(cluster_session_not_held)      /* not held: the bound of waiting CONNECTs was reached */ \
  X(cluster_session_no_bucket)     /* not held: the bucket is not ready on this shard */    \
  X(cluster_session_bucket_ready)  /* the shard learnt its bucket exists (created or found) */ \
  X(cluster_session_bucket_unavailable) /* a bucket creation failed or went unanswered */     \
  X(cluster_session_records_written) /* ownership records published to the bucket */       \
  X(cluster_session_records_acked)   /* of those, stored (PubAck) */                        \
  X(cluster_session_record_errors)   /* writes refused, JetStream errors */                 \
  X(cluster_session_records_deleted) /* records deleted when their session ended here */    \
  X(cluster_session_records_kept)    /* deletes refused: another node wrote a newer record */ \
  X(cluster_session_records_skipped) /* persistent sessions not recorded: bucket not ready, \
                                        link down, id over 1024 bytes */                    \
  X(cluster_session_inflight_restored) /* moved in-flight deliveries, inbound QoS 2 ids kept \
                                          with their packet ids */                          \
  X(cluster_session_inflight_requeued) /* moved in-flight deliveries queued anew (session   \
                                          bound already, or a packet id named twice) */     \
  /* moveinflight lane: moved in-flight state not kept (docs/cluster.md) */                  \
  X(cluster_session_inflight_dropped) /* moved released deliveries and inbound QoS 2 ids not \
                                         kept: session bound already, a packet id named     \
                                         twice, max_inbound_qos2_pending */                 \
  /* MQTT 5.0 properties across nodes (props lane; cluster/mqtt5_headers.h) */                 \
  X(cluster_properties_too_many)  /* not forwarded: more property fields than NATS holds */ \
  X(cluster_properties_too_large) /* not forwarded: over max_payload with its properties */ \
  X(cluster_properties_dropped)   /* received header fields that gave no valid property */  \
  X(cluster_expired_in_transit)   /* received with no Message Expiry Interval left */       \
  /* sacks lane: at least once for shared-subscription groups across nodes */          \
  X(cluster_group_acks)        /* queue copies a member here acknowledged to the group */ \
  X(cluster_group_retransmits) /* messages sent again to a group's rtq subject */         \
  X(cluster_groups_forgotten)  /* groups whose last member link went: no longer awaited */ \
  /* natstls lane: TLS to the NATS servers (both links of every shard) */                \
  X(cluster_nats_tls_handshakes)       /* TLS handshakes with a NATS server completed */  \
  X(cluster_nats_tls_failures)         /* TLS handshakes with a NATS server failed */     \
  /* jwt lane: credentials the NATS servers refused (both links of every shard) */     \
  X(cluster_link_auth_refused) /* NATS connections ended by an authorization error */   \
  /* tidy2 lane: bridge sockets still being made when the loop ended (shard_bridge.cc) */ \
  X(stop_sockets_unclosed) /* IORING_OP_SOCKET not done within the stop's wait: not closed */ \
  X(recv_enobufs) /* multishot recv ran out of provided buffers */                      \
  X(loop_iterations)                                                                    \
  X(sqes_submitted)                                                                     \
  X(cqes_reaped)

// X(name): per-listener event counts (ListenerCounters; docs/metrics.md "Listeners"), summed
// over shards at scrape time and exposed with a `listener` label.
#define RINGMQ_LISTENER_COUNTERS(X)                                                     \
  X(connections_accepted) /* TCP connections accepted */                                \
  X(connect_accepted)     /* CONNECTs accepted (counted where connect[kAccepted] is) */ \
  X(connect_refused)      /* CONNECTs not accepted: refused, closed silently, malformed */ \
  X(bytes_received)                                                                     \
  X(bytes_sent)

// ---- bridge lane ----
// X(name): per-bridge event counts (BridgeCounters; docs/metrics.md "MQTT bridges"), exposed
// with a `bridge` label (the bridge's name; at most kMaxBridges of them). A bridge runs on one
// shard, which alone writes its entry; the scrape sums the shards' entries.
#define RINGMQ_BRIDGE_COUNTERS(X)                                                          \
  X(messages_out)   /* local messages queued for the remote broker */                      \
  X(messages_in)    /* remote messages queued for this broker */                           \
  X(dropped_out)    /* local messages refused by the queue bound or too large to send */   \
  X(dropped_in)     /* remote messages refused by the local side's queue bound */          \
  X(connects)       /* CONNACKs accepted by the remote broker */                           \
  X(disconnects)    /* remote connections ended, failed attempts included */               \
  X(resent)         /* unacknowledged PUBLISH / PUBREL sent again after reconnect */       \
  X(notifications)  /* connection state messages published (notifications) */            \
  /* bridgeq2 lane: QoS 2 out, exactly once across a restart (relay_qos2) */                \
  X(qos2_recovered) /* PUBRELs sent for an id only this broker's log still held */         \
  X(qos2_abandoned) /* such ids ended unsent: the remote started a new session */

// X(name): per-shard levels (can go up and down), written only by the owning shard.
#define RINGMQ_SHARD_GAUGES(X)                                                            \
  X(connections_open)  /* TCP connections held by this shard, closing ones included */    \
  X(sessions_online)   /* sessions with a connection */                                   \
  X(sessions_offline)  /* persistent sessions kept without a connection */                \
  X(subscriptions)     /* subscriptions held by this shard's sessions */                  \
  X(cluster_nats_subscriptions) /* NATS subscriptions of this shard's link */             \
  X(cluster_ack_pending)       /* messages waiting for other nodes' acks (acks) */       \
  X(cluster_ack_pending_bytes) /* their payload bytes */                                  \
  X(cluster_remote_links)      /* other nodes' links in this shard's interest table */    \
  X(cluster_share_subscriptions) /* NATS queue subscriptions of this shard's share link */ \
  X(bridges_connected) /* bridges of this shard connected to their remote broker */        \
  X(shared_groups)     /* shared-subscription groups created minus removed by this shard */ \
  X(queued_messages)   /* messages waiting in session queues (not yet sent) */            \
  X(inflight_messages) /* QoS 1/2 messages sent and not yet fully acknowledged */          \
  X(mailbox_overflow_bytes) /* bytes waiting in this shard's mailbox overflow queues */     \
  X(loop_iteration_max_us)  /* longest loop iteration since start (stall_warning_ms > 0) */ \
  X(persist_pending_bytes)  /* log bytes appended and not yet durable */                   \
  X(persist_disk_bytes)     /* bytes of this shard's log segments */                       \
  X(persist_held_acks)      /* connections with output held for the log */            \
  /* sacks lane */                                                                          \
  X(cluster_remote_groups) /* queue groups in this shard's interest table (acknowledgers) */ \
  /* weak lane (issue 16) */                                                              \
  X(cluster_link_buffer_bytes) /* NATS links' buffer capacity charged to max_memory */   \
  /* bridge lane */                                                                        \
  X(bridge_local_connections) /* bridges' in-process local sessions (no listener's) */

class Counter {
 public:
  void Add(uint64_t delta = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  uint64_t Load() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A level with one writer: Add/Set from the owning shard, Load from anywhere (relaxed), or
// LoadAcquire to also see every store the shard made before this value (AddTo). The release
// store is a plain store on x86-64 (TSO); it only keeps the compiler from moving the shard's
// earlier counter stores after it.
class Gauge {
 public:
  void Add(int64_t delta) {
    value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_release);
  }
  void Set(int64_t value) { value_.store(value, std::memory_order_release); }
  int64_t Load() const { return value_.load(std::memory_order_relaxed); }
  int64_t LoadAcquire() const { return value_.load(std::memory_order_acquire); }

 private:
  std::atomic<int64_t> value_{0};
};

struct ShardGauges {
#define RINGMQ_GAUGE_FIELD(name) Gauge name;
  RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_FIELD)
#undef RINGMQ_GAUGE_FIELD
};

struct GaugeSnapshot {
#define RINGMQ_GAUGE_SNAPSHOT_FIELD(name) int64_t name = 0;
  RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_SNAPSHOT_FIELD)
#undef RINGMQ_GAUGE_SNAPSHOT_FIELD
};

struct Snapshot;

// The cross-node hop of a cluster message (docs/cluster.md, "Latency across nodes"): from the
// publishing node's PUBLISH to the receiving shard's delivery, in microseconds, by bucket
// upper bound (Prometheus histogram ringmq_cluster_hop_latency_seconds; the exposition makes
// the buckets cumulative). The last bucket is everything above the last bound (+Inf).
inline constexpr std::array<uint64_t, 12> kClusterHopBoundsUs = {
    100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 1'000'000};
inline constexpr size_t kClusterHopBuckets = kClusterHopBoundsUs.size() + 1;

// One listener's counters on one shard.
struct ListenerCounters {
#define RINGMQ_LISTENER_COUNTER_FIELD(name) Counter name;
  RINGMQ_LISTENER_COUNTERS(RINGMQ_LISTENER_COUNTER_FIELD)
#undef RINGMQ_LISTENER_COUNTER_FIELD
  Gauge connections_open;  // TCP connections of this listener held by the shard
};

// Plain sum of ListenerCounters.
struct ListenerSnapshot {
#define RINGMQ_LISTENER_SNAPSHOT_FIELD(name) uint64_t name = 0;
  RINGMQ_LISTENER_COUNTERS(RINGMQ_LISTENER_SNAPSHOT_FIELD)
#undef RINGMQ_LISTENER_SNAPSHOT_FIELD
  int64_t connections_open = 0;
};

// ---- bridge lane ----
// One bridge's counters (on the shard that runs it), and their plain sum.
struct BridgeCounters {
  static constexpr uint32_t kMaxBridges = 64;  // Config's bound on [[bridge]] tables
#define RINGMQ_BRIDGE_COUNTER_FIELD(name) Counter name;
  RINGMQ_BRIDGE_COUNTERS(RINGMQ_BRIDGE_COUNTER_FIELD)
#undef RINGMQ_BRIDGE_COUNTER_FIELD
  Gauge connected;  // 1 while the remote connection is open
};
struct BridgeSnapshot {
#define RINGMQ_BRIDGE_SNAPSHOT_FIELD(name) uint64_t name = 0;
  RINGMQ_BRIDGE_COUNTERS(RINGMQ_BRIDGE_SNAPSHOT_FIELD)
#undef RINGMQ_BRIDGE_SNAPSHOT_FIELD
  int64_t connected = 0;
};

// alignas keeps two shards' counters off one cache line.
struct alignas(64) ShardCounters {
#define RINGMQ_COUNTER_FIELD(name) Counter name;
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_FIELD)
#undef RINGMQ_COUNTER_FIELD
  // CONNECT decisions by reason (connect::Reason), e.g. connect[kUnsupportedProtocol].
  std::array<Counter, connect::kReasonCount> connect;
  // The part of connect[reason] closed without CONNACK because of reject_policy = silent; the
  // rest of a refusal reason's count got its CONNACK.
  std::array<Counter, connect::kReasonCount> connect_silenced;
  // Cross-node hop latency: per bucket (not cumulative) and the sum in microseconds.
  std::array<Counter, kClusterHopBuckets> cluster_hop;
  Counter cluster_hop_sum_us;
  ShardGauges gauges;

  void ObserveClusterHop(uint64_t microseconds) {
    size_t bucket = 0;
    while (bucket < kClusterHopBoundsUs.size() && microseconds > kClusterHopBoundsUs[bucket]) {
      ++bucket;
    }
    cluster_hop[bucket].Add();
    cluster_hop_sum_us.Add(microseconds);
  }

  ShardCounters() : listeners_(std::make_unique<ListenerCounters[]>(1)) {}

  // Sizes the per-listener counters (1, the default listener, until called): before the
  // shard runs, since readers on other threads index them without synchronization.
  void SetListenerCount(uint32_t count) {
    RINGMQ_ASSERT(count >= 1);
    listeners_ = std::make_unique<ListenerCounters[]>(count);
    listener_count_ = count;
  }
  uint32_t listener_count() const { return listener_count_; }
  // The counters of listener `index` (net::Connection::listener()).
  ListenerCounters& listener(uint32_t index) {
    RINGMQ_ASSERT(index < listener_count_);
    return listeners_[index];
  }

  // ---- bridge lane ----
  // Sizes the per-bridge counters (Config::bridges.size(), none until called): before the
  // shard runs, like SetListenerCount.
  void SetBridgeCount(uint32_t count) {
    RINGMQ_ASSERT(count <= BridgeCounters::kMaxBridges);
    bridges_ = count == 0 ? nullptr : std::make_unique<BridgeCounters[]>(count);
    bridge_count_ = count;
  }
  // The counters of bridge `index` (Config::bridges order).
  BridgeCounters& bridge(uint32_t index) {
    RINGMQ_ASSERT(index < bridge_count_);
    return bridges_[index];
  }
  // Adds bridge i's counters to totals[i], for i < min(totals.size(), bridge count).
  void AddBridgesTo(std::span<BridgeSnapshot> totals) const;

  // Adds this shard's values to total: the gauges first (acquire), then the counters, so the
  // counters are at least as new as the gauges (see the top of this file).
  void AddTo(Snapshot& total) const;
  // Adds listener i's counters to totals[i], for i < min(totals.size(), listener_count()).
  void AddListenersTo(std::span<ListenerSnapshot> totals) const;

 private:
  std::unique_ptr<ListenerCounters[]> listeners_;
  uint32_t listener_count_ = 1;
  std::unique_ptr<BridgeCounters[]> bridges_;  // bridge lane
  uint32_t bridge_count_ = 0;
};

// Plain sum of ShardCounters.
struct Snapshot {
#define RINGMQ_SNAPSHOT_FIELD(name) uint64_t name = 0;
  RINGMQ_SHARD_COUNTERS(RINGMQ_SNAPSHOT_FIELD)
#undef RINGMQ_SNAPSHOT_FIELD
  std::array<uint64_t, connect::kReasonCount> connect{};
  std::array<uint64_t, connect::kReasonCount> connect_silenced{};
  std::array<uint64_t, kClusterHopBuckets> cluster_hop{};  // not part of Format()
  uint64_t cluster_hop_sum_us = 0;
  GaugeSnapshot gauges;  // summed too; not part of Format()

  // "name=value name=value ..." with CONNECT reasons as connect_<label> and their silenced
  // part as connect_silenced_<label>.
  std::string Format() const;
};

}  // namespace ringmq::metrics

#endif  // RINGMQ_METRICS_COUNTERS_H_
