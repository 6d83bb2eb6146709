// Malformed bytes from a worker, over real gRPC on loopback: every one is
// refused with a clear status and counted, and none changes the round.

#include "aggregator/aggregator_service.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/testing/wait_for.h"

namespace hips {
namespace {

// Options of an aggregator that acknowledges on acceptance: these tests
// play HQ themselves (NextAggregate), after the pushes returned.
AggregatorOptions Local(int workers) {
  AggregatorOptions o;
  o.id = "agg-0";
  o.expected_workers = workers;
  o.ack_after_hq = false;
  return o;
}

class AggregatorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = std::make_shared<WeightsSnapshot>();
    w->version = 0;
    w->layout = *ModelLayout::Create({{"w", {4}}});
    w->weights.assign(4, 0.0f);
    aggregator_.PublishWeights(w);
    grpc::ServerBuilder builder;
    ConfigureHipsServer(&builder);
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::Aggregator::NewStub(CreateHipsChannel(absl::StrCat("127.0.0.1:", port)));
  }
  void TearDown() override {
    aggregator_.Shutdown();
    server_->Shutdown();
  }

  // Sends `messages` as one PushGradient stream.
  grpc::Status Send(const std::vector<v1::GradientChunk>& messages) {
    grpc::ClientContext ctx;
    v1::PushAck ack;
    auto writer = stub_->PushGradient(&ctx, &ack);
    for (const auto& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static v1::GradientChunk Chunk(const std::string& sender, int64_t num_floats,
                                 std::vector<float> data, int64_t samples = 8) {
    v1::GradientChunk c;
    c.mutable_header()->set_sender_id(sender);
    c.mutable_header()->set_version(0);
    c.mutable_header()->set_sample_count(samples);
    c.mutable_header()->set_loss_sum(1.0);
    c.mutable_header()->set_num_floats(num_floats);
    c.set_data(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
    return c;
  }

  Aggregator aggregator_{Local(2)};
  Authorizer open_{SecurityOptions{}};  // security is tested in tests/security_test.cc
  AggregatorService service_{&aggregator_, &open_, 1 << 20, absl::Seconds(5)};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Aggregator::Stub> stub_;
};

TEST_F(AggregatorServiceTest, MalformedGradientsAreRefusedAndCounted) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<v1::GradientChunk>> bad;
  bad.push_back({});                                               // empty stream
  bad.push_back({Chunk("w0", 5, {1, 2, 3, 4})});                   // wrong float count
  bad.push_back({Chunk("w0", 4, {1, 2, 3})});                      // too few floats
  bad.push_back({Chunk("w0", 4, {1, 2, 3, 4, 5})});                // too many floats
  bad.push_back({Chunk("w0", 4, {1, 2, 3, nan})});                 // not finite
  bad.push_back({Chunk("w0", 4, {1, 3e38f, 3, 4}, 2)});            // x2 samples overflows
  bad.push_back({Chunk("", 4, {1, 2, 3, 4})});                     // no sender
  bad.push_back({Chunk("w0", 4, {1, 2, 3, 4}, 0)});                // no samples
  bad.push_back({Chunk(std::string(500, 'x'), 4, {1, 2, 3, 4})});  // absurd id
  v1::GradientChunk ragged = Chunk("w0", 4, {});
  ragged.set_data(std::string(7, '\x01'));
  bad.push_back({ragged});  // partial float
  v1::GradientChunk headless;
  headless.set_data(std::string(16, '\0'));
  bad.push_back({headless});  // no header
  for (size_t i = 0; i < bad.size(); ++i) {
    const grpc::Status s = Send(bad[i]);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << "case " << i << ": " << s.error_message();
    EXPECT_FALSE(s.error_message().empty());
  }
  // A valid gradient still goes through and the round holds only it.
  ASSERT_TRUE(Send({Chunk("w0", 4, {1, 2, 3, 4}, 2)}).ok());
  ASSERT_TRUE(Send({Chunk("w1", 4, {1, 1, 1, 1}, 1)}).ok());
  std::optional<AggregatePush> out = aggregator_.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->sum, (std::vector<float>{3, 5, 7, 9}));
  const AggregatorCounters c = aggregator_.counters();
  EXPECT_EQ(c.gradients_received, static_cast<int64_t>(bad.size()) + 2);
  EXPECT_EQ(c.gradients_accepted, 2);
  // Cases 4 and 5 are non-finite (a counter of their own: a diverging
  // run, not a broken client), the rest invalid.
  EXPECT_EQ(c.gradients_dropped.at("non_finite"), 2);
  EXPECT_EQ(c.gradients_dropped.at("invalid"), static_cast<int64_t>(bad.size()) - 2);
}

// A refusal in the adapter (the header, the stream) or in the round ends a
// live worker's part of its round: the round closes with the others'.
// --max_batch_samples smaller than a worker's batch is one of them.
TEST_F(AggregatorServiceTest, EveryRefusedPushOfALiveWorkerSettlesItsRound) {
  ASSERT_TRUE(aggregator_.Heartbeat("w0", 1, false).ok());
  ASSERT_TRUE(aggregator_.Heartbeat("w1", 1, false).ok());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  v1::GradientChunk nan_loss = Chunk("w0", 4, {1, 2, 3, 4});
  nan_loss.mutable_header()->set_loss_sum(nan);
  const std::vector<std::pair<std::string, v1::GradientChunk>> cases = {
      {"a batch above --max_batch_samples", Chunk("w0", 4, {1, 2, 3, 4}, 1 << 20)},
      {"another model's size", Chunk("w0", 5, {1, 2, 3, 4, 5})},
      {"a stream that ends early", Chunk("w0", 4, {1, 2, 3})},
      {"a NaN value", Chunk("w0", 4, {1, nan, 3, 4})},
      {"a NaN loss", nan_loss},
  };
  int64_t version = 0;
  for (auto [name, bad] : cases) {
    SCOPED_TRACE(name);
    v1::GradientChunk good = Chunk("w1", 4, {1, 1, 1, 1}, 1);
    good.mutable_header()->set_version(version);
    bad.mutable_header()->set_version(version);
    ASSERT_TRUE(Send({good}).ok());
    EXPECT_EQ(Send({bad}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    std::optional<AggregatePush> out = aggregator_.NextAggregate();
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->version, version);
    EXPECT_EQ(out->contributors, 1);
    EXPECT_EQ(out->sum, (std::vector<float>{1, 1, 1, 1}));
    aggregator_.ReportForwarded(*out, PushResult{version, false, version + 1});
    auto next = std::make_shared<WeightsSnapshot>();
    next->version = ++version;
    next->layout = *ModelLayout::Create({{"w", {4}}});
    next->weights.assign(4, 0.0f);
    aggregator_.PublishWeights(next);
  }
  const AggregatorCounters c = aggregator_.counters();
  EXPECT_EQ(c.gradients_dropped.at("invalid"), 3);
  EXPECT_EQ(c.gradients_dropped.at("non_finite"), 2);
}

TEST_F(AggregatorServiceTest, CompressedGradientsAreSummedAsTheirDenseFloats) {
  // fp16 from w0 (split across two chunks inside a value), top-k from w1.
  const std::vector<float> halves = {0.5f, -1.0f, 2.0f, 0.25f};
  std::string half_bytes;
  for (float f : halves) {
    const uint16_t h = FloatToHalf(f);
    half_bytes.append(reinterpret_cast<const char*>(&h), 2);
  }
  v1::GradientChunk first = Chunk("w0", 4, {}, 2);
  first.mutable_header()->set_encoding(v1::ENCODING_FP16);
  first.set_data(half_bytes.substr(0, 4));
  v1::GradientChunk second;
  second.set_data(half_bytes.substr(4));
  ASSERT_TRUE(Send({first, second}).ok());

  v1::GradientChunk sparse = Chunk("w1", 4, {}, 1);
  sparse.mutable_header()->set_encoding(v1::ENCODING_TOPK);
  sparse.mutable_header()->set_nonzeros(1);
  const uint32_t index = 3;
  const float value = 4.0f;
  std::string entry(reinterpret_cast<const char*>(&index), 4);
  entry.append(reinterpret_cast<const char*>(&value), 4);
  sparse.set_data(entry);
  // A chunk that cuts a top-k entry in two, and a count that does not match.
  v1::GradientChunk cut = sparse;
  cut.set_data(entry.substr(0, 6));
  EXPECT_EQ(Send({cut}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GradientChunk miscounted = sparse;
  miscounted.mutable_header()->set_nonzeros(5);
  EXPECT_EQ(Send({miscounted}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Send({sparse}).ok());

  std::optional<AggregatePush> out = aggregator_.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->sum, (std::vector<float>{1, -2, 4, 0.5f + 4}));
  EXPECT_EQ(out->total_samples, 3);
  EXPECT_EQ(aggregator_.counters().gradients_dropped.at("invalid"), 2);
}

TEST_F(AggregatorServiceTest, APushIsReadIntoASpareThatBecomesTheSumOrGoesBack) {
  // The first float32 push of a round is read into the spare, which becomes
  // the round's sum: the aggregate carries that very buffer.
  std::vector<float> spare(4, 7.0f);
  const float* spare_data = spare.data();
  aggregator_.RecycleSum(std::move(spare));
  ASSERT_TRUE(Send({Chunk("w1", 4, {1, 2, 3, 4}, 2)}).ok());
  v1::GradientChunk half = Chunk("w0", 4, {}, 1);
  half.mutable_header()->set_encoding(v1::ENCODING_BF16);
  half.set_data(std::string(8, '\0'));
  ASSERT_TRUE(Send({half}).ok());
  std::optional<AggregatePush> out = aggregator_.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->sum, (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ(out->sum.data(), spare_data);
  EXPECT_TRUE(aggregator_.SpareBuffer().empty());

  // A refused push and a compressed one hand their spare back.
  aggregator_.RecycleSum(std::move(out->sum));
  EXPECT_EQ(Send({Chunk("w0", 5, {1, 2, 3, 4, 5})}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  half.mutable_header()->set_version(1);
  EXPECT_EQ(Send({half}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);  // no v1 yet
  // A reactor hands its buffer back when gRPC destroys it, which may be just
  // after the client saw the status: wait (bounded) for the spare to return.
  std::vector<float> back;
  EXPECT_TRUE(
      WaitFor([&] { return !(back = aggregator_.SpareBuffer()).empty(); }, absl::Seconds(10)));
  EXPECT_EQ(back.data(), spare_data);
}

TEST_F(AggregatorServiceTest, LongPollReturnsWeightsOrDeadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  v1::PullWeightsRequest req;
  req.set_requester_id("w0");
  req.set_min_version(1);
  auto reader = stub_->PullWeights(&ctx, req);
  v1::WeightsChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  grpc::ClientContext ctx2;
  req.set_min_version(0);
  auto reader2 = stub_->PullWeights(&ctx2, req);
  ASSERT_TRUE(reader2->Read(&chunk));
  EXPECT_EQ(chunk.header().version(), 0);
  EXPECT_EQ(chunk.header().num_floats(), 4);
  EXPECT_EQ(chunk.header().layout().tensors(0).name(), "w");
  EXPECT_EQ(chunk.data().size(), 16u);
  EXPECT_FALSE(reader2->Read(&chunk));
  EXPECT_TRUE(reader2->Finish().ok());
}

}  // namespace
}  // namespace hips
