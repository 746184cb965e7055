// Bounded single-producer/single-consumer mailboxes between shards.
//
// A Mailbox is a ring of fixed 16-byte slots. The producer writes a record of 1..k consecutive
// slots and publishes it with one release store of the tail, so the consumer sees a record
// whole or not at all. What a slot means is the caller's (e.g. a Message reference and a handle
// count, followed by subscriber-handle slots). The ring never grows and never blocks: a push
// that does not fit returns false and the caller counts it and retries on its next loop
// iteration.
//
// Layout. Indices are 64-bit counters that only grow (slot position = index & mask). The tail
// and the producer's cached copy of the head share one cache line, the head and the consumer's
// cached tail another, the read-only geometry a third: each side reads the other's line only
// when its cached copy says "full" (producer) or "empty" (consumer), plus once per push for the
// wake-up check below. A record is always contiguous in memory: the slot array has k - 1 spare
// slots past the end, and a record that starts near the end runs on into them; the positions it
// covers at the start of the ring are accounted as used but never read. A byte per position
// holds the length of the record starting there.
//
// Wake-up protocol. The consumer may sleep (e.g. in io_uring_submit_and_wait) while its
// mailboxes are empty; the producer rings the consumer's doorbell (io_uring msg_ring, eventfd)
// only when its push found the ring empty. The doorbell must be a token that a later wait
// consumes (a CQE, an eventfd count, a flag under a lock), never an edge that is lost if nobody
// waits at that moment. The two sides run, with F a seq_cst fence:
//
//   producer (TryPush)                     consumer (Drain, when it has caught up to the tail)
//     write slots                            read slots
//     tail.store(t + k, release)             head.store(h, release)
//     F_p                                    F_c
//     was_empty = head.load() == t           if (tail.load() == h) observed empty: may sleep
//
// Claim: a record never waits on a consumer that sleeps without a doorbell ring to come. Let
// the consumer decide to sleep having published head h and read tail == h, and let Q be the push
// that starts at h (the records not yet taken are Q and those behind it). In the single total
// order of seq_cst fences:
//  - F_Q before F_c: the tail load after F_c sees Q's tail store or a later one, so it cannot
//    have read h. Impossible.
//  - F_c before F_Q: Q's head load after F_Q sees the head store h or a later one. If h, Q
//    reports was_empty and its doorbell ring comes after the sleep decision; the woken consumer
//    drains Q and what is behind it until it again observes empty, and the argument restarts
//    from the new h. If later, the consumer was already awake and has taken Q (was_empty is
//    false then: nobody needs waking).
// So the producer rings only on the empty-to-non-empty edge, and Drain reports "observed empty"
// (more == false) only after the fence-protected recheck.
//
// Thread safety: exactly one producer thread calls TryPush and exactly one consumer thread calls
// Drain; construction and destruction happen while neither runs. Slot contents written before a
// push are visible to the consumer in fn (release/acquire on the tail); slots read in fn are not
// overwritten until the consumer publishes the head after fn returns (release/acquire on the
// head).
#ifndef RINGMQ_SHARD_MAILBOX_H_
#define RINGMQ_SHARD_MAILBOX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/assert.h"

#if defined(__SANITIZE_THREAD__)
#define RINGMQ_MAILBOX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RINGMQ_MAILBOX_TSAN 1
#endif
#endif

namespace ringmq::shard {

struct Slot {
  uint32_t kind;
  uint32_t aux;
  uint64_t value;
  bool operator==(const Slot&) const = default;
};
static_assert(sizeof(Slot) == 16);

struct PushResult {
  bool pushed;     // false: the record did not fit; nothing was written
  bool was_empty;  // the consumer had taken everything before this record and not yet this one
                   // (as the producer saw it after publishing): ring the consumer's doorbell
};

struct DrainResult {
  size_t records;  // records handed to fn
  bool more;       // stopped at max_records with records left: come back without sleeping
};

class Mailbox {
 public:
  static constexpr uint32_t kDefaultMaxRecordSlots = 64;
  static constexpr uint32_t kMaxRecordSlotsLimit = 255;  // record lengths are stored in a byte

  // `capacity`: slots in the ring, a power of two. `max_record_slots`: the longest record
  // TryPush accepts, 1..min(capacity, 255).
  explicit Mailbox(uint32_t capacity, uint32_t max_record_slots = kDefaultMaxRecordSlots);
  // The same ring in caller-owned memory of StorageBytes(capacity, max_record_slots) bytes,
  // 64-byte aligned, zero or not: it must outlive the mailbox.
  Mailbox(uint32_t capacity, uint32_t max_record_slots, void* storage);
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Producer only. Appends `slots` (1..max_record_slots) as one record, all or nothing.
  PushResult TryPush(std::span<const Slot> slots);

