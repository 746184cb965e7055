// libFuzzer target for CONNECT admission (src/connect/admission.h).
//
// Builds a decode result (a violation, or a Connect the codec could have produced), a broker
// state and a policy from the fuzz bytes, calls Admit and checks the properties that must hold
// for every input: MQTT-8 (a malformed CONNECT never gets a CONNACK), the silent policy never
// lets a CONNACK out, acceptance respects capacity, the return code is the one the reason table
// gives, the documented order of checks, and authentication only after every cheaper check.
#include "connect/admission.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "connect/client_id.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

namespace ringmq::connect {
namespace {

#define FUZZ_CHECK(condition)                                                                   \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "admission invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

constexpr std::array<uint8_t, kReasonCount> kReasonCodes = {
#define FUZZ_REASON_CODE(name, label, code, code5) code,
    RINGMQ_CONNECT_REASONS(FUZZ_REASON_CODE)
#undef FUZZ_REASON_CODE
};

constexpr size_t kViolationCount = 0
#define FUZZ_VIOLATION_COUNT(name, rule, description) +1
    RINGMQ_MQTT_VIOLATIONS(FUZZ_VIOLATION_COUNT)
#undef FUZZ_VIOLATION_COUNT
    ;

// Answers what the fuzz input chose and counts how often it was asked.
class FuzzAuthenticator : public Authenticator {
 public:
  explicit FuzzAuthenticator(AuthResult result) : result_(result) {}
  AuthResult Check(const mqtt::Connect&, std::optional<bool>) const override {
    ++calls_;
    return result_;
  }
  AuthResult result() const { return result_; }
  int calls() const { return calls_; }
  void ResetCalls() { calls_ = 0; }

