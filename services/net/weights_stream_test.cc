// PullWeights over real gRPC on loopback. The client against a fake HQ: good
// streams arrive whole, malformed ones are refused with INVALID_ARGUMENT (not
// left to run into the deadline). The server (ServePullWeights) against the
// client: a long poll answered by a publish, by its deadline, or ended by the
// caller.

#include "services/net/weights_stream.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/net/methods.h"
#include "services/net/proto_convert.h"

namespace hips {
namespace {

// Streams the messages last set for every PullWeights. A handler of a call
// the client cancelled may still run while the test sets the next messages,
// hence the copy under a lock.
class FakeHq final : public v1::Hq::Service {
 public:
  void Set(std::vector<v1::WeightsChunk> messages) {
    absl::MutexLock lock(&mu_);
    messages_ = std::move(messages);
  }
  grpc::Status PullWeights(grpc::ServerContext*, const v1::PullWeightsRequest*,
                           grpc::ServerWriter<v1::WeightsChunk>* writer) override {
    std::vector<v1::WeightsChunk> messages;
    {
      absl::MutexLock lock(&mu_);
      messages = messages_;
    }
    for (const v1::WeightsChunk& m : messages) writer->Write(m);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::WeightsChunk> messages_ ABSL_GUARDED_BY(mu_);
};

// `service` on a free port of 127.0.0.1; a channel to it.
std::unique_ptr<grpc::Server> Serve(grpc::Service* service,
                                    std::shared_ptr<grpc::Channel>* channel) {
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  EXPECT_NE(port, 0);
  *channel = CreateHipsChannel(absl::StrCat("127.0.0.1:", port));
  return server;
}

class WeightsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { server_ = Serve(&hq_, &channel_); }
  void TearDown() override { server_->Shutdown(); }

