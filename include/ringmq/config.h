// The broker's configuration: one plain struct filled from defaults, then the TOML config file,
// then command-line flags (later sources win). See docs/configuration.md for every key.
//
// Thread safety: a Config is built once on the main thread before shards start and is read-only
// afterwards.
#ifndef RINGMQ_CONFIG_H_
#define RINGMQ_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringmq {

// What a refused CONNECT gets (shared/seed/MQTT-8.txt): `kVerbose` sends the CONNACK return
// code the spec suggests and then closes; `kSilent` closes without any CONNACK so the broker
// cannot be fingerprinted by its refusals.
enum class RejectPolicy : uint8_t { kVerbose, kSilent };

enum class LogLevel : uint8_t { kDebug, kInfo, kWarning, kError };

// What happens when a QoS 1/2 message finds a session's queue full (max_queued_messages): the
// message is dropped (counted in dropped_queue_full) and, with kDisconnect, the slow
// subscriber's connection is also closed (counted in slow_consumer_disconnects).
enum class QueueFullPolicy : uint8_t { kDrop, kDisconnect };

// How a shared subscription's group ("$share/{name}/{filter}") picks the member that gets each
// message: round robin (per publishing shard), random, or by a hash of the publisher's client
// id (the same publisher's messages go to the same member while the membership is stable).
enum class SharedSubscriptionStrategy : uint8_t { kRoundRobin, kRandom, kHash };

// When a PUBACK / PUBREC that depends on the persistence log is sent (docs/persistence.md):
// kFsync after the fdatasync that covers the message's records completed (the message
// survives a crash of the process or of the machine); kInterval once the write of those records
// completed (to the page cache), with an fdatasync every sync_interval_ms (a process crash
// loses nothing acknowledged; a machine crash at most that window).
enum class Durability : uint8_t { kFsync, kInterval };

// Shard threads' CPU affinity: kOff leaves them to the scheduler; kAuto pins shard i to the
// i-th CPU of the process's allowed set (sched_getaffinity), wrapping around when there are
// more shards than CPUs.
enum class CpuAffinity : uint8_t { kOff, kAuto };

enum class ListenerProtocol : uint8_t { kMqtt, kWebSockets };
// Whether a listener expects a PROXY protocol header before anything else (haproxy.org's
// proxy-protocol.txt): version 1 (text), version 2 (binary) or either.
enum class ProxyProtocol : uint8_t { kOff, kV1, kV2, kAny };
// Which part of a verified TLS client certificate names the client (its identity, the user name
// under use_identity_as_username): the subject's CN, or the first subjectAltName of a kind.
enum class IdentityField : uint8_t { kCn, kSanDns, kSanEmail, kSanUri };

// One `[[listener]]` table of the config file (docs/configuration.md, "Listeners"). The TLS keys
// are named as Mosquitto names them, so its listener blocks translate line by line. TLS is on
// when certfile is set.
struct ListenerConfig {
  std::string name;  // the `listener` label of its metrics; default "<scheme>:<port>"
  std::string bind = "127.0.0.1";
  uint16_t port = 0;  // required in a table: 1..65535
  ListenerProtocol protocol = ListenerProtocol::kMqtt;
  // WebSockets: the HTTP path of the upgrade, the Origin values accepted (empty: any), and
  // whether X-Forwarded-For names the client (only behind a proxy the operator trusts).
  std::string path = "/mqtt";
  std::vector<std::string> allowed_origins;
  bool trust_x_forwarded_for = false;
  ProxyProtocol proxy_protocol = ProxyProtocol::kOff;
  // TLS.
  std::string certfile;
  std::string keyfile;
  std::string cafile;  // CAs for client certificates
  bool require_certificate = false;
  bool use_identity_as_username = false;
  IdentityField identity_field = IdentityField::kCn;  // key `identity_field`: cn, san_dns, ...
  std::string tls_version;    // minimum: "tlsv1.2" (default) or "tlsv1.3"
  std::string ciphers;        // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites;   // TLS 1.3 suites; empty: OpenSSL's default
  // Per-listener limits: connections on this listener (0: only the broker-wide bound), and
  // allow_anonymous for this listener (unset: the broker-wide key).
  uint32_t max_connections = 0;
  std::optional<bool> allow_anonymous;

