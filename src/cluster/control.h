// The NATS subjects ringmq nodes use among themselves (control traffic: acknowledgements,
// interest announcements, client-id claims, ...), as opposed to the subjects MQTT topics map to
// (subject.h).
//
// Every control subject is  $RINGMQ[.<subject_prefix>].<kind>[.<more tokens>]  — for example
// "$RINGMQ.ack.node1.0" or, with subject_prefix "site1", "$RINGMQ.site1.ack.node1.0". The '$'
// keeps control traffic out of the MQTT topic space: a node never forwards a '$' topic and
// never delivers a '$' subject to MQTT clients (router_cluster.cc), so no client can publish
// into or read control traffic. The prefix keeps two ringmq clusters that share one NATS
// account apart, as it does for their topics. Node names are single NATS tokens (the config
// checks them: no '.', whitespace, '*' or '>').
//
// Note: a NATS subscription to ">" (an MQTT filter "#" without a prefix) also matches control
// subjects; the receiving node drops those copies as '$' subjects (counted as
// unmappable_subject). Deployments with "#" subscribers and heavy cluster QoS 1 traffic should
// set a subject_prefix.
//
// Thread safety: pure functions.
#ifndef RINGMQ_CLUSTER_CONTROL_H_
#define RINGMQ_CLUSTER_CONTROL_H_

#include <initializer_list>
#include <string>
#include <string_view>

namespace ringmq::cluster {

inline constexpr std::string_view kControlRoot = "$RINGMQ";

// Appends  $RINGMQ[.prefix].kind[.token]...  to `out`. Each token must be a valid NATS token
// (the caller's: node names, shard numbers, fixed words).
inline void AppendControlSubject(std::string_view prefix, std::string_view kind,
                                 std::initializer_list<std::string_view> tokens,
                                 std::string& out) {
  out.append(kControlRoot);
  if (!prefix.empty()) {
    out.push_back('.');
    out.append(prefix);
  }
  out.push_back('.');
  out.append(kind);
  for (const std::string_view token : tokens) {
    out.push_back('.');
    out.append(token);
  }
}

inline std::string ControlSubject(std::string_view prefix, std::string_view kind,
                                  std::initializer_list<std::string_view> tokens = {}) {
  std::string out;
  AppendControlSubject(prefix, kind, tokens, out);
  return out;
}

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_CONTROL_H_
