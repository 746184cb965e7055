// persist::Journal: group-commit epochs, one I/O in flight with double buffering, short writes,
// kFsync vs kInterval, retries with back-off after -errno, rotation (journal.h).
#include "persist/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace ringmq::persist {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kHeader = kSegmentHeaderBytes;

// A file the journal may own and close (its I/O is simulated by the tests).
SegmentFile NullFile(uint64_t segment = 0) {
  SegmentFile file;
  file.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  EXPECT_GE(file.fd, 0);
  file.size = kHeader;
  file.segment = segment;
  return file;
}

bool FdOpen(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

Record Ack(uint64_t sid, uint16_t packet_id = 1) {
  Record record;
  record.type = RecordType::kPuback;
  record.sid = sid;
  record.packet_id = packet_id;
  return record;
}

Bytes Encode(const std::vector<Record>& records) {
  ByteBuffer out;
  for (const Record& record : records) AppendRecord(out, record);
  return Bytes(out.begin(), out.end());
}

Bytes Of(const Journal::Io& io) { return Bytes(io.bytes.begin(), io.bytes.end()); }

Journal::Options Interval(uint32_t ms) {
  Journal::Options options;
  options.durability = Durability::kInterval;
  options.sync_interval_ms = ms;
  return options;
}

// Completes `io` in full: the write, then its sync if it has one.
void Complete(Journal& journal, const Journal::Io& io, uint64_t now_ms) {
  journal.OnWriteDone(static_cast<int>(io.bytes.size()), now_ms);
  if (io.sync) journal.OnSyncDone(0, now_ms);
}

TEST(JournalTest, FsyncEpochIsDurableOnlyAfterTheSync) {
  Journal journal({});
  journal.Open(NullFile());
  EXPECT_FALSE(journal.has_pending());
  EXPECT_FALSE(journal.NextIo(0).has_value());
  EXPECT_EQ(journal.Append(Ack(1)), 1u);
  EXPECT_EQ(journal.Append(Ack(2)), 1u);
  EXPECT_TRUE(journal.has_pending());
  auto io = journal.NextIo(0);
  ASSERT_TRUE(io.has_value());
  EXPECT_EQ(io->offset, kHeader);
  EXPECT_EQ(Of(*io), Encode({Ack(1), Ack(2)}));
  EXPECT_TRUE(io->sync);
  EXPECT_EQ(io->epoch, 1u);
  EXPECT_EQ(journal.open_epoch(), 2u);
  EXPECT_TRUE(journal.io_in_flight());
  journal.OnWriteDone(static_cast<int>(io->bytes.size()), 1);
  EXPECT_EQ(journal.durable_epoch(), 0u);  // written is not durable under kFsync
  EXPECT_TRUE(journal.io_in_flight());
  journal.OnSyncDone(0, 2);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_EQ(journal.synced_epoch(), 1u);
  EXPECT_FALSE(journal.io_in_flight());
  EXPECT_FALSE(journal.has_pending());
  EXPECT_EQ(journal.pending_bytes(), 0u);
  EXPECT_EQ(journal.syncs(), 1u);
  EXPECT_EQ(journal.bytes_written(), io->bytes.size());
  EXPECT_EQ(journal.file_size(), kHeader + io->bytes.size());
  EXPECT_FALSE(journal.NextIo(3).has_value());
}

TEST(JournalTest, RecordsAppendedDuringAnIoGoIntoTheNextEpoch) {
  Journal journal({});
  journal.Open(NullFile());
  journal.Append(Ack(1));
  auto first = journal.NextIo(0);
  ASSERT_TRUE(first.has_value());
  const Bytes first_bytes = Of(*first);
  EXPECT_EQ(journal.Append(Ack(2)), 2u);
  EXPECT_EQ(journal.Append(Ack(3)), 2u);
  EXPECT_FALSE(journal.NextIo(0).has_value());  // one I/O in flight
  // The in-flight bytes are untouched by the appends (double buffering).
  EXPECT_EQ(Of(*first), first_bytes);
  EXPECT_EQ(journal.pending_bytes(), first_bytes.size() + Encode({Ack(2), Ack(3)}).size());
  Complete(journal, *first, 1);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  auto second = journal.NextIo(1);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->epoch, 2u);
  EXPECT_EQ(second->offset, kHeader + first_bytes.size());
  EXPECT_EQ(Of(*second), Encode({Ack(2), Ack(3)}));
  EXPECT_EQ(journal.Append(Ack(4)), 3u);
  Complete(journal, *second, 2);
  EXPECT_EQ(journal.durable_epoch(), 2u);
  EXPECT_TRUE(journal.has_pending());
}

