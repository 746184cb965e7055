#include "metrics/sys_topics.h"

#include <algorithm>

namespace ringmq::metrics {

SysValues AllSysValues(const SysSample& sample, uint64_t clients_maximum) {
  const Snapshot& t = sample.total;
  const auto offline = static_cast<uint64_t>(std::max<int64_t>(t.gauges.sessions_offline, 0));
  // Dropped for a limit or a rule, as Mosquitto's publish/messages/dropped; a PUBLISH nobody
  // subscribed to is not counted here (see ringmq_messages_dropped_total for every reason).
  const uint64_t dropped = t.dropped_queue_full + t.dropped_bytes_cap + t.dropped_offline_qos0 +
                           t.mailbox_overflow + t.publish_denied + t.publish_dropped_sys_topic;
  const auto number = [](uint64_t value) { return std::to_string(value); };
  const auto level = [](int64_t value) { return std::to_string(std::max<int64_t>(value, 0)); };
  return SysValues{
      {"$SYS/broker/version", "ringmq " + sample.version},
      {"$SYS/broker/uptime", std::to_string(sample.uptime_seconds) + " seconds"},
      {"$SYS/broker/clients/connected", number(sample.clients_connected)},
      {"$SYS/broker/clients/disconnected", number(offline)},
      {"$SYS/broker/clients/total", number(sample.clients_connected + offline)},
      {"$SYS/broker/clients/maximum", number(clients_maximum)},
      {"$SYS/broker/clients/expired", number(t.sessions_expired)},
      {"$SYS/broker/messages/received",
       number(t.publish_received_qos0 + t.publish_received_qos1 + t.publish_received_qos2)},
      {"$SYS/broker/messages/sent",
       number(t.publish_sent_qos0 + t.publish_sent_qos1 + t.publish_sent_qos2)},
      {"$SYS/broker/messages/inflight", level(t.gauges.inflight_messages)},
      {"$SYS/broker/messages/queued", level(t.gauges.queued_messages)},
      {"$SYS/broker/publish/messages/dropped", number(dropped)},
      {"$SYS/broker/bytes/received", number(t.bytes_received)},
      {"$SYS/broker/bytes/sent", number(t.bytes_sent)},
      {"$SYS/broker/subscriptions/count", level(t.gauges.subscriptions)},
      {"$SYS/broker/retained messages/count", number(sample.retained_messages)},
  };
}

SysValues SysTopics::Changed(const SysSample& sample) {
  clients_maximum_ = std::max(clients_maximum_, sample.clients_connected);
  SysValues changed;
  for (auto& [topic, payload] : AllSysValues(sample, clients_maximum_)) {
    auto [it, inserted] = last_.try_emplace(topic, payload);
    if (!inserted && it->second == payload) continue;
    it->second = payload;
    changed.emplace_back(std::move(topic), std::move(payload));
  }
  return changed;
}

}  // namespace ringmq::metrics
