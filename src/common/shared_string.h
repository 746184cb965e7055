// SharedString: an immutable string whose copies share one heap block by reference count.
//
// For a client id, held by the connection (for its log lines, and the hand-off to the home
// shard) and by the session bound to it (the shard's client-id map holds session slots and
// reads the id through the session): one block instead of a std::string in each (32 bytes inline plus a heap copy
// when longer than 15 bytes). The handle is one pointer; the block is a 4-byte header, the
// characters and a NUL (so c_str() needs no copy), which for a 17-byte id is a 24-byte
// allocation. The empty string holds no block.
//
// Bounds: at most 65,535 characters (an MQTT string's length field) and 65,535 handles per
// block (asserted; a client id has two: its connection's and its session's).
// Thread safety: the count is not atomic, so every handle to one block must stay on one thread
// (a shard's connections and sessions do; a hand-off to another shard sends the bytes of the
// CONNECT, and the adopting connection makes its own block).
#ifndef RINGMQ_COMMON_SHARED_STRING_H_
#define RINGMQ_COMMON_SHARED_STRING_H_

#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

#include "common/assert.h"

namespace ringmq {

class SharedString {
 public:
  static constexpr size_t kMaxSize = UINT16_MAX;

  SharedString() = default;
  explicit SharedString(std::string_view text) {
    RINGMQ_ASSERT(text.size() <= kMaxSize);
    if (text.empty()) return;
    void* memory = ::operator new(sizeof(Block) + text.size() + 1);
    block_ = ::new (memory) Block{1, static_cast<uint16_t>(text.size())};
    char* characters = block_->characters();
    std::memcpy(characters, text.data(), text.size());
    characters[text.size()] = '\0';
  }
  SharedString(const SharedString& other) : block_(other.block_) { Retain(); }
  SharedString(SharedString&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  SharedString& operator=(const SharedString& other) {
    if (block_ != other.block_) {
      Release();
      block_ = other.block_;
      Retain();
    }
    return *this;
  }
  SharedString& operator=(SharedString&& other) noexcept {
    if (this != &other) {
      Release();
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  ~SharedString() { Release(); }

  std::string_view view() const {
    return block_ == nullptr ? std::string_view()
                             : std::string_view(block_->characters(), block_->size);
  }
  const char* c_str() const { return block_ == nullptr ? "" : block_->characters(); }
  size_t size() const { return block_ == nullptr ? 0 : block_->size; }
  bool empty() const { return block_ == nullptr; }
  // Handles sharing this block (0 for the empty string).
  uint32_t use_count() const { return block_ == nullptr ? 0 : block_->references; }

  friend bool operator==(const SharedString& a, std::string_view b) { return a.view() == b; }

 private:
  struct Block {
    uint16_t references;
    uint16_t size;
    char* characters() { return reinterpret_cast<char*>(this + 1); }
  };
  static_assert(sizeof(Block) == 4);

  void Retain() {
    if (block_ == nullptr) return;
    RINGMQ_ASSERT(block_->references < UINT16_MAX);
    ++block_->references;
  }
  void Release() {
    if (block_ == nullptr) return;
    RINGMQ_ASSERT(block_->references > 0);
    if (--block_->references == 0) {
      block_->~Block();
      ::operator delete(block_);
    }
    block_ = nullptr;
  }

  Block* block_ = nullptr;
};

}  // namespace ringmq

#endif  // RINGMQ_COMMON_SHARED_STRING_H_