  static v1::WeightsChunk Header(int64_t version, int64_t num_floats) {
    v1::WeightsChunk c;
    c.mutable_header()->set_version(version);
    c.mutable_header()->set_num_floats(num_floats);
    c.mutable_header()->mutable_mode()->set_mode(v1::MODE_SSP);
    c.mutable_header()->mutable_mode()->set_staleness(3);
    c.mutable_header()->set_mode_since(std::min<int64_t>(version, 5));
    LayoutToProto(*ModelLayout::Create({{"a", {2, 2}}, {"b", {4}}}),
                  c.mutable_header()->mutable_layout());
    return c;
  }
  static std::string Floats(std::vector<float> v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> Pull(
      std::shared_ptr<const WeightsSnapshot> held = nullptr) {
    // The raw client against a server built on the generated protobuf stubs.
    grpc::GenericStub stub(channel_);
    const int64_t incarnation = held == nullptr ? 0 : held->incarnation;
    return PullWeightsFrom(&stub, method::kHqPullWeights, &calls_, "", "test", 0,
                           absl::Now() + absl::Seconds(30), /*no_wait=*/false, incarnation,
                           std::move(held));
  }

  // Weights of version 2 of Header's layout, as a caller holds them.
  static std::shared_ptr<const WeightsSnapshot> Held() {
    auto s = std::make_shared<WeightsSnapshot>();
    s->version = 2;
    s->layout = *ModelLayout::Create({{"a", {2, 2}}, {"b", {4}}});
    s->weights = {1, 2, 3, 4, 5, 6, 7, 8};
    return s;
  }
  // A bf16 delta to version `version` from version 2: 0.5 added to each.
  static std::vector<v1::WeightsChunk> Bf16Delta(int64_t version) {
    std::vector<v1::WeightsChunk> messages = {Header(version, 8)};
    messages[0].mutable_header()->mutable_delta()->set_base_version(2);
    messages[0].mutable_header()->mutable_delta()->set_encoding(v1::ENCODING_BF16);
    messages[0].mutable_header()->set_drift(0.25f);
    // What the caller holding Held() ends with.
    messages[0].mutable_header()->mutable_delta()->set_checksum(
        WeightsChecksum(std::vector<float>{1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5}));
    const uint16_t half = FloatToBfloat16(0.5f);
    std::string bytes;
    for (int i = 0; i < 8; ++i) bytes.append(reinterpret_cast<const char*>(&half), 2);
    messages[0].set_data(bytes.substr(0, 6));
    messages.emplace_back().set_data(bytes.substr(6));
    return messages;
  }

  FakeHq hq_;
  CallRegistry calls_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(WeightsStreamTest, AWholeSnapshotArrivesWithItsLayout) {
  std::vector<v1::WeightsChunk> messages = {Header(7, 8)};
  messages.back().set_data(Floats({1, 2, 3}));
  messages.emplace_back().set_data(Floats({4, 5, 6, 7, 8}));
  hq_.Set(messages);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w = Pull();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->version, 7);
  EXPECT_EQ((*w)->mode, (ModeConfig{Mode::kSsp, 3}));
  EXPECT_EQ((*w)->mode_since, 5);
  EXPECT_EQ((*w)->layout.DebugString(), "a[2,2] b[4]");
  EXPECT_EQ((*w)->weights, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_F(WeightsStreamTest, AFedAvgHeaderCarriesTheLocalSgdAndTheParticipants) {
  std::vector<v1::WeightsChunk> messages = {Header(7, 8)};
  v1::WeightsHeader* h = messages[0].mutable_header();
  h->mutable_mode()->set_mode(v1::MODE_FEDAVG);
  h->mutable_mode()->set_staleness(0);
  h->mutable_mode()->set_local_steps(10);
  h->mutable_mode()->set_participation(0.5);
  LocalSgdToProto(LocalSgd{0.05, 0.9, false, 1e-4}, h->mutable_local_sgd());
  h->add_participants("worker-1");
  h->add_participants("worker-2");
  h->mutable_mode()->set_edge_rounds(3);
  h->set_edge_round(2);
  h->set_edge_epoch(1234);
  messages.back().set_data(Floats({1, 2, 3, 4, 5, 6, 7, 8}));
  hq_.Set(messages);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w = Pull();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->mode, (ModeConfig{Mode::kFedAvg, 0, 10, 0.5, 3}));
  EXPECT_EQ((*w)->edge_round, 2);
  EXPECT_EQ((*w)->edge_epoch, 1234);
  EXPECT_EQ((*w)->local_sgd, (LocalSgd{0.05, 0.9, false, 1e-4}));
  EXPECT_EQ((*w)->participants, (std::vector<std::string>{"worker-1", "worker-2"}));

  // What the encoder writes is what the decoder reads.
  auto snapshot = std::make_shared<WeightsSnapshot>(**w);
  const ChunkedPayload encoded = EncodeWeights(snapshot, 1 << 20);
  v1::WeightsHeader back;
  ASSERT_TRUE(back.ParseFromString(encoded.header));
  EXPECT_EQ(back.local_sgd().lr(), 0.05);
  EXPECT_EQ(back.participants_size(), 2);
  EXPECT_EQ(back.mode().local_steps(), 10);
  EXPECT_EQ(back.mode().edge_rounds(), 3);
  EXPECT_EQ(back.edge_round(), 2);
  EXPECT_EQ(back.edge_epoch(), 1234);

  // Edge rounds are refused outside fedavg, out of range, or with a bad
  // epoch.
  for (auto bad : std::vector<std::function<void(v1::WeightsHeader*)>>{
           [](v1::WeightsHeader* b) { b->set_edge_round(-1); },
           [](v1::WeightsHeader* b) { b->set_edge_round(1000); },
           [](v1::WeightsHeader* b) { b->set_edge_epoch(-5); },
       }) {
    std::vector<v1::WeightsChunk> refused = messages;
    bad(refused[0].mutable_header());
    hq_.Set(refused);
    EXPECT_TRUE(absl::IsInvalidArgument(Pull().status())) << refused[0].header().DebugString();
  }

  // In the other modes both are ignored (and an edge round is refused).
  messages[0].mutable_header()->mutable_mode()->set_mode(v1::MODE_SYNC);
  messages[0].mutable_header()->mutable_mode()->clear_local_steps();
  messages[0].mutable_header()->mutable_mode()->clear_participation();
  messages[0].mutable_header()->mutable_mode()->clear_edge_rounds();
  hq_.Set(messages);
  EXPECT_TRUE(absl::IsInvalidArgument(Pull().status()));
  messages[0].mutable_header()->clear_edge_round();
  messages[0].mutable_header()->clear_edge_epoch();
  hq_.Set(messages);
  w = Pull();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->local_sgd, LocalSgd());
  EXPECT_TRUE((*w)->participants.empty());
}

TEST_F(WeightsStreamTest, ADeltaIsAddedToTheWeightsTheCallerHolds) {
  hq_.Set(Bf16Delta(3));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w = Pull(Held());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->version, 3);
  EXPECT_EQ((*w)->weights, (std::vector<float>{1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5}));
  EXPECT_EQ((*w)->drift, 0.25f);
  EXPECT_EQ((*w)->layout.DebugString(), "a[2,2] b[4]");
}

TEST_F(WeightsStreamTest, ADeltaAgainstWeightsTheCallerDoesNotHoldIsRefused) {
  struct Case {
    const char* name;
    std::vector<v1::WeightsChunk> messages;
    std::shared_ptr<const WeightsSnapshot> held;
    const char* says;
  };
  std::vector<Case> cases;
  cases.push_back({"no weights held", Bf16Delta(3), nullptr, "holds no weights"});
  cases.push_back({"another base", Bf16Delta(3), Held(), "against version 1"});
  cases.back().messages[0].mutable_header()->mutable_delta()->set_base_version(1);
  cases.push_back({"not newer than its base", Bf16Delta(2), Held(), "from version 2"});
  auto other_layout = std::make_shared<WeightsSnapshot>(*Held());
  other_layout->layout = *ModelLayout::Create({{"a", {2, 2}}, {"c", {4}}});
  cases.push_back({"another layout", Bf16Delta(3), other_layout, "another layout"});
  cases.push_back({"fp32", Bf16Delta(3), Held(), "fp32"});
  cases.back().messages[0].mutable_header()->mutable_delta()->set_encoding(v1::ENCODING_FP32);
  cases.push_back({"nonzeros beyond the floats", Bf16Delta(3), Held(), "nonzeros"});
  cases.back().messages[0].mutable_header()->mutable_delta()->set_encoding(v1::ENCODING_TOPK);
  cases.back().messages[0].mutable_header()->mutable_delta()->set_nonzeros(9);
  cases.push_back({"a short payload", Bf16Delta(3), Held(), "announced"});
  cases.back().messages.pop_back();
  cases.push_back({"a negative drift", Bf16Delta(3), Held(), "drift"});
  cases.back().messages[0].mutable_header()->set_drift(-1);
  cases.push_back({"a NaN delta", Bf16Delta(3), Held(), "finite"});
  const uint16_t nan = 0x7fc0;
  cases.back().messages[1].set_data(std::string(reinterpret_cast<const char*>(&nan), 2) +
                                    std::string(8, '\0'));
  for (const Case& c : cases) {
    hq_.Set(c.messages);
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w = Pull(c.held);
    EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << c.name << ": " << w.status();
    EXPECT_THAT(std::string(w.status().message()), ::testing::HasSubstr(c.says)) << c.name;
  }
}

TEST_F(WeightsStreamTest, MalformedStreamsAreRefused) {
  struct Case {
    const char* name;
    std::vector<v1::WeightsChunk> messages;
  };
  std::vector<Case> cases;
  cases.push_back({"too few floats", {Header(1, 8)}});
  cases.back().messages[0].set_data(Floats({1, 2, 3, 4}));
  cases.push_back({"more floats than announced, with messages left unread", {Header(1, 8)}});
  for (int i = 0; i < 20; ++i) cases.back().messages.emplace_back().set_data(Floats({1, 2, 3}));
  cases.push_back({"count other than the layout's", {Header(1, 9)}});
  cases.push_back({"negative version", {Header(-1, 8)}});
  v1::WeightsChunk bad_layout = Header(1, 8);
  bad_layout.mutable_header()->mutable_layout()->mutable_tensors(0)->set_name("b");
  cases.push_back({"duplicate tensor names", {bad_layout}});
  v1::WeightsChunk no_mode = Header(1, 8);
  no_mode.mutable_header()->clear_mode();
  cases.push_back({"no mode", {no_mode}});
  v1::WeightsChunk bad_staleness = Header(1, 8);
  bad_staleness.mutable_header()->mutable_mode()->set_staleness(-1);
  cases.push_back({"negative staleness", {bad_staleness}});
  v1::WeightsChunk future_mode = Header(3, 8);
  future_mode.mutable_header()->set_mode_since(4);
  cases.push_back({"mode since a later version", {future_mode}});
  v1::WeightsChunk fedavg = Header(3, 8);
  fedavg.mutable_header()->mutable_mode()->set_mode(v1::MODE_FEDAVG);
  fedavg.mutable_header()->mutable_mode()->set_staleness(0);
  v1::WeightsChunk bad_local_sgd = fedavg;
  bad_local_sgd.mutable_header()->mutable_local_sgd()->set_momentum(2);
  cases.push_back({"fedavg with a local momentum of 2", {bad_local_sgd}});
  v1::WeightsChunk bad_participant = fedavg;
  bad_participant.mutable_header()->add_participants("no spaces allowed");
  cases.push_back({"fedavg with a malformed participant id", {bad_participant}});
  v1::WeightsChunk headless;
  headless.set_data(Floats({1}));
  cases.push_back({"no header", {headless}});
  cases.push_back({"no message at all", {}});
  for (const Case& c : cases) {
    hq_.Set(c.messages);
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w = Pull();
    EXPECT_TRUE(absl::IsInvalidArgument(w.status())) << c.name << ": " << w.status();
  }
}

TEST_F(WeightsStreamTest, CancelledCallsFailAtOnce) {
  calls_.CancelAll();
  const absl::Status s = Pull().status();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
}

// A server of PullWeights alone, from a board.
class BoardHq final : public v1::Hq::WithRawCallbackMethod_PullWeights<v1::Hq::Service> {
 public:
  grpc::ServerWriteReactor<grpc::ByteBuffer>* PullWeights(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override {
    return ServePullWeights(ctx, request, board, &cache, absl::Seconds(30), nullptr);
  }

  WeightsBoard board;
  WeightsEncodingCache cache{12};  // three floats per chunk
};

// The same with HQ's --weights_compression=bf16, a resync every 3 versions.
class ChainHq final : public v1::Hq::WithRawCallbackMethod_PullWeights<v1::Hq::Service> {
 public:
  grpc::ServerWriteReactor<grpc::ByteBuffer>* PullWeights(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override {
    return ServePullWeights(ctx, request, board, &encoder, absl::Seconds(30), nullptr);
  }

  WeightsBoard board;
  ChainWeightsEncoder encoder{WeightsChainOptions{Encoding::kBf16, 0.01, 3}, 6};
};

class ServePullWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::shared_ptr<grpc::Channel> channel;
    server_ = Serve(&hq_, &channel);
    stub_ = std::make_unique<grpc::GenericStub>(channel);
  }
  void TearDown() override {
    hq_.board.Shutdown();
    server_->Shutdown();
  }

