// Unit tests for CONNECT admission (src/connect/admission.h). Each test is named after the rule
// or precedence it pins; docs/connect-admission.md lists them case by case.
#include "connect/admission.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <iterator>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "connect/client_id.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

namespace ringmq::connect {
namespace {

using mqtt::ConnackCode;
using mqtt::Connect;
using mqtt::Violation;
using ConnectResult = mqtt::Result<Connect>;

constexpr uint8_t kMqtt31 = 3;
constexpr uint8_t kMqtt311 = 4;

// A CONNECT every default policy accepts.
Connect ValidConnect() {
  Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = kMqtt311;
  connect.clean_session = true;
  connect.keepalive_s = 60;
  connect.client_id = "sensor-1";
  return connect;
}

Connect Mqtt31Connect(std::string_view client_id) {
  Connect connect = ValidConnect();
  connect.protocol_name = "MQIsdp";
  connect.protocol_level = kMqtt31;
  connect.client_id = client_id;
  return connect;
}

using Bytes = std::vector<uint8_t>;

// A 5.0 CONNECT every default policy accepts.
Connect Mqtt5Connect(std::string_view client_id = "sensor-5") {
  Connect connect = ValidConnect();
  connect.protocol_level = 5;
  connect.client_id = client_id;
  return connect;
}

// What the codec returns for a well-formed CONNECT at a level it does not speak (here MQTT 5).
Connect UnsupportedLevelConnect() {
  Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = 5;
  connect.level_supported = false;
  connect.client_id = {};
  return connect;
}

Policy WithRejectPolicy(Policy policy, RejectPolicy reject_policy) {
  policy.reject_policy = reject_policy;
  return policy;
}

// Returns a fixed answer and counts how often it was asked.
class FakeAuthenticator : public Authenticator {
 public:
  explicit FakeAuthenticator(AuthResult result) : result_(result) {}
  AuthResult Check(const Connect& connect, std::optional<bool> allow_anonymous) const override {
    ++calls_;
    last_client_id_ = connect.client_id;
    last_allow_anonymous_ = allow_anonymous;
    return result_;
  }
  int calls() const { return calls_; }
  std::string_view last_client_id() const { return last_client_id_; }
  std::optional<bool> last_allow_anonymous() const { return last_allow_anonymous_; }

