// CONNECT admission: the pure decision of what to do with the first packet of a connection.
//
// Follows OASIS MQTT-8 (shared/seed/MQTT-8.txt), now MQTT 3.1.1 §3.2.2.3 and MQTT 5.0 §3.2.2.2:
// a well-formed CONNECT the server will not serve gets a CONNACK with a return code (3.1 /
// 3.1.1: 0x01..0x05) or reason code (5.0: 0x80 and above, 5.0:MQTT-3.2.2-7) and then the
// connection is closed; a malformed CONNECT is closed with no CONNACK at all. Under
// RejectPolicy::kSilent every refusal becomes a close without CONNACK (the reason is still
// counted). A CONNECT of a level the broker does not speak gets the 3.1.1-format CONNACK 0x01.
//
// Admit() is a pure function: no allocation, no syscall, no shared state, so it runs inline on
// the shard that read the CONNECT. Checks run cheapest first and authentication last
// (3.1.1 code / 5.0 code):
//   1. malformed (decode violation)                     -> Close
//   2. protocol name/level not supported                -> Refuse 0x01 (MQTT-3.1.2-2)
//   3. client id not allowed                            -> Refuse 0x02 / 0x85 (MQTT-3.1.3-8,
//      -9); a client id of the server-assigned form at 3.1.x (connect/client_id.h);
//      3.1.x: keepalive 0 or above max_keepalive        -> Refuse 0x02 (as Mosquitto 2.1;
//      3.1.x has no Server Keep Alive to tell the client)
//   3b. will topic in $SYS (the broker's own topics)    -> Refuse 0x05 / 0x87
//       5.0: will QoS above max_qos                     -> Refuse 0x9B (5.0:MQTT-3.2.2-12)
//       5.0: will retain, retain not available          -> Refuse 0x9A (5.0:MQTT-3.2.2-13)
//   4. shutting down, connection limit reached (broker-wide,
//      then the listener's max_connections), memory
//      budget nearly spent, too many connections from or
//      CONNECTs per second from the client's source
//      address                                          -> Refuse 0x03 / see the table
//   4b. 5.0: Authentication Method not supported        -> Refuse 0x8C (5.0:3.1.2.11.9)
//   4c. use_identity_as_username and no verified client
//       certificate identity (TLS listener)             -> Refuse 0x05 / 0x87
//   5. authenticator: bad credentials / not authorized  -> Refuse 0x04 / 0x05 (0x86 / 0x87);
//      with a certificate identity as User Name only the will's ACL is checked
//   6. otherwise                                        -> Accept
// At 3.1.x a will QoS above max_qos or a retained will without retain support is not refused:
// the connection caps it (net/connection.h), since 3.1.x has no code that says so.
//
// Thread safety: Admit is reentrant. An Authenticator must be safe to call from every shard.
#ifndef RINGMQ_CONNECT_ADMISSION_H_
#define RINGMQ_CONNECT_ADMISSION_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

