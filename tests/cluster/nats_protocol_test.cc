// cluster::nats codec: every server verb, every split of the stream, every bound, malformed
// lines, INFO's JSON, header blocks and the encoders' exact bytes (nats_protocol.h; the NATS
// client protocol reference, docs.nats.io "Client Protocol").
#include "cluster/nats_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmq::cluster::nats {
namespace {

// An owning copy of a ServerOp, rendered as one comparable string.
std::string Render(const ServerOp& op) {
  switch (op.kind) {
    case ServerOpKind::kInfo:
      return "INFO " + std::string(op.info_json);
    case ServerOpKind::kPing:
      return "PING";
    case ServerOpKind::kPong:
      return "PONG";
    case ServerOpKind::kOk:
      return "+OK";
    case ServerOpKind::kErr:
      return "-ERR [" + std::string(op.error) + "]";
    case ServerOpKind::kMsg:
      return std::string(op.has_headers ? "HMSG " : "MSG ") + std::string(op.subject) + " " +
             std::to_string(op.sid) + " [" + std::string(op.reply) + "] [" +
             std::string(op.headers) + "] [" + std::string(op.payload) + "]";
  }
  return "?";
}

struct FeedResult {
  std::vector<std::string> ops;
  absl::Status status;
};

FeedResult FeedAll(Parser& parser, std::string_view data) {
  FeedResult result;
  result.status = parser.Feed(data, [&](const ServerOp& op) { result.ops.push_back(Render(op)); });
  return result;
}

// Feeds `data` in pieces of `piece` bytes.
FeedResult FeedPieces(Parser& parser, std::string_view data, size_t piece) {
  FeedResult result;
  for (size_t i = 0; i < data.size() && result.status.ok(); i += piece) {
    result.status = parser.Feed(data.substr(i, piece),
                                [&](const ServerOp& op) { result.ops.push_back(Render(op)); });
  }
  return result;
}

constexpr std::string_view kStream =
    "INFO {\"server_id\":\"S1\",\"max_payload\":1048576}\r\n"
    "PING\r\n"
    "pong\r\n"
    "+OK\r\n"
    "MSG a.b 1 5\r\nhello\r\n"
    "MSG a.b 22 reply.x 0\r\n\r\n"
    "msg\ta.b\t 3  6\r\nhe\r\nlo\r\n"
    "HMSG a.c 4 24 29\r\nNATS/1.0\r\nK: v\r\nX: y\r\n\r\nworld\r\n"
    "HMSG a.c 5 r.1 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    "-ERR 'Permissions Violation for Publish to \"x\"'\r\n";

const std::vector<std::string> kStreamOps = {
    "INFO {\"server_id\":\"S1\",\"max_payload\":1048576}",
    "PING",
    "PONG",
    "+OK",
    "MSG a.b 1 [] [] [hello]",
    "MSG a.b 22 [reply.x] [] []",
    "MSG a.b 3 [] [] [he\r\nlo]",
    "HMSG a.c 4 [] [NATS/1.0\r\nK: v\r\nX: y\r\n\r\n] [world]",
    "HMSG a.c 5 [r.1] [NATS/1.0\r\n\r\n] []",
    "-ERR [Permissions Violation for Publish to \"x\"]",
};

TEST(NatsParser, EveryVerbInOneFeed) {
  Parser parser;
  FeedResult result = FeedAll(parser, kStream);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.ops, kStreamOps);
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(NatsParser, EveryPieceSizeGivesTheSameEvents) {
  for (size_t piece = 1; piece <= kStream.size(); ++piece) {
    Parser parser;
    FeedResult result = FeedPieces(parser, kStream, piece);
    ASSERT_TRUE(result.status.ok()) << "piece " << piece << ": " << result.status;
    EXPECT_EQ(result.ops, kStreamOps) << "piece " << piece;
    EXPECT_EQ(parser.buffered_bytes(), 0u);
  }
}

TEST(NatsParser, EveryTwoWaySplitGivesTheSameEvents) {
  for (size_t split = 0; split <= kStream.size(); ++split) {
    Parser parser;
    FeedResult first = FeedAll(parser, kStream.substr(0, split));
    FeedResult second = FeedAll(parser, kStream.substr(split));
    ASSERT_TRUE(first.status.ok() && second.status.ok()) << split;
    first.ops.insert(first.ops.end(), second.ops.begin(), second.ops.end());
    EXPECT_EQ(first.ops, kStreamOps) << "split " << split;
  }
}

TEST(NatsParser, WholeOperationIsAViewIntoTheCallersBuffer) {
  Parser parser;
  const std::string data = "MSG s 1 3\r\nabc\r\n";
  const char* payload = nullptr;
  ASSERT_TRUE(parser.Feed(data, [&](const ServerOp& op) { payload = op.payload.data(); }).ok());
  EXPECT_EQ(payload, data.data() + 11);
}

TEST(NatsParser, BareLineFeedEndsAControlLine) {
  Parser parser;
  FeedResult result = FeedAll(parser, "PING\nMSG s 1 2\nab\r\n");
  ASSERT_TRUE(result.status.ok());
  EXPECT_EQ(result.ops, (std::vector<std::string>{"PING", "MSG s 1 [] [] [ab]"}));
}

TEST(NatsParser, IncompleteOperationWaits) {
  Parser parser;
  FeedResult result = FeedAll(parser, "MSG s 1 3\r\nab");
  ASSERT_TRUE(result.status.ok());
  EXPECT_TRUE(result.ops.empty());
  EXPECT_EQ(parser.buffered_bytes(), 13u);
  result = FeedAll(parser, "c\r");
  EXPECT_TRUE(result.ops.empty());
  result = FeedAll(parser, "\nPI");
  EXPECT_EQ(result.ops, (std::vector<std::string>{"MSG s 1 [] [] [abc]"}));
  EXPECT_EQ(parser.buffered_bytes(), 2u);
}

// Bound: max_control_line (nats-server's max_control_line, default 4096).
TEST(NatsParser, ControlLineAtTheBoundIsAccepted) {
  Parser parser(64, 1024);
  const std::string line = "-ERR '" + std::string(64 - 7, 'x') + "'";
  ASSERT_EQ(line.size(), 64u);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{100}}) {
    parser.Reset();
    FeedResult result = FeedPieces(parser, line + "\r\n", piece);
    ASSERT_TRUE(result.status.ok()) << piece << result.status;
    EXPECT_EQ(result.ops.size(), 1u);
  }
}

