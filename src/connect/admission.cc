// CONNECT admission. See admission.h for the order of checks and why it is that order.
#include "connect/admission.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/assert.h"
#include "connect/client_id.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

namespace ringmq::connect {
namespace {

constexpr std::array<std::string_view, kReasonCount> kLabels = {
#define RINGMQ_CONNECT_REASON_LABEL(name, label, code, code5) label,
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_LABEL)
#undef RINGMQ_CONNECT_REASON_LABEL
};

// The CONNACK return code each reason calls for; 0xff for kMalformed, which never gets one.
constexpr std::array<uint8_t, kReasonCount> kReasonCodes = {
#define RINGMQ_CONNECT_REASON_CODE(name, label, code, code5) code,
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_CODE)
#undef RINGMQ_CONNECT_REASON_CODE
};
// The same at 5.0.
constexpr std::array<uint8_t, kReasonCount> kReasonCodes5 = {
#define RINGMQ_CONNECT_REASON_CODE5(name, label, code, code5) code5,
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_CODE5)
#undef RINGMQ_CONNECT_REASON_CODE5
};

constexpr uint8_t kNoConnack = 0xff;
constexpr uint8_t kMaxConnackCode = 0x05;

// A CONNACK is always 4 bytes (§3.2): type 2 with flags 0 (0x20), remaining length 2, the
// acknowledge flags (bit 0: session present) and the return code.
using ConnackFrame = std::array<uint8_t, 4>;
constexpr uint8_t kConnackTypeByte = 0x20;
constexpr uint8_t kConnackRemainingLength = 0x02;

constexpr ConnackFrame MakeConnack(uint8_t flags, uint8_t code) {
  return {kConnackTypeByte, kConnackRemainingLength, flags, code};
}

constexpr std::array<ConnackFrame, kMaxConnackCode + 1> kConnacks = {
    MakeConnack(0x00, 0x00), MakeConnack(0x00, 0x01), MakeConnack(0x00, 0x02),
    MakeConnack(0x00, 0x03), MakeConnack(0x00, 0x04), MakeConnack(0x00, 0x05),
};
// Only an accepted CONNACK may say "session present" (MQTT-3.2.2-4).
constexpr ConnackFrame kConnackAcceptedSessionPresent = MakeConnack(0x01, 0x00);

static_assert(kConnacks[3][3] == 0x03 && kConnackAcceptedSessionPresent[2] == 0x01);
static_assert(kReasonCodes[static_cast<size_t>(Reason::kAccepted)] == 0x00);
static_assert(kReasonCodes[static_cast<size_t>(Reason::kMalformed)] == kNoConnack);

constexpr size_t IndexOf(Reason reason) { return static_cast<size_t>(reason); }

// A refusing 5.0 CONNACK (5.0:3.2): type byte, remaining length (one byte: below 128), the
// acknowledge flags (0: no session on a refusal, 5.0:MQTT-3.2.2-6), the reason code, the
// Property Length and one property, the Reason String (0x1F, two-byte length, the label).
struct Connack5Frame {
  static constexpr size_t kMaxBytes = 64;
  std::array<uint8_t, kMaxBytes> bytes{};
  uint8_t size = 0;
};
constexpr uint8_t kReasonStringId = 0x1F;

constexpr Connack5Frame MakeConnack5(uint8_t code, std::string_view reason_string) {
  Connack5Frame frame;
  const size_t property_length = 3 + reason_string.size();
  const size_t remaining_length = 2 + 1 + property_length;
  // One-byte Variable Byte Integers for both lengths; the labels are short.
  if (remaining_length > 127 || 2 + remaining_length > Connack5Frame::kMaxBytes) return frame;
  size_t i = 0;
  frame.bytes[i++] = kConnackTypeByte;
  frame.bytes[i++] = static_cast<uint8_t>(remaining_length);
  frame.bytes[i++] = 0x00;
  frame.bytes[i++] = code;
  frame.bytes[i++] = static_cast<uint8_t>(property_length);
  frame.bytes[i++] = kReasonStringId;
  frame.bytes[i++] = 0x00;
  frame.bytes[i++] = static_cast<uint8_t>(reason_string.size());
  for (const char c : reason_string) frame.bytes[i++] = static_cast<uint8_t>(c);
  frame.size = static_cast<uint8_t>(i);
  return frame;
}

