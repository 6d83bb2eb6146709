// Every malformed-message class (docs/security.md, "Validation") sent over
// the wire to HQ and to an aggregator, as an authenticated peer would: each
// is refused with the right code and a message naming the field, counted,
// leaves HQ's weights bit-identical (pulled and compared), and the server
// serves the next good client.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/testing/wait_for.h"
#include "tests/served_tiers.h"

namespace hips {
namespace {

constexpr char kToken[] = "validation-test-cluster-token";
constexpr int kFloats = ServedTiers::kFloats;
constexpr int kMaxWorkers = 8;
constexpr int64_t kMaxBatchSamples = 1000;

SecurityOptions Tokens() {
  SecurityOptions s;
  s.cluster_token = kToken;
  s.admin_token = "validation-test-admin-token";
  return s;
}

void Prepare(grpc::ClientContext* ctx, const std::string& token = kToken) {
  Authenticate(ctx, token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
}

std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// Top-k entries: uint32 index, then float32 value.
std::string TopK(const std::vector<std::pair<uint32_t, float>>& entries) {
  std::string out;
  for (const auto& [index, value] : entries) {
    out.append(reinterpret_cast<const char*>(&index), 4);
    out.append(reinterpret_cast<const char*>(&value), 4);
  }
  return out;
}

// A push stream: the header travels with the first chunk.
template <typename Chunk>
grpc::Status Send(std::unique_ptr<grpc::ClientWriter<Chunk>> writer,
                  const std::vector<Chunk>& chunks) {
  for (const Chunk& c : chunks) {
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

class ValidationTest : public ::testing::Test {
 protected:
  ValidationTest()
      : tiers_(Tokens(), Tokens(), [](ParameterServerOptions* hq, AggregatorOptions* agg) {
          hq->max_workers = kMaxWorkers;
          hq->max_batch_samples = kMaxBatchSamples;
          agg->max_batch_samples = kMaxBatchSamples;
        }) {
    // agg-0 serves two workers: one that sends non-finite values is not
    // the whole run diverging (docs/faults.md).
    HeartbeatRequestData hb;
    hb.member = "agg-0";
    hb.incarnation = 1;
    hb.live_workers = {"worker-0", "worker-1"};
    EXPECT_TRUE(tiers_.parameter_server().Heartbeat(hb).ok());
    hq_ = v1::Hq::NewStub(CreateHipsChannel(tiers_.hq_address()));
    aggregator_ = v1::Aggregator::NewStub(CreateHipsChannel(tiers_.aggregator_address()));
  }

  // A good aggregate: one worker's gradient of one sample.
  std::vector<v1::AggregateChunk> GoodAggregate() {
    v1::AggregateChunk c;
    v1::AggregateHeader* h = c.mutable_header();
    h->set_aggregator_id("agg-0");
    h->set_version(0);
    h->set_total_samples(1);
    h->set_contributor_count(1);
    h->set_num_floats(kFloats);
    h->set_sequence(++sequence_);
    h->set_encoding(v1::ENCODING_FP32);
    v1::Contributor* w = h->add_contributors();
    w->set_worker_id("worker-0");
    w->set_sequence(sequence_);
    c.set_data(Bytes({1, 1, 1, 1}));
    return {c};
  }
  std::vector<v1::GradientChunk> GoodGradient() {
    v1::GradientChunk c;
    v1::GradientHeader* h = c.mutable_header();
    h->set_sender_id("worker-0");
    h->set_version(0);
    h->set_sample_count(2);
    h->set_num_floats(kFloats);
    h->set_sequence(++sequence_);
    h->set_encoding(v1::ENCODING_FP32);
    c.set_data(Bytes({1, 2, 3, 4}));
    return {c};
  }

  grpc::Status PushAggregate(const std::vector<v1::AggregateChunk>& chunks) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PushAck ack;
    return Send(hq_->PushAggregate(&ctx, &ack), chunks);
  }
  grpc::Status PushGradient(const std::vector<v1::GradientChunk>& chunks) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PushAck ack;
    return Send(aggregator_->PushGradient(&ctx, &ack), chunks);
  }

  // HQ's weights as they travel: version and every data byte.
  std::string PullHq() {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PullWeightsRequest req;
    req.set_requester_id("agg-0");
    req.set_no_wait(true);
    auto reader = hq_->PullWeights(&ctx, req);
    v1::WeightsChunk chunk;
    std::string bytes;
    while (reader->Read(&chunk)) {
      if (chunk.has_header()) bytes += absl::StrCat("version ", chunk.header().version(), ":");
      bytes += chunk.data();
    }
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return bytes;
  }

  ServedTiers tiers_;
  std::unique_ptr<v1::Hq::Stub> hq_;
  std::unique_ptr<v1::Aggregator::Stub> aggregator_;
  int64_t sequence_ = 0;
};

struct Case {
  std::string name;
  grpc::StatusCode code;
  std::string field;  // what the message must name
};

TEST_F(ValidationTest, HqRefusesEveryMalformedAggregateAndKeepsItsWeights) {
  using Mutation = std::function<void(std::vector<v1::AggregateChunk>*)>;
  auto header = [](std::vector<v1::AggregateChunk>* c) { return (*c)[0].mutable_header(); };
  const std::vector<std::pair<Case, Mutation>> cases = {
      {{"an id with a space", grpc::INVALID_ARGUMENT, "aggregator_id"},
       [&](auto* c) { header(c)->set_aggregator_id("agg 0"); }},
      {{"an id of 129 characters", grpc::INVALID_ARGUMENT, "aggregator_id"},
       [&](auto* c) { header(c)->set_aggregator_id(std::string(129, 'a')); }},
      {{"a contributor id with a newline", grpc::INVALID_ARGUMENT, "contributors.worker_id"},
       [&](auto* c) { header(c)->mutable_contributors(0)->set_worker_id("w\n0"); }},
      {{"an unknown encoding", grpc::INVALID_ARGUMENT, "encoding"},
       [&](auto* c) { header(c)->set_encoding(static_cast<v1::Encoding>(99)); }},
      {{"num_floats not the layout's", grpc::INVALID_ARGUMENT, "num_floats"},
       [&](auto* c) {
         header(c)->set_num_floats(kFloats + 1);
         (*c)[0].set_data(Bytes({1, 1, 1, 1, 1}));
       }},
      {{"a partial element", grpc::INVALID_ARGUMENT, "data"},
       [&](auto* c) {
         (*c)[0].set_data(Bytes({1, 1, 1, 1}).substr(0, 15));
       }},
      {{"fewer bytes than announced", grpc::INVALID_ARGUMENT, "data"},
       [&](auto* c) {
         (*c)[0].set_data(Bytes({1, 1, 1}));
       }},
      {{"more bytes than announced", grpc::INVALID_ARGUMENT, "data"},
       [&](auto* c) {
         (*c)[0].set_data(Bytes({1, 1, 1, 1, 1}));
       }},
      {{"no header", grpc::INVALID_ARGUMENT, "header:"}, [&](auto* c) { (*c)[0].clear_header(); }},
      {{"a top-k index out of range", grpc::INVALID_ARGUMENT, "data: top-k index"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_TOPK);
         header(c)->set_nonzeros(1);
         (*c)[0].set_data(TopK({{kFloats, 1.0f}}));
       }},
      {{"top-k indices not increasing", grpc::INVALID_ARGUMENT, "data: top-k index"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_TOPK);
         header(c)->set_nonzeros(2);
         (*c)[0].set_data(TopK({{2, 1.0f}, {2, 1.0f}}));
       }},
      {{"more top-k entries than floats", grpc::INVALID_ARGUMENT, "nonzeros"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_TOPK);
         header(c)->set_nonzeros(kFloats + 1);
       }},
      {{"zero samples", grpc::INVALID_ARGUMENT, "total_samples"},
       [&](auto* c) { header(c)->set_total_samples(0); }},
      {{"negative samples", grpc::INVALID_ARGUMENT, "total_samples"},
       [&](auto* c) { header(c)->set_total_samples(-5); }},
      {{"more samples than --max_batch_samples allows", grpc::INVALID_ARGUMENT,
        "--max_batch_samples"},
       [&](auto* c) { header(c)->set_total_samples(kMaxBatchSamples + 1); }},
      {{"more samples than its edge rounds' pushes allow", grpc::INVALID_ARGUMENT,
        "--max_batch_samples"},
       [&](auto* c) {
         header(c)->set_edge_pushes(2);
         header(c)->set_total_samples(3 * kMaxBatchSamples + 1);
       }},
      {{"negative edge pushes", grpc::INVALID_ARGUMENT, "edge_pushes"},
       [&](auto* c) { header(c)->set_edge_pushes(-1); }},
      {{"fewer samples than contributors", grpc::INVALID_ARGUMENT, "total_samples"},
       [&](auto* c) {
         header(c)->set_contributor_count(2);
         header(c)->clear_contributors();
       }},
      {{"more contributors than --max_workers", grpc::INVALID_ARGUMENT, "--max_workers"},
       [&](auto* c) {
         header(c)->set_contributor_count(kMaxWorkers + 1);
         header(c)->set_total_samples(kMaxWorkers + 1);
         header(c)->clear_contributors();
       }},
      {{"a contributor list of another length", grpc::INVALID_ARGUMENT, "contributors"},
       [&](auto* c) {
         header(c)->set_contributor_count(2);
         header(c)->set_total_samples(2);
       }},
      {{"a contributor listed twice", grpc::INVALID_ARGUMENT, "twice"},
       [&](auto* c) {
         header(c)->set_contributor_count(2);
         header(c)->set_total_samples(2);
         *header(c)->add_contributors() = header(c)->contributors(0);
       }},
      {{"a negative sequence", grpc::INVALID_ARGUMENT, "sequence"},
       [&](auto* c) { header(c)->set_sequence(-1); }},
      {{"a negative HQ incarnation", grpc::INVALID_ARGUMENT, "hq_incarnation"},
       [&](auto* c) { header(c)->set_hq_incarnation(-1); }},
      {{"a negative sender incarnation", grpc::INVALID_ARGUMENT, "sender_incarnation"},
       [&](auto* c) { header(c)->set_sender_incarnation(-1); }},
      {{"a contributor of a negative incarnation", grpc::INVALID_ARGUMENT, "incarnation"},
       [&](auto* c) { header(c)->mutable_contributors(0)->set_incarnation(-2); }},
      {{"a non-finite loss", grpc::INVALID_ARGUMENT, "loss_sum"},
       [&](auto* c) { header(c)->set_loss_sum(std::numeric_limits<double>::infinity()); }},
      {{"a NaN value", grpc::INVALID_ARGUMENT, "data: non-finite"},
       [&](auto* c) {
         (*c)[0].set_data(Bytes({1, std::nanf(""), 1, 1}));
       }},
      {{"an infinite fp16 value", grpc::INVALID_ARGUMENT, "data: non-finite"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_FP16);
         const uint16_t halves[kFloats] = {0x3c00, 0x7c00, 0x3c00, 0x3c00};  // 1, inf, 1, 1
         (*c)[0].set_data(std::string(reinterpret_cast<const char*>(halves), sizeof(halves)));
       }},
      {{"a version HQ has not published", grpc::FAILED_PRECONDITION, "version"},
       [&](auto* c) {
         header(c)->set_version(99);
         header(c)->mutable_contributors(0)->set_version(99);
       }},
  };
  const std::string before = PullHq();
  for (const auto& [expect, mutate] : cases) {
    std::vector<v1::AggregateChunk> chunks = GoodAggregate();
    mutate(&chunks);
    const grpc::Status s = PushAggregate(chunks);
    EXPECT_EQ(s.error_code(), expect.code) << expect.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(expect.field), std::string::npos)
        << expect.name << ": " << s.error_message();
    EXPECT_EQ(PullHq(), before) << expect.name << " changed HQ's weights";
  }
  // Every refusal counted, by reason; nothing of it applied.
  const ParameterServerStatus s = tiers_.parameter_server().status();
  EXPECT_EQ(s.aggregates_dropped.at("invalid"), static_cast<int64_t>(cases.size()) - 4);
  EXPECT_EQ(s.aggregates_dropped.at("non_finite"), 3);  // loss, NaN, fp16 infinity
  EXPECT_EQ(s.aggregates_dropped.at("future_version"), 1);
  EXPECT_EQ(s.aggregates_applied, 0);
  EXPECT_EQ(s.version, 0);
  // The next good client is served.
  const grpc::Status good = PushAggregate(GoodAggregate());
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(tiers_.parameter_server().status().version, 1);
  EXPECT_NE(PullHq(), before);
}

