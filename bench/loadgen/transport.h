// Client-side transports for ringmq-bench: MQTT over TLS (OpenSSL through memory BIOs) and over
// WebSocket frames (RFC 6455 client side), stacked as sans-IO layers between the socket and the
// generator's MQTT bytes, so the generator's epoll loop keeps doing all socket I/O itself: wire
// bytes from recv(2) go up through the stack into the MQTT input buffer, MQTT output goes down
// through it into the bytes written with send(2). Kept apart from the broker's own transport
// code (src/net, src/tls, src/ws) on purpose, like wire.h: the generator must not share the code
// under test.
//
// Layers, bottom first: TLS (--tls), then WebSocket (--websocket); either alone or both (wss).
// A layer above starts its handshake once the one below is open; the stack is open when every
// layer is.
//
// Thread safety: a TlsClientContext is built before the workers start and only read after (an
// SSL_CTX may be shared by SSL objects on several threads once configured); a Stack and its
// layers belong to one connection and so to one worker thread.
#ifndef RINGMQ_BENCH_LOADGEN_TRANSPORT_H_
#define RINGMQ_BENCH_LOADGEN_TRANSPORT_H_

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wire.h"

namespace ringmq::bench::transport {

// A layer of the stack. Receive and Send append to the caller's buffers and never block.
class Layer {
 public:
  virtual ~Layer() = default;
  // The layer's first bytes (TLS ClientHello, HTTP upgrade request) into `down`.
  virtual bool Start(wire::Buffer& down) = 0;
  // Bytes from below: what they decode to goes to `up`, what the layer must answer on its own
  // (handshake messages, a pong, a close reply) to `down`. False on a fatal error (error()).
  virtual bool Receive(const uint8_t* data, size_t size, wire::Buffer& up, wire::Buffer& down) = 0;
  // Bytes from above, once open(): their encoding goes to `down`.
  virtual bool Send(const uint8_t* data, size_t size, wire::Buffer& down) = 0;
  virtual bool open() const = 0;
  // The peer ended the layer (TLS close_notify, WebSocket Close): nothing more comes up.
  bool peer_closed() const { return peer_closed_; }
  const std::string& error() const { return error_; }

