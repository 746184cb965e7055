// The JetStream API subset (jetstream.h).
#include "cluster/jetstream.h"

#include <array>
#include <charconv>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cluster/json_reader.h"
#include "common/assert.h"

namespace ringmq::cluster::jetstream {
namespace {

constexpr uint64_t kNanosPerMs = 1'000'000;

// Names and subjects written into the JSON are checked tokens (IsValidName, validated
// subjects), so escaping covers only what a JSON string may not hold raw.
void AppendJsonString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void AppendField(std::string_view key, std::string_view value, std::string& out) {
  AppendJsonString(key, out);
  out.push_back(':');
  AppendJsonString(value, out);
}

void AppendField(std::string_view key, uint64_t value, std::string& out) {
  AppendJsonString(key, out);
  out.push_back(':');
  absl::StrAppend(&out, value);
}

bool ParseDecimal(std::string_view text, uint64_t& value) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

static_assert(kJsonMaxDepth == json::kMaxDepth);

absl::Status ReadError(json::Reader& reader, ApiReply& reply) {
  reply.has_error = true;
  return reader.Object([&](std::string_view key) -> absl::Status {
    if (key == "code" || key == "err_code") {
      absl::StatusOr<int64_t> value = reader.Integer();
      if (!value.ok()) return value.status();
      (key == "code" ? reply.error_code : reply.error_err_code) = *value;
      return absl::OkStatus();
    }
    if (key == "description") {
      absl::StatusOr<std::string_view> value = reader.String();
      if (!value.ok()) return value.status();
      reply.error_description = *value;
      return absl::OkStatus();
    }
    return reader.SkipValue(2);
  });
}

// STREAM.MSG.GET's stored message: only its data is kept.
absl::Status ReadMessage(json::Reader& reader, ApiReply& reply) {
  reply.has_message = true;
  return reader.Object([&](std::string_view key) -> absl::Status {
    if (key == "data") {
      absl::StatusOr<std::string_view> value = reader.String();
      if (!value.ok()) return value.status();
      reply.message_data = *value;
      return absl::OkStatus();
    }
    return reader.SkipValue(2);
  });
}

}  // namespace

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kNameMaxBytes) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void AppendStreamCreate(const StreamConfig& config, std::string& out) {
  RINGMQ_ASSERT(IsValidName(config.name) && !config.subject.empty());
  RINGMQ_ASSERT(config.replicas >= 1 && config.replicas <= 5);
  out.push_back('{');
  AppendField("name", config.name, out);
  out.append(",\"subjects\":[");
  AppendJsonString(config.subject, out);
  out.append("],");
  AppendField("retention", "limits", out);
  out.push_back(',');
  AppendField("max_msgs_per_subject", config.max_msgs_per_subject, out);
  out.push_back(',');
  AppendField("storage", config.file_storage ? "file" : "memory", out);
  out.push_back(',');
  AppendField("num_replicas", config.replicas, out);
  out.push_back(',');
  AppendField("discard", "old", out);
  out.push_back('}');
}

void AppendOrderedConsumerCreate(const OrderedConsumerConfig& config, std::string& out) {
  RINGMQ_ASSERT(IsValidName(config.stream) && !config.deliver_subject.empty());
  RINGMQ_ASSERT(config.idle_heartbeat_ms > 0);
  out.push_back('{');
  AppendField("stream_name", config.stream, out);
  out.append(",\"config\":{");
  AppendField("deliver_subject", config.deliver_subject, out);
  out.push_back(',');
  if (config.start_sequence == 0) {
    AppendField("deliver_policy", "last_per_subject", out);
  } else {
    AppendField("deliver_policy", "by_start_sequence", out);
    out.push_back(',');
    AppendField("opt_start_seq", config.start_sequence, out);
  }
  out.push_back(',');
  if (!config.filter_subject.empty()) {
    AppendField("filter_subject", config.filter_subject, out);
    out.push_back(',');
  }
  AppendField("ack_policy", "none", out);
  out.push_back(',');
  AppendField("max_deliver", 1, out);
  out.push_back(',');
  AppendField("replay_policy", "instant", out);
  out.append(",\"flow_control\":true,\"mem_storage\":true,");
  AppendField("num_replicas", 1, out);
  out.push_back(',');
  AppendField("idle_heartbeat", config.idle_heartbeat_ms * kNanosPerMs, out);
  out.push_back(',');
  AppendField("inactive_threshold", config.inactive_threshold_ms * kNanosPerMs, out);
  out.append("}}");
}

absl::StatusOr<ApiReply> ParseApiReply(std::string_view json) {
  // Strings raw (the bytes between the quotes, escapes kept): all ringmq compares or logs.
  json::Reader reader(json, "JetStream JSON", json::Reader::Strings::kRaw);
  ApiReply reply;
  absl::Status status = reader.Object([&](std::string_view key) -> absl::Status {
    if (key == "error") return ReadError(reader, reply);
    if (key == "message") return ReadMessage(reader, reply);
    if (key == "stream" || key == "name") {
      absl::StatusOr<std::string_view> value = reader.String();
      if (!value.ok()) return value.status();
      (key == "stream" ? reply.stream : reply.name) = *value;
      return absl::OkStatus();
    }
    if (key == "seq") {
      absl::StatusOr<int64_t> value = reader.Integer();
      if (!value.ok()) return value.status();
      if (*value < 0) return reader.Error("negative seq");
      reply.seq = static_cast<uint64_t>(*value);
      return absl::OkStatus();
    }
    return reader.SkipValue(1);
  });
  if (!status.ok()) return status;
  reader.SkipWhitespace();
  if (!reader.AtEnd()) return reader.Error("trailing bytes");
  return reply;
}

std::optional<Delivery> ParseDelivery(std::string_view reply) {
  constexpr size_t kTokensMax = 12;
  std::array<std::string_view, kTokensMax> tokens;
  size_t count = 0;
  while (true) {
    if (count == kTokensMax) return std::nullopt;
    const size_t dot = reply.find('.');
    tokens[count++] = reply.substr(0, dot);
    if (dot == std::string_view::npos) break;
    reply.remove_prefix(dot + 1);
  }
  if (tokens[0] != "$JS" || tokens[1] != "ACK") return std::nullopt;
  size_t first;  // the stream's token
  if (count == 9) {
    first = 2;
  } else if (count == 12) {
    first = 4;
  } else {
    return std::nullopt;
  }
  Delivery delivery;
  delivery.stream = tokens[first];
  delivery.consumer = tokens[first + 1];
  uint64_t time = 0;
  if (delivery.stream.empty() || delivery.consumer.empty() ||
      !ParseDecimal(tokens[first + 2], delivery.delivered) ||
      !ParseDecimal(tokens[first + 3], delivery.stream_sequence) ||
      !ParseDecimal(tokens[first + 4], delivery.consumer_sequence) ||
      !ParseDecimal(tokens[first + 5], time) ||
      !ParseDecimal(tokens[first + 6], delivery.pending)) {
    return std::nullopt;
  }
  return delivery;
}

StatusKind StatusOf(int status, std::string_view description) {
  if (status == 0) return StatusKind::kNone;
  if (status == 100) {
    if (description.starts_with("Idle Heartbeat")) return StatusKind::kHeartbeat;
    if (description.starts_with("FlowControl Request")) return StatusKind::kFlowControl;
  }
  return StatusKind::kOther;
}

}  // namespace ringmq::cluster::jetstream
