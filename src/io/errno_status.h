// errno becomes an absl::Status in exactly one place (leveldb util/env_posix.cc style).
//
// Thread safety: stateless.
#ifndef RINGMQ_IO_ERRNO_STATUS_H_
#define RINGMQ_IO_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace ringmq::io {

// "what: strerror(error_number)" with a status code chosen from the errno value.
absl::Status ErrnoStatus(int error_number, std::string_view what);

}  // namespace ringmq::io

#endif  // RINGMQ_IO_ERRNO_STATUS_H_