TEST_F(ValidationTest, AnAggregatorRefusesEveryMalformedGradient) {
  using Mutation = std::function<void(std::vector<v1::GradientChunk>*)>;
  auto header = [](std::vector<v1::GradientChunk>* c) { return (*c)[0].mutable_header(); };
  const std::vector<std::pair<Case, Mutation>> cases = {
      {{"an id with a slash", grpc::INVALID_ARGUMENT, "sender_id"},
       [&](auto* c) { header(c)->set_sender_id("../worker-0"); }},
      {{"an empty id", grpc::INVALID_ARGUMENT, "sender_id"},
       [&](auto* c) { header(c)->set_sender_id(""); }},
      {{"an unknown encoding", grpc::INVALID_ARGUMENT, "encoding"},
       [&](auto* c) { header(c)->set_encoding(static_cast<v1::Encoding>(7)); }},
      {{"num_floats not the layout's", grpc::INVALID_ARGUMENT, "num_floats"},
       [&](auto* c) { header(c)->set_num_floats(kFloats - 1); }},
      {{"a partial element", grpc::INVALID_ARGUMENT, "data"},
       [&](auto* c) { (*c)[0].set_data(std::string(6, '\0')); }},
      {{"more bytes than announced", grpc::INVALID_ARGUMENT, "data"},
       [&](auto* c) {
         v1::GradientChunk more;
         more.set_data(Bytes({1}));
         c->push_back(more);
       }},
      {{"zero samples", grpc::INVALID_ARGUMENT, "sample_count"},
       [&](auto* c) { header(c)->set_sample_count(0); }},
      {{"more samples than --max_batch_samples allows", grpc::INVALID_ARGUMENT,
        "--max_batch_samples"},
       [&](auto* c) { header(c)->set_sample_count(kMaxBatchSamples + 1); }},
      {{"a negative step", grpc::INVALID_ARGUMENT, "step"},
       [&](auto* c) { header(c)->set_step(-3); }},
      {{"a negative edge round", grpc::INVALID_ARGUMENT, "edge_round"},
       [&](auto* c) { header(c)->set_edge_round(-1); }},
      {{"an edge round beyond any --edge_rounds", grpc::INVALID_ARGUMENT, "edge_round"},
       [&](auto* c) { header(c)->set_edge_round(1000); }},
      {{"a negative version", grpc::INVALID_ARGUMENT, "version"},
       [&](auto* c) { header(c)->set_version(-1); }},
      {{"a negative HQ incarnation", grpc::INVALID_ARGUMENT, "hq_incarnation"},
       [&](auto* c) { header(c)->set_hq_incarnation(-1); }},
      {{"a negative sender incarnation", grpc::INVALID_ARGUMENT, "sender_incarnation"},
       [&](auto* c) { header(c)->set_sender_incarnation(-1); }},
      {{"an infinite value", grpc::INVALID_ARGUMENT, "data: non-finite"},
       [&](auto* c) {
         (*c)[0].set_data(Bytes({1, INFINITY, 1, 1}));
       }},
      {{"a bf16 NaN", grpc::INVALID_ARGUMENT, "data: non-finite"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_BF16);
         const uint16_t halves[kFloats] = {0x3f80, 0x3f80, 0x7fc0, 0x3f80};  // 1, 1, NaN, 1
         (*c)[0].set_data(std::string(reinterpret_cast<const char*>(halves), sizeof(halves)));
       }},
      {{"a top-k index out of range", grpc::INVALID_ARGUMENT, "data: top-k index"},
       [&](auto* c) {
         header(c)->set_encoding(v1::ENCODING_TOPK);
         header(c)->set_nonzeros(1);
         (*c)[0].set_data(TopK({{1u << 31, 1.0f}}));
       }},
  };
  for (const auto& [expect, mutate] : cases) {
    std::vector<v1::GradientChunk> chunks = GoodGradient();
    mutate(&chunks);
    const grpc::Status s = PushGradient(chunks);
    EXPECT_EQ(s.error_code(), expect.code) << expect.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(expect.field), std::string::npos)
        << expect.name << ": " << s.error_message();
  }
  const AggregatorCounters c = tiers_.aggregator().counters();
  EXPECT_EQ(c.gradients_dropped.at("invalid"), static_cast<int64_t>(cases.size()) - 2);
  EXPECT_EQ(c.gradients_dropped.at("non_finite"), 2);  // the infinity, the bf16 NaN
  EXPECT_EQ(c.gradients_accepted, 0);
  // Heartbeats and pulls are checked too.
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::HeartbeatRequest req;
    req.set_member_id("worker 0");
    v1::HeartbeatReply reply;
    const grpc::Status s = aggregator_->Heartbeat(&ctx, req, &reply);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("member_id"), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PullWeightsRequest req;
    req.set_requester_id(std::string(200, 'w'));
    req.set_no_wait(true);
    auto reader = aggregator_->PullWeights(&ctx, req);
    v1::WeightsChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("requester_id"), std::string::npos) << s.error_message();
  }
  // The next good client is served.
  const grpc::Status good = PushGradient(GoodGradient());
  EXPECT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(tiers_.aggregator().counters().gradients_accepted, 1);
}

