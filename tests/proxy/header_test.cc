// proxy::ParseHeader against the PROXY protocol spec (haproxy.org doc/proxy-protocol.txt):
// section 2.1 (v1 text line), 2.2 (v2 binary header) and 2.2.1-2.2.6 (TLVs). Test names cite
// the section whose rule they pin.
#include "proxy/header.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/crc32c.h"

namespace ringmq::proxy {
namespace {

using Bytes = std::vector<uint8_t>;
using Status = ParseResult::Status;

Bytes B(std::string_view text) { return Bytes(text.begin(), text.end()); }

Bytes Cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ParseResult Parse(const Bytes& bytes, ProxyProtocol accept = ProxyProtocol::kAny) {
  return ParseHeader(bytes, accept);
}

// "a.b.c.d:port" or "[v6]:port".
std::string Name(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(v4.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6.sin6_port));
  }
  return "family " + std::to_string(address.ss_family);
}

void ExpectRefused(const Bytes& bytes, Refusal refusal,
                   ProxyProtocol accept = ProxyProtocol::kAny) {
  const ParseResult result = ParseHeader(bytes, accept);
  EXPECT_EQ(result.status, Status::kRefused) << std::string(bytes.begin(), bytes.end());
  EXPECT_EQ(result.refusal, refusal)
      << RefusalName(result.refusal) << " for " << std::string(bytes.begin(), bytes.end());
}

// Every strict prefix needs more; the whole is done (or refused, if `refusal` is set).
ParseResult ExpectPrefixesNeedMore(const Bytes& bytes, ProxyProtocol accept) {
  for (size_t n = 1; n < bytes.size(); ++n) {
    const ParseResult prefix = ParseHeader(std::span<const uint8_t>(bytes.data(), n), accept);
    EXPECT_EQ(prefix.status, Status::kNeedMore) << "prefix of " << n << " bytes";
  }
  return ParseHeader(bytes, accept);
}

// --- v1 (PROXY-2.1) ----------------------------------------------------------------------------

TEST(ProxyHeaderV1Test, Tcp4NamesSourceAndDestination_PROXY_2_1) {
  const Bytes line = B("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  const ParseResult result = Parse(Cat(line, B("GET /")));
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.version, 1);
  EXPECT_EQ(result.header.size, line.size());
  ASSERT_TRUE(result.header.source.has_value());
  EXPECT_EQ(Name(*result.header.source), "192.168.0.1:56324");
  EXPECT_EQ(Name(*result.header.destination), "192.168.0.11:443");
}

TEST(ProxyHeaderV1Test, Tcp6NamesSourceAndDestination_PROXY_2_1) {
  const ParseResult result = Parse(B("PROXY TCP6 2001:db8::7 ::1 0 65535\r\n"));
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(Name(*result.header.source), "[2001:db8::7]:0");
  EXPECT_EQ(Name(*result.header.destination), "[::1]:65535");
}

TEST(ProxyHeaderV1Test, LongestTcp6LineIsAccepted_PROXY_2_1) {
  const std::string address = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const Bytes line = B("PROXY TCP6 " + address + " " + address + " 65535 65535\r\n");
  ASSERT_EQ(line.size(), 104u);
  const ParseResult result = ExpectPrefixesNeedMore(line, ProxyProtocol::kV1);
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.size, 104u);
}

TEST(ProxyHeaderV1Test, UnknownKeepsTheSocketAddressAndIgnoresTheRestOfTheLine_PROXY_2_1) {
  const ParseResult short_form = Parse(B("PROXY UNKNOWN\r\nMQTT"));
  ASSERT_EQ(short_form.status, Status::kDone);
  EXPECT_FALSE(short_form.header.source.has_value());
  EXPECT_EQ(short_form.header.size, 15u);
  // The worst case of the spec: 107 bytes with the CRLF.
  const std::string address = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const Bytes longest = B("PROXY UNKNOWN " + address + " " + address + " 65535 65535\r\n");
  ASSERT_EQ(longest.size(), kMaxV1Bytes);
  const ParseResult result = ExpectPrefixesNeedMore(longest, ProxyProtocol::kV1);
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_FALSE(result.header.source.has_value());
  EXPECT_EQ(result.header.size, kMaxV1Bytes);
  // "the receiver must ignore anything presented before the CRLF".
  EXPECT_EQ(Parse(B("PROXY UNKNOWN whatever 1 2\r\n")).status, Status::kDone);
}

