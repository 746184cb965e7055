#include "retain/retained_store.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "mqtt/topic.h"

// Shape: one node per topic level, keyed by the level bytes. A node holds the retained message
// of the topic that ends there (or null) and its children in a concurrent::ChildMap (an
// open-addressing hash table, concurrent/child_table.h), so a parent with a million children costs
// O(1) per lookup and O(1) amortized per insert.
//
// Publication (the discipline of sub/trie.h)
// node->message is written with release after the message is fully built and read with acquire;
// the child tables publish, resize and retire as concurrent/child_table.h describes (where the
// memory ordering argument is written out once). Nothing else a reader can reach is changed in place.
// A replaced message and an unlinked node go to EpochDomain::Retire.
//
// Invariants (writer side, under mutex_)
// - The ChildMap invariants of concurrent/child_table.h (no table iff no children, load at most
//   1/2).
// - Every node other than the root has a message or children: a node left with neither is
//   unlinked and retired at once (Prune). The root never holds a message (topics are non-empty).
// - size_ counts the nodes that hold a message, bytes_ the sum of their Charge(); both within
//   limits_ after every Set.
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

// The store's reference, dropped once no reader can still be handed the message.
void ReleaseMessage(void* message) { static_cast<Message*>(message)->Release(); }

}  // namespace

// One topic level; the level bytes follow the node in one allocation. Every node is allocated
// as a RetainedStore::Node (which adds nothing), so the writer may cast back to it. Not in the
// anonymous namespace: RetainedStore::Node derives from it, and GCC rejects a base of internal
// linkage (-Wsubobject-linkage) once this file is part of a unity build (scripts/build.sh).
struct TopicNode {
  concurrent::ChildMap<TopicNode> children;
  std::atomic<Message*> message{nullptr};  // holds the store's reference
  TopicNode* const parent;                 // null for the root; used by the writer only
  const uint32_t level_size;

  TopicNode(TopicNode* parent_node, uint32_t size) : parent(parent_node), level_size(size) {}

  std::string_view level() const { return {reinterpret_cast<const char*>(this + 1), level_size}; }
};

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

RetainedStore::RetainedStore(concurrent::EpochDomain& epochs, RetainedLimits limits)
    : epochs_(epochs),
      root_(Node::New(nullptr, {})),
      limits_(limits),
      hasher_(concurrent::LevelHasher::RandomSeed()) {}

RetainedStore::~RetainedStore() {
  // No reader and no writer runs now. Iterative: depth is bounded, fan-out is not.
  std::vector<Node*> pending = {root_};
  while (!pending.empty()) {
    Node* node = pending.back();
    pending.pop_back();
    node->children.DestroyNow(
        [&pending](TopicNode* child) { pending.push_back(Node::From(child)); });
    if (Message* message = node->message.exchange(nullptr, std::memory_order_relaxed)) {
      message->Release();
    }
    Node::Delete(node);
  }
}

// ---- Writer side ----------------------------------------------------------------------------

SetResult RetainedStore::Set(message::MessageRef message, uint64_t* version) {
  const SetResult result = SetUnderMutex(std::move(message), version);
  order_.fetch_add(1, std::memory_order_seq_cst);  // before the caller's trie match (header)
  return result;
}

void RetainedStore::RaiseVersion(uint64_t version) {
  MutexLock lock(&mutex_);
  if (version > version_) version_ = version;
}

uint64_t RetainedStore::ForEachStored(absl::FunctionRef<void(message::Message* message)> fn) {
  MutexLock lock(&mutex_);
  // Depth-first over an explicit stack: topics may have up to kMaxTopicLevels levels.
  std::vector<const Node*> stack{root_};
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (Message* message = node->message.load(std::memory_order_relaxed)) fn(message);
    node->children.ForEachChild([&](TopicNode* child) { stack.push_back(static_cast<Node*>(child)); });
  }
  return ++version_;
}