 protected:
  bool Fail(std::string why) {
    error_ = std::move(why);
    return false;
  }
  bool peer_closed_ = false;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// TLS

struct TlsOptions {
  std::string cafile;     // CAs to verify the broker's certificate with
  std::string certfile;   // client certificate chain (mutual TLS); empty: none
  std::string keyfile;    // its private key
  bool insecure = false;  // no verification of the broker's certificate or name
  std::string version;    // "1.2" or "1.3": only that version; empty: 1.2 or 1.3
  std::string host;       // the name or address the broker's certificate must match (and SNI)
};

// OpenSSL's queued errors as one line (and the queue emptied).
inline std::string OpenSslErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

// The SSL_CTX every connection of a run shares: CA file, client certificate, version range.
class TlsClientContext {
 public:
  static std::unique_ptr<TlsClientContext> Create(const TlsOptions& o, std::string* error) {
    std::unique_ptr<TlsClientContext> c(new TlsClientContext(o));
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    if (c->ctx_ == nullptr) return Error(error, "SSL_CTX_new: " + OpenSslErrors());
    int version_min = TLS1_2_VERSION, version_max = TLS1_3_VERSION;
    if (o.version == "1.2") version_max = TLS1_2_VERSION;
    if (o.version == "1.3") version_min = TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(c->ctx_, version_min);
    SSL_CTX_set_max_proto_version(c->ctx_, version_max);
    // No shared session cache: a connection makes a full handshake, the rate of new clients,
    // unless the caller offers it a session of its own (SSL_set_session, --tls-resume).
    SSL_CTX_set_session_cache_mode(c->ctx_, SSL_SESS_CACHE_OFF);
    if (!o.insecure) {
      if (o.cafile.empty()) return Error(error, "--tls needs --cafile (or --insecure)");
      if (SSL_CTX_load_verify_locations(c->ctx_, o.cafile.c_str(), nullptr) != 1) {
        return Error(error, "cannot load CA file " + o.cafile + ": " + OpenSslErrors());
      }
      SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
    } else {
      SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_NONE, nullptr);
    }
    if (o.certfile.empty() != o.keyfile.empty()) {
      return Error(error, "--cert and --key go together");
    }
    if (!o.certfile.empty()) {
      if (SSL_CTX_use_certificate_chain_file(c->ctx_, o.certfile.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(c->ctx_, o.keyfile.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(c->ctx_) != 1) {
        return Error(error, "cannot use client certificate " + o.certfile + " / key " + o.keyfile +
                                ": " + OpenSslErrors());
      }
    }
    return c;
  }
  ~TlsClientContext() { SSL_CTX_free(ctx_); }
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  const TlsOptions& options() const { return options_; }

 private:
  explicit TlsClientContext(const TlsOptions& o) : options_(o) {}
  static std::unique_ptr<TlsClientContext> Error(std::string* error, std::string why) {
    *error = std::move(why);
    return nullptr;
  }
  TlsOptions options_;
  SSL_CTX* ctx_ = nullptr;
};

// One TLS client connection driven through two memory BIOs: received records are written into
// the read BIO, SSL_read and SSL_write run against them, and whatever OpenSSL wants to send is
// drained from the write BIO into `down`. A memory BIO never blocks, so SSL_write takes all its
// input at once; SSL_read stops at SSL_ERROR_WANT_READ.
class TlsClient final : public Layer {
 public:
  explicit TlsClient(const TlsClientContext& context) : ssl_(SSL_new(context.ctx())) {
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    // At end of data a memory BIO reports "retry" (-1), not EOF: more may come from the socket.
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl_, rbio, wbio);
    wbio_ = wbio;
    SSL_set_connect_state(ssl_);
    const TlsOptions& o = context.options();
    in6_addr ip6;
    in_addr ip4;
    const bool is_ip = inet_pton(AF_INET, o.host.c_str(), &ip4) == 1 ||
                       inet_pton(AF_INET6, o.host.c_str(), &ip6) == 1;
    // RFC 6066 section 3: SNI carries host names only, never a literal address.
    if (!is_ip && !o.host.empty()) SSL_set_tlsext_host_name(ssl_, o.host.c_str());
    if (!o.insecure && !o.host.empty()) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, o.host.c_str());
      } else {
        X509_VERIFY_PARAM_set1_host(param, o.host.c_str(), 0);
      }
    }
  }
  ~TlsClient() override { SSL_free(ssl_); }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool Start(wire::Buffer& down) override { return Handshake(down); }

  bool Receive(const uint8_t* data, size_t size, wire::Buffer& up, wire::Buffer& down) override {
    if (size != 0 &&
        BIO_write(SSL_get_rbio(ssl_), data, static_cast<int>(size)) != static_cast<int>(size)) {
      return Fail("BIO_write: " + OpenSslErrors());
    }
    if (!open_ && !Handshake(down)) return false;
    if (!open_) return true;
    for (;;) {
      constexpr size_t kChunk = 16 * 1024;  // one TLS record's plaintext at most
      uint8_t* p = up.Reserve(kChunk);
      const int n = SSL_read(ssl_, p, static_cast<int>(kChunk));
      if (n > 0) {
        up.Commit(static_cast<size_t>(n));
        continue;
      }
      up.Commit(0);
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ) break;
      if (err == SSL_ERROR_ZERO_RETURN) {
        // RFC 8446 section 6.1: the peer's close_notify is answered with ours (Drain below).
        peer_closed_ = true;
        SSL_shutdown(ssl_);
        break;
      }
      return Fail("SSL_read: " + OpenSslErrors());
    }
    Drain(down);  // post-handshake messages (TLS 1.3 key updates) and alerts
    return true;
  }

  bool Send(const uint8_t* data, size_t size, wire::Buffer& down) override {
    if (size != 0 && SSL_write(ssl_, data, static_cast<int>(size)) != static_cast<int>(size)) {
      return Fail("SSL_write: " + OpenSslErrors());
    }
    Drain(down);
    return true;
  }

  bool open() const override { return open_; }
  SSL* ssl() const { return ssl_; }

 private:
  bool Handshake(wire::Buffer& down) {
    const int rc = SSL_do_handshake(ssl_);
    Drain(down);  // the ClientHello, Finished or an alert
    if (rc == 1) {
      open_ = true;
      return true;
    }
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) return true;
    std::string why = "TLS handshake: " + OpenSslErrors();
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      why += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
    }
    return Fail(why);
  }

  void Drain(wire::Buffer& down) {
    const size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return;
    const int n = BIO_read(wbio_, down.Reserve(pending), static_cast<int>(pending));
    down.Commit(n > 0 ? static_cast<size_t>(n) : 0);
  }

  SSL* ssl_;
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool open_ = false;
};

