// The worker's loop against aggregators in memory (FakeAggregatorClient) and
// a model whose gradients say which batch and weights they came from
// (FakeModel): what it computes on in each mode, failing over and back,
// where a restarted worker's data continues, and how it stops. Leases are
// short (200 ms) so that failovers happen quickly; every wait is on a
// condition and bounded.

#include "worker/worker.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "services/data/shard_sampler.h"
#include "worker/testing/fake_aggregator_client.h"

namespace hips {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);  // bounds every wait
constexpr int64_t kFloats = 4;
constexpr int64_t kBatch = 8;

std::shared_ptr<const WeightsSnapshot> Weights(int64_t version, ModeConfig mode = {},
                                               bool done = false, int64_t floats = kFloats) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->layout = *ModelLayout::Create({TensorSpec{"w", {floats}}});
  // Every weight is the version: a gradient tells which weights it used.
  s->weights.assign(static_cast<size_t>(floats), static_cast<float>(version));
  s->mode = mode;
  s->training_done = done;
  s->incarnation = 1;
  return s;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : data_(std::make_shared<const Dataset>(MakeSyntheticDataset(64, {2}, 4, 1, 1))) {
    options_.id = "w0";
    options_.batch_size = kBatch;
    options_.lease = absl::Milliseconds(200);
    options_.long_poll = absl::Milliseconds(200);
    options_.min_backoff = absl::Milliseconds(1);
    options_.max_backoff = absl::Milliseconds(10);
  }

  ~WorkerTest() override {
    if (worker_ != nullptr) worker_->Shutdown();
    if (runner_.joinable()) runner_.join();
  }

  void Start() {
    absl::StatusOr<std::unique_ptr<Worker>> w = Worker::Create(
        options_, std::make_unique<FakeModel>(kFloats, &seeds_), data_, {&first_, &second_});
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = *std::move(w);
    runner_ = std::thread([this] {
      result_ = worker_->Run();
      finished_.Notify();
    });
  }

  // What Run returned; fails the test if it does not return in time.
  absl::Status Result() {
    EXPECT_TRUE(finished_.WaitForNotificationWithTimeout(kWait)) << "Run did not return";
    runner_.join();
    return result_;
  }

  // The value every entry of the gradient of `step` on weights of `version`
  // has (FakeModel).
  float Expected(int64_t step, int64_t version) { return Expected(step, version, options_.index); }
  float Expected(int64_t step, int64_t version, int index) {
    ShardSampler sampler = *ShardSampler::Create(data_->num_examples(), index,
                                                 options_.num_workers, kBatch, options_.data_seed);
    float labels = 0;
    for (int64_t i : sampler.Batch(step)) labels += static_cast<float>(data_->labels[i]);
    return labels + static_cast<float>(version);
  }

  const std::shared_ptr<const Dataset> data_;
  WorkerOptions options_;
  FakeAggregatorClient first_;   // the worker's own aggregator
  FakeAggregatorClient second_;  // where it fails over to
  FakeModel::Seeds seeds_;       // what the worker's model was seeded with
  std::unique_ptr<Worker> worker_;
  std::thread runner_;
  absl::Notification finished_;
  absl::Status result_;
};

TEST(AggregatorsByIndexTest, OwnIsIndexModNThenTheRestInOrder) {
  const std::vector<std::string> two = {"a:1", "b:1"};
  EXPECT_EQ(AggregatorsByIndex(two, 0), two);
  EXPECT_EQ(AggregatorsByIndex(two, 1), (std::vector<std::string>{"b:1", "a:1"}));
  EXPECT_EQ(AggregatorsByIndex(two, 6), two);
  const std::vector<std::string> three = {"a:1", "b:1", "c:1"};
  EXPECT_EQ(AggregatorsByIndex(three, 5), (std::vector<std::string>{"c:1", "a:1", "b:1"}));
  EXPECT_EQ(AggregatorsByIndex({"a:1"}, 3), (std::vector<std::string>{"a:1"}));
  EXPECT_TRUE(AggregatorsByIndex({}, 3).empty());
}

