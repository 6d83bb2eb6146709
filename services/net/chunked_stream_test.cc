#include "services/net/chunked_stream.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.pb.h"
#include "services/net/raw_chunks.h"

namespace hips {
namespace {

std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// `bytes` as a ByteBuffer cut into slices of `piece` bytes, as gRPC's reads
// may cut a message anywhere (also inside a float or a varint).
grpc::ByteBuffer Sliced(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.substr(at, piece));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// In-memory stand-ins for a gRPC writer and reader of one stream.
struct FakeWriter {
  std::vector<std::string> messages;  // wire bytes
  bool Write(const grpc::ByteBuffer& m) {
    messages.push_back(Flatten(m));
    return true;
  }
};

struct FakeReader {
  std::vector<std::string> messages;
  size_t piece = 1 << 20;
  size_t next = 0;
  bool Read(grpc::ByteBuffer* m) {
    if (next == messages.size()) return false;
    *m = Sliced(messages[next++], piece);
    return true;
  }
  void Add(const v1::GradientChunk& m) { messages.push_back(m.SerializeAsString()); }
};

std::function<absl::StatusOr<int64_t>(const v1::GradientHeader&)> Expect(int64_t n) {
  return [n](const v1::GradientHeader&) -> absl::StatusOr<int64_t> { return n; };
}

v1::GradientHeader Header(int64_t num_floats) {
  v1::GradientHeader h;
  h.set_sender_id("w0");
  h.set_num_floats(num_floats);
  return h;
}

v1::GradientChunk HeaderChunk(int64_t num_floats) {
  v1::GradientChunk c;
  *c.mutable_header() = Header(num_floats);
  return c;
}

std::vector<float> Data(size_t n) {
  std::vector<float> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<float>(i % 1000) - 0.125f;
  return data;
}

constexpr size_t kChunkBytes = 256 << 10;
constexpr size_t kChunkFloats = kChunkBytes / 4;

class ChunkedStreamTest : public ::testing::TestWithParam<size_t> {};

TEST_P(ChunkedStreamTest, RawMessagesAreProtobufMessagesAndRoundTrip) {
  const size_t n = GetParam();
  const std::vector<float> data = Data(n);
  FakeWriter writer;
  SliceRelease release;
  {
    const std::vector<grpc::Slice> chunks = ReferenceChunks(data, kChunkBytes, release.owner());
    ASSERT_TRUE(WriteChunked(&writer, Header(n).SerializeAsString(), chunks));
  }
  // Every slice (and so every reference to `data`) is gone.
  EXPECT_TRUE(release.Wait(absl::Seconds(5)));
  EXPECT_EQ(writer.messages.size(), std::max<size_t>(1, (n + kChunkFloats - 1) / kChunkFloats));

  // A protobuf peer parses what the raw writer wrote.
  std::string via_protobuf;
  for (size_t i = 0; i < writer.messages.size(); ++i) {
    v1::GradientChunk parsed;
    ASSERT_TRUE(parsed.ParseFromString(writer.messages[i]));
    EXPECT_EQ(parsed.has_header(), i == 0);
    via_protobuf += parsed.data();
  }
  ASSERT_EQ(via_protobuf.size(), n * sizeof(float));
  EXPECT_EQ(0, std::memcmp(via_protobuf.data(), data.data(), via_protobuf.size()));

  // The raw reader reads it back, however the messages are sliced.
  for (size_t piece : {size_t{1} << 20, size_t{4093}, size_t{7}}) {
    if (piece == 7 && n > 20000) continue;  // byte-sized slices: small cases only
    FakeReader reader{writer.messages, piece};
    v1::GradientHeader header;
    absl::StatusOr<std::vector<float>> back = ReadChunked(&reader, &header, Expect(n));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(header.sender_id(), "w0");
    ASSERT_EQ(back->size(), n);
    EXPECT_EQ(0, std::memcmp(back->data(), data.data(), n * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, ChunkedStreamTest,
                         ::testing::Values(0, 1, 12347, kChunkFloats, kChunkFloats + 1,
                                           3 * (1 << 20) + 5));

TEST(ChunkedStreamTest, ReadsWhatAProtobufPeerWrites) {
  // Header after the data, an unknown field of every wire type in between.
  v1::GradientChunk first = HeaderChunk(3);
  first.set_data(std::string(reinterpret_cast<const char*>(Data(2).data()), 8));
  std::string bytes = first.SerializeAsString();
  bytes += std::string("\x18\x96\x01", 3);           // field 3, varint
  bytes += std::string("\x21", 1) + std::string(8, 'a');  // field 4, fixed64
  bytes += std::string("\x2d", 1) + std::string(4, 'b');  // field 5, fixed32
  bytes += std::string("\x32\x02zz", 4);             // field 6, length-delimited
  v1::GradientChunk second;
  const float third = Data(3)[2];
  second.set_data(std::string(reinterpret_cast<const char*>(&third), 4));
  FakeReader reader{{bytes, second.SerializeAsString()}, 3};
  v1::GradientHeader header;
  absl::StatusOr<std::vector<float>> back = ReadChunked(&reader, &header, Expect(3));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Data(3));
}

TEST(ChunkedStreamTest, InPlaceReadKeepsTheSlicesAndFindsTheLargestMagnitudeOnTheWay) {
  std::vector<float> data = Data(70001);
  data[54321] = -12345.5f;
  FakeWriter writer;
  {
    SliceRelease release;
    const std::vector<grpc::Slice> chunks = ReferenceChunks(data, 4096 * 4, release.owner());
    ASSERT_TRUE(WriteChunked(&writer, Header(data.size()).SerializeAsString(), chunks));
  }
  FakeReader reader{writer.messages, 1001};  // slices cut inside floats
  v1::GradientHeader header;
  std::function<absl::StatusOr<PayloadShape>(const v1::GradientHeader&)> shape =
      [](const v1::GradientHeader& h) -> absl::StatusOr<PayloadShape> {
    return PayloadShape{h.num_floats() * 4, 4};
  };
  absl::StatusOr<ReceivedValues> in = ReadChunkedInPlace(&reader, &header, shape);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_GT(in->values.bytes.pieces().size(), writer.messages.size());  // many slices, no copy
  EXPECT_EQ(in->values.bytes.ToVector(), data);
  EXPECT_EQ(in->values.max_abs_bits, MaxAbsBits(data));
  float max;
  std::memcpy(&max, &in->values.max_abs_bits, sizeof(max));
  EXPECT_EQ(max, 12345.5f);

  // A NaN anywhere is known before anyone sums the values.
  data[777] = std::nanf("");
  FakeWriter bad_writer;
  {
    SliceRelease release;
    ASSERT_TRUE(WriteChunked(&bad_writer, Header(data.size()).SerializeAsString(),
                             ReferenceChunks(data, 4096 * 4, release.owner())));
  }
  FakeReader bad{bad_writer.messages, 999};
  absl::StatusOr<ReceivedValues> nan = ReadChunkedInPlace(&bad, &header, shape);
  ASSERT_TRUE(nan.ok());
  EXPECT_GE(nan->values.max_abs_bits, kNonFiniteBits);
  nan->values.num_floats = static_cast<int64_t>(data.size());
  EXPECT_TRUE(absl::IsInvalidArgument(CheckEncodedValues(nan->values)));
}

TEST(ChunkedStreamTest, ScaledReadWritesScaledValuesIntoTheGivenBufferAndKeepsNoSlices) {
  std::vector<float> data = Data(70001);
  data[54321] = -12345.5f;
  FakeWriter writer;
  {
    SliceRelease release;
    ASSERT_TRUE(WriteChunked(&writer, Header(data.size()).SerializeAsString(),
                             ReferenceChunks(data, 4096 * 4, release.owner())));
  }
  std::function<absl::StatusOr<PayloadShape>(const v1::GradientHeader&)> shape =
      [](const v1::GradientHeader& h) -> absl::StatusOr<PayloadShape> {
    return PayloadShape{h.num_floats() * 4, 4};
  };
  std::function<float(const v1::GradientHeader&)> three = [](const v1::GradientHeader&) {
    return 3.0f;
  };
  std::vector<float> buffer(data.size(), 7.0f);  // a spare: reused, not reallocated
  const float* spare = buffer.data();
  FakeReader reader{writer.messages, 1001};  // slices cut inside floats
  v1::GradientHeader header;
  absl::StatusOr<ReceivedValues> in = ReadChunkedScaled(&reader, &header, shape, three, &buffer);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_TRUE(in->scaled);
  EXPECT_EQ(in->owner, nullptr);  // no slices held
  EXPECT_EQ(buffer.data(), spare);
  ASSERT_EQ(in->values.bytes.pieces().size(), 1u);
  EXPECT_EQ(in->values.bytes.pieces()[0].data(), reinterpret_cast<const char*>(spare));
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(buffer[i], 3.0f * data[i]) << i;
  float max;
  std::memcpy(&max, &in->values.max_abs_bits, sizeof(max));
  EXPECT_EQ(max, 3.0f * 12345.5f);

  // A stream cut short is an error, whatever the buffer holds by then.
  FakeWriter short_writer;
  short_writer.messages.assign(writer.messages.begin(), writer.messages.end() - 1);
  FakeReader cut{short_writer.messages, 4096};
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadChunkedScaled(&cut, &header, shape, three, &buffer).status()));

  // A compressed payload (2-byte elements here) is read in place as before.
  std::function<absl::StatusOr<PayloadShape>(const v1::GradientHeader&)> halves =
      [](const v1::GradientHeader& h) -> absl::StatusOr<PayloadShape> {
    return PayloadShape{h.num_floats() * 4, 2};
  };
  FakeReader again{writer.messages, 1001};
  std::vector<float> untouched;
  absl::StatusOr<ReceivedValues> raw = ReadChunkedScaled(&again, &header, halves, three, &untouched);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_FALSE(raw->scaled);
  EXPECT_NE(raw->owner, nullptr);
  EXPECT_TRUE(untouched.empty());
  EXPECT_EQ(raw->values.bytes.ToVector(), data);

  // An empty payload (an aggregate of no gradients) leaves the spare alone.
  FakeWriter empty_writer;
  ASSERT_TRUE(WriteChunked(&empty_writer, Header(0).SerializeAsString(), {}));
  FakeReader empty{empty_writer.messages, 1001};
  absl::StatusOr<ReceivedValues> none = ReadChunkedScaled(&empty, &header, shape, three, &buffer);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->values.bytes.bytes(), 0u);
  EXPECT_EQ(buffer.size(), data.size());
}

TEST(ChunkedStreamErrorsTest, RefusesStreamsWithoutHeaderOrWithWrongSizes) {
  v1::GradientHeader header;
  FakeReader empty;
  EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&empty, &header, Expect(1)).status()));

  FakeReader headless;
  v1::GradientChunk data_only;
  data_only.set_data(std::string(4, 'x'));
  headless.Add(data_only);
  EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&headless, &header, Expect(1)).status()));

  FakeReader wrong_count;
  wrong_count.Add(HeaderChunk(3));
  EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&wrong_count, &header, Expect(4)).status()));

  FakeReader ragged;
  v1::GradientChunk ragged_chunk = HeaderChunk(2);
  ragged_chunk.set_data(std::string(5, 'x'));
  ragged.Add(ragged_chunk);
  EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&ragged, &header, Expect(2)).status()));

  FakeReader truncated;
  v1::GradientChunk short_chunk = HeaderChunk(2);
  short_chunk.set_data(std::string(4, 'x'));
  truncated.Add(short_chunk);
  EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&truncated, &header, Expect(2)).status()));

  FakeReader refused;
  refused.Add(HeaderChunk(2));
  std::function<absl::StatusOr<int64_t>(const v1::GradientHeader&)> refuse =
      [](const v1::GradientHeader&) -> absl::StatusOr<int64_t> {
    return absl::FailedPreconditionError("no weights yet");
  };
  EXPECT_TRUE(absl::IsFailedPrecondition(ReadChunked(&refused, &header, refuse).status()));
}

TEST(ChunkedStreamErrorsTest, RefusesBytesThatAreNotAChunkMessage) {
  const std::string header = HeaderChunk(1).SerializeAsString();
  const std::vector<std::string> bad = {
      std::string("\x0a\x08", 2) + "abcd",    // data shorter than its length
      std::string("\x08\x01", 2) + header,    // data field as a varint
      std::string("\x12\x05", 2) + "ab",      // header shorter than its length
      std::string("\x0b", 1),                 // a group (wire type 3)
      std::string("\x0a\x04", 2) + "abcd" + std::string("\x0a\x04", 2) + "abcd" + header,
      std::string("\x12\x03", 2) + "\xff\xff\xff",  // header bytes that do not parse
      std::string("\x80", 1),                 // truncated varint key
  };
  for (const std::string& bytes : bad) {
    FakeReader reader{{bytes}};
    v1::GradientHeader h;
    EXPECT_TRUE(absl::IsInvalidArgument(ReadChunked(&reader, &h, Expect(1)).status()))
        << absl::CEscape(bytes);
  }
}

}  // namespace
}  // namespace hips
