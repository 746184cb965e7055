// The part of a shard's net::ConnectionContext that follows from the config and the broker's
// shared state: admission policy, packet size limits, the shared counts, the shard's counters
// and its place among the shards. One function, so that the shard loop and the sans-IO router
// harness (tests/shard/router_harness.h) serve connections under the same settings.
//
// What it leaves to the caller: the sink (the shard's Router), the authenticator and the memory
// view, which belong to the shard loop.
//
// Thread safety: fills `context` only; call before the shard serves connections.
#ifndef RINGMQ_SHARD_CONNECTION_CONTEXT_H_
#define RINGMQ_SHARD_CONNECTION_CONTEXT_H_

#include <cstdint>

#include "metrics/counters.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "shard/shared_state.h"

namespace ringmq::shard {

// `shared` and `counters` must outlive `context`.
void ConfigureConnectionContext(uint32_t shard, const Config& config, SharedState& shared,
                                metrics::ShardCounters& counters, net::ConnectionContext& context);

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CONNECTION_CONTEXT_H_