constexpr std::array<Connack5Frame, kReasonCount> MakeConnack5Frames() {
  std::array<Connack5Frame, kReasonCount> frames{};
  for (size_t i = 0; i < kReasonCount; ++i) {
    if (kReasonCodes5[i] >= 0x80 && kReasonCodes5[i] != kNoConnack) {
      frames[i] = MakeConnack5(kReasonCodes5[i], kLabels[i]);
    }
  }
  return frames;
}
constexpr std::array<Connack5Frame, kReasonCount> kConnack5Frames = MakeConnack5Frames();

// The same refusals without a property: for a client whose Maximum Packet Size is smaller than
// the frame with its Reason String (5.0:MQTT-3.2.2-19).
constexpr size_t kBareConnack5Bytes = 5;
constexpr std::array<std::array<uint8_t, kBareConnack5Bytes>, kReasonCount> MakeBareConnack5s() {
  std::array<std::array<uint8_t, kBareConnack5Bytes>, kReasonCount> frames{};
  for (size_t i = 0; i < kReasonCount; ++i) {
    frames[i] = {kConnackTypeByte, 0x03, 0x00, kReasonCodes5[i], 0x00};
  }
  return frames;
}
constexpr std::array<std::array<uint8_t, kBareConnack5Bytes>, kReasonCount> kBareConnack5s =
    MakeBareConnack5s();

// Every refusal reason has its frame: a label too long for it fails the build here.
constexpr bool EveryRefusalHasConnack5() {
  for (size_t i = 0; i < kReasonCount; ++i) {
    const bool refusal = kReasonCodes5[i] >= 0x80 && kReasonCodes5[i] != kNoConnack;
    if (refusal && kConnack5Frames[i].size == 0) return false;
  }
  return true;
}
static_assert(EveryRefusalHasConnack5());
static_assert(kReasonCodes5[static_cast<size_t>(Reason::kAccepted)] == 0x00);
static_assert(kReasonCodes5[static_cast<size_t>(Reason::kMalformed)] == kNoConnack);

bool IsMqtt5(const mqtt::Connect& connect) {
  return connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
}

Decision Malformed(mqtt::Violation violation) {
  RINGMQ_ASSERT(violation != mqtt::Violation::kNone);
  Decision decision;
  decision.outcome = Outcome::kClose;
  decision.reason = Reason::kMalformed;
  decision.violation = violation;
  return decision;
}

Decision Accept(const mqtt::Connect& connect) {
  Decision decision;
  decision.outcome = Outcome::kAccept;
  decision.reason = Reason::kAccepted;
  decision.return_code = mqtt::ConnackCode::kAccepted;
  decision.mqtt5 = IsMqtt5(connect);
  decision.reason_code = mqtt::ReasonCode::kSuccess;
  // Only reachable with clean session 1 on MQTT 3.1.1, or at 5.0: CheckClientId refused the
  // other cases.
  decision.assign_client_id = connect.client_id.empty();
  return decision;
}

// A refusal, before the reject policy is applied. An unsupported level is answered in the
// 3.1.1 format whatever the level (MQTT-3.1.2-2).
Decision Refuse(Reason reason, bool mqtt5) {
  Decision decision;
  decision.outcome = Outcome::kRefuse;
  decision.reason = reason;
  decision.mqtt5 = mqtt5 && reason != Reason::kUnsupportedProtocol;
  if (decision.mqtt5) {
    const uint8_t code5 = kReasonCodes5[IndexOf(reason)];
    RINGMQ_ASSERT(code5 >= 0x80 && code5 != kNoConnack);
    decision.reason_code = static_cast<mqtt::ReasonCode>(code5);
    decision.return_code = mqtt::ConnackCode::kServerUnavailable;  // unused at 5.0
  } else {
    const uint8_t code = kReasonCodes[IndexOf(reason)];
    RINGMQ_ASSERT(code >= 0x01 && code <= kMaxConnackCode);
    decision.return_code = static_cast<mqtt::ConnackCode>(code);
  }
  return decision;
}

