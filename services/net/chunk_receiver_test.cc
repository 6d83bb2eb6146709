#include "services/net/chunk_receiver.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.pb.h"
#include "services/net/raw_chunks.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/compression.h"

namespace hips {
namespace {

std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
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

// The wire bytes of every message of `payload`.
std::vector<std::string> Messages(const ChunkedPayload& payload) {
  std::vector<std::string> out;
  for (size_t i = 0; i < payload.messages(); ++i) out.push_back(Flatten(payload.Message(i)));
  return out;
}

// `data` sent as a stream of `chunk_bytes` chunks with a header of its size.
std::vector<std::string> Stream(const std::vector<float>& data, size_t chunk_bytes);

// Feeds `messages` to `receiver`, each cut into slices of `piece` bytes as
// gRPC's reads may cut them; the first error.
template <typename Receiver>
absl::Status Feed(Receiver* receiver, const std::vector<std::string>& messages,
                  size_t piece = 1 << 20) {
  for (const std::string& m : messages) {
    if (absl::Status s = receiver->Add(Sliced(m, piece)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A whole stream through an AssemblingReceiver.
absl::StatusOr<std::vector<float>> Assemble(
    const std::vector<std::string>& messages, size_t piece,
    AssemblingReceiver<v1::GradientHeader>::FloatsFn expected,
    v1::GradientHeader* header = nullptr) {
  AssemblingReceiver<v1::GradientHeader> receiver(std::move(expected));
  if (absl::Status s = Feed(&receiver, messages, piece); !s.ok()) return s;
  if (header != nullptr) *header = receiver.header();
  return receiver.Finish();
}

AssemblingReceiver<v1::GradientHeader>::FloatsFn Expect(int64_t n) {
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

std::vector<std::string> Stream(const std::vector<float>& data, size_t chunk_bytes) {
  SliceRelease release;
  return Messages(ChunkedPayload{Header(static_cast<int64_t>(data.size())).SerializeAsString(),
                                 ReferenceChunks(data, chunk_bytes, release.owner())});
}

class ChunkedStreamTest : public ::testing::TestWithParam<size_t> {};

TEST_P(ChunkedStreamTest, RawMessagesAreProtobufMessagesAndRoundTrip) {
  const size_t n = GetParam();
  const std::vector<float> data = Data(n);
  std::vector<std::string> messages;
  SliceRelease release;
  {
    const ChunkedPayload payload{Header(n).SerializeAsString(),
                                 ReferenceChunks(data, kChunkBytes, release.owner())};
    messages = Messages(payload);
  }
  // Every slice (and so every reference to `data`) is gone.
  EXPECT_TRUE(release.Wait(absl::Seconds(5)));
  EXPECT_EQ(messages.size(), std::max<size_t>(1, (n + kChunkFloats - 1) / kChunkFloats));

  // A protobuf peer parses what the raw writer wrote.
  std::string via_protobuf;
  for (size_t i = 0; i < messages.size(); ++i) {
    v1::GradientChunk parsed;
    ASSERT_TRUE(parsed.ParseFromString(messages[i]));
    EXPECT_EQ(parsed.has_header(), i == 0);
    via_protobuf += parsed.data();
  }
  ASSERT_EQ(via_protobuf.size(), n * sizeof(float));
  EXPECT_EQ(via_protobuf,
            std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));

  // The raw reader reads it back, however the messages are sliced.
  for (size_t piece : {size_t{1} << 20, size_t{4093}, size_t{7}}) {
    if (piece == 7 && n > 20000) continue;  // byte-sized slices: small cases only
    v1::GradientHeader header;
    absl::StatusOr<std::vector<float>> back = Assemble(messages, piece, Expect(n), &header);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(header.sender_id(), "w0");
    EXPECT_EQ(*back, data);
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
  bytes += std::string("\x18\x96\x01", 3);                // field 3, varint
  bytes += std::string("\x21", 1) + std::string(8, 'a');  // field 4, fixed64
  bytes += std::string("\x2d", 1) + std::string(4, 'b');  // field 5, fixed32
  bytes += std::string("\x32\x02zz", 4);                  // field 6, length-delimited
  v1::GradientChunk second;
  const float third = Data(3)[2];
  second.set_data(std::string(reinterpret_cast<const char*>(&third), 4));
  absl::StatusOr<std::vector<float>> back =
      Assemble({bytes, second.SerializeAsString()}, 3, Expect(3));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Data(3));
}

PushReceiver<v1::GradientHeader>::ShapeFn Floats(size_t element_bytes = 4) {
  return [element_bytes](const v1::GradientHeader& h) -> absl::StatusOr<PayloadShape> {
    return PayloadShape{h.num_floats() * 4, element_bytes};
  };
}

float Three(const v1::GradientHeader&) { return 3.0f; }

TEST(PushReceiverTest, WritesScaledValuesIntoTheGivenBufferAndKeepsNoSlices) {
  std::vector<float> data = Data(70001);
  data[54321] = -12345.5f;
  const std::vector<std::string> messages = Stream(data, 4096 * 4);
  std::vector<float> buffer(data.size(), 7.0f);  // a spare: reused, not reallocated
  const float* spare = buffer.data();
  PushReceiver<v1::GradientHeader> receiver(Floats(), Three, &buffer, /*squares=*/true);
  ASSERT_TRUE(Feed(&receiver, messages, 1001).ok());  // slices cut inside floats
  absl::StatusOr<ReceivedValues> in = receiver.Finish();
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(receiver.header().sender_id(), "w0");
  EXPECT_TRUE(in->scaled);
  EXPECT_EQ(in->owner, nullptr);  // no slices held
  EXPECT_EQ(buffer.data(), spare);
  ASSERT_EQ(in->values.bytes.pieces().size(), 1u);
  EXPECT_EQ(in->values.bytes.pieces()[0].data(), reinterpret_cast<const char*>(spare));
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(buffer[i], 3.0f * data[i]) << i;
  float max;
  std::memcpy(&max, &in->values.max_abs_bits, sizeof(max));
  EXPECT_EQ(max, 3.0f * 12345.5f);
  // And the sum of the squares (the norm clipping needs), as a pass over the
  // values afterwards would find it.
  double squares = 0;
  for (float v : buffer) squares += static_cast<double>(v) * v;
  EXPECT_NEAR(in->values.squared_norm, squares, 1e-6 * squares);
  EXPECT_EQ(SquaredNorm(in->values), in->values.squared_norm);
  // Bit for bit the one pass over the whole buffer, however the transport
  // cut the stream: a rerun's rounds of 2 hold down by the same factor.
  const double whole = SquaredNormOfRun(reinterpret_cast<const char*>(buffer.data()), buffer.size());
  EXPECT_EQ(in->values.squared_norm, whole);
  for (const auto& [chunk_bytes, slice] : {std::pair<size_t, size_t>{777 * 4, 333},
                                          {4096 * 4 + 12, 5000}, {70001 * 4, 70001 * 4}}) {
    std::vector<float> other(data.size());
    PushReceiver<v1::GradientHeader> cut(Floats(), Three, &other, /*squares=*/true);
    ASSERT_TRUE(Feed(&cut, Stream(data, chunk_bytes), slice).ok());
    absl::StatusOr<ReceivedValues> again = cut.Finish();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->values.squared_norm, whole) << chunk_bytes << " " << slice;
  }

  // A NaN anywhere is known before anyone sums the values.
  data[777] = std::nanf("");
  PushReceiver<v1::GradientHeader> nan(Floats(), Three, &buffer);
  ASSERT_TRUE(Feed(&nan, Stream(data, 4096 * 4), 999).ok());
  absl::StatusOr<ReceivedValues> with_nan = nan.Finish();
  ASSERT_TRUE(with_nan.ok());
  EXPECT_GE(with_nan->values.max_abs_bits, kNonFiniteBits);
  EXPECT_TRUE(std::isnan(SquaredNorm(with_nan->values)));
}

TEST(PushReceiverTest, AStreamCutShortIsRefused) {
  std::vector<std::string> messages = Stream(Data(70001), 4096 * 4);
  messages.pop_back();
  std::vector<float> buffer;
  PushReceiver<v1::GradientHeader> receiver(Floats(), Three, &buffer);
  ASSERT_TRUE(Feed(&receiver, messages, 4096).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(receiver.Finish().status()));
}

TEST(PushReceiverTest, CompressedAndEmptyPayloadsAreKeptInPlace) {
  // A compressed payload (2-byte elements here) is read in place.
  const std::vector<float> data = Data(70001);
  std::vector<float> untouched;
  PushReceiver<v1::GradientHeader> receiver(Floats(2), Three, &untouched);
  ASSERT_TRUE(Feed(&receiver, Stream(data, 4096 * 4), 1001).ok());
  absl::StatusOr<ReceivedValues> raw = receiver.Finish();
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_FALSE(raw->scaled);
  EXPECT_NE(raw->owner, nullptr);
  EXPECT_GT(raw->values.bytes.pieces().size(), 18u);  // many slices, no copy
  EXPECT_TRUE(untouched.empty());
  EXPECT_EQ(raw->values.bytes.ToVector(), data);

  // An empty payload (an aggregate of no gradients) leaves the spare alone.
  std::vector<float> buffer(5, 1.0f);
  PushReceiver<v1::GradientHeader> empty(Floats(), Three, &buffer);
  ASSERT_TRUE(Feed(&empty, Stream({}, 4096)).ok());
  absl::StatusOr<ReceivedValues> none = empty.Finish();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->values.bytes.bytes(), 0u);
  EXPECT_EQ(buffer.size(), 5u);
}

TEST(PushReceiverTest, RefusesWhatItsHeaderCheckRefusesAndChunksBeyondTheAnnouncedBytes) {
  std::vector<float> buffer;
  PushReceiver<v1::GradientHeader> refused(
      [](const v1::GradientHeader&) -> absl::StatusOr<PayloadShape> {
        return absl::UnavailableError("no weights yet");
      },
      Three, &buffer);
  EXPECT_TRUE(absl::IsUnavailable(Feed(&refused, Stream(Data(4), 8))));

  std::vector<std::string> extra = Stream(Data(4), 8);
  extra.push_back(extra.back());
  PushReceiver<v1::GradientHeader> too_long(Floats(), Three, &buffer);
  EXPECT_TRUE(absl::IsInvalidArgument(Feed(&too_long, extra)));

  v1::GradientChunk ragged = HeaderChunk(2);
  ragged.set_data(std::string(5, 'x'));
  PushReceiver<v1::GradientHeader> partial(Floats(), Three, &buffer);
  EXPECT_TRUE(absl::IsInvalidArgument(Feed(&partial, {ragged.SerializeAsString()})));

  PushReceiver<v1::GradientHeader> nothing(Floats(), Three, &buffer);
  EXPECT_TRUE(absl::IsInvalidArgument(nothing.Finish().status()));
}

TEST(ChunkedStreamErrorsTest, RefusesStreamsWithoutHeaderOrWithWrongSizes) {
  EXPECT_TRUE(absl::IsInvalidArgument(Assemble({}, 4096, Expect(1)).status()));

  v1::GradientChunk data_only;
  data_only.set_data(std::string(4, 'x'));
  EXPECT_TRUE(
      absl::IsInvalidArgument(Assemble({data_only.SerializeAsString()}, 4096, Expect(1)).status()));

  EXPECT_TRUE(absl::IsInvalidArgument(
      Assemble({HeaderChunk(3).SerializeAsString()}, 4096, Expect(4)).status()));

  v1::GradientChunk ragged_chunk = HeaderChunk(2);
  ragged_chunk.set_data(std::string(5, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(
      Assemble({ragged_chunk.SerializeAsString()}, 4096, Expect(2)).status()));

  v1::GradientChunk short_chunk = HeaderChunk(2);
  short_chunk.set_data(std::string(4, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(
      Assemble({short_chunk.SerializeAsString()}, 4096, Expect(2)).status()));

  AssemblingReceiver<v1::GradientHeader>::FloatsFn refuse =
      [](const v1::GradientHeader&) -> absl::StatusOr<int64_t> {
    return absl::FailedPreconditionError("no weights yet");
  };
  EXPECT_TRUE(absl::IsFailedPrecondition(
      Assemble({HeaderChunk(2).SerializeAsString()}, 4096, refuse).status()));
}

TEST(ChunkedStreamErrorsTest, RefusesBytesThatAreNotAChunkMessage) {
  const std::string header = HeaderChunk(1).SerializeAsString();
  const std::vector<std::string> bad = {
      std::string("\x0a\x08", 2) + "abcd",  // data shorter than its length
      std::string("\x08\x01", 2) + header,  // data field as a varint
      std::string("\x12\x05", 2) + "ab",    // header shorter than its length
      std::string("\x0b", 1),               // a group (wire type 3)
      std::string("\x0a\x04", 2) + "abcd" + std::string("\x0a\x04", 2) + "abcd" + header,
      std::string("\x12\x03", 2) + "\xff\xff\xff",  // header bytes that do not parse
      std::string("\x80", 1),                       // truncated varint key
  };
  for (const std::string& bytes : bad) {
    EXPECT_TRUE(absl::IsInvalidArgument(Assemble({bytes}, 4096, Expect(1)).status()))
        << absl::CEscape(bytes);
  }
}

}  // namespace
}  // namespace hips
