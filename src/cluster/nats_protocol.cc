#include "cluster/nats_protocol.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "cluster/json_reader.h"
#include "common/assert.h"

namespace ringmq::cluster::nats {
namespace {

// absl::StrCat here is built without std::string_view support: a small one of our own.
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsNoCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != lower[i]) return false;
  }
  return true;
}

// Splits `text` on runs of spaces/tabs into at most `max` fields; returns the count, or
// max + 1 when there are more.
size_t SplitArgs(std::string_view text, std::span<std::string_view> fields) {
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i == text.size()) break;
    size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (count == fields.size()) return count + 1;
    fields[count++] = text.substr(start, i - start);
  }
  return count;
}

// Decimal digits only, no sign, no overflow (the document's sizes and sids are unsigned).
std::optional<uint64_t> ParseNumber(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

void AppendNumber(uint64_t value, std::string& out) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  RINGMQ_ASSERT(ec == std::errc());
  out.append(digits, end);
}

absl::Status Malformed(std::string_view what, std::string_view line) {
  constexpr size_t kQuoteMax = 64;
  return absl::InvalidArgumentError(
      Cat({"NATS protocol: ", what, " in '", line.substr(0, kQuoteMax), "'"}));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parser

Parser::Parser(size_t max_control_line, size_t max_payload)
    : max_control_line_(max_control_line), max_payload_(max_payload) {
  RINGMQ_ASSERT(max_control_line_ >= 16);
  RINGMQ_ASSERT(max_payload_ <= kMaxPayloadLimit);
}

void Parser::Reset() {
  spill_.clear();
  error_ = absl::OkStatus();
}

void Parser::set_max_payload(size_t max_payload) {
  RINGMQ_ASSERT(max_payload <= kMaxPayloadLimit);
  max_payload_ = max_payload;
}

absl::Status Parser::Fail(absl::Status status) {
  RINGMQ_ASSERT(!status.ok());
  error_ = status;
  spill_.clear();
  return status;
}

absl::StatusOr<Parser::Line> Parser::ParseMsgArgs(std::string_view args, bool with_headers) const {
  // MSG <subject> <sid> [reply-to] <#bytes>
  // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
  std::array<std::string_view, 5> fields;
  const size_t sizes = with_headers ? 2 : 1;
  const size_t count = SplitArgs(args, fields);
  if (count < 2 + sizes || count > 3 + sizes) {
    return Malformed(with_headers ? "HMSG wants 4 or 5 arguments" : "MSG wants 3 or 4 arguments",
                     args);
  }
  Line line;
  line.op.kind = ServerOpKind::kMsg;
  line.op.has_headers = with_headers;
  line.op.subject = fields[0];
  std::optional<uint64_t> sid = ParseNumber(fields[1]);
  if (!sid) return Malformed("bad sid", args);
  line.op.sid = *sid;
  if (count == 3 + sizes) line.op.reply = fields[2];
  std::optional<uint64_t> total = ParseNumber(fields[count - 1]);
  if (!total) return Malformed("bad size", args);
  std::optional<uint64_t> header_bytes = uint64_t{0};
  if (with_headers) {
    header_bytes = ParseNumber(fields[count - 2]);
    if (!header_bytes) return Malformed("bad header size", args);
    if (*header_bytes > *total) return Malformed("header bytes over total bytes", args);
  }
  if (*total > max_payload_) return Malformed("payload over max_payload", args);
  line.payload_total = static_cast<size_t>(*total);
  line.header_bytes = static_cast<size_t>(*header_bytes);
  return line;
}

absl::StatusOr<Parser::Line> Parser::ParseLine(std::string_view line) const {
  size_t verb_end = 0;
  while (verb_end < line.size() && !IsSpace(line[verb_end])) ++verb_end;
  const std::string_view verb = line.substr(0, verb_end);
  std::string_view rest = line.substr(verb_end);
  Line result;
  if (EqualsNoCase(verb, "msg")) return ParseMsgArgs(rest, false);
  if (EqualsNoCase(verb, "hmsg")) return ParseMsgArgs(rest, true);
  auto no_args = [&](ServerOpKind kind) -> absl::StatusOr<Line> {
    for (char c : rest) {
      if (!IsSpace(c)) return Malformed("unexpected arguments", line);
    }
    result.op.kind = kind;
    return result;
  };
  if (EqualsNoCase(verb, "ping")) return no_args(ServerOpKind::kPing);
  if (EqualsNoCase(verb, "pong")) return no_args(ServerOpKind::kPong);
  if (EqualsNoCase(verb, "+ok")) return no_args(ServerOpKind::kOk);
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  while (!rest.empty() && IsSpace(rest.back())) rest.remove_suffix(1);
  if (EqualsNoCase(verb, "info")) {
    if (rest.empty() || rest.front() != '{') return Malformed("INFO without a JSON object", line);
    result.op.kind = ServerOpKind::kInfo;
    result.op.info_json = rest;
    return result;
  }
  if (EqualsNoCase(verb, "-err")) {
    // -ERR 'text': the quotes are the server's; tolerate their absence.
    if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') {
      rest = rest.substr(1, rest.size() - 2);
    }
    result.op.kind = ServerOpKind::kErr;
    result.op.error = rest;
    return result;
  }
  return Malformed("unknown operation", line);
}

