#include "mqtt/violation.h"

#include <array>
#include <cstddef>

#include "common/assert.h"

namespace ringmq::mqtt {
namespace {

struct ViolationInfo {
  std::string_view name;  // enumerator without the leading 'k'
  std::string_view rule;
  std::string_view description;
};

// The stringized enumerator always starts with 'k'; drop it once here, at compile time.
constexpr std::string_view DropK(std::string_view enumerator) { return enumerator.substr(1); }

constexpr std::array kViolationInfo = {
#define RINGMQ_MQTT_VIOLATION_INFO(name, rule, description) \
  ViolationInfo{DropK(#name), rule, description},
    RINGMQ_MQTT_VIOLATIONS(RINGMQ_MQTT_VIOLATION_INFO)
#undef RINGMQ_MQTT_VIOLATION_INFO
};

// One uint8_t enumerator per row: the table must fit the enum's underlying type.
static_assert(kViolationInfo.size() <= 256);

const ViolationInfo& InfoOf(Violation violation) {
  const auto index = static_cast<size_t>(violation);
  RINGMQ_ASSERT(index < kViolationInfo.size());
  return kViolationInfo[index];
}

}  // namespace

std::string_view RuleOf(Violation violation) { return InfoOf(violation).rule; }

ReasonCode ReasonCodeOf(Violation violation) {
  RINGMQ_ASSERT(violation != Violation::kNone);
  switch (violation) {
    case Violation::kPacketTooLarge:
      return ReasonCode::kPacketTooLarge;
    case Violation::kReauthenticationUnsupported:
      return ReasonCode::kBadAuthenticationMethod;  // "not supported" (§3.14.2.1)
    case Violation::kTopicAliasZero:
    case Violation::kTopicAliasAboveMaximum:
      return ReasonCode::kTopicAliasInvalid;  // §3.3.2.3.4
    case Violation::kReceiveMaximumExceeded:
      return ReasonCode::kReceiveMaximumExceeded;  // §3.3.4
    case Violation::kQosNotSupported:
      return ReasonCode::kQosNotSupported;  // §3.2.2.3.4
    case Violation::kRetainNotSupported:
      return ReasonCode::kRetainNotSupported;  // §3.2.2.3.5
    case Violation::kTopicAliasUnknown:
    case Violation::kSubscriptionIdentifierFromClient:
    case Violation::kDisconnectSessionExpiry:
    // §4.13.2 and the sections the rows name call these a Protocol Error.
    case Violation::kUnexpectedPacket:
    case Violation::kSecondConnect:
    case Violation::kDuplicateProperty:
    case Violation::kPropertyNotZeroOrOne:
    case Violation::kReceiveMaximumZero:
    case Violation::kMaximumPacketSizeZero:
    case Violation::kSubscriptionIdentifierZero:
    case Violation::kAuthenticationDataWithoutMethod:
    case Violation::kAuthWithoutMethod:
    case Violation::kAuthMethodChanged:
    case Violation::kAuthNotContinue:
    case Violation::kPacketDuringAuth:
    case Violation::kAuthWithoutExchange:
    case Violation::kNoTopicFilters:  // 5.0 §3.8.3, §3.10.3: no payload is a Protocol Error
    case Violation::kEmptyTopicWithoutAlias:
    case Violation::kSubscribeQos3:
    case Violation::kRetainHandling3:
    case Violation::kNoLocalOnSharedSubscription:
      return ReasonCode::kProtocolError;
    default:
      return ReasonCode::kMalformedPacket;
  }
}

std::string_view DescriptionOf(Violation violation) { return InfoOf(violation).description; }

std::string_view NameOf(Violation violation) { return InfoOf(violation).name; }

}  // namespace ringmq::mqtt