 private:
  AuthResult result_;
  mutable int calls_ = 0;
  mutable std::string_view last_client_id_;
  mutable std::optional<bool> last_allow_anonymous_;
};

// Checks a refusal under both policies: verbose sends the CONNACK code and closes; silent closes
// without one but keeps the reason and code.
void ExpectRefusal(const ConnectResult& connect, const BrokerState& state, const Policy& policy,
                   Reason reason, ConnackCode code) {
  {
    SCOPED_TRACE("verbose");
    const Decision decision =
        Admit(connect, state, WithRejectPolicy(policy, RejectPolicy::kVerbose));
    EXPECT_EQ(decision.outcome, Outcome::kRefuse);
    EXPECT_EQ(decision.reason, reason) << LabelOf(decision.reason);
    EXPECT_EQ(decision.return_code, code);
    EXPECT_FALSE(decision.silenced);
    EXPECT_FALSE(decision.assign_client_id);
    EXPECT_EQ(decision.violation, Violation::kNone);
  }
  {
    SCOPED_TRACE("silent");
    const Decision decision =
        Admit(connect, state, WithRejectPolicy(policy, RejectPolicy::kSilent));
    EXPECT_EQ(decision.outcome, Outcome::kClose);
    EXPECT_EQ(decision.reason, reason) << LabelOf(decision.reason);
    EXPECT_EQ(decision.return_code, code);
    EXPECT_TRUE(decision.silenced);
    EXPECT_FALSE(decision.assign_client_id);
    EXPECT_EQ(decision.violation, Violation::kNone);
  }
}

// Checks acceptance under both policies (the reject policy must not touch an accepted CONNECT).
void ExpectAccepted(const ConnectResult& connect, const BrokerState& state, const Policy& policy,
                    bool assign_client_id = false) {
  for (const RejectPolicy reject_policy : {RejectPolicy::kVerbose, RejectPolicy::kSilent}) {
    SCOPED_TRACE(reject_policy == RejectPolicy::kVerbose ? "verbose" : "silent");
    const Decision decision = Admit(connect, state, WithRejectPolicy(policy, reject_policy));
    EXPECT_EQ(decision.outcome, Outcome::kAccept);
    EXPECT_EQ(decision.reason, Reason::kAccepted) << LabelOf(decision.reason);
    EXPECT_EQ(decision.return_code, ConnackCode::kAccepted);
    EXPECT_FALSE(decision.silenced);
    EXPECT_EQ(decision.assign_client_id, assign_client_id);
    EXPECT_EQ(decision.violation, Violation::kNone);
  }
}

void ExpectMalformedClose(Violation violation, const BrokerState& state, const Policy& policy) {
  for (const RejectPolicy reject_policy : {RejectPolicy::kVerbose, RejectPolicy::kSilent}) {
    SCOPED_TRACE(reject_policy == RejectPolicy::kVerbose ? "verbose" : "silent");
    const Decision decision =
        Admit(ConnectResult(violation), state, WithRejectPolicy(policy, reject_policy));
    EXPECT_EQ(decision.outcome, Outcome::kClose);
    EXPECT_EQ(decision.reason, Reason::kMalformed);
    EXPECT_EQ(decision.violation, violation);
    // A malformed CONNECT is closed because of the protocol, not because of the policy.
    EXPECT_FALSE(decision.silenced);
    EXPECT_FALSE(decision.assign_client_id);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Malformed CONNECT: close, never a CONNACK (MQTT-8).

TEST(Admission, MalformedClosedWithoutConnack_MQTT_8) {
  ExpectMalformedClose(Violation::kConnectReservedFlag, BrokerState{}, Policy{});
}

TEST(Admission, EveryViolationClosedWithoutConnackEvenWhenVerbose_MQTT_8) {
  constexpr std::array kViolations = {
#define RINGMQ_TEST_VIOLATION(name, rule, description) Violation::name,
      RINGMQ_MQTT_VIOLATIONS(RINGMQ_TEST_VIOLATION)
#undef RINGMQ_TEST_VIOLATION
  };
  int checked = 0;
  for (const Violation violation : kViolations) {
    if (violation == Violation::kNone) continue;
    SCOPED_TRACE(static_cast<int>(violation));
    ExpectMalformedClose(violation, BrokerState{}, Policy{});
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(kViolations.size()) - 1);
}

TEST(Admission, MalformedBeatsShuttingDownAndConnectionLimit_MQTT_8) {
  const BrokerState state{.connected_clients = 10, .shutting_down = true};
  const Policy policy{.max_connections = 10};
  ExpectMalformedClose(Violation::kPasswordWithoutUserName, state, policy);
}

TEST(Admission, MalformedNotSilencedUnderSilentPolicy) {
  const Decision decision = Admit(ConnectResult(Violation::kTruncated), BrokerState{},
                                  Policy{.reject_policy = RejectPolicy::kSilent});
  EXPECT_EQ(decision.outcome, Outcome::kClose);
  EXPECT_FALSE(decision.silenced);
}

// ---------------------------------------------------------------------------------------------
// 2. Protocol level (MQTT-3.1.2-2).

TEST(Admission, UnsupportedLevelRefused0x01_MQTT_3_1_2_2) {
  ExpectRefusal(UnsupportedLevelConnect(), BrokerState{}, Policy{}, Reason::kUnsupportedProtocol,
                ConnackCode::kUnacceptableProtocolVersion);
}

TEST(Admission, UnsupportedLevelBeatsEmptyPersistentClientId_MQTT_3_1_2_2) {
  Connect connect = UnsupportedLevelConnect();
  connect.clean_session = false;
  connect.client_id = {};
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kUnsupportedProtocol,
                ConnackCode::kUnacceptableProtocolVersion);
}

TEST(Admission, UnsupportedLevelBeatsShuttingDownAndConnectionLimit_MQTT_3_1_2_2) {
  const BrokerState state{.connected_clients = 5, .shutting_down = true};
  ExpectRefusal(UnsupportedLevelConnect(), state, Policy{.max_connections = 5},
                Reason::kUnsupportedProtocol, ConnackCode::kUnacceptableProtocolVersion);
}

TEST(Admission, Mqtt311Accepted) { ExpectAccepted(ValidConnect(), BrokerState{}, Policy{}); }

TEST(Admission, Mqtt31Accepted) {
  ExpectAccepted(Mqtt31Connect("legacy-client"), BrokerState{}, Policy{});
}

// ---------------------------------------------------------------------------------------------
// 3. Client identifier (0x02).

TEST(Admission, EmptyClientIdWithPersistentSessionRefused0x02_MQTT_3_1_3_8) {
  Connect connect = ValidConnect();
  connect.client_id = {};
  connect.clean_session = false;
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kClientIdEmptyPersistent,
                ConnackCode::kIdentifierRejected);
}

TEST(Admission, EmptyClientIdWithPersistentSessionOnMqtt31ReportsPersistent_MQTT_3_1_3_8) {
  Connect connect = Mqtt31Connect("");
  connect.clean_session = false;
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kClientIdEmptyPersistent,
                ConnackCode::kIdentifierRejected);
}

TEST(Admission, EmptyClientIdOnMqtt31Refused0x02_MQTT31_ClientIdentifier) {
  ExpectRefusal(Mqtt31Connect(""), BrokerState{}, Policy{}, Reason::kClientIdEmptyMqtt31,
                ConnackCode::kIdentifierRejected);
}

TEST(Admission, EmptyClientIdWithCleanSessionAcceptedAndAssigned_MQTT_3_1_3_6) {
  Connect connect = ValidConnect();
  connect.client_id = {};
  ExpectAccepted(connect, BrokerState{}, Policy{}, /*assign_client_id=*/true);
}

TEST(Admission, NonEmptyClientIdNotAssigned) {
  ExpectAccepted(ValidConnect(), BrokerState{}, Policy{}, /*assign_client_id=*/false);
}

TEST(Admission, Mqtt31ClientIdOf23CharactersAccepted_MQTT31_ClientIdentifier) {
  const std::string id(kMqtt31MaxClientIdLength, 'a');
  ExpectAccepted(Mqtt31Connect(id), BrokerState{}, Policy{});
}

TEST(Admission, Mqtt31ClientIdOf24CharactersRefused0x02_MQTT31_ClientIdentifier) {
  const std::string id(kMqtt31MaxClientIdLength + 1, 'a');
  ExpectRefusal(Mqtt31Connect(id), BrokerState{}, Policy{}, Reason::kClientIdTooLong,
                ConnackCode::kIdentifierRejected);
}

// MQTT 3.1 says "characters": 23 two-byte characters (46 bytes) fit, 24 do not.
TEST(Admission, Mqtt31ClientIdLimitCountsCharactersNotBytes_MQTT31_ClientIdentifier) {
  std::string fits;
  for (size_t i = 0; i < kMqtt31MaxClientIdLength; ++i) fits += "\xC3\xA9";  // U+00E9
  ExpectAccepted(Mqtt31Connect(fits), BrokerState{}, Policy{});
  const std::string too_long = fits + "\xC3\xA9";
  ExpectRefusal(Mqtt31Connect(too_long), BrokerState{}, Policy{}, Reason::kClientIdTooLong,
                ConnackCode::kIdentifierRejected);
}

// MQTT 3.1.1 only sets a floor of 23 bytes (MQTT-3.1.3-5) and lets the server allow more.
TEST(Admission, Mqtt311ClientIdLongerThan23Accepted_MQTT_3_1_3_5) {
  Connect connect = ValidConnect();
  const std::string id(kMqtt31MaxClientIdLength + 1, 'a');
  connect.client_id = id;
  ExpectAccepted(connect, BrokerState{}, Policy{});
}

TEST(Admission, ClientIdOfExactlyMaxLengthAccepted) {
  Connect connect = ValidConnect();
  const std::string id(32, 'x');
  connect.client_id = id;
  ExpectAccepted(connect, BrokerState{}, Policy{.max_client_id_length = 32});
}

TEST(Admission, ClientIdOfMaxLengthPlusOneRefused0x02) {
  Connect connect = ValidConnect();
  const std::string id(33, 'x');
  connect.client_id = id;
  ExpectRefusal(connect, BrokerState{}, Policy{.max_client_id_length = 32},
                Reason::kClientIdTooLong, ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdMaxLengthOfDefaultPolicyIs256Bytes) {
  Connect connect = ValidConnect();
  const std::string fits(256, 'x');
  connect.client_id = fits;
  ExpectAccepted(connect, BrokerState{}, Policy{});
  const std::string too_long(257, 'x');
  connect.client_id = too_long;
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kClientIdTooLong,
                ConnackCode::kIdentifierRejected);
}

// The operator's limit bounds memory, so it counts bytes: 5 two-byte characters are 10 bytes.
TEST(Admission, ClientIdMaxLengthCountsBytes) {
  Connect connect = ValidConnect();
  const std::string id = "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9";
  connect.client_id = id;
  ExpectAccepted(connect, BrokerState{}, Policy{.max_client_id_length = 10});
  ExpectRefusal(connect, BrokerState{}, Policy{.max_client_id_length = 9}, Reason::kClientIdTooLong,
                ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdMaxLengthAlsoAppliesOnMqtt31) {
  const std::string id(11, 'a');
  ExpectRefusal(Mqtt31Connect(id), BrokerState{}, Policy{.max_client_id_length = 10},
                Reason::kClientIdTooLong, ConnackCode::kIdentifierRejected);
}

const std::vector<std::string>& Prefixes() {
  static const std::vector<std::string> prefixes = {"dev-", "sensor-", "gw/"};
  return prefixes;
}

TEST(Admission, EmptyPrefixListAllowsAnyClientId) {
  Connect connect = ValidConnect();
  connect.client_id = "anything-at-all";
  ExpectAccepted(connect, BrokerState{}, Policy{});
}

TEST(Admission, ClientIdWithAllowedPrefixAccepted) {
  Connect connect = ValidConnect();
  connect.client_id = "gw/site-7";  // matches the last prefix, not the first
  ExpectAccepted(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()});
}

TEST(Admission, ClientIdEqualToPrefixAccepted) {
  Connect connect = ValidConnect();
  connect.client_id = "dev-";
  ExpectAccepted(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()});
}