namespace ringmq::connect {

enum class Outcome : uint8_t { kAccept, kRefuse, kClose };

// X(name, metric label, 3.1 / 3.1.1 CONNACK return code (0xff: never a CONNACK),
//   5.0 CONNACK reason code (0xff: never a CONNACK))
// At 5.0 the choice between codes that could both apply:
//   - connection_limit, listener_connection_limit and address_connection_limit: 0x97 Quota
//     exceeded, a limit the operator set that holds until clients leave (5.0:3.2.2.2: "an
//     implementation or administrative imposed limit has been exceeded"); memory_budget and
//     auth_rate_limit: 0x89 Server busy, a transient state the client may retry soon;
//     shutting_down: 0x88 Server unavailable (0x8B Server shutting down is a DISCONNECT-only
//     code).
//   - will_sys_topic: 0x87 Not authorized, as the 3.1.1 0x05.
//   - unsupported_protocol keeps the 3.1.1-format 0x01 at every level (a level the broker does
//     not speak cannot be answered in its format); 0x84 is the row's 5.0 name only.
#define RINGMQ_CONNECT_REASONS(X)                                       \
  X(kAccepted, "accepted", 0x00, 0x00)                                  \
  X(kMalformed, "malformed", 0xff, 0xff)                                \
  X(kUnsupportedProtocol, "unsupported_protocol", 0x01, 0x84)           \
  X(kClientIdEmptyPersistent, "client_id_empty_persistent", 0x02, 0x85) \
  X(kClientIdEmptyMqtt31, "client_id_empty_mqtt31", 0x02, 0x85)         \
  X(kClientIdTooLong, "client_id_too_long", 0x02, 0x85)                 \
  X(kClientIdNotAllowed, "client_id_not_allowed", 0x02, 0x85)           \
  X(kClientIdReserved, "client_id_reserved", 0x02, 0x85)                \
  X(kKeepaliveTooLong, "keepalive_too_long", 0x02, 0x85)                \
  X(kConnectionLimit, "connection_limit", 0x03, 0x97)                   \
  X(kListenerConnectionLimit, "listener_connection_limit", 0x03, 0x97)  \
  X(kShuttingDown, "shutting_down", 0x03, 0x88)                         \
  X(kMemoryBudget, "memory_budget", 0x03, 0x89)                         \
  X(kAddressConnectionLimit, "address_connection_limit", 0x03, 0x97)    \
  X(kAddressRateLimit, "address_rate_limit", 0x03, 0x9F)                \
  X(kAuthRateLimit, "auth_rate_limit", 0x03, 0x89)                      \
  X(kBadCredentials, "bad_credentials", 0x04, 0x86)                     \
  X(kNotAuthorized, "not_authorized", 0x05, 0x87)                       \
  X(kNoCertificateIdentity, "no_certificate_identity", 0x05, 0x87)     \
  X(kWillTopicSys, "will_sys_topic", 0x05, 0x87)                        \
  X(kWillQosNotSupported, "will_qos_not_supported", 0xff, 0x9B)         \
  X(kWillRetainNotSupported, "will_retain_not_supported", 0xff, 0x9A)   \
  X(kBadAuthenticationMethod, "bad_authentication_method", 0xff, 0x8C)

enum class Reason : uint8_t {
#define RINGMQ_CONNECT_REASON_ENUM(name, label, code, code5) name,
  RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_ENUM)
#undef RINGMQ_CONNECT_REASON_ENUM
};
inline constexpr size_t kReasonCount = 0
#define RINGMQ_CONNECT_REASON_COUNT(name, label, code, code5) +1
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_COUNT)
#undef RINGMQ_CONNECT_REASON_COUNT
    ;

std::string_view LabelOf(Reason reason);

// MQTT 3.1 limits client ids to 1..23 characters (MQTT 3.1 §3.1, "Client Identifier").
inline constexpr size_t kMqtt31MaxClientIdLength = 23;

// kRateLimited: the credentials would need verifying but the shard's budget of failed
// verifications is spent (Refuse 0x03, reason kAuthRateLimit).
enum class AuthResult : uint8_t { kAllow, kBadCredentials, kNotAuthorized, kRateLimited };

// The authentication/authorization hook: auth::ShardAuthenticator (auth/authenticator.h:
// password file, allow_anonymous, the ACL of a will topic) when auth is configured; with none
// (Policy::authenticator null) every client is allowed.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // `connect` is fully decoded and valid. `allow_anonymous` is the listener's own setting
  // (ListenerPolicy), unset for the broker-wide one. Must not block; should not allocate. A
  // per-shard implementation may keep a cache and a failure budget in mutable members (one
  // thread).
  virtual AuthResult Check(const mqtt::Connect& connect,
                           std::optional<bool> allow_anonymous) const = 0;
  // The User Name is a verified TLS client certificate's identity (use_identity_as_username):
  // the certificate authenticated the client, so no password is checked; what else the
  // implementation checks (the will's ACL) still applies. The default allows.
  virtual AuthResult CheckCertificateUser(const mqtt::Connect& connect) const {
    (void)connect;
    return AuthResult::kAllow;
  }
};

// The names of the enhanced authentication methods (5.0:4.12) a shard offers. Implemented by
// auth::AuthMethodRegistry; safe to call from the shard that owns it.
class AuthMethodSet {
 public:
  virtual ~AuthMethodSet() = default;
  virtual bool Supports(std::string_view method) const = 0;
};

// The settings of one listener that admission applies (ListenerConfig's max_connections and
// allow_anonymous).
struct ListenerPolicy {
  uint32_t max_connections = 0;         // connected clients on the listener; 0: no own bound
  std::optional<bool> allow_anonymous;  // unset: the broker-wide allow_anonymous
};

// Connected clients of one listener over all shards (BrokerState::listener_connected_clients
// is read from it with the same fetch_add that reserves the slot), on a cache line of its own:
// every shard writes it.
struct alignas(64) ListenerClients {
  std::atomic<uint32_t> connected{0};
};

// The listener's use_identity_as_username, as it applies to one CONNECT.
enum class CertificateUser : uint8_t {
  kNotUsed,  // not configured: the CONNECT's User Name and Password as sent
  kMissing,  // configured, but the client presented no verified certificate with an identity
  kProven,   // the User Name was replaced by the certificate's identity
};

