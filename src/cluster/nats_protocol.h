// The NATS client protocol codec, without I/O (sans-IO), for the cluster over NATS (issue 16).
//
// Source: the NATS client protocol reference ("Client Protocol", docs.nats.io, reference /
// reference-protocols / nats-protocol), sections INFO, CONNECT, PUB, HPUB, SUB, UNSUB, MSG,
// HMSG, PING/PONG, +OK/-ERR. Written from the document, checked against nats-server 2.9.
//
// Parser (server -> client). Feed() takes any split of the byte stream (one byte at a time
// included) and calls the sink once per complete operation, in stream order, with the same
// events whatever the split. Views in a ServerOp (subject, reply, headers, payload, error text,
// INFO JSON) point either into the bytes passed to Feed() (an operation contained in one call:
// no copy) or into the parser's own spill buffer (an operation split across calls): either way
// they are valid only until the sink returns. A sink that keeps anything copies it.
//
// Bounds (each an error that ends the stream: the caller closes the connection):
//  - a control line (verb and arguments, before CRLF) longer than max_control_line bytes
//    (nats-server's default max_control_line is 4096; INFO lines count too);
//  - a MSG/HMSG whose total size is over max_payload (the server's INFO max_payload; the
//    caller raises it with set_max_payload() after INFO);
//  - malformed lines: unknown verb, missing or extra arguments, numbers that are not decimal
//    digits or overflow, header bytes > total bytes, a payload not followed by CRLF.
// The spill buffer holds at most max_control_line + 2 + max_payload + 2 bytes (a control line
// and a MSG body, each with its CRLF).
// Verbs are matched case-insensitively (the document: "protocol operation names ... are case
// insensitive"); arguments are separated by one or more spaces or tabs. A bare LF ends a control
// line like CRLF does (clients are lenient there; servers send CRLF).
//
// INFO JSON: ParseServerInfo() reads the fields a client needs with the strict JSON reader
// (json_reader.h: RFC 8259 grammar, strings decoded; nesting depth at most kJsonMaxDepth,
// connect_urls at most kInfoConnectUrlsMax entries; unknown fields skipped without recursion).
//
// Encoders (client -> server) append to a caller's std::string (reused across calls, so the
// steady state allocates nothing) and validate what they write: subjects non-empty, no
// whitespace or control bytes, no empty tokens ("a..b"); publish subjects without wildcard
// tokens; header keys and values without CR/LF. On an error nothing is appended.
//
// Thread safety: a Parser is owned by one shard and used on its thread; the free functions are
// thread-safe (no shared state).
#ifndef RINGMQ_CLUSTER_NATS_PROTOCOL_H_
#define RINGMQ_CLUSTER_NATS_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringmq::cluster::nats {

// nats-server's defaults (server/const.go: MAX_CONTROL_LINE_SIZE, MAX_PAYLOAD_SIZE).
inline constexpr size_t kDefaultMaxControlLine = 4096;
inline constexpr size_t kDefaultMaxPayload = 1024 * 1024;
// Upper bound on any max_payload a server may announce that we accept (nats-server caps its
// own setting at 64 MiB, server/opts.go MAX_PAYLOAD_MAX_SIZE).
inline constexpr size_t kMaxPayloadLimit = 64 * 1024 * 1024;
inline constexpr int kJsonMaxDepth = 16;
inline constexpr size_t kInfoConnectUrlsMax = 64;
// Subjects longer than this are refused by the encoders (the control line must fit in the
// server's max_control_line with the other arguments).
inline constexpr size_t kSubjectMaxBytes = 1024;

enum class ServerOpKind : uint8_t { kInfo, kMsg, kPing, kPong, kOk, kErr };

// One parsed server operation. Only the fields of its kind are set.
struct ServerOp {
  ServerOpKind kind = ServerOpKind::kPing;
  std::string_view info_json;  // kInfo: the JSON object text
  std::string_view subject;    // kMsg
  uint64_t sid = 0;            // kMsg
  std::string_view reply;      // kMsg: empty when absent
  bool has_headers = false;    // kMsg: true for HMSG
  std::string_view headers;    // kMsg: the raw header block ("NATS/1.0..." to the blank line)
  std::string_view payload;    // kMsg
  std::string_view error;      // kErr: the text without its quotes
};

class Parser {
 public:
  using Sink = absl::FunctionRef<void(const ServerOp&)>;

  explicit Parser(size_t max_control_line = kDefaultMaxControlLine,
                  size_t max_payload = kDefaultMaxPayload);

  // Parses `data` and calls `sink` for each complete operation. After an error every later
  // call returns the same error without calling the sink; Reset() starts a new stream.
  absl::Status Feed(std::string_view data, Sink sink);

  // Forgets any partial operation and a past error (a new connection).
  void Reset();

