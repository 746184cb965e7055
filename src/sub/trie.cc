#include "sub/trie.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "common/assert.h"

namespace ringmq::sub {

using concurrent::ChildMap;
using concurrent::ChildSlot;
using concurrent::EpochDomain;
using concurrent::LevelEquals;
using concurrent::LevelHasher;
using mqtt::LevelSplitter;

namespace trie_internal {

// The subscribers of a node, immutable once published, in one of two forms:
// - flat (chunk_count == 0): `size` Subscriber items follow the header, sorted by identity;
// - chunked (chunk_count > 0): `chunk_count` pointers to flat arrays (the chunks) follow the
//   header; the chunks in order hold the sorted list, and `size` is its length. Successive
//   versions of a list share their unchanged chunks, so a change copies one chunk and the
//   pointers, not the whole list.
struct alignas(8) SubscriberArray {
  uint32_t size;
  uint32_t chunk_count;

  const Subscriber* items() const { return reinterpret_cast<const Subscriber*>(this + 1); }
  Subscriber* items() { return reinterpret_cast<Subscriber*>(this + 1); }
  std::span<const Subscriber> flat() const { return {items(), size}; }
  const SubscriberArray* const* chunks() const {
    return reinterpret_cast<const SubscriberArray* const*>(this + 1);
  }
  const SubscriberArray** chunks() { return reinterpret_cast<const SubscriberArray**>(this + 1); }
};
static_assert(sizeof(SubscriberArray) % alignof(Subscriber) == 0);
static_assert(sizeof(SubscriberArray) % alignof(const SubscriberArray*) == 0);

enum class NodeKind : uint8_t { kRoot, kExact, kPlus, kHash };

// One round-robin cursor per cache line: each shard writes only its own.
struct alignas(64) Cursor {
  std::atomic<uint32_t> next{0};
};

// A shared-subscription group: stable from its creation until it is retired with its last member,
// so its cursors outlive every change of its member list.
struct Group {
  std::atomic<const SubscriberArray*> members{nullptr};  // never null while linked
  const std::string name;
  const std::unique_ptr<Cursor[]> cursors;

  Group(std::string_view share_name, uint32_t cursor_slots)
      : name(share_name), cursors(new Cursor[cursor_slots]) {}
};

// The groups of a node, sorted by name, immutable once published; `size` pointers follow.
struct alignas(8) GroupList {
  uint32_t size;

  Group* const* items() const { return reinterpret_cast<Group* const*>(this + 1); }
  Group** items() { return reinterpret_cast<Group**>(this + 1); }
};
static_assert(sizeof(GroupList) % alignof(Group*) == 0);

// One filter level; the level bytes follow the node in one allocation.
//
// Exact children live in `only_child` while there is at most one of them (most nodes of a deep
// topic tree: "device/<n>/temp" has one child under each <n>), which saves a table and a cache
// miss per level. The second child moves both into `children` (a ChildMap,
// concurrent/child_table.h): the table holding the first is published, then only_child is
// cleared, and readers look at only_child before children, so a child that stays is always in one
// of the two. A node goes back to only_child only after its table emptied.
struct Node {
  std::atomic<uint64_t> only_child{ChildSlot::kEmpty};  // a ChildSlot: empty or a tagged node
  ChildMap<Node> children;
  std::atomic<Node*> plus{nullptr};
  std::atomic<Node*> hash{nullptr};
  std::atomic<const SubscriberArray*> subscribers{nullptr};
  std::atomic<const GroupList*> groups{nullptr};  // null: no shared-subscription group
  Node* const parent;  // null for the root; used by the writer only
  const uint32_t level_size;
  const NodeKind kind;

  Node(Node* parent_node, uint32_t size, NodeKind node_kind)
      : parent(parent_node), level_size(size), kind(node_kind) {}

