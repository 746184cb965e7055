// libFuzzer target for the NATS user credentials reader (jwt lane; src/cluster/nkey.h "User
// credentials"): ParseCredentials over any bytes (a .creds file, a seed file or neither).
// Checks:
//   - it never crashes and never reads past the input (ASan);
//   - credentials it accepts hold a user key ("U...", 56 characters) that signs;
//   - a JWT it accepts is within kUserJwtBytesMax, three non-empty parts of base64url (with
//     '=' only as padding), and appears in the input;
//   - the input read again gives the same credentials (the parse is a function of the bytes).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/nkey.h"

namespace ringmq::cluster {
namespace {

#define FUZZ_CHECK(condition)                                                               \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "creds invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

bool IsBase64UrlPart(std::string_view part) {
  while (!part.empty() && part.back() == '=') part.remove_suffix(1);
  if (part.empty()) return false;
  for (const char c : part) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

void CheckJwt(std::string_view jwt, std::string_view input) {
  FUZZ_CHECK(jwt.size() <= kUserJwtBytesMax);
  FUZZ_CHECK(input.find(jwt) != std::string_view::npos);
  const size_t first = jwt.find('.');
  FUZZ_CHECK(first != std::string_view::npos);
  const size_t second = jwt.find('.', first + 1);
  FUZZ_CHECK(second != std::string_view::npos);
  FUZZ_CHECK(jwt.find('.', second + 1) == std::string_view::npos);
  FUZZ_CHECK(IsBase64UrlPart(jwt.substr(0, first)));
  FUZZ_CHECK(IsBase64UrlPart(jwt.substr(first + 1, second - first - 1)));
  FUZZ_CHECK(IsBase64UrlPart(jwt.substr(second + 1)));
}

}  // namespace
}  // namespace ringmq::cluster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::cluster;
  if (size > kCredentialsFileBytesMax) return 0;  // ReadCredentialsFile's bound
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<UserCredentials> credentials = ParseCredentials(input);
  const absl::StatusOr<UserCredentials> again = ParseCredentials(std::string(input));
  FUZZ_CHECK(credentials.ok() == again.ok());
  if (!credentials.ok()) {
    FUZZ_CHECK(credentials.status() == again.status());
    return 0;
  }
  FUZZ_CHECK(credentials->jwt == again->jwt);
  FUZZ_CHECK(credentials->nkey.public_key() == again->nkey.public_key());
  FUZZ_CHECK(credentials->nkey.public_key().size() == 56);
  FUZZ_CHECK(credentials->nkey.public_key()[0] == 'U');
  FUZZ_CHECK(credentials->nkey.Sign("nonce").size() == 86);  // 64 bytes, base64url unpadded
  if (!credentials->jwt.empty()) CheckJwt(credentials->jwt, input);
  return 0;
}
