// Always-on assertions for programmer errors.
//
// RINGMQ_ASSERT stays enabled in release builds: a broken invariant must crash loudly at the
// point it is detected instead of corrupting another client's data later. It is never used for
// conditions that bytes from the network can trigger; those are values (see mqtt/violation.h).
//
// Thread safety: AssertFail may be called from any thread; it writes one line and aborts.
#ifndef RINGMQ_COMMON_ASSERT_H_
#define RINGMQ_COMMON_ASSERT_H_

namespace ringmq {

[[noreturn]] void AssertFail(const char* expression, const char* file, int line);

}  // namespace ringmq

#define RINGMQ_ASSERT(condition)                                 \
  do {                                                           \
    if (__builtin_expect(!(condition), 0)) {                     \
      ::ringmq::AssertFail(#condition, __FILE__, __LINE__);      \
    }                                                            \
  } while (0)

#endif  // RINGMQ_COMMON_ASSERT_H_
