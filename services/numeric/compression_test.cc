#include "services/numeric/compression.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/numeric/gradient_accumulator.h"

namespace hips {
namespace {

EncodedValues Encoded(Encoding e, const std::string& bytes, int64_t num_floats,
                      int64_t nonzeros = 0) {
  EncodedValues v;
  v.encoding = e;
  v.bytes.Append(bytes);
  v.num_floats = num_floats;
  v.nonzeros = nonzeros;
  return v;
}

std::string TopK(const std::vector<std::pair<uint32_t, float>>& entries) {
  std::string out;
  for (const auto& [index, value] : entries) {
    out.append(reinterpret_cast<const char*>(&index), 4);
    out.append(reinterpret_cast<const char*>(&value), 4);
  }
  return out;
}

TEST(HalfTest, KnownValuesRoundToNearestEvenAndSaturate) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7bff);  // saturated, not infinity
  EXPECT_EQ(FloatToHalf(-1e6f), 0xfbff);
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // a tie: to even (0)
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: to even (2)
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even (1).
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(std::nanf("")) & 0x7c00, 0x7c00);
  // Every half survives the round trip.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    EXPECT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(Bfloat16Test, KnownValuesRoundToNearestEvenAndSaturate) {
  EXPECT_EQ(FloatToBfloat16(1.0f), 0x3f80);
  EXPECT_EQ(Bfloat16ToFloat(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between two bfloat16s: to even (1).
  EXPECT_EQ(FloatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBfloat16(std::numeric_limits<float>::max()), 0x7f7f);
  EXPECT_EQ(FloatToBfloat16(std::numeric_limits<float>::infinity()), 0x7f80);
}

TEST(CompressorTest, TopKSendsTheLargestMagnitudesInIndexOrder) {
  CompressionOptions o;
  o.encoding = Encoding::kTopK;
  o.topk_ratio = 0.3;  // ceil(0.3 * 10) = 3
  o.error_feedback = false;
  Compressor c(o, 10);
  std::string bytes;
  const std::vector<float> g = {0.1f, -5, 0.2f, 3, 0, 0, -4, 0.3f, 0, 1};
  ASSERT_EQ(c.Encode(g, &bytes), 3);
  EXPECT_EQ(bytes, TopK({{1, -5}, {3, 3}, {6, -4}}));
  std::vector<float> dense(10, 7.0f);
  const EncodedValues v = Encoded(Encoding::kTopK, bytes, 10, 3);
  ASSERT_TRUE(CheckEncodedValues(v).ok());
  DecodeInto(v, dense.data());
  EXPECT_EQ(dense, (std::vector<float>{0, -5, 0, 3, 0, 0, -4, 0, 0, 0}));
}

// The norm clipping's measure, in every encoding: exact in double even for
// values whose squares overflow a float.
TEST(SquaredNormTest, EveryEncodingAndValuesBeyondAFloatsSquares) {
  const std::vector<float> g = {3, -4, 0, 12};  // 9 + 16 + 144 = 169
  EXPECT_EQ(SquaredNorm(EncodedValues(g)), 169.0);
  for (Encoding e : {Encoding::kFp16, Encoding::kBf16, Encoding::kTopK}) {
    CompressionOptions o;
    o.encoding = e;
    o.topk_ratio = 0.75;  // 3 of 4: the zero stays home
    o.error_feedback = false;
    Compressor c(o, g.size());
    std::string bytes;
    const int64_t nonzeros = c.Encode(g, &bytes);
    EXPECT_EQ(SquaredNorm(Encoded(e, bytes, 4, nonzeros)), 169.0) << EncodingName(e);
  }
  std::vector<float> huge(3000, 1e30f);  // squares of 1e60: beyond a float
  const double square = static_cast<double>(1e30f) * 1e30f;
  EXPECT_NEAR(SquaredNorm(EncodedValues(huge)), 3000 * square, 1e-12 * 3000 * square);
  huge[2999] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(std::isfinite(SquaredNorm(EncodedValues(huge))));
  EncodedValues known(g);
  known.squared_norm = 5.0;  // what a receiver computed is taken
  EXPECT_EQ(SquaredNorm(known), 5.0);
}

TEST(CompressorTest, ValuesRangesAlwaysTravelAndLeaveNoResidual) {
  // Floats 2-3 and 8 are a model's buffers: values, however small.
  CompressionOptions o;
  o.encoding = Encoding::kTopK;
  o.topk_ratio = 0.2;  // ceil(0.2 * 10) = 2, plus the 3 values
  Compressor c(o, 10, {{2, 2}, {8, 1}});
  std::string bytes;
  std::vector<float> g = {0.1f, -5, 0.01f, 0.02f, 3, 0, -4, 0.3f, 0.001f, 1};
  ASSERT_EQ(c.Encode(g, &bytes), 5);
  EXPECT_EQ(bytes, TopK({{1, -5}, {2, 0.01f}, {3, 0.02f}, {6, -4}, {8, 0.001f}}));
  // The next push: the residual of the gradients (4: 3, 9: 1, ...) competes,
  // the values are sent as they are now, with nothing added.
  g = {0, 0, 0.5f, 0.5f, 0, 0, 0, 0, 0.5f, 0};
  ASSERT_EQ(c.Encode(g, &bytes), 5);
  EXPECT_EQ(bytes, TopK({{2, 0.5f}, {3, 0.5f}, {4, 3}, {8, 0.5f}, {9, 1}}));

  // fp16 with error feedback: a value's rounding error is not carried over.
  o.encoding = Encoding::kFp16;
  Compressor half(o, 2, {{1, 1}});
  const std::vector<float> v = {0.1f, 0.1f};
  std::vector<float> dense(2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(half.Encode(v, &bytes), 0);
    DecodeInto(Encoded(Encoding::kFp16, bytes, 2), dense.data());
  }
  EXPECT_EQ(dense[1], HalfToFloat(FloatToHalf(0.1f)));  // the same both times
  EXPECT_NE(dense[0], dense[1]);                        // the gradient got its residual back
}

TEST(CompressorTest, TopKBreaksTiesByLowerIndexAndMatchesAFullSort) {
  CompressionOptions o;
  o.encoding = Encoding::kTopK;
  o.topk_ratio = 0.5;
  o.error_feedback = false;
  Compressor c(o, 6);
  std::string bytes;
  ASSERT_EQ(c.Encode(std::vector<float>{1, -2, 2, 2, -2, 1}, &bytes), 3);
  EXPECT_EQ(bytes, TopK({{1, -2}, {2, 2}, {3, 2}}));
  // Many values in one histogram bucket, and magnitudes that differ only in
  // the lowest bits: the same choice as sorting every magnitude.
  const size_t n = 5000;
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) {
    g[i] = (i % 2 ? -1.0f : 1.0f) * (1.0f + static_cast<float>((i * 7919) % n) * 1e-7f);
  }
  o.topk_ratio = 0.013;
  Compressor big(o, n);
  const int64_t k = big.Encode(g, &bytes);
  ASSERT_EQ(k, 65);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&g](size_t a, size_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
  std::vector<std::pair<uint32_t, float>> expected;
  for (int64_t j = 0; j < k; ++j)
    expected.push_back({static_cast<uint32_t>(order[j]), g[order[j]]});
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(bytes, TopK(expected));
}

