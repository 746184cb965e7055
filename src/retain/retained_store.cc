#include "retain/retained_store.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <vector>

#include "common/assert.h"
#include "mqtt/topic.h"

// Shape: one node per topic level, keyed by the level bytes. A node holds the retained message
// of the topic that ends there (or null) and its children in an open-addressing hash table, so
// a parent with a million children costs O(1) per lookup and O(1) amortized per insert.
//
// Publication (same discipline as sub/trie.cc, written separately for topic-keyed nodes)
// Every shared pointer (node->message, node->children, a table slot) is written with release
// after its target is fully built and read with acquire. Nothing a reader can reach is changed
// in place except those pointers. Table slots go empty -> node, node -> tombstone and tombstone
// -> node, never back to empty, so the probe sequence of a key that stays present is never cut.
// A replaced message, a replaced table and an unlinked node go to EpochDomain::Retire.
//
// Invariants (writer side, under mutex_)
// - node->children is null iff the node has no children; a table's live + tombstone slots stay
//   at or below half its capacity, so probes always end at an empty slot.
// - Every node other than the root has a message or children: a node left with neither is
//   unlinked and retired at once (Prune). The root never holds a message (topics are non-empty).
// - size_ counts the nodes that hold a message.
// - Tree depth is at most mqtt::kMaxTopicLevels (asserted in Set), which bounds the reader stack.
//
// What a ForEachMatch concurrent with Set sees
// Each topic's message as it was at some point during the walk: the old one or the new one. A
// topic deleted and set again during the walk may be reported twice (its old node, still in a
// slot already scanned, and its new node in a later slot); a subscriber then gets two retained
// messages that were both current during its SUBSCRIBE, which MQTT allows.

namespace ringmq::retain {
namespace {

using message::Message;

// Open-addressing table (linear probing) of a node's children; the slots follow the header in
// one allocation. A slot holds 0 (empty), kTombstone, or a node pointer in the low 48 bits with
// a 16-bit tag of the level hash in the high bits, so a probe rejects most other keys without
// touching their node.
struct alignas(8) ChildTable {
  uint32_t capacity;  // a power of two; immutable
  uint32_t live;      // writer-only: slots holding a node
  uint32_t used;      // writer-only: live + tombstones

  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  const std::atomic<uint64_t>* slots() const {
    return reinterpret_cast<const std::atomic<uint64_t>*>(this + 1);
  }
};
static_assert(sizeof(ChildTable) % alignof(std::atomic<uint64_t>) == 0);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

constexpr uint64_t kEmptySlot = 0;
constexpr uint64_t kTombstone = 1;
constexpr int kTagShift = 48;
constexpr uint64_t kPointerMask = (uint64_t{1} << kTagShift) - 1;
// Forced on so that a live slot differs from kEmptySlot and kTombstone in its tag alone.
constexpr uint64_t kTagLiveBit = uint64_t{1} << 15;
constexpr uint32_t kMinTableCapacity = 8;

uint64_t TagOf(uint64_t hash) { return (hash >> kTagShift) | kTagLiveBit; }
bool IsLive(uint64_t slot) { return slot != kEmptySlot && slot != kTombstone; }

// Smallest power-of-two capacity that holds `live` children at a load of at most 1/3, so that
// at least capacity/6 inserts pass before the next rebuild (at load 1/2).
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

// The slots are trivially destructible atomics.
void DeleteTable(void* table) { ::operator delete(table); }

// The store's reference, dropped once no reader can still be handed the message.
void ReleaseMessage(void* message) { static_cast<Message*>(message)->Release(); }

// Splits a topic or filter into its levels ('/' separates; levels may be empty).
class LevelSplitter {
 public:
  explicit LevelSplitter(std::string_view text) : rest_(text) {}
  bool Next(std::string_view& level) {
    if (done_) {
      return false;
    }
    const size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      level = rest_;
      done_ = true;
    } else {
      level = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// One topic level; the level bytes follow the node in one allocation. Every node is allocated
// as a RetainedStore::Node (which adds nothing), so the writer may cast back to it.
struct TopicNode {
  std::atomic<ChildTable*> children{nullptr};
  std::atomic<Message*> message{nullptr};  // holds the store's reference
  TopicNode* const parent;                 // null for the root; used by the writer only
  const uint32_t level_size;

  TopicNode(TopicNode* parent_node, uint32_t size) : parent(parent_node), level_size(size) {}

  std::string_view level() const { return {reinterpret_cast<const char*>(this + 1), level_size}; }
};

// 64x64 -> 128-bit multiply folded to 64 bits: every input bit reaches every output bit.
uint64_t Fold(uint64_t a, uint64_t b) {
  __extension__ using Uint128 = unsigned __int128;
  const Uint128 product = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

constexpr uint64_t kHashMultiplier0 = 0xa0761d6478bd642fULL;
constexpr uint64_t kHashMultiplier1 = 0xe7037ed1a0b428dbULL;

uint64_t HashLevel(uint64_t seed, std::string_view level) {
  uint64_t hash = Fold(seed ^ level.size(), kHashMultiplier0);
  const char* bytes = level.data();
  size_t remaining = level.size();
  while (remaining >= sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, bytes, sizeof(word));
    hash = Fold(hash ^ word, kHashMultiplier1);
    bytes += sizeof(word);
    remaining -= sizeof(word);
  }
  if (remaining > 0) {
    uint64_t word = 0;
    std::memcpy(&word, bytes, remaining);
    hash = Fold(hash ^ word, kHashMultiplier1);
  }
  return Fold(hash, kHashMultiplier0);
}

uint64_t RandomSeed() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

uint64_t PackSlot(const TopicNode* node, uint64_t hash) {
  const auto address = reinterpret_cast<uintptr_t>(node);
  RINGMQ_ASSERT((address & ~kPointerMask) == 0);  // user-space pointers fit in 48 bits
  RINGMQ_ASSERT((address & 7) == 0);
  return (TagOf(hash) << kTagShift) | address;
}

TopicNode* SlotNode(uint64_t slot) { return reinterpret_cast<TopicNode*>(slot & kPointerMask); }

// Reader and writer lookup. Ends at an empty slot (load <= 1/2); the probe bound is a guard.
const TopicNode* FindInTable(const ChildTable* table, std::string_view level, uint64_t hash) {
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
      const TopicNode* node = SlotNode(slot);
      if (node->level() == level) {
        return node;
      }
    }
    index = (index + 1) & mask;
  }
  return nullptr;
}

}  // namespace

struct RetainedStore::Node : TopicNode {
  using TopicNode::TopicNode;