TEST(Admission, ClientIdWithoutAllowedPrefixRefused0x02) {
  Connect connect = ValidConnect();
  connect.client_id = "intruder";
  ExpectRefusal(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()},
                Reason::kClientIdNotAllowed, ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdContainingPrefixNotAtStartRefused0x02) {
  Connect connect = ValidConnect();
  connect.client_id = "xdev-1";
  ExpectRefusal(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()},
                Reason::kClientIdNotAllowed, ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdPrefixIsCaseSensitive) {
  Connect connect = ValidConnect();
  connect.client_id = "DEV-1";
  ExpectRefusal(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()},
                Reason::kClientIdNotAllowed, ConnackCode::kIdentifierRejected);
}

// The prefix list restricts ids clients choose; an id the server assigns is exempt.
TEST(Admission, EmptyClientIdToBeAssignedExemptFromPrefixRule_MQTT_3_1_3_6) {
  Connect connect = ValidConnect();
  connect.client_id = {};
  ExpectAccepted(connect, BrokerState{}, Policy{.client_id_prefixes = Prefixes()},
                 /*assign_client_id=*/true);
}

// A client may not claim an id of the server-assigned form: it could otherwise be the id of a
// live connection whose id the server assigned (MQTT-3.1.3-6, MQTT-3.1.4-2).
TEST(Admission, ClientIdOfAssignedFormRefused0x02_MQTT_3_1_3_6) {
  Connect connect = ValidConnect();
  const std::string id = std::string(kAssignedClientIdPrefix) + std::string(32, '0');
  connect.client_id = id;
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kClientIdReserved,
                ConnackCode::kIdentifierRejected);
  connect.client_id = kAssignedClientIdPrefix;  // the bare prefix too
  ExpectRefusal(connect, BrokerState{}, Policy{}, Reason::kClientIdReserved,
                ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdOfAssignedFormRefusedEvenWhenAnAllowedPrefixMatches) {
  Connect connect = ValidConnect();
  const std::string id = std::string(kAssignedClientIdPrefix) + "abc";
  connect.client_id = id;
  const std::string prefixes[] = {"ringmq-"};
  ExpectRefusal(connect, BrokerState{}, Policy{.client_id_prefixes = prefixes},
                Reason::kClientIdReserved, ConnackCode::kIdentifierRejected);
}

TEST(Admission, ClientIdMerelyContainingAssignedPrefixAccepted) {
  Connect connect = ValidConnect();
  const std::string id = "x" + std::string(kAssignedClientIdPrefix);
  connect.client_id = id;
  ExpectAccepted(connect, BrokerState{}, Policy{});
  connect.client_id = "ringmq-0-1";  // the old counter form is an ordinary id now
  ExpectAccepted(connect, BrokerState{}, Policy{});
}

TEST(Admission, ClientIdTooLongBeatsNotAllowed) {
  Connect connect = ValidConnect();
  const std::string id(40, 'z');
  connect.client_id = id;
  ExpectRefusal(connect, BrokerState{},
                Policy{.max_client_id_length = 32, .client_id_prefixes = Prefixes()},
                Reason::kClientIdTooLong, ConnackCode::kIdentifierRejected);
}

TEST(Admission, Mqtt31TooLongBeatsNotAllowed) {
  const std::string id(24, 'z');
  ExpectRefusal(Mqtt31Connect(id), BrokerState{}, Policy{.client_id_prefixes = Prefixes()},
                Reason::kClientIdTooLong, ConnackCode::kIdentifierRejected);
}

// ---------------------------------------------------------------------------------------------
// 4. Capacity (0x03).

TEST(Admission, ConnectedClientsOneBelowMaxAccepted) {
  ExpectAccepted(ValidConnect(), BrokerState{.connected_clients = 99},
                 Policy{.max_connections = 100});
}

TEST(Admission, ConnectedClientsAtMaxRefused0x03) {
  ExpectRefusal(ValidConnect(), BrokerState{.connected_clients = 100},
                Policy{.max_connections = 100}, Reason::kConnectionLimit,
                ConnackCode::kServerUnavailable);
}

TEST(Admission, ConnectedClientsAboveMaxRefused0x03) {
  ExpectRefusal(ValidConnect(), BrokerState{.connected_clients = 150},
                Policy{.max_connections = 100}, Reason::kConnectionLimit,
                ConnackCode::kServerUnavailable);
}

TEST(Admission, MaxConnectionsZeroRefusesEveryone0x03) {
  ExpectRefusal(ValidConnect(), BrokerState{}, Policy{.max_connections = 0},
                Reason::kConnectionLimit, ConnackCode::kServerUnavailable);
}

// Listener 0 without settings of its own, listener 1 with max_connections 2 and anonymous
// clients refused, listener 2 with anonymous clients allowed.
constexpr ListenerPolicy kLimitedListeners[] = {
    {}, {.max_connections = 2, .allow_anonymous = false}, {.allow_anonymous = true}};

TEST(Admission, ListenerMaxConnectionsRefused0x03And0x97) {
  const Policy policy{.listeners = kLimitedListeners};
  ExpectAccepted(ValidConnect(), BrokerState{.listener = 1, .listener_connected_clients = 1},
                 policy);
  ExpectRefusal(ValidConnect(), BrokerState{.listener = 1, .listener_connected_clients = 2}, policy,
                Reason::kListenerConnectionLimit, ConnackCode::kServerUnavailable);
  const Decision decision =
      Admit(Mqtt5Connect(), BrokerState{.listener = 1, .listener_connected_clients = 5}, policy);
  EXPECT_EQ(decision.reason, Reason::kListenerConnectionLimit);
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kQuotaExceeded);
  // Other listeners have no bound of their own, and a listener beyond the table has none.
  ExpectAccepted(ValidConnect(), BrokerState{.listener = 0, .listener_connected_clients = 99},
                 policy);
  ExpectAccepted(ValidConnect(), BrokerState{.listener = 7, .listener_connected_clients = 99},
                 policy);
}

TEST(Admission, BrokerWideLimitIsReportedBeforeTheListenersOwn) {
  ExpectRefusal(ValidConnect(),
                BrokerState{
                    .connected_clients = 10, .listener = 1, .listener_connected_clients = 2},
                Policy{.max_connections = 10, .listeners = kLimitedListeners},
                Reason::kConnectionLimit, ConnackCode::kServerUnavailable);
}

