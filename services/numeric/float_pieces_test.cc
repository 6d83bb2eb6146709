#include "services/types/float_pieces.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/numeric/parallel.h"

namespace hips {
namespace {

std::vector<float> Values(size_t n, float shift) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 97) * 0.25f - shift;
  return v;
}

// `floats` as pieces cut at the given byte offsets (inside floats too), and
// starting one byte into a buffer so that no piece is aligned.
struct Cut {
  std::string storage;
  FloatPieces pieces;
  Cut(const std::vector<float>& floats, std::vector<size_t> cuts) {
    storage.assign(1, 'x');
    storage.append(reinterpret_cast<const char*>(floats.data()), floats.size() * sizeof(float));
    cuts.push_back(floats.size() * sizeof(float));
    size_t at = 0;
    for (size_t cut : cuts) {
      pieces.Append(absl::string_view(storage).substr(1 + at, cut - at));
      at = cut;
    }
  }
};

TEST(FloatPiecesTest, RunsCoverEveryFloatOnceWhereverThePiecesAreCut) {
  const std::vector<float> floats = Values(10, 3.0f);
  for (size_t a = 0; a <= 40; ++a) {
    for (size_t b = a; b <= 40; b += 3) {
      Cut cut(floats, {a, b});
      ASSERT_EQ(cut.pieces.size(), 10u);
      EXPECT_EQ(cut.pieces.ToVector(), floats) << a << " " << b;
      std::vector<int> seen(10, 0);
      cut.pieces.ForEachRun([&](size_t first, const char*, size_t n) {
        for (size_t i = first; i < first + n; ++i) ++seen[i];
      });
      EXPECT_EQ(seen, std::vector<int>(10, 1));
    }
  }
}

TEST(FloatPiecesTest, MaxAbsBitsAndCheckFiniteSeeFloatsThatStraddlePieces) {
  std::vector<float> floats = Values(8, 1.0f);
  floats[5] = -1e30f;
  Cut cut(floats, {21, 22});  // float 5 is bytes 20..23
  float max;
  const uint32_t bits = MaxAbsBits(cut.pieces);
  std::memcpy(&max, &bits, sizeof(max));
  EXPECT_EQ(max, 1e30f);
  EXPECT_TRUE(CheckFinite(cut.pieces).ok());

  floats[5] = std::numeric_limits<float>::quiet_NaN();
  Cut bad(floats, {21, 22});
  EXPECT_GE(MaxAbsBits(bad.pieces), kNonFiniteBits);
  const absl::Status s = CheckFinite(bad.pieces);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("at float 5"), absl::string_view::npos) << s;
}

