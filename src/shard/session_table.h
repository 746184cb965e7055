// A shard's session table: every session whose home is this shard, by client id, in slots that
// other shards and the subscription trie name by handle, and which connection (by tag) is bound
// to which session.
//
// Handles: a session is named across shards and in the trie by (shard, index, generation)
// (sub::Subscriber, mailbox kHandle records). Destroy bumps the slot's generation before the
// slot is reused, so a handle still in a mailbox, a match result or a trie reader's view finds
// a newer generation and misses (Find) instead of reaching the next session in the slot.
//
// Invariants:
//   - by client id holds exactly the slots with a session, as slot indexes hashed and compared
//     by their sessions' client ids (a slot is erased before its session is destroyed), so an
//     id is stored once per session (and shared with its connection, common/shared_string.h).
//   - slots never move (StableVector), so the Router may hold an entry's address.
//   - a free slot has no session, no connection and no ACL; its generation is that of the
//     session it last held plus one.
//   - a tag is bound to at most one slot, and only while that slot's connection is the tagged
//     connection (the Router binds at CONNECT and unbinds at close and takeover).
//
// Memory: one SessionEntry per slot ever used at once (slots are reused, never released), one
// 4-byte map slot per session (plus absl's control byte per slot; the map is at most 7/8 full),
// one uint32_t per connection tag ever bound. An idle connection's session is one of the largest items per
// connection, so SessionEntry's size is pinned by a test (tests/shard/session_table_test.cc).
//
// Thread safety: one table per shard, used only on that shard's thread (see router.h, "Home
// shard": a session lives on its home shard, so the table needs no lock).
#ifndef RINGMQ_SHARD_SESSION_TABLE_H_
#define RINGMQ_SHARD_SESSION_TABLE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "auth/acl.h"
#include "common/assert.h"
#include "common/shared_string.h"
#include "common/stable_vector.h"
#include "net/connection.h"
#include "session/session.h"

namespace ringmq::shard {

// The ACL of a session's bound (or last) connection and what it was compiled from.
struct ConnectionAcl {
  auth::ClientAcl rules;
  uint64_t version = 0;  // auth::AuthData::version; 0: not compiled
  std::optional<std::string> user_name;
};

// One slot of the table. The Router owns what the fields mean beyond the table's invariants.
// The small members share the last 8-byte word.
struct SessionEntry {
  std::optional<session::Session> session;
  net::Connection* connection = nullptr;  // bound connection on this shard, if online
  // acl_file only: the rules of the bound (or, offline, the last) connection. Behind a
  // pointer so that brokers without an ACL (and their idle connections) do not pay for it.
  std::unique_ptr<ConnectionAcl> acl;
  uint32_t generation = 0;
  bool dirty = false;
  bool job_pending = false;  // a FilterJob of the bound connection is in the Router's jobs
  // bridgeq2 lane: last bound by a bridge's local connection (logged in kSession's flags).
  bool bridge = false;
};

class SessionTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  SessionTable() = default;
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // A new session for `client_id`, which must not have one, in a free slot (or a new one);
  // the session shares the id's storage. Returns its index; the slot's generation is left as
  // it is.
  uint32_t Create(const SharedString& client_id, bool clean_session,
                  const session::SessionLimits& limits);
  uint32_t Create(std::string_view client_id, bool clean_session,
                  const session::SessionLimits& limits) {
    return Create(SharedString(client_id), clean_session, limits);
  }
  // Ends the session in slot `index` (it must have one and no connection): the id is free
  // again, the ACL goes, and the generation moves on so that handles to it miss.
  void Destroy(uint32_t index);

  // The slot of `client_id`'s session, or kNone.
  uint32_t Find(std::string_view client_id) const {
    const auto it = by_client_id_.find(client_id);
    return it == by_client_id_.end() ? kNone : *it;
  }

  // The entry a handle names if its session still lives there, else null (out of range,
  // a free slot, or a later session in the slot). Per delivery: kept inline.
  SessionEntry* Find(uint32_t index, uint32_t generation) {
    if (index >= slots_.size()) return nullptr;
    SessionEntry& entry = slots_[index];
    if (entry.generation != generation || !entry.session) return nullptr;
    return &entry;
  }

  // Slot `index`, which the caller knows is in range (an index it holds for a live session).
  SessionEntry& operator[](uint32_t index) {
    RINGMQ_ASSERT(index < slots_.size());
    return slots_[index];
  }

  // Binds connection `tag` to slot `index`, or unbinds it (kNone).
  void BindTag(uint32_t tag, uint32_t index) {
    if (tag >= session_of_tag_.size()) {
      if (index == kNone) return;
      session_of_tag_.resize(tag + 1, kNone);
    }
    session_of_tag_[tag] = index;
  }
  // The slot connection `tag` is bound to, or kNone. Per packet: kept inline.
  uint32_t IndexOfTag(uint32_t tag) const {
    return tag < session_of_tag_.size() ? session_of_tag_[tag] : kNone;
  }

  // Sessions in the table.
  size_t size() const { return by_client_id_.size(); }
  // Slots ever used (with a session or free): indexes below this are valid for operator[].
  uint32_t slot_count() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  using Slots = StableVector<SessionEntry, kChunkBytesFor<SessionEntry>>;  // 16 KiB chunks
  // Slot indexes hashed and compared by their sessions' ids, and looked up by an id: 4 bytes
  // a map slot instead of a string_view key and an index (24).
  struct IdHash {
    using is_transparent = void;
    const Slots* slots;
    size_t operator()(std::string_view id) const { return absl::Hash<std::string_view>()(id); }
    size_t operator()(uint32_t index) const {
      return (*this)((*slots)[index].session->client_id());
    }
  };
  struct IdEq {
    using is_transparent = void;
    const Slots* slots;
    // Two slots are the same key when their sessions have the same id, so inserting a second
    // session with an id already present finds the first (Create asserts it does not).
    bool operator()(uint32_t a, uint32_t b) const {
      return a == b || (*slots)[a].session->client_id() == (*slots)[b].session->client_id();
    }
    bool operator()(uint32_t index, std::string_view id) const {
      return (*slots)[index].session->client_id() == id;
    }
    bool operator()(std::string_view id, uint32_t index) const { return (*this)(index, id); }
  };

  Slots slots_;  // stable addresses while growing
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_set<uint32_t, IdHash, IdEq> by_client_id_{0, IdHash{&slots_}, IdEq{&slots_}};
  std::vector<uint32_t> session_of_tag_;  // connection tag -> slot
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_SESSION_TABLE_H_
