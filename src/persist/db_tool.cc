#include "persist/db_tool.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ringmq::persist {
namespace {

constexpr char kUsage[] =
    "usage: ringmq db check DIR          recover DIR (read-only) and print its counts\n"
    "       ringmq db dump [--json] DIR  print every session and retained message\n";

// Inbound QoS 2 ids listed per session in the text dump (JSON lists them all).
constexpr size_t kTextInboundIds = 16;
constexpr uint32_t kExpiryNever = 0xFFFFFFFF;  // MQTT 5 session expiry: never

using Stage = StoredDelivery::Stage;

const char* StageName(Stage stage) {
  switch (stage) {
    case Stage::kQueued:
      return "queued";
    case Stage::kAwaitAck:
      return "await_ack";
    case Stage::kAwaitComplete:
      return "await_complete";
  }
  return "unknown";
}

const char* LevelName(uint8_t level) {
  switch (level) {
    case 3:
      return "MQTT 3.1";
    case 4:
      return "MQTT 3.1.1";
    case 5:
      return "MQTT 5.0";
    default:
      return "unknown";
  }
}

// `text` as a JSON string (RFC 8259 section 7), quotes included; also the text dump's quoting.
// Bytes from 0x80 up pass through: client ids and topics were checked as UTF-8 when received.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7F) {
      out += absl::StrFormat("\\u%04x", byte);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// Unix milliseconds as UTC ISO 8601 with milliseconds.
std::string WallTime(uint64_t wall_ms) {
  const time_t seconds = static_cast<time_t>(wall_ms / 1000);
  tm utc{};
  if (gmtime_r(&seconds, &utc) == nullptr) return absl::StrCat(wall_ms, " ms");
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", utc.tm_year + 1900,
                         utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                         static_cast<unsigned>(wall_ms % 1000));
}

size_t InFlight(const StoredSession& session) {
  return static_cast<size_t>(
      std::count_if(session.deliveries.begin(), session.deliveries.end(),
                    [](const StoredDelivery& d) { return d.stage != Stage::kQueued; }));
}

uint64_t DeliveryCount(const RecoveredState& state) {
  uint64_t count = 0;
  for (const auto& [client_id, session] : state.sessions) count += session.deliveries.size();
  return count;
}

std::string SubscriptionOptions(const StoredSubscription& subscription) {
  std::string out = absl::StrCat("qos ", subscription.options & 0x03);
  if (subscription.options & 0x04) out += " no_local";
  if (subscription.options & 0x08) out += " retain_as_published";
  if (subscription.identifier != 0) absl::StrAppend(&out, " identifier ", subscription.identifier);
  return out;
}

std::string DeliveryText(const StoredDelivery& delivery) {
  std::string out = delivery.stage == Stage::kQueued
                        ? std::string("queued")
                        : absl::StrCat("packet ", delivery.packet_id, " ", StageName(delivery.stage));
  absl::StrAppend(&out, " qos ", delivery.qos, absl::StrFormat(" mid 0x%x", delivery.mid));
  if (delivery.retain) out += " retain";
  if (delivery.message != nullptr) {
    absl::StrAppend(&out, " ", Quote(delivery.message->topic), " ",
                    delivery.message->payload.size(), " bytes");
  }
  return out;
}

void AppendSessionText(std::string& out, const std::string& client_id,
                       const StoredSession& session) {
  absl::StrAppend(&out, "session ", Quote(client_id), "\n  level ", session.level, " (",
                  LevelName(session.level), "), expiry ",
                  session.expiry_s == kExpiryNever ? std::string("never")
                                                   : absl::StrCat(session.expiry_s, " s"),
                  ", ",
                  session.offline_since_wall_ms == 0
                      ? std::string("online when the log ended")
                      : "offline since " + WallTime(session.offline_since_wall_ms),
                  "\n");
  absl::StrAppend(&out, "  subscriptions ", session.subscriptions.size(), "\n");
  for (const auto& [filter, subscription] : session.subscriptions) {
    absl::StrAppend(&out, "    ", Quote(filter), " ", SubscriptionOptions(subscription), "\n");
  }
  const size_t in_flight = InFlight(session);
  absl::StrAppend(&out, "  deliveries ", session.deliveries.size(), ": ", in_flight,
                  " in flight, ", session.deliveries.size() - in_flight, " queued\n");
  const size_t shown = std::min(session.deliveries.size(), kDumpDeliveries);
  for (size_t i = 0; i < shown; ++i) {
    absl::StrAppend(&out, "    ", DeliveryText(session.deliveries[i]), "\n");
  }
  if (shown < session.deliveries.size()) {
    absl::StrAppend(&out, "    ... ", session.deliveries.size() - shown, " more\n");
  }
  absl::StrAppend(&out, "  inbound qos 2 ids ", session.inbound_qos2.size());
  const size_t ids = std::min(session.inbound_qos2.size(), kTextInboundIds);
  for (size_t i = 0; i < ids; ++i) absl::StrAppend(&out, i == 0 ? ": " : " ", session.inbound_qos2[i]);
  if (ids < session.inbound_qos2.size()) out += " ...";
  out += "\n";
}

