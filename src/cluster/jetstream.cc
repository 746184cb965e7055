// The JetStream API subset (jetstream.h).
#include "cluster/jetstream.h"

#include <array>
#include <charconv>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

// A strict reader of the JSON grammar (RFC 8259) over a view; strings are returned raw (the
// bytes between the quotes, escapes kept), which is all ringmq compares or logs.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  void SkipWhitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    SkipWhitespace();
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  absl::Status Error(std::string_view what) const {
    std::string text = "JetStream JSON: ";
    text.append(what);
    text.append(" at byte ");
    text.append(std::to_string(pos_));
    return absl::InvalidArgumentError(text);
  }

  absl::StatusOr<std::string_view> String() {
    SkipWhitespace();
    if (Peek() != '"') return Error("string expected");
    const size_t start = ++pos_;
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return text_.substr(start, pos_ - 1 - start);
      if (static_cast<unsigned char>(c) < 0x20) return Error("control byte in string");
      if (c == '\\') {
        if (AtEnd()) return Error("unterminated escape");
        const char e = text_[pos_++];
        if (e == 'u') {
          for (int i = 0; i < 4; ++i) {
            const char h = Peek();
            const bool hex =
                (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
            if (!hex) return Error("bad \\u escape");
            ++pos_;
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return Error("bad escape");
        }
      }
    }
  }

  absl::StatusOr<std::string_view> Number() {
    SkipWhitespace();
    const size_t start = pos_;
    auto digits = [&]() {
      const size_t first = pos_;
      while (!AtEnd() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - first;
    };
    if (Peek() == '-') ++pos_;
    if (Peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("number expected");
    }
    if (Peek() == '.') {
      ++pos_;
      if (digits() == 0) return Error("digits expected after '.'");
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (digits() == 0) return Error("exponent digits expected");
    }
    return text_.substr(start, pos_ - start);
  }

  absl::StatusOr<int64_t> Integer() {
    absl::StatusOr<std::string_view> text = Number();
    if (!text.ok()) return text.status();
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size()) return Error("integer expected");
    return value;
  }

  // Skips one value; nesting is tracked in an array bounded by kJsonMaxDepth, never by recursion.
  absl::Status SkipValue(int depth) {
    std::array<char, kJsonMaxDepth> closers{};
    int open = 0;
    while (true) {
      SkipWhitespace();
      const char c = Peek();
      if (c == '{' || c == '[') {
        if (depth + open >= kJsonMaxDepth) return Error("nesting too deep");
        closers[open++] = c == '{' ? '}' : ']';
        ++pos_;
        if (Consume(closers[open - 1])) {
          --open;
        } else {
          if (c == '{') {
            if (absl::Status status = KeyColon().status(); !status.ok()) return status;
          }
          continue;
        }
      } else if (c == '"') {
        if (absl::Status status = String().status(); !status.ok()) return status;
      } else if (Literal("true") || Literal("false") || Literal("null")) {
      } else if (absl::Status status = Number().status(); !status.ok()) {
        return status;
      }
      while (true) {
        if (open == 0) return absl::OkStatus();
        if (Consume(closers[open - 1])) {
          --open;
          continue;
        }
        if (!Consume(',')) return Error("',' expected");
        if (closers[open - 1] == '}') {
          if (absl::Status status = KeyColon().status(); !status.ok()) return status;
        }
        break;
      }
    }
  }

  absl::StatusOr<std::string_view> KeyColon() {
    absl::StatusOr<std::string_view> key = String();
    if (!key.ok()) return key;
    if (!Consume(':')) return Error("':' expected");
    return key;
  }

  // Calls field(key) for each member of the object that starts here; field reads the value.
  template <typename Fn>
  absl::Status Object(Fn field) {
    if (!Consume('{')) return Error("object expected");
    if (Consume('}')) return absl::OkStatus();
    while (true) {
      absl::StatusOr<std::string_view> key = KeyColon();
      if (!key.ok()) return key.status();
      if (absl::Status status = field(*key); !status.ok()) return status;
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("',' or '}' expected");
    }
  }

 private:
  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

absl::Status ReadError(Reader& reader, ApiReply& reply) {
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
  Reader reader(json);
  ApiReply reply;
  absl::Status status = reader.Object([&](std::string_view key) -> absl::Status {
    if (key == "error") return ReadError(reader, reply);
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