// ---------------------------------------------------------------------------------------------
// WebSocket (RFC 6455, client side)

inline std::string Base64(const uint8_t* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

// RFC6455-4.2.2 item 5.4: base64(SHA-1(key + the protocol's GUID)).
inline std::string WebSocketAccept(std::string_view key) {
  std::string text(key);
  text += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const uint8_t*>(text.data()), text.size(), digest);
  return Base64(digest, sizeof digest);
}

// Applies (or removes) the masking of RFC6455-5.3; `offset` is the position of data[0] in the
// frame's payload.
inline void Mask(uint8_t* data, size_t size, const uint8_t key[4], size_t offset = 0) {
  for (size_t i = 0; i < size; ++i) data[i] ^= key[(offset + i) & 3];
}

enum WebSocketOpcode : uint8_t {
  kWsContinuation = 0x0,
  kWsText = 0x1,
  kWsBinary = 0x2,
  kWsClose = 0x8,
  kWsPing = 0x9,
  kWsPong = 0xA,
};

// Appends one frame from the client: FIN set, masked with a fresh key (RFC6455-5.3: every
// client frame masked, the key unpredictable, so it comes from OpenSSL's RAND_bytes).
inline void EncodeClientFrame(uint8_t opcode, const uint8_t* data, size_t size,
                              wire::Buffer& down) {
  uint8_t key[4];
  if (RAND_bytes(key, sizeof key) != 1) std::memset(key, 0x5a, sizeof key);
  down.Put(static_cast<uint8_t>(0x80 | opcode));
  if (size < 126) {
    down.Put(static_cast<uint8_t>(0x80 | size));
  } else if (size <= 0xFFFF) {
    down.Put(0x80 | 126);
    down.PutU16(static_cast<uint16_t>(size));
  } else {
    down.Put(0x80 | 127);
    down.PutU32(static_cast<uint32_t>(static_cast<uint64_t>(size) >> 32));
    down.PutU32(static_cast<uint32_t>(size));
  }
  down.PutBytes(key, sizeof key);
  uint8_t* p = down.Append(size);
  if (size != 0) std::memcpy(p, data, size);
  Mask(p, size, key);
}

// The client end of a WebSocket carrying MQTT: the HTTP/1.1 upgrade asking for the `mqtt`
// subprotocol (MQTT 5.0 section 6), then each Send is binary frames of at most kMaxSendFrameBytes
// (one frame may hold several MQTT packets or part of one: MQTT-6.0.0-2 lets packets span frames
// or share them, and servers bound the frames they take). From the server it takes
// binary and continuation frames of any fragmentation, answers pings and Close, and refuses a
// masked frame (RFC6455-5.1), a text frame (MQTT-6.0.0-1) and any frame above max_frame_bytes.
class WebSocketClient final : public Layer {
 public:
  static constexpr size_t kMaxResponseHeaderBytes = 8 * 1024;
  // What one loop iteration's output of small messages fits in whole (16 PUBLISHes of 64 bytes
  // are about 1.3 KiB), and below any server's frame bound: ringmq's is its max_packet_size, and a
  // window of big messages in one frame would exceed it.
  static constexpr size_t kMaxSendFrameBytes = 64 * 1024;

