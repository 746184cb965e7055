// Result<T>: a decoded value or the Violation that prevented it. The codec never throws.
//
// Thread safety: plain value.
#ifndef RINGMQ_MQTT_RESULT_H_
#define RINGMQ_MQTT_RESULT_H_

#include <utility>

#include "common/assert.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
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