TEST(JournalTest, ShortWriteContinuesAtTheRightOffset) {
  Journal journal({});
  journal.Open(NullFile());
  for (uint64_t sid = 1; sid <= 4; ++sid) journal.Append(Ack(sid));
  const Bytes all = Encode({Ack(1), Ack(2), Ack(3), Ack(4)});
  auto io = journal.NextIo(0);
  ASSERT_TRUE(io.has_value());
  journal.OnWriteDone(7, 0);
  journal.OnSyncDone(-ECANCELED, 0);  // the kernel cancels the linked sync after a short write
  EXPECT_FALSE(journal.failing());
  EXPECT_EQ(journal.errors(), 0u);
  EXPECT_EQ(journal.durable_epoch(), 0u);
  journal.Append(Ack(5));         // not part of the batch being finished
  auto rest = journal.NextIo(0);  // at once: no back-off
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(rest->offset, kHeader + 7);
  EXPECT_EQ(Of(*rest), Bytes(all.begin() + 7, all.end()));
  EXPECT_TRUE(rest->sync);
  EXPECT_EQ(rest->epoch, 1u);
  // The completions may be reported in either order.
  journal.OnSyncDone(-ECANCELED, 0);
  EXPECT_TRUE(journal.io_in_flight());
  journal.OnWriteDone(3, 0);
  EXPECT_FALSE(journal.io_in_flight());
  auto last = journal.NextIo(0);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->offset, kHeader + 10);
  EXPECT_EQ(Of(*last), Bytes(all.begin() + 10, all.end()));
  Complete(journal, *last, 0);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_EQ(journal.bytes_written(), all.size());
  EXPECT_EQ(journal.file_size(), kHeader + all.size());
  auto next = journal.NextIo(0);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->offset, kHeader + all.size());
  EXPECT_EQ(next->epoch, 2u);
}

TEST(JournalTest, WriteErrorRetriesTheSameBytesWithDoublingBackOff) {
  Journal journal({});
  journal.Open(NullFile());
  journal.Append(Ack(1));
  auto io = journal.NextIo(1000);
  ASSERT_TRUE(io.has_value());
  const Bytes bytes = Of(*io);
  journal.OnWriteDone(-ENOSPC, 1000);
  journal.OnSyncDone(-ECANCELED, 1000);
  EXPECT_TRUE(journal.failing());
  EXPECT_EQ(journal.last_error(), ENOSPC);
  EXPECT_EQ(journal.errors(), 1u);  // the cancelled sync is not a failure of its own
  EXPECT_EQ(journal.durable_epoch(), 0u);
  EXPECT_TRUE(journal.has_pending());
  journal.Append(Ack(2));  // waits behind the retry
  uint64_t now = 1000;
  uint64_t delay = Journal::kRetryMinMs;
  for (int failure = 0; failure < 10; ++failure) {
    EXPECT_FALSE(journal.NextIo(now + delay - 1).has_value()) << failure;
    now += delay;
    auto retry = journal.NextIo(now);
    ASSERT_TRUE(retry.has_value()) << failure;
    EXPECT_EQ(retry->offset, kHeader);
    EXPECT_EQ(Of(*retry), bytes);
    EXPECT_TRUE(retry->sync);
    EXPECT_EQ(retry->epoch, 1u);
    journal.OnWriteDone(-EIO, now);
    journal.OnSyncDone(-ECANCELED, now);
    EXPECT_EQ(journal.durable_epoch(), 0u);
    delay = std::min(delay * 2, Journal::kRetryMaxMs);
  }
  EXPECT_EQ(delay, Journal::kRetryMaxMs);  // the cap was reached within the loop
  EXPECT_EQ(journal.errors(), 11u);
  EXPECT_EQ(journal.last_error(), EIO);
  now += delay;
  auto retry = journal.NextIo(now);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(Of(*retry), bytes);
  Complete(journal, *retry, now);
  EXPECT_FALSE(journal.failing());
  EXPECT_EQ(journal.durable_epoch(), 1u);
  // The back-off starts again from the minimum after a success.
  auto next = journal.NextIo(now);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->offset, kHeader + bytes.size());
  EXPECT_EQ(Of(*next), Encode({Ack(2)}));
  journal.OnWriteDone(-EIO, now);
  journal.OnSyncDone(-ECANCELED, now);
  EXPECT_FALSE(journal.NextIo(now + Journal::kRetryMinMs - 1).has_value());
  EXPECT_TRUE(journal.NextIo(now + Journal::kRetryMinMs).has_value());
}