TEST(NatsParser, ControlLineOverTheBoundIsAnError) {
  Parser parser(64, 1024);
  const std::string line = "-ERR '" + std::string(64 - 6, 'x') + "'";
  ASSERT_EQ(line.size(), 65u);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{100}}) {
    parser.Reset();
    FeedResult result = FeedPieces(parser, line + "\r\n", piece);
    EXPECT_FALSE(result.status.ok()) << piece;
    EXPECT_TRUE(result.ops.empty());
  }
}

TEST(NatsParser, EndlessControlLineFailsWithoutWaitingForItsEnd) {
  Parser parser(64, 1024);
  FeedResult result = FeedPieces(parser, std::string(200, 'M'), 1);
  EXPECT_FALSE(result.status.ok());
  EXPECT_LE(parser.buffered_bytes(), 66u);
  parser.Reset();
  EXPECT_FALSE(FeedAll(parser, std::string(200, 'M')).status.ok());
}

// Bound: max_payload (INFO max_payload).
TEST(NatsParser, PayloadAtMaxPayloadIsAcceptedAndOverIsAnError) {
  Parser parser(4096, 8);
  EXPECT_TRUE(FeedAll(parser, "MSG s 1 8\r\n12345678\r\n").status.ok());
  EXPECT_FALSE(FeedAll(parser, "MSG s 1 9\r\n").status.ok());
  parser.Reset();
  EXPECT_FALSE(FeedAll(parser, "HMSG s 1 2 9\r\n").status.ok());
  parser.Reset();
  parser.set_max_payload(9);
  EXPECT_TRUE(FeedAll(parser, "MSG s 1 9\r\n123456789\r\n").status.ok());
}

