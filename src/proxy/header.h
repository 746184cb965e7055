// The PROXY protocol header (haproxy.org doc/proxy-protocol.txt, "the spec" below): the block a
// load balancer in front of ringmq writes at the start of each connection to say whom it
// accepted that connection from. Version 1 (PROXY-2.1) is one line of text, version 2
// (PROXY-2.2) a binary block with optional TLVs (PROXY-2.2.1 .. 2.2.7).
//
// ParseHeader is a pure function over the bytes a connection has received so far: it says
// "need more", "refused, because ..." or "a header of N bytes". It never reads past the bound
// of the version it sees, so a caller that buffers until it answers holds at most
// kMaxHeaderBytes. It is the only code that reads untrusted header bytes (fuzzed:
// tests/fuzz/proxy_header.cc).
//
// What is accepted:
//   v1: "PROXY TCP4 <ipv4> <ipv4> <port> <port>\r\n", the same with TCP6 and IPv6 addresses,
//       and "PROXY UNKNOWN ...\r\n" (the rest of the line ignored, PROXY-2.1); at most 107
//       bytes; addresses and ports in canonical form (no leading zeros, ports 0..65535).
//   v2: the 12-byte signature, version 2, command LOCAL or PROXY, a family/transport pair the
//       spec defines, an address block of the family's size or more, TLVs that tile the rest
//       of the block exactly, a CRC32c TLV (if any) that matches.
// A header names the client (Header::source) only for PROXY/TCP4, PROXY/TCP6 (v1) and the
// PROXY command over AF_INET/AF_INET6 (v2). v1 UNKNOWN, v2 LOCAL, and v2 AF_UNSPEC or AF_UNIX
// or a DGRAM transport are accepted without a source: the connection keeps the socket's address
// (PROXY-2.1 UNKNOWN; PROXY-2.2 LOCAL; UNSPEC and unsupported protocols fall back to UNSPEC).
//
// Thread safety: stateless.
#ifndef RINGMQ_PROXY_HEADER_H_
#define RINGMQ_PROXY_HEADER_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ringmq/config.h"

namespace ringmq::proxy {

// PROXY-2.1: the longest v1 line, "PROXY UNKNOWN <39> <39> 65535 65535\r\n".
inline constexpr size_t kMaxV1Bytes = 107;
// The spec lets a v2 header be 16 + 65,535 bytes. ringmq takes at most this many: the address
// block (at most 216 bytes, AF_UNIX) plus the TLVs a load balancer sends (SNI up to 255 bytes,
// a unique id up to 128, the TLS TLV with its version, cipher, algorithms and client CN) fit
// several times over. Longer headers are refused as too_large before their bytes are read.
inline constexpr size_t kMaxV2Bytes = 2048;
inline constexpr size_t kMaxHeaderBytes = kMaxV2Bytes;
static_assert(kMaxV1Bytes < kMaxV2Bytes);

// PROXY-2.2: the first 12 bytes of every v2 header.
inline constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                             0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// Why a connection's first bytes were refused; each is a counter (docs/metrics.md).
enum class Refusal : uint8_t {
  kMissing,      // the bytes begin neither "PROXY" nor the v2 signature
  kMalformedV1,  // off the v1 grammar, or no CRLF within 107 bytes
  kMalformedV2,  // off the v2 format: version, command, family, lengths, TLVs, CRC32c
  kUnsupported,  // a header of the version this listener does not take (v2 on a "v1" one)
  kTooLarge,     // a v2 header longer than kMaxV2Bytes
};
std::string_view RefusalName(Refusal refusal);

// PROXY-2.2.6: what the proxy learned from the TLS connection it terminated.
struct SslInfo {
  static constexpr uint8_t kClientSsl = 0x01;       // PP2_CLIENT_SSL
  static constexpr uint8_t kClientCertConn = 0x02;  // PP2_CLIENT_CERT_CONN
  static constexpr uint8_t kClientCertSess = 0x04;  // PP2_CLIENT_CERT_SESS
  uint8_t client = 0;
  uint32_t verify = 0;  // 0: the client's certificate was presented and verified
  std::string version;  // PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3"
  std::string cipher;   // PP2_SUBTYPE_SSL_CIPHER
  std::string cn;       // PP2_SUBTYPE_SSL_CN: the client certificate's subject CN
  bool certificate_verified() const {
    return (client & (kClientCertConn | kClientCertSess)) != 0 && verify == 0;
  }
};

struct Header {
  uint8_t version = 0;  // 1 or 2
  // The client's address and port, when the header names one; the proxy's own address
  // (as seen by it) in destination.
  std::optional<sockaddr_storage> source;
  std::optional<sockaddr_storage> destination;
  // v2 TLVs read (PROXY-2.2.1, 2.2.2, 2.2.6); the others are skipped.
  std::string alpn;
  std::string authority;  // the TLS SNI the client sent to the proxy, or another host name
  std::optional<SslInfo> ssl;
  size_t size = 0;  // bytes of the header: what comes after them is the client's
};

struct ParseResult {
  enum class Status : uint8_t { kNeedMore, kRefused, kDone };
  Status status = Status::kNeedMore;
  Refusal refusal = Refusal::kMissing;  // kRefused
  Header header;                        // kDone
};

// Parses the header at the start of `bytes` (all the connection has received so far). `accept`
// is the listener's proxy_protocol (not kOff). kNeedMore only while bytes.size() is below the
// bound of the version seen (kMaxV1Bytes, or the v2 header's own size <= kMaxV2Bytes); the
// spec's early-abort advice is followed: bytes that no header can begin with are refused as
// soon as they arrive.
ParseResult ParseHeader(std::span<const uint8_t> bytes, ProxyProtocol accept);

}  // namespace ringmq::proxy

#endif  // RINGMQ_PROXY_HEADER_H_
