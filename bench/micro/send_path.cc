// Copy or gather for a delivery's bytes (issue 12): what a shard pays per delivered PUBLISH to
// get it onto a stream socket, with the bytes copied into the connection's output buffer first
// (what Session::WriteOne does today) or handed to the kernel as an iovec that points into the
// shared, immutable Message.
//
// - BM_SendCopy/transport:<t>/payload:<p>/batch:<b>: each of b messages (QoS 0, p-byte payload)
//   is encoded with mqtt::EncodePublishParts into one reused ByteBuffer, then the buffer is
//   written with send() (looping over partial sends).
// - BM_SendGather/...: each message's fixed header (1 byte + remaining length) is encoded into a
//   small per-delivery array; the iovec list is [header_0, topic+payload_0, header_1, ...] (the
//   Message holds its length-prefixed topic and payload side by side, so a QoS 0 delivery is two
//   iovecs) and written with sendmsg() (looping over partial sends with an iovec cursor).
//
// transport 0 is an AF_UNIX SOCK_STREAM socketpair, 1 a loopback TCP connection (TCP_NODELAY).
// The other end is drained by a reader thread with a 1 MiB buffer, so the sender rarely blocks.
// Time is the sending thread's CPU time (Google Benchmark's default), which is what a shard
// spends; the reader's copy out of the socket is the same for both and not counted.
// Counters: ns_per_message (sender CPU per delivered message) and bytes_per_second (wire bytes).
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "common/byte_buffer.h"
#include "message/message.h"
#include "mqtt/codec.h"
#include "statistics.h"

namespace ringmq::bench {
namespace {

using message::MessageRef;

constexpr char kTopic[] = "site/7/sensors/temperature";
constexpr int kSocketBuffer = 4 << 20;

// A connected stream socket pair whose read end is drained by a thread until the write end is
// closed.
class Drained {
 public:
  explicit Drained(bool tcp) {
    if (tcp) {
      ConnectTcp();
    } else {
      int fds[2];
      RINGMQ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
      send_fd_ = fds[0];
      read_fd_ = fds[1];
    }
    // Best effort: the kernel caps these at net.core.wmem_max / rmem_max.
    setsockopt(send_fd_, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof(kSocketBuffer));
    setsockopt(read_fd_, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof(kSocketBuffer));
    reader_ = std::thread([fd = read_fd_] {
      std::vector<uint8_t> buffer(1 << 20);
      while (true) {
        const ssize_t n = read(fd, buffer.data(), buffer.size());
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        break;
      }
    });
  }
  ~Drained() {
    shutdown(send_fd_, SHUT_WR);
    reader_.join();
    close(send_fd_);
    close(read_fd_);
  }
  Drained(const Drained&) = delete;
  Drained& operator=(const Drained&) = delete;

  int fd() const { return send_fd_; }

