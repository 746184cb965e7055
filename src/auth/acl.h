// Access control lists in Mosquitto's acl_file format (docs/auth.md):
//
//   # comment
//   topic [read|write|readwrite|deny] TOPIC      before any `user` line: anonymous clients
//   user NAME                                    starts NAME's section
//   topic [read|write|readwrite|deny] TOPIC      applies to NAME
//   pattern [read|write|readwrite|deny] TOPIC    every client, %c = client id, %u = user name
//
// The access defaults to readwrite. TOPIC is a topic filter (wildcards allowed) and may contain
// spaces when an access word precedes it. A malformed line is an error reported as FILE:LINE.
//
// Decision for one client (ClientAcl, compiled at CONNECT with %c and %u substituted):
// - A `deny` rule matching wins over every grant (Mosquitto instead stops at the first
//   matching rule of the user's list, with deny rules sorted first, before looking at patterns).
// - Otherwise the action is allowed when a grant with that access matches.
// - No grant: denied. A client with a user name that has no section gets the patterns only;
//   a pattern using %u does not apply to a client without a user name.
// - A rule not starting with '$' never matches a topic starting with '$' (MQTT-4.7.2-1): `#`
//   does not grant $SYS; grant `$SYS/#` explicitly.
// - A client id or user name containing '+', '#' or '/' would turn a pattern into a wider
//   filter than intended (client "x/y" under `devices/%c/#` would reach into client "x"'s
//   tree), so when a pattern needs such a value the client is denied everything.
//
// Publish and read: allowed when a grant with that access matches the topic and no deny rule
// matches it (CanPublish, CanRead).
// Subscribe: a filter is classified by which of the topics it can match the client may read
// (ClassifySubscription; the router does it at SUBSCRIBE and again when the rules change):
//   kAll   one read grant covers the filter and no deny rule can match any of its topics:
//          granted, and its deliveries need no check;
//   kNone  a deny rule covers the filter, or no read grant can match any of its topics:
//          refused (SUBACK 0x80), since nothing could ever be delivered through it;
//   kSome  anything else: granted, and each delivered message is checked with CanRead.
// kAll and kNone are sound (every topic readable, none readable). kSome is also the answer when
// only several rules together decide (grants `a` and `a/+` cover `a/#`; grant `a/b` with deny
// `+/b` leaves nothing of `a/+` readable): that costs a per-message check, never a wrong delivery.
// Mosquitto 2.0 instead grants every filter and checks read access on each delivered message
// (docs/auth.md).
//
// Thread safety: AclFile is immutable once parsed and may be read from any thread. A ClientAcl
// is a plain value owned by one shard.
#ifndef RINGMQ_AUTH_ACL_H_
#define RINGMQ_AUTH_ACL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace ringmq::auth {

enum Access : uint8_t { kDeny = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };

// Which of the topics a filter can match a client may read (see ClientAcl above).
enum class ReadScope : uint8_t { kNone, kSome, kAll };

struct AclRule {
  std::string topic;
  Access access = kReadWrite;
  bool operator==(const AclRule&) const = default;
};

class AclFile {
 public:
  const std::vector<AclRule>& anonymous() const { return anonymous_; }
  const std::vector<AclRule>& patterns() const { return patterns_; }
  // Null when the user has no section.
  const std::vector<AclRule>* user(std::string_view name) const;
  size_t user_count() const { return users_.size(); }
  size_t rule_count() const { return rule_count_; }

 private:
  friend absl::StatusOr<AclFile> ParseAclFile(std::string_view, std::string_view);
  std::vector<AclRule> anonymous_;
  absl::flat_hash_map<std::string, std::vector<AclRule>> users_;
  std::vector<AclRule> patterns_;
  size_t rule_count_ = 0;
};

// Parses the text of an ACL file; `file_name` only names it in errors.
absl::StatusOr<AclFile> ParseAclFile(std::string_view text, std::string_view file_name);

// The rules of one client, with %c and %u substituted.
class ClientAcl {
 public:
  ClientAcl() = default;  // allows nothing
  static ClientAcl Compile(const AclFile& file, std::optional<std::string_view> user,
                           std::string_view client_id);

  bool CanPublish(std::string_view topic) const { return Allows(topic, kWrite); }
  bool CanRead(std::string_view topic) const { return Allows(topic, kRead); }
  ReadScope ClassifySubscription(std::string_view filter) const;
  size_t rule_count() const { return denies_.size() + grants_.size(); }

 private:
  void Add(std::string topic, Access access);
  bool Allows(std::string_view topic, Access access) const;

  bool deny_all_ = true;
  std::vector<std::string> denies_;
  std::vector<AclRule> grants_;
};

// Filter algebra on valid topic filters and names (exposed for tests).
// `filter` matches topic name `topic` (MQTT 4.7, with the '$' rule of MQTT-4.7.2-1).
bool TopicMatches(std::string_view filter, std::string_view topic);
// Every topic that `inner` matches is matched by `outer`.
bool FilterCovers(std::string_view outer, std::string_view inner);
// Some topic is matched by both.
bool FiltersIntersect(std::string_view a, std::string_view b);

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_ACL_H_