// Limits (docs/security.md): a server full of streams refuses one more, and
// a push that stalls mid-way is cancelled with its partial data dropped.
class LimitsTest : public ::testing::Test {
 protected:
  static ServeLimits Limits() {
    ServeLimits l;
    l.max_streams = 2;
    l.stream_idle = absl::Milliseconds(300);
    return l;
  }
  explicit LimitsTest(const SecurityOptions& aggregator = Tokens(),
                      const ServeLimits& limits = Limits())
      : tiers_(Tokens(), aggregator, nullptr, limits) {
    aggregator_ = v1::Aggregator::NewStub(CreateHipsChannel(tiers_.aggregator_address()));
  }

  // The first half of a gradient's data, the stream left open.
  struct OpenPush {
    grpc::ClientContext ctx;
    v1::PushAck ack;
    std::unique_ptr<grpc::ClientWriter<v1::GradientChunk>> writer;
  };
  std::unique_ptr<OpenPush> StartPush(const std::string& sender, int64_t sequence,
                                      const std::string& token = kToken) {
    auto p = std::make_unique<OpenPush>();
    Prepare(&p->ctx, token);
    p->writer = aggregator_->PushGradient(&p->ctx, &p->ack);
    v1::GradientChunk c;
    v1::GradientHeader* h = c.mutable_header();
    h->set_sender_id(sender);
    h->set_sample_count(1);
    h->set_num_floats(kFloats);
    h->set_sequence(sequence);
    c.set_data(Bytes({1, 2}));
    p->writer->Write(c);
    return p;
  }
  grpc::Status Complete(OpenPush* p) {
    v1::GradientChunk rest;
    rest.set_data(Bytes({3, 4}));
    p->writer->Write(rest);
    p->writer->WritesDone();
    return p->writer->Finish();
  }

