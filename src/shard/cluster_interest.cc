#include "shard/cluster_interest.h"

#include "common/assert.h"

namespace ringmq::shard {
namespace {

// The next token of `text` (up to '.'), removed from it.
std::string_view NextToken(std::string_view& text) {
  const size_t dot = text.find('.');
  const std::string_view token = text.substr(0, dot);
  text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  return token;
}

}  // namespace

bool NatsSubjectMatches(std::string_view pattern, std::string_view subject) {
  while (true) {
    if (pattern.empty() || subject.empty()) return pattern.empty() && subject.empty();
    const std::string_view want = NextToken(pattern);
    if (want == ">") return true;  // one token or more: `subject` is not empty here
    const std::string_view have = NextToken(subject);
    if (want != "*" && want != have) return false;
  }
}

void ClusterInterest::Acquire(std::string_view filter) {
  scratch_.clear();
  switch (cluster::FilterToSubjects(filter, mapping_, scratch_)) {
    case cluster::FilterCover::kNothing:
      return;
    case cluster::FilterCover::kOne:
      AddSubject(scratch_);
      return;
    case cluster::FilterCover::kWithParent: {
      const std::string subjects = scratch_;  // AddSubject does not touch scratch_; clarity
      AddSubject(subjects);
      AddSubject(cluster::ParentSubject(subjects));
      return;
    }
  }
}

void ClusterInterest::Release(std::string_view filter) {
  scratch_.clear();
  switch (cluster::FilterToSubjects(filter, mapping_, scratch_)) {
    case cluster::FilterCover::kNothing:
      return;
    case cluster::FilterCover::kOne:
      RemoveSubject(scratch_);
      return;
    case cluster::FilterCover::kWithParent: {
      const std::string subjects = scratch_;
      RemoveSubject(subjects);
      RemoveSubject(cluster::ParentSubject(subjects));
      return;
    }
  }
}

void ClusterInterest::AddSubject(std::string_view subject) {
  auto [it, added] = subjects_.try_emplace(std::string(subject));
  if (!added) {
    ++it->second.count;
    return;
  }
  const absl::StatusOr<uint64_t> sid = link_.Subscribe(subject, /*queue_group=*/{});
  if (!sid.ok()) {
    // FilterToSubjects makes valid subjects only; a stopped link refuses everything.
    ++subscribe_failures_;
    subjects_.erase(it);
    return;
  }
  it->second = Entry{.count = 1, .sid = *sid};
  by_sid_.emplace(*sid, std::string(subject));
}

void ClusterInterest::RemoveSubject(std::string_view subject) {
  const auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;  // its Subscribe failed
  RINGMQ_ASSERT(it->second.count > 0);
  if (--it->second.count != 0) return;
  link_.Unsubscribe(it->second.sid);
  by_sid_.erase(it->second.sid);
  subjects_.erase(it);
}

uint32_t ClusterInterest::count(std::string_view subject) const {
  const auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.count;
}

bool ClusterInterest::KeepCopy(uint64_t sid, std::string_view subject) const {
  for (auto it = by_sid_.begin(); it != by_sid_.end() && it->first < sid; ++it) {
    if (NatsSubjectMatches(it->second, subject)) return false;
  }
  return by_sid_.contains(sid);
}

}  // namespace ringmq::shard