 private:
  AuthResult result_;
  mutable int calls_ = 0;
};

// Owns every byte the Connect and Policy view.
struct Input {
  std::string protocol_name;
  std::string client_id;
  std::string user_name;
  std::string password;
  std::string will_topic;
  std::vector<std::string> prefixes;
  std::optional<FuzzAuthenticator> authenticator;
  mqtt::Violation violation = mqtt::Violation::kNone;
  mqtt::Connect connect;
  BrokerState state;
  Policy policy;
};

// Small values hit the boundaries; full-range values hit everything else.
uint32_t ConsumeLimit(FuzzedDataProvider& provider, uint32_t small_max) {
  return provider.ConsumeBool() ? provider.ConsumeIntegralInRange<uint32_t>(0, small_max)
                                : provider.ConsumeIntegral<uint32_t>();
}

void ConsumePolicy(FuzzedDataProvider& provider, Input& input) {
  input.policy.reject_policy =
      provider.ConsumeBool() ? RejectPolicy::kSilent : RejectPolicy::kVerbose;
  input.policy.max_connections = ConsumeLimit(provider, 8);
  input.policy.max_client_id_length = ConsumeLimit(provider, 40);
  const size_t prefix_count = provider.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t i = 0; i < prefix_count; ++i) {
    input.prefixes.push_back(provider.ConsumeRandomLengthString(8));
  }
  if (provider.ConsumeBool()) {
    input.authenticator.emplace(static_cast<AuthResult>(provider.ConsumeIntegralInRange(0, 3)));
  }
}

// A Connect the codec could return: a supported level is 3 or 4; an unsupported one has
// nothing parsed after the level byte.
void ConsumeConnect(FuzzedDataProvider& provider, Input& input) {
  mqtt::Connect& connect = input.connect;
  connect.level_supported = provider.ConsumeIntegralInRange(0, 7) != 0;
  if (!connect.level_supported) {
    input.protocol_name = provider.ConsumeRandomLengthString(8);
    connect.protocol_name = input.protocol_name;
    connect.protocol_level = provider.ConsumeIntegral<uint8_t>();
    connect.client_id = {};
    return;
  }
  const bool mqtt31 = provider.ConsumeBool();
  connect.protocol_name = mqtt31 ? "MQIsdp" : "MQTT";
  connect.protocol_level = mqtt31 ? 3 : 4;
  connect.clean_session = provider.ConsumeBool();
  connect.keepalive_s = provider.ConsumeIntegral<uint16_t>();
  if (provider.ConsumeBool()) {
    input.user_name = provider.ConsumeRandomLengthString(16);
    connect.user_name = input.user_name;
    if (provider.ConsumeBool()) {
      input.password = provider.ConsumeRandomLengthString(16);
      connect.password = input.password;
    }
  }
  input.client_id = provider.ConsumeRandomLengthString(80);
  // Now and then an id of the server-assigned form, which clients may not claim.
  if (provider.ConsumeIntegralInRange(0, 7) == 0) {
    input.client_id.insert(0, kAssignedClientIdPrefix);
  }
  connect.client_id = input.client_id;
  if (provider.ConsumeBool()) {
    // A will, sometimes in $SYS (refused at step 3b).
    input.will_topic = provider.ConsumeBool() ? "$SYS" : "";
    input.will_topic += provider.ConsumeRandomLengthString(16);
    connect.will = mqtt::Will{.topic = input.will_topic};
  }
}

void ConsumeInput(FuzzedDataProvider& provider, Input& input) {
  ConsumePolicy(provider, input);
  input.state.connected_clients = ConsumeLimit(provider, 9);
  input.state.shutting_down = provider.ConsumeIntegralInRange(0, 7) == 0;
  input.state.memory_full = provider.ConsumeIntegralInRange(0, 7) == 0;
  if (provider.ConsumeIntegralInRange(0, 3) == 0) {
    input.violation = static_cast<mqtt::Violation>(
        provider.ConsumeIntegralInRange<size_t>(1, kViolationCount - 1));
  } else {
    ConsumeConnect(provider, input);
  }
  input.policy.max_connections_per_address = ConsumeLimit(provider, 4);
  input.policy.max_connect_rate_per_address = ConsumeLimit(provider, 4);
  input.state.address_connections = ConsumeLimit(provider, 6);
  input.state.address_connects_this_second = ConsumeLimit(provider, 6);
  input.policy.client_id_prefixes = input.prefixes;
  input.policy.authenticator = input.authenticator ? &*input.authenticator : nullptr;
}

bool IsOneOf(Reason reason, std::initializer_list<Reason> reasons) {
  for (const Reason candidate : reasons) {
    if (reason == candidate) return true;
  }
  return false;
}

// MQTT-8 and the reject policy: what goes on the wire.
void CheckWire(const Input& input, const Decision& decision) {
  const bool silent = input.policy.reject_policy == RejectPolicy::kSilent;
  const bool malformed = input.violation != mqtt::Violation::kNone;
  FUZZ_CHECK(malformed == (decision.reason == Reason::kMalformed));
  FUZZ_CHECK(decision.violation == input.violation);
  if (decision.silenced) FUZZ_CHECK(silent && decision.outcome == Outcome::kClose);
  if (decision.outcome == Outcome::kClose) FUZZ_CHECK(malformed != decision.silenced);
  if (decision.outcome == Outcome::kRefuse) FUZZ_CHECK(!silent);
  if (malformed) {
    FUZZ_CHECK(decision.outcome == Outcome::kClose && !decision.assign_client_id);
    return;
  }
  const uint8_t code = kReasonCodes[static_cast<size_t>(decision.reason)];
  FUZZ_CHECK(static_cast<uint8_t>(decision.return_code) == code);
  FUZZ_CHECK((code == 0x00) == (decision.outcome == Outcome::kAccept));
  const std::span<const uint8_t> bytes = ConnackBytes(decision.return_code);
  FUZZ_CHECK(bytes.size() == 4 && bytes[0] == 0x20 && bytes[1] == 0x02 && bytes[2] == 0x00 &&
             bytes[3] == code);
  FUZZ_CHECK(!LabelOf(decision.reason).empty());
}

// 0 means no limit; the counts include the connection being decided.
bool WithinAddressLimits(const Input& input) {
  const Policy& policy = input.policy;
  const BrokerState& state = input.state;
  return (policy.max_connections_per_address == 0 ||
          state.address_connections <= policy.max_connections_per_address) &&
         (policy.max_connect_rate_per_address == 0 ||
          state.address_connects_this_second <= policy.max_connect_rate_per_address);
}

void CheckAccept(const Input& input, const Decision& decision) {
  if (decision.outcome != Outcome::kAccept) {
    FUZZ_CHECK(!decision.assign_client_id);
    return;
  }
  const mqtt::Connect& connect = input.connect;
  FUZZ_CHECK(input.state.connected_clients < input.policy.max_connections);
  FUZZ_CHECK(!input.state.shutting_down);
  FUZZ_CHECK(!input.state.memory_full);
  FUZZ_CHECK(WithinAddressLimits(input));
  FUZZ_CHECK(connect.level_supported && !decision.silenced);
  FUZZ_CHECK(!input.authenticator || input.authenticator->result() == AuthResult::kAllow);
  FUZZ_CHECK(decision.assign_client_id == connect.client_id.empty());
  if (decision.assign_client_id) FUZZ_CHECK(connect.clean_session && connect.protocol_level == 4);
  FUZZ_CHECK(connect.client_id.size() <= input.policy.max_client_id_length);
}

// MQTT 3.1's limit is 23 characters; the id may hold any bytes here, so count the bytes that
// do not continue a UTF-8 sequence.
size_t Utf8Characters(std::string_view text) {
  size_t characters = 0;
  for (const char c : text) characters += (static_cast<uint8_t>(c) >> 6) != 0b10;
  return characters;
}

bool HasPrefix(std::string_view client_id, const std::vector<std::string>& prefixes) {
  for (const std::string& prefix : prefixes) {
    if (client_id.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// Every client id rule holds for a CONNECT that got past step 3.
void CheckClientIdAllowed(const Input& input) {
  const mqtt::Connect& connect = input.connect;
  FUZZ_CHECK(connect.client_id.size() <= input.policy.max_client_id_length);
  FUZZ_CHECK(!HasAssignedClientIdPrefix(connect.client_id));
  if (connect.client_id.empty()) {
    FUZZ_CHECK(connect.protocol_level == 4 && connect.clean_session);
    return;  // a server-assigned id is exempt from the prefix rule
  }
  if (connect.protocol_level == 3) FUZZ_CHECK(Utf8Characters(connect.client_id) <= 23);
  if (!input.prefixes.empty()) FUZZ_CHECK(HasPrefix(connect.client_id, input.prefixes));
}

// The documented order: a reason implies that every earlier check passed.
void CheckOrder(const Input& input, const Decision& decision) {
  if (decision.reason == Reason::kMalformed) return;
  const mqtt::Connect& connect = input.connect;
  const Reason reason = decision.reason;
  FUZZ_CHECK(connect.level_supported == (reason != Reason::kUnsupportedProtocol));
  if (!connect.level_supported) return;
  if (connect.client_id.empty() && !connect.clean_session) {
    FUZZ_CHECK(reason == Reason::kClientIdEmptyPersistent);
  }
  if (reason == Reason::kClientIdTooLong) {
    FUZZ_CHECK(connect.client_id.size() > input.policy.max_client_id_length ||
               (connect.protocol_level == 3 && connect.client_id.size() > 23));
  }
  if (reason == Reason::kClientIdNotAllowed) {
    FUZZ_CHECK(!input.prefixes.empty() && !connect.client_id.empty());
  }
  if (reason == Reason::kClientIdReserved) {
    FUZZ_CHECK(HasAssignedClientIdPrefix(connect.client_id));
  }
  const bool sys_will = connect.will.has_value() && mqtt::IsSysTopic(connect.will->topic);
  if (reason == Reason::kWillTopicSys) {
    FUZZ_CHECK(sys_will);
    CheckClientIdAllowed(input);
  }
  const bool past_client_id =
      IsOneOf(reason, {Reason::kConnectionLimit, Reason::kShuttingDown, Reason::kMemoryBudget,
                       Reason::kAddressConnectionLimit, Reason::kAddressRateLimit,
                       Reason::kBadCredentials, Reason::kNotAuthorized, Reason::kAuthRateLimit,
                       Reason::kAccepted});
  if (past_client_id) CheckClientIdAllowed(input);
  if (past_client_id) FUZZ_CHECK(!sys_will);
  if (past_client_id && reason != Reason::kShuttingDown) FUZZ_CHECK(!input.state.shutting_down);
  if (reason == Reason::kMemoryBudget) {
    FUZZ_CHECK(input.state.memory_full);
    FUZZ_CHECK(input.state.connected_clients < input.policy.max_connections);
  }
  if (IsOneOf(reason, {Reason::kAddressConnectionLimit, Reason::kAddressRateLimit})) {
    FUZZ_CHECK(!input.state.memory_full);
  }
  if (reason == Reason::kAddressRateLimit) {
    FUZZ_CHECK(input.state.connected_clients < input.policy.max_connections);
    FUZZ_CHECK(input.policy.max_connections_per_address == 0 ||
               input.state.address_connections <= input.policy.max_connections_per_address);
  }
  const bool authenticated =
      IsOneOf(reason, {Reason::kBadCredentials, Reason::kNotAuthorized, Reason::kAuthRateLimit,
                       Reason::kAccepted});
  if (authenticated) {
    FUZZ_CHECK(input.state.connected_clients < input.policy.max_connections);
    FUZZ_CHECK(!input.state.memory_full);
    FUZZ_CHECK(WithinAddressLimits(input));
  }
  // Authentication is consulted exactly when every cheaper check passed.
  if (input.authenticator) FUZZ_CHECK(input.authenticator->calls() == (authenticated ? 1 : 0));
  if (!input.authenticator)
    FUZZ_CHECK(!IsOneOf(reason,
                        {Reason::kBadCredentials, Reason::kNotAuthorized, Reason::kAuthRateLimit}));
}

bool SameDecision(const Decision& a, const Decision& b) {
  return a.outcome == b.outcome && a.reason == b.reason && a.return_code == b.return_code &&
         a.silenced == b.silenced && a.assign_client_id == b.assign_client_id &&
         a.violation == b.violation;
}

}  // namespace
}  // namespace ringmq::connect

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::connect;  // NOLINT(google-build-using-namespace)
  FuzzedDataProvider provider(data, size);
  Input input;
  ConsumeInput(provider, input);
  const ringmq::mqtt::Result<ringmq::mqtt::Connect> result =
      input.violation == ringmq::mqtt::Violation::kNone
          ? ringmq::mqtt::Result<ringmq::mqtt::Connect>(input.connect)
          : ringmq::mqtt::Result<ringmq::mqtt::Connect>(input.violation);
  const Decision decision = Admit(result, input.state, input.policy);
  CheckWire(input, decision);
  CheckAccept(input, decision);
  CheckOrder(input, decision);
  // Pure: the same input gives the same decision.
  if (input.authenticator) input.authenticator->ResetCalls();
  FUZZ_CHECK(SameDecision(decision, Admit(result, input.state, input.policy)));
  return 0;
}
