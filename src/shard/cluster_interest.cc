#include "shard/cluster_interest.h"

#include "common/assert.h"

namespace ringmq::shard {
namespace {

// A subscription subject with a '*' or '>' token.
bool HasWildcard(std::string_view subject) {
  while (!subject.empty()) {
    const std::string_view token = NextToken(subject);
    if (token == "*" || token == ">") return true;
  }
  return false;
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
  live_sids_.insert(*sid);
  if (HasWildcard(subject)) wildcard_sids_.emplace(*sid, std::string(subject));
  if (observer_ != nullptr) observer_->OnSubjectChange(subject, /*added=*/true);
}

void ClusterInterest::RemoveSubject(std::string_view subject) {
  const auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;  // its Subscribe failed
  RINGMQ_ASSERT(it->second.count > 0);
  if (--it->second.count != 0) return;
  link_.Unsubscribe(it->second.sid);
  live_sids_.erase(it->second.sid);
  wildcard_sids_.erase(it->second.sid);
  if (observer_ != nullptr) observer_->OnSubjectChange(subject, /*added=*/false);
  subjects_.erase(it);
}

uint32_t ClusterInterest::count(std::string_view subject) const {
  const auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.count;
}

bool ClusterInterest::KeepCopy(uint64_t sid, std::string_view subject) const {
  if (!live_sids_.contains(sid)) return false;
  // The literal subscription of the message's own subject, if any (a wildcard copy's rival).
  if (const auto literal = subjects_.find(subject);
      literal != subjects_.end() && literal->second.sid < sid) {
    return false;
  }
  for (auto it = wildcard_sids_.begin(); it != wildcard_sids_.end() && it->first < sid; ++it) {
    if (NatsSubjectMatches(it->second, subject)) return false;
  }
  return true;
}

}  // namespace ringmq::shard
