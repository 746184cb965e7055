#include "sub/trie.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <new>
#include <random>

#include "common/assert.h"

namespace ringmq::sub {
namespace trie_internal {

// Immutable sorted array of subscribers; Subscriber items follow the header in one allocation.
struct alignas(8) SubscriberArray {
  uint32_t size;

  const Subscriber* items() const { return reinterpret_cast<const Subscriber*>(this + 1); }
  Subscriber* items() { return reinterpret_cast<Subscriber*>(this + 1); }
};
static_assert(sizeof(SubscriberArray) % alignof(Subscriber) == 0);

// Open-addressing table (linear probing) of a node's exact-level children; the slots follow the
// header in one allocation. A slot holds 0 (empty), kTombstone, or a node pointer in the low 48
// bits with a 16-bit tag of the level hash in the high bits, so a probe rejects most other keys
// without touching their node.
struct alignas(8) ChildTable {
  uint32_t capacity;  // a power of two
  uint32_t live;      // writer-only: slots holding a node
  uint32_t used;      // writer-only: live + tombstones

  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  const std::atomic<uint64_t>* slots() const {
    return reinterpret_cast<const std::atomic<uint64_t>*>(this + 1);
  }
};
static_assert(sizeof(ChildTable) % alignof(std::atomic<uint64_t>) == 0);

enum class NodeKind : uint8_t { kRoot, kExact, kPlus, kHash };

// One filter level; the level bytes follow the node in one allocation.
//
// Exact children live in `only_child` while there is at most one of them (most nodes of a deep
// topic tree: "device/<n>/temp" has one child under each <n>), which saves a table and a cache
// miss per level. The second child moves both into `children`: the table is published first,
// then only_child is cleared, and readers look at only_child before children, so a child that
// stays is always in one of the two. A node goes back to only_child only after its table emptied.
struct Node {
  std::atomic<uint64_t> only_child{0};  // a slot: 0 or a tagged node pointer
  std::atomic<ChildTable*> children{nullptr};
  std::atomic<Node*> plus{nullptr};
  std::atomic<Node*> hash{nullptr};
  std::atomic<const SubscriberArray*> subscribers{nullptr};
  Node* const parent;  // null for the root; used by the writer only
  const uint32_t level_size;
  const NodeKind kind;

  Node(Node* parent_node, uint32_t size, NodeKind node_kind)
      : parent(parent_node), level_size(size), kind(node_kind) {}

