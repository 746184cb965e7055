#include "shard/cluster_acks.h"

#include <algorithm>

#include "common/assert.h"
#include "shard/cluster_interest.h"  // NextToken

namespace ringmq::shard {
namespace {

// A subscription subject as links announce them: non-empty tokens, '>' last only.
bool IsPattern(std::string_view subject) {
  if (subject.empty() || subject.size() > 4096) return false;
  while (!subject.empty()) {
    const bool last = subject.find('.') == std::string_view::npos;
    const std::string_view token = NextToken(subject);
    if (token.empty() || (token == ">" && !last)) return false;
    if (!last && subject.empty()) return false;  // a trailing '.'
  }
  return true;
}

}  // namespace

ClusterAckOptions ClusterAckOptionsOf(const Config& config) {
  ClusterAckOptions options;
  options.retransmit_ms = config.cluster_ack_retransmit_ms;
  options.link_timeout_ms = config.cluster_ack_link_timeout_ms;
  // A heartbeat several times per timeout, so that one lost heartbeat forgets nobody.
  options.heartbeat_interval_ms = std::max<uint64_t>(config.cluster_ack_link_timeout_ms / 5, 1);
  options.pending_max = std::max<size_t>(config.cluster_ack_pending_max, 1);
  options.pending_bytes_max = std::max<size_t>(config.cluster_ack_pending_bytes_max, 1);
  return options;
}

// ---- RemoteInterest ----------------------------------------------------------------------

RemoteInterest::Slot RemoteInterest::Find(std::string_view link) const {
  const auto it = by_name_.find(HashKey(link));
  return it == by_name_.end() ? kNoSlot : it->second;
}

RemoteInterest::Result RemoteInterest::Apply(std::string_view link, char kind, uint64_t sequence,
                                             std::string_view lines, uint64_t now_ms,
                                             bool groups_only) {
  Slot slot = Find(link);
  bool known = slot != kNoSlot;
  if (!known) {
    if (by_name_.size() >= options_.links_max) {
      ++refused_links_;
      return Result::kRefused;
    }
    if (free_slots_.empty()) {
      slot = static_cast<Slot>(links_.size());
      links_.emplace_back();
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
    }
    links_[slot].name = std::string(link);
    by_name_.emplace(links_[slot].name, slot);
  }
  Link& entry = links_[slot];
  entry.heard_ms = now_ms;
  switch (kind) {
    case 'S':
      Clear(slot);
      ApplyLines(slot, lines, /*removals=*/true, groups_only);
      entry.synced = true;
      entry.next_sequence = sequence + 1;
      return Result::kApplied;
    case 's':
    case 'D': {
      const bool in_order = known && entry.synced && sequence == entry.next_sequence;
      ApplyLines(slot, lines, /*removals=*/in_order, groups_only);
      entry.next_sequence = sequence + 1;
      if (in_order) return Result::kApplied;
      entry.synced = false;
      return Result::kGap;
    }
    case 'H':
      if (known && entry.synced && sequence + 1 == entry.next_sequence) return Result::kApplied;
      entry.synced = false;
      return Result::kGap;
    default:
      return known ? Result::kApplied : Result::kGap;
  }
}

void RemoteInterest::ApplyLines(Slot slot, std::string_view lines, bool removals,
                                bool groups_only) {
  while (!lines.empty()) {
    const size_t end = lines.find('\n');
    const std::string_view line = lines.substr(0, end);
    lines = end == std::string_view::npos ? std::string_view() : lines.substr(end + 1);
    if (line.size() < 2) continue;
    const std::string_view entry = line.substr(1);
    if (entry.starts_with("q ")) {
      // "q <queue> <subject>": a queue name is one NATS token, without '*' or '>'.
      const std::string_view rest = entry.substr(2);
      const size_t space = rest.find(' ');
      if (space == 0 || space == std::string_view::npos || space > 512 ||
          rest.substr(0, space).find_first_of(".*>") != std::string_view::npos ||
          !IsPattern(rest.substr(space + 1))) {
        continue;
      }
    } else if (groups_only || !IsPattern(entry)) {
      continue;
    }
    if (line[0] == '+') Add(slot, entry);
    if (line[0] == '-' && removals) Remove(slot, entry);
  }
}

RemoteInterest::Slot RemoteInterest::EntrySlot(Slot link, std::string_view entry, bool create,
                                               std::string_view* subject) {
  if (!entry.starts_with("q ")) {
    *subject = entry;
    return link;
  }
  const std::string_view rest = entry.substr(2);
  const size_t space = rest.find(' ');
  RINGMQ_ASSERT(space != std::string_view::npos);  // ApplyLines checked the form
  const std::string_view queue = rest.substr(0, space);
  *subject = rest.substr(space + 1);
  if (const auto it = group_by_name_.find(HashKey(queue)); it != group_by_name_.end()) {
    return kGroupBit | it->second;
  }
  if (!create || group_by_name_.size() >= options_.groups_max) return kNoSlot;
  uint32_t index;
  if (free_groups_.empty()) {
    index = static_cast<uint32_t>(groups_.size());
    groups_.emplace_back();
  } else {
    index = free_groups_.back();
    free_groups_.pop_back();
  }
  RINGMQ_ASSERT((index & kGroupBit) == 0);
  groups_[index].name = std::string(queue);
  group_by_name_.emplace(groups_[index].name, index);
  return kGroupBit | index;
}

RemoteInterest::Slot RemoteInterest::FindGroup(std::string_view queue) const {
  const auto it = group_by_name_.find(HashKey(queue));
  return it == group_by_name_.end() ? kNoSlot : kGroupBit | it->second;
}

void RemoteInterest::TakeForgottenGroups(std::vector<Slot>& forgotten,
                                         std::vector<std::string>& names) {
  for (const uint32_t index : emptied_groups_) {
    Group& group = groups_[index];
    if (group.name.empty() || group.entries != 0) continue;  // taken already, or back
    group_by_name_.erase(group.name);
    names.push_back(std::move(group.name));
    group = Group{};
    free_groups_.push_back(index);
    forgotten.push_back(kGroupBit | index);
  }
  emptied_groups_.clear();
}

void RemoteInterest::Add(Slot slot, std::string_view entry) {
  Link& link = links_[slot];
  if (link.subjects.contains(HashKey(entry))) return;
  std::string_view subject;
  const Slot trie_slot = entries_ >= options_.subjects_max
                             ? kNoSlot
                             : EntrySlot(slot, entry, /*create=*/true, &subject);
  if (trie_slot == kNoSlot) {
    ++refused_subjects_;
    return;
  }
  link.subjects.emplace(entry);
  ++entries_;
  if (IsGroup(trie_slot)) ++groups_[trie_slot & ~kGroupBit].entries;
  Node* node = &root_;
  std::string_view rest = subject;
  while (!rest.empty()) {
    const std::string_view token = NextToken(rest);
    auto it = node->children.find(HashKey(token));
    if (it == node->children.end()) {
      auto child = std::make_unique<Node>();
      child->parent = node;
      child->token = std::string(token);
      it = node->children.emplace(child->token, std::move(child)).first;
    }
    node = it->second.get();
  }
  node->links.push_back(trie_slot);
}

void RemoteInterest::Remove(Slot slot, std::string_view entry) {
  Link& link = links_[slot];
  const auto found = link.subjects.find(HashKey(entry));
  if (found == link.subjects.end()) return;
  std::string_view subject;
  const Slot trie_slot = EntrySlot(slot, entry, /*create=*/false, &subject);
  RINGMQ_ASSERT(trie_slot != kNoSlot);  // a group lives while an entry names it
  RINGMQ_ASSERT(entries_ > 0);
  --entries_;
  if (IsGroup(trie_slot)) {
    Group& group = groups_[trie_slot & ~kGroupBit];
    RINGMQ_ASSERT(group.entries > 0);
    if (--group.entries == 0) emptied_groups_.push_back(trie_slot & ~kGroupBit);
  }
  Node* node = &root_;
  std::string_view rest = subject;
  while (!rest.empty() && node != nullptr) {
    const auto it = node->children.find(HashKey(NextToken(rest)));
    node = it == node->children.end() ? nullptr : it->second.get();
  }
  RINGMQ_ASSERT(node != nullptr);  // every subject of a link is in the trie
  // One occurrence: a group is there once per member link announcing this subject.
  const auto occurrence = std::find(node->links.begin(), node->links.end(), trie_slot);
  RINGMQ_ASSERT(occurrence != node->links.end());
  node->links.erase(occurrence);
  link.subjects.erase(found);  // last: `subject` and `entry` may view its string
  // Prune the nodes left empty, bottom up (their depth is the subject's tokens: a loop).
  while (node != &root_ && node->links.empty() && node->children.empty()) {
    Node* parent = node->parent;
    parent->children.erase(node->token);  // destroys `node`
    node = parent;
  }
}

void RemoteInterest::Clear(Slot slot) {
  std::vector<std::string> subjects(links_[slot].subjects.begin(), links_[slot].subjects.end());
  for (const std::string& subject : subjects) Remove(slot, subject);
}

void RemoteInterest::Match(std::string_view subject, std::vector<Slot>& out) const {
  out.clear();
  tokens_.clear();
  while (!subject.empty()) tokens_.push_back(NextToken(subject));
  stack_.clear();
  stack_.emplace_back(&root_, 0);
  while (!stack_.empty()) {
    const auto [node, depth] = stack_.back();
    stack_.pop_back();
    if (depth == tokens_.size()) {
      out.insert(out.end(), node->links.begin(), node->links.end());
      continue;
    }
    // '>' matches one token or more: here at least one is left.
    if (const auto gt = node->children.find(">"); gt != node->children.end()) {
      out.insert(out.end(), gt->second->links.begin(), gt->second->links.end());
    }
    if (const auto star = node->children.find("*"); star != node->children.end()) {
      stack_.emplace_back(star->second.get(), depth + 1);
    }
    if (const auto literal = node->children.find(HashKey(tokens_[depth]));
        literal != node->children.end() && tokens_[depth] != "*" && tokens_[depth] != ">") {
      stack_.emplace_back(literal->second.get(), depth + 1);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

void RemoteInterest::Expire(uint64_t now_ms, std::vector<Slot>& forgotten,
                            std::vector<std::string>& names) {
  for (Slot slot = 0; slot < links_.size(); ++slot) {
    Link& link = links_[slot];
    if (link.name.empty() || link.heard_ms + options_.link_timeout_ms > now_ms) continue;
    Clear(slot);
    by_name_.erase(link.name);
    names.push_back(std::move(link.name));
    link = Link{};
    free_slots_.push_back(slot);
    forgotten.push_back(slot);
  }
}

void RemoteInterest::TouchAll(uint64_t now_ms) {
  for (Link& link : links_) link.heard_ms = now_ms;
}

// ---- PendingAcks -------------------------------------------------------------------------

uint64_t PendingAcks::Add(message::MessageRef message, std::span<const Slot> links,
                          uint64_t now_ms) {
  RINGMQ_ASSERT(!links.empty() && message.get() != nullptr);
  if (entries_.size() >= options_.window()) return 0;
  bytes_ += message->payload().size();
  ++live_;
  Entry& entry = entries_.emplace_back();
  entry.id = next_id_++;
  entry.message = std::move(message);
  entry.missing.assign(links.begin(), links.end());
  entry.due_ms = now_ms + options_.retransmit_ms;
  next_due_ms_ = std::min(next_due_ms_, entry.due_ms);
  RINGMQ_ASSERT(entry.id == front_id_ + entries_.size() - 1);
  return entry.id;
}

PendingAcks::Entry* PendingAcks::Find(uint64_t id) {
  if (id < front_id_ || id - front_id_ >= entries_.size()) return nullptr;
  Entry& entry = entries_[id - front_id_];
  RINGMQ_ASSERT(entry.id == id);
  return entry.done ? nullptr : &entry;
}

bool PendingAcks::complete(uint64_t id) const {
  if (id < front_id_ || id - front_id_ >= entries_.size()) return true;
  return entries_[id - front_id_].done;
}

void PendingAcks::Complete(Entry& entry) {
  RINGMQ_ASSERT(!entry.done && live_ > 0);
  bytes_ -= entry.message->payload().size();
  --live_;
  entry.done = true;
  entry.message.reset();
  entry.missing.clear();
}

void PendingAcks::PopDone() {
  while (!entries_.empty() && entries_.front().done) {
    entries_.pop_front();
    ++front_id_;
  }
}

bool PendingAcks::Ack(uint64_t id, Slot link) {
  Entry* entry = Find(id);
  if (entry == nullptr) return false;
  const auto it = std::find(entry->missing.begin(), entry->missing.end(), link);
  if (it == entry->missing.end()) return false;
  entry->missing.erase(it);
  if (!entry->missing.empty()) return false;
  Complete(*entry);
  PopDone();
  return true;
}

size_t PendingAcks::Forget(Slot link) {
  size_t completed = 0;
  for (Entry& entry : entries_) {
    if (entry.done) continue;
    const auto it = std::find(entry.missing.begin(), entry.missing.end(), link);
    if (it == entry.missing.end()) continue;
    entry.missing.erase(it);
    if (entry.missing.empty()) {
      Complete(entry);
      ++completed;
    }
  }
  PopDone();
  return completed;
}

void PendingAcks::Drop(uint64_t id) {
  if (Entry* entry = Find(id); entry != nullptr) {
    Complete(*entry);
    PopDone();
  }
}

void PendingAcks::DueNow(uint64_t now_ms) {
  for (Entry& entry : entries_) {
    if (!entry.done) entry.due_ms = now_ms;
  }
  if (live_ > 0) next_due_ms_ = now_ms;
}

// ---- SeenIds -----------------------------------------------------------------------------

void SeenIds::Forget(std::string_view origin) {
  // Rare (a link forgotten): a pass over at most origins_max windows.
  for (auto it = origins_.begin(); it != origins_.end();) {
    const std::string_view key = it->first;
    if (key == origin || (key.size() > origin.size() && key.starts_with(origin) &&
                          key[origin.size()] == '\n')) {
      origins_.erase(it++);
    } else {
      ++it;
    }
  }
}

SeenIds::Seen SeenIds::Check(std::string_view origin, uint64_t id) {
  const size_t window = options_.window();
  auto it = origins_.find(HashKey(origin));
  if (it == origins_.end()) {
    if (origins_.size() >= options_.origins_max) return Seen::kUnknown;
    it = origins_.emplace(std::string(origin), Window{}).first;
    it->second.bits.assign((window + 63) / 64, 0);
    it->second.highest = id;
    const size_t bit = id % window;
    it->second.bits[bit / 64] |= uint64_t{1} << (bit % 64);
    return Seen::kNew;
  }
  Window& w = it->second;
  if (id > w.highest) {
    // Ids (highest, id] enter the window: their bits are cleared (at most the whole window).
    if (id - w.highest >= window) {
      std::fill(w.bits.begin(), w.bits.end(), 0);
    } else {
      // A word at a time: a receiver may see one id in a thousand of its origin's.
      for (uint64_t cleared = w.highest + 1; cleared < id;) {
        const size_t bit = cleared % window;
        const uint64_t count = std::min<uint64_t>({64 - bit % 64, id - cleared, window - bit});
        const uint64_t mask =
            count == 64 ? ~uint64_t{0} : ((uint64_t{1} << count) - 1) << (bit % 64);
        w.bits[bit / 64] &= ~mask;
        cleared += count;
      }
    }
    w.highest = id;
    const size_t bit = id % window;
    w.bits[bit / 64] |= uint64_t{1} << (bit % 64);
    return Seen::kNew;
  }
  if (w.highest - id >= window) return Seen::kUnknown;
  const size_t bit = id % window;
  uint64_t& word = w.bits[bit / 64];
  const uint64_t mask = uint64_t{1} << (bit % 64);
  if ((word & mask) != 0) return Seen::kDuplicate;
  word |= mask;
  return Seen::kNew;
}

}  // namespace ringmq::shard