SetResult RetainedStore::SetUnderMutex(message::MessageRef message, uint64_t* version) {
  RINGMQ_ASSERT(message);
  const std::string_view topic = message->topic();
  RINGMQ_ASSERT(!topic.empty());                                       // MQTT-4.7.3-1
  RINGMQ_ASSERT(topic.find_first_of("+#") == std::string_view::npos);  // MQTT-3.3.2-2
  MutexLock lock(&mutex_);
  ++version_;
  if (version != nullptr) *version = version_;
  if (message->payload().empty()) {
    // MQTT-3.3.1-10: delete the retained message; MQTT-3.3.1-11: do not store this one. Its
    // reference is dropped by `message` on return; no reader ever saw it.
    Delete(topic);
    return SetResult::kDeleted;
  }
  const uint64_t charge = Charge(*message);
  // Existing levels are followed; missing ones are created only once the message is admitted,
  // so a refused topic leaves no node behind.
  Node* node = root_;
  bool creating = false;
  size_t level_count = 0;
  mqtt::LevelSplitter levels(topic);
  std::string_view level;
  while (levels.Next(level)) {
    ++level_count;
    RINGMQ_ASSERT(level_count <= mqtt::kMaxTopicLevels);
    if (!creating) {
      if (Node* child = FindChildForWrite(node, level)) {
        node = child;
        continue;
      }
      if (!Fits(nullptr, charge)) return SetResult::kRefused;
      creating = true;
    }
    node = FindOrCreateChild(node, level);
  }
  RINGMQ_ASSERT(node != root_);
  Message* old = node->message.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(!creating || old == nullptr);
  if (!creating && !Fits(old, charge)) {
    if (old != nullptr) Clear(node);  // the topic's value is no longer `old`
    return SetResult::kRefused;
  }
  // Release: a reader that loads the pointer sees the message's bytes and count.
  node->message.store(message.release(), std::memory_order_release);
  bytes_.store(bytes_.load(std::memory_order_relaxed) + charge, std::memory_order_relaxed);
  if (old != nullptr) {
    bytes_.store(bytes_.load(std::memory_order_relaxed) - Charge(*old), std::memory_order_relaxed);
    // Readers may be about to take a reference to `old`: keep the store's until they pass.
    epochs_.Retire(old, ReleaseMessage);
  } else {
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  return SetResult::kStored;
}

bool RetainedStore::Fits(const Message* old, uint64_t charge) const {
  const uint64_t bytes = bytes_.load(std::memory_order_relaxed);
  if (old == nullptr) {
    return size_.load(std::memory_order_relaxed) < limits_.max_messages &&
           charge <= limits_.max_bytes && bytes <= limits_.max_bytes - charge;
  }
  const uint64_t others = bytes - Charge(*old);
  return charge <= limits_.max_bytes && others <= limits_.max_bytes - charge;
}

void RetainedStore::Delete(std::string_view topic) {
  Node* node = root_;
  mqtt::LevelSplitter levels(topic);
  std::string_view level;
  while (levels.Next(level)) {
    node = FindChildForWrite(node, level);
    if (node == nullptr) {
      return;
    }
  }
  if (node->message.load(std::memory_order_relaxed) == nullptr) {
    return;  // an inner node of longer topics, with nothing retained itself
  }
  Clear(node);
}

void RetainedStore::Clear(Node* node) {
  Message* old = node->message.load(std::memory_order_relaxed);
  RINGMQ_ASSERT(old != nullptr);
  node->message.store(nullptr, std::memory_order_release);
  bytes_.store(bytes_.load(std::memory_order_relaxed) - Charge(*old), std::memory_order_relaxed);
  // Readers may be about to take a reference to `old`: keep the store's until they pass.
  epochs_.Retire(old, ReleaseMessage);
  size_.fetch_sub(1, std::memory_order_relaxed);
  Prune(node);
}

// Unlinks and retires `node` and then each ancestor left empty, up to (not including) the root.
void RetainedStore::Prune(Node* node) {
  while (node != root_ && node->message.load(std::memory_order_relaxed) == nullptr &&
         node->children.empty()) {
    RINGMQ_ASSERT(node->parent != nullptr);
    Node* parent = Node::From(node->parent);
    parent->children.Erase(node, hasher_, epochs_);
    // Retire may free the node at once (every reader offline): do not touch it afterwards.
    epochs_.Retire(node, Node::Delete);
    node = parent;
  }
}

RetainedStore::Node* RetainedStore::FindChildForWrite(const Node* parent,
                                                      std::string_view level) const {
  return Node::From(parent->children.FindForWrite(level, hasher_(level)));
}

RetainedStore::Node* RetainedStore::FindOrCreateChild(Node* parent, std::string_view level) {
  const uint64_t hash = hasher_(level);
  if (TopicNode* existing = parent->children.FindForWrite(level, hash)) {
    return Node::From(existing);
  }
  Node* child = Node::New(parent, level);
  parent->children.Insert(child, hash, hasher_, epochs_);
  return child;
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
  const concurrent::ChildTable<TopicNode>* table;
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
  Matcher(const TopicNode* root, absl::FunctionRef<bool(Message*)> fn) : root_(root), fn_(fn) {}
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  void Run(std::string_view filter, const concurrent::LevelHasher& hasher) {
    Split(filter, hasher);
    Descend(root_, 0);
    while (top_ > 0 && !stopped_) {
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
  void Split(std::string_view filter, const concurrent::LevelHasher& hasher) {
    mqtt::LevelSplitter splitter(filter);
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
        level.hash = hasher(text);
      }
    }
  }

  // Follows exact levels from `node` (reached by consuming `depth` filter levels) until the
  // filter ends or a wildcard level needs a scan of the children.
  void Descend(const TopicNode* node, size_t depth) {
    while (depth < level_count_ && levels_[depth].kind == LevelKind::kExact) {
      node = node->children.Find(levels_[depth].text(), levels_[depth].hash);
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
    const concurrent::ChildTable<TopicNode>* table = node->children.table();
    if (table == nullptr) {
      return;
    }
    RINGMQ_ASSERT(top_ < kStackCapacity);
    stack_[top_++] = {
        node, table, 0, static_cast<uint32_t>(depth), subtree, /*skip_dollar=*/node == root_};
  }

  // The next live child in the frame's table, or null once the table is scanned.
  static const TopicNode* NextChild(Frame& frame) {
    while (frame.next_slot < frame.table->capacity()) {
      const TopicNode* child = frame.table->LiveChild(frame.next_slot++);
      if (child == nullptr) {
        continue;
      }
      if (frame.skip_dollar && child->level().starts_with('$')) {
        continue;
      }
      return child;
    }
    return nullptr;
  }

  void Emit(const TopicNode* node) {
    if (stopped_) return;
    if (Message* message = node->message.load(std::memory_order_acquire)) {
      stopped_ = !fn_(message);
    }
  }

  const TopicNode* const root_;
  const absl::FunctionRef<bool(Message*)> fn_;
  bool stopped_ = false;  // fn returned false
  // Not initialized: only [0, level_count_) and [0, top_) are ever read.
  std::array<FilterLevel, mqtt::kMaxTopicLevels> levels_;
  std::array<Frame, kStackCapacity> stack_;
  size_t level_count_ = 0;
  size_t top_ = 0;
};

}  // namespace

void RetainedStore::ForEachMatch(std::string_view filter,
                                 absl::FunctionRef<void(message::Message* message)> fn) const {
  ForEachMatchWhile(filter, [fn](Message* message) {
    fn(message);
    return true;
  });
}

void RetainedStore::ForEachMatchWhile(std::string_view filter,
                                      absl::FunctionRef<bool(message::Message* message)> fn) const {
  RINGMQ_ASSERT(!filter.empty());                  // MQTT-4.7.3-1
  order_.fetch_add(1, std::memory_order_seq_cst);  // after the caller's trie insert (header)
  Matcher matcher(root_, fn);
  matcher.Run(filter, hasher_);
}

}  // namespace ringmq::retain