  ServedTiers tiers_;
  std::unique_ptr<v1::Aggregator::Stub> aggregator_;
};

TEST_F(LimitsTest, AFullServerRefusesAnotherStream) {
  std::unique_ptr<OpenPush> a = StartPush("worker-0", 1);
  std::unique_ptr<OpenPush> b = StartPush("worker-1", 1);
  // Both are open at the server before the third arrives.
  WaitFor([&] { return tiers_.aggregator_streams().open() >= 2; }, absl::Seconds(2));
  ASSERT_EQ(tiers_.aggregator_streams().open(), 2);
  std::unique_ptr<OpenPush> c = StartPush("worker-2", 1);
  const grpc::Status third = Complete(c.get());
  EXPECT_EQ(third.error_code(), grpc::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_NE(third.error_message().find("--max_streams"), std::string::npos);
  EXPECT_TRUE(Complete(a.get()).ok());
  EXPECT_TRUE(Complete(b.get()).ok());
  EXPECT_EQ(tiers_.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"resource_exhausted", 1}}));
  // Room again once they are done (a slot is released when gRPC destroys the
  // call's reactor, which may be just after the client saw its status).
  WaitFor([&] { return tiers_.aggregator_streams().open() == 0; }, absl::Seconds(10));
  ASSERT_EQ(tiers_.aggregator_streams().open(), 0);
  std::unique_ptr<OpenPush> d = StartPush("worker-2", 2);
  EXPECT_TRUE(Complete(d.get()).ok());
  EXPECT_EQ(tiers_.aggregator().counters().gradients_accepted, 3);
}