TEST(JournalTest, SyncErrorRewritesTheWholeBatchAtItsOffset) {
  Journal journal({});
  journal.Open(NullFile());
  journal.Append(Ack(1));
  journal.Append(Ack(2));
  auto io = journal.NextIo(0);
  ASSERT_TRUE(io.has_value());
  const Bytes bytes = Of(*io);
  // A short write, then the rest written but its fdatasync fails: the dirty pages may be gone,
  // so the retry writes every byte of the batch again, from its start.
  journal.OnWriteDone(5, 0);
  journal.OnSyncDone(-ECANCELED, 0);
  auto rest = journal.NextIo(0);
  ASSERT_TRUE(rest.has_value());
  journal.OnWriteDone(static_cast<int>(rest->bytes.size()), 0);
  journal.OnSyncDone(-EIO, 0);
  EXPECT_TRUE(journal.failing());
  EXPECT_EQ(journal.errors(), 1u);
  EXPECT_EQ(journal.durable_epoch(), 0u);
  EXPECT_EQ(journal.syncs(), 0u);
  auto retry = journal.NextIo(Journal::kRetryMinMs);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->offset, kHeader);
  EXPECT_EQ(Of(*retry), bytes);
  Complete(journal, *retry, Journal::kRetryMinMs);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_FALSE(journal.failing());
  EXPECT_EQ(journal.file_size(), kHeader + bytes.size());
  EXPECT_EQ(journal.bytes_written(), 2 * bytes.size());  // the rewrite counts
}

TEST(JournalTest, WriteOfNothingBacksOffInsteadOfSpinning) {
  Journal journal({});
  journal.Open(NullFile());
  journal.Append(Ack(1));
  auto io = journal.NextIo(0);
  ASSERT_TRUE(io.has_value());
  journal.OnWriteDone(0, 0);
  journal.OnSyncDone(-ECANCELED, 0);
  EXPECT_TRUE(journal.failing());
  EXPECT_FALSE(journal.NextIo(0).has_value());
  auto retry = journal.NextIo(Journal::kRetryMinMs);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->offset, kHeader);
}

TEST(JournalTest, IntervalIsDurableOnWriteAndSyncsEveryInterval) {
  Journal journal(Interval(100));
  journal.Open(NullFile());
  EXPECT_EQ(journal.Append(Ack(1)), 1u);
  auto first = journal.NextIo(1000);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->sync);
  journal.OnWriteDone(static_cast<int>(first->bytes.size()), 1000);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_EQ(journal.synced_epoch(), 0u);
  EXPECT_TRUE(journal.has_pending());  // the sync is still due
  // Written but unsynced bytes are kept for a rewrite.
  EXPECT_EQ(journal.pending_bytes(), first->bytes.size());
  EXPECT_FALSE(journal.NextIo(1050).has_value());
  EXPECT_EQ(journal.Append(Ack(2)), 2u);
  auto second = journal.NextIo(1050);
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(second->sync);
  EXPECT_EQ(second->offset, kHeader + first->bytes.size());
  EXPECT_EQ(Of(*second), Encode({Ack(2)}));
  journal.OnWriteDone(static_cast<int>(second->bytes.size()), 1050);
  EXPECT_EQ(journal.durable_epoch(), 2u);
  EXPECT_FALSE(journal.NextIo(1099).has_value());
  // The interval counts from the first write after the last sync: a sync alone is due.
  auto sync = journal.NextIo(1100);
  ASSERT_TRUE(sync.has_value());
  EXPECT_TRUE(sync->sync);
  EXPECT_TRUE(sync->bytes.empty());
  EXPECT_EQ(sync->offset, kHeader + first->bytes.size() + second->bytes.size());
  EXPECT_EQ(sync->epoch, 2u);
  journal.OnWriteDone(0, 1100);
  journal.OnSyncDone(0, 1100);
  EXPECT_EQ(journal.synced_epoch(), 2u);
  EXPECT_EQ(journal.syncs(), 1u);
  EXPECT_FALSE(journal.has_pending());
  EXPECT_FALSE(journal.NextIo(1500).has_value());
  // A write due with the sync carries both.
  journal.Append(Ack(3));
  auto third = journal.NextIo(1500);
  ASSERT_TRUE(third.has_value());
  EXPECT_FALSE(third->sync);
  journal.OnWriteDone(static_cast<int>(third->bytes.size()), 1500);
  journal.Append(Ack(4));
  auto fourth = journal.NextIo(1600);
  ASSERT_TRUE(fourth.has_value());
  EXPECT_TRUE(fourth->sync);
  EXPECT_EQ(Of(*fourth), Encode({Ack(4)}));
  Complete(journal, *fourth, 1600);
  EXPECT_EQ(journal.synced_epoch(), 4u);
  EXPECT_EQ(journal.durable_epoch(), 4u);
  EXPECT_EQ(journal.syncs(), 2u);
}

