// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to the Unix
// socket named by $NOTIFY_SOCKET. With `Type=notify` in the unit (scripts/ringmq.service),
// `systemctl start` returns once ringmq accepts connections, and reload/stop are reported.
//
// Thread safety: safe from any thread (one sendto per call).
#ifndef RINGMQ_COMMON_SYSTEMD_H_
#define RINGMQ_COMMON_SYSTEMD_H_

#include <string_view>

namespace ringmq {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. Returns false when the
// variable is unset (not started by systemd: nothing to do) or the send failed. A path starting
// with '@' is an abstract socket, as systemd documents.
bool NotifySystemd(std::string_view state);

}  // namespace ringmq

#endif  // RINGMQ_COMMON_SYSTEMD_H_