TEST(ProxyHeaderV1Test, NoCrlfWithin107BytesIsMalformed_PROXY_2_1) {
  std::string text = "PROXY UNKNOWN ";
  text.resize(kMaxV1Bytes - 1, 'a');  // 106 bytes, no CR yet: could still end
  Bytes line = B(text);
  EXPECT_EQ(Parse(line).status, Status::kNeedMore);
  line.push_back('\r');  // the LF would be byte 108
  ExpectRefused(line, Refusal::kMalformedV1);
  line.back() = 'a';
  ExpectRefused(line, Refusal::kMalformedV1);
}

TEST(ProxyHeaderV1Test, OnlyCrlfEndsTheLine_PROXY_2_1) {
  ExpectRefused(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), Refusal::kMalformedV1);
  ExpectRefused(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), Refusal::kMalformedV1);
  ExpectRefused(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), Refusal::kMalformedV1);
  // A CR alone at the end may still be followed by its LF.
  EXPECT_EQ(Parse(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r")).status, Status::kNeedMore);
}

TEST(ProxyHeaderV1Test, BadFieldsAreMalformed_PROXY_2_1) {
  for (const char* line : {
           "PROXY TCP4 192.168.0.01 1.2.3.4 1 2\r\n",    // leading zero in an octet
           "PROXY TCP4 256.1.1.1 1.2.3.4 1 2\r\n",       // octet above 255
           "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",           // three octets
           "PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n",       // five octets
           "PROXY TCP4 1.2.3. 1.2.3.4 1 2\r\n",          // empty octet
           "PROXY TCP4 1..3.4 1.2.3.4 1 2\r\n",          // empty octet
           "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",     // port above 65535
           "PROXY TCP4 1.2.3.4 1.2.3.4 0443 2\r\n",      // leading zero in a port
           "PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",        // sign
           "PROXY TCP4 1.2.3.4 1.2.3.4 1 99999999\r\n",  // too many digits
           "PROXY TCP4 ::1 1.2.3.4 1 2\r\n",             // IPv6 under TCP4
           "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",             // IPv4 under TCP6
           "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",   // 144 bits
           "PROXY TCP6 1::2::3 ::1 1 2\r\n",             // two "::"
           "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",        // a zone is no part of the format
           "PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",        // two spaces
           "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",        // trailing space
           "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",           // three fields
           "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",       // five fields
           "PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n",         // the keyword is upper case
           "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",         // no such protocol
           "PROXY UNKNOWNX\r\n",                         // not the UNKNOWN keyword
           "PROXY \r\n",                                 // no protocol
           "PROXYTCP4 1.2.3.4 1.2.3.4 1 2\r\n",          // no space after PROXY
       }) {
    ExpectRefused(B(line), Refusal::kMalformedV1);
  }
}

TEST(ProxyHeaderV1Test, ABadByteIsRefusedAsSoonAsItArrives_PROXY_2_1) {
  ExpectRefused(B("PROXYX"), Refusal::kMalformedV1);
  // The same when a CR that could still end the line is the last byte (found by fuzz_proxy_header).
  ExpectRefused(B("PROXYR YTCOXP\r"), Refusal::kMalformedV1);
  ExpectRefused(Bytes{'P', 'R', 'O', 'X', 'Y', ' ', 0x00}, Refusal::kMalformedV1);
  ExpectRefused(Bytes{'P', 'R', 'O', 'X', 'Y', ' ', 0xC3, 0xA9}, Refusal::kMalformedV1);
}

TEST(ProxyHeaderV1Test, ByteAtATime_PROXY_2_1) {
  const Bytes line = B("PROXY TCP4 10.1.2.3 10.0.0.1 40000 1883\r\n");
  const ParseResult result = ExpectPrefixesNeedMore(line, ProxyProtocol::kAny);
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(Name(*result.header.source), "10.1.2.3:40000");
}

// --- detection and the listener's version ----------------------------------------------------

TEST(ProxyHeaderDetectTest, BytesThatBeginNoHeaderAreMissing_PROXY_2_2) {
  ExpectRefused(Bytes{0x10, 0x0C, 0x00, 0x04}, Refusal::kMissing);  // an MQTT CONNECT
  ExpectRefused(B("GET / HTTP/1.1\r\n"), Refusal::kMissing);
  ExpectRefused(B("PRX"), Refusal::kMissing);
  ExpectRefused(Bytes{0x16, 0x03, 0x01}, Refusal::kMissing);  // a TLS ClientHello
  ExpectRefused(Bytes{0x0D, 0x0A, 0x0D, 0x0A, 0x01}, Refusal::kMissing);
  EXPECT_EQ(Parse(B("PRO")).status, Status::kNeedMore);
  EXPECT_EQ(Parse(Bytes{0x0D, 0x0A}).status, Status::kNeedMore);
  EXPECT_EQ(Parse(Bytes{}).status, Status::kNeedMore);
}

Bytes V2(uint8_t version_command, uint8_t family, const Bytes& block) {
  Bytes out(std::begin(kV2Signature), std::end(kV2Signature));
  out.push_back(version_command);
  out.push_back(family);
  out.push_back(static_cast<uint8_t>(block.size() >> 8));
  out.push_back(static_cast<uint8_t>(block.size()));
  return Cat(out, block);
}

Bytes Tlv(uint8_t type, const Bytes& value) {
  Bytes out = {type, static_cast<uint8_t>(value.size() >> 8), static_cast<uint8_t>(value.size())};
  return Cat(out, value);
}

// 203.0.113.9:50000 -> 192.0.2.1:1883
const Bytes kInetBlock = {203, 0, 113, 9, 192, 0, 2, 1, 0xC3, 0x50, 0x07, 0x5B};

TEST(ProxyHeaderDetectTest, AListenerTakesOnlyItsVersion) {
  const Bytes v1 = B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
  const Bytes v2 = V2(0x21, 0x11, kInetBlock);
  EXPECT_EQ(Parse(v1, ProxyProtocol::kV1).status, Status::kDone);
  EXPECT_EQ(Parse(v2, ProxyProtocol::kV2).status, Status::kDone);
  EXPECT_EQ(Parse(v1, ProxyProtocol::kAny).status, Status::kDone);
  EXPECT_EQ(Parse(v2, ProxyProtocol::kAny).status, Status::kDone);
  ExpectRefused(B("PROXY"), Refusal::kUnsupported, ProxyProtocol::kV2);
  ExpectRefused(Bytes(std::begin(kV2Signature), std::end(kV2Signature)), Refusal::kUnsupported,
                ProxyProtocol::kV1);
}

// --- v2 (PROXY-2.2) ----------------------------------------------------------------------------

TEST(ProxyHeaderV2Test, ProxyOverTcp4NamesTheClient_PROXY_2_2) {
  const Bytes header = V2(0x21, 0x11, kInetBlock);
  const ParseResult result = Parse(Cat(header, Bytes{0x10, 0x00}));
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.version, 2);
  EXPECT_EQ(result.header.size, 28u);
  EXPECT_EQ(Name(*result.header.source), "203.0.113.9:50000");
  EXPECT_EQ(Name(*result.header.destination), "192.0.2.1:1883");
}

