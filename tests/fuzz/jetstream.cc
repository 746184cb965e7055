// libFuzzer target for the JetStream API subset (src/cluster/jetstream.h) and the retained
// stream's state machine that reads it (src/cluster/retained_sync.h).
//
// Input: one control byte, then text. The byte picks what the text is fed to:
//  - ParseApiReply: never crashes; a reply that parses has views inside the input; the same
//    text parses the same way twice;
//  - ParseDelivery: never crashes; a delivery that parses has non-empty stream and consumer
//    tokens inside the input;
//  - ParseSessionRecordReply (the session-record read, cluster/session_record.h): never
//    crashes; a record it finds round-trips through EncodeSessionRecord and came from at most
//    kRecordValueMax decoded bytes;
//  - a RetainedSync over a ready NatsLink, given the text as server bytes (MSG/HMSG to its
//    reply and deliver subscriptions after a scripted handshake and requests): never crashes
//    or asserts, applies only topics that map back from the stream's subjects, never holds more
//    pending updates than its bound, and hands its sink only property blocks that
//    mqtt::ValidateProperties accepts for a PUBLISH (rebuilt from the stream's header fields).
#include "cluster/jetstream.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cluster/nats_link.h"
#include "cluster/retained_sync.h"
#include "cluster/session_record.h"
#include "mqtt/properties.h"

namespace {

using ringmq::cluster::NatsLink;
using ringmq::cluster::NatsLinkOptions;
using ringmq::cluster::NatsLinkSink;
using ringmq::cluster::NatsMessage;
using ringmq::cluster::RetainedSync;
using ringmq::cluster::RetainedSyncOptions;
using ringmq::cluster::RetainedSyncSink;
namespace jetstream = ringmq::cluster::jetstream;

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

class Harness : public NatsLinkSink, public RetainedSyncSink {
 public:
  Harness() {
    NatsLinkOptions options;
    options.urls = {"nats://127.0.0.1:4222"};
    link_ = std::move(*NatsLink::Create(options, this));
    sync_ = std::make_unique<RetainedSync>(*link_,
                                           RetainedSyncOptions{.prefix = "",
                                                               .node_name = "n",
                                                               .shard = 0,
                                                               .consume = true,
                                                               .idle_heartbeat_ms = 1000,
                                                               .request_timeout_ms = 5000,
                                                               .retry_ms = 1000,
                                                               .ack_timeout_ms = 5000,
                                                               .pending_max = 4,
                                                               .start_id = 1},
                                           this);
  }

  void Run(std::string_view bytes) {
    link_->BeginConnect(0);
    link_->OnTransportConnected(0);
    link_->OnReceived(0, "INFO {\"server_id\":\"S\",\"headers\":true}\r\nPONG\r\n");
    sync_->OnTick(0);
    link_->OnReceived(1, "MSG $RINGMQ.retained.r.n.0.api.1 1 2\r\n{}\r\n");
    link_->OnReceived(2, "MSG $RINGMQ.retained.r.n.0.api.2 1 2\r\n{}\r\n");
    // The scripted start reaches the consumer, so the fuzzed bytes meet every phase's code.
    if (sync_->phase() != ringmq::cluster::RetainedSyncPhase::kConsuming) __builtin_trap();
    // Half with MQTT 5.0 properties (Content Type "t", a user property k=v): their fields.
    static constexpr uint8_t kProperties[] = {0x03, 0, 1, 't', 0x26, 0, 1, 'k', 0, 1, 'v'};
    for (int i = 0; i < 6; ++i) {
      sync_->Publish(
          i % 2 ? "a/b" : "c", "v", 1, 0,
          i % 3 == 0 ? std::span<const uint8_t>(kProperties) : std::span<const uint8_t>());
    }
    std::string out;
    link_->TakeOutput(out);
    // The fuzzed bytes, in two halves with ticks around them.
    const size_t half = bytes.size() / 2;
    link_->OnReceived(3, bytes.substr(0, half));
    sync_->OnTick(2000);
    if (link_->ready()) link_->OnReceived(4, bytes.substr(half));
    sync_->OnTick(9000);
    if (sync_->pending_count() > 4) __builtin_trap();
  }

  void OnReady(const ringmq::cluster::nats::ServerInfo&) override {}
  void OnMessage(const NatsMessage& message) override { sync_->OnMessage(message, 3); }
  void OnDisconnected(ringmq::cluster::DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
  void ApplyRetained(std::string_view topic, std::string_view, uint8_t qos, uint64_t,
                     std::span<const uint8_t> properties) override {
    if (topic.empty() || topic[0] == '$' || qos > 2) __builtin_trap();
    // The block rebuilt from the stream's header fields is always a valid PUBLISH block
    // (retained5 lane; mqtt5_headers.h), without a Message Expiry Interval.
    if (ringmq::mqtt::ValidateProperties(
            properties, ringmq::mqtt::PacketBit(ringmq::mqtt::PacketType::kPublish)) !=
        ringmq::mqtt::Violation::kNone) {
      __builtin_trap();
    }
  }

 private:
  std::unique_ptr<NatsLink> link_;
  std::unique_ptr<RetainedSync> sync_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0: {
      absl::StatusOr<jetstream::ApiReply> first = jetstream::ParseApiReply(text);
      absl::StatusOr<jetstream::ApiReply> second = jetstream::ParseApiReply(text);
      if (first.ok() != second.ok()) __builtin_trap();
      if (first.ok()) {
        if (!Inside(first->stream, text) || !Inside(first->name, text) ||
            !Inside(first->error_description, text) || !Inside(first->message_data, text) ||
            first->seq != second->seq) {
          __builtin_trap();
        }
      }
      break;
    }
    case 1: {
      const std::optional<jetstream::Delivery> delivery = jetstream::ParseDelivery(text);
      if (delivery && (delivery->stream.empty() || delivery->consumer.empty() ||
                       !Inside(delivery->stream, text) || !Inside(delivery->consumer, text))) {
        __builtin_trap();
      }
      break;
    }
    case 2: {
      std::string scratch;
      ringmq::cluster::SessionRecord record;
      if (ringmq::cluster::ParseSessionRecordReply(text, scratch, record) ==
          ringmq::cluster::RecordRead::kFound) {
        std::string again;
        ringmq::cluster::EncodeSessionRecord(record, again);  // asserts a valid node name
        const std::optional<ringmq::cluster::SessionRecord> back =
            ringmq::cluster::ParseSessionRecord(again);
        if (!back || back->node != record.node || back->key != record.key ||
            scratch.size() > ringmq::cluster::kRecordValueMax) {
          __builtin_trap();
        }
      }
      break;
    }
    default: {
      Harness harness;
      harness.Run(text);
      break;
    }
  }
  return 0;
}