  WebSocketClient(std::string host_header, std::string path, uint64_t max_frame_bytes)
      : host_header_(std::move(host_header)),
        path_(std::move(path)),
        max_frame_bytes_(max_frame_bytes) {}

  bool Start(wire::Buffer& down) override {
    uint8_t nonce[16];  // RFC6455-4.1: a random 16-byte value, base64-encoded
    if (RAND_bytes(nonce, sizeof nonce) != 1) return Fail("RAND_bytes: " + OpenSslErrors());
    const std::string key = Base64(nonce, sizeof nonce);
    expected_accept_ = WebSocketAccept(key);
    const std::string request = "GET " + path_ + " HTTP/1.1\r\nHost: " + host_header_ +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: " +
                                key +
                                "\r\nSec-WebSocket-Version: 13\r\n"
                                "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    down.PutBytes(request.data(), request.size());
    return true;
  }

  bool Receive(const uint8_t* data, size_t size, wire::Buffer& up, wire::Buffer& down) override {
    if (!open_) {
      const size_t before = response_.size();
      response_.append(reinterpret_cast<const char*>(data), size);
      const size_t end = response_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (response_.size() > kMaxResponseHeaderBytes) {
          return Fail("WebSocket upgrade: response header over 8 KiB");
        }
        return true;
      }
      if (!CheckUpgradeResponse(response_.substr(0, end + 2))) return false;
      open_ = true;
      const size_t used = end + 4 - before;  // bytes of `data` that were header
      data += used;
      size -= used;
      response_.clear();
      response_.shrink_to_fit();
    }
    return Frames(data, size, up, down);
  }

  bool Send(const uint8_t* data, size_t size, wire::Buffer& down) override {
    while (size > 0) {
      const size_t n = std::min(size, kMaxSendFrameBytes);
      EncodeClientFrame(kWsBinary, data, n, down);
      data += n;
      size -= n;
    }
    return true;
  }

  bool open() const override { return open_; }

  // RFC6455-4.1 items 1-6 of what a client checks of the server's handshake: status 101,
  // Upgrade: websocket, Connection: Upgrade, the Sec-WebSocket-Accept of our key, and the
  // subprotocol we asked for (MQTT-6.0.0-3: `mqtt`).
  bool CheckUpgradeResponse(const std::string& head) {
    const size_t line_end = head.find("\r\n");
    const std::string status = head.substr(0, line_end);
    if (status.rfind("HTTP/1.1 101", 0) != 0) {
      return Fail("WebSocket upgrade refused: '" + status + "'");
    }
    bool upgrade = false, connection = false, accept = false, protocol = false;
    size_t pos = line_end + 2;
    while (pos < head.size()) {
      const size_t eol = head.find("\r\n", pos);
      const std::string line = head.substr(pos, eol - pos);
      pos = eol + 2;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = Lower(line.substr(0, colon));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t") + 1);
      if (name == "upgrade") upgrade = Lower(value) == "websocket";
      if (name == "connection") connection = Lower(value).find("upgrade") != std::string::npos;
      if (name == "sec-websocket-accept") accept = value == expected_accept_;
      if (name == "sec-websocket-protocol") protocol = value == "mqtt";
    }
    if (!upgrade || !connection) return Fail("WebSocket upgrade: no Upgrade/Connection header");
    if (!accept) return Fail("WebSocket upgrade: wrong or missing Sec-WebSocket-Accept");
    if (!protocol) return Fail("WebSocket upgrade: the server did not choose subprotocol mqtt");
    return true;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }

  // Frames from the server, which may arrive split anywhere: a header is gathered in header_
  // (at most 10 bytes, a server frame has no mask key), data payload goes up as it arrives,
  // a control frame's payload (at most 125 bytes) is gathered in control_.
  bool Frames(const uint8_t* data, size_t size, wire::Buffer& up, wire::Buffer& down) {
    while (size > 0 && !peer_closed_) {
      if (payload_left_ == 0 && !in_frame_) {
        const size_t take = std::min(size, kMaxHeader - header_size_);
        std::memcpy(header_ + header_size_, data, take);
        header_size_ += take;
        size_t header_bytes = 0;
        if (!ParseHeader(&header_bytes)) return false;
        if (header_bytes == 0) {  // incomplete: all of `take` kept
          data += take;
          size -= take;
          continue;
        }
        const size_t used = take - (header_size_ - header_bytes);
        data += used;
        size -= used;
        header_size_ = 0;
        in_frame_ = true;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(size, payload_left_));
      if (control_frame_) {
        control_.append(reinterpret_cast<const char*>(data), take);
      } else {
        up.PutBytes(data, take);
      }
      data += take;
      size -= take;
      payload_left_ -= take;
      if (payload_left_ == 0) {
        in_frame_ = false;
        if (control_frame_ && !OnControl(down)) return false;
      }
    }
    return true;
  }

  // Parses header_ (header_size_ bytes). Sets *header_bytes to the header's length once it is
  // complete (0 while more is needed); false on a frame the client must refuse.
  bool ParseHeader(size_t* header_bytes) {
    *header_bytes = 0;
    if (header_size_ < 2) return true;
    const bool fin = (header_[0] & 0x80) != 0;
    if ((header_[0] & 0x70) != 0) return Fail("WebSocket: RSV bits set (RFC6455-5.2)");
    const uint8_t opcode = header_[0] & 0x0F;
    if ((header_[1] & 0x80) != 0) return Fail("WebSocket: masked server frame (RFC6455-5.1)");
    uint64_t length = header_[1] & 0x7F;
    size_t need = 2;
    if (length == 126) need = 4;
    if (length == 127) need = 10;
    if (header_size_ < need) return true;
    if (length == 126) length = (uint64_t{header_[2]} << 8) | header_[3];
    if (length == 127) {
      length = 0;
      for (int i = 2; i < 10; ++i) length = (length << 8) | header_[i];
    }
    control_frame_ = (opcode & 0x8) != 0;
    if (control_frame_) {
      if (!fin || length > 125) return Fail("WebSocket: bad control frame (RFC6455-5.5)");
      if (opcode != kWsClose && opcode != kWsPing && opcode != kWsPong) {
        return Fail("WebSocket: unknown control opcode");
      }
      control_opcode_ = opcode;
      control_.clear();
    } else if (opcode == kWsText) {
      return Fail("WebSocket: text frame (MQTT-6.0.0-1: MQTT travels in binary frames)");
    } else if (opcode == kWsBinary) {
      if (in_message_) return Fail("WebSocket: new message inside a fragmented one");
      in_message_ = !fin;
    } else if (opcode == kWsContinuation) {
      if (!in_message_) return Fail("WebSocket: continuation without a message");
      in_message_ = !fin;
    } else {
      return Fail("WebSocket: unknown data opcode");
    }
    if (length > max_frame_bytes_) return Fail("WebSocket: frame over the size limit");
    payload_left_ = length;
    *header_bytes = need;
    return true;
  }

  bool OnControl(wire::Buffer& down) {
    const auto* p = reinterpret_cast<const uint8_t*>(control_.data());
    if (control_opcode_ == kWsPing) {
      EncodeClientFrame(kWsPong, p, control_.size(), down);  // RFC6455-5.5.2
    } else if (control_opcode_ == kWsClose) {
      EncodeClientFrame(kWsClose, p, std::min<size_t>(control_.size(), 2), down);  // 5.5.1
      peer_closed_ = true;
    }
    return true;
  }

  static constexpr size_t kMaxHeader = 10;
  std::string host_header_;
  std::string path_;
  uint64_t max_frame_bytes_;
  std::string expected_accept_;
  std::string response_;
  bool open_ = false;
  uint8_t header_[kMaxHeader] = {};
  size_t header_size_ = 0;
  bool in_frame_ = false;
  bool in_message_ = false;
  bool control_frame_ = false;
  uint8_t control_opcode_ = 0;
  std::string control_;
  uint64_t payload_left_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The stack