  static Node* New(Node* parent, std::string_view level) {
    static_assert(sizeof(Node) == sizeof(TopicNode), "the level bytes follow TopicNode");
    RINGMQ_ASSERT(level.size() <= Message::kMaxTopicSize);
    void* memory = ::operator new(sizeof(Node) + level.size());
    auto* node = new (memory) Node(parent, static_cast<uint32_t>(level.size()));
    if (!level.empty()) {
      std::memcpy(static_cast<char*>(memory) + sizeof(Node), level.data(), level.size());
    }
    return node;
  }
  static void Delete(void* object) {
    auto* node = static_cast<Node*>(object);
    RINGMQ_ASSERT(node->message.load(std::memory_order_relaxed) == nullptr);
    node->~Node();
    ::operator delete(object);
  }
  // Every TopicNode is a Node (New is the only allocation). Node adds no member, so the level
  // bytes follow either view of it.
  static Node* From(const TopicNode* node) {
    return static_cast<Node*>(const_cast<TopicNode*>(node));
  }
};

RetainedStore::RetainedStore(sub::EpochDomain& epochs)
    : epochs_(epochs), root_(Node::New(nullptr, {})), hash_seed_(RandomSeed()) {}

RetainedStore::~RetainedStore() {
  // No reader and no writer runs now. Iterative: depth is bounded, fan-out is not.
  std::vector<Node*> pending = {root_};
  while (!pending.empty()) {
    Node* node = pending.back();
    pending.pop_back();
    if (ChildTable* table = node->children.load(std::memory_order_relaxed)) {
      for (uint32_t i = 0; i < table->capacity; ++i) {
        const uint64_t slot = table->slots()[i].load(std::memory_order_relaxed);
        if (IsLive(slot)) {
          pending.push_back(Node::From(SlotNode(slot)));
        }
      }
      DeleteTable(table);
    }
    if (Message* message = node->message.exchange(nullptr, std::memory_order_relaxed)) {
      message->Release();
    }
    Node::Delete(node);
  }
}

// ---- Writer side ----------------------------------------------------------------------------

void RetainedStore::Set(message::MessageRef message) {
  RINGMQ_ASSERT(message);
  const std::string_view topic = message->topic();
  RINGMQ_ASSERT(!topic.empty());                                       // MQTT-4.7.3-1
  RINGMQ_ASSERT(topic.find_first_of("+#") == std::string_view::npos);  // MQTT-3.3.2-2
  MutexLock lock(&mutex_);
  if (message->payload().empty()) {
    // MQTT-3.3.1-10: delete the retained message; MQTT-3.3.1-11: do not store this one. Its
    // reference is dropped by `message` on return; no reader ever saw it.
    Delete(topic);
    return;
  }
  Node* node = root_;
  size_t level_count = 0;
  LevelSplitter levels(topic);
  std::string_view level;
  while (levels.Next(level)) {
    ++level_count;
    RINGMQ_ASSERT(level_count <= mqtt::kMaxTopicLevels);
    node = FindOrCreateChild(node, level);
  }
  RINGMQ_ASSERT(node != root_);
  Message* old = node->message.load(std::memory_order_relaxed);
  // Release: a reader that loads the pointer sees the message's bytes and count.
  node->message.store(message.release(), std::memory_order_release);
  if (old != nullptr) {
    // Readers may be about to take a reference to `old`: keep the store's until they pass.
    epochs_.Retire(old, ReleaseMessage);
  } else {
    size_.fetch_add(1, std::memory_order_relaxed);
  }
}

void RetainedStore::Delete(std::string_view topic) {
  Node* node = root_;
  LevelSplitter levels(topic);
  std::string_view level;
  while (levels.Next(level)) {
    node = FindChildForWrite(node, level);
    if (node == nullptr) {
      return;
    }
  }
  Message* old = node->message.load(std::memory_order_relaxed);
  if (old == nullptr) {
    return;  // an inner node of longer topics, with nothing retained itself
  }
  node->message.store(nullptr, std::memory_order_release);
  epochs_.Retire(old, ReleaseMessage);
  size_.fetch_sub(1, std::memory_order_relaxed);
  Prune(node);
}

// Unlinks and retires `node` and then each ancestor left empty, up to (not including) the root.
void RetainedStore::Prune(Node* node) {
  while (node != root_ && node->message.load(std::memory_order_relaxed) == nullptr &&
         node->children.load(std::memory_order_relaxed) == nullptr) {
    RINGMQ_ASSERT(node->parent != nullptr);
    Node* parent = Node::From(node->parent);
    EraseChild(parent, node);
    // Retire may free the node at once (every reader offline): do not touch it afterwards.
    epochs_.Retire(node, Node::Delete);
    node = parent;
  }
}

RetainedStore::Node* RetainedStore::FindChildForWrite(const Node* parent,
                                                      std::string_view level) const {
  const ChildTable* table = parent->children.load(std::memory_order_relaxed);
  if (table == nullptr) {
    return nullptr;
  }
  // The writer owns every node; const only reflects the reader-side lookup.
  return Node::From(FindInTable(table, level, HashLevel(hash_seed_, level)));
}

RetainedStore::Node* RetainedStore::FindOrCreateChild(Node* parent, std::string_view level) {
  const uint64_t hash = HashLevel(hash_seed_, level);
  if (const ChildTable* table = parent->children.load(std::memory_order_relaxed)) {
    if (const TopicNode* existing = FindInTable(table, level, hash)) {
      return Node::From(existing);
    }
  }
  Node* child = Node::New(parent, level);
  InsertChild(parent, child, hash);
  return child;
}

void RetainedStore::InsertChild(Node* parent, Node* child, uint64_t hash) {
  ChildTable* table = parent->children.load(std::memory_order_relaxed);
  if (table == nullptr) {
    table = NewTable(kMinTableCapacity);
    parent->children.store(table, std::memory_order_release);
  } else if (2 * (size_t{table->used} + 1) > table->capacity) {
    RebuildChildren(parent, CapacityFor(size_t{table->live} + 1));
    table = parent->children.load(std::memory_order_relaxed);
  }
  const uint32_t mask = table->capacity - 1;
  std::atomic<uint64_t>* slots = table->slots();
  uint32_t index = static_cast<uint32_t>(hash) & mask;
  // The caller checked the level is absent, so the first free slot on its probe sequence
  // (tombstone or empty) is the place.
  for (uint32_t probes = 0; probes <= mask; ++probes) {
    const uint64_t slot = slots[index].load(std::memory_order_relaxed);
    if (!IsLive(slot)) {
      table->used += slot == kEmptySlot ? 1 : 0;
      ++table->live;
      // Release: a reader that finds the child sees it fully built.
      slots[index].store(PackSlot(child, hash), std::memory_order_release);
      return;
    }
    index = (index + 1) & mask;
  }
  RINGMQ_ASSERT(false && "child table full");
}

void RetainedStore::EraseChild(Node* parent, Node* child) {
  ChildTable* table = parent->children.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(table != nullptr);
  const uint32_t mask = table->capacity - 1;
  std::atomic<uint64_t>* slots = table->slots();
  uint32_t index = static_cast<uint32_t>(HashLevel(hash_seed_, child->level())) & mask;
  bool erased = false;
  for (uint32_t probes = 0; probes <= mask && !erased; ++probes) {
    const uint64_t slot = slots[index].load(std::memory_order_relaxed);
    RINGMQ_ASSERT(slot != kEmptySlot);  // the child is in the table
    if (slot != kTombstone && SlotNode(slot) == child) {
      // Never back to empty: that would cut the probe sequence of keys placed after this one.
      slots[index].store(kTombstone, std::memory_order_release);
      --table->live;
      erased = true;
    }
    index = (index + 1) & mask;
  }
  RINGMQ_ASSERT(erased);
  if (table->live == 0) {
    parent->children.store(nullptr, std::memory_order_release);
    epochs_.Retire(table, DeleteTable);
  } else if (table->capacity > kMinTableCapacity && size_t{table->live} * 8 < table->capacity) {
    RebuildChildren(parent, CapacityFor(table->live));
  }
}

// Builds a table of the live children of `parent`, publishes it and retires the old one.
// Readers still scanning the old table see every child that was live when it was replaced.
void RetainedStore::RebuildChildren(Node* parent, uint32_t capacity) {
  ChildTable* old_table = parent->children.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(old_table != nullptr);
  RINGMQ_ASSERT(2 * size_t{old_table->live} < capacity);
  ChildTable* table = NewTable(capacity);
  const uint32_t mask = capacity - 1;
  std::atomic<uint64_t>* slots = table->slots();
  for (uint32_t i = 0; i < old_table->capacity; ++i) {
    const uint64_t slot = old_table->slots()[i].load(std::memory_order_relaxed);
    if (!IsLive(slot)) {
      continue;
    }
    uint32_t index = static_cast<uint32_t>(HashLevel(hash_seed_, SlotNode(slot)->level())) & mask;
    while (slots[index].load(std::memory_order_relaxed) != kEmptySlot) {
      index = (index + 1) & mask;
    }
    // Same tag in both tables; only the index changes.
    slots[index].store(slot, std::memory_order_relaxed);
    ++table->live;
  }
  table->used = table->live;
  RINGMQ_ASSERT(table->live == old_table->live);
  parent->children.store(table, std::memory_order_release);
  epochs_.Retire(old_table, DeleteTable);
}

// ---- Reader side ----------------------------------------------------------------------------

namespace {

enum class LevelKind : uint8_t { kExact, kPlus, kHash };

// One filter level. Trivially constructible on purpose: the array of them is not initialized
// per call.
struct FilterLevel {
  const char* data;
  size_t size;
  uint64_t hash;  // kExact only
  LevelKind kind;

