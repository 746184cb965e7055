// Shard: the share link (shard.h, "The share link"; docs/cluster.md, "Shared subscriptions").
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "shard/shard.h"

namespace ringmq::shard {
namespace {

constexpr uint64_t kShareWarningIntervalMs = 10'000;

}  // namespace

// The share link's events: its messages go to the router's groups, its socket is handled as
// the main link's (CloseNatsSocket), its connection events are counted apart.
class Shard::ShareLinkSink final : public cluster::NatsLinkSink {
 public:
  explicit ShareLinkSink(Shard& shard) : shard_(shard) {}

  void OnReady(const cluster::nats::ServerInfo& info) override {
    NatsIo& nats = *shard_.nats_share_;
    shard_.counters_.cluster_share_link_connects.Add();
    if (nats.ever_ready) shard_.counters_.cluster_share_link_reconnects.Add();
    RINGMQ_LOG(nats.ever_ready ? LogLevel::kDebug : LogLevel::kInfo,
               "shard %u: NATS share link %s (server %s, %s:%u)", shard_.index_,
               nats.ever_ready ? "reconnected" : "ready", info.server_name.c_str(),
               nats.link->current_server().host.c_str(), nats.link->current_server().port);
    nats.ever_ready = true;
  }

  void OnMessage(const cluster::NatsMessage& message) override {
    shard_.router_->OnClusterShareMessage(message);
  }

  void OnDisconnected(cluster::DisconnectReason reason, std::string_view detail) override {
    NatsIo& nats = *shard_.nats_share_;
    shard_.counters_.cluster_share_link_disconnects.Add();
    shard_.CloseNatsSocket(nats);
    if (reason == cluster::DisconnectReason::kTls) {
      shard_.NoteNatsTlsFailure(nats, "share link", detail);
    }
    if (reason == cluster::DisconnectReason::kAuthorization) {  // jwt lane
      shard_.counters_.cluster_link_auth_refused.Add();
    }
    const bool quiet = reason == cluster::DisconnectReason::kStopped ||
                       reason == cluster::DisconnectReason::kConnectFailed ||
                       reason == cluster::DisconnectReason::kTls;  // logged apart
    if (!quiet && shard_.now_ms_ >= nats.next_warning_ms) {
      nats.next_warning_ms = shard_.now_ms_ + kShareWarningIntervalMs;
      RINGMQ_LOG_WARNING("shard %u: NATS share link lost (%.*s: %.*s); reconnecting", shard_.index_,
                         static_cast<int>(cluster::DisconnectReasonName(reason).size()),
                         cluster::DisconnectReasonName(reason).data(),
                         static_cast<int>(detail.size()), detail.data());
    }
  }

  void OnServerError(std::string_view text) override {
    NatsIo& nats = *shard_.nats_share_;
    if (shard_.now_ms_ < nats.next_warning_ms) return;
    nats.next_warning_ms = shard_.now_ms_ + kShareWarningIntervalMs;
    RINGMQ_LOG_WARNING("shard %u: NATS server error on the share link: %.*s", shard_.index_,
                       static_cast<int>(text.size()), text.data());
  }

 private:
  Shard& shard_;
};

absl::Status Shard::SetupShareLink() {
  cluster::NatsLinkOptions options = NatsOptions();
  options.name = absl::StrCat(options.name, "/share");
  options.random_seed ^= 0x5A4A2E;  // its own back-off jitter
  nats_share_sink_ = std::make_unique<ShareLinkSink>(*this);
  auto nats = std::make_unique<NatsIo>();
  nats->slot = kNatsSlotShare;
  absl::StatusOr<std::unique_ptr<cluster::NatsLink>> link =
      cluster::NatsLink::Create(std::move(options), nats_share_sink_.get());
  if (!link.ok()) return link.status();
  nats->link = std::move(*link);
  nats->receive_buffer.resize(kNatsReceiveBytes);
  nats_share_ = std::move(nats);
  router_->AttachClusterShares(nats_share_->link.get());
  return absl::OkStatus();
}

}  // namespace ringmq::shard