  // Consumer only. Calls fn(std::span<const Slot> record) for each record in order, at most
  // `max_records` (>= 1) times, freeing their space after fn returns (published at least every
  // quarter ring, and before returning). Returns with more == false only after it observed the
  // ring empty under the wake-up protocol above (so sleeping is then safe), and with
  // more == true when it stopped at max_records while records remained. fn must not call Drain
  // on this mailbox; the span is valid only during the call.
  template <class Fn>
  DrainResult Drain(Fn&& fn, size_t max_records);

  uint32_t capacity() const { return geometry_.capacity; }
  uint32_t max_record_slots() const { return geometry_.max_record_slots; }

  // Bytes of ring storage: capacity + max_record_slots - 1 slots, then one length byte per
  // position, rounded up to a cache line.
  static size_t StorageBytes(uint32_t capacity, uint32_t max_record_slots);

 private:
  void Init(uint32_t capacity, uint32_t max_record_slots, void* storage);

  // Read-only after construction; shared by both sides without contention.
  struct alignas(64) Geometry {
    uint32_t capacity;
    uint32_t max_record_slots;
    uint64_t mask;
    uint64_t publish_slots;   // a drain publishes the head at least this often: capacity / 4
    Slot* slots;              // capacity + max_record_slots - 1
    uint8_t* record_lengths;  // capacity; valid at the first position of each record
  };
  struct alignas(64) ProducerSide {
    std::atomic<uint64_t> tail{0};  // written by the producer
    uint64_t cached_head = 0;       // producer's last view of head
  };
  struct alignas(64) ConsumerSide {
    std::atomic<uint64_t> head{0};  // written by the consumer
    uint64_t cached_tail = 0;       // consumer's last view of tail
  };

  // The seq_cst fence F of the wake-up protocol (store of one index, F, load of the other).
  void StoreLoadFence() {
#ifdef RINGMQ_MAILBOX_TSAN
    // ThreadSanitizer does not model fences (GCC refuses them under -fsanitize=thread). Seq_cst
    // read-modify-writes of one word are totally ordered and the later synchronizes with the
    // earlier, which gives the same store->load ordering between the two sides.
    fence_word_.fetch_add(1, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }

  struct alignas(64) CacheLine {
    uint8_t bytes[64];
  };
  std::unique_ptr<CacheLine[]> owned_storage_;  // null when the caller owns the storage
  Geometry geometry_;
  ProducerSide producer_;
  ConsumerSide consumer_;
#ifdef RINGMQ_MAILBOX_TSAN
  alignas(64) std::atomic<uint64_t> fence_word_{0};
#endif
};

template <class Fn>
DrainResult Mailbox::Drain(Fn&& fn, size_t max_records) {
  RINGMQ_ASSERT(max_records >= 1);
  uint64_t published = consumer_.head.load(std::memory_order_relaxed);
  uint64_t head = published;
  uint64_t tail = consumer_.cached_tail;
  size_t records = 0;
  for (;;) {
    if (head == tail) {
      // Caught up with what we knew of the tail: free the space, then look again.
      if (head != published) {
        consumer_.head.store(head, std::memory_order_release);
        published = head;
      }
      tail = producer_.tail.load(std::memory_order_acquire);
      if (head == tail) {
        // Looks empty. Dekker with TryPush: head store, fence, tail load (see the header).
        StoreLoadFence();
        tail = producer_.tail.load(std::memory_order_acquire);
        if (head == tail) {
          consumer_.cached_tail = tail;
          return {records, false};
        }
      }
    }
    if (records == max_records) {
      if (head != published) consumer_.head.store(head, std::memory_order_release);
      consumer_.cached_tail = tail;
      return {records, true};
    }
    const uint64_t position = head & geometry_.mask;
    const uint32_t length = geometry_.record_lengths[position];
    RINGMQ_ASSERT(length >= 1 && length <= tail - head);
    fn(std::span<const Slot>(geometry_.slots + position, length));
    head += length;
    ++records;
    if (head - published >= geometry_.publish_slots) {
      // A long drain frees space as it goes, so a producer facing a full ring can continue.
      consumer_.head.store(head, std::memory_order_release);
      published = head;
    }
  }
}

// The mailboxes of every ordered pair of distinct shards: N * (N - 1) rings, and per destination
// a bitmap of the sources whose mailbox went from empty to non-empty (the signals), so that a
// shard drains only the mailboxes that have mail instead of polling N - 1 of them.
// mailbox(from, to) is written only by shard `from` and read only by shard `to`.
//
// Memory. The rings' storage is one anonymous mapping made at construction: a page becomes
// resident only when a ring on it is first used, so a large idle mesh (many shards, traffic
// between few pairs) costs little more than the Mailbox objects (three cache lines each) and
// the signal words (one cache line per destination and 64 sources).
//
// Signals. Bit `from % 64` of word `from / 64` of destination `to`. The producer sets it
// (Signal, a fetch_or with release) after a push into mailbox(from, to) reported was_empty,
// before it rings `to`'s doorbell; the consumer takes a word (TakeSignals, an exchange with
// acquire that clears it) and then drains the mailbox of every source whose bit it took. A
// consumer whose Drain stopped at its record budget (more == true) keeps that source in its
// own pending set and drains it again on its next iteration without waiting for a signal.
//
// Claim: a record is never left in a mailbox with neither its signal bit set nor its source
// pending at the consumer (so a consumer that sleeps with no bit set and nothing pending is
// woken by a doorbell for each record still to come, or finds the bit at its next tick when a
// doorbell fails). Take mailbox(s, d) and a record Q in it that the consumer has not taken.
//  - If the consumer's last Drain of it returned more == true, s is pending: drained next
//    iteration.
//  - Otherwise that Drain observed the ring empty at some head h under the Mailbox wake-up
//    protocol (or no Drain ran yet: h = 0). Let P be the push that started at h (P is Q or
//    comes before Q, and is not taken either). By the Mailbox claim, P reported was_empty, so
//    its producer sets bit s after P's fence F_P. That bit is not the one an earlier
//    TakeSignals cleared: had an exchange E of the consumer read P's fetch_or (or a later
//    value in the word's modification order, which the release sequence of read-modify-writes
//    carries), E would synchronize with it, so P's tail store would happen before the Drain
//    that follows E, and that Drain would have taken P (or stopped with more == true) instead
//    of observing empty at h. So the bit stays set until an exchange that precedes a Drain
//    which takes P, and Q behind it or stops at its budget with s pending.
// The doorbell comes after the bit (the msg_ring is submitted after Signal returns, and the
// receiver reaps its completion after the kernel posted it), so a consumer woken by the
// doorbell sees the bit in TakeSignals.
//
// Thread safety: Signal(from, to) only on shard `from`'s thread, TakeSignals(to, ...) only on
// shard `to`'s thread; mailbox(from, to) as Mailbox says. Construction and destruction happen
// while no shard runs.
class MailboxMatrix {
 public:
  MailboxMatrix(uint32_t shard_count, uint32_t capacity,
                uint32_t max_record_slots = Mailbox::kDefaultMaxRecordSlots);
  ~MailboxMatrix();
  MailboxMatrix(const MailboxMatrix&) = delete;
  MailboxMatrix& operator=(const MailboxMatrix&) = delete;

