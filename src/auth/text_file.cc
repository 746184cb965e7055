#include "auth/text_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"

namespace ringmq::auth {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io::ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  std::string text;
  char chunk[16384];
  while (true) {
    const ssize_t got = read(fd, chunk, sizeof(chunk));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      close(fd);
      return io::ErrnoStatus(error, absl::StrCat("cannot read ", path));
    }
    if (got == 0) break;
    if (text.size() + static_cast<size_t>(got) > kMaxAuthFileBytes) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", kMaxAuthFileBytes, " bytes"));
    }
    text.append(chunk, static_cast<size_t>(got));
  }
  close(fd);
  return text;
}

}  // namespace ringmq::auth
