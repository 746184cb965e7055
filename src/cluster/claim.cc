#include "cluster/claim.h"

#include <charconv>
#include <functional>

#include "cluster/control.h"
#include "common/assert.h"

namespace ringmq::cluster {
namespace {

constexpr std::string_view kVersion = "1 ";
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

uint32_t ClaimBucket(std::string_view client_id) {
  return static_cast<uint32_t>(std::hash<std::string_view>{}(client_id) % kClaimBuckets);
}

void AppendClaimSubject(std::string_view prefix, uint32_t bucket, std::string& out) {
  RINGMQ_ASSERT(bucket < kClaimBuckets);
  char digits[8];
  const auto [end, error] = std::to_chars(digits, digits + sizeof(digits), bucket);
  RINGMQ_ASSERT(error == std::errc());
  AppendControlSubject(prefix, kClaimKind, {std::string_view(digits, end - digits)}, out);
}

void EncodeClaim(const Claim& claim, std::string& out) {
  RINGMQ_ASSERT(ValidNode(claim.node));
  RINGMQ_ASSERT(claim.client_id.size() <= kClaimClientIdMax);
  char digits[kKeyDigitsMax];
  const auto [end, error] = std::to_chars(digits, digits + sizeof(digits), claim.key);
  RINGMQ_ASSERT(error == std::errc());
  out.append(kVersion);
  out.append(digits, end);
  out.push_back(' ');
  out.append(claim.node);
  out.append(claim.clean_start ? " c\n" : " p\n");
  out.append(claim.client_id);
}

std::optional<Claim> ParseClaim(std::string_view payload) {
  if (!payload.starts_with(kVersion)) return std::nullopt;
  payload.remove_prefix(kVersion.size());
  Claim claim;
  // The key: 1 to 20 digits, no sign, within uint64.
  const size_t key_end = payload.find(' ');
  if (key_end == 0 || key_end == std::string_view::npos || key_end > kKeyDigitsMax) {
    return std::nullopt;
  }
  for (size_t i = 0; i < key_end; ++i) {
    if (payload[i] < '0' || payload[i] > '9') return std::nullopt;
  }
  const auto [ptr, error] = std::from_chars(payload.data(), payload.data() + key_end, claim.key);
  if (error != std::errc() || ptr != payload.data() + key_end) return std::nullopt;
  payload.remove_prefix(key_end + 1);
  // The node, then " c\n" or " p\n".
  const size_t node_end = payload.find(' ');
  if (node_end == std::string_view::npos) return std::nullopt;
  claim.node = payload.substr(0, node_end);
  if (!ValidNode(claim.node)) return std::nullopt;
  payload.remove_prefix(node_end);
  if (payload.size() < 3 || payload[0] != ' ' || payload[2] != '\n') return std::nullopt;
  if (payload[1] != 'c' && payload[1] != 'p') return std::nullopt;
  claim.clean_start = payload[1] == 'c';
  payload.remove_prefix(3);
  if (payload.size() > kClaimClientIdMax) return std::nullopt;
  claim.client_id = payload;
  return claim;
}

}  // namespace ringmq::cluster
