// The authentication and authorization data of the running broker: the parsed password file
// and ACL file, loaded at start and again on every SIGHUP (docs/auth.md, "Reload").
//
// AuthData is immutable once built. SharedAuth publishes the current one to every shard through
// an atomic pointer (concurrent/epoch_pointer.h); a replaced AuthData is freed through the
// shards' QSBR epoch domain, so a shard may use the pointer it loaded until the end of its loop
// iteration and must not keep it longer. Each AuthData has a version, greater than every earlier one, so
// caches and per-connection ACLs derived from it can tell they are stale.
//
// Thread safety: Load() from any shard (while online in the epoch domain); Replace() from one
// thread at a time (the broker's main thread).
#ifndef RINGMQ_AUTH_AUTH_DATA_H_
#define RINGMQ_AUTH_AUTH_DATA_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "auth/acl.h"
#include "auth/password_file.h"
#include "concurrent/epoch.h"
#include "concurrent/epoch_pointer.h"
#include "ringmq/config.h"

namespace ringmq::auth {

struct AuthData {
  uint64_t version = 0;
  bool allow_anonymous = true;
  std::optional<PasswordTable> passwords;  // nullopt: no password_file configured
  std::optional<AclFile> acl;              // nullopt: no acl_file configured

  // "N users, M ACL rules" for the log.
  std::string Summary() const;
};

// Reads and parses the files `config` names. Errors name FILE:LINE.
absl::StatusOr<std::unique_ptr<AuthData>> LoadAuthData(const Config& config, uint64_t version);

// True when the broker needs an authenticator at all: without a password file, an ACL file, or
// allow_anonymous = false (broker-wide or on a listener), every CONNECT is allowed and the
// admission path stays a null check.
bool AuthConfigured(const Config& config);

// The current AuthData for every shard (concurrent/epoch_pointer.h): Load() from any shard
// while online in the epoch domain; Replace() from the broker's main thread.
using SharedAuth = concurrent::EpochPointer<AuthData>;

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_AUTH_DATA_H_