TEST(GradientAccumulatorPiecesTest, SumsOutOfPiecesExactlyAsOutOfOneBuffer) {
  const size_t n = 1001;
  const std::vector<float> a = Values(n, 5.0f), b = Values(n, -2.5f);
  GradientAccumulator whole(n), pieces(n);
  ASSERT_TRUE(whole.Add(a, 3.0f, 3, 1.0, 1).ok());
  ASSERT_TRUE(whole.Add(b, 2.0f, 2, 1.0, 1).ok());
  Cut ca(a, {1, 7, 400, 401, 2001}), cb(b, {3, 4000});
  ASSERT_TRUE(pieces.Add(ca.pieces, 3.0f, 3, 1.0, 1).ok());
  ASSERT_TRUE(pieces.Add(cb.pieces, 2.0f, 2, 1.0, 1).ok());
  ASSERT_EQ(pieces.sum().size(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(pieces.sum()[i], 3.0f * a[i] + 2.0f * b[i]);
    EXPECT_EQ(pieces.sum()[i], whole.sum()[i]);
  }
}

TEST(GradientAccumulatorPiecesTest, TwoThreadsSumExactlyAsOne) {
  const size_t n = kParallelFloats + (size_t{1} << 20) + 7;  // above the parallel threshold
  const std::vector<float> a = Values(n, 5.0f), b = Values(n, -2.5f);
  Cut cb(b, {5, 4 * 1000003 + 2, 4 * (n / 2) + 1});
  std::vector<float> sums[2];
  for (int threads : {1, 2}) {
    SetSummationThreads(threads);
    GradientAccumulator acc(n);
    ASSERT_TRUE(acc.Add(a, 3.0f, 3, 0.0, 1).ok());
    ASSERT_TRUE(acc.Add(cb.pieces, 2.0f, 2, 0.0, 1).ok());
    sums[threads - 1] = acc.TakeSum();
  }
  SetSummationThreads(1);
  ASSERT_EQ(sums[0].size(), n);
  EXPECT_TRUE(sums[0] == sums[1]);
  EXPECT_EQ(sums[1][n - 1], 3.0f * a[n - 1] + 2.0f * b[n - 1]);
}

TEST(GradientAccumulatorPiecesTest, ResetAndTakeSumStartAFreshSum) {
  GradientAccumulator acc(4);
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), std::vector<float>(4, 0.0f));
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 2, 3, 4}, 2.0f, 2, 0.0, 1).ok());
  acc.Reset();
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), std::vector<float>(4, 0.0f));
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 2, 3, 4}, 1.0f, 1, 0.0, 1).ok());
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 1, 1, 1}, 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(acc.TakeSum(), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(acc.contributors(), 0);
  EXPECT_EQ(acc.total_samples(), 0);
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 2, 3, 4}, 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(acc.TakeSum(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(acc.TakeSum(), std::vector<float>(4, 0.0f));
  // A recycled buffer's old contents never leak into the next sum.
  acc.GiveBuffer(std::vector<float>(4, 9.0f));
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), std::vector<float>(4, 0.0f));
  acc.TakeSum();
  acc.GiveBuffer(std::vector<float>(4, 9.0f));
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 2, 3, 4}, 2.0f, 2, 0.0, 1).ok());
  EXPECT_EQ(acc.TakeSum(), (std::vector<float>{2, 4, 6, 8}));
  acc.GiveBuffer(std::vector<float>(3, 9.0f));  // wrong size: ignored
  ASSERT_TRUE(acc.Add(std::vector<float>{1, 1, 1, 1}, 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(acc.TakeSum(), std::vector<float>(4, 1.0f));
}

TEST(GradientAccumulatorPiecesTest, AFirstContributionThatOverflowsIsRefusedAndLeavesNoSum) {
  GradientAccumulator acc(2);
  const float big = std::numeric_limits<float>::max() / 2;
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(std::vector<float>{big, 1}, 4.0f, 4, 0.0, 1)));
  EXPECT_EQ(acc.contributors(), 0);
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), std::vector<float>(2, 0.0f));
  ASSERT_TRUE(acc.Add(std::vector<float>{big, 1}, 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(acc.sum()[0], big);
}

// The kernels against the plain scalar loop, for every length around the
// unrolled block and an input that starts off alignment.
TEST(FloatKernelsTest, AgreeWithTheScalarLoopBitForBit) {
  for (size_t n : {0, 1, 3, 15, 16, 17, 31, 33, 100, 1001}) {
    std::vector<float> in = Values(n, 7.5f);
    if (n > 4) in[n / 3] = -1e30f;
    Cut cut(in, {});  // one piece, one byte past alignment
    const char* bytes = cut.pieces.pieces().empty() ? nullptr : cut.pieces.pieces()[0].data();
    uint32_t max = 0;
    for (float v : in) max = std::max(max, FloatBits(v) & 0x7fffffffu);
    EXPECT_EQ(n == 0 ? 0u : MaxAbsBitsOfRun(bytes, n), max) << n;

    const float scale = 3.0f;
    std::vector<float> scaled(n), added(n, 0.5f), expect_scaled(n), expect_added(n);
    uint32_t scaled_max = 0;
    for (size_t i = 0; i < n; ++i) {
      expect_scaled[i] = scale * in[i];
      expect_added[i] = 0.5f + scale * in[i];
      scaled_max = std::max(scaled_max, FloatBits(expect_scaled[i]) & 0x7fffffffu);
    }
    if (n == 0) continue;
    ScaleRun(scaled.data(), bytes, n, scale);
    EXPECT_EQ(scaled, expect_scaled) << n;
    AddScaledRun(added.data(), bytes, n, scale);
    EXPECT_EQ(added, expect_added) << n;
    std::vector<float> fused(n);
    EXPECT_EQ(ScaleRunWithMaxBits(fused.data(), bytes, n, scale), scaled_max) << n;
    EXPECT_EQ(fused, expect_scaled) << n;
    // The squares, exact in double though (3e30)^2 overflows a float.
    double expect_squares = 0;
    for (float v : expect_scaled) expect_squares += static_cast<double>(v) * v;
    EXPECT_NEAR(SquaredNormOfRun(reinterpret_cast<const char*>(expect_scaled.data()), n),
                expect_squares, 1e-6 * expect_squares)
        << n;
  }
  // Non-finite values rank above every finite one, so sums can tell.
  std::vector<float> odd = {1.0f, -std::numeric_limits<float>::infinity(), 2.0f};
  EXPECT_EQ(MaxAbsBitsOfRun(reinterpret_cast<const char*>(odd.data()), 3), kNonFiniteBits);
  odd[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_GT(MaxAbsBitsOfRun(reinterpret_cast<const char*>(odd.data()), 3), kNonFiniteBits);
  // A product that overflows shows as infinity in the fused pass's maximum.
  std::vector<float> out(3);
  odd[1] = std::numeric_limits<float>::max() / 2;
  EXPECT_EQ(ScaleRunWithMaxBits(out.data(), reinterpret_cast<const char*>(odd.data()), 3, 4.0f),
            kNonFiniteBits);
}

TEST(GradientAccumulatorPiecesTest, TakesOverAnAdoptableBufferInsteadOfCopyingIt) {
  const size_t n = 5;
  std::vector<float> mine = {2, 4, 6, 8, 10};  // already scaled
  const float* data = mine.data();
  GradientAccumulator acc(n);
  acc.GiveBuffer(std::vector<float>(n, 9.0f));
  EncodedValues values(mine);
  values.adoptable = &mine;
  ASSERT_TRUE(acc.Add(values, 1.0f, 2, 0.5, 1).ok());
  EXPECT_EQ(acc.sum().data(), data);             // the very buffer, no copy
  EXPECT_EQ(mine, std::vector<float>(n, 9.0f));  // the owner got the spare back
  EXPECT_EQ(acc.total_samples(), 2);
  // Later contributions add as usual, to the last bit.
  std::vector<float> next = {1, 1, 1, 1, 1};
  EncodedValues more(next);
  more.adoptable = &next;
  ASSERT_TRUE(acc.Add(more, 1.0f, 1, 0.0, 1).ok());
  EXPECT_EQ(next, std::vector<float>(n, 1.0f));  // not taken: the sum had started
  EXPECT_EQ(acc.TakeSum(), (std::vector<float>{3, 5, 7, 9, 11}));

  // Not with a scale other than 1 (the values would have to be multiplied),
  // and not when the values are not finite: then nothing changes hands.
  std::vector<float> raw = {1, 2, 3, 4, 5};
  EncodedValues scaled(raw);
  scaled.adoptable = &raw;
  ASSERT_TRUE(acc.Add(scaled, 2.0f, 2, 0.0, 1).ok());
  EXPECT_EQ(raw, (std::vector<float>{1, 2, 3, 4, 5}));
  EXPECT_EQ(acc.TakeSum(), (std::vector<float>{2, 4, 6, 8, 10}));
  std::vector<float> bad = {1, std::numeric_limits<float>::infinity(), 3, 4, 5};
  EncodedValues bad_values(bad);
  bad_values.adoptable = &bad;
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(bad_values, 1.0f, 1, 0.0, 1)));
  EXPECT_EQ(bad.size(), n);
  EXPECT_EQ(acc.contributors(), 0);
  EXPECT_EQ(std::vector<float>(acc.sum().begin(), acc.sum().end()), std::vector<float>(n, 0.0f));
}

}  // namespace
}  // namespace hips
