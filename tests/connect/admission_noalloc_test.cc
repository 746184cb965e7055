// Proves that Admit and ConnackBytes never allocate, on every path.
//
// This file replaces the global operator new, so it is its own executable
// (tests/connect/meson.build) rather than part of ringmq_unit_tests: the replacement would
// otherwise apply to every test in the shared binary.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "../common/counting_new.h"
#include "connect/admission.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"

using alloc_counting::AllocationCounter;

namespace ringmq::connect {
namespace {

using mqtt::ConnackCode;
using mqtt::Connect;
using ConnectResult = mqtt::Result<Connect>;

class FixedAuthenticator : public Authenticator {
 public:
  explicit FixedAuthenticator(AuthResult result) : result_(result) {}
  AuthResult Check(const Connect&, std::optional<bool>) const override { return result_; }

 private:
  AuthResult result_;
};

Connect ValidConnect() {
  Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = 4;
  connect.client_id = "sensor-1";
  return connect;
}

constexpr uint8_t kAuthenticationMethodBlock[] = {0x15, 0x00, 0x04, 'S', 'C', 'R', 'A'};

// All inputs are built before counting starts; only Admit runs while counting.
struct Scenario {
  const char* name;
  ConnectResult connect;
  BrokerState state;
  Policy policy;
};

std::vector<Scenario> Scenarios(const std::vector<std::string>& prefixes,
                                const std::string& long_id, const Authenticator& bad,
                                const Authenticator& denied, const Authenticator& allow) {
  Connect unsupported = ValidConnect();
  unsupported.protocol_level = 5;
  unsupported.level_supported = false;
  Connect empty_persistent = ValidConnect();
  empty_persistent.client_id = {};
  empty_persistent.clean_session = false;
  Connect empty_mqtt31 = ValidConnect();
  empty_mqtt31.protocol_level = 3;
  empty_mqtt31.client_id = {};
  Connect mqtt31_long = ValidConnect();
  mqtt31_long.protocol_level = 3;
  mqtt31_long.client_id = long_id;  // counts UTF-8 characters, the longest path of the check
  Connect assigned = ValidConnect();
  assigned.client_id = {};
  Connect not_allowed = ValidConnect();
  not_allowed.client_id = "intruder";
  Connect reserved = ValidConnect();
  reserved.client_id = "ringmq-auto-0123456789abcdef0123456789abcdef";
  Connect sys_will = ValidConnect();
  sys_will.will = mqtt::Will{.topic = "$SYS/broker/version", .payload = "forged", .retain = true};
  Connect will = ValidConnect();
  will.will = mqtt::Will{.topic = "status/gone", .payload = "x"};
  // MQTT 5.0: the same decision with 5.0 codes; the properties are read in place.
  Connect mqtt5 = ValidConnect();
  mqtt5.protocol_level = 5;
  Connect mqtt5_will_qos2 = mqtt5;
  mqtt5_will_qos2.will = mqtt::Will{.topic = "w", .payload = "x", .qos = mqtt::QoS::k2};
  Connect mqtt5_method = mqtt5;
  mqtt5_method.properties = mqtt::Properties(kAuthenticationMethodBlock);
  return {
      {"5.0 accept", mqtt5, {}, {.authenticator = &allow}},
      {"5.0 bad credentials", mqtt5, {}, {.authenticator = &bad}},
      {"5.0 limit", mqtt5, {.connected_clients = 1}, {.max_connections = 1}},
      {"5.0 will qos", mqtt5_will_qos2, {}, {.max_qos = 1}},
      {"5.0 authentication method", mqtt5_method, {}, {}},
      {"reserved id", reserved, {}, {.client_id_prefixes = prefixes}},
      {"will on $SYS", sys_will, {}, {.authenticator = &allow}},
      {"accept with will", will, {}, {.authenticator = &allow}},
      {"accept", ValidConnect(), {}, {.authenticator = &allow}},
      {"accept assigned id", assigned, {}, {.client_id_prefixes = prefixes}},
      {"accept with prefix", ValidConnect(), {}, {.client_id_prefixes = prefixes}},
      {"malformed", ConnectResult(mqtt::Violation::kMissingUserName), {}, {}},
      {"unsupported", unsupported, {}, {}},
      {"empty persistent", empty_persistent, {}, {}},
      {"empty mqtt31", empty_mqtt31, {}, {}},
      {"mqtt31 too long", mqtt31_long, {}, {}},
      {"not allowed", not_allowed, {}, {.client_id_prefixes = prefixes}},
      {"limit", ValidConnect(), {.connected_clients = 1}, {.max_connections = 1}},
      {"shutting down", ValidConnect(), {.shutting_down = true}, {}},
      {"bad credentials", ValidConnect(), {}, {.authenticator = &bad}},
      {"not authorized", ValidConnect(), {}, {.authenticator = &denied}},
  };
}

TEST(AdmissionNoAlloc, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
}

TEST(AdmissionNoAlloc, AdmitDoesNotAllocateOnAnyPath) {
  const std::vector<std::string> prefixes = {"a-", "b-", "c-", "d-", "e-", "f-", "g-", "sensor-"};
  const std::string long_id(100, 'x');
  const FixedAuthenticator bad(AuthResult::kBadCredentials);
  const FixedAuthenticator denied(AuthResult::kNotAuthorized);
  const FixedAuthenticator allow(AuthResult::kAllow);
  const std::vector<Scenario> scenarios = Scenarios(prefixes, long_id, bad, denied, allow);
  for (const Scenario& scenario : scenarios) {
    for (const RejectPolicy reject_policy : {RejectPolicy::kVerbose, RejectPolicy::kSilent}) {
      Policy policy = scenario.policy;
      policy.reject_policy = reject_policy;
      AllocationCounter counter;
      const Decision decision = Admit(scenario.connect, scenario.state, policy);
      const std::string_view label = LabelOf(decision.reason);
      const size_t count = counter.Count();
      EXPECT_EQ(count, 0u) << scenario.name << " (" << label << ")";
    }
  }
}

TEST(AdmissionNoAlloc, ConnackBytesDoesNotAllocate) {
  size_t total_bytes = 0;
  AllocationCounter counter;
  for (uint8_t code = 0x00; code <= 0x05; ++code) {
    total_bytes += ConnackBytes(static_cast<ConnackCode>(code)).size();
  }
  total_bytes += ConnackBytes(ConnackCode::kAccepted, true).size();
  size_t total_bytes5 = 0;
  total_bytes5 += ConnackBytes5(Reason::kBadCredentials).size();
  total_bytes5 += ConnackBytes5(Reason::kConnectionLimit).size();
  total_bytes5 += ConnackBytes5(Reason::kConnectionLimit, 5).size();  // without Reason String
  EXPECT_EQ(counter.Count(), 0u);
  EXPECT_EQ(total_bytes, 7u * 4u);
  EXPECT_GT(total_bytes5, 2u * 8u + 5u);
}

// The whole 5.0 refusal path of a connection: frame, decode (properties read in place, will
// properties too), admission, the static CONNACK within the client's Maximum Packet Size.
TEST(AdmissionNoAlloc, Mqtt5RefusalPathDoesNotAllocate) {
  // clang-format off
  const std::vector<uint8_t> bytes = {
      0x10, 0x34,                          // CONNECT, remaining length 52
      0x00, 0x04, 'M', 'Q', 'T', 'T', 5,   // protocol name, level 5
      0x06, 0x00, 0x3C,                    // will QoS 0, clean start; keepalive 60
      0x12,                                // Property Length 18
      0x27, 0x00, 0x00, 0x00, 0x10,        // Maximum Packet Size 16
      0x21, 0x00, 0x05,                    // Receive Maximum 5
      0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',  // User Property k=v
      0x22, 0x00, 0x02,                    // Topic Alias Maximum 2
      0x00, 0x03, 'c', 'i', 'd',           // client id
      0x07,                                // will Property Length 7
      0x18, 0x00, 0x00, 0x00, 0x05,        // Will Delay Interval 5
      0x01, 0x01,                          // Payload Format Indicator 1
      0x00, 0x03, 'w', '/', 't',           // will topic
      0x00, 0x03, 'b', 'y', 'e',           // will payload
  };
  // clang-format on
  ASSERT_EQ(bytes.size(), 2u + 0x34);
  const BrokerState shutting_down{.shutting_down = true};
  const Policy policy;
  AllocationCounter counter;
  const mqtt::Frame frame = mqtt::PeekFrame(bytes, 1 << 20, mqtt::ProtocolLevel::kMqtt311);
  const mqtt::Result<Connect> connect = mqtt::DecodeConnect(
      frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
      /*accept_mqtt5=*/true);
  const Decision decision = Admit(connect, shutting_down, policy);
  const std::optional<mqtt::Property> maximum =
      connect.ok() ? connect.value().properties.Find(mqtt::PropertyId::kMaximumPacketSize)
                   : std::nullopt;
  const std::span<const uint8_t> connack =
      ConnackBytes5(decision.reason, maximum ? maximum->integer : 0);
  const size_t count = counter.Count();
  ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
  ASSERT_TRUE(connect.ok()) << mqtt::NameOf(connect.violation());
  EXPECT_TRUE(connect.value().will.has_value());
  EXPECT_EQ(decision.outcome, Outcome::kRefuse);
  EXPECT_TRUE(decision.mqtt5);
  EXPECT_EQ(connack.size(), 5u);  // 16 bytes allowed: the Reason String does not fit
  EXPECT_EQ(count, 0u);
}

}  // namespace
}  // namespace ringmq::connect
