#include "proxy/layer.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "common/log.h"
#include "io/listener.h"

namespace ringmq::proxy {
namespace {

// Header strings come from the proxy: keep log lines to printable ASCII.
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

// PROXY-2.2.6, for the connection's log lines: "TLSv1.3 TLS_AES_128_GCM_SHA256 (at the proxy,
// client certificate CN=x verified)".
std::string DescribeSsl(const SslInfo& ssl) {
  std::string out = absl::StrCat(Printable(ssl.version.empty() ? "TLS" : ssl.version));
  if (!ssl.cipher.empty()) absl::StrAppend(&out, " ", Printable(ssl.cipher));
  absl::StrAppend(&out, " (at the proxy");
  if ((ssl.client & (SslInfo::kClientCertConn | SslInfo::kClientCertSess)) != 0) {
    absl::StrAppend(&out, ", client certificate");
    if (!ssl.cn.empty()) absl::StrAppend(&out, " CN=", Printable(ssl.cn));
    absl::StrAppend(&out, ssl.certificate_verified() ? " verified" : " not verified");
  }
  absl::StrAppend(&out, ")");
  return out;
}

void CountRefusal(Refusal refusal, metrics::ShardCounters& counters) {
  switch (refusal) {
    case Refusal::kMissing:
      counters.proxy_refused_missing.Add();
      return;
    case Refusal::kMalformedV1:
      counters.proxy_refused_malformed_v1.Add();
      return;
    case Refusal::kMalformedV2:
      counters.proxy_refused_malformed_v2.Add();
      return;
    case Refusal::kUnsupported:
      counters.proxy_refused_unsupported.Add();
      return;
    case Refusal::kTooLarge:
      counters.proxy_refused_too_large.Add();
      return;
  }
}

}  // namespace

ProxyLayer::ProxyLayer(ProxyProtocol accept) : accept_(accept) {
  RINGMQ_ASSERT(accept != ProxyProtocol::kOff);
}

net::TransportLayer::Result ProxyLayer::Receive(std::span<const uint8_t> in, ByteBuffer& up,
                                                ByteBuffer& down, net::PeerInfo& peer,
                                                metrics::ShardCounters& counters) {
  (void)down;  // PROXY-2: the receiver never answers
  if (open_) {
    up.insert(up.end(), in.begin(), in.end());
    return Result::kOk;
  }
  if (refused_) return Result::kClose;
  if (pending_.empty()) {
    // The usual case: the whole header in the first receive (PROXY-2: the sender writes it at
    // once), parsed where it lies.
    const Result result = Parse(in, up, peer, counters);
    if (!open_ && !refused_) pending_.assign(in.begin(), in.end());
    return result;
  }
  // The header arrives in pieces: add no more than the parser can still want, so pending_
  // stays within kMaxHeaderBytes; what follows the header goes up from `in` directly.
  RINGMQ_ASSERT(pending_.size() < kMaxHeaderBytes);
  const size_t take = std::min(in.size(), kMaxHeaderBytes - pending_.size());
  const size_t before = pending_.size();
  pending_.insert(pending_.end(), in.begin(), in.begin() + static_cast<ptrdiff_t>(take));
  const Result result = Parse(pending_, up, peer, counters);
  if (open_) {
    // Parse passed up the part of pending_ after the header; the rest of `in` follows it.
    up.insert(up.end(), in.begin() + static_cast<ptrdiff_t>(take), in.end());
    std::vector<uint8_t>().swap(pending_);
  } else if (!refused_) {
    RINGMQ_ASSERT(take == in.size() && pending_.size() > before);
  }
  return result;
}

net::TransportLayer::Result ProxyLayer::Parse(std::span<const uint8_t> bytes, ByteBuffer& up,
                                              net::PeerInfo& peer,
                                              metrics::ShardCounters& counters) {
  const ParseResult parsed = ParseHeader(bytes, accept_);
  switch (parsed.status) {
    case ParseResult::Status::kNeedMore:
      RINGMQ_ASSERT(bytes.size() < kMaxHeaderBytes);
      return Result::kOk;
    case ParseResult::Status::kRefused:
      refused_ = true;
      CountRefusal(parsed.refusal, counters);
      RINGMQ_LOG_DEBUG("PROXY header refused (%s) after %zu bytes",
                       std::string(RefusalName(parsed.refusal)).c_str(), bytes.size());
      std::vector<uint8_t>().swap(pending_);
      return Result::kClose;
    case ParseResult::Status::kDone:
      break;
  }
  const Header& header = parsed.header;
  RINGMQ_ASSERT(header.size > 0 && header.size <= bytes.size());
  open_ = true;
  if (header.source.has_value()) {
    peer.source = header.source;
    (header.version == 1 ? counters.proxy_header_v1 : counters.proxy_header_v2).Add();
  } else {
    counters.proxy_header_local.Add();
  }
  if (header.ssl.has_value() && (header.ssl->client & SslInfo::kClientSsl) != 0 &&
      peer.tls_description.empty()) {
    peer.tls_description = DescribeSsl(*header.ssl);
  }
  RINGMQ_LOG_DEBUG(
      "PROXY v%u header: client %s%s%s%s%s", header.version,
      header.source.has_value() ? io::AddressName(*header.source).c_str() : "(the socket's peer)",
      header.authority.empty() ? "" : ", authority ", Printable(header.authority).c_str(),
      peer.tls_description.empty() ? "" : ", ", peer.tls_description.c_str());
  up.insert(up.end(), bytes.begin() + static_cast<ptrdiff_t>(header.size), bytes.end());
  return Result::kOk;
}

void ProxyLayer::Send(std::span<const uint8_t> in, ByteBuffer& down) {
  RINGMQ_ASSERT(open_);
  down.insert(down.end(), in.begin(), in.end());
}

void ProxyLayer::CountTimeout(metrics::ShardCounters& counters) {
  RINGMQ_ASSERT(!open_);
  counters.proxy_timeout.Add();
}

}  // namespace ringmq::proxy
