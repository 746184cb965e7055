// Listening sockets: one SO_REUSEPORT socket per shard on the same address, so the kernel
// spreads incoming connections over the shards.
//
// Thread safety: stateless.
#ifndef RINGMQ_IO_LISTENER_H_
#define RINGMQ_IO_LISTENER_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ringmq::io {

// Binds and listens on `address` (IPv4 or IPv6 literal) : `port` with SO_REUSEADDR and
// SO_REUSEPORT, and TCP_NODELAY (replies are small and latency matters), which Linux copies to
// every accepted socket, so accepting costs no setsockopt per connection (tested).
// Returns the file descriptor.
absl::StatusOr<int> OpenListener(const std::string& address, uint16_t port, int backlog);

// "a.b.c.d:port" of the socket's peer, for log lines; "?" if unknown.
std::string PeerAddress(int fd);
// The same for an address (AF_INET or AF_INET6; "?" for other families).
std::string AddressName(const sockaddr_storage& address);

}  // namespace ringmq::io

#endif  // RINGMQ_IO_LISTENER_H_
