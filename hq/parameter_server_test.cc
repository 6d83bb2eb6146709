#include "hq/parameter_server.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;

// Plain SGD on a flat buffer: w -= lr · g. Records every learning rate used.
class FakeSgd final : public Optimizer {
 public:
  FakeSgd(std::vector<float> w, std::vector<double>* lrs) : w_(std::move(w)), lrs_(lrs) {}
  absl::Status Step(absl::Span<const float> g, double lr) override {
    lrs_->push_back(lr);
    for (size_t i = 0; i < w_.size(); ++i) w_[i] -= static_cast<float>(lr) * g[i];
    return absl::OkStatus();
  }
  void GetWeights(absl::Span<float> out) const override {
    std::copy(w_.begin(), w_.end(), out.begin());
  }
  int64_t num_floats() const override { return static_cast<int64_t>(w_.size()); }

 private:
  std::vector<float> w_;
  std::vector<double>* lrs_;
};

AggregatePush Aggregate(const std::string& id, int64_t version, std::vector<float> sum,
                        int64_t samples, int64_t contributors) {
  AggregatePush a;
  a.aggregator = id;
  a.version = version;
  a.total_samples = samples;
  a.contributors = contributors;
  a.loss_sum = 0.5 * samples;
  a.sum = std::move(sum);
  return a;
}

class ParameterServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<ParameterServer> Make(int aggregators, int64_t max_versions,
                                        std::string schedule = "constant") {
    ParameterServerOptions o;
    o.expected_aggregators = aggregators;
    o.max_versions = max_versions;
    o.optimizer.learning_rate = 0.5;
    o.optimizer.lr_schedule = schedule;
    return std::make_unique<ParameterServer>(
        o, *ModelLayout::Create({{"w", {2}}}),
        std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_),
        [this](std::shared_ptr<const WeightsSnapshot> s) { published_.push_back(s->version); });
  }
  std::vector<double> lrs_;
  std::vector<int64_t> published_;
};

TEST_F(ParameterServerTest, AppliesTheMeanGradientOfARoundOnceEveryAggregatorContributed) {
  auto ps = Make(2, 0);
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 0);  // one of two aggregators so far
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 2)).ok());
  // Mean gradient ([2,4] + [6,0]) / 4 = [2, 1]; w = [1,1] - 0.5·[2,1].
  std::shared_ptr<const WeightsSnapshot> w = ps->LatestWeights();
  EXPECT_EQ(w->version, 1);
  EXPECT_THAT(w->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.samples_applied, 4);
  EXPECT_EQ(s.gradients_applied, 3);
  EXPECT_DOUBLE_EQ(s.last_loss, 0.5);
  EXPECT_EQ(published_, (std::vector<int64_t>{0, 1}));
}

TEST_F(ParameterServerTest, DuplicatesAndOtherVersionsAreCountedNeverApplied) {
  auto ps = Make(2, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  absl::StatusOr<PushResult> dup = ps->AcceptAggregate(Aggregate("a0", 0, {100, 100}, 2, 1));
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ps->AcceptAggregate(Aggregate("a1", 1, {1, 1}, 1, 1)).status()));
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1)).ok());
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  // A retry of round 0 after it was applied (its ack was lost) is a
  // duplicate; a first push for round 0 from anyone else is stale.
  absl::StatusOr<PushResult> retry = ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ps->AcceptAggregate(Aggregate("a2", 0, {6, 0}, 2, 1)).status()));
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.aggregates_received, 6);
  EXPECT_EQ(s.aggregates_applied, 2);
  EXPECT_EQ(s.aggregates_duplicate, 2);
  EXPECT_EQ(s.aggregates_dropped.at("future_version"), 1);
  EXPECT_EQ(s.aggregates_dropped.at("stale_version"), 1);
  EXPECT_EQ(lrs_.size(), 1u);
}

TEST_F(ParameterServerTest, StopsAtTheBudgetWithCosineDecay) {
  auto ps = Make(1, 2, "cosine");
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());
  EXPECT_FALSE(ps->LatestWeights()->training_done);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {1, 1}, 1, 1)).ok());
  EXPECT_TRUE(ps->LatestWeights()->training_done);
  EXPECT_TRUE(ps->status().training_done);
  // lr(v) = 0.5 · ½(1 + cos(π v / 2)): 0.5 at v=0, 0.25 at v=1.
  EXPECT_THAT(lrs_, ElementsAre(0.5, ::testing::DoubleNear(0.25, 1e-12)));
  // Nothing is applied past the budget.
  EXPECT_FALSE(ps->AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->status().version, 2);
}

}  // namespace
}  // namespace hips
