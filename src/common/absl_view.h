// Sv: an absl::string_view of a std::string_view. Debian 12's Abseil has its own
// absl::string_view, distinct from std::string_view, and absl::StrCat, absl::StrFormat and the
// status messages take that one. One definition here for every file that needs it (unity builds,
// scripts/build.sh, compile several .cc files as one).
//
// Thread safety: a pure function.
#ifndef RINGMQ_COMMON_ABSL_VIEW_H_
#define RINGMQ_COMMON_ABSL_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace ringmq {

inline absl::string_view Sv(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace ringmq

#endif  // RINGMQ_COMMON_ABSL_VIEW_H_