  bool tls() const { return !certfile.empty(); }
  friend bool operator==(const ListenerConfig&, const ListenerConfig&) = default;
};

// ---- MQTT bridges (docs/bridges.md; `[[bridge]]` tables of the config file) ----
enum class BridgeDirection : uint8_t { kIn, kOut, kBoth };

// One `topics` entry of a bridge, Mosquitto's `topic pattern direction qos local-prefix
// remote-prefix`: the local filter is local_prefix + pattern, the remote one remote_prefix +
// pattern, and a topic keeps its part after the prefix when it crosses.
struct BridgeTopicConfig {
  std::string pattern;
  BridgeDirection direction = BridgeDirection::kOut;
  uint8_t qos = 0;
  std::string local_prefix;
  std::string remote_prefix;
  friend bool operator==(const BridgeTopicConfig&, const BridgeTopicConfig&) = default;
};

enum class BridgeStartType : uint8_t { kAutomatic, kLazy, kOnce };

// One `[[bridge]]` table: a connection from this broker to another MQTT broker.
struct BridgeConfig {
  std::string name;                    // required; unique; names the bridge in logs
  std::vector<std::string> addresses;  // "host:port" (port default 1883), tried in turn
  // false (Mosquitto's default): the first address is the main one, tried first again after a
  // connection ends; true: every attempt goes to the next address.
  bool round_robin = false;
  std::vector<BridgeTopicConfig> topics;
  uint8_t protocol_version = 4;  // 4: MQTT 3.1.1, 5: MQTT 5.0 (to the remote broker)
  bool clean_session = false;    // Mosquitto's `cleansession` default
  uint16_t keepalive_s = 60;
  std::string client_id;  // default "<name>.<host name>" (Mosquitto's remote_clientid)
  std::optional<std::string> username;
  std::optional<std::string> password;
  bool try_private = true;
  // TLS to the remote broker, on when cafile is set: the CAs that verify its certificate (and
  // its host name, unless insecure), and optionally a client certificate.
  std::string cafile;
  std::string certfile;
  std::string keyfile;
  bool insecure = false;
  // The bridge's session on this broker (an internal MQTT 5.0 client of it).
  std::string local_client_id;  // default "local.<client_id>"
  std::optional<std::string> local_username;
  std::optional<std::string> local_password;
  uint32_t restart_initial_ms = 5'000;  // reconnect back-off (Mosquitto's restart_timeout)
  uint32_t restart_max_ms = 30'000;
  uint32_t max_inflight = 20;            // QoS 1/2 PUBLISHes unacknowledged by the remote
  uint32_t max_queued_messages = 1000;   // waiting for the remote (beyond: dropped, counted)
  uint64_t max_queued_bytes = 16 << 20;  // their topic + payload bytes
  uint32_t max_packet_size = 0;          // 0: the broker's max_packet_size
  // Mosquitto's notifications (docs/bridges.md): a retained "1" / "0" on notification_topic
  // (empty: $SYS/broker/connection/<client_id>/state) here and, unless local_only, on the
  // remote broker, where a will sets it to "0" when the connection is lost.
  bool notifications = true;
  bool notifications_local_only = false;
  std::string notification_topic;
  // Mosquitto's start_type: automatic (connect at start, reconnect), once (connect at start,
  // never again after it fails or ends), lazy (connect when threshold messages wait for the
  // remote; disconnect after idle_timeout_s without traffic).
  BridgeStartType start_type = BridgeStartType::kAutomatic;
  uint32_t threshold = 10;
  uint32_t idle_timeout_s = 60;
  friend bool operator==(const BridgeConfig&, const BridgeConfig&) = default;
};