  std::string_view text() const { return {data, size}; }
};

// A node whose children are being scanned, for the '+' at filter level `depth` or, for a '#',
// the whole subtree. `table` is the one loaded when the frame was pushed: a concurrent rebuild
// retires it, which keeps it readable until this reader's next quiescent point.
struct Frame {
  const TopicNode* node;
  const ChildTable* table;
  uint32_t next_slot;
  uint32_t depth;
  bool subtree;
  bool skip_dollar;  // a leading wildcard skips first-level '$' topics (MQTT-4.7.2-1)
};

// Frames are pushed for nodes of strictly increasing tree depth (a frame is pushed only while
// the children of the frame below it are scanned), and only for nodes that have children, whose
// depth is below kMaxTopicLevels since topics have at most that many levels.
constexpr size_t kStackCapacity = mqtt::kMaxTopicLevels;

// Depth-first walk of the nodes matching one filter, with an explicit bounded stack. Lives on
// the caller's stack: no allocation, and a callback may start another match.
class Matcher {
 public:
  Matcher(const TopicNode* root, absl::FunctionRef<void(Message*)> fn) : root_(root), fn_(fn) {}
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  void Run(std::string_view filter, uint64_t hash_seed) {
    Split(filter, hash_seed);
    Descend(root_, 0);
    while (top_ > 0) {
      Frame& frame = stack_[top_ - 1];
      const TopicNode* child = NextChild(frame);
      if (child == nullptr) {
        --top_;
      } else if (frame.subtree) {
        Emit(child);
        Push(child, 0, /*subtree=*/true);
      } else {
        Descend(child, frame.depth + 1);
      }
    }
  }