absl::StatusOr<size_t> Parser::ParseOne(std::string_view data, Sink sink) {
  const size_t scan = std::min(data.size(), max_control_line_ + 2);
  const void* newline = std::memchr(data.data(), '\n', scan);
  if (newline == nullptr) {
    // A line may end with CR LF: the CR may be the byte at max_control_line.
    if (data.size() > max_control_line_ + 1) return Malformed("control line too long", data);
    return 0;
  }
  const size_t newline_at = static_cast<size_t>(static_cast<const char*>(newline) - data.data());
  std::string_view line = data.substr(0, newline_at);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > max_control_line_) return Malformed("control line too long", line);
  absl::StatusOr<Line> parsed = ParseLine(line);
  if (!parsed.ok()) return parsed.status();
  size_t used = newline_at + 1;
  if (parsed->op.kind == ServerOpKind::kMsg) {
    const size_t total = parsed->payload_total;
    if (data.size() - used < total + 2) return 0;
    const std::string_view body = data.substr(used, total);
    if (data[used + total] != '\r' || data[used + total + 1] != '\n') {
      return Malformed("payload not followed by CRLF", line);
    }
    parsed->op.headers = body.substr(0, parsed->header_bytes);
    parsed->op.payload = body.substr(parsed->header_bytes);
    used += total + 2;
  }
  sink(parsed->op);
  return used;
}