struct BrokerState {
  // Connected clients not counting this one. Callers that need the limit to be exact across
  // shards reserve a slot first (an atomic fetch_add whose previous value goes here) and give it
  // back if the outcome is not kAccept.
  uint32_t connected_clients = 0;
  bool shutting_down = false;
  // The broker's accounted memory is near max_memory (memory/budget.h): no new clients.
  bool memory_full = false;
  // Open TCP connections from the client's source address, this one included, and CONNECTs
  // from that address in the current one-second window, this one included (0 when the policy
  // has no per-address limit; see connect/address_table.h).
  uint32_t address_connections = 0;
  uint32_t address_connects_this_second = 0;
  // The listener that accepted the connection (index into Policy::listeners) and its connected
  // clients not counting this one, reserved like connected_clients.
  uint32_t listener = 0;
  uint32_t listener_connected_clients = 0;
  CertificateUser certificate_user = CertificateUser::kNotUsed;
};

struct Policy {
  RejectPolicy reject_policy = RejectPolicy::kVerbose;
  uint32_t max_connections = 100'000;
  uint32_t max_client_id_length = 256;
  uint32_t max_connections_per_address = 0;   // 0: no limit
  uint32_t max_connect_rate_per_address = 0;  // per second; 0: no limit
  std::span<const std::string> client_id_prefixes = {};  // empty: all allowed
  // By listener index (net::Connection::listener()); a listener beyond it has no settings of
  // its own.
  std::span<const ListenerPolicy> listeners = {};
  const Authenticator* authenticator = nullptr;          // null: allow all
  // The enhanced authentication methods offered (auth::AuthMethodRegistry); null: none.
  const AuthMethodSet* auth_methods = nullptr;
  // 5.0 limits the CONNACK announces (5.0:3.2.2.3.4, 3.2.2.3.5); a 5.0 will beyond them is
  // refused. 3.1.x wills are capped by the connection instead.
  uint8_t max_qos = 2;
  bool retain_available = true;
  // 0: clients choose their keepalive. Otherwise a 3.1.x client asking for 0 or more is
  // refused (5.0 clients get a Server Keep Alive instead).
  uint16_t max_keepalive_s = 0;
};

// Whether `policy` offers the enhanced authentication method `method` (5.0:4.12); a CONNECT
// naming another one is refused with 0x8C (5.0:MQTT-4.12.0-1).
bool IsAuthenticationMethodSupported(std::string_view method, const Policy& policy);

struct Decision {
  Outcome outcome = Outcome::kClose;
  Reason reason = Reason::kMalformed;
  // The return code to send when outcome is kAccept (0x00) or kRefuse (0x01..0x05). When the
  // silent policy turned a refusal into kClose, the code that would have been sent.
  // Meaningful when !mqtt5.
  mqtt::ConnackCode return_code = mqtt::ConnackCode::kAccepted;
  // The CONNECT is a 5.0 one (level 5, understood): the CONNACK is a 5.0 CONNACK with
  // reason_code (0x00 or 0x80 and above).
  bool mqtt5 = false;
  mqtt::ReasonCode reason_code = mqtt::ReasonCode::kSuccess;
  // True when outcome is kClose only because of RejectPolicy::kSilent.
  bool silenced = false;
  // Accepted with an empty client id and clean session 1: the server assigns a unique id
  // (MQTT-3.1.3-6).
  bool assign_client_id = false;
  // The decode violation when reason is kMalformed.
  mqtt::Violation violation = mqtt::Violation::kNone;
};

Decision Admit(const mqtt::Result<mqtt::Connect>& connect, const BrokerState& state,
               const Policy& policy);

// The 4 bytes of a CONNACK, pre-encoded so the refusal path neither encodes nor allocates.
std::span<const uint8_t> ConnackBytes(mqtt::ConnackCode code, bool session_present = false);

// The refusing 5.0 CONNACK of `reason` (not kAccepted or kMalformed), pre-encoded: the reason's
// 5.0 code and, as its Reason String (5.0:3.2.2.3.9), the reason's metric label. A client's
// Maximum Packet Size (0: none) is respected (5.0:MQTT-3.1.2-24): when the whole frame is
// larger, the bare 5-byte CONNACK without the Reason String (5.0:MQTT-3.2.2-19); when even that
// is larger, empty: the connection closes without a CONNACK.
std::span<const uint8_t> ConnackBytes5(Reason reason, uint32_t client_maximum_packet_size = 0);

}  // namespace ringmq::connect

#endif  // RINGMQ_CONNECT_ADMISSION_H_