 private:
  void ConnectTcp() {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    RINGMQ_ASSERT(listener >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    RINGMQ_ASSERT(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    RINGMQ_ASSERT(listen(listener, 1) == 0);
    socklen_t length = sizeof(address);
    RINGMQ_ASSERT(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    send_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    RINGMQ_ASSERT(send_fd_ >= 0);
    RINGMQ_ASSERT(connect(send_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    read_fd_ = accept(listener, nullptr, nullptr);
    RINGMQ_ASSERT(read_fd_ >= 0);
    close(listener);
    const int one = 1;
    setsockopt(send_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }

  int send_fd_ = -1;
  int read_fd_ = -1;
  std::thread reader_;
};

// Writes all of `bytes` with send(), as the shard does after a partial send.
void SendAll(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    RINGMQ_ASSERT(n > 0);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

// Writes all of `iov` with sendmsg(); a partial send moves the cursor past the iovecs it
// finished and into the one it stopped in (which is why `iov` is mutable).
void SendAllGathered(int fd, std::span<iovec> iov) {
  size_t first = 0;
  while (first < iov.size()) {
    msghdr header{};
    header.msg_iov = &iov[first];
    header.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    const ssize_t n = sendmsg(fd, &header, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    RINGMQ_ASSERT(n > 0);
    auto left = static_cast<size_t>(n);
    while (left > 0 && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

// The fixed header of a QoS 0 PUBLISH without DUP or RETAIN: type byte and remaining length
// (MQTT 3.1.1 §2.2.3). mqtt/codec.h's EncodePublishHeader also writes the topic, which a gathered
// send takes from the Message, so the two fields are encoded here. At QoS > 0 the packet id
// follows the topic, so a gathered delivery would need four iovecs (header, topic, packet id,
// payload) instead of two.
size_t EncodeQos0FixedHeader(uint32_t remaining_length, std::span<uint8_t> out) {
  RINGMQ_ASSERT(out.size() >= mqtt::kMaxFixedHeaderLength);
  RINGMQ_ASSERT(remaining_length <= mqtt::kMaxRemainingLength);
  size_t at = 0;
  out[at++] = 0x30;
  do {
    uint8_t byte = remaining_length % 128;
    remaining_length /= 128;
    if (remaining_length > 0) byte |= 0x80;
    out[at++] = byte;
  } while (remaining_length > 0);
  return at;
}

// The gathered bytes of one delivery are those EncodePublishParts writes.
void AssertSameBytes(const message::Message& message) {
  const mqtt::PublishParts parts{.encoded_topic = message.encoded_topic(),
                                 .payload = message.payload()};
  std::vector<uint8_t> copied(mqtt::EncodedPublishPartsSize(parts));
  mqtt::EncodePublishParts(parts, copied);
  std::array<uint8_t, mqtt::kMaxFixedHeaderLength> header;
  const size_t header_size = EncodeQos0FixedHeader(message.RemainingLength(0), header);
  std::vector<uint8_t> gathered(header.begin(), header.begin() + header_size);
  gathered.insert(gathered.end(), message.encoded_topic().begin(), message.encoded_topic().end());
  gathered.insert(gathered.end(), message.payload().begin(), message.payload().end());
  RINGMQ_ASSERT(gathered == copied);
}

struct Batch {
  Batch(size_t payload_size, size_t count) {
    const std::vector<uint8_t> payload(payload_size, 'x');
    for (size_t i = 0; i < count; ++i) {
      messages.push_back(MessageRef::Create(kTopic, payload, 0, false));
    }
  }
  std::vector<MessageRef> messages;
};

void Report(benchmark::State& state, size_t batch, size_t wire_bytes) {
  const auto messages = static_cast<double>(state.iterations() * batch);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire_bytes));
  // A rate over CPU seconds, inverted: seconds per message; scaled by 1e-9 to read in ns.
  state.counters["ns_per_message"] = benchmark::Counter(
      messages * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_SendCopy(benchmark::State& state) {
  const bool tcp = state.range(0) != 0;
  const auto payload_size = static_cast<size_t>(state.range(1));
  const auto count = static_cast<size_t>(state.range(2));
  Batch batch(payload_size, count);
  Drained socket(tcp);
  ByteBuffer out;
  size_t wire_bytes = 0;
  for (auto _ : state) {
    out.clear();
    for (const MessageRef& ref : batch.messages) {
      const message::Message& message = *ref.get();
      const mqtt::PublishParts parts{.encoded_topic = message.encoded_topic(),
                                     .payload = message.payload()};
      const size_t size = mqtt::EncodedPublishPartsSize(parts);
      const size_t old_size = out.size();
      out.resize(old_size + size);
      mqtt::EncodePublishParts(parts, std::span<uint8_t>(out).subspan(old_size));
    }
    SendAll(socket.fd(), out);
    wire_bytes = out.size();
  }
  Report(state, count, wire_bytes);
}

void BM_SendGather(benchmark::State& state) {
  const bool tcp = state.range(0) != 0;
  const auto payload_size = static_cast<size_t>(state.range(1));
  const auto count = static_cast<size_t>(state.range(2));
  Batch batch(payload_size, count);
  Drained socket(tcp);
  std::vector<std::array<uint8_t, mqtt::kMaxFixedHeaderLength>> headers(count);
  std::vector<iovec> iov(2 * count);
  AssertSameBytes(*batch.messages[0].get());
  size_t wire_bytes = 0;
  for (auto _ : state) {
    wire_bytes = 0;
    for (size_t i = 0; i < count; ++i) {
      const message::Message& message = *batch.messages[i].get();
      const std::span<const uint8_t> topic = message.encoded_topic();
      const std::span<const uint8_t> payload = message.payload();
      RINGMQ_ASSERT(topic.data() + topic.size() == payload.data());
      const size_t header_size = EncodeQos0FixedHeader(message.RemainingLength(0), headers[i]);
      iov[2 * i] = {headers[i].data(), header_size};
      iov[2 * i + 1] = {const_cast<uint8_t*>(topic.data()), topic.size() + payload.size()};
      wire_bytes += header_size + topic.size() + payload.size();
    }
    SendAllGathered(socket.fd(), iov);
  }
  Report(state, count, wire_bytes);
}

// Copy and gather of the same case are registered next to each other, so that the two run
// within seconds of each other and their ratio is measured under the same machine load.
void Register() {
  for (int64_t transport : {0, 1}) {
    for (int64_t payload : {64, 1024, 16 * 1024, 256 * 1024}) {
      for (int64_t count : {1, 16}) {
        for (auto [name, function] :
             {std::pair{"BM_SendCopy", &BM_SendCopy}, std::pair{"BM_SendGather", &BM_SendGather}}) {
          benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name, function);
          ConfigureRepetitions(b, 5);
          b->ArgNames({"transport", "payload", "batch"})->Args({transport, payload, count});
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringmq::bench

int main(int argc, char** argv) {
  ringmq::bench::Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