TEST(CompressorTest, ErrorFeedbackSendsEverythingEventually) {
  // What was sent over n pushes plus the residual equals what was given,
  // and each float left behind is sent once it grows large enough.
  for (Encoding e : {Encoding::kTopK, Encoding::kFp16, Encoding::kBf16}) {
    CompressionOptions o;
    o.encoding = e;
    o.topk_ratio = 0.25;
    Compressor c(o, 8);
    std::vector<double> given(8, 0), sent(8, 0);
    for (int step = 0; step < 40; ++step) {
      std::vector<float> g(8);
      for (int i = 0; i < 8; ++i) g[i] = 0.001f * static_cast<float>((i + 1) * (step % 3 + 1));
      std::string bytes;
      const int64_t nonzeros = c.Encode(g, &bytes);
      std::vector<float> dense(8);
      const EncodedValues v = Encoded(e, bytes, 8, nonzeros);
      ASSERT_TRUE(CheckEncodedValues(v).ok()) << EncodingName(e);
      DecodeInto(v, dense.data());
      for (int i = 0; i < 8; ++i) {
        given[i] += g[i];
        sent[i] += dense[i];
      }
    }
    for (int i = 0; i < 8; ++i) {
      // The residual is bounded by what one top-k round can hold back.
      EXPECT_NEAR(sent[i], given[i], e == Encoding::kTopK ? 0.1 : 1e-4)
          << EncodingName(e) << " float " << i;
      EXPECT_GT(sent[i], 0) << EncodingName(e) << " float " << i << " was never sent";
    }
  }
}

