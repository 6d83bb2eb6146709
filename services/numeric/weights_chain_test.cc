#include "services/numeric/weights_chain.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<const WeightsSnapshot> Weights(int64_t version, std::vector<float> w,
                                               int64_t incarnation = 7) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->incarnation = incarnation;
  s->layout = *ModelLayout::Create({TensorSpec{"w", {static_cast<int64_t>(w.size())}}});
  s->weights = std::move(w);
  return s;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

WeightsChainOptions Bf16(int64_t resync_every = 100) {
  WeightsChainOptions o;
  o.encoding = Encoding::kBf16;
  o.resync_every = resync_every;
  return o;
}

TEST(WeightsChainTest, OptionsOutOfRangeAreRefused) {
  EXPECT_TRUE(ValidateWeightsChainOptions(Bf16()).ok());
  WeightsChainOptions o = Bf16();
  o.encoding = Encoding::kFp32;
  EXPECT_THAT(ValidateWeightsChainOptions(o).message(), HasSubstr("no lighter"));
  o = Bf16(0);
  EXPECT_THAT(ValidateWeightsChainOptions(o).message(), HasSubstr("at least 1"));
  o = Bf16();
  o.encoding = Encoding::kTopK;
  o.topk_ratio = 0;
  EXPECT_FALSE(ValidateWeightsChainOptions(o).ok());
  o.topk_ratio = 1.5;
  EXPECT_FALSE(ValidateWeightsChainOptions(o).ok());
}

// The first step sends the weights themselves; the next one a bf16 delta,
// by hand: d = (0.001, 0.5, 0); bf16(0.001) = 131·2^-17 (1.0234375·2^-10,
// the nearest of 8 significant bits), 0.5 exact.
TEST(WeightsChainTest, Bf16StepByHand) {
  WeightsChain chain(Bf16());
  auto w0 = Weights(0, {1, 2, 3});
  std::shared_ptr<const ChainStep> s0 = chain.StepTo(w0);
  EXPECT_TRUE(s0->resync());
  EXPECT_EQ(s0->weights, w0);  // the very snapshot, not a copy
  EXPECT_EQ(s0->drift, 0.0f);

  auto w1 = Weights(1, {1.001f, 2.5f, 3});
  std::shared_ptr<const ChainStep> s1 = chain.StepTo(w1);
  EXPECT_FALSE(s1->resync());
  EXPECT_EQ(s1->base_version, 0);
  EXPECT_EQ(s1->encoding, Encoding::kBf16);
  EXPECT_EQ(s1->delta.size(), 6u);  // 2 bytes a float
  const float first = 1.0f + 131.0f / 131072.0f;
  EXPECT_THAT(s1->weights->weights, ElementsAre(first, 2.5f, 3.0f));
  EXPECT_EQ(s1->weights->version, 1);
  EXPECT_FLOAT_EQ(s1->drift, 1.001f - first);

  // The receiver, holding w0, rebuilds the same bits.
  std::vector<float> received;
  ASSERT_TRUE(ApplyWeightsDelta(w0->weights, s1->DeltaValues(), &received).ok());
  EXPECT_TRUE(SameBits(received, s1->weights->weights));
  // Asked again (another aggregator): the same step, computed once.
  EXPECT_EQ(chain.StepTo(w1), s1);
}

// Top-k with k = 1 of 4: the chain is its own error feedback, so what one
// step leaves out goes with the next ones (largest first).
TEST(WeightsChainTest, TopKSendsWhatEarlierStepsLeftOut) {
  WeightsChainOptions o;
  o.encoding = Encoding::kTopK;
  o.topk_ratio = 0.25;
  WeightsChain chain(o);
  chain.StepTo(Weights(0, {0, 0, 0, 0}));
  std::shared_ptr<const ChainStep> s1 = chain.StepTo(Weights(1, {0.1f, -0.5f, 0.2f, 0}));
  EXPECT_EQ(s1->nonzeros, 1);
  EXPECT_EQ(s1->delta.size(), 8u);
  EXPECT_THAT(s1->weights->weights, ElementsAre(0, -0.5f, 0, 0));
  EXPECT_FLOAT_EQ(s1->drift, 0.2f);
  std::shared_ptr<const ChainStep> s2 = chain.StepTo(Weights(2, {0.1f, -0.5f, 0.2f, 0}));
  EXPECT_THAT(s2->weights->weights, ElementsAre(0, -0.5f, 0.2f, 0));
  std::shared_ptr<const ChainStep> s3 = chain.StepTo(Weights(3, {0.1f, -0.5f, 0.2f, 0}));
  EXPECT_THAT(s3->weights->weights, ElementsAre(0.1f, -0.5f, 0.2f, 0));
  EXPECT_EQ(s3->drift, 0.0f);
}

