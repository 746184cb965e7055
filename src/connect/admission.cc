// CONNECT admission. See admission.h for the order of checks and why it is that order.
#include "connect/admission.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/assert.h"
#include "connect/client_id.h"
#include "mqtt/topic.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

namespace ringmq::connect {
namespace {

constexpr std::array<std::string_view, kReasonCount> kLabels = {
#define RINGMQ_CONNECT_REASON_LABEL(name, label, code) label,
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_LABEL)
#undef RINGMQ_CONNECT_REASON_LABEL
};

// The CONNACK return code each reason calls for; 0xff for kMalformed, which never gets one.
constexpr std::array<uint8_t, kReasonCount> kReasonCodes = {
#define RINGMQ_CONNECT_REASON_CODE(name, label, code) code,
    RINGMQ_CONNECT_REASONS(RINGMQ_CONNECT_REASON_CODE)
#undef RINGMQ_CONNECT_REASON_CODE
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
  // Only reachable with clean session 1 on MQTT 3.1.1: CheckClientId refused the other cases.
  decision.assign_client_id = connect.client_id.empty();
  return decision;
}

// A refusal, before the reject policy is applied.
Decision Refuse(Reason reason) {
  const uint8_t code = kReasonCodes[IndexOf(reason)];
  RINGMQ_ASSERT(code >= 0x01 && code <= kMaxConnackCode);
  Decision decision;
  decision.outcome = Outcome::kRefuse;
  decision.reason = reason;
  decision.return_code = static_cast<mqtt::ConnackCode>(code);
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
  if (client_id.empty()) {
    if (!connect.clean_session) return Reason::kClientIdEmptyPersistent;  // MQTT-3.1.3-8
    if (mqtt31) return Reason::kClientIdEmptyMqtt31;  // MQTT 3.1: 1..23 characters
    // MQTT-3.1.3-6/-7: the server assigns an id. The prefix rule does not apply to an id the
    // server chooses itself (the operator restricts what clients may claim, not what the broker
    // generates), so an empty id is accepted here before the prefix check.
    return Reason::kAccepted;
  }
  // Ids of the assigned form belong to the server: a client claiming one could otherwise meet
  // a connection whose id the server assigned (MQTT-3.1.3-6, MQTT-3.1.4-2).
  if (HasAssignedClientIdPrefix(client_id)) return Reason::kClientIdReserved;
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
Reason CheckWill(const mqtt::Connect& connect) {
  if (connect.will && mqtt::IsSysTopic(connect.will->topic)) return Reason::kWillTopicSys;
  return Reason::kAccepted;
}

// Step 4. Shutting down is reported first: it is the condition the client should not retry.
Reason CheckCapacity(const BrokerState& state, const Policy& policy) {
  if (state.shutting_down) return Reason::kShuttingDown;
  if (state.connected_clients >= policy.max_connections) return Reason::kConnectionLimit;
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
Reason CheckAuthenticator(const mqtt::Connect& connect, const Policy& policy) {
  if (policy.authenticator == nullptr) return Reason::kAccepted;
  switch (policy.authenticator->Check(connect)) {
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
                connect.protocol_level == static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311));
  if (const Reason reason = CheckClientId(connect, policy); reason != Reason::kAccepted) {
    return reason;
  }
  if (const Reason reason = CheckWill(connect); reason != Reason::kAccepted) return reason;
  if (const Reason reason = CheckCapacity(state, policy); reason != Reason::kAccepted) {
    return reason;
  }
  return CheckAuthenticator(connect, policy);
}

}  // namespace

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
  const Decision decision = ApplyRejectPolicy(Refuse(reason), policy.reject_policy);
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

}  // namespace ringmq::connect