class Stack {
 public:
  static constexpr size_t kMaxLayers = 2;

  // At most kMaxLayers (TLS, then WebSocket): more is a programming error.
  void Add(std::unique_ptr<Layer> layer) {
    if (layers_.size() >= kMaxLayers) std::abort();
    layers_.push_back(std::move(layer));
  }
  bool empty() const { return layers_.empty(); }
  bool open() const { return started_ == layers_.size() && (empty() || layers_.back()->open()); }
  bool peer_closed() const {
    for (const auto& l : layers_) {
      if (l->peer_closed()) return true;
    }
    return false;
  }
  const std::string& error() const { return error_; }
  Layer& layer(size_t i) { return *layers_[i]; }

  // Starts the bottom layer; those above start as the ones below them open.
  bool Start(wire::Buffer& wire_out) {
    if (layers_.empty()) return true;
    started_ = 0;
    return StartNext(wire_out);
  }

  // Wire bytes from the socket: MQTT bytes to `app_in`, bytes to write to `wire_out`.
  bool Receive(const uint8_t* data, size_t size, wire::Buffer& app_in, wire::Buffer& wire_out) {
    if (layers_.empty()) {
      app_in.PutBytes(data, size);
      return true;
    }
    const uint8_t* p = data;
    size_t n = size;
    for (size_t i = 0; i < started_; ++i) {
      const bool top = i + 1 == layers_.size();
      wire::Buffer& up = top ? app_in : scratch_up_[i];
      wire::Buffer own;
      if (!layers_[i]->Receive(p, n, up, own)) return Fail(i);
      if (!SendBelow(i, own, wire_out)) return false;
      if (i + 1 == started_ && layers_[i]->open() && !top && !StartNext(wire_out)) return false;
      if (top) break;
      p = up.data();
      n = up.size();
      // The layer above consumes everything it is given (it buffers what it cannot use yet).
      scratch_pending_[i] = true;
    }
    for (size_t i = 0; i + 1 < layers_.size(); ++i) {
      if (scratch_pending_[i]) scratch_up_[i].Clear();
      scratch_pending_[i] = false;
    }
    return true;
  }