struct Config {
  std::string bind = "127.0.0.1";
  uint16_t port = 1883;  // the default plain listener; 0: none (only `listeners`)
  uint32_t threads = 0;  // 0: one shard per online CPU
  CpuAffinity cpu_affinity = CpuAffinity::kOff;
  std::string config_file;
  LogLevel log_level = LogLevel::kInfo;
  RejectPolicy reject_policy = RejectPolicy::kVerbose;
  uint32_t connect_timeout_ms = 10'000;
  uint32_t max_connections = 100'000;
  uint32_t max_client_id_length = 256;
  uint32_t max_packet_size = 1 << 20;  // bytes, fixed header included
  // The first packet (CONNECT) of a connection, bytes, fixed header included: bounds what a
  // connection not yet admitted can make the broker buffer. Capped at max_packet_size.
  uint32_t max_connect_packet_size = 64 << 10;
  uint32_t max_inflight = 512;           // QoS 1/2 messages awaiting acknowledgement, per session
  uint32_t max_queued_messages = 1000;   // waiting to be sent, per session (QoS 1/2 beyond: dropped)
  uint64_t max_queued_bytes = 16 << 20;  // waiting to be sent, per session (beyond: dropped)
  QueueFullPolicy queue_full_policy = QueueFullPolicy::kDrop;
  SharedSubscriptionStrategy shared_subscription_strategy = SharedSubscriptionStrategy::kRoundRobin;
  // Broker-wide memory budget in bytes (0: none): near it the broker sheds load in a fixed
  // order (memory/budget.h, docs/configuration.md).
  uint64_t max_memory = 0;
  // Sessions without a connection. A 3.1 / 3.1.1 persistent (clean session 0) session offline
  // for longer than persistent_session_expiry_s is destroyed (0: never, as Mosquitto's
  // persistent_client_expiration); a 5.0 session after its own Session Expiry Interval. No
  // session, at any level, lives longer offline than max_session_expiry_s (0: no cap): a 5.0
  // request above it is lowered (and CONNACK says so). Beyond max_offline_sessions offline
  // sessions broker-wide, the oldest offline session of the shard where one more goes offline
  // is destroyed.
  uint32_t persistent_session_expiry_s = 0;
  uint32_t max_session_expiry_s = 0;
  uint32_t max_offline_sessions = 1'000'000;
  // MQTT 5.0: a PUBLISH's (or will's) Message Expiry Interval above this is lowered to it
  // (0: no cap); the subscriber gets the lowered time left. Messages without one never expire.
  uint32_t max_message_expiry_s = 0;
  // Persistence (docs/persistence.md; off by default): persistent sessions, their queued and
  // in-flight QoS 1/2 messages, inbound QoS 2 ids and retained messages are logged per shard
  // under data_dir and recovered at start.
  bool persistence = false;
  std::string data_dir = "ringmq-data";
  Durability durability = Durability::kFsync;
  uint32_t sync_interval_ms = 100;  // kInterval: the longest a message waits for fdatasync
  // Bytes of log segments over all shards; beyond it new durable messages are refused as
  // queue_full_policy says (counted in persist_refused_disk_full). 0: no bound.
  uint64_t max_disk_bytes = uint64_t{4} << 30;
  // At start, a corrupt record in the middle of a segment stops the broker with the file and
  // offset; with this set the segment is cut there instead (logged and counted).
  bool persistence_truncate_corrupt = false;
  // bridgeq2 lane: at start, a recovered session last bound by a bridge's local connection
  // whose client id no configured [[bridge]] has (the bridge was removed or renamed) is ended,
  // its queue dropped (logged, counted). false keeps it (until its expiry, if any).
  bool remove_unconfigured_bridge_sessions = true;
  // Distinct filters one session may hold; a new one beyond gets SUBACK 0x80.
  uint32_t max_subscriptions_per_session = 10'000;
  // Inbound QoS 2 packet ids awaiting PUBREL per session; beyond, the connection is closed.
  uint32_t max_inbound_qos2_pending = 65'535;
  // SUBSCRIBE / UNSUBSCRIBE filters one shard works on per loop iteration; more wait for the
  // next iterations, so a big SUBSCRIBE does not stall the shard's other clients.
  uint32_t max_filters_per_iteration = 1'000;
  // Retained messages, broker-wide: beyond either bound a new retained topic is not stored
  // (still delivered live; retained_refused). Bytes are topic + payload per message.
  uint64_t max_retained_messages = 1'000'000;
  uint64_t max_retained_bytes = uint64_t{1} << 30;
  // MQTT 5.0 (docs/mqtt5.md). max_qos and retain_available bind every level: a PUBLISH beyond
  // them closes the connection (5.0: DISCONNECT 0x9B / 0x9A), a 5.0 will beyond them is refused
  // (CONNACK 0x9B / 0x9A), a 3.1.x will is capped.
  uint8_t max_qos = 2;           // Mosquitto's max_qos; announced as Maximum QoS
  bool retain_available = true;  // Mosquitto's retain_available; announced as Retain Available
  // 0: clients choose. Otherwise a 5.0 client asking for 0 or more gets Server Keep Alive
  // max_keepalive, and a 3.1.x one is refused (0x02), as Mosquitto 2.1 does (2.0.x applies
  // max_keepalive to 5.0 clients only and accepts any 3.1.x keepalive).
  uint16_t max_keepalive = 0;
  uint16_t max_topic_alias = 10;     // Topic Alias Maximum granted to 5.0 clients (Mosquitto's)
  // Topic aliases the broker uses for deliveries to each 5.0 connection, capped by the client's
  // Topic Alias Maximum; 0: none (deliveries carry the topic name).
  uint16_t outbound_topic_aliases = 0;
  uint16_t receive_maximum = 1024;   // QoS 2 PUBLISHes a 5.0 client may have awaiting PUBREL
  std::string response_information;  // Response Information prefix; empty: none
  // Empty: every client id is allowed. Otherwise a client id must start with one of these.
  std::vector<std::string> client_id_prefixes;

