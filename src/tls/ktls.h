// Kernel TLS (the Linux `tls` upper-layer protocol): whether this kernel could take over the
// record layer of an established TLS connection, so that sends and receives would stay plain
// io_uring operations on the socket (docs/tls.md, "Kernel TLS").
//
// ringmq probes for it at start and logs the answer. The hand-over itself (traffic secrets to
// setsockopt(SOL_TLS, TLS_TX / TLS_RX)) is not implemented: every TLS connection uses the
// user-space record layer (tls/tls_layer.h), whatever the probe says.
//
// Thread safety: KernelTlsAvailable is reentrant (it opens and closes its own sockets).
#ifndef RINGMQ_TLS_KTLS_H_
#define RINGMQ_TLS_KTLS_H_

#include <string>

namespace ringmq::tls {

// True when setsockopt(TCP_ULP, "tls") succeeds on a connected loopback TCP socket; false when
// the kernel has no CONFIG_TLS (ENOENT) or the probe cannot run. `detail` says why.
bool KernelTlsAvailable(std::string* detail);

}  // namespace ringmq::tls

#endif  // RINGMQ_TLS_KTLS_H_