 private:
  void Split(std::string_view filter, uint64_t hash_seed) {
    LevelSplitter splitter(filter);
    std::string_view text;
    while (splitter.Next(text)) {
      RINGMQ_ASSERT(level_count_ < mqtt::kMaxTopicLevels);  // always on: the array's size
      // '#' only as the last level (MQTT-4.7.1-2): the caller passes valid filters.
      RINGMQ_ASSERT(level_count_ == 0 || levels_[level_count_ - 1].kind != LevelKind::kHash);
      FilterLevel& level = levels_[level_count_++];
      level.data = text.data();
      level.size = text.size();
      level.hash = 0;
      if (text == "+") {
        level.kind = LevelKind::kPlus;
      } else if (text == "#") {
        level.kind = LevelKind::kHash;
      } else {
        level.kind = LevelKind::kExact;
        level.hash = HashLevel(hash_seed, text);
      }
    }
  }

  // Follows exact levels from `node` (reached by consuming `depth` filter levels) until the
  // filter ends or a wildcard level needs a scan of the children.
  void Descend(const TopicNode* node, size_t depth) {
    while (depth < level_count_ && levels_[depth].kind == LevelKind::kExact) {
      const ChildTable* table = node->children.load(std::memory_order_acquire);
      if (table == nullptr) {
        return;
      }
      node = FindInTable(table, levels_[depth].text(), levels_[depth].hash);
      if (node == nullptr) {
        return;
      }
      ++depth;
    }
    if (depth == level_count_) {
      Emit(node);
    } else if (levels_[depth].kind == LevelKind::kPlus) {
      Push(node, depth, /*subtree=*/false);
    } else {
      // '#' matches the parent level too ("a/#" matches "a", MQTT-4.7.1-2). The root holds no
      // message, so a leading '#' emits nothing here.
      Emit(node);
      Push(node, depth, /*subtree=*/true);
    }
  }