// One member may hold --max_streams_per_member streams open: a home cannot
// fill a server alone, and the others are still served.
class MemberLimitsTest : public LimitsTest {
 protected:
  static MemberKeyPair Keys() {
    static const MemberKeyPair* keys = new MemberKeyPair(*NewMemberKeyPair());
    return *keys;
  }
  static SecurityOptions Members() {
    SecurityOptions s = Tokens();
    s.member_key = Keys().public_key;
    return s;
  }
  static ServeLimits PerMember() {
    ServeLimits l;
    l.max_streams = 8;
    l.max_streams_per_member = 2;
    return l;
  }
  static std::string TokenOf(const std::string& id) {
    return *IssueMemberToken(Keys().secret_key, id, MemberRole::kWorker);
  }
  MemberLimitsTest() : LimitsTest(Members(), PerMember()) {}
};

TEST_F(MemberLimitsTest, AMemberHoldsAtMostItsShareOfStreams) {
  const std::string home = TokenOf("worker-0");
  std::unique_ptr<OpenPush> a = StartPush("worker-0", 1, home);
  std::unique_ptr<OpenPush> b = StartPush("worker-0", 2, home);
  WaitFor([&] { return tiers_.aggregator_streams().open() >= 2; }, absl::Seconds(2));
  ASSERT_EQ(tiers_.aggregator_streams().open(), 2);
  std::unique_ptr<OpenPush> c = StartPush("worker-0", 3, home);
  const grpc::Status third = Complete(c.get());
  EXPECT_EQ(third.error_code(), grpc::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_NE(third.error_message().find("--max_streams_per_member"), std::string::npos)
      << third.error_message();
  // Another home is served meanwhile.
  std::unique_ptr<OpenPush> other = StartPush("worker-1", 1, TokenOf("worker-1"));
  EXPECT_TRUE(Complete(other.get()).ok());
  EXPECT_TRUE(Complete(a.get()).ok());
  EXPECT_TRUE(Complete(b.get()).ok());
  EXPECT_EQ(tiers_.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"resource_exhausted", 1}}));
  // Its streams done, the home may open new ones.
  WaitFor([&] { return tiers_.aggregator_streams().open() == 0; }, absl::Seconds(10));
  std::unique_ptr<OpenPush> d = StartPush("worker-0", 4, home);
  EXPECT_TRUE(Complete(d.get()).ok());
  EXPECT_EQ(tiers_.aggregator().counters().gradients_accepted, 4);
}