TEST(JournalTest, IntervalForceSyncSyncsAtOnce) {
  Journal journal(Interval(100));
  journal.Open(NullFile());
  journal.Append(Ack(1));
  auto io = journal.NextIo(0);
  ASSERT_TRUE(io.has_value());
  EXPECT_FALSE(io->sync);
  journal.OnWriteDone(static_cast<int>(io->bytes.size()), 0);
  EXPECT_FALSE(journal.NextIo(1).has_value());
  auto sync = journal.NextIo(1, /*force_sync=*/true);
  ASSERT_TRUE(sync.has_value());
  EXPECT_TRUE(sync->sync);
  Complete(journal, *sync, 1);
  EXPECT_EQ(journal.synced_epoch(), 1u);
}

TEST(JournalTest, IntervalSyncErrorRewritesEveryUnsyncedByte) {
  Journal journal(Interval(100));
  journal.Open(NullFile());
  journal.Append(Ack(1));
  auto first = journal.NextIo(0);
  ASSERT_TRUE(first.has_value());
  journal.OnWriteDone(static_cast<int>(first->bytes.size()), 0);
  journal.Append(Ack(2));
  auto second = journal.NextIo(100);
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->sync);
  journal.OnWriteDone(static_cast<int>(second->bytes.size()), 100);
  journal.OnSyncDone(-EIO, 100);
  EXPECT_TRUE(journal.failing());
  // The write that carried the failed sync does not count; the earlier one stays counted.
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_EQ(journal.synced_epoch(), 0u);
  journal.Append(Ack(3));
  // Both earlier writes again, from the last synced offset, with a sync: the failed
  // fdatasync covered the first write's pages too.
  auto retry = journal.NextIo(100 + Journal::kRetryMinMs);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->offset, kHeader);
  EXPECT_EQ(Of(*retry), Encode({Ack(1), Ack(2)}));
  EXPECT_TRUE(retry->sync);
  Complete(journal, *retry, 100 + Journal::kRetryMinMs);
  EXPECT_FALSE(journal.failing());
  EXPECT_EQ(journal.durable_epoch(), 2u);
  EXPECT_EQ(journal.synced_epoch(), 2u);
  auto next = journal.NextIo(200);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(Of(*next), Encode({Ack(3)}));
  EXPECT_EQ(next->epoch, 3u);
}

TEST(JournalTest, RotationFinishesTheOldSegmentFirst) {
  Journal journal({});
  SegmentFile old_file = NullFile(0);
  const int old_fd = old_file.fd;
  journal.Open(old_file);
  journal.Append(Ack(1));
  auto first = journal.NextIo(0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(journal.Append(Ack(2)), 2u);  // appended before Rotate: the old segment's
  SegmentFile new_file = NullFile(1);
  const int new_fd = new_file.fd;
  journal.Rotate(new_file);
  EXPECT_TRUE(journal.rotating());
  EXPECT_EQ(journal.Append(Ack(3)), 3u);  // the new segment's snapshot
  EXPECT_EQ(journal.file_size(), kHeader);
  Complete(journal, *first, 0);
  EXPECT_EQ(journal.durable_epoch(), 1u);
  EXPECT_FALSE(journal.TakeRotationDone());
  auto tail = journal.NextIo(0);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->fd, old_fd);
  EXPECT_EQ(tail->offset, kHeader + first->bytes.size());
  EXPECT_EQ(Of(*tail), Encode({Ack(2)}));
  EXPECT_EQ(tail->epoch, 2u);
  Complete(journal, *tail, 0);
  EXPECT_EQ(journal.durable_epoch(), 2u);
  EXPECT_TRUE(journal.rotating());
  EXPECT_FALSE(journal.TakeRotationDone());
  auto snapshot = journal.NextIo(0);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->fd, new_fd);
  EXPECT_EQ(snapshot->offset, kHeader);
  EXPECT_EQ(Of(*snapshot), Encode({Ack(3)}));
  EXPECT_EQ(snapshot->epoch, 3u);
  EXPECT_TRUE(FdOpen(old_fd));
  Complete(journal, *snapshot, 0);
  EXPECT_EQ(journal.durable_epoch(), 3u);
  EXPECT_FALSE(journal.rotating());
  EXPECT_FALSE(FdOpen(old_fd));
  EXPECT_TRUE(journal.TakeRotationDone());
  EXPECT_FALSE(journal.TakeRotationDone());  // once
  EXPECT_EQ(journal.file_size(), kHeader + snapshot->bytes.size());
}

