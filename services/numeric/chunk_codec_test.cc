#include "services/numeric/chunk_codec.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

std::vector<float> Ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.5f - 3.0f;
  return v;
}

absl::StatusOr<std::vector<float>> RoundTrip(const std::vector<float>& data, size_t chunk_bytes,
                                             size_t* chunks) {
  ChunkSplitter split(data, chunk_bytes);
  *chunks = split.num_chunks();
  absl::StatusOr<ChunkAssembler> assembler = ChunkAssembler::Create(data.size(), data.size());
  if (!assembler.ok()) return assembler.status();
  for (size_t i = 0; i < split.num_chunks(); ++i) {
    if (split.chunk(i).size() > chunk_bytes) return absl::InternalError("chunk too large");
    if (absl::Status s = assembler->Append(split.chunk(i)); !s.ok()) return s;
  }
  return std::move(*assembler).Finish();
}

struct Case {
  size_t floats;
  size_t expected_chunks;
};

class ChunkRoundTripTest : public ::testing::TestWithParam<Case> {};

constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kChunkFloats = kChunkBytes / sizeof(float);

TEST_P(ChunkRoundTripTest, BytesSurviveUnchanged) {
  const std::vector<float> data = Ramp(GetParam().floats);
  size_t chunks = 0;
  absl::StatusOr<std::vector<float>> back = RoundTrip(data, kChunkBytes, &chunks);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(chunks, GetParam().expected_chunks);
  EXPECT_EQ(*back, data);  // bit for bit: the values are finite
}

INSTANTIATE_TEST_SUITE_P(Sizes, ChunkRoundTripTest,
                         ::testing::Values(Case{0, 0}, Case{1, 1}, Case{12345, 1},
                                           Case{kChunkFloats, 1}, Case{kChunkFloats + 1, 2},
                                           Case{7 * kChunkFloats / 2, 4},
                                           Case{5 * kChunkFloats, 5}));

TEST(ChunkSplitterTest, ChunksAreContiguousAndCoverTheBuffer) {
  const std::vector<float> data = Ramp(1001);
  ChunkSplitter split(data, 400);  // 100 floats a chunk
  ASSERT_EQ(split.num_chunks(), 11u);
  const char* expect = reinterpret_cast<const char*>(data.data());
  for (size_t i = 0; i < split.num_chunks(); ++i) {
    EXPECT_EQ(split.chunk(i).data(), expect);
    expect += split.chunk(i).size();
  }
  EXPECT_EQ(split.chunk(10).size(), 4u);
}

TEST(ChunkAssemblerTest, RefusesAnnouncedSizeOtherThanTheModels) {
  EXPECT_TRUE(absl::IsInvalidArgument(ChunkAssembler::Create(10, 11).status()));
}

TEST(ChunkAssemblerTest, RefusesPartialFloats) {
  absl::StatusOr<ChunkAssembler> a = ChunkAssembler::Create(4, 4);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append(absl::string_view("abcdefg", 7))));
}

TEST(ChunkAssemblerTest, RefusesMoreThanAnnounced) {
  absl::StatusOr<ChunkAssembler> a = ChunkAssembler::Create(1, 1);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append(std::string(8, '\0'))));
  EXPECT_EQ(a->received_floats(), 0);
}

TEST(ChunkAssemblerTest, RefusesFewerThanAnnounced) {
  absl::StatusOr<ChunkAssembler> a = ChunkAssembler::Create(3, 3);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Append(std::string(8, '\0')).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(std::move(*a).Finish().status()));
}

TEST(ChunkAssemblerTest, FillsASpareOfTheRightSizeInPlaceAndChecksItAsAnyOther) {
  const std::vector<float> data = Ramp(6);
  const std::string bytes(reinterpret_cast<const char*>(data.data()), 24);
  std::vector<float> spare(6, 9.0f);
  const float* where = spare.data();
  absl::StatusOr<ChunkAssembler> a = ChunkAssembler::Create(6, 6, std::move(spare));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->received_floats(), 0);
  ASSERT_TRUE(a->Append(bytes.substr(0, 8)).ok());
  EXPECT_EQ(a->received_floats(), 2);
  ASSERT_TRUE(a->Append(bytes.substr(8)).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(a->Append(bytes.substr(0, 4))));  // one too many
  absl::StatusOr<std::vector<float>> out = std::move(*a).Finish();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->data(), where);
  EXPECT_EQ(*out, data);

  // The spare's old contents never pass for data; a wrong-sized one is dropped.
  absl::StatusOr<ChunkAssembler> short_one =
      ChunkAssembler::Create(6, 6, std::vector<float>(6, 9.0f));
  ASSERT_TRUE(short_one->Append(bytes.substr(0, 8)).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(std::move(*short_one).Finish().status()));
  absl::StatusOr<ChunkAssembler> other = ChunkAssembler::Create(6, 6, std::vector<float>(5));
  ASSERT_TRUE(other->Append(bytes).ok());
  EXPECT_EQ(*std::move(*other).Finish(), data);
}

TEST(ChunkCodecTest, ValidatesChunkSize) {
  EXPECT_TRUE(ValidateChunkBytes(4).ok());
  EXPECT_TRUE(ValidateChunkBytes(1 << 20).ok());
  EXPECT_FALSE(ValidateChunkBytes(0).ok());
  EXPECT_FALSE(ValidateChunkBytes(6).ok());
  EXPECT_FALSE(ValidateChunkBytes(size_t{65} << 20).ok());
}

TEST(ChunkCodecTest, CheckFiniteNamesTheOffendingFloat) {
  std::vector<float> v = {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN()};
  absl::Status s = CheckFinite(v);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("at float 2"), std::string::npos) << s;
  v[2] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(CheckFinite(v).ok());
  v[2] = 3.0f;
  EXPECT_TRUE(CheckFinite(v).ok());
}

}  // namespace
}  // namespace hips
