// The chunk assembler of every stream a hips server or client reads (a
// worker's gradient at an aggregator, the weights a worker pulls): the
// input is a stream of raw messages (fuzz_input.h parts), the first byte of
// the input choosing the receiver. Whatever the messages, the receiver
// refuses or accepts; when it accepts, the values have exactly the size
// the header announced.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "hips/v1/hips.pb.h"
#include "services/core/compression.h"
#include "services/net/chunk_receiver.h"
#include "services/net/proto_convert.h"

namespace {

constexpr int64_t kModelFloats = 64;

grpc::ByteBuffer Message(absl::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

void Check(bool condition) {
  if (!condition) std::abort();
}

void PushStream(const std::vector<absl::string_view>& messages) {
  std::vector<float> dense;
  hips::PushReceiver<hips::v1::GradientHeader> receiver(
      [](const hips::v1::GradientHeader& h) -> absl::StatusOr<hips::PayloadShape> {
        if (absl::Status s = hips::ValidateGradientHeader(h); !s.ok()) return s;
        return hips::AnnouncedPayload(h, kModelFloats);
      },
      [](const hips::v1::GradientHeader& h) { return static_cast<float>(h.sample_count()); },
      &dense);
  for (absl::string_view m : messages) {
    if (!receiver.Add(Message(m)).ok()) return;
  }
  absl::StatusOr<hips::ReceivedValues> received = receiver.Finish();
  if (!received.ok()) return;
  // What a tier does next (PushReactor's Accept): mark the encoding the
  // header announced, check the payload, then decode it.
  hips::EncodedValues& values = received->values;
  hips::SetPayloadEncoding(receiver.header(), &values);
  Check(values.num_floats == kModelFloats);
  Check(static_cast<int64_t>(values.bytes.bytes()) ==
        hips::PayloadBytes(values.encoding, values.num_floats, values.nonzeros));
  if (!hips::CheckEncodedValues(values).ok()) return;
  std::vector<float> out(kModelFloats);
  hips::DecodeInto(values, out.data());
}

void WeightsStream(const std::vector<absl::string_view>& messages) {
  hips::AssemblingReceiver<hips::v1::WeightsHeader> receiver(
      [](const hips::v1::WeightsHeader& h) -> absl::StatusOr<int64_t> {
        absl::StatusOr<hips::ModelLayout> layout = hips::LayoutFromProto(h.layout());
        if (!layout.ok()) return layout.status();
        return layout->num_floats();
      });
  for (absl::string_view m : messages) {
    if (!receiver.Add(Message(m)).ok()) return;
  }
  absl::StatusOr<std::vector<float>> weights = receiver.Finish();
  if (!weights.ok()) return;
  Check(static_cast<int64_t>(weights->size()) == receiver.header().num_floats());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  hips::fuzz::QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<absl::string_view> messages = hips::fuzz::Parts(data + 1, size - 1);
  if (data[0] & 1) {
    WeightsStream(messages);
  } else {
    PushStream(messages);
  }
  return 0;
}
