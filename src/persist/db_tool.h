// `ringmq db`: inspects a persistence data directory without starting the broker
// (docs/persistence.md):
//
//   ringmq db check DIR           recovers DIR's current run and prints what it holds: the run,
//                                 shards, files, bytes, records, torn tails, sessions,
//                                 deliveries, retained messages. Exit 0, or 1 with the error
//                                 (a corrupt record names the file and offset).
//   ringmq db dump [--json] DIR   the same recovery, then every session (client id, expiry,
//                                 protocol level, offline since, subscriptions with QoS and
//                                 options, queued and in-flight counts with the first
//                                 kDumpDeliveries deliveries' packet ids and stages, inbound QoS
//                                 2 ids) and every retained topic (version, QoS, payload size),
//                                 sorted by client id and topic: a stable format to read or diff;
//                                 --json for scripts (one JSON object).
//
// Recovery runs with read_only (nothing is truncated or deleted: a torn tail is reported, not
// cut) and without truncate_corrupt. DIR must exist; it is locked like a broker locks it, so
// `ringmq db` refuses a directory a running broker uses.
//
// Thread safety: runs on the main thread before anything else; not reentrant.
#ifndef RINGMQ_PERSIST_DB_TOOL_H_
#define RINGMQ_PERSIST_DB_TOOL_H_

#include <cstddef>
#include <cstdio>
#include <string>

#include "persist/data_dir.h"
#include "persist/state.h"

namespace ringmq::persist {

// Deliveries listed per session by `dump` (the counts are always complete).
inline constexpr size_t kDumpDeliveries = 8;

// `argv[0]` is "db" (the subcommand). Output goes to `out`, errors to `err`. Returns the exit
// status: 0 done, 1 failed (the directory could not be opened or recovered), 2 usage.
int RunDb(int argc, char** argv, std::FILE* out, std::FILE* err);

// What `check` prints after a successful recovery of `path`.
std::string FormatCheck(const std::string& path, const RecoveryReport& report);
// What `dump` prints: text, or JSON when `json`.
std::string FormatDump(const RecoveredState& state, const RecoveryReport& report, bool json);

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_DB_TOOL_H_