  // MQTT bytes (all of `app_out`, consumed) down through every layer into `wire_out`.
  bool Send(wire::Buffer& app_out, wire::Buffer& wire_out) {
    if (app_out.empty()) return true;
    if (!SendBelow(layers_.size(), app_out, wire_out)) return false;
    app_out.Clear();
    return true;
  }

 private:
  bool StartNext(wire::Buffer& wire_out) {
    while (started_ < layers_.size()) {
      const size_t i = started_++;
      wire::Buffer own;
      if (!layers_[i]->Start(own)) return Fail(i);
      if (!SendBelow(i, own, wire_out)) return false;
      if (!layers_[i]->open()) break;
    }
    return true;
  }

  // Bytes produced at the level of layer `from` (layers_.size(): the application) encoded by
  // each layer below it in turn, ending in `wire_out`.
  bool SendBelow(size_t from, wire::Buffer& bytes, wire::Buffer& wire_out) {
    if (bytes.empty()) return true;
    if (from == 0) {
      wire_out.PutBytes(bytes.data(), bytes.size());
      return true;
    }
    // Layer i (above the bottom one) encodes into send_scratch_[i]; kept between calls so that
    // a steady stream of sends allocates nothing.
    const uint8_t* p = bytes.data();
    size_t n = bytes.size();
    for (size_t i = from; i-- > 0;) {
      wire::Buffer& out = i == 0 ? wire_out : send_scratch_[i];
      if (i != 0) out.Clear();  // wire_out keeps what is still unsent
      if (!layers_[i]->Send(p, n, out)) return Fail(i);
      if (i == 0) break;
      p = out.data();
      n = out.size();
    }
    return true;
  }

  bool Fail(size_t i) {
    error_ = layers_[i]->error();
    return false;
  }

  std::vector<std::unique_ptr<Layer>> layers_;
  size_t started_ = 0;
  wire::Buffer scratch_up_[kMaxLayers];
  bool scratch_pending_[kMaxLayers] = {};
  wire::Buffer send_scratch_[kMaxLayers];
  std::string error_;
};

}  // namespace ringmq::bench::transport

#endif  // RINGMQ_BENCH_LOADGEN_TRANSPORT_H_