// A long run of random updates: every step's receiver is bit-identical to
// the sender's chain, the distance to HQ's weights stays within the stated
// bound coordinate by coordinate, and every resync_every versions (and for
// the final weights) the chain is HQ's weights exactly.
TEST(WeightsChainTest, ReceiversFollowTheChainWithinTheBoundAndResyncExactly) {
  for (Encoding encoding : {Encoding::kBf16, Encoding::kFp16, Encoding::kTopK}) {
    SCOPED_TRACE(EncodingName(encoding));
    WeightsChainOptions o;
    o.encoding = encoding;
    o.topk_ratio = 0.1;
    o.resync_every = 7;
    WeightsChain chain(o);
    std::mt19937 rng(5);
    std::normal_distribution<float> update(0.0f, 0.01f);
    std::vector<float> w(1000);
    for (float& x : w) x = update(rng) * 100;
    std::vector<float> receiver;
    int resyncs = 0;
    for (int64_t v = 0; v <= 30; ++v) {
      if (v > 0) {
        for (float& x : w) x -= update(rng);
      }
      auto hq = Weights(v, w);
      if (v == 30) std::const_pointer_cast<WeightsSnapshot>(hq)->training_done = true;
      const std::vector<float> held = receiver;
      std::shared_ptr<const ChainStep> step = chain.StepTo(hq);
      if (step->resync()) {
        ++resyncs;
        EXPECT_TRUE(SameBits(step->weights->weights, w)) << "version " << v;
        receiver = step->weights->weights;
        continue;
      }
      ASSERT_EQ(step->base_version, v - 1);
      ASSERT_TRUE(ApplyWeightsDelta(held, step->DeltaValues(), &receiver).ok());
      ASSERT_TRUE(SameBits(receiver, step->weights->weights)) << "version " << v;
      float drift = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        const float d = w[i] - held[i];
        const float distance = std::fabs(w[i] - receiver[i]);
        drift = std::max(drift, distance);
        // bf16: 2^-8 |d|; fp16: 2^-11 |d|, or half its smallest step (2^-25)
        // below its normal range; both plus the add's rounding.
        float bound = std::fabs(d);
        if (encoding == Encoding::kBf16) {
          bound = std::ldexp(std::fabs(d), -8) + std::ldexp(std::fabs(receiver[i]), -24);
        } else if (encoding == Encoding::kFp16) {
          bound = std::ldexp(std::fabs(d), -11) + std::ldexp(1.0f, -25) +
                  std::ldexp(std::fabs(receiver[i]), -24);
        }
        ASSERT_LE(distance, bound) << "version " << v << " coordinate " << i;
      }
      EXPECT_EQ(step->drift, drift);
    }
    // Versions 0, 7, 14, 21, 28 and the final 30.
    EXPECT_EQ(resyncs, 6);
  }
}

TEST(WeightsChainTest, TheChainNeverGoesBackAndStartsOverForAnotherIncarnation) {
  WeightsChain chain(Bf16());
  chain.StepTo(Weights(4, {1, 2}));
  std::shared_ptr<const ChainStep> s5 = chain.StepTo(Weights(5, {1.5f, 2}));
  // A slower caller with older weights gets the newer step.
  EXPECT_EQ(chain.StepTo(Weights(3, {9, 9})), s5);
  EXPECT_EQ(chain.StepTo(Weights(5, {1.5f, 2})), s5);
  // The same version again, now final: resent whole, exactly.
  auto done = std::const_pointer_cast<WeightsSnapshot>(Weights(5, {1.5f, 2}));
  done->training_done = true;
  std::shared_ptr<const ChainStep> final_step = chain.StepTo(done);
  EXPECT_TRUE(final_step->resync());
  EXPECT_EQ(final_step->weights, done);
  // HQ restarted from a checkpoint, at an older version: a new chain.
  auto restarted = Weights(2, {7, 8}, /*incarnation=*/8);
  std::shared_ptr<const ChainStep> again = chain.StepTo(restarted);
  EXPECT_TRUE(again->resync());
  EXPECT_EQ(again->weights, restarted);
  EXPECT_EQ(chain.Latest(), again);
  // Another model layout: whole weights.
  EXPECT_TRUE(chain.StepTo(Weights(3, {1, 2, 3}, 8))->resync());
}

