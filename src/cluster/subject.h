// MQTT topic names and filters <-> NATS subjects, for the cluster over NATS (the rules with
// examples: docs/cluster.md, "Topic and subject mapping"). The convention is the one
// nats-server's own MQTT support uses since nats-server 2.10 (server/mqtt.go), so that NATS
// applications and nats-server's MQTT listener see the same subjects as ringmq nodes:
//
//   - each MQTT level is one NATS token, '/' <-> '.':                a/b      <-> a.b
//   - an empty level is the token "/":                                /a       <-> /.a
//                                                                     a//b     <-> a./.b
//                                                                     /        <-> /./
//   - a '.' inside a level is "//":                                   a.b      <-> a//b
//   - every other byte stays as it is (UTF-8 included):               é/$x     <-> é.$x
//   - with a prefix P (a literal subject such as "mqtt" or "site.mqtt") the subject is P.<above>.
//
// Levels and tokens correspond one to one, and no token the mapping makes is empty, so the
// mapping is reversible: SubjectToTopic(TopicToSubject(t)) == t for every topic it carries.
// nats-server 2.9 (Debian 12's) differs in one point: it refuses a '.' in a topic (closing the
// MQTT connection) and turns "//" back into "//", not "." (tests/integration/
// test_cluster_subject.py proves the shared table tests/cluster/subject_cases.txt against the
// nats-server installed, whichever of the two it is).
//
// Topics that cannot be carried (TopicToSubject refuses them, see Uncarried):
//   - ' ', '\t', '\n', '\r', '\f' anywhere: NATS subjects cannot hold them (nats-server's
//     IsValidSubject), and in a PUB or MSG line they would split the subject; nats-server's MQTT
//     listener refuses them too (since 2.12.9 and 2.14.1; before, only the space);
//   - DEL (0x7f): nats-server's MQTT listener refuses it since 2.14 (its subject tree uses DEL
//     internally);
//   - a level that is exactly "*" or ">": as a token it is a NATS wildcard, so a subscriber to
//     the literal topic a/* would get a/b (nats-server's MQTT listener carries it and shows that
//     very mix-up);
//   - a subject longer than SubjectMapping::max_subject_bytes: nats-server closes a client whose
//     control line (PUB/HPUB/SUB verb, subject, reply or queue group, sizes) exceeds its
//     max_control_line, 4096 bytes by default.
// Everything else MQTT allows is carried: any UTF-8, '*' or '>' inside a longer level ("a*"),
// '$'-topics.
//
// '$'-topics map like any other: $SYS/x <-> $SYS.x. Without a prefix they share the subject
// space of NATS's own '$' subjects ($SYS, $JS.API, $KV, $MQTT), so a client's PUBLISH to
// $JS/API/... would reach JetStream's API if forwarded: the caller decides which '$'-topics
// it forwards (not $SYS, which is per node).
//
// Filters: FilterToSubjects gives the NATS subjects whose union covers the filter, '+' -> '*',
// a last '#' -> '>' plus the parent level ("a/#" -> "a.>" and "a", MQTT-4.7.1-2). The cover may
// be wider than the filter (the receiving node matches again with its own trie) but never
// narrower: for every topic the filter matches and TopicToSubject carries, one of the subjects
// matches the topic's subject. It is wider in one case: NATS's '*' and '>' also match tokens
// that start with '$', which MQTT-4.7.2-1 keeps from a first-level '+' or '#'.
//
// Thread safety: the functions are stateless and safe from any thread; each call appends to the
// string its caller owns (one shard's reusable buffer on the hot path).
#ifndef RINGMQ_CLUSTER_SUBJECT_H_
#define RINGMQ_CLUSTER_SUBJECT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmq::cluster {

// The longest subject the mapping produces by default: nats-server's max_control_line is 4096
// bytes by default and covers the whole PUB/HPUB/SUB line, so 1 KiB is left for the verb, a
// reply subject or queue group and the sizes.
inline constexpr size_t kMaxSubjectBytesDefault = 3072;

struct SubjectMapping {
  // "" (topic a/b is subject a.b) or a literal subject (IsValidSubjectPrefix) put in front of
  // every mapped subject with a '.': prefix "mqtt" makes a/b "mqtt.a.b".
  std::string_view prefix = {};
  // Subjects longer than this (prefix included) are refused (Uncarried::kTooLong).
  size_t max_subject_bytes = kMaxSubjectBytesDefault;
};

