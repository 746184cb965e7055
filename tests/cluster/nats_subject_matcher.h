// A tiny NATS subject matcher for the tests of src/cluster/subject.h (tests/cluster/subject_test.cc
// and the fuzz target tests/fuzz/cluster_subject.cc), straight from the NATS client protocol
// ("Subject-based messaging": tokens separated by '.', '*' matches exactly one token, '>' as the
// last token matches one or more tokens). Slow and simple on purpose.
//
// Thread safety: stateless.
#ifndef RINGMQ_TESTS_CLUSTER_NATS_SUBJECT_MATCHER_H_
#define RINGMQ_TESTS_CLUSTER_NATS_SUBJECT_MATCHER_H_

#include <string_view>
#include <vector>

namespace ringmq::cluster::reference {

inline std::vector<std::string_view> SplitTokens(std::string_view subject) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  while (true) {
    const size_t dot = subject.find('.', start);
    if (dot == std::string_view::npos) {
      tokens.push_back(subject.substr(start));
      return tokens;
    }
    tokens.push_back(subject.substr(start, dot - start));
    start = dot + 1;
  }
}

// The tokens of `pattern` (a subscription subject, wildcards allowed) match the tokens of a
// literal subject (both from SplitTokens): for callers that match many pairs and split each
// subject once.
inline bool NatsTokensMatch(const std::vector<std::string_view>& p,
                            const std::vector<std::string_view>& s) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">" && i + 1 == p.size()) {
      return s.size() > i;  // one token or more
    }
    if (i >= s.size()) {
      return false;
    }
    if (p[i] != "*" && p[i] != s[i]) {
      return false;
    }
  }
  return p.size() == s.size();
}

// `pattern` (a subscription subject, wildcards allowed) matches literal subject `subject`.
inline bool NatsMatches(std::string_view pattern, std::string_view subject) {
  return NatsTokensMatch(SplitTokens(pattern), SplitTokens(subject));
}

}  // namespace ringmq::cluster::reference

#endif  // RINGMQ_TESTS_CLUSTER_NATS_SUBJECT_MATCHER_H_
