// Constants the Session tests share (session_test.cc, session_mqtt5_test.cc): one definition, so
// that the files can be compiled together in a unity build.
//
// Thread safety: constants only.
#ifndef RINGMQ_TESTS_SESSION_SESSION_TEST_UTIL_H_
#define RINGMQ_TESTS_SESSION_SESSION_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>

#include "mqtt/codec.h"
#include "session/session.h"

namespace ringmq::session::test {

// Large enough for any packet; WriteOutput's budget never interferes unless a test sets it.
inline constexpr size_t kNoLimit = size_t{1} << 30;
inline constexpr uint32_t kMaxPacketSize = mqtt::kMaxRemainingLength + mqtt::kMaxFixedHeaderLength;
// A session refers to its limits, so they must outlive it: the defaults, for every test.
inline constexpr SessionLimits kDefaultLimits{};

}  // namespace ringmq::session::test

#endif  // RINGMQ_TESTS_SESSION_SESSION_TEST_UTIL_H_
