#include "auth/passwd_tool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "auth/password_file.h"
#include "auth/password_hash.h"
#include "auth/text_file.h"
#include "mqtt/topic.h"

namespace ringmq::auth {
namespace {

constexpr char kUsage[] =
    "usage: ringmq passwd [-c] [--scram] FILE USER   (password from the terminal or stdin)\n"
    "       ringmq passwd [-c] [--scram] -b FILE USER PASSWORD\n"
    "       ringmq passwd -D FILE USER\n"
    "  -c       create FILE, overwriting it\n"
    "  -b       take the password from the command line\n"
    "  -D       delete USER from FILE\n"
    "  --scram  write a $scram-sha-256$ entry (MQTT 5 SCRAM-SHA-256 and plain passwords;\n"
    "           Mosquitto cannot read it) instead of $7$\n";

// Passwords are MQTT binary data: at most 65535 bytes.
constexpr size_t kMaxPasswordBytes = 65535;

struct Options {
  bool create = false;
  bool batch = false;
  bool remove = false;
  bool scram = false;
  std::string file;
  std::string user;
  std::optional<std::string> password;
};

std::optional<Options> ParseArgs(int argc, char** argv, std::FILE* err) {
  Options options;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "-c") options.create = true;
    else if (flag == "-b") options.batch = true;
    else if (flag == "-D") options.remove = true;
    else if (flag == "--scram") options.scram = true;
    else {
      std::fprintf(err, "ringmq passwd: unknown option %s\n%s", argv[i], kUsage);
      return std::nullopt;
    }
  }
  const int positional = argc - i;
  const int wanted = options.batch ? 3 : 2;
  if (positional != wanted || (options.create && options.remove) ||
      (options.remove && (options.batch || options.scram))) {
    std::fputs(kUsage, err);
    return std::nullopt;
  }
  options.file = argv[i];
  options.user = argv[i + 1];
  if (options.batch) options.password = argv[i + 2];
  return options;
}

// One line from `in` without its line end; nullopt at end of input.
std::optional<std::string> ReadLine(std::FILE* in) {
  std::string line;
  int c = 0;
  while ((c = std::fgetc(in)) != EOF && c != '\n') {
    if (line.size() > kMaxPasswordBytes) return std::nullopt;
    line.push_back(static_cast<char>(c));
  }
  if (c == EOF && line.empty()) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// On a terminal: prompts twice with echo off and insists on the same answer. Piped: one line.
std::optional<std::string> ReadPassword(std::FILE* in, std::FILE* err) {
  const int fd = fileno(in);
  if (!isatty(fd)) {
    std::optional<std::string> line = ReadLine(in);
    if (!line) std::fputs("ringmq passwd: no password on stdin\n", err);
    return line;
  }
  termios saved{};
  tcgetattr(fd, &saved);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(fd, TCSANOW, &quiet);
  std::fputs("Password: ", err);
  std::optional<std::string> first = ReadLine(in);
  std::fputs("\nReenter password: ", err);
  std::optional<std::string> second = ReadLine(in);
  std::fputs("\n", err);
  tcsetattr(fd, TCSANOW, &saved);
  if (!first || !second || *first != *second) {
    std::fputs("ringmq passwd: passwords do not match\n", err);
    return std::nullopt;
  }
  return first;
}

// The user an existing line is for, or empty for comments, blank and unparsable lines.
std::string_view UserOfLine(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  if (line.empty() || line.front() == '#') return {};
  const size_t colon = line.find(':');
  return colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
}

bool WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t wrote = write(fd, text.data(), text.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    text.remove_prefix(static_cast<size_t>(wrote));
  }
  return true;
}

// Temporary file next to `path`, mode 0600, fsync, rename over `path`.
bool ReplaceFile(const std::string& path, std::string_view text, std::FILE* err) {
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    std::fprintf(err, "ringmq passwd: cannot create %s: %s\n", temp.c_str(), strerror(errno));
    return false;
  }
  const bool ok = fchmod(fd, S_IRUSR | S_IWUSR) == 0 && WriteAll(fd, text) && fsync(fd) == 0;
  const int error = errno;
  close(fd);
  if (!ok || rename(temp.c_str(), path.c_str()) != 0) {
    std::fprintf(err, "ringmq passwd: cannot write %s: %s\n", path.c_str(),
                 strerror(ok ? errno : error));
    unlink(temp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int RunPasswd(int argc, char** argv, std::FILE* in, std::FILE* err) {
  std::optional<Options> options = ParseArgs(argc, argv, err);
  if (!options) return 2;
  const std::string& user = options->user;
  if (user.empty() || user.size() > kMaxUserNameBytes || user.find(':') != std::string::npos ||
      mqtt::ValidateUtf8(user) != mqtt::Violation::kNone) {
    std::fputs("ringmq passwd: the user name must be 1 to 65535 bytes of UTF-8 without ':'\n",
               err);
    return 1;
  }
  std::string existing;
  if (!options->create) {
    absl::StatusOr<std::string> text = ReadTextFile(options->file);
    if (!text.ok()) {
      std::fprintf(err, "ringmq passwd: %s\n", std::string(text.status().message()).c_str());
      return 1;
    }
    existing = std::move(*text);
  }
  std::string entry;
  if (!options->remove) {
    if (!options->password) options->password = ReadPassword(in, err);
    if (!options->password) return 1;
    if (options->password->empty() || options->password->size() > kMaxPasswordBytes) {
      std::fputs("ringmq passwd: the password must be 1 to 65535 bytes\n", err);
      return 1;
    }
    std::optional<PasswordHash> hash = options->scram ? NewScramHash(*options->password)
                                                      : NewPasswordHash(*options->password);
    if (!hash) {
      std::fputs("ringmq passwd: no random bytes for the salt (RAND_bytes failed)\n", err);
      return 1;
    }
    entry = user + ":" + FormatPasswordHash(*hash) + "\n";
  }
  // Every line kept, except USER's own, which is replaced (in place) or removed.
  std::string result;
  bool found = false;
  std::string_view rest = existing;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    if (UserOfLine(line) == user) {
      if (!found) result += entry;
      found = true;
      continue;
    }
    result.append(line);
    result += '\n';
  }
  if (options->remove && !found) {
    std::fprintf(err, "ringmq passwd: user %s not found in %s\n", user.c_str(),
                 options->file.c_str());
    return 1;
  }
  if (!found) result += entry;
  // Silent on success, like mosquitto_passwd.
  return ReplaceFile(options->file, result, err) ? 0 : 1;
}

}  // namespace ringmq::auth