TEST(Admission, AuthenticatorGetsTheListenersAllowAnonymous) {
  const FakeAuthenticator auth(AuthResult::kAllow);
  const Policy policy{.listeners = kLimitedListeners, .authenticator = &auth};
  for (const auto& [listener, expected] :
       {std::pair<uint32_t, std::optional<bool>>{0, std::nullopt}, {1, false}, {2, true},
        {9, std::nullopt}}) {
    ExpectAccepted(ValidConnect(), BrokerState{.listener = listener}, policy);
    EXPECT_EQ(auth.last_allow_anonymous(), expected) << "listener " << listener;
  }
}

TEST(Admission, ShuttingDownRefused0x03) {
  ExpectRefusal(ValidConnect(), BrokerState{.shutting_down = true}, Policy{}, Reason::kShuttingDown,
                ConnackCode::kServerUnavailable);
}

TEST(Admission, ShuttingDownReportedBeforeConnectionLimit) {
  ExpectRefusal(ValidConnect(), BrokerState{.connected_clients = 100, .shutting_down = true},
                Policy{.max_connections = 100}, Reason::kShuttingDown,
                ConnackCode::kServerUnavailable);
}

// max_memory (memory/budget.h): near the budget no new client is admitted.
TEST(Admission, MemoryBudgetRefused0x03) {
  ExpectRefusal(ValidConnect(), BrokerState{.memory_full = true}, Policy{}, Reason::kMemoryBudget,
                ConnackCode::kServerUnavailable);
}

TEST(Admission, MemoryBudgetIsNotCheckedForMalformedConnects) {
  EXPECT_EQ(Admit(ConnectResult(Violation::kTruncated), BrokerState{.memory_full = true}, Policy{})
                .reason,
            Reason::kMalformed);
}

// Per-source-address policy (docs/connect-admission.md): the counts include this connection.
TEST(Admission, AddressConnectionLimitAllowsExactlyTheLimit) {
  const Policy policy{.max_connections_per_address = 2};
  EXPECT_EQ(Admit(ValidConnect(), BrokerState{.address_connections = 2}, policy).outcome,
            Outcome::kAccept);
  ExpectRefusal(ValidConnect(), BrokerState{.address_connections = 3}, policy,
                Reason::kAddressConnectionLimit, ConnackCode::kServerUnavailable);
}

TEST(Admission, AddressRateLimitAllowsExactlyTheRate) {
  const Policy policy{.max_connect_rate_per_address = 10};
  EXPECT_EQ(Admit(ValidConnect(), BrokerState{.address_connects_this_second = 10}, policy).outcome,
            Outcome::kAccept);
  ExpectRefusal(ValidConnect(), BrokerState{.address_connects_this_second = 11}, policy,
                Reason::kAddressRateLimit, ConnackCode::kServerUnavailable);
}

TEST(Admission, AddressLimitsZeroMeansUnlimited) {
  EXPECT_EQ(Admit(ValidConnect(),
                  BrokerState{.address_connections = 1'000'000,
                              .address_connects_this_second = 1'000'000},
                  Policy{})
                .outcome,
            Outcome::kAccept);
}

TEST(Admission, AddressLimitCheckedBeforeAuthentication) {
  const FakeAuthenticator allow(AuthResult::kAllow);
  ExpectRefusal(ValidConnect(), BrokerState{.address_connections = 2},
                Policy{.max_connections_per_address = 1, .authenticator = &allow},
                Reason::kAddressConnectionLimit, ConnackCode::kServerUnavailable);
  EXPECT_EQ(allow.calls(), 0);
}

// use_identity_as_username without a verified client certificate: refused as not authorized
// (Mosquitto refuses such a client too), before the authenticator is asked.
TEST(Admission, CertificateIdentityMissingRefused0x05) {
  const FakeAuthenticator allow(AuthResult::kAllow);
  ExpectRefusal(ValidConnect(), BrokerState{.certificate_user = CertificateUser::kMissing},
                Policy{.authenticator = &allow}, Reason::kNoCertificateIdentity,
                ConnackCode::kNotAuthorized);
  EXPECT_EQ(allow.calls(), 0);
  const Decision decision = Admit(Mqtt5Connect(),
                                  BrokerState{.certificate_user = CertificateUser::kMissing}, {});
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kNotAuthorized);  // 0x87
}

// A certificate identity as User Name needs no password: CheckCertificateUser, not Check.
TEST(Admission, CertificateUserSkipsThePasswordCheck) {
  const FakeAuthenticator bad(AuthResult::kBadCredentials);
  const Decision decision = Admit(ValidConnect(),
                                  BrokerState{.certificate_user = CertificateUser::kProven},
                                  Policy{.authenticator = &bad});
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_EQ(bad.calls(), 0);
}

TEST(Admission, AuthRateLimitedRefused0x03) {
  const FakeAuthenticator limited(AuthResult::kRateLimited);
  ExpectRefusal(ValidConnect(), BrokerState{}, Policy{.authenticator = &limited},
                Reason::kAuthRateLimit, ConnackCode::kServerUnavailable);
}

TEST(Admission, TooLongClientIdAtConnectionLimitGets0x02) {
  Connect connect = ValidConnect();
  const std::string id(33, 'x');
  connect.client_id = id;
  ExpectRefusal(connect, BrokerState{.connected_clients = 100},
                Policy{.max_connections = 100, .max_client_id_length = 32},
                Reason::kClientIdTooLong, ConnackCode::kIdentifierRejected);
}

TEST(Admission, EmptyPersistentClientIdWhileShuttingDownGets0x02_MQTT_3_1_3_8) {
  Connect connect = ValidConnect();
  connect.client_id = {};
  connect.clean_session = false;
  ExpectRefusal(connect, BrokerState{.shutting_down = true}, Policy{},
                Reason::kClientIdEmptyPersistent, ConnackCode::kIdentifierRejected);
}

TEST(Admission, AssignedClientIdStillSubjectToConnectionLimit) {
  Connect connect = ValidConnect();
  connect.client_id = {};
  ExpectRefusal(connect, BrokerState{.connected_clients = 1}, Policy{.max_connections = 1},
                Reason::kConnectionLimit, ConnackCode::kServerUnavailable);
}

// ---------------------------------------------------------------------------------------------
// 5. Authentication and authorization (0x04, 0x05).

TEST(Admission, NullAuthenticatorAllowsEveryone) {
  Connect connect = ValidConnect();
  connect.user_name = "anyone";
  connect.password = "wrong";
  ExpectAccepted(connect, BrokerState{}, Policy{.authenticator = nullptr});
}

TEST(Admission, AuthenticatorAllowAccepted) {
  const FakeAuthenticator auth(AuthResult::kAllow);
  Connect connect = ValidConnect();
  connect.user_name = "alice";
  connect.password = "secret";
  const Decision decision = Admit(connect, BrokerState{}, Policy{.authenticator = &auth});
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_EQ(auth.calls(), 1);
  EXPECT_EQ(auth.last_client_id(), "sensor-1");
}

