// Persistent subscribers for ringmq-bench (--clean-session 0, --session-expiry S), so that a
// broker's persistence can be measured with the sessions it persists.
//
// A subscriber's session outlives its connection when it is 3.1.1 with Clean Session 0, or 5.0
// with a Session Expiry Interval above 0 (5.0 §3.1.2.11.2; Clean Start only says whether an
// existing session is resumed). A run has persistent subscribers or none: CheckSessionOptions
// refuses option sets that would make some subscribers persistent and others not, or a 5.0
// subscriber with Clean Start 0 whose session would still end with its connection.
//
// Client ids: a persistent subscriber's id is fixed (PREFIX-s<index>, no process id, no worker
// thread), so the next run with the same prefix and the same --threads or not resumes the same
// sessions; every other client keeps an id of its own per process (PREFIX-<kind><index>-<worker>,
// PREFIX rb<pid> by default).
//
// Messages a persistent session kept from an earlier run (queued while its subscriber was
// away, or in flight when that run ended) arrive before this run's; their send time (the
// generator's CLOCK_MONOTONIC) is earlier than this process's start, or, after a reboot, may be
// anything: PublishedBeforeRun tells them apart so that they are counted (verify.stale) instead
// of being judged as duplicates or out-of-order deliveries of this run's sequence numbers.
//
// Thread safety: pure functions.
#ifndef RINGMQ_BENCH_LOADGEN_SESSION_H_
#define RINGMQ_BENCH_LOADGEN_SESSION_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmq::bench::session {

struct SessionOptions {
  bool clean_session = true;      // subscribers' Clean Session (3.1.1) / Clean Start (5.0)
  uint32_t session_expiry_s = 0;  // 5.0 subscribers' Session Expiry Interval (0: not sent)
};

// Whether a subscriber connecting at 5.0 (`mqtt5`) or 3.1.1 keeps its session when it leaves.
inline bool Persistent(const SessionOptions& s, bool mqtt5) {
  return mqtt5 ? s.session_expiry_s != 0 : !s.clean_session;
}

// "" if `s` is usable for a run whose subscribers include 3.1.1 clients (`any_311`) and/or 5.0
// clients (`any_5`), in a scenario with subscribers to messages (`messaging`); else why not.
inline std::string CheckSessionOptions(const SessionOptions& s, bool messaging, bool any_311,
                                       bool any_5) {
  const bool asked = !s.clean_session || s.session_expiry_s != 0;
  if (!asked) return "";
  if (!messaging) {
    return "--clean-session 0 and --session-expiry apply to fanin, fanout, pairs and wildcard";
  }
  if (s.session_expiry_s != 0 && !any_5) {
    return "--session-expiry applies to 5.0 subscribers (--protocol 5 or mixed)";
  }
  if (!s.clean_session && any_5 && s.session_expiry_s == 0) {
    return "--clean-session 0: a 5.0 session with no Session Expiry Interval ends with its "
           "connection (5.0 section 3.1.2.11.2); add --session-expiry S";
  }
  if (s.session_expiry_s != 0 && s.clean_session && any_311) {
    return "--session-expiry: the 3.1.1 subscribers of this run would not be persistent; add "
           "--clean-session 0";
  }
  return "";
}

// The client id of client `index` of `kind` ('p' publisher, 's' subscriber, ...) on worker
// `worker`; `persistent`: a fixed id that the next run resumes.
inline std::string ClientId(std::string_view prefix, char kind, int index, int worker,
                            bool persistent) {
  std::string id(prefix);
  id += '-';
  id += kind;
  id += std::to_string(index);
  if (!persistent) id += "-" + std::to_string(worker);
  return id;
}

// Whether a message sent at `send_ns` was published before this run started at `run_start_ns`
// (now is `now_ns`, all CLOCK_MONOTONIC): kept by a persistent session from an earlier run.
inline bool PublishedBeforeRun(uint64_t send_ns, uint64_t run_start_ns, uint64_t now_ns) {
  return send_ns < run_start_ns || send_ns > now_ns;
}

}  // namespace ringmq::bench::session

#endif  // RINGMQ_BENCH_LOADGEN_SESSION_H_