TEST(JournalTest, RotationWithNothingOfTheOldSegmentPending) {
  Journal journal({});
  journal.Open(NullFile(0));
  journal.Append(Ack(1));
  auto first = journal.NextIo(0);
  ASSERT_TRUE(first.has_value());
  Complete(journal, *first, 0);
  SegmentFile new_file = NullFile(1);
  const int new_fd = new_file.fd;
  journal.Rotate(new_file);
  EXPECT_TRUE(journal.rotating());
  EXPECT_FALSE(journal.NextIo(0).has_value());  // nothing appended yet: not done either
  EXPECT_FALSE(journal.TakeRotationDone());
  journal.Append(Ack(2));
  auto snapshot = journal.NextIo(0);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->fd, new_fd);
  EXPECT_EQ(snapshot->offset, kHeader);
  Complete(journal, *snapshot, 0);
  EXPECT_TRUE(journal.TakeRotationDone());
}

TEST(JournalTest, IntervalRotationSyncsTheOldSegmentAndWaitsForTheNewOnesSync) {
  Journal journal(Interval(100));
  SegmentFile old_file = NullFile(0);
  const int old_fd = old_file.fd;
  journal.Open(old_file);
  journal.Append(Ack(1));
  auto first = journal.NextIo(0);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->sync);
  journal.OnWriteDone(static_cast<int>(first->bytes.size()), 0);
  journal.Append(Ack(2));
  journal.Rotate(NullFile(1));
  journal.Append(Ack(3));
  // The old segment's unsynced bytes are completed and synced now, not at the interval: later
  // fdatasyncs go to the new fd.
  auto tail = journal.NextIo(1);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->fd, old_fd);
  EXPECT_TRUE(tail->sync);
  EXPECT_EQ(Of(*tail), Encode({Ack(2)}));
  Complete(journal, *tail, 1);
  EXPECT_EQ(journal.synced_epoch(), 2u);
  auto snapshot = journal.NextIo(2);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_FALSE(snapshot->sync);
  Complete(journal, *snapshot, 2);
  EXPECT_EQ(journal.durable_epoch(), 3u);
  // Written is not enough to delete the old segment: the snapshot must be synced.
  EXPECT_FALSE(journal.TakeRotationDone());
  auto sync = journal.NextIo(102);
  ASSERT_TRUE(sync.has_value());
  EXPECT_TRUE(sync->sync);
  Complete(journal, *sync, 102);
  EXPECT_TRUE(journal.TakeRotationDone());
  EXPECT_FALSE(FdOpen(old_fd));
}

TEST(JournalTest, RotationRetriesAFailedOldSegmentWrite) {
  Journal journal({});
  SegmentFile old_file = NullFile(0);
  const int old_fd = old_file.fd;
  journal.Open(old_file);
  journal.Append(Ack(1));
  journal.Rotate(NullFile(1));
  journal.Append(Ack(2));
  auto tail = journal.NextIo(0);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->fd, old_fd);
  journal.OnWriteDone(-ENOSPC, 0);
  journal.OnSyncDone(-ECANCELED, 0);
  auto retry = journal.NextIo(Journal::kRetryMinMs);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->fd, old_fd);
  EXPECT_EQ(retry->offset, kHeader);
  EXPECT_EQ(Of(*retry), Encode({Ack(1)}));
  Complete(journal, *retry, Journal::kRetryMinMs);
  auto snapshot = journal.NextIo(Journal::kRetryMinMs);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_NE(snapshot->fd, old_fd);
  EXPECT_EQ(Of(*snapshot), Encode({Ack(2)}));
  Complete(journal, *snapshot, Journal::kRetryMinMs);
  EXPECT_TRUE(journal.TakeRotationDone());
}

}  // namespace
}  // namespace ringmq::persist