TEST(Admission, BadCredentialsRefused0x04) {
  const FakeAuthenticator auth(AuthResult::kBadCredentials);
  ExpectRefusal(ValidConnect(), BrokerState{}, Policy{.authenticator = &auth},
                Reason::kBadCredentials, ConnackCode::kBadUserNameOrPassword);
  EXPECT_EQ(auth.calls(), 2);  // once per policy
}

TEST(Admission, NotAuthorizedRefused0x05) {
  const FakeAuthenticator auth(AuthResult::kNotAuthorized);
  ExpectRefusal(ValidConnect(), BrokerState{}, Policy{.authenticator = &auth},
                Reason::kNotAuthorized, ConnackCode::kNotAuthorized);
  EXPECT_EQ(auth.calls(), 2);  // once per policy
}

// $SYS/ is the broker's: a will there would be published (and retained) in its name. Refused
// as not authorized, as Mosquitto refuses a will its ACL denies (every client write to $SYS).
Connect WithWill(std::string_view topic) {
  Connect connect = ValidConnect();
  connect.will = mqtt::Will{.topic = topic, .payload = "forged-by-client", .retain = true};
  return connect;
}

TEST(Admission, WillOnSysTopicRefused0x05) {
  ExpectRefusal(WithWill("$SYS/broker/version"), BrokerState{}, Policy{}, Reason::kWillTopicSys,
                ConnackCode::kNotAuthorized);
  ExpectRefusal(WithWill("$SYS"), BrokerState{}, Policy{}, Reason::kWillTopicSys,
                ConnackCode::kNotAuthorized);
}

TEST(Admission, WillOnOtherTopicsAccepted) {
  for (const std::string_view topic : {"$SYSTEM/x", "$share/x", "x/$SYS/y", "status/gone"}) {
    SCOPED_TRACE(topic);
    ExpectAccepted(WithWill(topic), BrokerState{}, Policy{});
  }
}

TEST(Admission, WillOnSysTopicRefusedBeforeTheAuthenticatorRuns) {
  const FakeAuthenticator auth(AuthResult::kAllow);
  ExpectRefusal(WithWill("$SYS/broker/version"), BrokerState{}, Policy{.authenticator = &auth},
                Reason::kWillTopicSys, ConnackCode::kNotAuthorized);
  EXPECT_EQ(auth.calls(), 0);
}

TEST(Admission, BadPasswordWhileShuttingDownGets0x03) {
  const FakeAuthenticator auth(AuthResult::kBadCredentials);
  ExpectRefusal(ValidConnect(), BrokerState{.shutting_down = true}, Policy{.authenticator = &auth},
                Reason::kShuttingDown, ConnackCode::kServerUnavailable);
  EXPECT_EQ(auth.calls(), 0);
}

TEST(Admission, AuthenticatorSeesAnEmptyClientIdToBeAssigned) {
  const FakeAuthenticator auth(AuthResult::kAllow);
  Connect connect = ValidConnect();
  connect.client_id = {};
  const Decision decision = Admit(connect, BrokerState{}, Policy{.authenticator = &auth});
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_TRUE(decision.assign_client_id);
  EXPECT_EQ(auth.calls(), 1);
}

// Authentication is the expensive step (it may hash a password): every earlier refusal must
// happen without consulting it.
TEST(Admission, AuthenticatorNotConsultedWhenEarlierCheckFails) {
  const FakeAuthenticator auth(AuthResult::kNotAuthorized);
  const Policy policy{.max_connections = 10,
                      .max_client_id_length = 32,
                      .client_id_prefixes = Prefixes(),
                      .authenticator = &auth};
  Connect persistent_empty = ValidConnect();
  persistent_empty.client_id = {};
  persistent_empty.clean_session = false;
  Connect too_long = ValidConnect();
  const std::string long_id(33, 'x');
  too_long.client_id = long_id;
  Connect not_allowed = ValidConnect();
  not_allowed.client_id = "intruder";
  const Connect allowed = ValidConnect();  // "sensor-1" matches "sensor-"

  struct Case {
    const char* name;
    ConnectResult connect;
    BrokerState state;
    Reason reason;
  };
  const Case cases[] = {
      {"malformed", ConnectResult(Violation::kMissingPassword), {}, Reason::kMalformed},
      {"unsupported", UnsupportedLevelConnect(), {}, Reason::kUnsupportedProtocol},
      {"empty persistent", persistent_empty, {}, Reason::kClientIdEmptyPersistent},
      {"empty mqtt31", Mqtt31Connect(""), {}, Reason::kClientIdEmptyMqtt31},
      {"too long", too_long, {}, Reason::kClientIdTooLong},
      {"not allowed", not_allowed, {}, Reason::kClientIdNotAllowed},
      {"limit", allowed, {.connected_clients = 10}, Reason::kConnectionLimit},
      {"shutting down", allowed, {.shutting_down = true}, Reason::kShuttingDown},
      {"memory budget", allowed, {.memory_full = true}, Reason::kMemoryBudget},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const RejectPolicy reject_policy : {RejectPolicy::kVerbose, RejectPolicy::kSilent}) {
      EXPECT_EQ(Admit(c.connect, c.state, WithRejectPolicy(policy, reject_policy)).reason,
                c.reason);
    }
  }
  EXPECT_EQ(auth.calls(), 0);
  // Control: the same policy does consult it once every earlier check passes.
  EXPECT_EQ(Admit(allowed, BrokerState{}, policy).reason, Reason::kNotAuthorized);
  EXPECT_EQ(auth.calls(), 1);
}

// ---------------------------------------------------------------------------------------------
// Reject policy, labels and the reason table.

TEST(Admission, SilentPolicyDoesNotTouchAccept) {
  const Decision decision =
      Admit(ValidConnect(), BrokerState{}, Policy{.reject_policy = RejectPolicy::kSilent});
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_FALSE(decision.silenced);
}

TEST(Admission, DefaultPolicyIsVerbose) {
  EXPECT_EQ(Admit(UnsupportedLevelConnect(), BrokerState{}, Policy{}).outcome, Outcome::kRefuse);
}