std::string RetainedText(const std::string& topic, const StoredRetained& retained) {
  std::string out = absl::StrCat("retained ", Quote(topic), " version ", retained.version,
                                 " qos ", retained.message.qos, " payload ",
                                 retained.message.payload.size(), " bytes");
  if (retained.message.expiry_wall_ms != 0) {
    absl::StrAppend(&out, " expires ", WallTime(retained.message.expiry_wall_ms));
  }
  return out + "\n";
}

std::string DumpText(const RecoveredState& state, const RecoveryReport& report) {
  std::string out = absl::StrCat("run ", report.run, ", ", report.shards, " shards\n");
  for (const auto& [client_id, session] : state.sessions) AppendSessionText(out, client_id, session);
  for (const auto& [topic, retained] : state.retained) out += RetainedText(topic, retained);
  absl::StrAppend(&out, state.sessions.size(), " sessions, ", DeliveryCount(state),
                  " deliveries, ", state.retained.size(), " retained\n");
  return out;
}

std::string DeliveryJson(const StoredDelivery& delivery) {
  std::string out = absl::StrCat("{\"stage\":", Quote(StageName(delivery.stage)),
                                 ",\"packet_id\":", delivery.packet_id, ",\"qos\":", delivery.qos,
                                 ",\"retain\":", delivery.retain ? "true" : "false",
                                 ",\"mid\":", delivery.mid);
  if (delivery.message != nullptr) {
    absl::StrAppend(&out, ",\"topic\":", Quote(delivery.message->topic),
                    ",\"payload_bytes\":", delivery.message->payload.size());
  }
  return out + "}";
}

std::string SessionJson(const std::string& client_id, const StoredSession& session) {
  std::string out = absl::StrCat("{\"client_id\":", Quote(client_id), ",\"level\":", session.level,
                                 ",\"expiry_s\":", session.expiry_s,
                                 ",\"offline_since_wall_ms\":", session.offline_since_wall_ms,
                                 ",\"subscriptions\":[");
  bool first = true;
  for (const auto& [filter, subscription] : session.subscriptions) {
    absl::StrAppend(&out, first ? "" : ",", "{\"filter\":", Quote(filter),
                    ",\"qos\":", subscription.options & 0x03,
                    ",\"no_local\":", (subscription.options & 0x04) ? "true" : "false",
                    ",\"retain_as_published\":", (subscription.options & 0x08) ? "true" : "false",
                    ",\"identifier\":", subscription.identifier, "}");
    first = false;
  }
  const size_t in_flight = InFlight(session);
  absl::StrAppend(&out, "],\"deliveries\":", session.deliveries.size(), ",\"in_flight\":",
                  in_flight, ",\"queued\":", session.deliveries.size() - in_flight,
                  ",\"first_deliveries\":[");
  const size_t shown = std::min(session.deliveries.size(), kDumpDeliveries);
  for (size_t i = 0; i < shown; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", DeliveryJson(session.deliveries[i]));
  }
  out += "],\"inbound_qos2\":[";
  for (size_t i = 0; i < session.inbound_qos2.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", session.inbound_qos2[i]);
  }
  return out + "]}";
}

