#include "common/assert.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace ringmq {

void AssertFail(const char* expression, const char* file, int line) {
  char text[512];
  const int length =
      std::snprintf(text, sizeof(text), "ringmq: assertion failed: %s at %s:%d\n", expression, file,
                    line);
  if (length > 0) {
    const auto size = static_cast<size_t>(length) < sizeof(text) ? static_cast<size_t>(length)
                                                                  : sizeof(text) - 1;
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, text, size);
  }
  std::abort();
}

}  // namespace ringmq