  void set_max_payload(size_t max_payload);
  size_t max_payload() const { return max_payload_; }
  size_t max_control_line() const { return max_control_line_; }
  // Bytes of a split operation held in the spill buffer.
  size_t buffered_bytes() const { return spill_.size(); }
  // The spill buffer's capacity (at most max_control_line + max_payload + CRLF plus the
  // string's growth slack), for memory accounting.
  size_t buffer_capacity() const { return spill_.capacity(); }

 private:
  // Result of parsing one control line.
  struct Line {
    ServerOp op;
    size_t payload_total = 0;  // kMsg: header + payload bytes that follow the line
    size_t header_bytes = 0;
  };

  absl::StatusOr<Line> ParseLine(std::string_view line) const;
  absl::StatusOr<Line> ParseMsgArgs(std::string_view args, bool with_headers) const;
  // Parses one operation at the start of `data`; returns bytes used, 0 when incomplete.
  absl::StatusOr<size_t> ParseOne(std::string_view data, Sink sink);
  absl::Status FeedSpill(std::string_view* data, Sink sink);
  absl::Status Fail(absl::Status status);

  size_t max_control_line_;
  size_t max_payload_;
  std::string spill_;
  absl::Status error_;
};

// What a client needs from INFO (the document's INFO fields; nats-server server/server.go Info).
struct ServerInfo {
  std::string server_id;
  std::string server_name;
  std::string version;
  std::string host;
  int64_t port = 0;
  int64_t proto = 0;
  int64_t max_payload = 0;
  bool headers = false;
  bool tls_required = false;
  bool tls_available = false;
  bool auth_required = false;
  bool jetstream = false;
  bool lame_duck_mode = false;  // "ldm": the server is shutting down; move elsewhere
  std::string nonce;
  std::string cluster;
  uint64_t client_id = 0;
  std::vector<std::string> connect_urls;  // "host:port" of the cluster's other servers
};

// Parses INFO's JSON object. Fails on malformed JSON, depth over kJsonMaxDepth, more than
// kInfoConnectUrlsMax connect_urls, or a known field of the wrong type.
absl::StatusOr<ServerInfo> ParseServerInfo(std::string_view json);

// CONNECT's fields (the document's CONNECT section). The defaults are what ringmq sends:
// verbose/pedantic off (no +OK per operation), echo off (a node never receives its own
// publishes: no_echo), headers and no_responders on.
struct ConnectOptions {
  bool verbose = false;
  bool pedantic = false;
  bool echo = false;
  bool headers = true;
  bool no_responders = true;
  bool tls_required = false;
  std::string_view lang = "ringmq";
  std::string_view version = "0.1.0";
  std::string_view name;  // the node name; omitted when empty
  std::string_view user;  // user/pass omitted when user is empty
  std::string_view pass;
  std::string_view auth_token;  // omitted when empty
  // nkey authentication (cluster/nkey.h): the user's public key and the signature of INFO's
  // nonce; both omitted when nkey is empty.
  std::string_view nkey;
  std::string_view sig;
  // jwt lane: decentralized authentication (the document's CONNECT: "jwt", "sig"): the user JWT
  // of a .creds file with the signature of the nonce by the user's seed. When jwt is set it
  // goes with sig and nkey is not sent (the JWT's subject names the user's key).
  std::string_view jwt;
};

// Header fields for HPUB, in order. Keys are HTTP-like tokens; values may be empty.
using HeaderField = std::pair<std::string_view, std::string_view>;

// Checks a subject for SUB (wildcards allowed) or PUB (`allow_wildcards` false).
absl::Status ValidateSubject(std::string_view subject, bool allow_wildcards);

// Each encoder appends one complete operation (with its CRLF) to `out`, or nothing on error.
absl::Status AppendConnect(const ConnectOptions& options, std::string& out);
absl::Status AppendPub(std::string_view subject, std::string_view reply, std::string_view payload,
                       std::string& out);
// `header_block` is a complete block as built by AppendHeaderBlock (or empty for none).
absl::Status AppendHpub(std::string_view subject, std::string_view reply,
                        std::string_view header_block, std::string_view payload, std::string& out);
// Builds "NATS/1.0\r\n" + "key: value\r\n"... + "\r\n".
absl::Status AppendHeaderBlock(std::span<const HeaderField> fields, std::string& out);
absl::Status AppendSub(std::string_view subject, std::string_view queue_group, uint64_t sid,
                       std::string& out);
// max_msgs: the server removes the subscription after that many more messages.
void AppendUnsub(uint64_t sid, std::optional<uint64_t> max_msgs, std::string& out);
void AppendPing(std::string& out);
void AppendPong(std::string& out);

// A parsed header block: its status line and fields (views into the block).
struct HeaderBlock {
  int status = 0;                   // e.g. 503 for "NATS/1.0 503" (no responders); 0 if none
  std::string_view description;     // text after the status code, if any
  std::vector<HeaderField> fields;  // at most kHeaderFieldsMax
};
inline constexpr size_t kHeaderFieldsMax = 256;
absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view block);

}  // namespace ringmq::cluster::nats

#endif  // RINGMQ_CLUSTER_NATS_PROTOCOL_H_
