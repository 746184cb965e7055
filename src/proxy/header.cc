#include "proxy/header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/assert.h"
#include "common/crc32c.h"

namespace ringmq::proxy {
namespace {

using Status = ParseResult::Status;

constexpr std::string_view kV1Prefix = "PROXY";
constexpr size_t kV2FixedBytes = 16;  // signature, version/command, family/transport, length

// PROXY-2.2: the version/command and family/transport nibbles.
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyUnspec = 0x0;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr uint8_t kTransportUnspec = 0x0;
constexpr uint8_t kTransportStream = 0x1;
constexpr uint8_t kTransportDgram = 0x2;

// PROXY-2.2: registered TLV types this parser reads.
constexpr uint8_t kTypeAlpn = 0x01;
constexpr uint8_t kTypeAuthority = 0x02;
constexpr uint8_t kTypeCrc32c = 0x03;
constexpr uint8_t kTypeSsl = 0x20;
constexpr uint8_t kSubtypeSslVersion = 0x21;
constexpr uint8_t kSubtypeSslCn = 0x22;
constexpr uint8_t kSubtypeSslCipher = 0x23;
constexpr size_t kTlvHeaderBytes = 3;  // type, length (16 bits, network order)
constexpr size_t kSslFixedBytes = 5;   // client (8 bits), verify (32 bits, network order)

ParseResult NeedMore() { return ParseResult{}; }

ParseResult Refused(Refusal refusal) {
  ParseResult result;
  result.status = Status::kRefused;
  result.refusal = refusal;
  return result;
}

ParseResult Done(Header header) {
  ParseResult result;
  result.status = Status::kDone;
  result.header = std::move(header);
  return result;
}

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string_view Text(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// PROXY-2.1: a decimal number of 1..max_digits digits without leading zeros, at most `max`.
std::optional<uint32_t> ParseDecimal(std::string_view text, size_t max_digits, uint32_t max) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  uint32_t value = 0;
  for (const char c : text) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// PROXY-2.1: exactly 4 decimal numbers 0..255, one dot between each, no leading zeros.
bool ParseIpv4(std::string_view text, in_addr* address) {
  std::array<uint8_t, 4> octets{};
  for (size_t i = 0; i < octets.size(); ++i) {
    const bool last = i + 1 == octets.size();
    const size_t end = last ? text.size() : text.find('.');
    if (end == std::string_view::npos) return false;
    const std::optional<uint32_t> octet = ParseDecimal(text.substr(0, end), 3, 255);
    if (!octet.has_value()) return false;
    octets[i] = static_cast<uint8_t>(*octet);
    text.remove_prefix(last ? end : end + 1);
  }
  std::memcpy(&address->s_addr, octets.data(), octets.size());  // network order, as written
  return true;
}

// PROXY-2.1: hexadecimal groups and colons, at most one "::"; the standard text form, as
// inet_pton reads it (which also takes the dotted IPv4 tail of a mapped address).
bool ParseIpv6(std::string_view text, in6_addr* address) {
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof(buffer)) return false;
  for (const char c : text) {
    const bool hex = IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != ':' && c != '.') return false;
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return inet_pton(AF_INET6, buffer, address) == 1;
}

bool ParseV1Endpoint(std::string_view address, std::string_view port, bool ipv6,
                     sockaddr_storage* out) {
  const std::optional<uint32_t> number = ParseDecimal(port, 5, 65535);
  if (!number.has_value()) return false;
  *out = sockaddr_storage{};
  if (ipv6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(*number));
    return ParseIpv6(address, &v6->sin6_addr);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(static_cast<uint16_t>(*number));
  return ParseIpv4(address, &v4->sin_addr);
}

// The line of a v1 header without its CRLF, "PROXY " included.
ParseResult ParseV1Line(std::string_view line, size_t size) {
  RINGMQ_ASSERT(line.starts_with("PROXY"));
  Header header;
  header.version = 1;
  header.size = size;
  if (!line.starts_with("PROXY ")) return Refused(Refusal::kMalformedV1);
  std::string_view rest = line.substr(6);
  // PROXY-2.1: after UNKNOWN the receiver ignores the rest of the line.
  if (rest == "UNKNOWN" || rest.starts_with("UNKNOWN ")) return Done(std::move(header));
  const bool ipv6 = rest.starts_with("TCP6 ");
  if (!ipv6 && !rest.starts_with("TCP4 ")) return Refused(Refusal::kMalformedV1);
  rest.remove_prefix(5);
  // Exactly four fields, exactly one space between each (an empty field: two spaces).
  std::array<std::string_view, 4> fields;
  for (size_t i = 0; i < fields.size(); ++i) {
    const size_t space = i + 1 < fields.size() ? rest.find(' ') : rest.size();
    if (space == std::string_view::npos || space == 0) return Refused(Refusal::kMalformedV1);
    fields[i] = rest.substr(0, space);
    rest.remove_prefix(std::min(space + 1, rest.size()));
  }
  if (fields[3].find(' ') != std::string_view::npos) return Refused(Refusal::kMalformedV1);
  sockaddr_storage source;
  sockaddr_storage destination;
  if (!ParseV1Endpoint(fields[0], fields[2], ipv6, &source) ||
      !ParseV1Endpoint(fields[1], fields[3], ipv6, &destination)) {
    return Refused(Refusal::kMalformedV1);
  }
  header.source = source;
  header.destination = destination;
  return Done(std::move(header));
}

// PROXY-2.1: printable US-ASCII up to a CRLF within the first 107 bytes; a lone CR or LF, or
// any other byte, is refused as soon as it is seen.
ParseResult ParseV1(std::span<const uint8_t> bytes) {
  // "PROXY" then exactly one space, whatever follows (a CR that may end the line included).
  if (bytes.size() > kV1Prefix.size() && bytes[kV1Prefix.size()] != ' ') {
    return Refused(Refusal::kMalformedV1);
  }
  const size_t scan = std::min(bytes.size(), kMaxV1Bytes);
  for (size_t i = 0; i < scan; ++i) {
    const uint8_t c = bytes[i];
    if (c == '\r') {
      if (i + 1 >= kMaxV1Bytes) return Refused(Refusal::kMalformedV1);  // CRLF would be byte 108
      if (i + 1 == bytes.size()) return NeedMore();
      if (bytes[i + 1] != '\n') return Refused(Refusal::kMalformedV1);
      return ParseV1Line(Text(bytes.first(i)), i + 2);
    }
    if (c < 0x20 || c > 0x7E) return Refused(Refusal::kMalformedV1);
  }
  if (bytes.size() >= kMaxV1Bytes) return Refused(Refusal::kMalformedV1);
  return NeedMore();
}

// Reads the sub-TLVs of PP2_TYPE_SSL (PROXY-2.2.6); false if they do not tile `value`.
bool ParseSsl(std::span<const uint8_t> value, SslInfo* ssl) {
  if (value.size() < kSslFixedBytes) return false;
  ssl->client = value[0];
  ssl->verify = Be32(value.data() + 1);
  std::span<const uint8_t> rest = value.subspan(kSslFixedBytes);
  while (!rest.empty()) {
    if (rest.size() < kTlvHeaderBytes) return false;
    const uint8_t type = rest[0];
    const size_t length = Be16(rest.data() + 1);
    if (length > rest.size() - kTlvHeaderBytes) return false;
    const std::string_view text = Text(rest.subspan(kTlvHeaderBytes, length));
    if (type == kSubtypeSslVersion) ssl->version = text;
    if (type == kSubtypeSslCn) ssl->cn = text;
    if (type == kSubtypeSslCipher) ssl->cipher = text;
    rest = rest.subspan(kTlvHeaderBytes + length);
  }
  return true;
}

// PROXY-2.2.3: the CRC32c of the whole header with the checksum's own 4 bytes as zeros.
bool Crc32cMatches(std::span<const uint8_t> header, size_t value_offset) {
  RINGMQ_ASSERT(header.size() <= kMaxV2Bytes && value_offset + 4 <= header.size());
  std::array<uint8_t, kMaxV2Bytes> copy;
  std::memcpy(copy.data(), header.data(), header.size());
  std::memset(copy.data() + value_offset, 0, 4);
  return Crc32c(std::span<const uint8_t>(copy.data(), header.size())) ==
         Be32(header.data() + value_offset);
}

// The TLVs from `offset` to the end of `header` (PROXY-2.2): they must tile it exactly.
bool ParseTlvs(std::span<const uint8_t> header, size_t offset, Header* out) {
  while (offset < header.size()) {
    if (header.size() - offset < kTlvHeaderBytes) return false;
    const uint8_t type = header[offset];
    const size_t length = Be16(header.data() + offset + 1);
    const size_t value_offset = offset + kTlvHeaderBytes;
    if (length > header.size() - value_offset) return false;
    const std::span<const uint8_t> value = header.subspan(value_offset, length);
    switch (type) {
      case kTypeAlpn:
        out->alpn = Text(value);
        break;
      case kTypeAuthority:
        out->authority = Text(value);
        break;
      case kTypeCrc32c:
        if (length != 4 || !Crc32cMatches(header, value_offset)) return false;
        break;
      case kTypeSsl:
        out->ssl.emplace();
        if (!ParseSsl(value, &*out->ssl)) return false;
        break;
      default:
        break;  // NOOP, UNIQUE_ID, NETNS, custom and future types: skipped
    }
    offset = value_offset + length;
  }
  return true;
}

void SetInet(const uint8_t* address, const uint8_t* port, sockaddr_storage* out) {
  *out = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  v4->sin_family = AF_INET;
  std::memcpy(&v4->sin_addr.s_addr, address, 4);
  std::memcpy(&v4->sin_port, port, 2);
}

void SetInet6(const uint8_t* address, const uint8_t* port, sockaddr_storage* out) {
  *out = sockaddr_storage{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  v6->sin6_family = AF_INET6;
  std::memcpy(v6->sin6_addr.s6_addr, address, 16);
  std::memcpy(&v6->sin6_port, port, 2);
}

// A complete v2 header of the PROXY command (`header`: 16 + its length bytes).
ParseResult ParseV2Proxy(std::span<const uint8_t> header, uint8_t family, uint8_t transport) {
  Header out;
  out.version = 2;
  out.size = header.size();
  // UNSPEC (either nibble): address information ignored, and with it the block's layout.
  if (family == kFamilyUnspec || transport == kTransportUnspec) return Done(std::move(out));
  const size_t address_bytes = family == kFamilyInet ? 12 : family == kFamilyInet6 ? 36 : 216;
  const std::span<const uint8_t> block = header.subspan(kV2FixedBytes);
  if (block.size() < address_bytes) return Refused(Refusal::kMalformedV2);
  if (!ParseTlvs(header, kV2FixedBytes + address_bytes, &out)) {
    return Refused(Refusal::kMalformedV2);
  }
  if (transport != kTransportStream) return Done(std::move(out));  // DGRAM: as UNSPEC
  if (family == kFamilyInet) {
    out.source.emplace();
    out.destination.emplace();
    SetInet(block.data(), block.data() + 8, &*out.source);
    SetInet(block.data() + 4, block.data() + 10, &*out.destination);
  } else if (family == kFamilyInet6) {
    out.source.emplace();
    out.destination.emplace();
    SetInet6(block.data(), block.data() + 32, &*out.source);
    SetInet6(block.data() + 16, block.data() + 34, &*out.destination);
  }
  // AF_UNIX: the client is a local socket of the proxy; the TCP peer is the better name.
  return Done(std::move(out));
}

// PROXY-2.2. `bytes` begins with the whole signature.
ParseResult ParseV2(std::span<const uint8_t> bytes) {
  RINGMQ_ASSERT(bytes.size() >= sizeof(kV2Signature));
  if (bytes.size() > 12) {
    const uint8_t version = bytes[12] >> 4;
    const uint8_t command = bytes[12] & 0x0F;
    if (version != 2) return Refused(Refusal::kMalformedV2);
    if (command != kCommandLocal && command != kCommandProxy) {
      return Refused(Refusal::kMalformedV2);
    }
  }
  if (bytes.size() > 13) {
    const uint8_t family = bytes[13] >> 4;
    const uint8_t transport = bytes[13] & 0x0F;
    if (family > kFamilyUnix || transport > kTransportDgram) {
      return Refused(Refusal::kMalformedV2);
    }
  }
  if (bytes.size() < kV2FixedBytes) return NeedMore();
  const size_t size = kV2FixedBytes + Be16(bytes.data() + 14);
  if (size > kMaxV2Bytes) return Refused(Refusal::kTooLarge);
  if (bytes.size() < size) return NeedMore();
  const std::span<const uint8_t> header = bytes.first(size);
  if ((header[12] & 0x0F) == kCommandLocal) {
    // PROXY-2.2: LOCAL keeps the real endpoints; the block, family included, is discarded.
    Header out;
    out.version = 2;
    out.size = size;
    return Done(std::move(out));
  }
  return ParseV2Proxy(header, header[13] >> 4, header[13] & 0x0F);
}

// Whether `bytes` is a prefix of `expected` or begins with it.
bool MatchesPrefix(std::span<const uint8_t> bytes, std::span<const uint8_t> expected) {
  const size_t n = std::min(bytes.size(), expected.size());
  return std::equal(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n), expected.begin());
}

}  // namespace

std::string_view RefusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::kMissing:
      return "missing";
    case Refusal::kMalformedV1:
      return "malformed_v1";
    case Refusal::kMalformedV2:
      return "malformed_v2";
    case Refusal::kUnsupported:
      return "unsupported";
    case Refusal::kTooLarge:
      return "too_large";
  }
  return "?";
}

ParseResult ParseHeader(std::span<const uint8_t> bytes, ProxyProtocol accept) {
  RINGMQ_ASSERT(accept != ProxyProtocol::kOff);
  if (bytes.empty()) return NeedMore();
  // PROXY-2.2: the two signatures differ in their first byte, so one of them at most matches.
  const auto v1 = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kV1Prefix.data()),
                                           kV1Prefix.size());
  if (MatchesPrefix(bytes, v1)) {
    if (bytes.size() < v1.size()) return NeedMore();
    if (accept == ProxyProtocol::kV2) return Refused(Refusal::kUnsupported);
    return ParseV1(bytes);
  }
  if (MatchesPrefix(bytes, kV2Signature)) {
    if (bytes.size() < sizeof(kV2Signature)) return NeedMore();
    if (accept == ProxyProtocol::kV1) return Refused(Refusal::kUnsupported);
    return ParseV2(bytes);
  }
  // PROXY-2.2 (end of the version detection): anything else is not covered by the spec and
  // the connection is dropped; a client that speaks MQTT straight to the port lands here.
  return Refused(Refusal::kMissing);
}

}  // namespace ringmq::proxy