TEST(NatsParser, AnErrorIsStickyUntilReset) {
  Parser parser;
  EXPECT_FALSE(FeedAll(parser, "BOGUS\r\n").status.ok());
  FeedResult result = FeedAll(parser, "PING\r\n");
  EXPECT_FALSE(result.status.ok());
  EXPECT_TRUE(result.ops.empty());
  parser.Reset();
  EXPECT_EQ(FeedAll(parser, "PING\r\n").ops.size(), 1u);
}

TEST(NatsParser, MalformedLinesAreErrorsWithAReason) {
  const std::vector<std::string> bad = {
      "BOGUS\r\n",
      "\r\n",
      "MSG\r\n",
      "MSG s 1\r\n",
      "MSG s x 3\r\nabc\r\n",
      "MSG s 1 -3\r\n",
      "MSG s 1 3x\r\n",
      "MSG s 1 r extra 3\r\n",
      "MSG s 1 99999999999999999999\r\n",
      "HMSG s 1 3\r\n",
      "HMSG s 1 5 3\r\n",  // header bytes over total
      "HMSG s 1 r x 4 5\r\n",
      "MSG s 1 3\r\nabcXY",  // payload without CRLF
      "PING extra\r\n",
      "PONG x\r\n",
      "+OK x\r\n",
      "INFO\r\n",
      "INFO [1]\r\n",
      "PINGX\r\n",
  };
  for (const std::string& input : bad) {
    Parser parser;
    FeedResult whole = FeedAll(parser, input);
    EXPECT_FALSE(whole.status.ok()) << input;
    EXPECT_TRUE(whole.ops.empty()) << input;
    EXPECT_FALSE(whole.status.message().empty());
    Parser bytewise;
    EXPECT_FALSE(FeedPieces(bytewise, input, 1).status.ok()) << input;
  }
}

TEST(NatsParser, ErrWithoutQuotesKeepsItsText) {
  Parser parser;
  EXPECT_EQ(FeedAll(parser, "-ERR Unknown Protocol Operation\r\n").ops,
            (std::vector<std::string>{"-ERR [Unknown Protocol Operation]"}));
}

TEST(NatsParser, TrailingSpacesAfterArgumentsAreAccepted) {
  Parser parser;
  EXPECT_EQ(FeedAll(parser, "PING \r\nMSG s 1 1 \r\nx\r\n").ops,
            (std::vector<std::string>{"PING", "MSG s 1 [] [] [x]"}));
}

// INFO.
TEST(NatsInfo, ParsesWhatAClientNeeds) {
  absl::StatusOr<ServerInfo> info = ParseServerInfo(
      R"({"server_id":"NCX","server_name":"n1","version":"2.9.20","proto":1,"go":"go1.19",)"
      R"("host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"client_id":7,)"
      R"("auth_required":true,"tls_required":false,"tls_available":true,"nonce":"abc\/d",)"
      R"("cluster":"c1","connect_urls":["127.0.0.1:4223","127.0.0.1:4224"],"jetstream":true,)"
      R"("ldm":true,"ip":"1.2.3.4","xkey":null,"nested":{"a":[1,2.5e3,{"b":[]}],"c":-0.1}})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->server_id, "NCX");
  EXPECT_EQ(info->server_name, "n1");
  EXPECT_EQ(info->version, "2.9.20");
  EXPECT_EQ(info->host, "0.0.0.0");
  EXPECT_EQ(info->port, 4222);
  EXPECT_EQ(info->proto, 1);
  EXPECT_EQ(info->max_payload, 1048576);
  EXPECT_EQ(info->client_id, 7u);
  EXPECT_TRUE(info->headers);
  EXPECT_TRUE(info->auth_required);
  EXPECT_FALSE(info->tls_required);
  EXPECT_TRUE(info->tls_available);
  EXPECT_TRUE(info->jetstream);
  EXPECT_TRUE(info->lame_duck_mode);
  EXPECT_EQ(info->nonce, "abc/d");
  EXPECT_EQ(info->cluster, "c1");
  EXPECT_EQ(info->connect_urls, (std::vector<std::string>{"127.0.0.1:4223", "127.0.0.1:4224"}));
}