TEST_F(WorkerTest, AWorkerOfAnotherModelIsRefusedNamingTheFirstTensorThatDiffers) {
  first_.Publish(Weights(0, {}, false, /*floats=*/kFloats + 1));
  Start();
  const absl::Status s = Result();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(s.message(),
            "the cluster trains a different model: tensor 0: 'w'[5] at HQ, 'w'[4] in this "
            "worker's");
  EXPECT_TRUE(first_.pushes().empty());
}

TEST_F(WorkerTest, SyncComputesOnceOnEachVersionAndStopsWhenTrainingIsDone) {
  first_.Publish(Weights(0));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(1, kWait));
  // It waits for the next version rather than compute on this one again.
  EXPECT_FALSE(first_.WaitForPushes(2, absl::Milliseconds(50)));
  first_.Publish(Weights(1));
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  first_.Publish(Weights(2, {}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  const std::vector<GradientPush> pushes = first_.pushes();
  ASSERT_EQ(pushes.size(), 2u);
  for (int64_t v = 0; v < 2; ++v) {
    const GradientPush& p = pushes[v];
    EXPECT_EQ(p.sender, "w0");
    EXPECT_EQ(p.version, v);
    EXPECT_EQ(p.step, v);  // in sync the data step is the version
    EXPECT_EQ(p.samples, kBatch);
    EXPECT_DOUBLE_EQ(p.loss_sum, kBatch);
    EXPECT_FALSE(p.retry);
    ASSERT_EQ(p.gradient.size(), static_cast<size_t>(kFloats));
    EXPECT_EQ(p.gradient[0], Expected(v, v));
  }
  // Named without a clock: the process's incarnation, then 1, 2...
  EXPECT_EQ(pushes[0].sequence, 1);
  EXPECT_EQ(pushes[1].sequence, 2);
  EXPECT_GT(pushes[0].incarnation, 0);
  EXPECT_EQ(pushes[1].incarnation, pushes[0].incarnation);
  EXPECT_EQ(worker_->steps(), 2);
  EXPECT_EQ(worker_->version(), 1);
  // It left at the end: the aggregator need not wait a lease for it.
  EXPECT_TRUE(first_.heartbeats().back().leaving);
}

TEST_F(WorkerTest, AsyncKeepsComputingOnTheNewestWeightsWithoutWaitingForAVersion) {
  first_.Publish(Weights(0, {Mode::kAsync, 0}));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(3, kWait));
  first_.Publish(Weights(1, {Mode::kAsync, 0}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  const std::vector<GradientPush> pushes = first_.pushes();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(pushes[i].version, 0);
    // In async the data step counts the worker's own gradients.
    EXPECT_EQ(pushes[i].step, static_cast<int64_t>(i));
    EXPECT_EQ(pushes[i].gradient[0], Expected(static_cast<int64_t>(i), 0));
  }
}

TEST_F(WorkerTest, SspWaitsForWeightsWithinItsBoundOfTheNewestVersion) {
  const ModeConfig ssp{Mode::kSsp, 1};
  first_.Publish(Weights(0, ssp));
  // HQ is at version 5 already (the ack says so): weights of version 0 are
  // too stale for a bound of 1, so the worker waits for version 4 or newer.
  first_.SetPushHandler([](const GradientPush& g) -> absl::StatusOr<PushResult> {
    return PushResult{g.version, false, 5};
  });
  Start();
  ASSERT_TRUE(first_.WaitForPushes(1, kWait));
  EXPECT_FALSE(first_.WaitForPushes(2, absl::Milliseconds(50)));
  first_.Publish(Weights(3, ssp));  // still too stale
  EXPECT_FALSE(first_.WaitForPushes(2, absl::Milliseconds(50)));
  first_.Publish(Weights(4, ssp));
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  EXPECT_EQ(first_.pushes()[1].version, 4);
  first_.Publish(Weights(6, ssp, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
}

TEST_F(WorkerTest, FailsOverWhenItsAggregatorStopsAnsweringAndComesBackWhenItDoes) {
  first_.Publish(Weights(0));
  second_.Publish(Weights(0));
  // The first aggregator dies while the push is on its way.
  first_.SetPushHandler([this](const GradientPush&) -> absl::StatusOr<PushResult> {
    first_.SetReachable(false);
    return absl::UnavailableError("connection reset");
  });
  Start();
  ASSERT_TRUE(second_.WaitForPushes(1, kWait));
  const GradientPush lost = first_.pushes()[0];
  const GradientPush retried = second_.pushes()[0];
  // The same gradient, marked as a retry: its first attempt may have gone
  // through, and HQ applies it at most once.
  EXPECT_TRUE(retried.retry);
  EXPECT_EQ(retried.sequence, lost.sequence);
  EXPECT_EQ(retried.version, 0);
  EXPECT_EQ(retried.gradient, lost.gradient);
  EXPECT_EQ(worker_->switches(), 1);
  // It joined the second aggregator before pushing there.
  ASSERT_FALSE(second_.heartbeats().empty());
  EXPECT_FALSE(second_.heartbeats().front().leaving);

  // The first one is back: the worker returns (checked every two leases),
  // leaving the second at once, and trains there again.
  first_.SetPushHandler(nullptr);
  first_.SetReachable(true);
  first_.Publish(Weights(1));
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  EXPECT_EQ(first_.pushes()[1].version, 1);
  EXPECT_FALSE(first_.pushes()[1].retry);
  EXPECT_EQ(worker_->switches(), 2);
  bool left = false;
  for (const HeartbeatRequestData& hb : second_.heartbeats()) left = left || hb.leaving;
  EXPECT_TRUE(left);
  first_.Publish(Weights(2, {}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
}

TEST_F(WorkerTest, ARestartedWorkerContinuesItsDataWhereHqSaysItWas) {
  first_.SetHeartbeatHandler([](const HeartbeatRequestData&) -> absl::StatusOr<HeartbeatAnswer> {
    HeartbeatAnswer answer;
    answer.lease = absl::Milliseconds(200);
    answer.data_positions = {{"w0", 5}};
    return answer;
  });
  first_.Publish(Weights(0, {Mode::kAsync, 0}));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  EXPECT_EQ(first_.pushes()[0].step, 5);
  EXPECT_EQ(first_.pushes()[0].hq_incarnation, 1);  // the weights' (Weights())
  EXPECT_EQ(first_.pushes()[1].step, 6);
  EXPECT_EQ(first_.pushes()[0].gradient[0], Expected(5, 0));
}

// Each gradient's random draws come from (--seed, id, step): the worker
// restarted above, continuing at step 5, draws for step 5 as its
// predecessor did.
TEST_F(WorkerTest, EachGradientIsSeededFromTheRunTheWorkerAndTheStep) {
  options_.data_seed = 17;
  first_.Publish(Weights(0, {Mode::kAsync, 0}));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(3, kWait));
  const std::vector<GradientPush> pushes = first_.pushes();
  absl::MutexLock lock(&seeds_.mu);
  ASSERT_GE(seeds_.seeds.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(seeds_.seeds[i], StepSeed(17, "w0", pushes[i].step)) << i;
  }
  EXPECT_NE(seeds_.seeds[0], seeds_.seeds[1]);
}

TEST_F(WorkerTest, ARefusedGradientIsCountedAndTheWorkerGoesOn) {
  first_.SetPushHandler([](const GradientPush& g) -> absl::StatusOr<PushResult> {
    if (g.version == 0) return absl::FailedPreconditionError("its round closed");
    return PushResult{g.version, false, g.version};
  });
  first_.Publish(Weights(0));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(1, kWait));
  first_.Publish(Weights(1));
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  first_.Publish(Weights(2, {}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  EXPECT_EQ(worker_->refused(), 1);
  EXPECT_EQ(worker_->steps(), 2);
  EXPECT_EQ(first_.pushes().size(), 2u);  // a refusal is final: not pushed again
}

TEST_F(WorkerTest, WeightsOfAnotherModelStopTheWorker) {
  first_.Publish(Weights(0, {}, false, /*floats=*/kFloats + 1));
  Start();
  const absl::Status s = Result();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(first_.pushes().empty());
}

// Three homes in one process, in sync. The fake answers a push only once
// all three of its version are in, as a sync round does: the homes' pushes
// must be in flight together, each under its own id, data and sequence.
TEST_F(WorkerTest, HostedHomesEachPushTheirOwnGradientAndOneHeartbeatNamesThemAll) {
  options_.num_workers = 3;
  options_.homes = {{"w0", 0, {}}, {"w1", 1, {}}, {"w2", 2, {}}};
  absl::Mutex mu;
  std::map<int64_t, int> arrived;  // pushes per version
  first_.SetPushHandler([&](const GradientPush& g) -> absl::StatusOr<PushResult> {
    absl::MutexLock lock(&mu);
    ++arrived[g.version];
    const auto round_complete = [&] { return arrived[g.version] == 3; };
    if (!mu.AwaitWithTimeout(absl::Condition(&round_complete), kWait)) {
      return absl::DeadlineExceededError("the round never completed");
    }
    return PushResult{g.version, false, g.version};
  });
  first_.Publish(Weights(0));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(3, kWait));
  EXPECT_FALSE(first_.WaitForPushes(4, absl::Milliseconds(50)));  // one each per version
  first_.Publish(Weights(1));
  ASSERT_TRUE(first_.WaitForPushes(6, kWait));
  first_.Publish(Weights(2, {}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  std::map<std::string, std::vector<GradientPush>> by_home;
  for (const GradientPush& p : first_.pushes()) by_home[p.sender].push_back(p);
  ASSERT_EQ(by_home.size(), 3u);
  int index = 0;
  for (const auto& [id, pushes] : by_home) {
    ASSERT_EQ(pushes.size(), 2u) << id;
    for (int64_t v = 0; v < 2; ++v) {
      EXPECT_EQ(pushes[v].version, v) << id;
      EXPECT_EQ(pushes[v].step, v) << id;
      EXPECT_EQ(pushes[v].sequence, v + 1) << id;  // each home numbers its own
      EXPECT_EQ(pushes[v].incarnation, first_.pushes()[0].incarnation) << id;  // the process's
      EXPECT_EQ(pushes[v].gradient[0], Expected(v, v, index)) << id;
    }
    ++index;
  }
  EXPECT_EQ(worker_->steps(), 6);
  EXPECT_EQ(worker_->pushes(), 6);
  EXPECT_EQ(worker_->refused(), 0);
  // Every heartbeat, the goodbye too, speaks for all three.
  for (const HeartbeatRequestData& hb : first_.heartbeats()) {
    EXPECT_EQ(hb.member, "w0");
    EXPECT_EQ(hb.homes, (std::vector<std::string>{"w1", "w2"}));
  }
  EXPECT_TRUE(first_.heartbeats().back().leaving);
}

TEST_F(WorkerTest, InFedAvgOnlyTheDrawnHomesComputeAndEachStartsFromTheRoundsWeights) {
  options_.num_workers = 3;
  options_.homes = {{"w0", 0, {}}, {"w1", 1, {}}, {"w2", 2, {}}};
  ModeConfig fedavg{Mode::kFedAvg, 0};
  fedavg.local_steps = 2;
  auto round = [&](int64_t v, std::vector<std::string> drawn, bool done = false) {
    auto w = std::make_shared<WeightsSnapshot>(*Weights(v, fedavg, done));
    w->participants = std::move(drawn);
    w->local_sgd.lr = 0.5;  // (sums of halves of integers: exact in float)
    return w;
  };
  first_.Publish(round(0, {"w0", "w2"}));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(2, kWait));
  EXPECT_FALSE(first_.WaitForPushes(3, absl::Milliseconds(50)));
  first_.Publish(round(1, {"w1"}));
  ASSERT_TRUE(first_.WaitForPushes(3, kWait));
  first_.Publish(round(2, {}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  const std::vector<GradientPush> pushes = first_.pushes();
  std::set<std::string> round0 = {pushes[0].sender, pushes[1].sender};
  EXPECT_EQ(round0, (std::set<std::string>{"w0", "w2"}));
  EXPECT_EQ(pushes[2].sender, "w1");
  EXPECT_EQ(pushes[2].version, 1);
  // Each home's two steps start from the round's weights, not from where the
  // previous home's steps left the shared model: delta = lr (g0 + g1) with
  // g0 = L0 + v and g1 = L1 + (v - lr g0), L the batch's label sum.
  const auto delta = [&](int home, int64_t v) {
    const float g0 = Expected(2 * v, v, home);
    const float g1 = Expected(2 * v + 1, 0, home) + (static_cast<float>(v) - 0.5f * g0);
    return 0.5f * (g0 + g1);
  };
  for (const GradientPush& p : pushes) {
    EXPECT_EQ(p.samples, 2 * kBatch) << p.sender;
    const int home = p.sender[1] - '0';
    EXPECT_EQ(p.gradient[0], delta(home, p.version)) << p.sender;
  }
  EXPECT_EQ(worker_->steps(), 6);           // 2 local steps for each of 3 drawn homes
  EXPECT_EQ(worker_->rounds_sat_out(), 3);  // w1 in round 0, w0 and w2 in round 1
}

TEST_F(WorkerTest, InAsyncTheHostedHomesTakeTurnsEachOnItsOwnDataOrder) {
  options_.num_workers = 2;
  options_.homes = {{"w0", 0, {}}, {"w1", 1, {}}};
  first_.Publish(Weights(0, {Mode::kAsync, 0}));
  Start();
  ASSERT_TRUE(first_.WaitForPushes(4, kWait));
  first_.Publish(Weights(1, {Mode::kAsync, 0}, /*done=*/true));
  EXPECT_TRUE(Result().ok()) << result_;
  // Their pushes travel side by side (in any order); each home's follow its
  // own data order, step by step.
  std::map<std::string, std::vector<GradientPush>> by_home;
  for (const GradientPush& p : first_.pushes()) by_home[p.sender].push_back(p);
  ASSERT_EQ(by_home.size(), 2u);
  int home = 0;
  for (const auto& [id, pushes] : by_home) {
    ASSERT_GE(pushes.size(), 2u) << id;
    for (size_t i = 0; i < pushes.size(); ++i) {
      EXPECT_EQ(pushes[i].step, static_cast<int64_t>(i)) << id;
      EXPECT_EQ(pushes[i].sequence, static_cast<int64_t>(i) + 1) << id;
      EXPECT_EQ(pushes[i].gradient[0], Expected(static_cast<int64_t>(i), 0, home)) << id;
    }
    ++home;
  }
}

TEST_F(WorkerTest, HostedHomesAreCheckedAsAWhole) {
  options_.num_workers = 2;
  options_.homes = {{"w0", 0, {}}, {"w0", 1, {}}};
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateWorkerOptions(options_)));
  options_.homes = {{"w0", 0, {}}, {"w1", 2, {}}};
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateWorkerOptions(options_)));
  options_.homes = {{"w0", 0, {}}, {"w 1", 1, {}}};
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateWorkerOptions(options_)));
  options_.homes = {{"w0", 0, {}}, {"w1", 1, {}}};
  EXPECT_TRUE(ValidateWorkerOptions(options_).ok());
}

TEST_F(WorkerTest, ShutdownEndsRunWhileItWaitsForWeights) {
  Start();  // no weights anywhere: it long-polls
  ASSERT_TRUE(first_.WaitForHeartbeats(1, kWait));
  worker_->Shutdown();
  const absl::Status s = Result();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
}

}  // namespace
}  // namespace hips