  static std::shared_ptr<const WeightsSnapshot> Snapshot(int64_t version) {
    auto s = std::make_shared<WeightsSnapshot>();
    s->version = version;
    s->layout = *ModelLayout::Create({{"w", {8}}});
    for (int i = 0; i < 8; ++i) s->weights.push_back(static_cast<float>(version * 10 + i));
    s->incarnation = 1;
    return s;
  }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> Pull(int64_t min_version,
                                                              absl::Duration timeout,
                                                              bool no_wait = false) {
    return PullWeightsFrom(stub_.get(), method::kHqPullWeights, &calls_, "", "test", min_version,
                           absl::Now() + timeout, no_wait);
  }

  BoardHq hq_;
  CallRegistry calls_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(ServePullWeightsTest, ALongPollIsAnsweredByThePublishItWaitsFor) {
  hq_.board.Publish(Snapshot(1));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> now = Pull(1, absl::Seconds(30));
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ((*now)->weights, Snapshot(1)->weights);

  // Four callers wait for version 2; one publish answers them all.
  std::vector<absl::StatusOr<std::shared_ptr<const WeightsSnapshot>>> got(4);
  std::vector<std::thread> callers;
  for (auto& g : got) callers.emplace_back([&] { g = Pull(2, absl::Seconds(60)); });
  hq_.board.Publish(Snapshot(2));
  for (std::thread& t : callers) t.join();
  for (const auto& g : got) {
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ((*g)->version, 2);
    EXPECT_EQ((*g)->weights, Snapshot(2)->weights);
    EXPECT_EQ((*g)->layout.DebugString(), "w[8]");
  }
}

TEST_F(ServePullWeightsTest, ALongPollEndsAtItsDeadlineOrAtOnceWithoutWaiting) {
  hq_.board.Publish(Snapshot(1));
  const absl::Status late = Pull(2, absl::Milliseconds(200)).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(late)) << late;
  const absl::Status at_once = Pull(2, absl::Seconds(60), /*no_wait=*/true).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(at_once)) << at_once;
}

TEST_F(ServePullWeightsTest, ACallerThatGivesUpEndsItsLongPoll) {
  absl::Notification started;
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> got;
  std::thread caller([&] {
    started.Notify();
    got = Pull(5, absl::Seconds(60));
  });
  started.WaitForNotification();
  // Cancels the call in flight, or the call as soon as it registers.
  calls_.CancelAll();
  caller.join();
  EXPECT_TRUE(absl::IsCancelled(got.status())) << got.status();
}

// HQ's chain served over gRPC, and a caller of its PullWeights.
class ChainWeightsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::shared_ptr<grpc::Channel> channel;
    server_ = Serve(&hq, &channel);
    stub_ = std::make_unique<grpc::GenericStub>(channel);
  }
  void TearDown() override {
    hq.board.Shutdown();
    server_->Shutdown();
  }
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> pull(
      int64_t min_version, std::shared_ptr<const WeightsSnapshot> held) {
    const int64_t incarnation = held == nullptr ? 0 : held->incarnation;
    return PullWeightsFrom(stub_.get(), method::kHqPullWeights, &calls_, "", "test", min_version,
                           absl::Now() + absl::Seconds(30), false, incarnation, std::move(held));
  }
  // HQ's weights of `version` (of incarnation 9).
  static std::shared_ptr<const WeightsSnapshot> hq_weights(int64_t version) {
    auto s = std::make_shared<WeightsSnapshot>();
    s->version = version;
    s->incarnation = 9;
    s->layout = *ModelLayout::Create({{"w", {5}}});
    for (int i = 0; i < 5; ++i) s->weights.push_back(1.0f + 0.0123f * version * (i + 1));
    return s;
  }

  ChainHq hq;

 private:
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
  CallRegistry calls_;
};