// The silent policy drops the CONNACK but keeps the reason and code, so metrics and logs still
// say why the connection was closed.
Decision ApplyRejectPolicy(Decision decision, RejectPolicy policy) {
  RINGMQ_ASSERT(decision.outcome == Outcome::kRefuse);
  if (policy == RejectPolicy::kSilent) {
    decision.outcome = Outcome::kClose;
    decision.silenced = true;
  }
  return decision;
}

// MQTT 3.1 counts the client id limit in characters, not bytes. The codec has already checked
// that the id is well-formed UTF-8, so characters are the bytes that are not continuation bytes
// (10xxxxxx). Bounded by the id's length, at most 65,535 bytes.
size_t CountCharacters(std::string_view text) {
  size_t characters = 0;
  for (const char c : text) {
    characters += (static_cast<uint8_t>(c) & 0xC0) != 0x80 ? 1 : 0;
  }
  return characters;
}

bool TooLongForMqtt31(std::string_view client_id) {
  // A character is at least one byte, so short ids skip the count.
  return client_id.size() > kMqtt31MaxClientIdLength &&
         CountCharacters(client_id) > kMqtt31MaxClientIdLength;
}

bool HasAllowedPrefix(std::string_view client_id, std::span<const std::string> prefixes) {
  for (const std::string& prefix : prefixes) {
    if (client_id.starts_with(prefix)) return true;
  }
  return false;
}

// The client id rules (step 3), or kAccepted when the id is acceptable.
Reason CheckClientId(const mqtt::Connect& connect, const Policy& policy) {
  const std::string_view client_id = connect.client_id;
  const bool mqtt31 = connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt31);
  // 5.0:MQTT-3.1.3-6/-7: an empty id gets an assigned one whatever Clean Start says (5.0 drops
  // 3.1.1's clean-session condition), and a client may come back with the id it was assigned
  // (it learned it from the CONNACK's Assigned Client Identifier; ids are unpredictable, so no
  // other client can claim it).
  const bool mqtt5 = IsMqtt5(connect);
  if (client_id.empty()) {
    if (mqtt5) return Reason::kAccepted;
    if (!connect.clean_session) return Reason::kClientIdEmptyPersistent;  // MQTT-3.1.3-8
    if (mqtt31) return Reason::kClientIdEmptyMqtt31;  // MQTT 3.1: 1..23 characters
    // MQTT-3.1.3-6/-7: the server assigns an id. The prefix rule does not apply to an id the
    // server chooses itself (the operator restricts what clients may claim, not what the broker
    // generates), so an empty id is accepted here before the prefix check.
    return Reason::kAccepted;
  }
  // Ids of the assigned form belong to the server: a client claiming one could otherwise meet
  // a connection whose id the server assigned (MQTT-3.1.3-6, MQTT-3.1.4-2).
  if (!mqtt5 && HasAssignedClientIdPrefix(client_id)) return Reason::kClientIdReserved;
  if (mqtt31 && TooLongForMqtt31(client_id)) return Reason::kClientIdTooLong;
  if (client_id.size() > policy.max_client_id_length) return Reason::kClientIdTooLong;
  if (!policy.client_id_prefixes.empty() &&
      !HasAllowedPrefix(client_id, policy.client_id_prefixes)) {
    return Reason::kClientIdNotAllowed;
  }
  return Reason::kAccepted;
}

