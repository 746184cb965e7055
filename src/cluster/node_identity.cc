#include "cluster/node_identity.h"

#include <charconv>

#include "absl/strings/str_format.h"
#include "cluster/control.h"

namespace ringmq::cluster {
namespace {

constexpr std::string_view kNodeVersion = "v1 ";

// The next space-separated field of `text`, removed from it.
std::string_view NextField(std::string_view& text) {
  const size_t space = text.find(' ');
  const std::string_view field = text.substr(0, space);
  text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
  return field;
}

bool ParseNumber(std::string_view text, int base, uint64_t& value) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

NodeIdentity::NodeIdentity(std::string_view prefix, std::string_view node_name,
                           uint64_t started_unix_ms, uint64_t instance)
    : subject_(ControlSubject(prefix, kNodeAnnounceKind, {node_name})),
      payload_(absl::StrFormat("%s%u %016x", kNodeVersion, started_unix_ms, instance)),
      started_unix_ms_(started_unix_ms),
      instance_(instance) {}

NodeIdentity::Judgement NodeIdentity::Judge(std::string_view payload) const {
  Judgement judgement;
  if (!payload.starts_with(kNodeVersion)) return judgement;
  payload.remove_prefix(kNodeVersion.size());
  const std::string_view started = NextField(payload);
  const std::string_view instance = NextField(payload);
  if (!payload.empty() || !ParseNumber(started, 10, judgement.other_started_unix_ms) ||
      !ParseNumber(instance, 16, judgement.other_instance)) {
    return judgement;
  }
  if (judgement.other_instance == instance_) {
    judgement.verdict = Verdict::kSelf;
    return judgement;
  }
  // The earlier start wins; equal starts: the lower instance number (each side decides alike).
  const bool other_is_older =
      judgement.other_started_unix_ms != started_unix_ms_
          ? judgement.other_started_unix_ms < started_unix_ms_
          : judgement.other_instance < instance_;
  judgement.verdict = other_is_older ? Verdict::kThisIsNewer : Verdict::kOtherIsNewer;
  return judgement;
}

}  // namespace ringmq::cluster