  // Connection policy per source address (see docs/connect-admission.md). 0: no limit.
  uint32_t max_connections_per_address = 0;   // open TCP connections from one address
  uint32_t max_connect_rate_per_address = 0;  // CONNECTs per second from one address

  // Authentication and authorization (see docs/auth.md).
  bool allow_anonymous = true;  // the default listener is loopback-only
  std::string password_file;    // mosquitto_passwd format; empty: none
  std::string acl_file;         // Mosquitto ACL format; empty: every client may do everything
  // Failed password verifications allowed per second per shard; beyond it, CONNECTs whose
  // credentials are not already known good are refused with 0x03 without hashing.
  uint32_t max_auth_failures_per_second = 100;

  // Prometheus /metrics (see docs/metrics.md). Port 0: no endpoint.
  std::string metrics_bind = "127.0.0.1";
  uint16_t metrics_port = 9883;

  // $SYS/broker/... topics published every sys_interval_s seconds; 0: none.
  uint32_t sys_interval_s = 10;

  // Cross-shard records waiting for room in a full mailbox, per destination shard: the
  // records' own bytes plus the messages and hand-off bytes they hold. A record beyond it is
  // dropped (mailbox_overflow). 0: no overflow queue at all.
  uint64_t max_mailbox_overflow_bytes = 16 << 20;
  // Slots of all cross-shard mailboxes together, in bytes (16 per slot): each ordered pair of
  // shards gets an equal share, a power of two of 64..32768 slots (shard::MailboxCapacity).
  uint64_t mailbox_memory = uint64_t{4} << 20;
  // A shard loop iteration that runs longer than this is counted (loop_stalls) and logged
  // (rate-limited) with what it was doing. 0: not measured.
  uint32_t stall_warning_ms = 100;

  // Listeners beyond the default plain one (bind, port; port 0: no default listener):
  // `[[listener]]` tables, in order, at most 255. A connection's listener index is its position
  // in listener::EffectiveListeners: the default listener first when there is one.
  std::vector<ListenerConfig> listeners;