// Step 3b. $SYS/ belongs to the broker: a client's PUBLISH there is dropped (Router), and a will
// there would be published, and retained, in the broker's name. Refused as "not authorized", as
// Mosquitto refuses a will its ACL check denies (and it denies every client write to $SYS).
// At 5.0 a will the broker cannot honour is refused with the code that says why
// (5.0:MQTT-3.2.2-12, -13); 3.1.x has no such code, so the connection caps those wills.
Reason CheckWill(const mqtt::Connect& connect, const Policy& policy) {
  if (!connect.will) return Reason::kAccepted;
  if (mqtt::IsSysTopic(connect.will->topic)) return Reason::kWillTopicSys;
  if (IsMqtt5(connect)) {
    if (static_cast<uint8_t>(connect.will->qos) > policy.max_qos) {
      return Reason::kWillQosNotSupported;
    }
    if (connect.will->retain && !policy.retain_available) return Reason::kWillRetainNotSupported;
  }
  return Reason::kAccepted;
}

// Mosquitto 2.1's max_keepalive rule for 3.1.x: a keepalive of 0 (never checked) or above the
// maximum cannot be overridden there, so the CONNECT is refused as "identifier rejected".
// (Mosquitto 2.0.x, e.g. 2.0.11, checks 5.0 clients only and lets such 3.1.x clients in.)
Reason CheckKeepalive(const mqtt::Connect& connect, const Policy& policy) {
  if (policy.max_keepalive_s == 0 || IsMqtt5(connect)) return Reason::kAccepted;
  if (connect.keepalive_s == 0 || connect.keepalive_s > policy.max_keepalive_s) {
    return Reason::kKeepaliveTooLong;
  }
  return Reason::kAccepted;
}

// Step 4b: 5.0 enhanced authentication (5.0:4.12) with a method the broker does not implement.
Reason CheckAuthenticationMethod(const mqtt::Connect& connect, const Policy& policy) {
  if (!IsMqtt5(connect)) return Reason::kAccepted;
  const std::optional<mqtt::Property> method =
      connect.properties.Find(mqtt::PropertyId::kAuthenticationMethod);
  if (method && !IsAuthenticationMethodSupported(method->text, policy)) {
    return Reason::kBadAuthenticationMethod;
  }
  return Reason::kAccepted;
}

// The settings of the connection's listener; a listener without an entry has none of its own.
const ListenerPolicy& ListenerOf(const BrokerState& state, const Policy& policy) {
  static constexpr ListenerPolicy kNone{};
  return state.listener < policy.listeners.size() ? policy.listeners[state.listener] : kNone;
}

// Step 4. Shutting down is reported first: it is the condition the client should not retry.
Reason CheckCapacity(const BrokerState& state, const Policy& policy) {
  if (state.shutting_down) return Reason::kShuttingDown;
  if (state.connected_clients >= policy.max_connections) return Reason::kConnectionLimit;
  const uint32_t listener_max = ListenerOf(state, policy).max_connections;
  if (listener_max != 0 && state.listener_connected_clients >= listener_max) {
    return Reason::kListenerConnectionLimit;
  }
  if (state.memory_full) return Reason::kMemoryBudget;
  if (policy.max_connections_per_address != 0 &&
      state.address_connections > policy.max_connections_per_address) {
    return Reason::kAddressConnectionLimit;
  }
  if (policy.max_connect_rate_per_address != 0 &&
      state.address_connects_this_second > policy.max_connect_rate_per_address) {
    return Reason::kAddressRateLimit;
  }
  return Reason::kAccepted;
}

