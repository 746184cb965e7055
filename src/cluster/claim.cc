#include "cluster/claim.h"

#include <charconv>

#include "cluster/control.h"
#include "common/assert.h"

namespace ringmq::cluster {
namespace {

constexpr std::string_view kVersion = "2 ";
constexpr size_t kKeyDigitsMax = 20;  // UINT64_MAX

// Printable ASCII without space, as node names are (config: IsValidNodeName, which also
// refuses '.', '*' and '>'); so a node name read from NATS is safe to log as it is.
bool ValidNode(std::string_view node) {
  if (node.empty() || node.size() > kClaimNodeMax) return false;
  for (const char c : node) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

void AppendClaimSubject(std::string_view prefix, uint32_t group, std::string& out) {
  RINGMQ_ASSERT(group < kClaimBuckets);
  char digits[8];
  const auto [end, error] = std::to_chars(digits, digits + sizeof(digits), group);
  RINGMQ_ASSERT(error == std::errc());
  AppendControlSubject(prefix, kClaimKind, {std::string_view(digits, end - digits)}, out);
}

void ClaimBatchWriter::Begin(std::string_view node, std::string& out) {
  RINGMQ_ASSERT(ValidNode(node));
  claims_ = 0;
  out.clear();
  out.append(kVersion);
  out.append(node);
  out.push_back('\n');
}

void ClaimBatchWriter::Add(uint64_t key, bool clean_start, std::string_view client_id,
                           std::string& out) {
  RINGMQ_ASSERT(client_id.size() <= kClaimClientIdMax);
  char digits[kKeyDigitsMax];
  const std::to_chars_result key_chars = std::to_chars(digits, digits + sizeof(digits), key);
  RINGMQ_ASSERT(key_chars.ec == std::errc());
  out.append(digits, key_chars.ptr);
  out.append(clean_start ? " c " : " p ");
  const std::to_chars_result length_chars =
      std::to_chars(digits, digits + sizeof(digits), client_id.size());
  RINGMQ_ASSERT(length_chars.ec == std::errc());
  out.append(digits, length_chars.ptr);
  out.push_back('\n');
  out.append(client_id);
  ++claims_;
}

bool ClaimBatchReader::Open(std::string_view payload) {
  node_ = {};
  rest_ = {};
  if (!payload.starts_with(kVersion)) return false;
  payload.remove_prefix(kVersion.size());
  const size_t node_end = payload.find('\n');
  if (node_end == std::string_view::npos) return false;
  const std::string_view node = payload.substr(0, node_end);
  if (!ValidNode(node)) return false;
  payload.remove_prefix(node_end + 1);
  if (payload.empty()) return false;  // at least one claim
  // Every record well formed, up to the last byte, before any is given out.
  std::string_view check = payload;
  Claim claim;
  while (!check.empty()) {
    if (!ReadRecord(check, claim)) return false;
  }
  node_ = node;
  rest_ = payload;
  return true;
}

bool ClaimBatchReader::Next(Claim& claim) {
  if (rest_.empty()) return false;
  const bool read = ReadRecord(rest_, claim);
  RINGMQ_ASSERT(read);  // Open checked it
  claim.node = node_;
  return true;
}

bool ClaimBatchReader::ReadRecord(std::string_view& rest, Claim& claim) {
  // "<key> <c|p> <length>\n": the key 1 to 20 digits within uint64, no sign, no leading zero
  // (one spelling per batch: what reads writes back to the same bytes).
  const size_t key_end = rest.find(' ');
  if (key_end == 0 || key_end == std::string_view::npos || key_end > kKeyDigitsMax) return false;
  if (rest[0] == '0' && key_end > 1) return false;
  for (size_t i = 0; i < key_end; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return false;
  }
  const auto [key_ptr, key_error] = std::from_chars(rest.data(), rest.data() + key_end, claim.key);
  if (key_error != std::errc() || key_ptr != rest.data() + key_end) return false;
  rest.remove_prefix(key_end);
  if (rest.size() < 3 || rest[0] != ' ' || rest[2] != ' ') return false;
  if (rest[1] != 'c' && rest[1] != 'p') return false;
  claim.clean_start = rest[1] == 'c';
  rest.remove_prefix(3);
  // The length: 1 to 5 digits (no leading zero), at most kClaimClientIdMax, then '\n' and
  // that many bytes.
  const size_t length_end = rest.find('\n');
  if (length_end == 0 || length_end == std::string_view::npos || length_end > 5) return false;
  if (rest[0] == '0' && length_end > 1) return false;
  size_t length = 0;
  for (size_t i = 0; i < length_end; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return false;
    length = length * 10 + static_cast<size_t>(rest[i] - '0');
  }
  if (length > kClaimClientIdMax) return false;
  rest.remove_prefix(length_end + 1);
  if (rest.size() < length) return false;
  claim.client_id = rest.substr(0, length);
  rest.remove_prefix(length);
  return true;
}

}  // namespace ringmq::cluster
