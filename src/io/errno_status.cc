#include "io/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace ringmq::io {

absl::Status ErrnoStatus(int error_number, std::string_view what) {
  // absl 20220623 in Debian has its own string_view type: build the message with std::string.
  std::string message(what);
  message.append(": ").append(std::strerror(error_number));
  switch (error_number) {
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EADDRINUSE:
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EINVAL:
    case EADDRNOTAVAIL:
      return absl::InvalidArgumentError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::UnimplementedError(message);
    case EMFILE:
      // Actionable wherever it happens (listener, eventfd, io_uring_setup, accept).
      message.append(" (raise the file-descriptor limit: `ulimit -n`, or LimitNOFILE= in the "
                     "systemd unit)");
      return absl::ResourceExhaustedError(message);
    case ENFILE:
      message.append(" (the system-wide limit: sysctl fs.file-max)");
      return absl::ResourceExhaustedError(message);
    case ENOMEM:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnknownError(message);
  }
}

}  // namespace ringmq::io
