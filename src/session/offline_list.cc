#include "session/offline_list.h"

#include "common/assert.h"

namespace ringmq::session {

void OfflineList::PushBack(uint32_t index, uint64_t since_ms, uint64_t due_ms) {
  RINGMQ_ASSERT(index != kNone);
  if (index >= links_.size()) links_.resize(size_t{index} + 1);
  Link& link = links_[index];
  RINGMQ_ASSERT(!link.member);
  RINGMQ_ASSERT(tail_ == kNone || links_[tail_].since_ms <= since_ms);
  link = Link{.previous = tail_,
              .next = kNone,
              .heap_position = kNone,
              .member = true,
              .since_ms = since_ms,
              .due_ms = due_ms};
  if (tail_ == kNone) {
    head_ = index;
  } else {
    links_[tail_].next = index;
  }
  tail_ = index;
  ++size_;
  if (due_ms != kNever) HeapInsert(index);
}

bool OfflineList::Remove(uint32_t index) {
  if (!Contains(index)) return false;
  Link& link = links_[index];
  if (link.heap_position != kNone) HeapErase(index);
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

void OfflineList::SetDue(uint32_t index, uint64_t due_ms) {
  RINGMQ_ASSERT(Contains(index));
  Link& link = links_[index];
  const bool was_due = link.heap_position != kNone;
  link.due_ms = due_ms;
  if (due_ms == kNever) {
    if (was_due) HeapErase(index);
  } else if (was_due) {
    HeapFix(link.heap_position);
  } else {
    HeapInsert(index);
  }
}

uint64_t OfflineList::since_ms(uint32_t index) const {
  RINGMQ_ASSERT(Contains(index));
  return links_[index].since_ms;
}

uint64_t OfflineList::due_ms(uint32_t index) const {
  RINGMQ_ASSERT(Contains(index));
  return links_[index].due_ms;
}

void OfflineList::HeapInsert(uint32_t index) {
  RINGMQ_ASSERT(links_[index].heap_position == kNone && links_[index].due_ms != kNever);
  RINGMQ_ASSERT(heap_.size() < kNone);
  heap_.push_back(index);
  const auto position = static_cast<uint32_t>(heap_.size() - 1);
  links_[index].heap_position = position;
  SiftUp(position);
}

void OfflineList::HeapErase(uint32_t index) {
  const uint32_t position = links_[index].heap_position;
  RINGMQ_ASSERT(position < heap_.size() && heap_[position] == index);
  links_[index].heap_position = kNone;
  const uint32_t last = heap_.back();
  heap_.pop_back();
  if (last == index) return;  // it was the last position
  HeapPlace(position, last);
  HeapFix(position);
}

void OfflineList::HeapFix(uint32_t position) {
  if (position > 0 && links_[heap_[position]].due_ms < links_[heap_[(position - 1) / 2]].due_ms) {
    SiftUp(position);
  } else {
    SiftDown(position);
  }
}

void OfflineList::SiftUp(uint32_t position) {
  const uint32_t index = heap_[position];
  const uint64_t due = links_[index].due_ms;
  while (position > 0) {
    const uint32_t parent = (position - 1) / 2;
    if (links_[heap_[parent]].due_ms <= due) break;
    HeapPlace(position, heap_[parent]);
    position = parent;
  }
  HeapPlace(position, index);
}

void OfflineList::SiftDown(uint32_t position) {
  const uint32_t index = heap_[position];
  const uint64_t due = links_[index].due_ms;
  const auto size = static_cast<uint32_t>(heap_.size());
  // Children of position p are 2p + 1 and 2p + 2; p < size < 2^32 - 1, so 64-bit arithmetic
  // keeps them exact.
  while (true) {
    const uint64_t left = uint64_t{position} * 2 + 1;
    if (left >= size) break;
    auto child = static_cast<uint32_t>(left);
    if (left + 1 < size && links_[heap_[child + 1]].due_ms < links_[heap_[child]].due_ms) {
      ++child;
    }
    if (due <= links_[heap_[child]].due_ms) break;
    HeapPlace(position, heap_[child]);
    position = child;
  }
  HeapPlace(position, index);
}

void OfflineList::HeapPlace(uint32_t position, uint32_t index) {
  heap_[position] = index;
  links_[index].heap_position = position;
}

}  // namespace ringmq::session