  // Cluster over NATS (docs/cluster.md; the `[cluster]` table, --cluster-* flags). Clustering
  // is on iff cluster_nats_urls is non-empty: each shard then keeps one NATS connection.
  std::vector<std::string> cluster_nats_urls;  // nats://[user:pass@|token@]host[:port]
  // This node's name in the cluster (a NATS subject token); empty: the host name, its '.'
  // replaced by '_' (ClusterNodeName).
  std::string cluster_node_name;
  std::string cluster_subject_prefix;  // "" or a literal NATS subject (cluster::SubjectMapping)
  // QoS 1/2 at least once across nodes (docs/cluster.md; [cluster] ack_* keys;
  // shard/cluster_acks.h ClusterAckOptions).
  uint32_t cluster_ack_retransmit_ms = 2000;
  uint32_t cluster_ack_link_timeout_ms = 3000;
  uint32_t cluster_ack_pending_max = 16384;         // per shard
  uint64_t cluster_ack_pending_bytes_max = 64 << 20;  // per shard
  // claims lane: client-id claims in batches ([cluster] claim_batch_*; shard/cluster_owner.h
  // ClaimBatchOptions).
  uint32_t cluster_claim_batch_us = 20'000;
  uint32_t cluster_claim_batch_max = 1024;
  uint32_t cluster_claim_batch_bytes = 64 * 1024;
  // QoS 0 batching between nodes (docs/cluster.md "Batching QoS 0"; [cluster] batch,
  // batch_bytes_max): QoS 0 messages are sent to the other nodes' links that announced interest
  // in their subject, several in one NATS message, instead of on their plain subjects (which
  // NATS applications then no longer see).
  bool cluster_batch = false;
  uint32_t cluster_batch_bytes_max = 64 << 10;  // one batch's NATS payload (and max_payload)
  // Session lane: how long a persistent CONNECT whose session the key-value record places on
  // another node waits for that session's state before its CONNACK (docs/cluster.md); 0: never.
  uint32_t cluster_session_wait_ms = 1000;
  // natstls lane: TLS and nkey credentials to the NATS servers (docs/cluster.md, "TLS to
  // NATS"; [cluster] tls* and nkey_seed_file keys; tls/client_context.h). TLS runs on every
  // connection when cluster_tls is true or its URL is tls://, and whenever a server's INFO says
  // tls_required. The CA file verifies the servers' certificates (empty: the system's CAs);
  // cert and key files are a client certificate (mutual TLS, both or neither); the server name
  // is checked against the certificate and sent as SNI (empty: each URL's host).
  bool cluster_tls = false;
  std::string cluster_tls_ca_file;
  std::string cluster_tls_cert_file;
  std::string cluster_tls_key_file;
  std::string cluster_tls_server_name;
  // nats-server 2.10's `tls { handshake_first: true }`: TLS starts as soon as the socket
  // connects, before the server's INFO (which then comes through TLS). Needs TLS configured
  // (cluster_tls or tls:// URLs); a server without that setting waits for CONNECT in clear and
  // the handshake times out, as one with it does for a client without this (docs/cluster.md).
  bool cluster_tls_handshake_first = false;
  // An nkey seed (a file holding "SU..."; docs.nats.io nkeys): CONNECT carries the public key
  // and the ed25519 signature of INFO's nonce. Empty: none.
  std::string cluster_nkey_seed_file;
  // jwt lane: a NATS user credentials file (.creds: the user JWT and its nkey seed, as nsc
  // writes it): CONNECT carries the JWT and the signature of INFO's nonce (NATS decentralized
  // authentication, operator mode). Not with cluster_nkey_seed_file. Empty: none.
  std::string cluster_credentials_file;

  bool clustered() const { return !cluster_nats_urls.empty(); }

  // MQTT bridges: `[[bridge]]` tables, in order; bridge i runs on shard i % threads.
  std::vector<BridgeConfig> bridges;

  friend bool operator==(const Config&, const Config&) = default;
};

}  // namespace ringmq

#endif  // RINGMQ_CONFIG_H_
