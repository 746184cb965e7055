// `ringmq passwd`: creates and edits password files, like mosquitto_passwd (docs/auth.md):
//
//   ringmq passwd [-c] [--scram] FILE USER   password read from the terminal (twice) or stdin
//   ringmq passwd [-c] [--scram] -b FILE USER PASSWORD
//   ringmq passwd -D FILE USER              delete USER
//
// -c creates FILE (overwriting it); otherwise FILE must exist and USER's entry is replaced or
// appended, every other line kept as it is. Entries are $7$ (PBKDF2-SHA512, 101 iterations, a
// 12-byte random salt), what mosquitto_passwd 2.0 writes by default; with --scram they are
// $scram-sha-256$ (PBKDF2-HMAC-SHA256, 4096 iterations, a 16-byte random salt: MQTT 5 SCRAM
// logins and plain passwords both work, Mosquitto cannot read them). The file is replaced
// atomically (a temporary file in the same folder, fsync, rename) with mode 0600.
//
// Thread safety: runs on the main thread before anything else; not reentrant.
#ifndef RINGMQ_AUTH_PASSWD_TOOL_H_
#define RINGMQ_AUTH_PASSWD_TOOL_H_

#include <cstdio>

namespace ringmq::auth {

// `argv[0]` is "passwd" (the subcommand). Reads a password from `in` when -b is not given;
// errors go to `err` (silent on success). Returns the exit status: 0 done, 1 failed, 2 usage.
int RunPasswd(int argc, char** argv, std::FILE* in, std::FILE* err);

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_PASSWD_TOOL_H_
