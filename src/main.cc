// ringmq: flags -> config -> broker. Nothing else lives here.
#include <sys/resource.h>

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <string>
#include <string_view>

#include "auth/auth_data.h"
#include "auth/passwd_tool.h"
#include "absl/strings/str_cat.h"
#include "cluster/nkey.h"
#include "common/log.h"
#include "common/systemd.h"
#include "config/options.h"
#include "listener/listener.h"
#include "persist/db_tool.h"
#include "ringmq/broker.h"
#include "ringmq/config.h"
#include "tls/context.h"

#ifdef RINGMQ_WITH_MIMALLOC
#include <mimalloc.h>
#endif

namespace {

// Each connection is a file descriptor: take the hard limit so max_connections is reachable.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string AllocatorName() {
#ifdef RINGMQ_WITH_MIMALLOC
  const int version = mi_version();
  return "mimalloc " + std::to_string(version / 100) + "." + std::to_string(version % 100 / 10) +
         "." + std::to_string(version % 10);
#else
  return "system malloc";
#endif
}

std::string ListenAddress(const ringmq::ListenerConfig& listener) {
  const bool v6 = listener.bind.find(':') != std::string::npos;
  return (v6 ? "[" + listener.bind + "]" : listener.bind) + ":" + std::to_string(listener.port);
}

// Every listener's address, in listener order: "127.0.0.1:1883, 0.0.0.0:8883".
std::string ListenAddresses(const ringmq::Config& config) {
  std::string text;
  for (const ringmq::ListenerConfig& listener : ringmq::listener::EffectiveListeners(config)) {
    if (!text.empty()) text += ", ";
    text += ListenAddress(listener);
  }
  return text;
}

// Checks that go beyond one value: files the config names must be readable. (The rules across
// listeners are checked by the parser; parsing the password and ACL files is done by the broker
// at start and here when --check-config asks.)
absl::Status CheckConsistency(const ringmq::Config& config) {
  for (const std::string* file : {&config.password_file, &config.acl_file}) {
    if (!file->empty() && access(file->c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError("cannot read " + *file + ": " + std::strerror(errno));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "passwd") {
    return ringmq::auth::RunPasswd(argc - 1, argv + 1, stdin, stderr);
  }
  if (argc >= 2 && std::string_view(argv[1]) == "db") {
    return ringmq::persist::RunDb(argc - 1, argv + 1, stdout, stderr);
  }
  absl::StatusOr<ringmq::config::CommandLine> command_line =
      ringmq::config::ParseCommandLine(argc, argv);
  if (!command_line.ok()) {
    std::fprintf(stderr, "ringmq: %s\n", std::string(command_line.status().message()).c_str());
    return 2;
  }
  if (command_line->show_help) {
    std::fputs(ringmq::config::HelpText().c_str(), stdout);
    return 0;
  }
  if (command_line->show_version) {
    std::printf("ringmq %s\n", RINGMQ_VERSION);
    return 0;
  }
  const ringmq::Config& config = command_line->config;
  if (absl::Status status = CheckConsistency(config); !status.ok()) {
    std::fprintf(stderr, "ringmq: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  if (command_line->check_config && ringmq::auth::AuthConfigured(config)) {
    if (absl::StatusOr<std::unique_ptr<ringmq::auth::AuthData>> auth =
            ringmq::auth::LoadAuthData(config, 1);
        !auth.ok()) {
      std::fprintf(stderr, "ringmq: %s\n", std::string(auth.status().message()).c_str());
      return 2;
    }
  }
  if (command_line->check_config && !config.cluster_credentials_file.empty()) {  // jwt lane
    // Read as the broker reads it at start; the error names the file, never the seed.
    if (absl::StatusOr<ringmq::cluster::UserCredentials> credentials =
            ringmq::cluster::ReadCredentialsFile(config.cluster_credentials_file);
        !credentials.ok() || credentials->jwt.empty()) {
      const std::string error =
          credentials.ok() ? absl::StrCat("credentials file ", config.cluster_credentials_file,
                                          ": no user JWT (a seed alone goes in nkey_seed_file)")
                           : std::string(credentials.status().message());
      std::fprintf(stderr, "ringmq: cluster: %s\n", error.c_str());
      return 2;
    }
  }
  if (command_line->check_config) {
    // Comments after the effective TOML, so the output stays a config file that checks the same.
    // Each TLS listener's certificate, key and CA file are read as the broker would read them.
    std::string listeners = "# listeners, in listener order:\n";
    for (const ringmq::ListenerConfig& listener : ringmq::listener::EffectiveListeners(config)) {
      listeners += "# listener " + ringmq::listener::Describe(listener) + "\n";
      if (!listener.tls()) continue;
      absl::StatusOr<std::string> checked = ringmq::tls::CheckListener(listener);
      if (!checked.ok()) {
        std::fprintf(stderr, "ringmq: %s\n", std::string(checked.status().message()).c_str());
        return 2;
      }
      absl::StrAppend(&listeners, "# listener ", ringmq::listener::ListenerName(listener), ": ",
                      *checked, "\n");
    }
    std::printf("config OK\n%s%s", ringmq::config::EffectiveToml(config).c_str(),
                listeners.c_str());
    return 0;
  }
  ringmq::SetLogLevel(config.log_level);
  RaiseFileLimit();

  // Signals are taken synchronously by this thread; shards inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGPIPE);
  sigaddset(&signals, SIGHUP);  // reloads TLS certificates, password and ACL files, NATS credentials
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ringmq::Broker broker(config);
  if (absl::Status status = broker.Start(); !status.ok()) {
    RINGMQ_LOG_ERROR("cannot start: %s", std::string(status.message()).c_str());
    return 1;
  }
  // The ready and counters lines are the operator's contract: logged at every log level.
  const std::string metrics_url = broker.metrics_url();
  ringmq::LogLine(
      ringmq::LogLevel::kInfo,
      "ringmq %s ready: accepting connections on %s (%u shards, %s, reject_policy %s); "
      "metrics %s",
      RINGMQ_VERSION, ListenAddresses(config).c_str(), broker.shard_count(),
      AllocatorName().c_str(), std::string(ringmq::config::ToString(config.reject_policy)).c_str(),
      metrics_url.empty() ? "off" : metrics_url.c_str());
  ringmq::NotifySystemd("READY=1\nSTATUS=accepting connections on " + ListenAddresses(config));

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number == SIGPIPE) continue;
    if (signal_number != SIGHUP) break;
    RINGMQ_LOG_INFO(
        "received SIGHUP: reloading TLS certificates, password and ACL files, NATS credentials");
    broker.Reload().IgnoreError();  // logged; on error the old data stays in use
  }
  RINGMQ_LOG_INFO("received %s: stopping", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  ringmq::NotifySystemd("STOPPING=1");
  broker.Stop();
  ringmq::LogLine(ringmq::LogLevel::kInfo, "counters: %s", broker.CountersSummary().c_str());
  if (broker.stopped_with_error()) {
    RINGMQ_LOG_ERROR("stopped on an error (logged above)");
    return 1;
  }
  RINGMQ_LOG_INFO("stopped");
  return 0;
}