TEST(NatsInfo, StringEscapesIncludingGoHtmlEscapesAndSurrogates) {
  absl::StatusOr<ServerInfo> info =
      ParseServerInfo(R"({"server_name":"\u003cx\u0026\u003e \"q\" \\ \n\t\u00e9\ud83d\ude00"})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->server_name, "<x&> \"q\" \\ \n\t\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(NatsInfo, EmptyObjectAndWhitespace) {
  EXPECT_TRUE(ParseServerInfo("{}").ok());
  EXPECT_TRUE(ParseServerInfo(" { \"proto\" : 1 , \"x\" : [ ] } ").ok());
}

TEST(NatsInfo, MalformedJsonIsAnError) {
  for (std::string_view bad : {"",
                               "{",
                               "[]",
                               "{\"a\"}",
                               "{\"a\":}",
                               "{\"a\":1,}",
                               "{\"a\":1} x",
                               "{a:1}",
                               "{\"proto\":\"1\"}",
                               "{\"headers\":1}",
                               "{\"server_id\":1}",
                               "{\"proto\":1.5}",
                               "{\"connect_urls\":\"x\"}",
                               "{\"connect_urls\":[1]}",
                               "{\"x\":tru}",
                               "{\"x\":01}",
                               "{\"x\":\"\\x\"}",
                               "{\"x\":\"\\ud800\"}",
                               "{\"x\":\"\\udc00\"}",
                               "{\"x\":\"a\x01\"}",
                               "{\"x\":[1 2]}",
                               "{\"x\":{\"a\" 1}}",
                               "{\"x\":-}",
                               "{\"x\":1.}",
                               "{\"x\":1e}",
                               "{\"max_payload\":-1}",
                               "{\"max_payload\":99999999999}",
                               "{\"client_id\":-1}",
                               "{\"x\":\"unterminated}"}) {
    EXPECT_FALSE(ParseServerInfo(bad).ok()) << bad;
  }
}

// Bound: kJsonMaxDepth.
TEST(NatsInfo, NestingAtTheBoundIsAcceptedAndDeeperIsAnError) {
  auto nested = [](int depth) {
    return "{\"x\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  EXPECT_TRUE(ParseServerInfo(nested(kJsonMaxDepth)).ok());
  EXPECT_FALSE(ParseServerInfo(nested(kJsonMaxDepth + 1)).ok());
  EXPECT_FALSE(ParseServerInfo("{\"x\":" + std::string(100000, '[')).ok());
}

// Bound: kInfoConnectUrlsMax.
TEST(NatsInfo, ConnectUrlsAtTheBoundAreAcceptedAndMoreIsAnError) {
  auto urls = [](size_t count) {
    std::string json = "{\"connect_urls\":[";
    for (size_t i = 0; i < count; ++i) json += (i ? ",\"h:" : "\"h:") + std::to_string(i) + "\"";
    return json + "]}";
  };
  absl::StatusOr<ServerInfo> info = ParseServerInfo(urls(kInfoConnectUrlsMax));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->connect_urls.size(), kInfoConnectUrlsMax);
  EXPECT_FALSE(ParseServerInfo(urls(kInfoConnectUrlsMax + 1)).ok());
}

// Encoders: exact bytes.
TEST(NatsEncode, ConnectDefaults) {
  std::string out;
  ASSERT_TRUE(AppendConnect(ConnectOptions{}, out).ok());
  EXPECT_EQ(out,
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,"
            "\"lang\":\"ringmq\",\"version\":\"0.1.0\",\"protocol\":1,\"echo\":false,"
            "\"headers\":true,\"no_responders\":true}\r\n");
}