std::string DumpJson(const RecoveredState& state, const RecoveryReport& report) {
  std::string out = absl::StrCat(
      "{\"run\":", report.run, ",\"shards\":", report.shards, ",\"files\":", report.files,
      ",\"records\":", report.records, ",\"torn_tails\":", report.torn_tails,
      ",\"deliveries\":", DeliveryCount(state), ",\"sessions\":[");
  bool first = true;
  for (const auto& [client_id, session] : state.sessions) {
    absl::StrAppend(&out, first ? "\n" : ",\n", SessionJson(client_id, session));
    first = false;
  }
  out += "],\"retained\":[";
  first = true;
  for (const auto& [topic, retained] : state.retained) {
    absl::StrAppend(&out, first ? "\n" : ",\n", "{\"topic\":", Quote(topic),
                    ",\"version\":", retained.version, ",\"qos\":", retained.message.qos,
                    ",\"payload_bytes\":", retained.message.payload.size(),
                    ",\"expiry_wall_ms\":", retained.message.expiry_wall_ms, "}");
    first = false;
  }
  return out + "]}\n";
}

struct Args {
  bool dump = false;
  bool json = false;
  std::string dir;
};

// Fills `args`; or returns the exit status to end with (usage printed).
std::optional<int> ParseArgs(int argc, char** argv, Args& args, std::FILE* out, std::FILE* err) {
  if (argc >= 2 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
    std::fputs(kUsage, out);
    return 0;
  }
  if (argc < 3) {
    std::fputs(kUsage, err);
    return 2;
  }
  const std::string_view command = argv[1];
  if (command != "check" && command != "dump") {
    std::fprintf(err, "ringmq db: unknown command %s\n%s", argv[1], kUsage);
    return 2;
  }
  args.dump = command == "dump";
  int i = 2;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    if (args.dump && std::string_view(argv[i]) == "--json") {
      args.json = true;
    } else {
      std::fprintf(err, "ringmq db: unknown option %s\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (argc - i != 1) {
    std::fputs(kUsage, err);
    return 2;
  }
  args.dir = argv[i];
  return std::nullopt;
}

}  // namespace

std::string FormatCheck(const std::string& path, const RecoveryReport& report) {
  std::string out = absl::StrCat(path, ": run ", report.run, ", ", report.shards, " shards\n");
  absl::StrAppend(&out, "read ", report.files, " files, ", report.bytes, " bytes, ",
                  report.records, " records in ", report.duration_ms, " ms\n");
  absl::StrAppend(&out, "torn tails ", report.torn_tails, " (", report.torn_bytes,
                  " bytes: writes a crash cut before they were synced; left in place)\n");
  if (report.corrupt_truncated != 0) {
    absl::StrAppend(&out, "segments cut at a corrupt record ", report.corrupt_truncated, "\n");
  }
  absl::StrAppend(&out, "sessions ", report.sessions, ", deliveries ", report.deliveries,
                  ", retained ", report.retained, "\nok\n");
  return out;
}

std::string FormatDump(const RecoveredState& state, const RecoveryReport& report, bool json) {
  return json ? DumpJson(state, report) : DumpText(state, report);
}

int RunDb(int argc, char** argv, std::FILE* out, std::FILE* err) {
  Args args;
  if (const std::optional<int> status = ParseArgs(argc, argv, args, out, err)) return *status;
  // DataDir::Open creates a missing directory; inspecting one that does not exist is a mistake.
  struct stat info{};
  if (stat(args.dir.c_str(), &info) != 0) {
    std::fprintf(err, "ringmq db: %s: %s\n", args.dir.c_str(), std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(info.st_mode)) {
    std::fprintf(err, "ringmq db: %s: not a directory\n", args.dir.c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(args.dir);
  if (!dir.ok()) {
    std::fprintf(err, "ringmq db: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  DataDir::RecoverOptions options;
  options.read_only = true;
  RecoveryReport report;
  absl::StatusOr<RecoveredState> state = (*dir)->Recover(options, &report);
  if (!state.ok()) {
    std::fprintf(err, "ringmq db: %s\n", std::string(state.status().message()).c_str());
    return 1;
  }
  const std::string text =
      args.dump ? FormatDump(*state, report, args.json) : FormatCheck(args.dir, report);
  std::fputs(text.c_str(), out);
  return std::fflush(out) == 0 ? 0 : 1;
}

}  // namespace ringmq::persist