TEST(WeightsChecksumTest, ChangesWithAnyFloatAnOrderOrTheCount) {
  std::vector<float> w(1003);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.001f * static_cast<float>(i) - 0.3f;
  const uint64_t base = WeightsChecksum(w);
  EXPECT_EQ(WeightsChecksum(std::vector<float>(w)), base);  // the same bits, the same sum
  for (size_t i : {size_t{0}, size_t{3}, size_t{500}, size_t{1002}}) {  // lanes and the tail
    std::vector<float> one = w;
    one[i] = std::nextafter(one[i], 1.0f);
    EXPECT_NE(WeightsChecksum(one), base) << i;
  }
  std::vector<float> swapped = w;
  std::swap(swapped[10], swapped[11]);
  EXPECT_NE(WeightsChecksum(swapped), base);
  std::vector<float> longer = w;
  longer.push_back(0.0f);
  EXPECT_NE(WeightsChecksum(longer), base);
  // -0 and +0 are different bits.
  EXPECT_NE(WeightsChecksum(std::vector<float>{0.0f}), WeightsChecksum(std::vector<float>{-0.0f}));
  // The sum by hand for two floats: bits(1.0) · 1 + bits(2.0) · 3, then the count.
  EXPECT_EQ(WeightsChecksum(std::vector<float>{1.0f, 2.0f}),
            (0x3f800000ull + 0x40000000ull * 3) ^ (2 * 0x9e3779b97f4a7c15ull));
}

TEST(WeightsChainTest, StepsCarryEverythingButTheWeightsOfHqsSnapshot) {
  WeightsChain chain(Bf16());
  chain.StepTo(Weights(0, {1}));
  auto w1 = std::const_pointer_cast<WeightsSnapshot>(Weights(1, {2}));
  w1->mode.mode = Mode::kFedAvg;
  w1->mode.local_steps = 5;
  w1->mode_since = 1;
  w1->local_sgd.lr = 0.25;
  w1->local_sgd.momentum = 0.5;
  std::shared_ptr<const ChainStep> s = chain.StepTo(w1);
  ASSERT_FALSE(s->resync());
  const WeightsSnapshot& c = *s->weights;
  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.incarnation, 7);
  EXPECT_EQ(c.layout, w1->layout);
  EXPECT_EQ(c.mode.mode, Mode::kFedAvg);
  EXPECT_EQ(c.mode.local_steps, 5);
  EXPECT_EQ(c.mode_since, 1);
  EXPECT_EQ(c.local_sgd.lr, 0.25);
  EXPECT_EQ(c.local_sgd.momentum, 0.5);
  EXPECT_FALSE(c.training_done);
}

TEST(WeightsChainTest, ABadDeltaIsRefused) {
  const std::vector<float> base = {1, 2, 3};
  std::vector<float> out;
  std::string bytes(6, '\0');
  EncodedValues delta;
  delta.encoding = Encoding::kBf16;
  delta.bytes.Append(bytes);
  delta.num_floats = 4;
  EXPECT_THAT(ApplyWeightsDelta(base, delta, &out).message(), HasSubstr("4 floats"));
  // A top-k index out of range.
  std::string entry(8, '\0');
  const uint32_t index = 9;
  const float value = 1;
  std::memcpy(entry.data(), &index, 4);
  std::memcpy(entry.data() + 4, &value, 4);
  EncodedValues topk;
  topk.encoding = Encoding::kTopK;
  topk.bytes.Append(entry);
  topk.num_floats = 3;
  topk.nonzeros = 1;
  EXPECT_FALSE(ApplyWeightsDelta(base, topk, &out).ok());
  // A sum that overflows.
  const std::vector<float> huge = {3e38f};
  const uint16_t big = FloatToBfloat16(3e38f);
  std::string half(2, '\0');
  std::memcpy(half.data(), &big, 2);
  EncodedValues overflow;
  overflow.encoding = Encoding::kBf16;
  overflow.bytes.Append(half);
  overflow.num_floats = 1;
  EXPECT_THAT(ApplyWeightsDelta(huge, overflow, &out).message(), HasSubstr("non-finite"));
}

TEST(WeightsChainTest, ADeltaThatWouldOverflowGoesAsWholeWeights) {
  WeightsChain chain(Bf16());
  chain.StepTo(Weights(0, {-3e38f}));
  auto w1 = Weights(1, {3e38f});  // the difference is not a float
  std::shared_ptr<const ChainStep> s = chain.StepTo(w1);
  EXPECT_TRUE(s->resync());
  EXPECT_EQ(s->weights, w1);
}

}  // namespace
}  // namespace hips
