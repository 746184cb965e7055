// The $SYS/broker/... values: computed from the summed counters, published only when changed.
#include "metrics/sys_topics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace ringmq::metrics {
namespace {

std::map<std::string, std::string> AsMap(const SysValues& values) {
  return std::map<std::string, std::string>(values.begin(), values.end());
}

SysSample ExampleSample() {
  SysSample sample;
  sample.total.publish_received_qos0 = 3;
  sample.total.publish_received_qos1 = 2;
  sample.total.publish_received_qos2 = 1;
  sample.total.publish_sent_qos0 = 10;
  sample.total.publish_sent_qos2 = 5;
  sample.total.bytes_received = 1234;
  sample.total.bytes_sent = 4321;
  sample.total.dropped_queue_full = 1;
  sample.total.dropped_bytes_cap = 2;
  sample.total.dropped_offline_qos0 = 4;
  sample.total.mailbox_overflow = 8;
  sample.total.publish_denied = 16;
  sample.total.publish_dropped_sys_topic = 32;
  sample.total.publish_dropped_no_subscribers = 1000;  // not a "dropped" in the $SYS sense
  sample.total.gauges.sessions_offline = 4;
  sample.total.sessions_expired = 3;
  sample.total.gauges.subscriptions = 6;
  sample.total.gauges.inflight_messages = 2;
  sample.total.gauges.queued_messages = 9;
  sample.clients_connected = 5;
  sample.retained_messages = 11;
  sample.uptime_seconds = 42;
  sample.version = "0.1.0";
  return sample;
}

TEST(SysTopicsTest, ValuesFollowMosquittoNames) {
  const auto values = AsMap(AllSysValues(ExampleSample(), 7));
  EXPECT_EQ(values.at("$SYS/broker/version"), "ringmq 0.1.0");
  EXPECT_EQ(values.at("$SYS/broker/uptime"), "42 seconds");
  EXPECT_EQ(values.at("$SYS/broker/clients/connected"), "5");
  EXPECT_EQ(values.at("$SYS/broker/clients/disconnected"), "4");
  EXPECT_EQ(values.at("$SYS/broker/clients/total"), "9");
  EXPECT_EQ(values.at("$SYS/broker/clients/maximum"), "7");
  EXPECT_EQ(values.at("$SYS/broker/clients/expired"), "3");
  EXPECT_EQ(values.at("$SYS/broker/messages/received"), "6");
  EXPECT_EQ(values.at("$SYS/broker/messages/sent"), "15");
  EXPECT_EQ(values.at("$SYS/broker/messages/inflight"), "2");
  EXPECT_EQ(values.at("$SYS/broker/messages/queued"), "9");
  EXPECT_EQ(values.at("$SYS/broker/publish/messages/dropped"), "63");
  EXPECT_EQ(values.at("$SYS/broker/bytes/received"), "1234");
  EXPECT_EQ(values.at("$SYS/broker/bytes/sent"), "4321");
  EXPECT_EQ(values.at("$SYS/broker/subscriptions/count"), "6");
  EXPECT_EQ(values.at("$SYS/broker/retained messages/count"), "11");
  for (const auto& [topic, payload] : values) EXPECT_TRUE(IsSysTopic(topic)) << topic;
}

TEST(SysTopicsTest, NegativeGaugeSumsShowAsZero) {
  // Gauges summed over shards read at slightly different moments may dip below zero briefly.
  SysSample sample;
  sample.total.gauges.subscriptions = -1;
  sample.total.gauges.sessions_offline = -2;
  const auto values = AsMap(AllSysValues(sample, 0));
  EXPECT_EQ(values.at("$SYS/broker/subscriptions/count"), "0");
  EXPECT_EQ(values.at("$SYS/broker/clients/disconnected"), "0");
}

TEST(SysTopicsTest, OnlyChangedValuesAfterTheFirstTime) {
  SysTopics topics;
  SysSample sample = ExampleSample();
  const SysValues first = topics.Changed(sample);
  EXPECT_EQ(first.size(), AllSysValues(sample, 5).size());
  EXPECT_TRUE(topics.Changed(sample).empty());
  sample.uptime_seconds = 52;
  sample.total.bytes_sent = 5000;
  const auto changed = AsMap(topics.Changed(sample));
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed.at("$SYS/broker/uptime"), "52 seconds");
  EXPECT_EQ(changed.at("$SYS/broker/bytes/sent"), "5000");
}

TEST(SysTopicsTest, MaximumIsTheHighestConnectedCountSeen) {
  SysTopics topics;
  SysSample sample;
  sample.clients_connected = 3;
  topics.Changed(sample);
  sample.clients_connected = 8;
  topics.Changed(sample);
  sample.clients_connected = 2;
  const auto values = AsMap(topics.Changed(sample));
  EXPECT_EQ(topics.clients_maximum(), 8u);
  EXPECT_EQ(values.at("$SYS/broker/clients/connected"), "2");
  EXPECT_FALSE(values.count("$SYS/broker/clients/maximum"));  // unchanged since 8
}

TEST(SysTopicsTest, IsSysTopic) {
  EXPECT_TRUE(IsSysTopic("$SYS"));
  EXPECT_TRUE(IsSysTopic("$SYS/"));
  EXPECT_TRUE(IsSysTopic("$SYS/broker/uptime"));
  EXPECT_FALSE(IsSysTopic("$SYSX/a"));
  EXPECT_FALSE(IsSysTopic("$sys/a"));  // topics are case-sensitive
  EXPECT_FALSE(IsSysTopic("a/$SYS/b"));
  EXPECT_FALSE(IsSysTopic("$other/a"));
  EXPECT_FALSE(IsSysTopic(""));
}

}  // namespace
}  // namespace ringmq::metrics