TEST(ProxyHeaderV2Test, ProxyOverTcp6NamesTheClient_PROXY_2_2) {
  Bytes block(36, 0);
  const in6_addr source = {{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42}}};
  std::memcpy(block.data(), &source, 16);
  block[31] = 1;                       // ::1
  block[32] = 0x12, block[33] = 0x34;  // 4660
  block[34] = 0x07, block[35] = 0x5B;  // 1883
  const ParseResult result = Parse(V2(0x21, 0x21, block));
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(Name(*result.header.source), "[2001:db8::42]:4660");
  EXPECT_EQ(Name(*result.header.destination), "[::1]:1883");
}

TEST(ProxyHeaderV2Test, LocalKeepsTheSocketAddressWhateverTheBlock_PROXY_2_2) {
  for (const Bytes& header : {V2(0x20, 0x00, {}), V2(0x20, 0x11, kInetBlock), V2(0x20, 0x11, {}),
                              V2(0x20, 0x00, Bytes(40, 0xAB))}) {
    const ParseResult result = Parse(header);
    ASSERT_EQ(result.status, Status::kDone);
    EXPECT_FALSE(result.header.source.has_value());
    EXPECT_EQ(result.header.size, header.size());
  }
}

TEST(ProxyHeaderV2Test, UnspecUnixAndDgramKeepTheSocketAddress_PROXY_2_2) {
  const ParseResult unspec = Parse(V2(0x21, 0x00, Bytes(7, 1)));
  ASSERT_EQ(unspec.status, Status::kDone);
  EXPECT_FALSE(unspec.header.source.has_value());
  EXPECT_EQ(unspec.header.size, 23u);
  // AF_UNIX: 2 x 108 bytes of addresses, then TLVs.
  const Bytes unix_block = Cat(Bytes(216, 'u'), Tlv(0x02, B("broker.example")));
  const ParseResult unix_stream = Parse(V2(0x21, 0x31, unix_block));
  ASSERT_EQ(unix_stream.status, Status::kDone);
  EXPECT_FALSE(unix_stream.header.source.has_value());
  EXPECT_EQ(unix_stream.header.authority, "broker.example");
  ExpectRefused(V2(0x21, 0x31, Bytes(215, 'u')), Refusal::kMalformedV2);
  // UDP is not a transport for MQTT: fall back to UNSPEC (the spec's rule for unsupported ones).
  const ParseResult udp = Parse(V2(0x21, 0x12, kInetBlock));
  ASSERT_EQ(udp.status, Status::kDone);
  EXPECT_FALSE(udp.header.source.has_value());
}