TEST(NatsEncode, ConnectWithCredentialsEscapesJson) {
  std::string out = "X";
  ConnectOptions options;
  options.name = "node \"1\"";
  options.user = "u\\";
  options.pass = "p\n";
  options.auth_token = "t";
  options.tls_required = true;
  ASSERT_TRUE(AppendConnect(options, out).ok());
  EXPECT_EQ(out,
            "XCONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":true,"
            "\"lang\":\"ringmq\",\"version\":\"0.1.0\",\"protocol\":1,\"echo\":false,"
            "\"headers\":true,\"no_responders\":true,\"name\":\"node \\\"1\\\"\","
            "\"user\":\"u\\\\\",\"pass\":\"p\\u000a\",\"auth_token\":\"t\"}\r\n");
  // What we write, our own reader reads back.
  absl::StatusOr<ServerInfo> back = ParseServerInfo(out.substr(9, out.size() - 11));
  EXPECT_TRUE(back.ok()) << back.status();
}

TEST(NatsEncode, PubHpubSubUnsubPingPong) {
  std::string out;
  ASSERT_TRUE(AppendPub("a.b", "", "hello", out).ok());
  ASSERT_TRUE(AppendPub("a.b", "_INBOX.1", "", out).ok());
  std::string block;
  const HeaderField fields[] = {{"Ringmq-Qos", "1"}, {"X", ""}};
  ASSERT_TRUE(AppendHeaderBlock(fields, block).ok());
  EXPECT_EQ(block, "NATS/1.0\r\nRingmq-Qos: 1\r\nX: \r\n\r\n");
  ASSERT_TRUE(AppendHpub("a.b", "", block, "pl", out).ok());
  ASSERT_TRUE(AppendHpub("a.b", "r", "NATS/1.0\r\n\r\n", "", out).ok());
  ASSERT_TRUE(AppendSub("a.*.>", "", 7, out).ok());
  ASSERT_TRUE(AppendSub("a.b", "grp", 18446744073709551615u, out).ok());
  AppendUnsub(7, std::nullopt, out);
  AppendUnsub(8, 10, out);
  AppendPing(out);
  AppendPong(out);
  EXPECT_EQ(out,
            "PUB a.b 5\r\nhello\r\n"
            "PUB a.b _INBOX.1 0\r\n\r\n"
            "HPUB a.b 32 34\r\nNATS/1.0\r\nRingmq-Qos: 1\r\nX: \r\n\r\npl\r\n"
            "HPUB a.b r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
            "SUB a.*.> 7\r\n"
            "SUB a.b grp 18446744073709551615\r\n"
            "UNSUB 7\r\n"
            "UNSUB 8 10\r\n"
            "PING\r\n"
            "PONG\r\n");
}

TEST(NatsEncode, InvalidSubjectsAppendNothing) {
  std::string out = "keep";
  for (std::string_view subject :
       {"", "a b", "a\tb", "a\r", "a\nb", ".a", "a.", "a..b", "a.*", "*", ">", "a.>"}) {
    EXPECT_FALSE(AppendPub(subject, "", "x", out).ok()) << subject;
    EXPECT_FALSE(AppendHpub(subject, "", "NATS/1.0\r\n\r\n", "x", out).ok()) << subject;
  }
  for (std::string_view subject : {"", "a b", "a..b", "a.>.b", ">.a"}) {
    EXPECT_FALSE(AppendSub(subject, "", 1, out).ok()) << subject;
  }
  EXPECT_FALSE(AppendSub("a", "q g", 1, out).ok());
  EXPECT_FALSE(AppendPub("a", "r r", "x", out).ok());
  EXPECT_FALSE(AppendPub(std::string(kSubjectMaxBytes + 1, 'a'), "", "x", out).ok());
  EXPECT_TRUE(ValidateSubject(std::string(kSubjectMaxBytes, 'a'), false).ok());
  EXPECT_FALSE(AppendHpub("a", "", "bad", "x", out).ok());
  EXPECT_EQ(out, "keep");
  // Characters that are plain in NATS subjects (the MQTT mapping's escapes).
  EXPECT_TRUE(ValidateSubject("a//b.c/d.$SYS.x-y_z.*x", false).ok());
}

