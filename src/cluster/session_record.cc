// The ownership record of a persistent session (session_record.h).
#include "cluster/session_record.h"

#include <charconv>
#include <string>

#include "cluster/jetstream.h"
#include "common/assert.h"
#include "common/base64.h"

namespace ringmq::cluster {
namespace {

constexpr std::string_view kBucketBase = "RINGMQ_SESSIONS";

void AppendHex(std::string_view bytes, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xF]);
  }
}

bool IsNodeName(std::string_view node) {
  if (node.empty() || node.size() > 255) return false;
  for (const char c : node) {
    if (c <= ' ' || c > '~' || c == '.' || c == '*' || c == '>') return false;
  }
  return true;
}

}  // namespace

std::string SessionBucketName(std::string_view prefix) {
  std::string name(kBucketBase);
  if (prefix.empty()) return name;
  name.push_back('_');
  for (const char c : prefix) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-';
    name.push_back(keep ? c : '_');
  }
  return name;
}

void AppendSessionRecordSubject(std::string_view bucket, std::string_view client_id,
                                std::string& out) {
  RINGMQ_ASSERT(HasSessionRecord(client_id) && !bucket.empty());
  out.append("$KV.").append(bucket).push_back('.');
  AppendHex(client_id, out);
}

void AppendSessionBucketCreateSubject(std::string_view bucket, std::string& out) {
  out.append("$JS.API.STREAM.CREATE.KV_").append(bucket);
}

void AppendSessionBucketCreate(std::string_view bucket, uint32_t replicas, std::string& out) {
  RINGMQ_ASSERT(replicas >= 1 && replicas <= 5);
  // A key-value bucket as the NATS clients create one (history 1), rollups allowed,
  // deletes only as markers, direct reads from any replica. The duplicate window (2 min) is the
  // server's default.
  out.append("{\"name\":\"KV_").append(bucket).append("\",\"subjects\":[\"$KV.").append(bucket);
  out.append(
      ".>\"],\"retention\":\"limits\",\"max_msgs_per_subject\":1,\"discard\":\"old\","
      "\"storage\":\"file\",\"num_replicas\":");
  out.append(std::to_string(replicas));
  out.append(",\"allow_direct\":true,\"allow_rollup_hdrs\":true,\"deny_delete\":true}");
}

void AppendSessionRecordGetSubject(std::string_view bucket, std::string& out) {
  out.append("$JS.API.STREAM.MSG.GET.KV_").append(bucket);
}

void AppendSessionRecordGet(std::string_view bucket, std::string_view client_id,
                            std::string& out) {
  out.append("{\"last_by_subj\":\"");
  AppendSessionRecordSubject(bucket, client_id, out);  // hex and tokens: nothing to escape
  out.append("\"}");
}

void EncodeSessionRecord(const SessionRecord& record, std::string& out) {
  RINGMQ_ASSERT(IsNodeName(record.node));
  out.append("1 ").append(record.node).push_back(' ');
  out.append(std::to_string(record.key));
}

std::optional<SessionRecord> ParseSessionRecord(std::string_view payload) {
  if (!payload.starts_with("1 ")) return std::nullopt;
  payload.remove_prefix(2);
  const size_t space = payload.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  SessionRecord record;
  record.node = payload.substr(0, space);
  const std::string_view key = payload.substr(space + 1);
  if (!IsNodeName(record.node) || key.empty() || key.size() > 20) return std::nullopt;
  for (const char c : key) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), record.key);
  if (ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
  return record;
}

RecordRead ParseSessionRecordReply(std::string_view json, std::string& scratch,
                                   SessionRecord& record) {
  const absl::StatusOr<jetstream::ApiReply> reply = jetstream::ParseApiReply(json);
  if (!reply.ok()) return RecordRead::kError;
  if (reply->has_error) {
    return reply->error_code == 404 || reply->error_err_code == jetstream::kErrNoMessageFound
               ? RecordRead::kNone
               : RecordRead::kError;
  }
  if (!reply->has_message) return RecordRead::kError;
  if (reply->message_data.empty()) return RecordRead::kNone;  // a delete or purge marker
  if (reply->message_data.size() > base64::EncodedSize(kRecordValueMax)) return RecordRead::kError;
  scratch.resize(base64::DecodedSizeMax(reply->message_data.size()));
  size_t size = 0;
  if (!base64::Decode(reply->message_data, reinterpret_cast<uint8_t*>(scratch.data()), size) ||
      size > kRecordValueMax) {
    return RecordRead::kError;
  }
  scratch.resize(size);
  const std::optional<SessionRecord> parsed = ParseSessionRecord(scratch);
  if (!parsed) return RecordRead::kError;
  record = *parsed;
  return RecordRead::kFound;
}

}  // namespace ringmq::cluster