  std::string_view level() const { return {reinterpret_cast<const char*>(this + 1), level_size}; }
};

}  // namespace trie_internal

namespace {

using trie_internal::ChildTable;
using trie_internal::Node;
using trie_internal::NodeKind;
using trie_internal::SubscriberArray;

constexpr uint64_t kEmptySlot = 0;
constexpr uint64_t kTombstone = 1;
constexpr int kTagShift = 48;
constexpr uint64_t kPointerMask = (uint64_t{1} << kTagShift) - 1;
// The top bit is forced on so that a live slot never equals kEmptySlot or kTombstone in its tag.
constexpr uint64_t kTagLiveBit = uint64_t{1} << 15;
constexpr uint32_t kMinTableCapacity = 8;

uint64_t TagOf(uint64_t hash) { return (hash >> kTagShift) | kTagLiveBit; }

uint64_t PackSlot(const Node* node, uint64_t hash) {
  const auto address = reinterpret_cast<uintptr_t>(node);
  RINGMQ_ASSERT((address & ~kPointerMask) == 0);  // user-space pointers fit in 48 bits
  RINGMQ_ASSERT((address & 7) == 0);
  return (TagOf(hash) << kTagShift) | address;
}

Node* SlotNode(uint64_t slot) { return reinterpret_cast<Node*>(slot & kPointerMask); }

// Smallest power-of-two capacity that holds `live` children at a load of at most 1/3, so that at
// least capacity/6 inserts pass before the next rebuild (at load 1/2).
uint32_t CapacityFor(size_t live) {
  const size_t wanted = std::max<size_t>(kMinTableCapacity, 3 * live);
  RINGMQ_ASSERT(wanted <= (size_t{1} << 31));
  return std::bit_ceil(static_cast<uint32_t>(wanted));
}

ChildTable* NewTable(uint32_t capacity) {
  RINGMQ_ASSERT(std::has_single_bit(capacity));
  void* memory = ::operator new(sizeof(ChildTable) + capacity * sizeof(std::atomic<uint64_t>));
  auto* table = new (memory) ChildTable{capacity, 0, 0};
  std::atomic<uint64_t>* slots = table->slots();
  for (uint32_t i = 0; i < capacity; ++i) {
    new (&slots[i]) std::atomic<uint64_t>(kEmptySlot);
  }
  return table;
}

// Writer-only: stores `slot` (a tagged node pointer whose level is absent from the table) in the
// first free slot (tombstone or empty) of its probe sequence. The table has room (load <= 1/2).
void PutInTable(ChildTable* table, uint64_t slot_value, uint64_t hash) {
  const uint32_t mask = table->capacity - 1;
  std::atomic<uint64_t>* slots = table->slots();
  uint32_t index = static_cast<uint32_t>(hash) & mask;
  for (uint32_t probes = 0; probes <= mask; ++probes) {
    const uint64_t slot = slots[index].load(std::memory_order_relaxed);
    if (slot == kEmptySlot || slot == kTombstone) {
      table->used += slot == kEmptySlot ? 1 : 0;
      ++table->live;
      // Release: a reader that finds the node sees it fully built.
      slots[index].store(slot_value, std::memory_order_release);
      return;
    }
    index = (index + 1) & mask;
  }
  RINGMQ_ASSERT(false && "child table full");
}

void DeleteTable(void* object) {
  // The slots are trivially destructible atomics.
  ::operator delete(object);
}

SubscriberArray* NewSubscriberArray(uint32_t size) {
  RINGMQ_ASSERT(size > 0);
  void* memory = ::operator new(sizeof(SubscriberArray) + size * sizeof(Subscriber));
  return new (memory) SubscriberArray{size};
}

void DeleteSubscriberArray(void* object) { ::operator delete(object); }

Node* NewNode(Node* parent, std::string_view level, NodeKind kind) {
  RINGMQ_ASSERT(level.size() <= std::numeric_limits<uint16_t>::max());
  void* memory = ::operator new(sizeof(Node) + level.size());
  auto* node = new (memory) Node(parent, static_cast<uint32_t>(level.size()), kind);
  if (!level.empty()) {
    std::memcpy(reinterpret_cast<char*>(memory) + sizeof(Node), level.data(), level.size());
  }
  return node;
}

void DeleteNode(void* object) {
  static_cast<Node*>(object)->~Node();
  ::operator delete(object);
}

NodeKind KindOf(std::string_view level) {
  if (level.size() == 1 && level[0] == '+') {
    return NodeKind::kPlus;
  }
  if (level.size() == 1 && level[0] == '#') {
    return NodeKind::kHash;
  }
  return NodeKind::kExact;
}

uint64_t Load64(const char* bytes) {
  uint64_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

uint64_t Load32(const char* bytes) {
  uint32_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

// Byte equality of two levels, inline for the common short ones (overlapping word loads) instead
// of a memcmp call.
bool LevelEquals(std::string_view a, std::string_view b) {
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

// Lookup of an exact child in a table. Terminates because a table always keeps empty slots
// (load <= 1/2); the bound on probes is a second guard.
const Node* FindInTable(const ChildTable* table, std::string_view level, uint64_t hash) {
  const uint32_t mask = table->capacity - 1;
  const uint64_t tag = TagOf(hash);
  const std::atomic<uint64_t>* slots = table->slots();
  uint32_t index = static_cast<uint32_t>(hash) & mask;
  for (uint32_t probes = 0; probes <= mask; ++probes) {
    const uint64_t slot = slots[index].load(std::memory_order_acquire);
    if (slot == kEmptySlot) {
      return nullptr;
    }
    if ((slot >> kTagShift) == tag) {
      const Node* node = SlotNode(slot);
      if (LevelEquals(node->level(), level)) {
        return node;
      }
    }
    index = (index + 1) & mask;
  }
  return nullptr;
}

// Reader and writer lookup of an exact child: only_child first, then the table (see Node).
const Node* FindExactChild(const Node* parent, std::string_view level, uint64_t hash) {
  const uint64_t only = parent->only_child.load(std::memory_order_acquire);
  if ((only >> kTagShift) == TagOf(hash) && LevelEquals(SlotNode(only)->level(), level)) {
    return SlotNode(only);
  }
  const ChildTable* table = parent->children.load(std::memory_order_acquire);
  return table == nullptr ? nullptr : FindInTable(table, level, hash);
}

bool IsEmpty(const Node* node) {
  return node->subscribers.load(std::memory_order_relaxed) == nullptr &&
         node->only_child.load(std::memory_order_relaxed) == kEmptySlot &&
         node->children.load(std::memory_order_relaxed) == nullptr &&
         node->plus.load(std::memory_order_relaxed) == nullptr &&
         node->hash.load(std::memory_order_relaxed) == nullptr;
}

// 64x64 -> 128-bit multiply folded to 64 bits: every output bit depends on most input bits, in a
// few cycles.
uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
  __extension__ using Product = unsigned __int128;
  const Product product = static_cast<Product>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// The MurmurHash3 finalizer, to derive the second hash key from the seed.
uint64_t Mix(uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdULL;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ULL;
  value ^= value >> 33;
  return value;
}

uint64_t RandomSeed() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

}  // namespace

SubscriptionTrie::SubscriptionTrie(EpochDomain& epoch) : SubscriptionTrie(epoch, RandomSeed()) {}

SubscriptionTrie::SubscriptionTrie(EpochDomain& epoch, uint64_t hash_seed)
    : epoch_(epoch),
      hash_seed_(hash_seed),
      hash_key_(Mix(hash_seed ^ 0x9e3779b97f4a7c15ULL) | 1),
      root_(NewNode(nullptr, {}, NodeKind::kRoot)) {}

SubscriptionTrie::~SubscriptionTrie() {
  // Iterative: the depth is bounded by kMaxTopicLevels, but the fan-out is not.
  std::vector<Node*> pending = {root_};
  while (!pending.empty()) {
    Node* node = pending.back();
    pending.pop_back();
    if (const uint64_t only = node->only_child.load(std::memory_order_relaxed)) {
      pending.push_back(SlotNode(only));
    }
    if (ChildTable* table = node->children.load(std::memory_order_relaxed)) {
      for (uint32_t i = 0; i < table->capacity; ++i) {
        const uint64_t slot = table->slots()[i].load(std::memory_order_relaxed);
        if (slot != kEmptySlot && slot != kTombstone) {
          pending.push_back(SlotNode(slot));
        }
      }
      DeleteTable(table);
    }
    if (Node* plus = node->plus.load(std::memory_order_relaxed)) {
      pending.push_back(plus);
    }
    if (Node* hash = node->hash.load(std::memory_order_relaxed)) {
      pending.push_back(hash);
    }
    if (const SubscriberArray* array = node->subscribers.load(std::memory_order_relaxed)) {
      DeleteSubscriberArray(const_cast<SubscriberArray*>(array));
    }
    DeleteNode(node);
  }
}

// Short levels (most are under 16 bytes) take two folded multiplies; longer ones one more per 16
// bytes. Both keys are secret, so no input can cancel a multiplicand to zero on purpose.
uint64_t SubscriptionTrie::HashLevel(std::string_view level) const {
  const char* bytes = level.data();
  const size_t size = level.size();
  uint64_t state = hash_seed_;
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
      state = FoldedMultiply(Load64(bytes) ^ hash_key_, Load64(bytes + 8) ^ state);
      bytes += 16;
      remaining -= 16;
    }
    // The last 16 bytes of the level, overlapping bytes already mixed when remaining < 16.
    first = Load64(bytes + remaining - 16);
    last = Load64(bytes + remaining - 8);
  }
  return FoldedMultiply(hash_key_ ^ size, FoldedMultiply(first ^ hash_key_, last ^ state));
}

// ---- Writer side ----------------------------------------------------------------------------

Node* SubscriptionTrie::FindChildForWrite(const Node* parent, std::string_view level) const {
  switch (KindOf(level)) {
    case NodeKind::kPlus:
      return parent->plus.load(std::memory_order_relaxed);
    case NodeKind::kHash:
      return parent->hash.load(std::memory_order_relaxed);
    default:
      break;
  }
  // The writer owns every node; const only reflects the reader-side lookup.
  return const_cast<Node*>(FindExactChild(parent, level, HashLevel(level)));
}

Node* SubscriptionTrie::FindOrCreateChild(Node* parent, std::string_view level) {
  RINGMQ_ASSERT(parent->kind != NodeKind::kHash);  // '#' is the last level (MQTT-4.7.1-2)
  if (Node* existing = FindChildForWrite(parent, level)) {
    return existing;
  }
  const NodeKind kind = KindOf(level);
  Node* child = NewNode(parent, level, kind);
  node_count_.fetch_add(1, std::memory_order_relaxed);
  // Release: a reader that finds the child sees it fully built.
  if (kind == NodeKind::kPlus) {
    parent->plus.store(child, std::memory_order_release);
  } else if (kind == NodeKind::kHash) {
    parent->hash.store(child, std::memory_order_release);
  } else {
    InsertChild(parent, child, HashLevel(level));
  }
  return child;
}

void SubscriptionTrie::InsertChild(Node* parent, Node* child, uint64_t hash) {
  ChildTable* table = parent->children.load(std::memory_order_relaxed);
  if (table == nullptr) {
    const uint64_t only = parent->only_child.load(std::memory_order_relaxed);
    if (only == kEmptySlot) {
      parent->only_child.store(PackSlot(child, hash), std::memory_order_release);
      return;
    }
    // Second child: publish a table holding the first one, then clear only_child (see Node).
    table = NewTable(kMinTableCapacity);
    PutInTable(table, only, HashLevel(SlotNode(only)->level()));
    parent->children.store(table, std::memory_order_release);
    parent->only_child.store(kEmptySlot, std::memory_order_release);
  } else if (2 * (size_t{table->used} + 1) > table->capacity) {
    RebuildChildren(parent, CapacityFor(size_t{table->live} + 1));
    table = parent->children.load(std::memory_order_relaxed);
  }
  PutInTable(table, PackSlot(child, hash), hash);
}

void SubscriptionTrie::EraseChild(Node* parent, Node* child) {
  const uint64_t only = parent->only_child.load(std::memory_order_relaxed);
  if (only != kEmptySlot && SlotNode(only) == child) {
    parent->only_child.store(kEmptySlot, std::memory_order_release);
    return;
  }
  if (child->kind == NodeKind::kPlus) {
    RINGMQ_ASSERT(parent->plus.load(std::memory_order_relaxed) == child);
    parent->plus.store(nullptr, std::memory_order_release);
    return;
  }
  if (child->kind == NodeKind::kHash) {
    RINGMQ_ASSERT(parent->hash.load(std::memory_order_relaxed) == child);
    parent->hash.store(nullptr, std::memory_order_release);
    return;
  }
  ChildTable* table = parent->children.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(table != nullptr);
  const uint32_t mask = table->capacity - 1;
  std::atomic<uint64_t>* slots = table->slots();
  uint32_t index = static_cast<uint32_t>(HashLevel(child->level())) & mask;
  for (uint32_t probes = 0; probes <= mask; ++probes) {
    const uint64_t slot = slots[index].load(std::memory_order_relaxed);
    RINGMQ_ASSERT(slot != kEmptySlot);  // the child is in the table
    if (slot != kTombstone && SlotNode(slot) == child) {
      // Never back to empty: that would cut the probe sequence of keys placed after this one.
      slots[index].store(kTombstone, std::memory_order_release);
      --table->live;
      break;
    }
    index = (index + 1) & mask;
  }
  if (table->live == 0) {
    parent->children.store(nullptr, std::memory_order_release);
    epoch_.Retire(table, DeleteTable);
  } else if (table->capacity > kMinTableCapacity && size_t{table->live} * 8 < table->capacity) {
    RebuildChildren(parent, CapacityFor(table->live));
  }
}

// Builds a new table with the live children of `parent`, publishes it, retires the old one.
// Readers still probing the old table see every child that was live when it was replaced.
void SubscriptionTrie::RebuildChildren(Node* parent, uint32_t capacity) {
  ChildTable* old_table = parent->children.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(old_table != nullptr);
  RINGMQ_ASSERT(2 * size_t{old_table->live} < capacity);
  ChildTable* table = NewTable(capacity);
  const uint32_t mask = capacity - 1;
  for (uint32_t i = 0; i < old_table->capacity; ++i) {
    const uint64_t slot = old_table->slots()[i].load(std::memory_order_relaxed);
    if (slot == kEmptySlot || slot == kTombstone) {
      continue;
    }
    uint32_t index = static_cast<uint32_t>(HashLevel(SlotNode(slot)->level())) & mask;
    while (table->slots()[index].load(std::memory_order_relaxed) != kEmptySlot) {
      index = (index + 1) & mask;
    }
    // The tag bits are the same in both tables; only the index changes.
    table->slots()[index].store(slot, std::memory_order_relaxed);
    ++table->live;
  }
  table->used = table->live;
  RINGMQ_ASSERT(table->live == old_table->live);
  parent->children.store(table, std::memory_order_release);
  epoch_.Retire(old_table, DeleteTable);
}

bool SubscriptionTrie::Subscribe(std::string_view filter, Subscriber subscriber) {
  RINGMQ_ASSERT(!filter.empty());
  RINGMQ_ASSERT(subscriber.qos <= 2);
  MutexLock lock(&mutex_);
  Node* node = root_;
  size_t level_count = 0;
  size_t begin = 0;
  while (true) {
    const size_t slash = filter.find('/', begin);
    const size_t end = slash == std::string_view::npos ? filter.size() : slash;
    ++level_count;
    RINGMQ_ASSERT(level_count <= mqtt::kMaxTopicLevels);
    node = FindOrCreateChild(node, filter.substr(begin, end - begin));
    if (slash == std::string_view::npos) {
      break;
    }
    begin = slash + 1;
  }

  const SubscriberArray* old_array = node->subscribers.load(std::memory_order_relaxed);
  const uint32_t old_size = old_array == nullptr ? 0 : old_array->size;
  const Subscriber* old_items = old_array == nullptr ? nullptr : old_array->items();
  const Subscriber* position =
      std::lower_bound(old_items, old_items + old_size, subscriber, SessionLess);
  const auto offset = static_cast<uint32_t>(position - old_items);
  const bool exists = offset < old_size && SameSession(*position, subscriber);
  if (exists && position->qos == subscriber.qos) {
    return false;  // same subscription, same QoS: nothing to publish
  }
  // Copy on write: readers keep the array they loaded until their next quiescent point.
  SubscriberArray* array = NewSubscriberArray(exists ? old_size : old_size + 1);
  Subscriber* items = array->items();
  std::copy(old_items, old_items + offset, items);
  items[offset] = subscriber;
  const uint32_t after = exists ? offset + 1 : offset;
  std::copy(old_items + after, old_items + old_size, items + offset + 1);
  node->subscribers.store(array, std::memory_order_release);
  if (old_array != nullptr) {
    epoch_.Retire(const_cast<SubscriberArray*>(old_array), DeleteSubscriberArray);
  }
  if (exists) {
    return false;  // QoS replaced (MQTT-3.8.4-3)
  }
  subscription_count_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool SubscriptionTrie::Unsubscribe(std::string_view filter, Subscriber identity) {
  RINGMQ_ASSERT(!filter.empty());
  MutexLock lock(&mutex_);
  Node* node = root_;
  size_t level_count = 0;
  size_t begin = 0;
  while (true) {
    const size_t slash = filter.find('/', begin);
    const size_t end = slash == std::string_view::npos ? filter.size() : slash;
    ++level_count;
    RINGMQ_ASSERT(level_count <= mqtt::kMaxTopicLevels);
    node = FindChildForWrite(node, filter.substr(begin, end - begin));
    if (node == nullptr) {
      return false;
    }
    if (slash == std::string_view::npos) {
      break;
    }
    begin = slash + 1;
  }

  const SubscriberArray* old_array = node->subscribers.load(std::memory_order_relaxed);
  if (old_array == nullptr) {
    return false;
  }
  const uint32_t old_size = old_array->size;
  const Subscriber* old_items = old_array->items();
  const Subscriber* position =
      std::lower_bound(old_items, old_items + old_size, identity, SessionLess);
  const auto offset = static_cast<uint32_t>(position - old_items);
  if (offset == old_size || !SameSession(*position, identity)) {
    return false;
  }
  SubscriberArray* array = nullptr;
  if (old_size > 1) {
    array = NewSubscriberArray(old_size - 1);
    std::copy(old_items, old_items + offset, array->items());
    std::copy(old_items + offset + 1, old_items + old_size, array->items() + offset);
  }
  node->subscribers.store(array, std::memory_order_release);
  epoch_.Retire(const_cast<SubscriberArray*>(old_array), DeleteSubscriberArray);
  subscription_count_.fetch_sub(1, std::memory_order_relaxed);
  Prune(node);
  return true;
}

// Unlinks and retires `node` and then each ancestor left empty, up to (not including) the root.
void SubscriptionTrie::Prune(Node* node) {
  while (node != root_ && IsEmpty(node)) {
    Node* parent = node->parent;
    RINGMQ_ASSERT(parent != nullptr);
    EraseChild(parent, node);
    node_count_.fetch_sub(1, std::memory_order_relaxed);
    // Retire may free the node at once (every reader offline): do not touch it afterwards.
    epoch_.Retire(node, DeleteNode);
    node = parent;
  }
}

// ---- Reader side ----------------------------------------------------------------------------

void SubscriptionTrie::SplitTopic(std::string_view topic, MatchResult& result,
                                  size_t& level_count) const {
  // A plain byte loop: levels are short, so it beats a memchr call per level.
  size_t count = 0;
  size_t begin = 0;
  for (size_t i = 0; i <= topic.size(); ++i) {
    if (i < topic.size() && topic[i] != '/') {
      continue;
    }
    // Always on: the level arrays have this size.
    RINGMQ_ASSERT(count < mqtt::kMaxTopicLevels);
    const std::string_view level = topic.substr(begin, i - begin);
    result.levels_[count] = level;
    result.level_hashes_[count] = HashLevel(level);
    ++count;
    begin = i + 1;
  }
  level_count = count;
}

void SubscriptionTrie::Match(std::string_view topic, MatchResult& result) const {
  result.subscribers_.clear();
  result.shards_.clear();
  result.run_starts_.clear();
  size_t level_count = 0;
  SplitTopic(topic, result, level_count);
  // MQTT-4.7.2-1: a filter starting with a wildcard does not match a topic starting with '$'.
  const bool dollar_topic = !topic.empty() && topic[0] == '$';

  size_t top = 0;
  result.stack_[top++] = {root_, 0};
  while (top > 0) {
    const MatchResult::Frame frame = result.stack_[--top];
    const Node* node = frame.node;
    const size_t depth = frame.depth;
    const bool wildcards = depth > 0 || !dollar_topic;
    // '#' matches the rest of the topic, including nothing at all ("sport/#" matches "sport").
    if (wildcards) {
      if (const Node* hash = node->hash.load(std::memory_order_acquire)) {
        AppendSubscribers(hash, result);
      }
    }
    if (depth == level_count) {
      AppendSubscribers(node, result);
      continue;
    }
    if (const Node* child =
            FindExactChild(node, result.levels_[depth], result.level_hashes_[depth])) {
      RINGMQ_ASSERT(top < MatchResult::kStackCapacity);
      result.stack_[top++] = {child, depth + 1};
    }
    if (wildcards) {
      if (const Node* plus = node->plus.load(std::memory_order_acquire)) {
        RINGMQ_ASSERT(top < MatchResult::kStackCapacity);
        result.stack_[top++] = {plus, depth + 1};
      }
    }
  }
  Finish(result);
}

void SubscriptionTrie::AppendSubscribers(const Node* node, MatchResult& result) {
  const SubscriberArray* array = node->subscribers.load(std::memory_order_acquire);
  if (array != nullptr) {
    result.run_starts_.push_back(result.subscribers_.size());
    result.subscribers_.insert(result.subscribers_.end(), array->items(),
                               array->items() + array->size);
  }
}

// The result holds one sorted run per matching filter; merges them pairwise (bottom-up, through
// merge_buffer_) into one sorted sequence: O(n log runs), no allocation once warm.
void SubscriptionTrie::MergeRuns(MatchResult& result) {
  const size_t size = result.subscribers_.size();
  std::vector<size_t>& starts = result.run_starts_;
  starts.push_back(size);  // starts[i + 1] ends run i
  result.merge_buffer_.resize(size);
  Subscriber* from = result.subscribers_.data();
  Subscriber* to = result.merge_buffer_.data();
  bool in_buffer = false;
  while (starts.size() > 2) {
    const size_t runs = starts.size() - 1;
    size_t kept = 0;
    for (size_t run = 0; run < runs; run += 2) {
      const size_t begin = starts[run];
      const size_t middle = starts[run + 1];
      if (run + 1 < runs) {
        const size_t end = starts[run + 2];
        std::merge(from + begin, from + middle, from + middle, from + end, to + begin, SessionLess);
      } else {
        std::copy(from + begin, from + middle, to + begin);
      }
      starts[kept++] = begin;
    }
    starts[kept++] = size;
    starts.resize(kept);
    std::swap(from, to);
    in_buffer = !in_buffer;
  }
  if (in_buffer) {
    // Copy back rather than swap, so that the result keeps one stable buffer.
    std::copy(result.merge_buffer_.begin(), result.merge_buffer_.end(),
              result.subscribers_.begin());
  }
}

// Merges overlapping subscriptions (one entry per session, highest QoS) and groups by shard.
void SubscriptionTrie::Finish(MatchResult& result) {
  std::vector<Subscriber>& subscribers = result.subscribers_;
  // One array is already sorted and unique; several need a merge and then one entry per session.
  if (result.run_starts_.size() > 1) {
    MergeRuns(result);
    size_t kept = 0;
    for (size_t i = 0; i < subscribers.size(); ++i) {
      if (kept > 0 && SameSession(subscribers[kept - 1], subscribers[i])) {
        subscribers[kept - 1].qos = std::max(subscribers[kept - 1].qos, subscribers[i].qos);
      } else {
        subscribers[kept++] = subscribers[i];
      }
    }
    subscribers.resize(kept);
  }
  const std::span<const Subscriber> all(subscribers);
  size_t begin = 0;
  while (begin < all.size()) {
    const uint16_t shard = all[begin].shard;
    size_t end = begin + 1;
    while (end < all.size() && all[end].shard == shard) {
      ++end;
    }
    result.shards_.push_back({shard, all.subspan(begin, end - begin)});
    begin = end;
  }
}

}  // namespace ringmq::sub
