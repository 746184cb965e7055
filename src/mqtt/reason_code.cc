#include "mqtt/reason_code.h"

#include <array>

namespace ringmq::mqtt {
namespace {

constexpr std::array kReasonCodes = {
#define RINGMQ_MQTT_REASON_CODE_INFO(enumerator, value, name, packets) \
  ReasonCodeInfo{value, name, static_cast<uint16_t>(packets)},
    RINGMQ_MQTT_REASON_CODES(RINGMQ_MQTT_REASON_CODE_INFO)
#undef RINGMQ_MQTT_REASON_CODE_INFO
};

// A (value, packet) pair names at most one row: the lookups below rely on it.
constexpr bool RowsAreUnambiguous() {
  for (size_t i = 0; i < kReasonCodes.size(); ++i) {
    for (size_t j = i + 1; j < kReasonCodes.size(); ++j) {
      if (kReasonCodes[i].value == kReasonCodes[j].value &&
          (kReasonCodes[i].packets & kReasonCodes[j].packets) != 0) {
        return false;
      }
    }
  }
  return true;
}
static_assert(RowsAreUnambiguous());
static_assert(kReasonCodes.size() == 45);

// Packets allowed per value, so that a decoder's check is one load.
constexpr std::array<uint16_t, 256> AllowedByValue() {
  std::array<uint16_t, 256> allowed{};
  for (const ReasonCodeInfo& info : kReasonCodes) {
    allowed[info.value] = static_cast<uint16_t>(allowed[info.value] | info.packets);
  }
  return allowed;
}
constexpr std::array<uint16_t, 256> kAllowedByValue = AllowedByValue();

const ReasonCodeInfo* Find(uint8_t code, PacketType packet) {
  const uint16_t bit = PacketBit(packet);
  for (const ReasonCodeInfo& info : kReasonCodes) {  // 45 rows
    if (info.value == code && (info.packets & bit) != 0) {
      return &info;
    }
  }
  return nullptr;
}

}  // namespace

std::span<const ReasonCodeInfo> AllReasonCodes() { return kReasonCodes; }

bool IsReasonCodeAllowed(uint8_t code, PacketType packet) {
  return (kAllowedByValue[code] & PacketBit(packet)) != 0;
}

std::string_view NameOf(ReasonCode code, PacketType packet) {
  const ReasonCodeInfo* info = Find(static_cast<uint8_t>(code), packet);
  return info != nullptr ? info->name : std::string_view();
}

}  // namespace ringmq::mqtt