TEST_F(LimitsTest, AStalledPushIsCancelledAndItsPartialDataDropped) {
  std::unique_ptr<OpenPush> stalled = StartPush("worker-0", 1);
  // The client sends nothing more and keeps the stream open; the server
  // cancels the call after --stream_idle_ms (bounded wait: 10 s).
  WaitFor([&] { return tiers_.aggregator_streams().stalled() > 0; }, absl::Seconds(10));
  ASSERT_EQ(tiers_.aggregator_streams().stalled(), 1);
  stalled->writer->WritesDone();
  const grpc::Status s = stalled->writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::CANCELLED) << s.error_message();
  EXPECT_EQ(tiers_.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"deadline_exceeded", 1}}));
  const AggregatorCounters c = tiers_.aggregator().counters();
  EXPECT_EQ(c.gradients_received, 0);  // nothing of it was taken in
  EXPECT_EQ(c.gradients_accepted, 0);
  // The next client is served.
  std::unique_ptr<OpenPush> next = StartPush("worker-0", 2);
  EXPECT_TRUE(Complete(next.get()).ok());
  EXPECT_EQ(tiers_.aggregator().counters().gradients_accepted, 1);
}

// A push whose upload is whole but whose answer waits (an aggregator
// acknowledges once HQ answered, after a round of a second) is not idle:
// the watchdog of --stream_idle_ms=300 leaves it alone, and the worker
// uploads it once.
TEST(StreamIdleTest, WaitingForTheAcknowledgementIsNotIdleness) {
  ServeLimits limits;
  limits.stream_idle = absl::Milliseconds(300);
  ServedTiers tiers(
      Tokens(), Tokens(),
      [](ParameterServerOptions*, AggregatorOptions* agg) { agg->ack_after_hq = true; }, limits);
  absl::Notification round_closed;
  tiers.upstream().SetPushHandler([&](const AggregatePush& a) -> absl::StatusOr<PushResult> {
    // HQ's round takes a while (bounded: the test closes it).
    round_closed.WaitForNotificationWithTimeout(absl::Seconds(20));
    return PushResult{a.version, false, a.version + 1};
  });
  auto aggregator = v1::Aggregator::NewStub(CreateHipsChannel(tiers.aggregator_address()));
  grpc::Status pushed;
  std::thread worker([&] {
    v1::GradientChunk c;
    v1::GradientHeader* h = c.mutable_header();
    h->set_sender_id("worker-0");
    h->set_sample_count(1);
    h->set_num_floats(kFloats);
    h->set_sequence(1);
    c.set_data(Bytes({1, 2, 3, 4}));
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PushAck ack;
    pushed = Send(aggregator->PushGradient(&ctx, &ack), std::vector{c});
  });
  // The aggregate is at HQ; the push waits for its answer for a second,
  // more than three idle periods.
  ASSERT_TRUE(tiers.upstream().WaitForPushes(1, absl::Seconds(10)));
  WaitFor([&] { return tiers.aggregator_streams().stalled() > 0; }, absl::Seconds(1));
  EXPECT_EQ(tiers.aggregator_streams().stalled(), 0);
  round_closed.Notify();
  worker.join();
  EXPECT_TRUE(pushed.ok()) << pushed.error_message();
  // Uploaded once, forwarded once.
  EXPECT_EQ(tiers.aggregator().counters().gradients_received, 1);
  EXPECT_EQ(tiers.aggregator().counters().gradients_forwarded, 1);
  EXPECT_EQ(tiers.upstream().push_count(), 1u);
  EXPECT_TRUE(tiers.aggregator_refusals().empty());
}

