// The ownership record of a persistent session (cluster/session_record.h).
#include "cluster/session_record.h"

#include <gtest/gtest.h>

#include <string>

#include "cluster/jetstream.h"

namespace ringmq::cluster {
namespace {

TEST(SessionRecordTest, BucketNamesAreJetStreamNamesWithThePrefixSanitised) {
  EXPECT_EQ(SessionBucketName(""), "RINGMQ_SESSIONS");
  EXPECT_EQ(SessionBucketName("site1.mqtt"), "RINGMQ_SESSIONS_site1_mqtt");
  EXPECT_TRUE(jetstream::IsValidName("KV_" + SessionBucketName("a.b*c>d e")));
}

TEST(SessionRecordTest, KeysAreTheClientIdInHexSoEveryByteIsAValidKey) {
  std::string subject;
  AppendSessionRecordSubject("RINGMQ_SESSIONS", std::string("a.b\0\xff", 5), subject);
  EXPECT_EQ(subject, "$KV.RINGMQ_SESSIONS.612e6200ff");
  EXPECT_FALSE(HasSessionRecord(""));
  EXPECT_TRUE(HasSessionRecord(std::string(kRecordClientIdMax, 'x')));
  EXPECT_FALSE(HasSessionRecord(std::string(kRecordClientIdMax + 1, 'x')))
      << "the subject would come near max_control_line";
}

TEST(SessionRecordTest, TheBucketIsAKeyValueBucketWithDirectReads) {
  std::string subject;
  AppendSessionBucketCreateSubject("RINGMQ_SESSIONS", subject);
  EXPECT_EQ(subject, "$JS.API.STREAM.CREATE.KV_RINGMQ_SESSIONS");
  std::string body;
  AppendSessionBucketCreate("RINGMQ_SESSIONS", 3, body);
  EXPECT_EQ(body,
            "{\"name\":\"KV_RINGMQ_SESSIONS\",\"subjects\":[\"$KV.RINGMQ_SESSIONS.>\"],"
            "\"retention\":\"limits\",\"max_msgs_per_subject\":1,\"discard\":\"old\","
            "\"storage\":\"file\",\"num_replicas\":3,\"allow_direct\":true,"
            "\"allow_rollup_hdrs\":true,\"deny_delete\":true}");
}

TEST(SessionRecordTest, AReadIsAStreamMessageGetOfTheKeysLastValue) {
  // Not $JS.API.DIRECT.GET: any replica answers that, one behind the leader included.
  std::string subject;
  AppendSessionRecordGetSubject("B", subject);
  EXPECT_EQ(subject, "$JS.API.STREAM.MSG.GET.KV_B");
  std::string body;
  AppendSessionRecordGet("B", "dev", body);
  EXPECT_EQ(body, "{\"last_by_subj\":\"$KV.B.646576\"}");
}

TEST(SessionRecordTest, RecordsRoundTrip) {
  std::string payload;
  EncodeSessionRecord({.node = "node-a", .key = 1733580000123456}, payload);
  EXPECT_EQ(payload, "1 node-a 1733580000123456");
  const std::optional<SessionRecord> record = ParseSessionRecord(payload);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->node, "node-a");
  EXPECT_EQ(record->key, 1733580000123456u);
  payload.clear();
  EncodeSessionRecord({.node = "n", .key = UINT64_MAX}, payload);
  ASSERT_TRUE(ParseSessionRecord(payload).has_value());
  EXPECT_EQ(ParseSessionRecord(payload)->key, UINT64_MAX);
}

TEST(SessionRecordTest, AnythingElseIsRefused) {
  for (const std::string_view bad :
       {"", "1", "1 ", "1 node", "1 node ", "1  5", "2 node 5", "1 no.de 5", "1 node 5x",
        "1 node -5", "1 node 18446744073709551616", "1 node 5 6", "1 no de 5",
        "1 node 123456789012345678901"}) {
    EXPECT_FALSE(ParseSessionRecord(bad).has_value()) << bad;
  }
}

TEST(SessionRecordTest, MessageGetRepliesGiveTheRecordNoneOrAnError) {
  std::string scratch;
  SessionRecord record;
  // "1 node-a 42" in base64, as nats-server 2.9 answers.
  EXPECT_EQ(ParseSessionRecordReply(
                "{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\",\"message\":"
                "{\"subject\":\"$KV.B.646576\",\"seq\":12,\"data\":\"MSBub2RlLWEgNDI=\","
                "\"time\":\"2026-12-07T17:00:00Z\"}}",
                scratch, record),
            RecordRead::kFound);
  EXPECT_EQ(record.node, "node-a");
  EXPECT_EQ(record.key, 42u);
  EXPECT_EQ(ParseSessionRecordReply("{\"type\":\"t\",\"error\":{\"code\":404,\"err_code\":"
                                    "10037,\"description\":\"no message found\"}}",
                                    scratch, record),
            RecordRead::kNone);
  // A delete or purge marker has headers and no data.
  EXPECT_EQ(ParseSessionRecordReply("{\"message\":{\"subject\":\"s\",\"seq\":13}}", scratch,
                                    record),
            RecordRead::kNone);
  for (const std::string_view bad :
       {"", "{", "[]", "{\"error\":{\"code\":503,\"err_code\":10039}}", "{\"seq\":1}",
        "{\"message\":{\"data\":\"not base64!\"}}",
        "{\"message\":{\"data\":\"MiBub2RlLWEgNDI=\"}}" /* "2 node-a 42" */,
        "{\"message\":{\"data\":5}}"}) {
    EXPECT_EQ(ParseSessionRecordReply(bad, scratch, record), RecordRead::kError) << bad;
  }
  // Over kRecordValueMax: refused before decoding.
  const std::string long_value = "{\"message\":{\"data\":\"" + std::string(400, 'A') + "\"}}";
  EXPECT_EQ(ParseSessionRecordReply(long_value, scratch, record), RecordRead::kError);
}

}  // namespace
}  // namespace ringmq::cluster