// Over the wire: a caller holding the previous version gets the delta, and
// ends with the chain's weights bit for bit; any other gets them whole; at
// a resync everyone holds exactly HQ's weights.
TEST_F(ChainWeightsStreamTest, DeltasReachTheChainsWeightsAndResyncsHqsExactly) {
  hq.board.Publish(hq_weights(0));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> held = pull(0, nullptr);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ((*held)->weights, hq_weights(0)->weights);
  for (int64_t v = 1; v <= 4; ++v) {
    SCOPED_TRACE(v);
    hq.board.Publish(hq_weights(v));
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> next = pull(v, *held);
    ASSERT_TRUE(next.ok()) << next.status();
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> joining = pull(v, nullptr);
    ASSERT_TRUE(joining.ok()) << joining.status();
    EXPECT_EQ((*next)->version, v);
    // Both callers hold the same bits.
    EXPECT_EQ(std::memcmp((*next)->weights.data(), (*joining)->weights.data(), 5 * sizeof(float)),
              0);
    if (v == 3) {
      // Three versions after the first: a resync, exactly HQ's.
      EXPECT_EQ((*next)->weights, hq_weights(3)->weights);
      EXPECT_EQ((*next)->drift, 0.0f);
    } else {
      EXPECT_NE((*next)->weights, hq_weights(v)->weights);
      EXPECT_GT((*next)->drift, 0.0f);
      for (int i = 0; i < 5; ++i) {
        EXPECT_NEAR((*next)->weights[i], hq_weights(v)->weights[i], (*next)->drift * 1.0001);
      }
    }
    held = next;
  }
  const ChainWeightsEncoder::Counters c = hq.encoder.counters();
  EXPECT_EQ(c.deltas_sent, 3);         // versions 1, 2 and 4 to the caller holding the one before
  EXPECT_EQ(c.whole_sent, 1 + 4 + 1);  // version 0, the joining caller's four, the resync
  EXPECT_EQ(c.resyncs, 2);             // versions 0 and 3
}