// A prefix is "" or a literal NATS subject: non-empty tokens separated by '.', no token "*" or
// ">", no whitespace or DEL. For the caller's config validation.
bool IsValidSubjectPrefix(std::string_view prefix);

// Why TopicToSubject did not carry a topic. Its names (UncarriedName) are the reason column of
// tests/cluster/subject_cases.txt and suit a metric label.
enum class Uncarried : uint8_t {
  kNone = 0,       // carried
  kNotATopicName,  // empty, or '+' or '#' in it (MQTT-4.7.3-1, MQTT-3.3.2-2)
  kWhitespace,     // ' ', '\t', '\n', '\r' or '\f'
  kDelete,         // DEL (0x7f)
  kWildcardLevel,  // a level that is exactly "*" or ">"
  kTooLong,        // the subject would be longer than max_subject_bytes
};

// "none", "not_a_topic_name", "whitespace", "delete", "wildcard_level", "too_long".
std::string_view UncarriedName(Uncarried reason);

// Appends the subject of topic name `topic` to `out` and returns kNone, or returns why it cannot
// be carried and leaves `out` as it was. `topic` should be a valid topic name
// (mqtt::ValidateTopicName), as every PUBLISH and will topic is by the time it gets here; the
// function checks only what the mapping itself needs (any bytes are safe to pass). The subject
// is at most prefix + 1 + 2 * topic.size() + 1 bytes long (a topic of '.' and '/' only), and
// `out` grows by at most that much. `mapping.prefix` must be valid (IsValidSubjectPrefix).
Uncarried TopicToSubject(std::string_view topic, const SubjectMapping& mapping, std::string& out);

// The reverse: appends to `out` the topic name whose subject is `subject` and returns true;
// false (and `out` as it was) when `subject` does not start with `prefix` (and a '.') or is not
// a subject TopicToSubject makes: an empty token, a token "*" or ">", a '/' that is neither the
// whole token nor one of a pair, whitespace or DEL, '+' or '#' (a NATS application may publish
// to a.b/c; nats-server 2.10+ would deliver it to MQTT as a/bc, ringmq refuses it). The topic is
// also a valid MQTT topic name (mqtt::ValidateTopicName: UTF-8, no U+0000, at most
// mqtt::kMaxTopicLevels levels) of at most 65535 bytes (an MQTT string), since it goes to
// MQTT clients as it is. `subject` comes from the network (a NATS MSG): any bytes are safe.
bool SubjectToTopic(std::string_view subject, std::string_view prefix, std::string& out);

// How many subjects FilterToSubjects gave.
enum class FilterCover : uint8_t {
  kNothing = 0,     // no carried topic can match the filter: it needs no NATS interest
  kOne = 1,         // the subject appended covers the filter alone
  kWithParent = 2,  // the subject appended ends in ".>"; it and ParentSubject(it) cover it
};

// Appends to `out` the NATS subject(s) that cover topic filter `filter` (see the top of the
// file) and says how many. `filter` should be a valid filter (mqtt::ValidateTopicFilter) with
// any "$share/{name}/" already taken off (mqtt::ParseSharedFilter); anything else gives
// kNothing. Levels: "+" -> "*", a last "#" -> ">", other levels as in TopicToSubject.
//   - "#" -> ">" (every topic has a level, and no token is empty, so ">" covers them all);
//   - "x/#" -> "x.>" with the parent "x" (kWithParent), as MQTT-4.7.1-2 makes "#" match the
//     parent level too; "/#" has no parent subject: its parent would be the empty topic, which
//     is no topic name (MQTT-4.7.3-1);
//   - kNothing when a literal level holds what TopicToSubject refuses (whitespace, DEL, exactly
//     "*" or ">"): every topic the filter matches has that level, so none is carried;
//   - a subject over max_subject_bytes is left out: every subject it would match is at least as
//     long (a '*' or '>' stands for one token or more of at least one byte), so no carried
//     topic needs it. "x/#" whose "x.>" is too long gives its parent "x" alone (kOne).
// `out` grows by at most prefix + 1 + 2 * filter.size() + 1 bytes.
FilterCover FilterToSubjects(std::string_view filter, const SubjectMapping& mapping,
                             std::string& out);

// The parent subject of a kWithParent result: `subject` without its last ".>".
std::string_view ParentSubject(std::string_view subject);

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_SUBJECT_H_