TEST(Admission, LabelsMatchReasonTable) {
  EXPECT_EQ(LabelOf(Reason::kAccepted), "accepted");
  EXPECT_EQ(LabelOf(Reason::kMalformed), "malformed");
  EXPECT_EQ(LabelOf(Reason::kUnsupportedProtocol), "unsupported_protocol");
  EXPECT_EQ(LabelOf(Reason::kClientIdEmptyPersistent), "client_id_empty_persistent");
  EXPECT_EQ(LabelOf(Reason::kClientIdEmptyMqtt31), "client_id_empty_mqtt31");
  EXPECT_EQ(LabelOf(Reason::kClientIdTooLong), "client_id_too_long");
  EXPECT_EQ(LabelOf(Reason::kClientIdNotAllowed), "client_id_not_allowed");
  EXPECT_EQ(LabelOf(Reason::kConnectionLimit), "connection_limit");
  EXPECT_EQ(LabelOf(Reason::kListenerConnectionLimit), "listener_connection_limit");
  EXPECT_EQ(LabelOf(Reason::kShuttingDown), "shutting_down");
  EXPECT_EQ(LabelOf(Reason::kMemoryBudget), "memory_budget");
  EXPECT_EQ(LabelOf(Reason::kAddressConnectionLimit), "address_connection_limit");
  EXPECT_EQ(LabelOf(Reason::kAddressRateLimit), "address_rate_limit");
  EXPECT_EQ(LabelOf(Reason::kAuthRateLimit), "auth_rate_limit");
  EXPECT_EQ(LabelOf(Reason::kBadCredentials), "bad_credentials");
  EXPECT_EQ(LabelOf(Reason::kNotAuthorized), "not_authorized");
  EXPECT_EQ(LabelOf(Reason::kClientIdReserved), "client_id_reserved");
  EXPECT_EQ(LabelOf(Reason::kWillTopicSys), "will_sys_topic");
}

TEST(Admission, LabelsAreUniqueSnakeCaseMetricLabels) {
  std::set<std::string_view> seen;
  for (size_t i = 0; i < kReasonCount; ++i) {
    const std::string_view label = LabelOf(static_cast<Reason>(i));
    ASSERT_FALSE(label.empty());
    EXPECT_TRUE(seen.insert(label).second) << label;
    for (const char c : label) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << label;
    }
  }
  EXPECT_EQ(seen.size(), kReasonCount);
}

// Every reason is reachable and its decision carries the code the X-macro table gives it.
TEST(Admission, EveryReasonReturnsItsTableCode) {
  constexpr std::array<uint8_t, kReasonCount> kCodes = {
#define RINGMQ_TEST_REASON_CODE(name, label, code, code5) code,
      RINGMQ_CONNECT_REASONS(RINGMQ_TEST_REASON_CODE)
#undef RINGMQ_TEST_REASON_CODE
  };
  constexpr std::array<uint8_t, kReasonCount> kCodes5 = {
#define RINGMQ_TEST_REASON_CODE5(name, label, code, code5) code5,
      RINGMQ_CONNECT_REASONS(RINGMQ_TEST_REASON_CODE5)
#undef RINGMQ_TEST_REASON_CODE5
  };
  const FakeAuthenticator bad(AuthResult::kBadCredentials);
  const FakeAuthenticator denied(AuthResult::kNotAuthorized);
  const FakeAuthenticator limited(AuthResult::kRateLimited);
  Connect persistent_empty = ValidConnect();
  persistent_empty.client_id = {};
  persistent_empty.clean_session = false;
  const std::string long_id(300, 'x');
  Connect too_long = ValidConnect();
  too_long.client_id = long_id;
  Connect not_allowed = ValidConnect();
  not_allowed.client_id = "intruder";
  const std::string reserved_id = std::string(kAssignedClientIdPrefix) + "0";
  Connect reserved = ValidConnect();
  reserved.client_id = reserved_id;
  Connect sys_will = ValidConnect();
  sys_will.will = mqtt::Will{.topic = "$SYS/broker/version", .payload = "x"};

  Connect will_qos2 = Mqtt5Connect();
  will_qos2.will = mqtt::Will{.topic = "w", .payload = "x", .qos = mqtt::QoS::k2};
  Connect will_retained = Mqtt5Connect();
  will_retained.will = mqtt::Will{.topic = "w", .payload = "x", .retain = true};
  const Bytes method_block = {0x15, 0x00, 0x04, 'N', 'O', 'N', 'E'};
  Connect auth_method = Mqtt5Connect();
  auth_method.properties = mqtt::Properties(method_block);
  struct Case {
    ConnectResult connect;
    BrokerState state;
    Policy policy;
    Reason reason;
  };
  const Case cases[] = {
      {ValidConnect(), {}, {.max_keepalive_s = 30}, Reason::kKeepaliveTooLong},
      {will_qos2, {}, {.max_qos = 1}, Reason::kWillQosNotSupported},
      {will_retained, {}, {.retain_available = false}, Reason::kWillRetainNotSupported},
      {auth_method, {}, {}, Reason::kBadAuthenticationMethod},
      {ValidConnect(), {}, {}, Reason::kAccepted},
      {ConnectResult(Violation::kTruncated), {}, {}, Reason::kMalformed},
      {UnsupportedLevelConnect(), {}, {}, Reason::kUnsupportedProtocol},
      {persistent_empty, {}, {}, Reason::kClientIdEmptyPersistent},
      {Mqtt31Connect(""), {}, {}, Reason::kClientIdEmptyMqtt31},
      {too_long, {}, {}, Reason::kClientIdTooLong},
      {not_allowed, {}, {.client_id_prefixes = Prefixes()}, Reason::kClientIdNotAllowed},
      {reserved, {}, {}, Reason::kClientIdReserved},
      {ValidConnect(), {.connected_clients = 1}, {.max_connections = 1}, Reason::kConnectionLimit},
      {ValidConnect(),
       {.listener = 1, .listener_connected_clients = 2},
       {.listeners = kLimitedListeners},
       Reason::kListenerConnectionLimit},
      {ValidConnect(), {.shutting_down = true}, {}, Reason::kShuttingDown},
      {ValidConnect(), {.memory_full = true}, {}, Reason::kMemoryBudget},
      {ValidConnect(),
       {.address_connections = 3},
       {.max_connections_per_address = 2},
       Reason::kAddressConnectionLimit},
      {ValidConnect(),
       {.address_connects_this_second = 6},
       {.max_connect_rate_per_address = 5},
       Reason::kAddressRateLimit},
      {ValidConnect(), {}, {.authenticator = &limited}, Reason::kAuthRateLimit},
      {ValidConnect(), {}, {.authenticator = &bad}, Reason::kBadCredentials},
      {ValidConnect(), {}, {.authenticator = &denied}, Reason::kNotAuthorized},
      {sys_will, {}, {}, Reason::kWillTopicSys},
      {ValidConnect(),
       {.certificate_user = CertificateUser::kMissing},
       {},
       Reason::kNoCertificateIdentity},
  };
  static_assert(std::size(cases) == kReasonCount, "one case per reason");
  for (const Case& c : cases) {
    SCOPED_TRACE(LabelOf(c.reason));
    const Decision decision = Admit(c.connect, c.state, c.policy);
    ASSERT_EQ(decision.reason, c.reason) << LabelOf(decision.reason);
    if (decision.mqtt5) {
      EXPECT_EQ(static_cast<uint8_t>(decision.reason_code), kCodes5[static_cast<size_t>(c.reason)]);
      continue;
    }
    const uint8_t code = kCodes[static_cast<size_t>(c.reason)];
    if (code == 0xff) {
      EXPECT_EQ(decision.outcome, Outcome::kClose);
    } else {
      EXPECT_EQ(static_cast<uint8_t>(decision.return_code), code);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-encoded CONNACK bytes (§3.2).

TEST(Connack, BytesForEveryReturnCode) {
  for (uint8_t code = 0x00; code <= 0x05; ++code) {
    SCOPED_TRACE(static_cast<int>(code));
    const std::span<const uint8_t> bytes = ConnackBytes(static_cast<ConnackCode>(code));
    const std::vector<uint8_t> expected = {0x20, 0x02, 0x00, code};
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), expected);
  }
}

TEST(Connack, AcceptedWithSessionPresent_MQTT_3_2_2_2) {
  const std::span<const uint8_t> bytes = ConnackBytes(ConnackCode::kAccepted, true);
  const std::vector<uint8_t> expected = {0x20, 0x02, 0x01, 0x00};
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), expected);
}

