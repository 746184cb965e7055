// One strict JSON reader for the cluster's parsers of server-sent JSON: the NATS INFO line
// (nats_protocol.cc) and JetStream API replies (jetstream.cc).
//
// Contract:
//  - Strict RFC 8259 grammar: no comments, no trailing commas, no leading zeros, no control
//    bytes in strings, only the escapes \" \\ \/ \b \f \n \r \t \uXXXX. Bytes >= 0x80 are passed
//    through unchecked (the callers compare or log them, they do not interpret UTF-8).
//  - Bounded depth, no recursion: SkipValue tracks nesting in an array of kMaxDepth closers, so
//    any input is safe; callers that descend into objects themselves (Object inside a field
//    callback) do so to a depth fixed by their code, not by the input.
//  - Views into the input: String, Number and Key return std::string_view into the text given to
//    the constructor (or into caller-owned storage for a decoded key), valid while it lives.
//    DecodedString unescapes into a caller's std::string (\uXXXX to UTF-8, surrogate pairs
//    joined).
//  - Strings::kDecoded readers (INFO) decode keys and reject a lone surrogate in every string,
//    read or skipped, since it cannot be decoded; Strings::kRaw readers (JetStream) accept what
//    the grammar accepts and return keys raw.
//  - Errors are absl::InvalidArgumentError("<context>: <what> at byte <offset>").
//
// Thread safety: none needed; a Reader is a value type (a view and an offset) used by one
// caller on one thread.
#ifndef RINGMQ_CLUSTER_JSON_READER_H_
#define RINGMQ_CLUSTER_JSON_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringmq::cluster::json {

// Most containers open at once in any value a Reader accepts.
inline constexpr int kMaxDepth = 16;

class Reader {
 public:
  enum class Strings : uint8_t { kRaw, kDecoded };

  // context prefixes error messages ("INFO JSON").
  Reader(std::string_view text, std::string_view context, Strings strings)
      : text_(text), context_(context), strings_(strings) {}

  void SkipWhitespace();
  bool AtEnd() const { return pos_ >= text_.size(); }
  size_t position() const { return pos_; }
  // Skips whitespace, then consumes c if it is next.
  bool Consume(char c);
  // Consumes word (true, false, null) if it starts exactly here (no whitespace skipped).
  bool Literal(std::string_view word);
  absl::Status Error(std::string_view what) const;

  // A string's bytes between the quotes, escapes kept (checked, not decoded).
  absl::StatusOr<std::string_view> String();
  // A string, unescaped into out (cleared first). Rejects lone surrogates in either mode.
  absl::Status DecodedString(std::string& out);
  // A number's text (RFC 8259 grammar).
  absl::StatusOr<std::string_view> Number();
  // A number that is an int64 (no fraction, no exponent, in range).
  absl::StatusOr<int64_t> Integer();
  absl::StatusOr<bool> Bool();

  // An object key and its ':'. kRaw: the raw key. kDecoded: the decoded key, a view into the
  // input when it has no escapes, else into storage.
  absl::StatusOr<std::string_view> Key(std::string& storage);

  // Skips one value of any type. depth: containers already open around it; fails when the
  // value would take nesting past kMaxDepth.
  absl::Status SkipValue(int depth);

  // Reads the object that starts here, calling field(key) for each member; field must read
  // (or skip) the member's value. The key view lives until field returns.
  template <typename Fn>
  absl::Status Object(Fn field) {
    if (!Consume('{')) return Error("object expected");
    if (Consume('}')) return absl::OkStatus();
    std::string storage;
    while (true) {
      absl::StatusOr<std::string_view> key = Key(storage);
      if (!key.ok()) return key.status();
      if (absl::Status status = field(*key); !status.ok()) return status;
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("',' or '}' expected");
    }
  }

 private:
  // Scans a string after whitespace; check_surrogates also rejects lone surrogates.
  absl::StatusOr<std::string_view> ScanString(bool check_surrogates);
  absl::StatusOr<uint32_t> ScanHex4();
  absl::Status ScanUnicodeEscape(bool check_surrogates);
  absl::Status SkipKeyColon();

  std::string_view text_;
  std::string_view context_;
  Strings strings_;
  size_t pos_ = 0;
};

}  // namespace ringmq::cluster::json

#endif  // RINGMQ_CLUSTER_JSON_READER_H_
