// Topic name and topic filter rules (§4.7), the split of a topic or filter into its levels
// (§4.7.1.1), and UTF-8 string rules (§1.5.3).
//
// Thread safety: the functions are stateless, safe from any thread; a LevelSplitter is used by
// one thread.
#ifndef RINGMQ_MQTT_TOPIC_H_
#define RINGMQ_MQTT_TOPIC_H_

#include <cstddef>
#include <optional>
#include <string_view>

#include "mqtt/violation.h"

namespace ringmq::mqtt {

// Topic names and filters with more levels than this are refused (kTooManyTopicLevels): a bound
// on the work one PUBLISH or SUBSCRIBE can cause in the trie.
inline constexpr size_t kMaxTopicLevels = 128;

// Well-formed UTF-8 (no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF,
// MQTT-1.5.3-1) and no U+0000 (MQTT-1.5.3-2). Returns kNone when valid.
Violation ValidateUtf8(std::string_view text);

// A PUBLISH / will topic: non-empty (MQTT-4.7.3-1), valid UTF-8, no '+' or '#' (MQTT-3.3.2-2).
Violation ValidateTopicName(std::string_view topic);

// A SUBSCRIBE / UNSUBSCRIBE filter: non-empty, valid UTF-8, '#' only as the whole last level
// (MQTT-4.7.1-2), '+' only as a whole level (MQTT-4.7.1-3).
Violation ValidateTopicFilter(std::string_view filter);

// A shared subscription "$share/{ShareName}/{filter}" (5.0 §4.8.2), split into its parts (views
// into the string given).
struct SharedFilter {
  std::string_view share_name;
  std::string_view filter;
};

// A filter that starts with "$share/" is a shared subscription at every protocol level (as in
// Mosquitto, FlashMQ and EMQX, 3.1 and 3.1.1 clients may use it too).
inline bool IsSharedFilter(std::string_view filter) { return filter.starts_with("$share/"); }

// Splits a shared subscription filter that already passed ValidateTopicFilter: the ShareName is
// at least one character without '/', '+' or '#' (5.0:MQTT-4.8.2-1, MQTT-4.8.2-2), followed by
// '/' and a non-empty topic filter. nullopt when `filter` is not of that form (including when it
// does not start with "$share/").
std::optional<SharedFilter> ParseSharedFilter(std::string_view filter);

// "$SYS" or "$SYS/...": the broker's own topics. Clients may read them but not write them: a
// client's PUBLISH there is dropped and a will there is refused at CONNECT (as Mosquitto denies
// every client write to $SYS); MQTT-4.7.2-1 keeps wildcards at the first level off them.
bool IsSysTopic(std::string_view topic);

// Splits a topic or filter into its levels (the key of each level of the subscription trie and
// of the retained store): '/' separates, levels may be empty ("/a" has an empty
// first level), and the empty string is one empty level.
class LevelSplitter {
 public:
  explicit LevelSplitter(std::string_view text) : rest_(text) {}

  // Stores the next level in `level`; false once every level was returned.
  bool Next(std::string_view& level) {
    if (done_) {
      return false;
    }
    const size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      level = rest_;
      done_ = true;
    } else {
      level = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_TOPIC_H_