  Mailbox& mailbox(uint32_t from, uint32_t to) {
    RINGMQ_ASSERT(from < shard_count_ && to < shard_count_ && from != to);
    return *mailboxes_[from * (shard_count_ - 1) + (to < from ? to : to - 1)];
  }
  uint32_t shard_count() const { return shard_count_; }

  // Producer `from`: a push into mailbox(from, to) reported was_empty. Call before ringing
  // `to`'s doorbell.
  void Signal(uint32_t from, uint32_t to) {
    RINGMQ_ASSERT(from < shard_count_ && to < shard_count_ && from != to);
    signals_[size_t{to} * signal_words_ + from / 64].bits.fetch_or(uint64_t{1} << (from % 64),
                                                                   std::memory_order_release);
  }
  // Consumer `to`: takes (and clears) the signals of sources 64 * word .. 64 * word + 63.
  // An empty word is only read, so an idle shard does not write shared cache lines.
  uint64_t TakeSignals(uint32_t to, uint32_t word) {
    RINGMQ_ASSERT(to < shard_count_ && word < signal_words_);
    std::atomic<uint64_t>& bits = signals_[size_t{to} * signal_words_ + word].bits;
    if (bits.load(std::memory_order_relaxed) == 0) return 0;
    return bits.exchange(0, std::memory_order_acquire);
  }
  // Words of signals per destination: ceil(shard_count / 64).
  uint32_t signal_words() const { return signal_words_; }

  // Bytes of the rings' storage mapping for this geometry (resident only as it is touched).
  static size_t StorageBytes(uint32_t shard_count, uint32_t capacity,
                             uint32_t max_record_slots = Mailbox::kDefaultMaxRecordSlots);

 private:
  struct alignas(64) SignalWord {
    std::atomic<uint64_t> bits{0};
  };

  uint32_t shard_count_;
  uint32_t signal_words_;
  void* storage_ = nullptr;  // the rings' mapping
  size_t storage_bytes_ = 0;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::unique_ptr<SignalWord[]> signals_;  // index = to * signal_words_ + from / 64
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_MAILBOX_H_