  std::string_view level() const { return {reinterpret_cast<const char*>(this + 1), level_size}; }
};

}  // namespace trie_internal

namespace {

using trie_internal::Group;
using trie_internal::GroupList;
using trie_internal::Node;
using trie_internal::NodeKind;
using trie_internal::SubscriberArray;

Node* SlotNode(uint64_t slot) { return ChildSlot::NodeOf<Node>(slot); }

const SubscriberArray* NewFlatArray(std::span<const Subscriber> items) {
  RINGMQ_ASSERT(!items.empty());
  RINGMQ_ASSERT(items.size() <= std::numeric_limits<uint32_t>::max());
  void* memory = ::operator new(sizeof(SubscriberArray) + items.size() * sizeof(Subscriber));
  auto* array = new (memory) SubscriberArray{static_cast<uint32_t>(items.size()), 0};
  std::copy(items.begin(), items.end(), array->items());
  return array;
}

SubscriberArray* NewSpine(size_t chunk_count, size_t size) {
  RINGMQ_ASSERT(chunk_count > 0);
  void* memory =
      ::operator new(sizeof(SubscriberArray) + chunk_count * sizeof(const SubscriberArray*));
  return new (memory)
      SubscriberArray{static_cast<uint32_t>(size), static_cast<uint32_t>(chunk_count)};
}

// Frees a flat array, or a spine without its chunks (they may live on in the next version).
void DeleteSubscriberArray(void* object) { ::operator delete(object); }

void Retire(EpochDomain& epoch, const SubscriberArray* array) {
  epoch.Retire(const_cast<SubscriberArray*>(array), DeleteSubscriberArray);
}

// Frees a list and, if chunked, its chunks (destructor only: no reader left).
void DeleteSubscriberList(const SubscriberArray* list) {
  for (uint32_t i = 0; i < list->chunk_count; ++i) {
    DeleteSubscriberArray(const_cast<SubscriberArray*>(list->chunks()[i]));
  }
  DeleteSubscriberArray(const_cast<SubscriberArray*>(list));
}

// Item `index` of a flat or chunked list: O(chunks) for a chunked one.
const Subscriber& ItemAt(const SubscriberArray* list, uint32_t index) {
  RINGMQ_ASSERT(index < list->size);
  if (list->chunk_count == 0) {
    return list->items()[index];
  }
  for (uint32_t i = 0; i < list->chunk_count; ++i) {
    const SubscriberArray* chunk = list->chunks()[i];
    if (index < chunk->size) {
      return chunk->items()[index];
    }
    index -= chunk->size;
  }
  RINGMQ_ASSERT(false && "a chunked list's size is the sum of its chunks'");
  return list->items()[0];
}

const GroupList* NewGroupList(std::span<Group* const> groups) {
  RINGMQ_ASSERT(!groups.empty());
  void* memory = ::operator new(sizeof(GroupList) + groups.size() * sizeof(Group*));
  auto* list = new (memory) GroupList{static_cast<uint32_t>(groups.size())};
  std::copy(groups.begin(), groups.end(), list->items());
  return list;
}

void DeleteGroupList(void* object) { ::operator delete(object); }

// A retired group: its member list is already null (it goes with its last member).
void DeleteGroup(void* object) { delete static_cast<Group*>(object); }

// Index of the chunk of a chunked list where `subscriber` is or would go: the last chunk whose
// first item is not after it (or the first chunk).
uint32_t FindChunk(const SubscriberArray* list, const Subscriber& subscriber) {
  uint32_t low = 0;
  uint32_t high = list->chunk_count;
  while (high - low > 1) {
    const uint32_t middle = low + (high - low) / 2;
    if (SessionLess(subscriber, list->chunks()[middle]->items()[0])) {
      high = middle;
    } else {
      low = middle;
    }
  }
  return low;
}

// Splits sorted `items` into chunks of chunk_target to 2 x chunk_target items (one chunk if
// there are at most 2 x chunk_target) and writes them to `out`. Returns how many.
size_t WriteChunks(std::span<const Subscriber> items, size_t chunk_target,
                   const SubscriberArray** out) {
  if (items.empty()) {
    return 0;
  }
  const size_t pieces = items.size() <= 2 * chunk_target ? 1 : items.size() / chunk_target;
  for (size_t i = 0; i < pieces; ++i) {
    const size_t begin = items.size() * i / pieces;
    const size_t end = items.size() * (i + 1) / pieces;
    out[i] = NewFlatArray(items.subspan(begin, end - begin));
  }
  return pieces;
}

size_t ChunkCount(size_t items, size_t chunk_target) {
  return items == 0 ? 0 : items <= 2 * chunk_target ? 1 : items / chunk_target;
}

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

// Reader and writer lookup of an exact child: only_child first, then the table (see Node).
const Node* FindExactChild(const Node* parent, std::string_view level, uint64_t hash) {
  const uint64_t only = parent->only_child.load(std::memory_order_acquire);
  if (ChildSlot::TagMatches(only, hash) && LevelEquals(SlotNode(only)->level(), level)) {
    return SlotNode(only);
  }
  return parent->children.Find(level, hash);
}

bool IsEmpty(const Node* node) {
  return node->subscribers.load(std::memory_order_relaxed) == nullptr &&
         node->groups.load(std::memory_order_relaxed) == nullptr &&
         node->only_child.load(std::memory_order_relaxed) == ChildSlot::kEmpty &&
         node->children.empty() && node->plus.load(std::memory_order_relaxed) == nullptr &&
         node->hash.load(std::memory_order_relaxed) == nullptr;
}

}  // namespace

SubscriptionTrie::SubscriptionTrie(EpochDomain& epoch, uint32_t cursor_slots)
    : SubscriptionTrie(epoch, LevelHasher::RandomSeed(), kListChunk, cursor_slots) {}

SubscriptionTrie::SubscriptionTrie(EpochDomain& epoch, uint64_t hash_seed, uint32_t list_chunk,
                                   uint32_t cursor_slots)
    : epoch_(epoch),
      list_chunk_(list_chunk),
      hasher_(hash_seed),
      root_(NewNode(nullptr, {}, NodeKind::kRoot)),
      cursor_slots_(cursor_slots) {
  RINGMQ_ASSERT(list_chunk_ >= 1);
  RINGMQ_ASSERT(cursor_slots_ >= 1);
}

SubscriptionTrie::~SubscriptionTrie() {
  // Iterative: the depth is bounded by kMaxTopicLevels, but the fan-out is not.
  std::vector<Node*> pending = {root_};
  while (!pending.empty()) {
    Node* node = pending.back();
    pending.pop_back();
    if (const uint64_t only = node->only_child.load(std::memory_order_relaxed)) {
      pending.push_back(SlotNode(only));
    }
    node->children.DestroyNow([&pending](Node* child) { pending.push_back(child); });
    if (Node* plus = node->plus.load(std::memory_order_relaxed)) {
      pending.push_back(plus);
    }
    if (Node* hash = node->hash.load(std::memory_order_relaxed)) {
      pending.push_back(hash);
    }
    if (const SubscriberArray* list = node->subscribers.load(std::memory_order_relaxed)) {
      DeleteSubscriberList(list);
    }
    if (const GroupList* groups = node->groups.load(std::memory_order_relaxed)) {
      for (uint32_t i = 0; i < groups->size; ++i) {
        Group* group = groups->items()[i];
        if (const SubscriberArray* members = group->members.load(std::memory_order_relaxed)) {
          DeleteSubscriberList(members);
        }
        DeleteGroup(group);
      }
      DeleteGroupList(const_cast<GroupList*>(groups));
    }
    DeleteNode(node);
  }
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
  return const_cast<Node*>(FindExactChild(parent, level, hasher_(level)));
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
    InsertChild(parent, child, hasher_(level));
  }
  return child;
}

