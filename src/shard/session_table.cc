#include "shard/session_table.h"

namespace ringmq::shard {

uint32_t SessionTable::Create(const SharedString& client_id, bool clean_session,
                              const session::SessionLimits& limits) {
  uint32_t index = 0;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  SessionEntry& entry = slots_[index];
  RINGMQ_ASSERT(!entry.session.has_value());
  entry.session.emplace(client_id, clean_session, limits);
  entry.connection = nullptr;
  entry.dirty = false;
  const bool inserted = by_client_id_.insert(index).second;
  RINGMQ_ASSERT(inserted);  // one session per client id
  return index;
}

void SessionTable::Destroy(uint32_t index) {
  SessionEntry& entry = (*this)[index];
  RINGMQ_ASSERT(entry.session.has_value() && entry.connection == nullptr);
  by_client_id_.erase(index);  // while its session, which the hash reads, is alive
  entry.session.reset();
  entry.acl.reset();
  entry.bridge = false;
  ++entry.generation;  // handles still in mailboxes or the trie's readers become stale
  free_slots_.push_back(index);
}

}  // namespace ringmq::shard