TEST(NatsEncode, HeaderBlockValidation) {
  std::string out;
  const HeaderField crlf_value[] = {{"K", "a\r\nInjected: 1"}};
  EXPECT_FALSE(AppendHeaderBlock(crlf_value, out).ok());
  const HeaderField lf_value[] = {{"K", "a\n"}};
  EXPECT_FALSE(AppendHeaderBlock(lf_value, out).ok());
  for (std::string_view key : {"", "K:", "K V", "K\r", "K\n"}) {
    const HeaderField field[] = {{key, "v"}};
    EXPECT_FALSE(AppendHeaderBlock(field, out).ok()) << key;
  }
  std::vector<HeaderField> many(kHeaderFieldsMax + 1, HeaderField{"k", "v"});
  EXPECT_FALSE(AppendHeaderBlock(many, out).ok());
  EXPECT_TRUE(out.empty());
  many.pop_back();
  EXPECT_TRUE(AppendHeaderBlock(many, out).ok());
}

TEST(NatsHeaders, ParseRoundTripAndStatus) {
  std::string block;
  const HeaderField fields[] = {{"A", "1"}, {"B", "two words"}, {"A", ""}};
  ASSERT_TRUE(AppendHeaderBlock(fields, block).ok());
  absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(block);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->status, 0);
  EXPECT_EQ(parsed->fields, (std::vector<HeaderField>(std::begin(fields), std::end(fields))));

  parsed = ParseHeaderBlock("NATS/1.0 503\r\n\r\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->status, 503);  // no responders
  parsed = ParseHeaderBlock("NATS/1.0 408 Request Timeout\r\nK: v\r\n\r\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->status, 408);
  EXPECT_EQ(parsed->description, "Request Timeout");
  EXPECT_EQ(parsed->fields.size(), 1u);
  for (std::string_view bad : {"", "HTTP/1.0\r\n\r\n", "NATS/1.0\r\n", "NATS/1.0 5x\r\n\r\n",
                               "NATS/1.0\r\nnocolon\r\n\r\n", "NATS/1.0\r\n: v\r\n\r\n",
                               "NATS/1.0\r\nK: v\r\n\r\nextra", "NATS/1.0\r\nK: v"}) {
    EXPECT_FALSE(ParseHeaderBlock(bad).ok()) << bad;
  }
}

// Bound: kHeaderFieldsMax for a received header block too.
TEST(NatsHeaders, ParseStopsAtTheFieldBound) {
  std::string block = "NATS/1.0\r\n";
  for (size_t i = 0; i < kHeaderFieldsMax; ++i) block += "K: v\r\n";
  absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(block + "\r\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->fields.size(), kHeaderFieldsMax);
  EXPECT_FALSE(ParseHeaderBlock(block + "K: v\r\n\r\n").ok());
}

// What the encoders write, the parser (as a server's MSG/HMSG echo) reads: round trip over
// payload sizes around the split points.
TEST(NatsRoundTrip, HmsgOfEveryPayloadSizeUpTo300) {
  for (size_t size = 0; size <= 300; size += 7) {
    std::string block;
    const std::string size_text = std::to_string(size);
    const HeaderField fields[] = {{"N", size_text}};
    ASSERT_TRUE(AppendHeaderBlock(fields, block).ok());
    const std::string payload(size, 'p');
    const std::string wire = "HMSG s 9 " + std::to_string(block.size()) + " " +
                             std::to_string(block.size() + size) + "\r\n" + block + payload +
                             "\r\n";
    Parser parser;
    FeedResult result = FeedPieces(parser, wire, 3);
    ASSERT_TRUE(result.status.ok());
    ASSERT_EQ(result.ops.size(), 1u);
    EXPECT_EQ(result.ops[0], "HMSG s 9 [] [" + block + "] [" + payload + "]");
  }
}

}  // namespace
}  // namespace ringmq::cluster::nats