// A caller whose held weights are not the chain's (one float altered): the
// delta's checksum does not match what it rebuilt, and it asks for the
// weights whole, in the same call, instead of drifting until the next
// resync.
TEST_F(ChainWeightsStreamTest, RebuiltWeightsThatDoNotMatchAreAskedForWhole) {
  hq.board.Publish(hq_weights(0));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> held = pull(0, nullptr);
  ASSERT_TRUE(held.ok()) << held.status();
  hq.board.Publish(hq_weights(1));
  held = pull(1, *held);  // a delta, rebuilt exactly
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(hq.encoder.counters().deltas_sent, 1);
  // One held weight altered by one ulp.
  auto altered = std::make_shared<WeightsSnapshot>(**held);
  altered->weights[2] = std::nextafter(altered->weights[2], 10.0f);
  hq.board.Publish(hq_weights(2));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> next = pull(2, altered);
  ASSERT_TRUE(next.ok()) << next.status();
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> joining = pull(2, nullptr);
  ASSERT_TRUE(joining.ok()) << joining.status();
  EXPECT_EQ((*next)->version, 2);
  EXPECT_EQ(std::memcmp((*next)->weights.data(), (*joining)->weights.data(), 5 * sizeof(float)), 0);
  const ChainWeightsEncoder::Counters c = hq.encoder.counters();
  EXPECT_EQ(c.deltas_sent, 2);  // versions 1 and 2 (the one refused on arrival)
  EXPECT_EQ(c.whole_sent, 3);   // version 0, the retry, the joining caller
  // From the whole weights the chain goes on: version 3 is its resync,
  // version 4 a delta again.
  hq.board.Publish(hq_weights(3));
  held = pull(3, *next);
  ASSERT_TRUE(held.ok()) << held.status();
  hq.board.Publish(hq_weights(4));
  held = pull(4, *held);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(hq.encoder.counters().deltas_sent, 3);
}

}  // namespace
}  // namespace hips
