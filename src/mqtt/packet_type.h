// The small enums every part of the codec shares: packet type, protocol level, QoS.
//
// Thread safety: constant definitions only.
#ifndef RINGMQ_MQTT_PACKET_TYPE_H_
#define RINGMQ_MQTT_PACKET_TYPE_H_

#include <cstdint>

namespace ringmq::mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5.0 only (§3.15); reserved at 3.1 and 3.1.1
};

// The protocol level byte of CONNECT (§3.1.2.2).
enum class ProtocolLevel : uint8_t {
  kMqtt31 = 3,   // protocol name "MQIsdp"
  kMqtt311 = 4,  // protocol name "MQTT"
  kMqtt5 = 5,    // protocol name "MQTT"
};

enum class QoS : uint8_t { k0 = 0, k1 = 1, k2 = 2 };

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_PACKET_TYPE_H_