TEST(EncodedValuesTest, MalformedPayloadsAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(CheckEncodedValues(Encoded(Encoding::kFp16, "abc", 2))));
  const uint16_t inf = 0x7c00, one = 0x3c00;
  std::string halves(reinterpret_cast<const char*>(&one), 2);
  halves.append(reinterpret_cast<const char*>(&inf), 2);
  EXPECT_TRUE(absl::IsInvalidArgument(CheckEncodedValues(Encoded(Encoding::kFp16, halves, 2))));
  EXPECT_TRUE(CheckEncodedValues(Encoded(Encoding::kBf16, halves, 2)).ok());  // finite as bf16
  const uint16_t bf_nan = 0x7fc0;
  std::string bf(reinterpret_cast<const char*>(&bf_nan), 2);
  EXPECT_TRUE(absl::IsInvalidArgument(CheckEncodedValues(Encoded(Encoding::kBf16, bf, 1))));
  // Top-k: out of order, repeated, out of range, non-finite, wrong count.
  for (const std::string& bytes :
       {TopK({{3, 1}, {2, 1}}), TopK({{2, 1}, {2, 1}}), TopK({{1, 1}, {9, 1}}),
        TopK({{1, 1}, {2, std::numeric_limits<float>::infinity()}})}) {
    EXPECT_TRUE(absl::IsInvalidArgument(CheckEncodedValues(Encoded(Encoding::kTopK, bytes, 9, 2))));
  }
  EXPECT_TRUE(
      absl::IsInvalidArgument(CheckEncodedValues(Encoded(Encoding::kTopK, TopK({{1, 1}}), 9, 2))));
  EXPECT_TRUE(CheckEncodedValues(Encoded(Encoding::kTopK, TopK({{1, 1}, {8, 2}}), 9, 2)).ok());
}

TEST(GradientAccumulatorEncodedTest, SumsEncodedInputsAsTheDenseFloatsTheyStandFor) {
  // Three workers: fp32, fp16 and top-k; scales are their sample counts.
  const std::vector<float> dense = {1, -2, 3, 0.5f};
  const std::vector<float> halves = {0.25f, 0.5f, -1, 2};  // exact in fp16
  std::string half_bytes;
  for (float f : halves) {
    const uint16_t h = FloatToHalf(f);
    half_bytes.append(reinterpret_cast<const char*>(&h), 2);
  }
  GradientAccumulator acc(4);
  ASSERT_TRUE(acc.Add(dense, 2.0f, 2, 0.0, 1).ok());
  ASSERT_TRUE(acc.Add(Encoded(Encoding::kFp16, half_bytes, 4), 4.0f, 4, 0.0, 1).ok());
  ASSERT_TRUE(
      acc.Add(Encoded(Encoding::kTopK, TopK({{0, 8}, {3, -1}}), 4, 2), 1.0f, 1, 0.0, 1).ok());
  const std::vector<float> expected = {2 * 1 + 4 * 0.25f + 8, 2 * -2 + 4 * 0.5f, 2 * 3 + 4 * -1.0f,
                                       2 * 0.5f + 4 * 2 - 1};
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), expected);
  EXPECT_EQ(acc.total_samples(), 7);
  EXPECT_EQ(acc.contributors(), 3);

  // A top-k first contribution: the rest of the sum is 0.
  GradientAccumulator sparse(4);
  ASSERT_TRUE(sparse.Add(Encoded(Encoding::kTopK, TopK({{2, 5}}), 4, 1), 3.0f, 3, 0.0, 1).ok());
  EXPECT_EQ(std::vector<float>(sparse.sum().begin(), sparse.sum().end()),
            (std::vector<float>{0, 0, 15, 0}));
  // A refused input leaves the sum as it was.
  EXPECT_FALSE(sparse.Add(Encoded(Encoding::kTopK, TopK({{4, 5}}), 4, 1), 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(sparse.contributors(), 1);
  EXPECT_EQ(sparse.sum()[2], 15);
}

}  // namespace
}  // namespace hips