// An aggregator whose --max_batch_samples is larger than HQ's: HQ refuses
// its aggregates, and each refusal ends its part of the round (HQ does not
// wait for an aggregate that will not come): every version moves on,
// nothing applied, each refusal counted.
TEST(RefusalsSettleTest, HqsSmallerMaxBatchSamplesRefusesAndTheVersionStillMovesOn) {
  ServedTiers tiers(Tokens(), Tokens(), [](ParameterServerOptions* hq, AggregatorOptions* agg) {
    hq->mode = {Mode::kSync, 0};
    hq->expected_aggregators = 1;
    hq->max_batch_samples = 10;
    agg->max_batch_samples = 100;
  });
  HeartbeatRequestData hb;
  hb.member = "agg-0";
  hb.incarnation = 1;
  hb.live_workers = {"worker-0"};
  ASSERT_TRUE(tiers.parameter_server().Heartbeat(hb).ok());
  auto hq = v1::Hq::NewStub(CreateHipsChannel(tiers.hq_address()));
  for (int64_t version = 0; version < 3; ++version) {
    v1::AggregateChunk c;
    v1::AggregateHeader* h = c.mutable_header();
    h->set_aggregator_id("agg-0");
    h->set_version(version);
    h->set_total_samples(64);  // one worker's batch of 64 > 1 x 10
    h->set_contributor_count(1);
    h->set_num_floats(kFloats);
    h->set_sequence(version + 1);
    h->set_encoding(v1::ENCODING_FP32);
    v1::Contributor* w = h->add_contributors();
    w->set_worker_id("worker-0");
    w->set_sequence(version + 1);
    w->set_version(version);
    c.set_data(Bytes({1, 1, 1, 1}));
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::PushAck ack;
    const grpc::Status s = Send(hq->PushAggregate(&ctx, &ack), std::vector{c});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("--max_batch_samples 10"), std::string::npos)
        << s.error_message();
    EXPECT_EQ(tiers.parameter_server().status().version, version + 1);
  }
  const ParameterServerStatus status = tiers.parameter_server().status();
  EXPECT_EQ(status.aggregates_dropped.at("invalid"), 3);
  EXPECT_EQ(status.samples_applied, 0);
  EXPECT_EQ(tiers.parameter_server().LatestWeights()->weights, std::vector<float>(kFloats, 1.0f));
}

}  // namespace
}  // namespace hips
