// State every shard reads, owned by the broker and outliving the shards.
//
// Thread safety: the atomics are read and written by every shard; the pointed-to trie, retained
// store and epoch domain synchronize internally; the mailbox matrix is SPSC per shard pair.
#ifndef RINGMQ_SHARD_SHARED_STATE_H_
#define RINGMQ_SHARD_SHARED_STATE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "connect/address_table.h"
#include "retain/retained_store.h"
#include "shard/mailbox.h"
#include "sub/epoch.h"
#include "sub/trie.h"

namespace ringmq::shard {

struct SharedState {
  explicit SharedState(uint32_t shard_count);

  const uint32_t shard_count;
  std::atomic<uint32_t> connected_clients{0};
  std::atomic<bool> shutting_down{false};
  // Per-source-address counts; null unless a per-address limit is configured.
  std::unique_ptr<connect::AddressTable> addresses;
  sub::EpochDomain epochs;
  sub::SubscriptionTrie trie;
  retain::RetainedStore retained;
  MailboxMatrix mailboxes;
  // Each shard's io_uring fd, for msg_ring doorbells; -1 until the shard has set up.
  std::unique_ptr<std::atomic<int>[]> ring_fds;
};

// Mailbox slots per ordered shard pair: 2^18 slots in all spread over the pairs' count, at
// least 1024 and at most 32768 per pair (2 shards: 2 x 512 KiB; 64 shards: 4032 x 16 KiB).
uint32_t MailboxCapacity(uint32_t shard_count);

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_SHARED_STATE_H_
