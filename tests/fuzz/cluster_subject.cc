// libFuzzer target for the MQTT topic/filter <-> NATS subject mapping (src/cluster/subject.h).
//
// Input: the first byte picks the prefix ("", "mqtt" or "a.b") and the bound on subjects (the
// default or a small one, so that kTooLong is reached); the rest is a topic and a filter
// separated by the first NUL (no valid topic or filter holds U+0000, MQTT-1.5.3-2). Checks:
//   - the whole rest, read as a subject from NATS, never crashes SubjectToTopic; a subject it
//     accepts gives a valid topic name whose subject is that subject again;
//   - a valid topic name that TopicToSubject carries comes back from SubjectToTopic unchanged,
//     within the bound and the growth bound of the header; one it refuses leaves `out` as it was;
//   - FilterToSubjects never crashes on any filter; for a valid filter that matches the topic
//     (auth::TopicMatches, the matcher session delivery uses) and a carried topic, one of the
//     subjects it gives matches the topic's subject (tests/cluster/nats_subject_matcher.h).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../cluster/nats_subject_matcher.h"
#include "auth/acl.h"
#include "cluster/subject.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"

namespace ringmq::cluster {
namespace {

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "subject invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

constexpr std::string_view kPrefixes[] = {"", "mqtt", "a.b"};

void CheckSubject(std::string_view subject, std::string_view prefix) {
  std::string topic = "held";
  if (!SubjectToTopic(subject, prefix, topic)) {
    FUZZ_CHECK(topic == "held");
    return;
  }
  FUZZ_CHECK(topic.starts_with("held"));
  topic.erase(0, 4);
  FUZZ_CHECK(mqtt::ValidateTopicName(topic) == mqtt::Violation::kNone);
  std::string back;
  const SubjectMapping unbounded{.prefix = prefix, .max_subject_bytes = SIZE_MAX};
  FUZZ_CHECK(TopicToSubject(topic, unbounded, back) == Uncarried::kNone);
  FUZZ_CHECK(back == subject);
}

// The subject of `topic`, or "" when it is not carried.
std::string CheckTopic(std::string_view topic, const SubjectMapping& mapping) {
  std::string subject = "held";
  const Uncarried why = TopicToSubject(topic, mapping, subject);
  if (why != Uncarried::kNone) {
    FUZZ_CHECK(subject == "held");
    return "";
  }
  FUZZ_CHECK(subject.starts_with("held"));
  subject.erase(0, 4);
  FUZZ_CHECK(!subject.empty() && subject.size() <= mapping.max_subject_bytes);
  FUZZ_CHECK(subject.size() <= mapping.prefix.size() + 1 + 2 * topic.size() + 1);
  std::string back;
  FUZZ_CHECK(SubjectToTopic(subject, mapping.prefix, back));
  FUZZ_CHECK(back == topic);
  return subject;
}

void CheckFilter(std::string_view filter, std::string_view topic, std::string_view subject,
                 const SubjectMapping& mapping) {
  std::string cover = "held";
  const FilterCover count = FilterToSubjects(filter, mapping, cover);
  FUZZ_CHECK(cover.starts_with("held"));
  cover.erase(0, 4);
  FUZZ_CHECK((count == FilterCover::kNothing) == cover.empty());
  FUZZ_CHECK(cover.size() <= mapping.max_subject_bytes);
  std::string_view parent;
  if (count == FilterCover::kWithParent) {
    parent = ParentSubject(cover);
  }
  const bool valid = mqtt::ValidateTopicFilter(filter) == mqtt::Violation::kNone;
  if (!valid || subject.empty() || !auth::TopicMatches(filter, topic)) {
    return;
  }
  FUZZ_CHECK(count != FilterCover::kNothing);
  FUZZ_CHECK(reference::NatsMatches(cover, subject) ||
             (!parent.empty() && reference::NatsMatches(parent, subject)));
}

}  // namespace
}  // namespace ringmq::cluster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::cluster;  // NOLINT: a fuzz entry point
  if (size == 0) {
    return 0;
  }
  SubjectMapping mapping;
  mapping.prefix = kPrefixes[data[0] % 3];
  if (data[0] & 0x80) {
    mapping.max_subject_bytes = mapping.prefix.size() + 1 + (data[0] & 0x0f);
  }
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  CheckSubject(rest, mapping.prefix);
  const size_t nul = rest.find('\0');
  const std::string_view topic = rest.substr(0, nul);
  const std::string_view filter =
      nul == std::string_view::npos ? std::string_view("#") : rest.substr(nul + 1);
  std::string subject;
  if (ringmq::mqtt::ValidateTopicName(topic) == ringmq::mqtt::Violation::kNone) {
    subject = CheckTopic(topic, mapping);
  }
  CheckFilter(filter, topic, subject, mapping);
  return 0;
}