TEST(ProxyHeaderV2Test, VersionCommandFamilyAndTransportAreChecked_PROXY_2_2) {
  ExpectRefused(V2(0x11, 0x11, kInetBlock), Refusal::kMalformedV2);  // version 1
  ExpectRefused(V2(0x31, 0x11, kInetBlock), Refusal::kMalformedV2);  // version 3
  ExpectRefused(V2(0x22, 0x11, kInetBlock), Refusal::kMalformedV2);  // command 2
  ExpectRefused(V2(0x2F, 0x11, kInetBlock), Refusal::kMalformedV2);  // command 15
  ExpectRefused(V2(0x21, 0x41, kInetBlock), Refusal::kMalformedV2);  // family 4
  ExpectRefused(V2(0x21, 0x13, kInetBlock), Refusal::kMalformedV2);  // transport 3
  // Each as soon as its byte arrives.
  Bytes prefix(std::begin(kV2Signature), std::end(kV2Signature));
  prefix.push_back(0x11);
  ExpectRefused(prefix, Refusal::kMalformedV2);
}

TEST(ProxyHeaderV2Test, AnAddressBlockShorterThanItsFamilyIsMalformed_PROXY_2_2) {
  ExpectRefused(V2(0x21, 0x11, Bytes(kInetBlock.begin(), kInetBlock.end() - 1)),
                Refusal::kMalformedV2);
  ExpectRefused(V2(0x21, 0x21, Bytes(35, 0)), Refusal::kMalformedV2);
  ExpectRefused(V2(0x21, 0x11, {}), Refusal::kMalformedV2);
}

TEST(ProxyHeaderV2Test, LengthAboveTheBoundIsRefusedFromTheFixedHeader) {
  Bytes fixed = V2(0x21, 0x11, {});
  const size_t largest_block = kMaxV2Bytes - 16;
  fixed[14] = static_cast<uint8_t>((largest_block + 1) >> 8);
  fixed[15] = static_cast<uint8_t>(largest_block + 1);
  ExpectRefused(fixed, Refusal::kTooLarge);
  fixed = V2(0x21, 0x11, {});
  fixed[14] = 0xFF, fixed[15] = 0xFF;  // the spec's largest, 16 + 65,535
  ExpectRefused(fixed, Refusal::kTooLarge);
  // Exactly at the bound: accepted once complete (TLVs of NOOP padding after the addresses).
  const Bytes padding = Tlv(0x04, Bytes(largest_block - kInetBlock.size() - 3, 0));
  const Bytes largest = V2(0x21, 0x11, Cat(kInetBlock, padding));
  ASSERT_EQ(largest.size(), kMaxV2Bytes);
  EXPECT_EQ(Parse(Bytes(largest.begin(), largest.end() - 1)).status, Status::kNeedMore);
  const ParseResult result = Parse(largest);
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.size, kMaxV2Bytes);
}