TEST(Connack, BytesAreStaticNotEncodedPerCall) {
  const std::span<const uint8_t> first = ConnackBytes(ConnackCode::kServerUnavailable);
  const std::span<const uint8_t> second = ConnackBytes(ConnackCode::kServerUnavailable);
  EXPECT_EQ(first.data(), second.data());
  EXPECT_EQ(first.size(), 4u);
}

TEST(Connack, DecisionReturnCodeSelectsItsBytes) {
  const Decision decision = Admit(UnsupportedLevelConnect(), BrokerState{}, Policy{});
  const std::span<const uint8_t> bytes = ConnackBytes(decision.return_code);
  EXPECT_EQ(bytes[3], 0x01);
}

// A refusal never says "session present" (MQTT-3.2.2-4); asking for it is a programmer error.
TEST(ConnackDeathTest, SessionPresentWithRefusalAsserts_MQTT_3_2_2_4) {
  EXPECT_DEATH(ConnackBytes(ConnackCode::kNotAuthorized, true), "assertion failed");
}

TEST(ConnackDeathTest, ReturnCodeAbove5Asserts) {
  EXPECT_DEATH(ConnackBytes(static_cast<ConnackCode>(6)), "assertion failed");
}

// ---------------------------------------------------------------------------------------------
// MQTT 5.0 (5.0:3.1, 3.2.2.2): the same decision, 5.0 reason codes.

Decision Admit5(const Connect& connect, const BrokerState& state = {}, const Policy& policy = {}) {
  return Admit(ConnectResult(connect), state, policy);
}

TEST(Admission5, ValidMqtt5Accepted) {
  const Decision decision = Admit5(Mqtt5Connect());
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_TRUE(decision.mqtt5);
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kSuccess);
}

TEST(Admission5, EmptyClientIdAssignedWithCleanStart0_5_0_MQTT_3_1_3_7) {
  Connect connect = Mqtt5Connect("");
  connect.clean_session = false;
  const Decision decision = Admit5(connect);
  EXPECT_EQ(decision.outcome, Outcome::kAccept);
  EXPECT_TRUE(decision.assign_client_id);
}

TEST(Admission5, AssignedFormIdAcceptedAt5ButReservedAt311) {
  const std::string id = std::string(kAssignedClientIdPrefix) + std::string(32, '0');
  EXPECT_EQ(Admit5(Mqtt5Connect(id)).outcome, Outcome::kAccept);
  Connect connect = ValidConnect();
  connect.client_id = id;
  EXPECT_EQ(Admit5(connect).reason, Reason::kClientIdReserved);
}

TEST(Admission5, EveryRefusalHasItsReasonCode) {
  struct Case {
    Connect connect;
    BrokerState state;
    Policy policy;
    Reason reason;
    mqtt::ReasonCode code;
  };
  const std::string long_id(300, 'x');
  Connect sys_will = Mqtt5Connect();
  sys_will.will = mqtt::Will{.topic = "$SYS/x", .payload = "x"};
  const FakeAuthenticator bad(AuthResult::kBadCredentials);
  const FakeAuthenticator denied(AuthResult::kNotAuthorized);
  const FakeAuthenticator limited(AuthResult::kRateLimited);
  using RC = mqtt::ReasonCode;
  const Case cases[] = {
      {Mqtt5Connect(long_id), {}, {}, Reason::kClientIdTooLong, RC::kClientIdentifierNotValid},
      {Mqtt5Connect("intruder"),
       {},
       {.client_id_prefixes = Prefixes()},
       Reason::kClientIdNotAllowed,
       RC::kClientIdentifierNotValid},
      {sys_will, {}, {}, Reason::kWillTopicSys, RC::kNotAuthorized},
      {Mqtt5Connect(),
       {.connected_clients = 1},
       {.max_connections = 1},
       Reason::kConnectionLimit,
       RC::kQuotaExceeded},
      {Mqtt5Connect(), {.shutting_down = true}, {}, Reason::kShuttingDown, RC::kServerUnavailable},
      {Mqtt5Connect(), {.memory_full = true}, {}, Reason::kMemoryBudget, RC::kServerBusy},
      {Mqtt5Connect(),
       {.address_connections = 3},
       {.max_connections_per_address = 2},
       Reason::kAddressConnectionLimit,
       RC::kQuotaExceeded},
      {Mqtt5Connect(),
       {.address_connects_this_second = 6},
       {.max_connect_rate_per_address = 5},
       Reason::kAddressRateLimit,
       RC::kConnectionRateExceeded},
      {Mqtt5Connect(), {}, {.authenticator = &limited}, Reason::kAuthRateLimit, RC::kServerBusy},
      {Mqtt5Connect(),
       {},
       {.authenticator = &bad},
       Reason::kBadCredentials,
       RC::kBadUserNameOrPassword},
      {Mqtt5Connect(), {}, {.authenticator = &denied}, Reason::kNotAuthorized, RC::kNotAuthorized},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(LabelOf(c.reason));
    for (const RejectPolicy reject_policy : {RejectPolicy::kVerbose, RejectPolicy::kSilent}) {
      Policy policy = c.policy;
      policy.reject_policy = reject_policy;
      const Decision decision = Admit5(c.connect, c.state, policy);
      EXPECT_EQ(decision.reason, c.reason) << LabelOf(decision.reason);
      EXPECT_TRUE(decision.mqtt5);
      EXPECT_EQ(decision.reason_code, c.code);
      EXPECT_EQ(decision.outcome,
                reject_policy == RejectPolicy::kSilent ? Outcome::kClose : Outcome::kRefuse);
      EXPECT_EQ(decision.silenced, reject_policy == RejectPolicy::kSilent);
    }
  }
}

TEST(Admission5, WillQosAboveMaxQosRefused0x9B_5_0_MQTT_3_2_2_12) {
  Connect connect = Mqtt5Connect();
  connect.will = mqtt::Will{.topic = "w", .payload = "x", .qos = mqtt::QoS::k1};
  EXPECT_EQ(Admit5(connect, {}, {.max_qos = 1}).outcome, Outcome::kAccept);
  const Decision decision = Admit5(connect, {}, {.max_qos = 0});
  EXPECT_EQ(decision.reason, Reason::kWillQosNotSupported);
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kQosNotSupported);
}

