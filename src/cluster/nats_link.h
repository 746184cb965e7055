// Cluster over NATS (issue 16): see docs/cluster.md. Filled in by its lane.
#pragma once

namespace ringmq::cluster {}  // namespace ringmq::cluster
