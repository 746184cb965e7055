#include "shard/connection_context.h"

#include <algorithm>
#include <cstdint>

#include "common/assert.h"
#include "listener/listener.h"

namespace ringmq::shard {

void ConfigureConnectionContext(uint32_t shard, const Config& config, SharedState& shared,
                                metrics::ShardCounters& counters, net::ConnectionContext& context) {
  RINGMQ_ASSERT(shard < shared.shard_count);
  context.policy.reject_policy = config.reject_policy;
  context.policy.max_connections = config.max_connections;
  context.policy.max_client_id_length = config.max_client_id_length;
  context.policy.client_id_prefixes = config.client_id_prefixes;
  context.policy.max_connections_per_address = config.max_connections_per_address;
  context.policy.max_connect_rate_per_address = config.max_connect_rate_per_address;
  context.policy.max_qos = config.max_qos;
  context.policy.retain_available = config.retain_available;
  context.policy.max_keepalive_s = config.max_keepalive;
  // What is announced must fit what a session keeps: a 5.0 client within its Receive Maximum
  // must never meet the session's max_inbound_qos2_pending close instead of DISCONNECT 0x93.
  context.receive_maximum = static_cast<uint16_t>(
      std::min<uint32_t>(config.receive_maximum, config.max_inbound_qos2_pending));
  context.topic_alias_maximum = config.max_topic_alias;
  context.outbound_topic_aliases = config.outbound_topic_aliases;
  context.max_keepalive_s = config.max_keepalive;
  context.max_qos = config.max_qos;
  context.retain_available = config.retain_available;
  context.response_information = config.response_information;
  context.addresses = shared.addresses.get();
  context.max_packet_size = config.max_packet_size;
  context.max_connect_packet_size = config.max_connect_packet_size;
  context.connect_timeout_ms = config.connect_timeout_ms;
  context.connected_clients = &shared.connected_clients;
  context.shutting_down = &shared.shutting_down;
  context.counters = &counters;
  context.shard_index = shard;
  context.shard_count = shared.shard_count;
  context.listeners = listener::EffectiveListeners(config);
  RINGMQ_ASSERT(context.listeners.size() <= kMaxListeners);
  context.listener_clients = shared.listener_clients.data();
  context.listener_policies.clear();
  for (const ListenerConfig& listener : context.listeners) {
    context.listener_policies.push_back(
        {.max_connections = listener.max_connections, .allow_anonymous = listener.allow_anonymous});
  }
  context.policy.listeners = context.listener_policies;
  counters.SetListenerCount(static_cast<uint32_t>(context.listeners.size()));
  counters.SetBridgeCount(static_cast<uint32_t>(config.bridges.size()));  // bridge lane
}

}  // namespace ringmq::shard
