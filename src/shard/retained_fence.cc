#include "shard/retained_fence.h"

#include <utility>

namespace ringmq::shard {

RetainedFence::RetainedFence(uint32_t shard, uint32_t shard_count, size_t max_entries)
    : shard_(shard), max_entries_(max_entries), origins_(shard_count) {
  RINGMQ_ASSERT(shard < shard_count);
  RINGMQ_ASSERT(max_entries >= 1);
}

RetainedFence::Key RetainedFence::KeyOf(const Pending& pending) {
  const std::string_view topic = pending.retained->topic();
  return Key{.topic = topic,
             .topic_hash = absl::Hash<std::string_view>{}(topic),
             .session = pending.session,
             .generation = pending.generation,
             .origin = pending.retained->origin_shard()};
}

RetainedFence::RecordResult RetainedFence::Record(uint32_t session, uint32_t generation,
                                                  const message::Message& retained) {
  const uint16_t origin = retained.origin_shard();
  const uint64_t sequence = retained.sequence();
  if (sequence == 0 || origin == shard_) return RecordResult::kNotNeeded;
  RINGMQ_ASSERT(origin < origins_.size());
  Origin& state = origins_[origin];
  // Every live copy from `origin` with a sequence <= arrived that was pushed to us is drained.
  if (sequence <= state.arrived) return RecordResult::kNotNeeded;
  if (pending_count_ >= max_entries_) return RecordResult::kFull;

  Pending pending{message::MessageRef::Share(const_cast<message::Message*>(&retained)), session,
                  generation};
  const Key key = KeyOf(pending);
  auto [it, inserted] = entries_.try_emplace(key, Value{.retained = {}, .sequence = sequence});
  if (inserted) {
    // The key's topic must view the bytes of the message the entry holds.
    it->second.retained = message::MessageRef::Share(pending.retained.get());
    ++state.entries;
    entry_count_ = entries_.size();
  } else if (sequence > it->second.sequence) {
    it->second.sequence = sequence;
  }
  if (state.pending == nullptr) state.pending = std::make_unique<std::deque<Pending>>();
  state.pending->push_back(std::move(pending));
  ++pending_count_;
  state.due = true;
  requests_due_ = true;
  return RecordResult::kRecorded;
}

bool RetainedFence::Superseded(const Probe& probe, uint32_t session, uint32_t generation) const {
  RINGMQ_ASSERT(probe.active_);
  const Key key{.topic = probe.topic_,
                .topic_hash = probe.topic_hash_,
                .session = session,
                .generation = generation,
                .origin = probe.origin_};
  const auto it = entries_.find(key);
  return it != entries_.end() && probe.sequence_ <= it->second.sequence;
}

void RetainedFence::OnReply(uint32_t origin, uint64_t last_sequence) {
  RINGMQ_ASSERT(origin < origins_.size() && origin != shard_);
  Origin& state = origins_[origin];
  RINGMQ_ASSERT(state.outstanding);  // one request per reply
  RINGMQ_ASSERT(last_sequence >= state.arrived);
  state.outstanding = false;
  state.arrived = last_sequence;
  size_t popped = 0;
  while (state.pending != nullptr && !state.pending->empty()) {
    Pending& front = state.pending->front();
    const uint64_t sequence = front.retained->sequence();
    if (sequence > last_sequence) {
      // Recorded after the request was sent (those before it are all covered: see the header).
      RINGMQ_ASSERT(popped >= state.covered);
      break;
    }
    // Absent if an earlier item of the same key (a repeated subscription) dropped it already.
    const auto it = entries_.find(KeyOf(front));
    if (it != entries_.end() && it->second.sequence <= last_sequence) {
      entries_.erase(it);  // the key viewed this entry's own message: erased before it goes
      --state.entries;
    }
    state.pending->pop_front();
    --pending_count_;
    ++popped;
  }
  entry_count_ = entries_.size();
  state.covered = 0;
  // What is left was recorded after the request: it needs a request of its own.
  state.due = state.pending != nullptr && !state.pending->empty();
  if (state.due) requests_due_ = true;
}

}  // namespace ringmq::shard