// Completes the operation held in spill_ with bytes from the front of *data (consumed).
absl::Status Parser::FeedSpill(std::string_view* data, Sink sink) {
  while (!spill_.empty() && !data->empty()) {
    // Appending only what the pending operation can need keeps the spill bounded and leaves
    // the following operations in the caller's buffer, parsed there without a copy.
    const size_t line_end = spill_.find('\n');
    size_t want;
    if (line_end == std::string::npos) {
      const void* newline = std::memchr(data->data(), '\n', data->size());
      want = newline == nullptr
                 ? data->size()
                 : static_cast<size_t>(static_cast<const char*>(newline) - data->data()) + 1;
      // Past max_control_line + 2 bytes the line is too long whatever follows.
      const size_t line_max = max_control_line_ + 2;
      want = std::min(want, line_max > spill_.size() ? line_max - spill_.size() : size_t{1});
    } else {
      want = data->size();  // a MSG body: ParseOne below tells how much it needs
      std::string_view line(spill_.data(), line_end);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      absl::StatusOr<Line> parsed = ParseLine(line);
      if (!parsed.ok()) return parsed.status();
      const size_t needed = line_end + 1 + parsed->payload_total + 2;
      RINGMQ_ASSERT(needed > spill_.size());
      want = needed - spill_.size();
    }
    want = std::min(want, data->size());
    spill_.append(data->data(), want);
    data->remove_prefix(want);
    absl::StatusOr<size_t> used = ParseOne(spill_, sink);
    if (!used.ok()) return used.status();
    if (*used != 0) {
      RINGMQ_ASSERT(*used == spill_.size());
      spill_.clear();
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::Feed(std::string_view data, Sink sink) {
  if (!error_.ok()) return error_;
  if (absl::Status status = FeedSpill(&data, sink); !status.ok()) return Fail(status);
  if (!spill_.empty()) return absl::OkStatus();
  while (!data.empty()) {
    absl::StatusOr<size_t> used = ParseOne(data, sink);
    if (!used.ok()) return Fail(used.status());
    if (*used == 0) {
      spill_.assign(data.data(), data.size());
      break;
    }
    data.remove_prefix(*used);
  }
  RINGMQ_ASSERT(spill_.size() <= max_control_line_ + 2 + max_payload_ + 2);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// INFO

namespace {

static_assert(kJsonMaxDepth == json::kMaxDepth);

absl::Status ReadConnectUrls(json::Reader& reader, std::vector<std::string>& urls) {
  urls.clear();
  if (!reader.Consume('[')) return reader.Error("connect_urls: array expected");
  if (reader.Consume(']')) return absl::OkStatus();
  while (true) {
    if (urls.size() == kInfoConnectUrlsMax) return reader.Error("too many connect_urls");
    std::string url;
    absl::Status status = reader.DecodedString(url);
    if (!status.ok()) return status;
    urls.push_back(std::move(url));
    if (reader.Consume(']')) return absl::OkStatus();
    if (!reader.Consume(',')) return reader.Error("',' expected in connect_urls");
  }
}

absl::Status ReadField(json::Reader& reader, std::string_view key, ServerInfo& info) {
  auto read_string = [&](std::string& field) { return reader.DecodedString(field); };
  auto read_bool = [&](bool& field) -> absl::Status {
    absl::StatusOr<bool> value = reader.Bool();
    if (!value.ok()) return value.status();
    field = *value;
    return absl::OkStatus();
  };
  auto read_int = [&](int64_t& field) -> absl::Status {
    absl::StatusOr<int64_t> value = reader.Integer();
    if (!value.ok()) return value.status();
    field = *value;
    return absl::OkStatus();
  };
  if (key == "server_id") return read_string(info.server_id);
  if (key == "server_name") return read_string(info.server_name);
  if (key == "version") return read_string(info.version);
  if (key == "host") return read_string(info.host);
  if (key == "nonce") return read_string(info.nonce);
  if (key == "cluster") return read_string(info.cluster);
  if (key == "port") return read_int(info.port);
  if (key == "proto") return read_int(info.proto);
  if (key == "max_payload") return read_int(info.max_payload);
  if (key == "headers") return read_bool(info.headers);
  if (key == "tls_required") return read_bool(info.tls_required);
  if (key == "tls_available") return read_bool(info.tls_available);
  if (key == "auth_required") return read_bool(info.auth_required);
  if (key == "jetstream") return read_bool(info.jetstream);
  if (key == "ldm") return read_bool(info.lame_duck_mode);
  if (key == "client_id") {
    int64_t id = 0;
    absl::Status status = read_int(id);
    if (status.ok() && id < 0) return reader.Error("negative client_id");
    info.client_id = static_cast<uint64_t>(id);
    return status;
  }
  if (key == "connect_urls") return ReadConnectUrls(reader, info.connect_urls);
  return reader.SkipValue(1);
}

}  // namespace

absl::StatusOr<ServerInfo> ParseServerInfo(std::string_view json) {
  json::Reader reader(json, "INFO JSON", json::Reader::Strings::kDecoded);
  ServerInfo info;
  absl::Status status =
      reader.Object([&](std::string_view key) { return ReadField(reader, key, info); });
  if (!status.ok()) return status;
  reader.SkipWhitespace();
  if (!reader.AtEnd()) return reader.Error("trailing bytes");
  if (info.max_payload < 0 || static_cast<uint64_t>(info.max_payload) > kMaxPayloadLimit) {
    return absl::InvalidArgumentError("INFO: max_payload out of range");
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Encoders

namespace {

bool IsSubjectByteBad(char c) {
  return static_cast<unsigned char>(c) <= 0x20 || c == 0x7F;  // whitespace and controls
}

void AppendJsonString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : text) {
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

absl::Status ValidateToken(std::string_view token, std::string_view what) {
  if (token.empty()) return absl::InvalidArgumentError(Cat({what, " is empty"}));
  if (token.size() > kSubjectMaxBytes) {
    return absl::InvalidArgumentError(Cat({what, " too long"}));
  }
  for (char c : token) {
    if (IsSubjectByteBad(c)) {
      return absl::InvalidArgumentError(Cat({what, " has whitespace or a control byte"}));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSubject(std::string_view subject, bool allow_wildcards) {
  if (absl::Status status = ValidateToken(subject, "subject"); !status.ok()) return status;
  size_t start = 0;
  while (true) {
    const size_t dot = subject.find('.', start);
    const std::string_view token =
        subject.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (token.empty()) return absl::InvalidArgumentError("subject has an empty token");
    if (token == "*" || token == ">") {
      if (!allow_wildcards) return absl::InvalidArgumentError("wildcard in a publish subject");
      if (token == ">" && dot != std::string_view::npos) {
        return absl::InvalidArgumentError("'>' is not the last token");
      }
    }
    if (dot == std::string_view::npos) return absl::OkStatus();
    start = dot + 1;
  }
}

absl::Status AppendConnect(const ConnectOptions& options, std::string& out) {
  auto flag = [&](std::string_view key, bool value) {
    out.append(",\"").append(key).append(value ? "\":true" : "\":false");
  };
  auto text = [&](std::string_view key, std::string_view value) {
    out.append(",\"").append(key).append("\":");
    AppendJsonString(value, out);
  };
  out.append(options.verbose ? "CONNECT {\"verbose\":true" : "CONNECT {\"verbose\":false");
  flag("pedantic", options.pedantic);
  flag("tls_required", options.tls_required);
  text("lang", options.lang);
  text("version", options.version);
  out.append(",\"protocol\":1");
  flag("echo", options.echo);
  flag("headers", options.headers);
  flag("no_responders", options.no_responders);
  if (!options.name.empty()) text("name", options.name);
  if (!options.user.empty()) {
    text("user", options.user);
    text("pass", options.pass);
  }
  if (!options.auth_token.empty()) text("auth_token", options.auth_token);
  if (!options.jwt.empty()) {  // jwt lane
    text("jwt", options.jwt);
    text("sig", options.sig);
  } else if (!options.nkey.empty()) {
    text("nkey", options.nkey);
    text("sig", options.sig);
  }
  out.append("}\r\n");
  return absl::OkStatus();
}

absl::Status AppendPub(std::string_view subject, std::string_view reply, std::string_view payload,
                       std::string& out) {
  if (absl::Status s = ValidateSubject(subject, false); !s.ok()) return s;
  if (!reply.empty()) {
    if (absl::Status s = ValidateSubject(reply, false); !s.ok()) return s;
  }
  out.append("PUB ").append(subject).push_back(' ');
  if (!reply.empty()) out.append(reply).push_back(' ');
  AppendNumber(payload.size(), out);
  out.append("\r\n").append(payload).append("\r\n");
  return absl::OkStatus();
}

absl::Status AppendHpub(std::string_view subject, std::string_view reply,
                        std::string_view header_block, std::string_view payload, std::string& out) {
  if (absl::Status s = ValidateSubject(subject, false); !s.ok()) return s;
  if (!reply.empty()) {
    if (absl::Status s = ValidateSubject(reply, false); !s.ok()) return s;
  }
  if (header_block.substr(0, 8) != "NATS/1.0" ||
      header_block.substr(header_block.size() >= 4 ? header_block.size() - 4 : 0) != "\r\n\r\n") {
    return absl::InvalidArgumentError("HPUB: header block is not NATS/1.0 ... CRLF CRLF");
  }
  out.append("HPUB ").append(subject).push_back(' ');
  if (!reply.empty()) out.append(reply).push_back(' ');
  AppendNumber(header_block.size(), out);
  out.push_back(' ');
  AppendNumber(header_block.size() + payload.size(), out);
  out.append("\r\n").append(header_block).append(payload).append("\r\n");
  return absl::OkStatus();
}

absl::Status AppendHeaderBlock(std::span<const HeaderField> fields, std::string& out) {
  if (fields.size() > kHeaderFieldsMax) return absl::InvalidArgumentError("too many headers");
  for (const auto& [key, value] : fields) {
    if (key.empty()) return absl::InvalidArgumentError("empty header key");
    for (char c : key) {
      // Keys are HTTP field-name tokens: printable, no ':' or whitespace.
      if (IsSubjectByteBad(c) || c == ':') {
        return absl::InvalidArgumentError("header key with ':', whitespace or control byte");
      }
    }
    for (char c : value) {
      if (c == '\r' || c == '\n') return absl::InvalidArgumentError("header value with CR/LF");
    }
  }
  out.append("NATS/1.0\r\n");
  for (const auto& [key, value] : fields) {
    out.append(key).append(": ").append(value).append("\r\n");
  }
  out.append("\r\n");
  return absl::OkStatus();
}

absl::Status AppendSub(std::string_view subject, std::string_view queue_group, uint64_t sid,
                       std::string& out) {
  if (absl::Status s = ValidateSubject(subject, true); !s.ok()) return s;
  if (!queue_group.empty()) {
    if (absl::Status s = ValidateToken(queue_group, "queue group"); !s.ok()) return s;
  }
  out.append("SUB ").append(subject).push_back(' ');
  if (!queue_group.empty()) out.append(queue_group).push_back(' ');
  AppendNumber(sid, out);
  out.append("\r\n");
  return absl::OkStatus();
}

void AppendUnsub(uint64_t sid, std::optional<uint64_t> max_msgs, std::string& out) {
  out.append("UNSUB ");
  AppendNumber(sid, out);
  if (max_msgs) {
    out.push_back(' ');
    AppendNumber(*max_msgs, out);
  }
  out.append("\r\n");
}

void AppendPing(std::string& out) { out.append("PING\r\n"); }
void AppendPong(std::string& out) { out.append("PONG\r\n"); }

absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view block) {
  HeaderBlock result;
  size_t line_end = block.find("\r\n");
  if (block.substr(0, 8) != "NATS/1.0" || line_end == std::string_view::npos) {
    return absl::InvalidArgumentError("header block: no NATS/1.0 line");
  }
  std::string_view status_line = block.substr(8, line_end - 8);
  while (!status_line.empty() && IsSpace(status_line.front())) status_line.remove_prefix(1);
  if (!status_line.empty()) {
    const std::string_view code = status_line.substr(0, 3);
    std::optional<uint64_t> value = ParseNumber(code);
    if (code.size() != 3 || !value) return absl::InvalidArgumentError("header block: bad status");
    result.status = static_cast<int>(*value);
    std::string_view description = status_line.substr(3);
    while (!description.empty() && IsSpace(description.front())) description.remove_prefix(1);
    result.description = description;
  }
  size_t pos = line_end + 2;
  while (pos < block.size()) {
    line_end = block.find("\r\n", pos);
    if (line_end == std::string_view::npos) {
      return absl::InvalidArgumentError("header block: line without CRLF");
    }
    const std::string_view line = block.substr(pos, line_end - pos);
    pos = line_end + 2;
    if (line.empty()) {
      if (pos != block.size()) return absl::InvalidArgumentError("header block: bytes after end");
      return result;
    }
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      return absl::InvalidArgumentError("header block: field without key");
    }
    if (result.fields.size() == kHeaderFieldsMax) {
      return absl::InvalidArgumentError("header block: too many fields");
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
    while (!value.empty() && IsSpace(value.back())) value.remove_suffix(1);
    result.fields.emplace_back(line.substr(0, colon), value);
  }
  // A status-only block ("NATS/1.0 503\r\n\r\n") ends with the blank line handled above.
  return absl::InvalidArgumentError("header block: no terminating blank line");
}

}  // namespace ringmq::cluster::nats