// Step 5, the expensive one, so it runs last.
Reason CheckAuthenticator(const mqtt::Connect& connect, const BrokerState& state,
                          const Policy& policy) {
  if (state.certificate_user == CertificateUser::kMissing) return Reason::kNoCertificateIdentity;
  if (policy.authenticator == nullptr) return Reason::kAccepted;
  const AuthResult result = state.certificate_user == CertificateUser::kProven
                                ? policy.authenticator->CheckCertificateUser(connect)
                                : policy.authenticator->Check(connect, ListenerOf(state, policy).allow_anonymous);
  switch (result) {
    case AuthResult::kAllow:
      return Reason::kAccepted;
    case AuthResult::kBadCredentials:
      return Reason::kBadCredentials;
    case AuthResult::kNotAuthorized:
      return Reason::kNotAuthorized;
    case AuthResult::kRateLimited:
      return Reason::kAuthRateLimit;
  }
  RINGMQ_ASSERT(false && "Authenticator returned an AuthResult out of range");
  return Reason::kNotAuthorized;
}

// Steps 2..5 on a well-formed CONNECT: the first reason to refuse, or kAccepted.
Reason Evaluate(const mqtt::Connect& connect, const BrokerState& state, const Policy& policy) {
  if (!connect.level_supported) return Reason::kUnsupportedProtocol;  // MQTT-3.1.2-2
  RINGMQ_ASSERT(connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt31) ||
                connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311) ||
                connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5));
  if (const Reason reason = CheckClientId(connect, policy); reason != Reason::kAccepted) {
    return reason;
  }
  if (const Reason reason = CheckKeepalive(connect, policy); reason != Reason::kAccepted) {
    return reason;
  }
  if (const Reason reason = CheckWill(connect, policy); reason != Reason::kAccepted) {
    return reason;
  }
  if (const Reason reason = CheckCapacity(state, policy); reason != Reason::kAccepted) {
    return reason;
  }
  if (const Reason reason = CheckAuthenticationMethod(connect, policy); reason != Reason::kAccepted) {
    return reason;
  }
  return CheckAuthenticator(connect, state, policy);
}

}  // namespace

bool IsAuthenticationMethodSupported(std::string_view method, const Policy& policy) {
  return policy.auth_methods != nullptr && policy.auth_methods->Supports(method);
}

std::string_view LabelOf(Reason reason) {
  RINGMQ_ASSERT(IndexOf(reason) < kReasonCount);
  return kLabels[IndexOf(reason)];
}

Decision Admit(const mqtt::Result<mqtt::Connect>& connect, const BrokerState& state,
               const Policy& policy) {
  // MQTT-8 (MQTT-3.1.4-1, MQTT-3.2.2-6): a malformed CONNECT is closed without a CONNACK under
  // every policy.
  if (!connect.ok()) return Malformed(connect.violation());
  const Reason reason = Evaluate(connect.value(), state, policy);
  if (reason == Reason::kAccepted) return Accept(connect.value());
  const Decision decision =
      ApplyRejectPolicy(Refuse(reason, IsMqtt5(connect.value())), policy.reject_policy);
  RINGMQ_ASSERT(decision.silenced == (policy.reject_policy == RejectPolicy::kSilent));
  return decision;
}

std::span<const uint8_t> ConnackBytes(mqtt::ConnackCode code, bool session_present) {
  const auto index = static_cast<size_t>(code);
  RINGMQ_ASSERT(index <= kMaxConnackCode);
  if (session_present) {
    RINGMQ_ASSERT(code == mqtt::ConnackCode::kAccepted);  // MQTT-3.2.2-4
    return kConnackAcceptedSessionPresent;
  }
  return kConnacks[index];
}

std::span<const uint8_t> ConnackBytes5(Reason reason, uint32_t client_maximum_packet_size) {
  RINGMQ_ASSERT(IndexOf(reason) < kReasonCount);
  const Connack5Frame& frame = kConnack5Frames[IndexOf(reason)];
  RINGMQ_ASSERT(frame.size != 0);  // a refusal reason
  if (client_maximum_packet_size == 0 || frame.size <= client_maximum_packet_size) {
    return std::span<const uint8_t>(frame.bytes.data(), frame.size);
  }
  if (kBareConnack5Bytes > client_maximum_packet_size) return {};
  return kBareConnack5s[IndexOf(reason)];
}

}  // namespace ringmq::connect