void SubscriptionTrie::InsertChild(Node* parent, Node* child, uint64_t hash) {
  if (parent->children.empty()) {
    const uint64_t only = parent->only_child.load(std::memory_order_relaxed);
    if (only == ChildSlot::kEmpty) {
      parent->only_child.store(ChildSlot::Pack(child, hash), std::memory_order_release);
      return;
    }
    // Second child: publish a table holding the first one, then clear only_child (see Node).
    Node* first = SlotNode(only);
    parent->children.Insert(first, hasher_(first->level()), hasher_, epoch_);
    parent->only_child.store(ChildSlot::kEmpty, std::memory_order_release);
  }
  parent->children.Insert(child, hash, hasher_, epoch_);
}

void SubscriptionTrie::EraseChild(Node* parent, Node* child) {
  const uint64_t only = parent->only_child.load(std::memory_order_relaxed);
  if (only != ChildSlot::kEmpty && SlotNode(only) == child) {
    parent->only_child.store(ChildSlot::kEmpty, std::memory_order_release);
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
  parent->children.Erase(child, hasher_, epoch_);
}

// Adds, replaces (QoS, acl_check, offline) or removes `subscriber` in the list at `slot` (a node's
// subscribers or a group's members), copy-on-write: readers keep the version they loaded until
// their next quiescent point. A flat list is copied whole; a chunked list copies the one chunk
// that changes and the chunk pointers.
SubscriptionTrie::ListChange SubscriptionTrie::UpdateSubscribers(
    std::atomic<const SubscriberArray*>& slot, Subscriber subscriber, bool remove) {
  const SubscriberArray* list = slot.load(std::memory_order_relaxed);
  const uint32_t chunk_count = list == nullptr ? 0 : list->chunk_count;
  const uint32_t chunk = chunk_count == 0 ? 0 : FindChunk(list, subscriber);
  std::span<const Subscriber> segment;  // the flat list, or the chunk to change
  if (list != nullptr) {
    segment = chunk_count == 0 ? list->flat() : list->chunks()[chunk]->flat();
  }
  const auto position = std::lower_bound(segment.begin(), segment.end(), subscriber, SessionLess);
  const bool exists = position != segment.end() && SameSession(*position, subscriber);
  if (remove ? !exists
             : exists && position->qos == subscriber.qos &&
                   position->acl_check == subscriber.acl_check &&
                   position->offline == subscriber.offline &&
                   position->options == subscriber.options) {
    return ListChange::kNone;
  }
  std::vector<Subscriber> items(segment.begin(), position);
  if (!remove) {
    items.push_back(subscriber);
  }
  items.insert(items.end(), exists ? position + 1 : position, segment.end());
  const size_t size = (list == nullptr ? 0 : list->size) - segment.size() + items.size();

  const SubscriberArray* replacement = nullptr;
  uint32_t first = 0;  // chunks [first, last] of `list` are replaced (all when none stays)
  uint32_t last = chunk_count == 0 ? 0 : chunk_count - 1;
  if (size == 0) {
    replacement = nullptr;
  } else if (chunk_count == 0) {
    replacement = NewList(items);
  } else if (size <= list_chunk_) {
    replacement = NewFlatArray(Concatenate(list, chunk, items));  // back to flat
  } else {
    first = last = chunk;
    if (items.size() * 4 < list_chunk_) {  // too small: merge with a neighbour
      if (chunk + 1 < chunk_count) {
        const std::span<const Subscriber> next = list->chunks()[++last]->flat();
        items.insert(items.end(), next.begin(), next.end());
      } else {
        const std::span<const Subscriber> previous = list->chunks()[--first]->flat();
        items.insert(items.begin(), previous.begin(), previous.end());
      }
    }
    replacement = SpliceChunks(list, first, last, items, size);
  }
  slot.store(replacement, std::memory_order_release);
  if (list != nullptr) {
    for (uint32_t i = first; chunk_count > 0 && i <= last; ++i) {
      Retire(epoch_, list->chunks()[i]);
    }
    Retire(epoch_, list);  // last: Retire may free at once, and the loop reads the list
  }
  return remove ? ListChange::kRemoved : exists ? ListChange::kReplaced : ListChange::kAdded;
}

// A new list holding `items`: flat up to 2 x list_chunk_ items, chunked beyond.
const SubscriberArray* SubscriptionTrie::NewList(std::span<const Subscriber> items) const {
  if (items.size() <= 2 * size_t{list_chunk_}) {
    return NewFlatArray(items);
  }
  SubscriberArray* spine = NewSpine(ChunkCount(items.size(), list_chunk_), items.size());
  WriteChunks(items, list_chunk_, spine->chunks());
  return spine;
}

// The items of chunked `list` with chunk `chunk` replaced by `items`, as one sorted vector.
std::vector<Subscriber> SubscriptionTrie::Concatenate(const SubscriberArray* list, uint32_t chunk,
                                                      std::span<const Subscriber> items) {
  std::vector<Subscriber> all;
  all.reserve(list->size);
  for (uint32_t i = 0; i < list->chunk_count; ++i) {
    const std::span<const Subscriber> part = i == chunk ? items : list->chunks()[i]->flat();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

// A new spine: the chunks of `list` before `first` and after `last` (shared, not copied), and new
// chunks holding `items` in between.
const SubscriberArray* SubscriptionTrie::SpliceChunks(const SubscriberArray* list, uint32_t first,
                                                      uint32_t last,
                                                      std::span<const Subscriber> items,
                                                      size_t size) const {
  RINGMQ_ASSERT(first <= last && last < list->chunk_count);
  const size_t kept = list->chunk_count - (last - first + 1);
  SubscriberArray* spine = NewSpine(kept + ChunkCount(items.size(), list_chunk_), size);
  const SubscriberArray** out = spine->chunks();
  out = std::copy(list->chunks(), list->chunks() + first, out);
  out += WriteChunks(items, list_chunk_, out);
  out = std::copy(list->chunks() + last + 1, list->chunks() + list->chunk_count, out);
  RINGMQ_ASSERT(out == spine->chunks() + spine->chunk_count);
  return spine;
}

// The node of `filter`: created with its missing ancestors if `create`, else null when absent.
Node* SubscriptionTrie::FindFilterNode(std::string_view filter, bool create) {
  Node* node = root_;
  size_t level_count = 0;
  LevelSplitter levels(filter);
  std::string_view level;
  while (node != nullptr && levels.Next(level)) {
    ++level_count;
    RINGMQ_ASSERT(level_count <= mqtt::kMaxTopicLevels);
    node = create ? FindOrCreateChild(node, level) : FindChildForWrite(node, level);
  }
  return node;
}

bool SubscriptionTrie::Subscribe(std::string_view filter, Subscriber subscriber) {
  RINGMQ_ASSERT(!filter.empty());
  RINGMQ_ASSERT(subscriber.qos <= 2);
  MutexLock lock(&mutex_);
  Node* node = FindFilterNode(filter, /*create=*/true);

  // kReplaced: the QoS or a flag of an existing subscription was replaced (MQTT-3.8.4-3);
  // kNone: the same subscription with the same QoS and flags was already there.
  if (UpdateSubscribers(node->subscribers, subscriber, /*remove=*/false) != ListChange::kAdded) {
    return false;
  }
  subscription_count_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool SubscriptionTrie::Unsubscribe(std::string_view filter, Subscriber identity) {
  RINGMQ_ASSERT(!filter.empty());
  MutexLock lock(&mutex_);
  Node* node = FindFilterNode(filter, /*create=*/false);
  if (node == nullptr) {
    return false;
  }

  if (UpdateSubscribers(node->subscribers, identity, /*remove=*/true) != ListChange::kRemoved) {
    return false;
  }
  subscription_count_.fetch_sub(1, std::memory_order_relaxed);
  Prune(node);
  return true;
}

Group* SubscriptionTrie::FindGroup(const Node* node, std::string_view share_name) const {
  const GroupList* groups = node->groups.load(std::memory_order_relaxed);
  if (groups == nullptr) {
    return nullptr;
  }
  Group* const* begin = groups->items();
  Group* const* end = begin + groups->size;
  Group* const* found =
      std::lower_bound(begin, end, share_name, [](const Group* group, std::string_view name) {
        return std::string_view(group->name) < name;
      });
  return found != end && (*found)->name == share_name ? *found : nullptr;
}

void SubscriptionTrie::ChangeGroups(Node* node, Group* group, bool remove) {
  const GroupList* old_list = node->groups.load(std::memory_order_relaxed);
  std::vector<Group*> groups;
  if (old_list != nullptr) {
    groups.assign(old_list->items(), old_list->items() + old_list->size);
  }
  const auto position =
      std::lower_bound(groups.begin(), groups.end(), group,
                       [](const Group* a, const Group* b) { return a->name < b->name; });
  if (remove) {
    RINGMQ_ASSERT(position != groups.end() && *position == group);
    groups.erase(position);
  } else {
    RINGMQ_ASSERT(position == groups.end() || (*position)->name != group->name);
    groups.insert(position, group);
  }
  // Release: a reader that finds the new list sees it, and a new group, fully built.
  node->groups.store(groups.empty() ? nullptr : NewGroupList(groups), std::memory_order_release);
  if (old_list != nullptr) {
    epoch_.Retire(const_cast<GroupList*>(old_list), DeleteGroupList);
  }
}

bool SubscriptionTrie::SubscribeShared(std::string_view share_name, std::string_view filter,
                                       Subscriber subscriber, int* groups_delta) {
  RINGMQ_ASSERT(!share_name.empty() && !filter.empty());
  RINGMQ_ASSERT(subscriber.qos <= 2);
  subscriber.shared = true;
  MutexLock lock(&mutex_);
  Node* node = FindFilterNode(filter, /*create=*/true);
  Group* group = FindGroup(node, share_name);
  if (group == nullptr) {
    // Built with its first member before it is published.
    group = new Group(share_name, cursor_slots_);
    group->members.store(NewList({&subscriber, 1}), std::memory_order_relaxed);
    ChangeGroups(node, group, /*remove=*/false);
    group_count_.fetch_add(1, std::memory_order_relaxed);
    if (groups_delta != nullptr) ++*groups_delta;
  } else if (UpdateSubscribers(group->members, subscriber, /*remove=*/false) !=
             ListChange::kAdded) {
    return false;  // replaced or unchanged (MQTT-3.8.4-3)
  }
  subscription_count_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool SubscriptionTrie::UnsubscribeShared(std::string_view share_name, std::string_view filter,
                                         Subscriber identity, int* groups_delta) {
  RINGMQ_ASSERT(!share_name.empty() && !filter.empty());
  MutexLock lock(&mutex_);
  Node* node = FindFilterNode(filter, /*create=*/false);
  if (node == nullptr) {
    return false;
  }
  Group* group = FindGroup(node, share_name);
  if (group == nullptr ||
      UpdateSubscribers(group->members, identity, /*remove=*/true) != ListChange::kRemoved) {
    return false;
  }
  subscription_count_.fetch_sub(1, std::memory_order_relaxed);
  if (group->members.load(std::memory_order_relaxed) == nullptr) {
    ChangeGroups(node, group, /*remove=*/true);
    group_count_.fetch_sub(1, std::memory_order_relaxed);
    if (groups_delta != nullptr) --*groups_delta;
    epoch_.Retire(group, DeleteGroup);  // readers may still hold it until their quiescent point
  }
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
    result.level_hashes_[count] = hasher_(level);
    ++count;
    begin = i + 1;
  }
  level_count = count;
}

void SubscriptionTrie::Match(std::string_view topic, MatchResult& result,
                             const ShareChoice& choice) const {
  MatchInto(topic, result, choice, /*groups_only=*/false);
}

void SubscriptionTrie::MatchShared(std::string_view topic, MatchResult& result,
                                   const ShareChoice& choice) const {
  MatchInto(topic, result, choice, /*groups_only=*/true);
}

void SubscriptionTrie::ResetResult(MatchResult& result) {
  result.subscribers_.clear();
  result.shards_.clear();
  result.run_starts_.clear();
  result.shared_picks_ = 0;
  result.shared_skips_ = 0;
  result.shared_no_member_ = 0;
}

void SubscriptionTrie::MatchGroup(std::string_view share_name, std::string_view filter,
                                  MatchResult& result, const ShareChoice& choice) const {
  RINGMQ_ASSERT(choice.cursor_slot < cursor_slots_);
  RINGMQ_ASSERT(!share_name.empty() && !filter.empty());
  ResetResult(result);
  // The filter's own node: each level is a literal child, '+' or '#' (one walk, no search).
  const Node* node = root_;
  size_t begin = 0;
  for (size_t i = 0; node != nullptr && i <= filter.size(); ++i) {
    if (i < filter.size() && filter[i] != '/') continue;
    const std::string_view level = filter.substr(begin, i - begin);
    if (level == "+") {
      node = node->plus.load(std::memory_order_acquire);
    } else if (level == "#") {
      node = node->hash.load(std::memory_order_acquire);
    } else {
      node = FindExactChild(node, level, hasher_(level));
    }
    begin = i + 1;
  }
  const GroupList* groups =
      node == nullptr ? nullptr : node->groups.load(std::memory_order_acquire);
  if (groups != nullptr) {
    Group* const* end = groups->items() + groups->size;
    Group* const* found = std::lower_bound(
        groups->items(), end, share_name,
        [](const Group* group, std::string_view name) { return group->name < name; });
    if (found != end && (*found)->name == share_name) PickMember(*found, result, choice);
  }
  Finish(result);
}

void SubscriptionTrie::MatchInto(std::string_view topic, MatchResult& result,
                                 const ShareChoice& choice, bool groups_only) const {
  RINGMQ_ASSERT(choice.cursor_slot < cursor_slots_);
  ResetResult(result);
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
        if (!groups_only) AppendSubscribers(hash, result);
        if (choice.groups) AppendGroups(hash, result, choice);
      }
    }
    if (depth == level_count) {
      if (!groups_only) AppendSubscribers(node, result);
      if (choice.groups) AppendGroups(node, result, choice);
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

// Appends the subscribers of `node` as one sorted run (a chunked list is sorted across chunks).
void SubscriptionTrie::AppendSubscribers(const Node* node, MatchResult& result) {
  const SubscriberArray* list = node->subscribers.load(std::memory_order_acquire);
  if (list == nullptr) {
    return;
  }
  std::vector<Subscriber>& out = result.subscribers_;
  result.run_starts_.push_back(out.size());
  if (list->chunk_count == 0) {
    out.insert(out.end(), list->items(), list->items() + list->size);
    return;
  }
  for (uint32_t i = 0; i < list->chunk_count; ++i) {
    const SubscriberArray* chunk = list->chunks()[i];
    out.insert(out.end(), chunk->items(), chunk->items() + chunk->size);
  }
}

// Appends, per group of `node`, the member chosen as `choice` says (see trie.h), as a run of one.
void SubscriptionTrie::AppendGroups(const Node* node, MatchResult& result,
                                    const ShareChoice& choice) const {
  const GroupList* groups = node->groups.load(std::memory_order_acquire);
  if (groups == nullptr) {
    return;
  }
  for (uint32_t g = 0; g < groups->size; ++g) PickMember(groups->items()[g], result, choice);
}

// Appends the member of `group` chosen as `choice` says (see trie.h), as a run of one.
void SubscriptionTrie::PickMember(const Group* group, MatchResult& result,
                                  const ShareChoice& choice) const {
  const SubscriberArray* members = group->members.load(std::memory_order_acquire);
  if (members == nullptr) {
    return;  // its last member left after the caller loaded the group list
  }
  const uint32_t count = members->size;
  uint64_t start = 0;
  switch (choice.strategy) {
    case ShareStrategy::kRoundRobin: {
      // Only the caller's shard writes this cursor: a relaxed load and store, no RMW.
      std::atomic<uint32_t>& cursor = group->cursors[choice.cursor_slot].next;
      start = cursor.load(std::memory_order_relaxed);
      cursor.store(static_cast<uint32_t>(start + 1), std::memory_order_relaxed);
      break;
    }
    case ShareStrategy::kRandom: {
      uint64_t& x = result.random_state_;
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      start = x >> 11;
      break;
    }
    case ShareStrategy::kHash:
      start = choice.publisher_key;
      break;
  }
  start %= count;
  bool picked = false;
  for (uint32_t i = 0; i < count; ++i) {
    const Subscriber& member = ItemAt(members, static_cast<uint32_t>((start + i) % count));
    if (member.offline ||
        (choice.eligible != nullptr && !choice.eligible(choice.context, member))) {
      continue;
    }
    result.shared_skips_ += i;
    result.run_starts_.push_back(result.subscribers_.size());
    result.subscribers_.push_back(member);
    picked = true;
    break;
  }
  if (picked) {
    ++result.shared_picks_;
    return;
  }
  result.shared_skips_ += count;
  ++result.shared_no_member_;
  if (choice.qos > 0) {
    // Kept by the strategy's member: a persistent one queues it while offline.
    result.run_starts_.push_back(result.subscribers_.size());
    result.subscribers_.push_back(ItemAt(members, static_cast<uint32_t>(start)));
    ++result.shared_picks_;
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

// Merges overlapping subscriptions (one entry per session, highest QoS, acl_check only if all
// have it, options if any has it) and groups by shard.
void SubscriptionTrie::Finish(MatchResult& result) {
  std::vector<Subscriber>& subscribers = result.subscribers_;
  // One array is already sorted and unique; several need a merge and then one entry per session.
  if (result.run_starts_.size() > 1) {
    MergeRuns(result);
    size_t kept = 0;
    for (size_t i = 0; i < subscribers.size(); ++i) {
      if (kept > 0 && SameSession(subscribers[kept - 1], subscribers[i])) {
        Subscriber& merged = subscribers[kept - 1];
        merged.qos = std::max(merged.qos, subscribers[i].qos);
        merged.acl_check = merged.acl_check && subscribers[i].acl_check;  // see trie.h
        merged.shared = merged.shared || subscribers[i].shared;
        merged.options = merged.options || subscribers[i].options;
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