  void Push(const TopicNode* node, size_t depth, bool subtree) {
    const ChildTable* table = node->children.load(std::memory_order_acquire);
    if (table == nullptr) {
      return;
    }
    RINGMQ_ASSERT(top_ < kStackCapacity);
    stack_[top_++] = {
        node, table, 0, static_cast<uint32_t>(depth), subtree, /*skip_dollar=*/node == root_};
  }

  // The next live child in the frame's table, or null once the table is scanned.
  static const TopicNode* NextChild(Frame& frame) {
    const std::atomic<uint64_t>* slots = frame.table->slots();
    while (frame.next_slot < frame.table->capacity) {
      const uint64_t slot = slots[frame.next_slot++].load(std::memory_order_acquire);
      if (!IsLive(slot)) {
        continue;
      }
      const TopicNode* child = SlotNode(slot);
      if (frame.skip_dollar && child->level().starts_with('$')) {
        continue;
      }
      return child;
    }
    return nullptr;
  }

  void Emit(const TopicNode* node) {
    if (Message* message = node->message.load(std::memory_order_acquire)) {
      fn_(message);
    }
  }

  const TopicNode* const root_;
  const absl::FunctionRef<void(Message*)> fn_;
  // Not initialized: only [0, level_count_) and [0, top_) are ever read.
  std::array<FilterLevel, mqtt::kMaxTopicLevels> levels_;
  std::array<Frame, kStackCapacity> stack_;
  size_t level_count_ = 0;
  size_t top_ = 0;
};

}  // namespace

void RetainedStore::ForEachMatch(std::string_view filter,
                                 absl::FunctionRef<void(message::Message* message)> fn) const {
  RINGMQ_ASSERT(!filter.empty());  // MQTT-4.7.3-1
  Matcher matcher(root_, fn);
  matcher.Run(filter, hash_seed_);
}

}  // namespace ringmq::retain
