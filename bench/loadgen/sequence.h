// Per-(subscriber, publisher) message verification for ringmq-bench.
//
// Every benchmark payload carries its publisher's id and a sequence number (1, 2, 3, ... per
// publisher). A SequenceTracker sees the sequence numbers one subscriber received from one
// publisher and counts, in a fixed window of the most recent numbers (a bitmap of kWindow bits):
//   - unique: distinct numbers received;
//   - duplicated: a number received again (while it is still inside the window, or older than
//     the window's base, which is only ever advanced over received or given-up numbers);
//   - out_of_order: a number that arrives after a higher one from the same publisher;
//   - lost: Finish(sent) gives sent - unique, the numbers the publisher sent that never came.
// A number more than kWindow above the lowest missing one moves the window: the missing numbers
// it slides past are given up (they stay counted as lost unless they arrive later, in which case
// they are counted as out of order but not as unique, an unavoidable approximation for a gap
// that large, which only a broker that loses or badly reorders messages produces).
//
// The QoS rules the load generator applies to the counts (Judge): at QoS 0 loss is allowed;
// duplicates are not allowed at QoS 0 (at most once) or 2 (exactly once); at QoS 1 they are
// allowed by the protocol but reported; loss is a failure at QoS 1 and 2; out-of-order delivery
// from one publisher on one topic is a failure at every QoS (MQTT 3.1.1 §4.6, ordered topics).
//
// Thread safety: none; a tracker belongs to the thread of its subscriber.
#ifndef RINGMQ_BENCH_LOADGEN_SEQUENCE_H_
#define RINGMQ_BENCH_LOADGEN_SEQUENCE_H_

#include <array>
#include <cstdint>
#include <string>

namespace ringmq::bench {

class SequenceTracker {
 public:
  static constexpr uint64_t kWindow = 4096;  // bits; sequence numbers start at 1

  void Receive(uint64_t sequence) {
    if (sequence == 0) {
      ++corrupt_;
      return;
    }
    if (sequence < base_) {
      // Below the window every number was received, or given up by a slide over a gap. Without
      // remembering which, a repeat after such a slide is counted as out of order (a late
      // arrival), otherwise as a duplicate.
      if (any_given_up_) {
        ++out_of_order_;
      } else {
        ++duplicated_;
      }
      return;
    }
    if (sequence >= base_ + kWindow) Slide(sequence - kWindow + 1);
    const uint64_t bit = sequence % kWindow;
    if (Test(bit)) {
      ++duplicated_;
      return;
    }
    Set(bit);
    ++unique_;
    if (sequence < highest_) ++out_of_order_;
    if (sequence > highest_) highest_ = sequence;
    while (base_ <= highest_ && Test(base_ % kWindow)) {
      Clear(base_ % kWindow);
      ++base_;
    }
  }

  uint64_t unique() const { return unique_; }
  uint64_t duplicated() const { return duplicated_; }
  uint64_t out_of_order() const { return out_of_order_; }
  uint64_t corrupt() const { return corrupt_; }
  uint64_t highest() const { return highest_; }
  // Messages sent (sequence numbers 1..sent) that this subscriber never received.
  uint64_t Lost(uint64_t sent) const { return sent > unique_ ? sent - unique_ : 0; }

 private:
  // Moves base_ up to new_base, giving up the numbers in between that never arrived.
  void Slide(uint64_t new_base) {
    while (base_ < new_base) {
      const uint64_t bit = base_ % kWindow;
      if (!Test(bit)) ++gaps_given_up_;
      Clear(bit);
      ++base_;
    }
    if (gaps_given_up_ != 0) any_given_up_ = true;
  }

  bool Test(uint64_t bit) const { return (bits_[bit / 64] >> (bit % 64)) & 1; }
  void Set(uint64_t bit) { bits_[bit / 64] |= uint64_t{1} << (bit % 64); }
  void Clear(uint64_t bit) { bits_[bit / 64] &= ~(uint64_t{1} << (bit % 64)); }

  std::array<uint64_t, kWindow / 64> bits_{};
  uint64_t base_ = 1;  // lowest number not yet received (nor given up)
  uint64_t highest_ = 0;
  uint64_t unique_ = 0;
  uint64_t duplicated_ = 0;
  uint64_t out_of_order_ = 0;
  uint64_t corrupt_ = 0;
  uint64_t gaps_given_up_ = 0;
  bool any_given_up_ = false;
};

struct VerifyCounts {
  uint64_t expected = 0;  // deliveries the subscribers should have seen (by QoS rules, at most)
  uint64_t unique = 0;
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  uint64_t out_of_order = 0;
  uint64_t corrupt = 0;  // malformed payloads, unknown publishers, unexpected topics
  // Published before this run (kept by a persistent session from an earlier one, session.h):
  // counted, not judged, since this run never sent them.
  uint64_t stale = 0;
};

// Whether `counts` pass at `qos`; if not, `why` says which rule failed.
inline bool Judge(int qos, const VerifyCounts& counts, std::string* why) {
  std::string reasons;
  auto add = [&](const std::string& text) {
    if (!reasons.empty()) reasons += "; ";
    reasons += text;
  };
  if (counts.corrupt != 0) add(std::to_string(counts.corrupt) + " corrupt or unexpected messages");
  if (qos >= 1 && counts.lost != 0) {
    add(std::to_string(counts.lost) + " lost at QoS " + std::to_string(qos));
  }
  if (qos != 1 && counts.duplicated != 0) {
    add(std::to_string(counts.duplicated) + " duplicated at QoS " + std::to_string(qos));
  }
  if (counts.out_of_order != 0) add(std::to_string(counts.out_of_order) + " out of order");
  if (why != nullptr) *why = reasons;
  return reasons.empty();
}

}  // namespace ringmq::bench

#endif  // RINGMQ_BENCH_LOADGEN_SEQUENCE_H_