TEST(ProxyHeaderV2Test, ByteAtATimeAndTruncated_PROXY_2_2) {
  const Bytes header = V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x02, B("mqtt.example.com"))));
  const ParseResult result = ExpectPrefixesNeedMore(header, ProxyProtocol::kV2);
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.authority, "mqtt.example.com");
  EXPECT_EQ(Name(*result.header.source), "203.0.113.9:50000");
}

TEST(ProxyHeaderV2Test, TlvsAreReadAndOthersSkipped_PROXY_2_2_1_to_2_2_6) {
  Bytes ssl = {SslInfo::kClientSsl | SslInfo::kClientCertConn, 0, 0, 0, 0};
  ssl = Cat(ssl, Tlv(0x21, B("TLSv1.3")));
  ssl = Cat(ssl, Tlv(0x22, B("device-17")));
  ssl = Cat(ssl, Tlv(0x23, B("TLS_AES_256_GCM_SHA384")));
  ssl = Cat(ssl, Tlv(0x24, B("SHA256")));
  Bytes block = kInetBlock;
  block = Cat(block, Tlv(0x01, B("mqtt")));
  block = Cat(block, Tlv(0x02, B("broker.example")));
  block = Cat(block, Tlv(0x04, {}));                // NOOP
  block = Cat(block, Tlv(0x05, Bytes(128, 0x5A)));  // UNIQUE_ID
  block = Cat(block, Tlv(0x20, ssl));
  block = Cat(block, Tlv(0x30, B("netns")));
  block = Cat(block, Tlv(0xE0, B("custom")));
  const ParseResult result = Parse(V2(0x21, 0x11, block));
  ASSERT_EQ(result.status, Status::kDone);
  EXPECT_EQ(result.header.alpn, "mqtt");
  EXPECT_EQ(result.header.authority, "broker.example");
  ASSERT_TRUE(result.header.ssl.has_value());
  EXPECT_EQ(result.header.ssl->version, "TLSv1.3");
  EXPECT_EQ(result.header.ssl->cn, "device-17");
  EXPECT_EQ(result.header.ssl->cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_TRUE(result.header.ssl->certificate_verified());
  Bytes unverified = ssl;
  unverified[4] = 1;  // verify != 0
  const ParseResult bad_cert = Parse(V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x20, unverified))));
  ASSERT_EQ(bad_cert.status, Status::kDone);
  EXPECT_FALSE(bad_cert.header.ssl->certificate_verified());
}

TEST(ProxyHeaderV2Test, TlvsMustTileTheBlock_PROXY_2_2) {
  // A stray byte or two after the addresses: not a TLV header.
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Bytes{0x04})), Refusal::kMalformedV2);
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Bytes{0x04, 0x00})), Refusal::kMalformedV2);
  // A TLV whose length runs past the block.
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Bytes{0x02, 0x00, 0x05, 'a', 'b'})),
                Refusal::kMalformedV2);
  // PP2_TYPE_SSL shorter than its client and verify fields, or with a sub-TLV past its end.
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x20, Bytes{1, 0, 0, 0}))),
                Refusal::kMalformedV2);
  ExpectRefused(
      V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x20, Bytes{1, 0, 0, 0, 0, 0x21, 0x00, 0x09, 'T'}))),
      Refusal::kMalformedV2);
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x20, Bytes{1, 0, 0, 0, 0, 0x21}))),
                Refusal::kMalformedV2);
}

// PROXY-2.2.3: the checksum of the whole header with the checksum field as zeros.
Bytes WithCrc(Bytes block_before_crc, bool correct) {
  const size_t crc_value = 16 + block_before_crc.size() + 3;
  Bytes header = V2(0x21, 0x11, Cat(block_before_crc, Tlv(0x03, Bytes(4, 0))));
  uint32_t crc = Crc32c(header);
  if (!correct) crc ^= 1;
  for (int i = 0; i < 4; ++i) header[crc_value + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  return header;
}

TEST(ProxyHeaderV2Test, Crc32cIsVerified_PROXY_2_2_3) {
  EXPECT_EQ(Parse(WithCrc(kInetBlock, true)).status, Status::kDone);
  ExpectRefused(WithCrc(kInetBlock, false), Refusal::kMalformedV2);
  ExpectRefused(V2(0x21, 0x11, Cat(kInetBlock, Tlv(0x03, Bytes(3, 0)))), Refusal::kMalformedV2);
}

}  // namespace
}  // namespace ringmq::proxy
