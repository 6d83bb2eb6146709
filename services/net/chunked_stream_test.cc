#include "services/net/chunked_stream.h"

#include <cstring>
#include <functional>
#include <vector>

#include "gtest/gtest.h"
#include "hips/v1/hips.pb.h"

namespace hips {
namespace {

// In-memory stand-ins for a gRPC writer and reader of one stream.
struct FakeWriter {
  std::vector<v1::GradientChunk> messages;
  bool Write(const v1::GradientChunk& m) {
    messages.push_back(m);
    return true;
  }
};

struct FakeReader {
  std::vector<v1::GradientChunk> messages;
  size_t next = 0;
  bool Read(v1::GradientChunk* m) {
    if (next == messages.size()) return false;
    *m = messages[next++];
    return true;
  }
};

std::function<absl::StatusOr<int64_t>(const v1::GradientHeader&)> Expect(int64_t n) {
  return [n](const v1::GradientHeader&) -> absl::StatusOr<int64_t> { return n; };
}

v1::GradientChunk Header(int64_t num_floats) {
  v1::GradientChunk first;
  first.mutable_header()->set_sender_id("w0");
  first.mutable_header()->set_num_floats(num_floats);
  return first;
}

class ChunkedStreamTest : public ::testing::TestWithParam<size_t> {};

constexpr size_t kChunkBytes = 256 << 10;
constexpr size_t kChunkFloats = kChunkBytes / 4;

TEST_P(ChunkedStreamTest, RoundTripThroughProtobufMessages) {
  const size_t n = GetParam();
  std::vector<float> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<float>(i % 1000) - 0.125f;
  FakeWriter writer;
  ASSERT_TRUE(WriteChunked(&writer, Header(n), data, kChunkBytes));
  EXPECT_EQ(writer.messages.size(), std::max<size_t>(1, (n + kChunkFloats - 1) / kChunkFloats));
  EXPECT_TRUE(writer.messages[0].has_header());
  for (size_t i = 1; i < writer.messages.size(); ++i) EXPECT_FALSE(writer.messages[i].has_header());

  // Serialize and parse each message, as the wire would.
  FakeReader reader;
  for (const v1::GradientChunk& m : writer.messages) {
    v1::GradientChunk parsed;
    ASSERT_TRUE(parsed.ParseFromString(m.SerializeAsString()));
    reader.messages.push_back(parsed);
  }
  v1::GradientHeader header;
  absl::StatusOr<std::vector<float>> back =
      ReadChunked<v1::GradientChunk>(&reader, &header, Expect(n));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(header.sender_id(), "w0");
  ASSERT_EQ(back->size(), n);
  EXPECT_EQ(0, std::memcmp(back->data(), data.data(), n * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Sizes, ChunkedStreamTest,
                         ::testing::Values(0, 1, 12347, kChunkFloats, kChunkFloats + 1,
                                           3 * (1 << 20) + 5));

TEST(ChunkedStreamErrorsTest, RefusesStreamsWithoutHeaderOrWithWrongSizes) {
  v1::GradientHeader header;
  FakeReader empty;
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunked<v1::GradientChunk>(&empty, &header, Expect(1)).status()));

  FakeReader headless;
  headless.messages.emplace_back().set_data(std::string(4, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunked<v1::GradientChunk>(&headless, &header, Expect(1)).status()));

  FakeReader wrong_count;
  wrong_count.messages.push_back(Header(3));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunked<v1::GradientChunk>(&wrong_count, &header, Expect(4)).status()));

  FakeReader ragged;
  ragged.messages.push_back(Header(2));
  ragged.messages.back().set_data(std::string(5, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunked<v1::GradientChunk>(&ragged, &header, Expect(2)).status()));

  FakeReader truncated;
  truncated.messages.push_back(Header(2));
  truncated.messages.back().set_data(std::string(4, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunked<v1::GradientChunk>(&truncated, &header, Expect(2)).status()));

  FakeReader refused;
  refused.messages.push_back(Header(2));
  auto refuse = [](const v1::GradientHeader&) -> absl::StatusOr<int64_t> {
    return absl::FailedPreconditionError("no weights yet");
  };
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ReadChunked<v1::GradientChunk>(&refused, &header,
                                     std::function<absl::StatusOr<int64_t>(
                                         const v1::GradientHeader&)>(refuse))
          .status()));
}

}  // namespace
}  // namespace hips
