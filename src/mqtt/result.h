// Result<T>: a decoded value or the Violation that prevented it. The codec never throws.
//
// Thread safety: plain value.
#ifndef RINGMQ_MQTT_RESULT_H_
#define RINGMQ_MQTT_RESULT_H_

#include <type_traits>
#include <utility>

#include "common/assert.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  // Builds the value in place from what T is constructible from (e.g. one alternative of a
  // variant), so a decoder returning a Publish copies the Publish, not a whole Packet twice.
  template <typename U>
  requires(!std::is_same_v<std::decay_t<U>, T> && !std::is_same_v<std::decay_t<U>, Violation> &&
           std::is_constructible_v<T, U&&>) Result(U&& value)
      : value_(std::forward<U>(value)) {}                // NOLINT(google-explicit-constructor)
  Result(Violation violation) : violation_(violation) {  // NOLINT(google-explicit-constructor)
    RINGMQ_ASSERT(violation != Violation::kNone);
  }

  bool ok() const { return violation_ == Violation::kNone; }
  Violation violation() const { return violation_; }
  const T& value() const {
    RINGMQ_ASSERT(ok());
    return value_;
  }
  T& value() {
    RINGMQ_ASSERT(ok());
    return value_;
  }

 private:
  T value_{};
  Violation violation_ = Violation::kNone;
};

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_RESULT_H_
