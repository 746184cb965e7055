// cluster::jetstream: request bodies, API replies and PubAcks, delivery metadata and status
// kinds (jetstream.h; docs.nats.io "JetStream wire API reference", "Consumers").
#include "cluster/jetstream.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmq::cluster::jetstream {
namespace {

TEST(JetStreamTest, StreamCreateHasOneMessagePerSubjectAndTheReplicas) {
  std::string out;
  AppendStreamCreate({.name = "RINGMQ_RETAINED",
                      .subject = "$RINGMQ.retained.t.>",
                      .replicas = 3,
                      .max_msgs_per_subject = 1,
                      .file_storage = true},
                     out);
  EXPECT_EQ(out, R"({"name":"RINGMQ_RETAINED","subjects":["$RINGMQ.retained.t.>"],)"
                 R"("retention":"limits","max_msgs_per_subject":1,"storage":"file",)"
                 R"("num_replicas":3,"discard":"old"})");
}

TEST(JetStreamTest, OrderedConsumerStartsAtTheLastPerSubjectOrAtASequence) {
  std::string out;
  AppendOrderedConsumerCreate({.stream = "S",
                               .deliver_subject = "d.1",
                               .filter_subject = "t.>",
                               .start_sequence = 0,
                               .idle_heartbeat_ms = 1000,
                               .inactive_threshold_ms = 60'000},
                              out);
  EXPECT_EQ(out,
            R"({"stream_name":"S","config":{"deliver_subject":"d.1",)"
            R"("deliver_policy":"last_per_subject","filter_subject":"t.>","ack_policy":"none",)"
            R"("max_deliver":1,"replay_policy":"instant","flow_control":true,)"
            R"("mem_storage":true,"num_replicas":1,"idle_heartbeat":1000000000,)"
            R"("inactive_threshold":60000000000}})");
  out.clear();
  AppendOrderedConsumerCreate({.stream = "S",
                               .deliver_subject = "d.2",
                               .filter_subject = {},
                               .start_sequence = 42,
                               .idle_heartbeat_ms = 5,
                               .inactive_threshold_ms = 1},
                              out);
  EXPECT_NE(out.find(R"("deliver_policy":"by_start_sequence","opt_start_seq":42,)"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("filter_subject"), std::string::npos) << out;
}

TEST(JetStreamTest, NamesAreRestrictedTokens) {
  EXPECT_TRUE(IsValidName("RINGMQ_RETAINED_site-1"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("a.b"));
  EXPECT_FALSE(IsValidName("a*"));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_TRUE(IsValidName(std::string(kNameMaxBytes, 'x')));
  EXPECT_FALSE(IsValidName(std::string(kNameMaxBytes + 1, 'x')));
}

TEST(JetStreamTest, PubAckAndErrorReplies) {
  absl::StatusOr<ApiReply> ack = ParseApiReply(R"({"stream":"S","seq":17,"duplicate":true})");
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_FALSE(ack->has_error);
  EXPECT_EQ(ack->stream, "S");
  EXPECT_EQ(ack->seq, 17u);

  absl::StatusOr<ApiReply> error = ParseApiReply(
      R"({"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,)"
      R"("err_code":10058,"description":"stream name already in use"}})");
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_TRUE(error->has_error);
  EXPECT_EQ(error->error_code, 400);
  EXPECT_EQ(error->error_err_code, kErrStreamNameInUse);
  EXPECT_EQ(error->error_description, "stream name already in use");

  absl::StatusOr<ApiReply> created = ParseApiReply(
      R"({"type":"t","name":"abc","config":{"a":[1,2.5e3,{"b":null}],"c":"x\"y\u00e9"},)"
      R"("created":"2026-12-07T10:00:00Z","flag":true})");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->has_error);
  EXPECT_EQ(created->name, "abc");
}

TEST(JetStreamTest, MalformedRepliesAreErrors) {
  for (const char* bad :
       {"", "[]", "{", R"({"seq":-1})", R"({"seq":"1"})", R"({"a":1,})", R"({"a":tru})",
        R"({"a":"\x"})", R"({} x)", R"({"error":1})", R"({"a":"unterminated)"}) {
    EXPECT_FALSE(ParseApiReply(bad).ok()) << bad;
  }
}

TEST(JetStreamTest, NestingIsBoundedWithoutRecursion) {
  std::string deep = R"({"a":)";
  for (int i = 0; i < kJsonMaxDepth; ++i) deep += "[";
  for (int i = 0; i < kJsonMaxDepth; ++i) deep += "]";
  deep += "}";
  EXPECT_FALSE(ParseApiReply(deep).ok());
  std::string fits = R"({"a":)";
  for (int i = 0; i < kJsonMaxDepth - 2; ++i) fits += "[";
  for (int i = 0; i < kJsonMaxDepth - 2; ++i) fits += "]";
  fits += "}";
  EXPECT_TRUE(ParseApiReply(fits).ok());
}

TEST(JetStreamTest, DeliveryMetadataInBothReplyForms) {
  std::optional<Delivery> v1 = ParseDelivery("$JS.ACK.S.C.1.40.7.1700000000000000000.3");
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(v1->stream, "S");
  EXPECT_EQ(v1->consumer, "C");
  EXPECT_EQ(v1->delivered, 1u);
  EXPECT_EQ(v1->stream_sequence, 40u);
  EXPECT_EQ(v1->consumer_sequence, 7u);
  EXPECT_EQ(v1->pending, 3u);
  std::optional<Delivery> v2 =
      ParseDelivery("$JS.ACK.hub.ACCHASH.S.C.2.41.8.1700000000000000000.0.r4nd");
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(v2->stream, "S");
  EXPECT_EQ(v2->stream_sequence, 41u);
  EXPECT_EQ(v2->consumer_sequence, 8u);
  for (const char* bad :
       {"", "$JS.ACK", "$JS.ACK.S.C.1.x.7.1.0", "$JS.NAK.S.C.1.2.3.4.5", "$JS.ACK.S.C.1.2.3.4.5.6",
        "$JS.ACK..C.1.2.3.4.5", "$JS.ACK.S.C.1.99999999999999999999.3.4.5",
        "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m"}) {
    EXPECT_FALSE(ParseDelivery(bad).has_value()) << bad;
  }
}

TEST(JetStreamTest, StatusKinds) {
  EXPECT_EQ(StatusOf(0, ""), StatusKind::kNone);
  EXPECT_EQ(StatusOf(100, "Idle Heartbeat"), StatusKind::kHeartbeat);
  EXPECT_EQ(StatusOf(100, "FlowControl Request"), StatusKind::kFlowControl);
  EXPECT_EQ(StatusOf(100, "Something"), StatusKind::kOther);
  EXPECT_EQ(StatusOf(409, "Consumer Deleted"), StatusKind::kOther);
}

}  // namespace
}  // namespace ringmq::cluster::jetstream
