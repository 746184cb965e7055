#include "shard/cluster_share.h"

#include "cluster/control.h"
#include "common/assert.h"

namespace ringmq::shard {
namespace {

void AppendEncoded(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
        (byte >= '0' && byte <= '9')) {
      out.push_back(c);
      continue;
    }
    out.push_back('_');
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xF]);
  }
}

}  // namespace

void AppendQueueName(std::string_view share_name, std::string_view filter, std::string& out) {
  AppendEncoded(share_name, out);
  out.push_back('-');
  AppendEncoded(filter, out);
}

std::string& ClusterShares::KeyOf(std::string_view share_name, std::string_view filter) {
  RINGMQ_ASSERT(!share_name.empty() && share_name.find('/') == std::string_view::npos);
  key_scratch_.clear();
  key_scratch_.append(share_name).push_back('/');
  key_scratch_.append(filter);
  return key_scratch_;
}

void ClusterShares::Acquire(std::string_view share_name, std::string_view filter) {
  auto [it, added] = groups_.try_emplace(KeyOf(share_name, filter));
  ++it->second.count;
  if (!added) return;
  it->second.share_name_size = share_name.size();
  SubscribeCover(it, share_name, filter);
}

void ClusterShares::SubscribeCover(Map::iterator it, std::string_view share_name,
                                   std::string_view filter) {
  subject_scratch_.clear();
  const cluster::FilterCover cover = cluster::FilterToSubjects(filter, mapping_, subject_scratch_);
  if (cover == cluster::FilterCover::kNothing) return;  // no carried topic matches it
  queue_scratch_.clear();
  AppendQueueName(share_name, filter, queue_scratch_);
  std::array<std::string, 2> subjects;
  subjects[0] = subject_scratch_;
  if (cover == cluster::FilterCover::kWithParent) {
    subjects[1] = std::string(cluster::ParentSubject(subject_scratch_));
  }
  for (size_t i = 0; i < subjects.size() && !subjects[i].empty(); ++i) {
    const absl::StatusOr<uint64_t> sid = link_.Subscribe(subjects[i], queue_scratch_);
    if (!sid.ok()) {
      ++subscribe_failures_;
      continue;
    }
    RINGMQ_ASSERT(*sid != 0);
    it->second.sids[i] = *sid;
    by_sid_.emplace(*sid, &*it);  // map nodes do not move
    std::string& line = it->second.lines[i];
    line.append("q ").append(queue_scratch_).push_back(' ');
    line.append(subjects[i]);
    if (observer_ != nullptr) observer_->OnSubjectChange(line, /*added=*/true);
  }
  if (observer_ == nullptr || (it->second.sids[0] == 0 && it->second.sids[1] == 0)) return;
  // Retransmits to the group: the same queue group, so NATS picks one member link.
  subject_scratch_.clear();
  cluster::AppendControlSubject(mapping_.prefix, "rtq", {queue_scratch_}, subject_scratch_);
  const absl::StatusOr<uint64_t> sid = link_.Subscribe(subject_scratch_, queue_scratch_);
  if (!sid.ok()) {
    ++subscribe_failures_;
    return;
  }
  it->second.sids[2] = *sid;
  by_sid_.emplace(*sid, &*it);
  ++retransmit_subscriptions_;
}

void ClusterShares::Release(std::string_view share_name, std::string_view filter) {
  const auto it = groups_.find(KeyOf(share_name, filter));
  if (it == groups_.end()) return;  // not acquired: nothing to undo
  RINGMQ_ASSERT(it->second.count > 0);
  if (--it->second.count != 0) return;
  for (const uint64_t sid : it->second.sids) {
    if (sid == 0) continue;
    link_.Unsubscribe(sid);
    by_sid_.erase(sid);
  }
  if (it->second.sids[2] != 0) --retransmit_subscriptions_;
  for (const std::string& line : it->second.lines) {
    if (!line.empty() && observer_ != nullptr) observer_->OnSubjectChange(line, /*added=*/false);
  }
  groups_.erase(it);
}

bool ClusterShares::Find(uint64_t sid, Group& group) const {
  const auto it = by_sid_.find(sid);
  if (it == by_sid_.end()) return false;
  const std::string_view key = it->second->first;
  const size_t split = it->second->second.share_name_size;
  group.share_name = key.substr(0, split);
  group.filter = key.substr(split + 1);
  group.retransmit = it->second->second.sids[2] == sid;
  return true;
}

uint32_t ClusterShares::count(std::string_view share_name, std::string_view filter) const {
  std::string key;
  key.append(share_name).push_back('/');
  key.append(filter);
  const auto it = groups_.find(key);
  return it == groups_.end() ? 0 : it->second.count;
}

}  // namespace ringmq::shard
