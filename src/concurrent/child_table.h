// The children of one node of a level-keyed tree shared by all shards: the subscription trie
// (sub/trie.h) and the retained-message store (retain/retained_store.h) keep the children of a
// node in a ChildMap, keyed by the child's level bytes.
//
// Shape: an open-addressing hash table with linear probing, allocated as one block (header, then
// the slots). A slot is one 64-bit word: ChildSlot::kEmpty, ChildSlot::kTombstone, or a node
// pointer in the low 48 bits with a 16-bit tag of the level hash in the high bits, so a probe
// rejects most other keys without touching their node. A parent with a million children costs
// O(1) per lookup and O(1) amortized per insert and erase. The same file holds what both trees
// need to key their levels: LevelHasher (seeded, so clients cannot choose colliding levels) and
// LevelEquals. (Splitting a topic into levels is topic syntax: mqtt::LevelSplitter.)
//
// Requirements on Node: `std::string_view level() const`, the level bytes the node is keyed by,
// constant for the node's lifetime; alignment of at least 8 (the low 3 bits of a slot's pointer
// are zero); user-space addresses, which fit in 48 bits.
//
// Thread safety
// - One writer at a time: Insert, Erase, FindForWrite and DestroyNow are called only under the
//   owner's write lock (or other serialization of its writers). The writer-only counters of a
//   table (live, used) are plain fields for that reason.
// - Readers (Find, table(), ChildTable::Find, ChildTable::LiveChild) take no lock, never write
//   and never retry: a lookup ends at the first empty slot and probes at most capacity slots, so
//   it is wait-free. They may run concurrently with the writer, on any thread that is an online
//   reader of the EpochDomain the writer retires into, and may hold the table and node pointers
//   they load until their next quiescent point.
// - DestroyNow is for the owner's destructor only: no reader and no writer may be running.
//
// Publication (memory ordering)
// - A table is built aside and published with one release store of the map's pointer; readers
//   load it with acquire, so they see its capacity and every slot written before the store.
// - A slot that receives a node is written with release after the node is fully built; readers
//   load slots with acquire, so a node they find is complete.
// - Nothing else a reader can reach is changed in place. A slot moves only kEmpty -> node
//   (insert), node -> kTombstone (erase) and kTombstone -> node (insert reusing the tombstone);
//   it never goes back to kEmpty, so the probe sequence of a key that stays present is never
//   cut while a reader follows it.
// - A resize (Rebuild) copies the live slots into a new table, publishes it and retires the old
//   one: a reader still probing or scanning the old table sees every child that was live when it
//   was replaced. Slots keep their tag across tables; only the index changes.
//
// Reclamation (QSBR, concurrent/epoch.h)
// A replaced table, and a table freed when its last child goes, are handed to
// EpochDomain::Retire right after they are unlinked and never touched afterwards (Retire may free
// them at once when every reader is offline). Nodes are not owned by the map: the owner unlinks
// a node with Erase and retires it itself.
//
// Invariants (writer side)
// - The map's pointer is null iff it has no children: a table is created by the first Insert and
//   freed (retired) by the Erase of its last child.
// - used (live + tombstones) stays at or below capacity / 2, so every probe sequence reaches an
//   empty slot. Insert rebuilds when one more slot would pass that; a rebuild sizes the table for
//   a load of at most 1/3 (CapacityFor), so at least capacity / 6 inserts pass before the next.
// - Erase shrinks (rebuilds) a table larger than kMinCapacity once live < capacity / 8.
// - Each level appears at most once: Insert requires that the level is absent.
#ifndef RINGMQ_CONCURRENT_CHILD_TABLE_H_
#define RINGMQ_CONCURRENT_CHILD_TABLE_H_

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "common/assert.h"
#include "concurrent/epoch.h"

