// Unit tests for the session table (src/shard/session_table.h): ids to slots, handles with
// generations, and connection tags bound to slots.
#include "shard/session_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/shared_string.h"
#include "session/session.h"

namespace ringmq::shard {
namespace {

constexpr uint32_t kNone = SessionTable::kNone;

class SessionTableTest : public testing::Test {
 protected:
  uint32_t Create(const std::string& client_id) {
    return table_.Create(client_id, /*clean_session=*/false, limits_);
  }

  session::SessionLimits limits_;
  SessionTable table_;
};

TEST_F(SessionTableTest, FindsASessionByIdAndByHandle) {
  const uint32_t a = Create("a");
  const uint32_t b = Create("b");
  EXPECT_NE(a, b);
  EXPECT_EQ(table_.Find("a"), a);
  EXPECT_EQ(table_.Find("b"), b);
  EXPECT_EQ(table_.Find("c"), kNone);
  EXPECT_EQ(table_.size(), 2u);
  SessionEntry* entry = table_.Find(a, table_[a].generation);
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->session->client_id(), "a");
  EXPECT_EQ(entry->connection, nullptr);
}

// A handle in a mailbox or the trie outlives its session: once the slot holds another session,
// the old handle must reach nothing rather than the newcomer.
TEST_F(SessionTableTest, StaleHandleMissesAfterTheSlotIsReused) {
  const uint32_t a = Create("a");
  const uint32_t old_generation = table_[a].generation;
  table_.Destroy(a);
  EXPECT_EQ(table_.Find("a"), kNone);
  EXPECT_EQ(table_.Find(a, old_generation), nullptr) << "a free slot";
  EXPECT_EQ(table_.size(), 0u);

  const uint32_t b = Create("b");
  EXPECT_EQ(b, a) << "the free slot is reused";
  EXPECT_EQ(table_.slot_count(), 1u);
  EXPECT_NE(table_[b].generation, old_generation);
  EXPECT_EQ(table_.Find(a, old_generation), nullptr) << "a later session in the slot";
  SessionEntry* entry = table_.Find(b, table_[b].generation);
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->session->client_id(), "b");
}

TEST_F(SessionTableTest, HandleBeyondTheSlotsMisses) {
  Create("a");
  EXPECT_EQ(table_.Find(1, 0), nullptr);
  EXPECT_EQ(table_.Find(5000, 0), nullptr);
}

TEST_F(SessionTableTest, DestroyDropsTheAcl) {
  const uint32_t a = Create("a");
  table_[a].acl = std::make_unique<ConnectionAcl>();
  table_.Destroy(a);
  EXPECT_EQ(table_[a].acl, nullptr);
  EXPECT_FALSE(table_[a].session.has_value());
}

// The map's keys view the sessions' own id strings: they must stay valid while the table
// grows by many slots and while other sessions come and go.
TEST_F(SessionTableTest, IdsStayFindableWhileTheTableGrowsAndShrinks) {
  constexpr int kSessions = 2000;
  std::vector<uint32_t> slots;
  for (int i = 0; i < kSessions; ++i) slots.push_back(Create("client-" + std::to_string(i)));
  for (int i = 0; i < kSessions; i += 2) table_.Destroy(slots[i]);
  for (int i = 0; i < kSessions; ++i) {
    const uint32_t found = table_.Find("client-" + std::to_string(i));
    if (i % 2 == 0) {
      EXPECT_EQ(found, kNone) << i;
    } else {
      EXPECT_EQ(found, slots[i]) << i;
    }
  }
  EXPECT_EQ(table_.size(), size_t{kSessions / 2});
  EXPECT_EQ(table_.slot_count(), uint32_t{kSessions});
}

// The Router looks an id up before it creates a session (MQTT-3.1.4-2 takeover); a second
// session with the same id would make Find return either one, so Create refuses it.
TEST_F(SessionTableTest, SecondSessionWithTheSameIdIsAnAssertion) {
  Create("dup");
  EXPECT_DEATH(Create("dup"), "assertion failed");
}

TEST_F(SessionTableTest, TagsBindAndUnbind) {
  const uint32_t a = Create("a");
  EXPECT_EQ(table_.IndexOfTag(3), kNone) << "never bound";
  table_.BindTag(3, a);
  EXPECT_EQ(table_.IndexOfTag(3), a);
  EXPECT_EQ(table_.IndexOfTag(2), kNone);
  table_.BindTag(3, kNone);
  EXPECT_EQ(table_.IndexOfTag(3), kNone);
  table_.BindTag(100, kNone);  // unbinding a tag never bound is no error
  EXPECT_EQ(table_.IndexOfTag(100), kNone);
}

TEST_F(SessionTableTest, SessionSharesTheConnectionsIdStorage) {
  const SharedString id("rb123456-i00001-0");  // longer than std::string's inline 15
  const uint32_t index = table_.Create(id, /*clean_session=*/true, limits_);
  EXPECT_EQ(table_[index].session->client_id().data(), id.view().data());
  EXPECT_EQ(id.use_count(), 2u);
  table_.Destroy(index);
  EXPECT_EQ(id.use_count(), 1u);
}

// One entry per session, online or not: with the shard's connection slot most of what an idle
// connection costs (docs/performance.md, "Memory per idle connection"). 64-bit libstdc++.
TEST(SessionEntrySizeTest, AtMost144Bytes) {
  if (sizeof(void*) != 8) GTEST_SKIP() << "sizes are pinned for 64-bit targets";
  EXPECT_LE(sizeof(SessionEntry), 144u);
  EXPECT_LE(sizeof(session::Session), 112u);
}

}  // namespace
}  // namespace ringmq::shard
