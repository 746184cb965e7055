// Per-source-address connection counts and CONNECT rates, shared by every shard.
//
// A fixed table of slots indexed by a hash of the client's address: an IPv4 address, or the /64
// prefix of an IPv6 address (one host usually owns a whole /64, so per-/128 limits would be
// trivial to dodge); IPv4-mapped IPv6 addresses count as IPv4. Each slot holds
//   - the number of open TCP connections from the address (incremented when a shard takes the
//     socket, decremented when it lets go of it), and
//   - a one-second window: (second, CONNECTs seen in it), packed in one 64-bit word.
// Two addresses whose hashes share a slot share its counts: with 65,536 slots and a keyed hash
// this is rare, and it can only make a limit stricter, never looser. Memory: 1 MiB, allocated
// once; the table is only allocated when a per-address limit is configured.
//
// Thread safety: every method may be called from any thread; all operations are lock-free
// (relaxed atomics: the counts are policy inputs, they order nothing else).
#ifndef RINGMQ_CONNECT_ADDRESS_TABLE_H_
#define RINGMQ_CONNECT_ADDRESS_TABLE_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace ringmq::connect {

class AddressTable {
 public:
  static constexpr uint32_t kSlots = 1u << 16;
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  AddressTable();

  // The slot of a peer address (AF_INET or AF_INET6), or kNoSlot for other families (e.g. a
  // Unix socket). Pure: the same address always gives the same slot in one process.
  uint32_t SlotOf(const sockaddr_storage& address) const;
  // The slot of a connected socket's peer (getpeername), or kNoSlot if it has none.
  uint32_t SlotOfPeer(int fd) const;

  // A connection from the slot's address was opened / closed. Open returns the count
  // including it.
  uint32_t Open(uint32_t slot);
  void Close(uint32_t slot);
  uint32_t Connections(uint32_t slot) const;

  // Counts one CONNECT in the window of `now_s` (any monotonic seconds) and returns the count
  // in that window including it. A new second starts a new window.
  uint32_t CountConnect(uint32_t slot, uint32_t now_s);

 private:
  struct alignas(16) Slot {
    std::atomic<uint32_t> connections{0};
    std::atomic<uint64_t> window{0};  // second << 32 | count
  };
  const uint64_t seed_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace ringmq::connect

#endif  // RINGMQ_CONNECT_ADDRESS_TABLE_H_