namespace ringmq::concurrent {

// ---- Level keys -----------------------------------------------------------------------------

namespace child_table_internal {

inline uint64_t Load64(const char* bytes) {
  uint64_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

inline uint64_t Load32(const char* bytes) {
  uint32_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

// 64x64 -> 128-bit multiply folded to 64 bits: every output bit depends on most input bits, in a
// few cycles.
inline uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
  __extension__ using Product = unsigned __int128;
  const Product product = static_cast<Product>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

}  // namespace child_table_internal

// Seeded hash of a level. Immutable after construction: any thread may call it.
class LevelHasher {
 public:
  explicit LevelHasher(uint64_t seed);

  // A seed drawn from std::random_device.
  static uint64_t RandomSeed();

  uint64_t seed() const { return seed_; }

  // Short levels (most are under 16 bytes) take two folded multiplies; longer ones one more per
  // 16 bytes. Both keys are secret, so no input can cancel a multiplicand to zero on purpose.
  uint64_t operator()(std::string_view level) const {
    using child_table_internal::FoldedMultiply;
    using child_table_internal::Load32;
    using child_table_internal::Load64;
    const char* bytes = level.data();
    const size_t size = level.size();
    uint64_t state = seed_;
    uint64_t first = 0;
    uint64_t last = 0;
    if (size <= 16) {
      if (size >= 4) {
        // Four 4-byte reads, two from each end, cover every byte of 4..16 bytes.
        const size_t step = (size >> 3) << 2;  // 0 for 4..7 bytes, 4 for 8..15, 8 for 16
        first = (Load32(bytes) << 32) | Load32(bytes + step);
        last = (Load32(bytes + size - 4) << 32) | Load32(bytes + size - 4 - step);
      } else if (size > 0) {
        first = (uint64_t{static_cast<uint8_t>(bytes[0])} << 16) |
                (uint64_t{static_cast<uint8_t>(bytes[size >> 1])} << 8) |
                static_cast<uint8_t>(bytes[size - 1]);
      }
    } else {
      size_t remaining = size;
      while (remaining > 16) {
        state = FoldedMultiply(Load64(bytes) ^ key_, Load64(bytes + 8) ^ state);
        bytes += 16;
        remaining -= 16;
      }
      // The last 16 bytes of the level, overlapping bytes already mixed when remaining < 16.
      first = Load64(bytes + remaining - 16);
      last = Load64(bytes + remaining - 8);
    }
    return FoldedMultiply(key_ ^ size, FoldedMultiply(first ^ key_, last ^ state));
  }

 private:
  uint64_t seed_;
  uint64_t key_;  // derived from the seed
};

// Byte equality of two levels, inline for the common short ones (overlapping word loads) instead
// of a memcmp call.
inline bool LevelEquals(std::string_view a, std::string_view b) {
  using child_table_internal::Load32;
  using child_table_internal::Load64;
  const size_t size = a.size();
  if (size != b.size()) {
    return false;
  }
  const char* x = a.data();
  const char* y = b.data();
  if (size >= 8) {
    if (size > 16) {
      return std::memcmp(x, y, size) == 0;
    }
    return ((Load64(x) ^ Load64(y)) | (Load64(x + size - 8) ^ Load64(y + size - 8))) == 0;
  }
  if (size >= 4) {
    return ((Load32(x) ^ Load32(y)) | (Load32(x + size - 4) ^ Load32(y + size - 4))) == 0;
  }
  for (size_t i = 0; i < size; ++i) {
    if (x[i] != y[i]) {
      return false;
    }
  }
  return true;
}

// ---- Slots ----------------------------------------------------------------------------------

// The encoding of one slot (see the file comment). Also used on its own by the trie for the
// inline slot of a node with a single exact child.
struct ChildSlot {
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kTombstone = 1;
  static constexpr int kTagShift = 48;
  static constexpr uint64_t kPointerMask = (uint64_t{1} << kTagShift) - 1;
  // Forced on, so that a live slot differs from kEmpty and kTombstone in its tag alone.
  static constexpr uint64_t kTagLiveBit = uint64_t{1} << 15;

  static uint64_t Tag(uint64_t hash) { return (hash >> kTagShift) | kTagLiveBit; }
  static bool IsLive(uint64_t slot) { return slot != kEmpty && slot != kTombstone; }
  // True if `slot` is live and its tag is that of `hash` (a cheap filter before the level
  // comparison; kEmpty and kTombstone never match).
  static bool TagMatches(uint64_t slot, uint64_t hash) { return (slot >> kTagShift) == Tag(hash); }

  static uint64_t Pack(const void* node, uint64_t hash) {
    const auto address = reinterpret_cast<uintptr_t>(node);
    RINGMQ_ASSERT((address & ~kPointerMask) == 0);  // user-space pointers fit in 48 bits
    RINGMQ_ASSERT((address & 7) == 0);
    return (Tag(hash) << kTagShift) | address;
  }

  template <typename Node>
  static Node* NodeOf(uint64_t slot) {
    return reinterpret_cast<Node*>(slot & kPointerMask);
  }
};

// ---- Table ----------------------------------------------------------------------------------

// One table allocation: this header, then `capacity` slots. Built by ChildMap; readers get it from
// ChildMap::table() and may scan it (LiveChild) or probe it (Find).
template <typename Node>
class alignas(8) ChildTable {
 public:
  static constexpr uint32_t kMinCapacity = 8;

  uint32_t capacity() const { return capacity_; }

  // Reader and writer lookup of the child keyed by `level`, whose hash is `hash`. Ends at an
  // empty slot (load <= 1/2); the bound on probes is a second guard.
  const Node* Find(std::string_view level, uint64_t hash) const {
    const uint32_t mask = capacity_ - 1;
    const std::atomic<uint64_t>* slot_array = slots();
    uint32_t index = static_cast<uint32_t>(hash) & mask;
    for (uint32_t probes = 0; probes <= mask; ++probes) {
      const uint64_t slot = slot_array[index].load(std::memory_order_acquire);
      if (slot == ChildSlot::kEmpty) {
        return nullptr;
      }
      if (ChildSlot::TagMatches(slot, hash)) {
        const Node* node = ChildSlot::NodeOf<const Node>(slot);
        if (LevelEquals(node->level(), level)) {
          return node;
        }
      }
      index = (index + 1) & mask;
    }
    return nullptr;
  }

  // The child in slot `index` (< capacity()), or null if the slot holds none. For scans: a scan
  // concurrent with the writer sees each child that stays in the table, and may or may not see
  // one inserted or erased meanwhile.
  const Node* LiveChild(uint32_t index) const {
    RINGMQ_ASSERT(index < capacity_);
    const uint64_t slot = slots()[index].load(std::memory_order_acquire);
    return ChildSlot::IsLive(slot) ? ChildSlot::NodeOf<const Node>(slot) : nullptr;
  }

  // Writer-only: slots holding a child, and slots holding a child or a tombstone.
  uint32_t live() const { return live_; }
  uint32_t used() const { return used_; }

 private:
  template <typename>
  friend class ChildMap;

  explicit ChildTable(uint32_t capacity) : capacity_(capacity) {}

  static ChildTable* New(uint32_t capacity) {
    static_assert(sizeof(ChildTable) % alignof(std::atomic<uint64_t>) == 0, "slots follow");
    static_assert(std::atomic<uint64_t>::is_always_lock_free);
    RINGMQ_ASSERT(std::has_single_bit(capacity));
    void* memory = ::operator new(sizeof(ChildTable) + capacity * sizeof(std::atomic<uint64_t>));
    auto* table = new (memory) ChildTable(capacity);
    std::atomic<uint64_t>* slot_array = table->slots();
    for (uint32_t i = 0; i < capacity; ++i) {
      new (&slot_array[i]) std::atomic<uint64_t>(ChildSlot::kEmpty);
    }
    return table;
  }

  // An EpochDomain::Deleter. The header and the slots are trivially destructible.
  static void Delete(void* table) { ::operator delete(table); }

  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  const std::atomic<uint64_t>* slots() const {
    return reinterpret_cast<const std::atomic<uint64_t>*>(this + 1);
  }

  // Writer-only: stores `slot_value` (a packed child whose level is absent from the table) in the
  // first free slot (tombstone or empty) of the probe sequence of `hash`. The table has room.
  void Put(uint64_t slot_value, uint64_t hash) {
    const uint32_t mask = capacity_ - 1;
    std::atomic<uint64_t>* slot_array = slots();
    uint32_t index = static_cast<uint32_t>(hash) & mask;
    for (uint32_t probes = 0; probes <= mask; ++probes) {
      const uint64_t slot = slot_array[index].load(std::memory_order_relaxed);
      if (!ChildSlot::IsLive(slot)) {
        used_ += slot == ChildSlot::kEmpty ? 1 : 0;
        ++live_;
        // Release: a reader that finds the child sees it fully built.
        slot_array[index].store(slot_value, std::memory_order_release);
        return;
      }
      index = (index + 1) & mask;
    }
    RINGMQ_ASSERT(false && "child table full");
  }

  // Writer-only: turns the slot of `child` (present; its level hashes to `hash`) into a
  // tombstone.
  void Remove(const Node* child, uint64_t hash) {
    const uint32_t mask = capacity_ - 1;
    std::atomic<uint64_t>* slot_array = slots();
    uint32_t index = static_cast<uint32_t>(hash) & mask;
    for (uint32_t probes = 0; probes <= mask; ++probes) {
      const uint64_t slot = slot_array[index].load(std::memory_order_relaxed);
      RINGMQ_ASSERT(slot != ChildSlot::kEmpty);  // the child is in the table
      if (slot != ChildSlot::kTombstone && ChildSlot::NodeOf<const Node>(slot) == child) {
        // Never back to empty: that would cut the probe sequence of keys placed after this one.
        slot_array[index].store(ChildSlot::kTombstone, std::memory_order_release);
        --live_;
        return;
      }
      index = (index + 1) & mask;
    }
    RINGMQ_ASSERT(false && "child not in its table");
  }

  const uint32_t capacity_;  // a power of two
  uint32_t live_ = 0;        // writer-only: slots holding a child
  uint32_t used_ = 0;        // writer-only: live + tombstones
};

// ---- Map ------------------------------------------------------------------------------------

// The children of one node: a pointer to its current ChildTable, null while it has none. Embedded
// in the node; as small as one pointer.
template <typename Node>
class ChildMap {
 public:
  using Table = ChildTable<Node>;
  static constexpr uint32_t kMinCapacity = Table::kMinCapacity;

  ChildMap() = default;
  ChildMap(const ChildMap&) = delete;
  ChildMap& operator=(const ChildMap&) = delete;
  // The owner calls DestroyNow (or erases every child) first.
  ~ChildMap() { RINGMQ_ASSERT(table_.load(std::memory_order_relaxed) == nullptr); }

  // ---- Reader side (wait-free; see the file comment) ----

  // The current table, or null when there are no children. Valid until the caller's next
  // quiescent point, even if the writer replaces it meanwhile.
  const Table* table() const { return table_.load(std::memory_order_acquire); }

  const Node* Find(std::string_view level, uint64_t hash) const {
    const Table* current = table();
    return current == nullptr ? nullptr : current->Find(level, hash);
  }

  // ---- Writer side (one writer at a time) ----

  bool empty() const { return table_.load(std::memory_order_relaxed) == nullptr; }
  size_t size() const {
    const Table* current = table_.load(std::memory_order_relaxed);
    return current == nullptr ? 0 : current->live_;
  }

  // The writer owns every node; const only reflects the reader-side lookup.
  Node* FindForWrite(std::string_view level, uint64_t hash) const {
    return const_cast<Node*>(Find(level, hash));
  }

  // Adds `child`, whose level (absent from the map) hashes to `hash` under `hasher`. May replace
  // the table (retired into `epoch`).
  void Insert(Node* child, uint64_t hash, const LevelHasher& hasher, EpochDomain& epoch) {
    Table* current = table_.load(std::memory_order_relaxed);
    if (current == nullptr) {
      current = Table::New(kMinCapacity);
      current->Put(ChildSlot::Pack(child, hash), hash);
      // Release: readers that load the table see the slot and the child.
      table_.store(current, std::memory_order_release);
      return;
    }
    if (2 * (size_t{current->used_} + 1) > current->capacity_) {
      current = Rebuild(CapacityFor(size_t{current->live_} + 1), hasher, epoch);
    }
    current->Put(ChildSlot::Pack(child, hash), hash);
  }

  // Removes `child` (present). Frees the table when it was the last child and shrinks a table
  // that became sparse; both retire the old table into `epoch`. The caller retires the node.
  void Erase(const Node* child, const LevelHasher& hasher, EpochDomain& epoch) {
    Table* current = table_.load(std::memory_order_relaxed);
    RINGMQ_ASSERT(current != nullptr);
    current->Remove(child, hasher(child->level()));
    if (current->live_ == 0) {
      table_.store(nullptr, std::memory_order_release);
      epoch.Retire(current, Table::Delete);
    } else if (current->capacity_ > kMinCapacity &&
               size_t{current->live_} * 8 < current->capacity_) {
      Rebuild(CapacityFor(current->live_), hasher, epoch);
    }
  }

  // The writer (or a reader online in the epoch domain): calls visit(Node*) for each child.
  template <typename Visit>
  void ForEachChild(Visit&& visit) const {
    const Table* current = table_.load(std::memory_order_acquire);
    if (current == nullptr) return;
    for (uint32_t i = 0; i < current->capacity_; ++i) {
      const uint64_t slot = current->slots()[i].load(std::memory_order_acquire);
      if (ChildSlot::IsLive(slot)) visit(ChildSlot::NodeOf<Node>(slot));
    }
  }

  // Destructor of the owner only (no reader, no writer): calls visit(Node*) for each child and
  // frees the table at once.
  template <typename Visit>
  void DestroyNow(Visit&& visit) {
    Table* current = table_.exchange(nullptr, std::memory_order_relaxed);
    if (current == nullptr) {
      return;
    }
    for (uint32_t i = 0; i < current->capacity_; ++i) {
      const uint64_t slot = current->slots()[i].load(std::memory_order_relaxed);
      if (ChildSlot::IsLive(slot)) {
        visit(ChildSlot::NodeOf<Node>(slot));
      }
    }
    Table::Delete(current);
  }

  // Smallest power-of-two capacity that holds `live` children at a load of at most 1/3, so that
  // at least capacity / 6 inserts pass before the next rebuild (at load 1/2).
  static uint32_t CapacityFor(size_t live) {
    const size_t wanted = std::max<size_t>(kMinCapacity, 3 * live);
    RINGMQ_ASSERT(wanted <= (size_t{1} << 31));
    return std::bit_ceil(static_cast<uint32_t>(wanted));
  }

 private:
  // Builds a table of `capacity` with the live children, publishes it and retires the old one.
  // Readers still probing or scanning the old table see every child that was live when it was
  // replaced. Returns the new table.
  Table* Rebuild(uint32_t capacity, const LevelHasher& hasher, EpochDomain& epoch) {
    Table* old_table = table_.load(std::memory_order_relaxed);
    RINGMQ_ASSERT(old_table != nullptr);
    RINGMQ_ASSERT(2 * size_t{old_table->live_} < capacity);
    Table* table = Table::New(capacity);
    const uint32_t mask = capacity - 1;
    std::atomic<uint64_t>* slot_array = table->slots();
    for (uint32_t i = 0; i < old_table->capacity_; ++i) {
      const uint64_t slot = old_table->slots()[i].load(std::memory_order_relaxed);
      if (!ChildSlot::IsLive(slot)) {
        continue;
      }
      uint32_t index =
          static_cast<uint32_t>(hasher(ChildSlot::NodeOf<const Node>(slot)->level())) & mask;
      while (slot_array[index].load(std::memory_order_relaxed) != ChildSlot::kEmpty) {
        index = (index + 1) & mask;
      }
      // Same tag in both tables; only the index changes. Relaxed: the table is not published yet.
      slot_array[index].store(slot, std::memory_order_relaxed);
      ++table->live_;
    }
    table->used_ = table->live_;
    RINGMQ_ASSERT(table->live_ == old_table->live_);
    table_.store(table, std::memory_order_release);
    epoch.Retire(old_table, Table::Delete);
    return table;
  }

  std::atomic<Table*> table_{nullptr};
};

}  // namespace ringmq::concurrent

#endif  // RINGMQ_CONCURRENT_CHILD_TABLE_H_