TEST(Admission5, RetainedWillWithoutRetainRefused0x9A_5_0_MQTT_3_2_2_13) {
  Connect connect = Mqtt5Connect();
  connect.will = mqtt::Will{.topic = "w", .payload = "x", .retain = true};
  EXPECT_EQ(Admit5(connect).outcome, Outcome::kAccept);
  const Decision decision = Admit5(connect, {}, {.retain_available = false});
  EXPECT_EQ(decision.reason, Reason::kWillRetainNotSupported);
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kRetainNotSupported);
}

TEST(Admission5, Mqtt311WillBeyondLimitsIsNotRefused) {
  // 3.1.x has no code for it: the connection caps the will instead (net/connection.h).
  Connect connect = ValidConnect();
  connect.will = mqtt::Will{.topic = "w", .payload = "x", .qos = mqtt::QoS::k2, .retain = true};
  EXPECT_EQ(Admit5(connect, {}, {.max_qos = 0, .retain_available = false}).outcome,
            Outcome::kAccept);
}

TEST(Admission5, UnknownAuthenticationMethodRefused0x8C) {
  const Bytes block = {0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M'};
  Connect connect = Mqtt5Connect();
  connect.properties = mqtt::Properties(block);
  const Decision decision = Admit5(connect);
  EXPECT_EQ(decision.reason, Reason::kBadAuthenticationMethod);
  EXPECT_EQ(decision.reason_code, mqtt::ReasonCode::kBadAuthenticationMethod);
  EXPECT_FALSE(IsAuthenticationMethodSupported("SCRAM-SHA-256", Policy{}));
}

TEST(Admission5, CapacityBeatsAuthenticationMethod) {
  const Bytes block = {0x15, 0x00, 0x01, 'X'};
  Connect connect = Mqtt5Connect();
  connect.properties = mqtt::Properties(block);
  EXPECT_EQ(Admit5(connect, {.shutting_down = true}).reason, Reason::kShuttingDown);
}

TEST(Admission5, MalformedClosedWithoutConnack) {
  const Decision decision = Admit(ConnectResult(Violation::kUnknownProperty), {}, {});
  EXPECT_EQ(decision.outcome, Outcome::kClose);
  EXPECT_EQ(decision.reason, Reason::kMalformed);
}

TEST(Admission5, MaxKeepaliveRefusesMqtt311ZeroOrAbove_NotMqtt5) {
  const Policy policy{.max_keepalive_s = 60};
  Connect connect = ValidConnect();
  connect.keepalive_s = 60;
  EXPECT_EQ(Admit5(connect, {}, policy).outcome, Outcome::kAccept);
  connect.keepalive_s = 61;
  EXPECT_EQ(Admit5(connect, {}, policy).reason, Reason::kKeepaliveTooLong);
  connect.keepalive_s = 0;
  EXPECT_EQ(Admit5(connect, {}, policy).reason, Reason::kKeepaliveTooLong);
  EXPECT_EQ(Admit5(connect, {}, policy).return_code, ConnackCode::kIdentifierRejected);
  Connect connect5 = Mqtt5Connect();
  connect5.keepalive_s = 0;  // 5.0: Server Keep Alive instead (the connection's business)
  EXPECT_EQ(Admit5(connect5, {}, policy).outcome, Outcome::kAccept);
}

// The static refusal CONNACKs: 20, remaining length, flags 0, the code, Property Length, Reason
// String (0x1F, length, the label).
TEST(Connack5, RefusalBytesCarryCodeAndReasonString_5_0_3_2_2_3_9) {
  const std::span<const uint8_t> bytes = ConnackBytes5(Reason::kBadCredentials);
  const std::string_view label = "bad_credentials";
  Bytes expected = {0x20,
                    static_cast<uint8_t>(2 + 1 + 3 + label.size()),
                    0x00,
                    0x86,
                    static_cast<uint8_t>(3 + label.size()),
                    0x1F,
                    0x00,
                    static_cast<uint8_t>(label.size())};
  expected.insert(expected.end(), label.begin(), label.end());
  EXPECT_EQ(Bytes(bytes.begin(), bytes.end()), expected);
}

// 5.0:MQTT-3.2.2-19: the Reason String is left out when it would make the CONNACK larger than
// the client's Maximum Packet Size; a client that cannot take even the bare CONNACK gets none.
TEST(Connack5, ReasonStringOnlyWithinClientMaximumPacketSize_5_0_MQTT_3_2_2_19) {
  const std::span<const uint8_t> full = ConnackBytes5(Reason::kBadCredentials);
  EXPECT_EQ(ConnackBytes5(Reason::kBadCredentials, 0).data(), full.data());  // 0: no limit
  EXPECT_EQ(ConnackBytes5(Reason::kBadCredentials, static_cast<uint32_t>(full.size())).data(),
            full.data());
  const std::span<const uint8_t> bare =
      ConnackBytes5(Reason::kBadCredentials, static_cast<uint32_t>(full.size() - 1));
  EXPECT_EQ(Bytes(bare.begin(), bare.end()), (Bytes{0x20, 0x03, 0x00, 0x86, 0x00}));
  EXPECT_EQ(ConnackBytes5(Reason::kBadCredentials, 5).size(), 5u);
  EXPECT_TRUE(ConnackBytes5(Reason::kBadCredentials, 4).empty());
  for (size_t i = 0; i < kReasonCount; ++i) {
    const auto reason = static_cast<Reason>(i);
    if (reason == Reason::kAccepted || reason == Reason::kMalformed) continue;
    SCOPED_TRACE(LabelOf(reason));
    const std::span<const uint8_t> bytes = ConnackBytes5(reason, 5);
    ASSERT_EQ(bytes.size(), 5u);
    EXPECT_EQ(bytes[3], ConnackBytes5(reason)[3]);
  }
}

TEST(Connack5, EveryRefusalReasonHasStaticBytesThatDecode) {
  for (size_t i = 0; i < kReasonCount; ++i) {
    const auto reason = static_cast<Reason>(i);
    if (reason == Reason::kAccepted || reason == Reason::kMalformed) continue;
    SCOPED_TRACE(LabelOf(reason));
    const std::span<const uint8_t> first = ConnackBytes5(reason);
    EXPECT_EQ(first.data(), ConnackBytes5(reason).data());  // static, not encoded per call
    ASSERT_GE(first.size(), 4u);
    const mqtt::Frame frame = mqtt::PeekFrame(first, 1 << 20, mqtt::ProtocolLevel::kMqtt5);
    ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, first.subspan(frame.header.header_length), mqtt::ProtocolLevel::kMqtt5);
    ASSERT_TRUE(packet.ok()) << mqtt::NameOf(packet.violation());
    const auto& connack = std::get<mqtt::Connack>(packet.value());
    EXPECT_FALSE(connack.session_present);
    EXPECT_GE(static_cast<uint8_t>(connack.reason_code), 0x80);
    EXPECT_EQ(connack.properties.Values().reason_string, LabelOf(reason));
  }
}

}  // namespace
}  // namespace ringmq::connect
