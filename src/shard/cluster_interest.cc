#include "shard/cluster_interest.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/absl_view.h"
#include "common/assert.h"

namespace ringmq::shard {
struct SubjectIndex::Node {
  absl::flat_hash_map<std::string, std::unique_ptr<Node>> children;  // tokens, '*' and '>'
  uint64_t sid = 0;  // the subject that ends here (0: none)
};

SubjectIndex::SubjectIndex() : root_(std::make_unique<Node>()) {}
SubjectIndex::~SubjectIndex() = default;

void SubjectIndex::Insert(std::string_view subject, uint64_t sid) {
  RINGMQ_ASSERT(sid != 0 && !subject.empty());
  Node* node = root_.get();
  while (!subject.empty()) {
    const std::string_view token = NextToken(subject);
    auto it = node->children.find(Sv(token));
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(token), std::make_unique<Node>()).first;
      ++node_count_;
    }
    node = it->second.get();
  }
  RINGMQ_ASSERT(node->sid == 0);  // ClusterInterest subscribes each subject once
  node->sid = sid;
}

void SubjectIndex::Erase(std::string_view subject) {
  // The path, then pruning bottom-up: iterative (subject depth is bounded by the filter's, but
  // no recursion on it all the same).
  std::vector<std::pair<Node*, std::string_view>> path;
  Node* node = root_.get();
  while (!subject.empty()) {
    const std::string_view token = NextToken(subject);
    const auto it = node->children.find(Sv(token));
    if (it == node->children.end()) return;  // never inserted
    path.emplace_back(node, token);
    node = it->second.get();
  }
  node->sid = 0;
  for (auto step = path.rbegin(); step != path.rend(); ++step) {
    const auto it = step->first->children.find(Sv(step->second));
    if (it->second->sid != 0 || !it->second->children.empty()) break;
    step->first->children.erase(it);
    --node_count_;
  }
}

uint64_t SubjectIndex::LowestMatch(std::string_view subject) const {
  uint64_t lowest = 0;
  const auto consider = [&lowest](uint64_t sid) {
    if (sid != 0 && (lowest == 0 || sid < lowest)) lowest = sid;
  };
  frontier_.clear();
  frontier_.push_back(root_.get());
  size_t visits = 0;
  while (!subject.empty() && !frontier_.empty()) {
    const std::string_view token = NextToken(subject);
    next_.clear();
    for (const Node* node : frontier_) {
      ++visits;
      if (node->children.empty()) continue;
      // '>' matches this token and every one after it.
      if (const auto it = node->children.find(Sv(">"));
          it != node->children.end()) {
        consider(it->second->sid);
      }
      if (const auto it = node->children.find(Sv(token)); it != node->children.end()) {
        next_.push_back(it->second.get());
      }
      if (token != "*") {  // a published subject has no wildcards; do not add a node twice
        if (const auto it = node->children.find(Sv("*"));
            it != node->children.end()) {
          next_.push_back(it->second.get());
        }
      }
    }
    frontier_.swap(next_);
  }
  if (subject.empty()) {
    for (const Node* node : frontier_) {
      ++visits;
      consider(node->sid);
    }
  }
  last_match_visits_ = visits;
  return lowest;
}

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
  index_.Insert(subject, *sid);
  if (observer_ != nullptr) observer_->OnSubjectChange(subject, /*added=*/true);
}

void ClusterInterest::RemoveSubject(std::string_view subject) {
  const auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;  // its Subscribe failed
  RINGMQ_ASSERT(it->second.count > 0);
  if (--it->second.count != 0) return;
  link_.Unsubscribe(it->second.sid);
  live_sids_.erase(it->second.sid);
  index_.Erase(subject);
  if (observer_ != nullptr) observer_->OnSubjectChange(subject, /*added=*/false);
  subjects_.erase(it);
}

uint32_t ClusterInterest::count(std::string_view subject) const {
  const auto it = subjects_.find(subject);
  return it == subjects_.end() ? 0 : it->second.count;
}

bool ClusterInterest::KeepCopy(uint64_t sid, std::string_view subject) const {
  if (!live_sids_.contains(sid)) return false;
  // The lowest live sid whose subject matches; the copy's own matches, so it is kept only when
  // no lower one does.
  const uint64_t lowest = index_.LowestMatch(subject);
  return lowest == 0 || lowest >= sid;
}

}  // namespace ringmq::shard
