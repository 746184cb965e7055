#include "session/offline_list.h"

#include "common/assert.h"

namespace ringmq::session {

void OfflineList::PushBack(uint32_t index, uint64_t since_ms) {
  RINGMQ_ASSERT(index != kNone);
  if (index >= links_.size()) links_.resize(size_t{index} + 1);
  Link& link = links_[index];
  RINGMQ_ASSERT(!link.member);
  RINGMQ_ASSERT(tail_ == kNone || links_[tail_].since_ms <= since_ms);
  link = Link{.previous = tail_, .next = kNone, .since_ms = since_ms, .member = true};
  if (tail_ == kNone) {
    head_ = index;
  } else {
    links_[tail_].next = index;
  }
  tail_ = index;
  ++size_;
}

bool OfflineList::Remove(uint32_t index) {
  if (!Contains(index)) return false;
  Link& link = links_[index];
  if (link.previous == kNone) {
    RINGMQ_ASSERT(head_ == index);
    head_ = link.next;
  } else {
    links_[link.previous].next = link.next;
  }
  if (link.next == kNone) {
    RINGMQ_ASSERT(tail_ == index);
    tail_ = link.previous;
  } else {
    links_[link.next].previous = link.previous;
  }
  link = Link{};
  RINGMQ_ASSERT(size_ > 0);
  --size_;
  return true;
}

uint64_t OfflineList::since_ms(uint32_t index) const {
  RINGMQ_ASSERT(Contains(index));
  return links_[index].since_ms;
}

}  // namespace ringmq::session
