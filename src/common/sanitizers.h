// Whether this build runs under AddressSanitizer or ThreadSanitizer (g++ and clang spell it
// differently). Stress tests scale their iteration counts down when it is true.
//
// Thread safety: a constant.
#ifndef RINGMQ_COMMON_SANITIZERS_H_
#define RINGMQ_COMMON_SANITIZERS_H_

namespace ringmq {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace ringmq

#endif  // RINGMQ_COMMON_SANITIZERS_H_
