// The chunk assembler of every stream a hips server or client reads (a
// worker's gradient at an aggregator, the weights a worker pulls): the
// input is a stream of raw messages (fuzz_input.h parts), the first byte of
// the input choosing the receiver. Whatever the messages, the receiver
// refuses or accepts; when it accepts, the values have exactly the size
// the header announced (a weights delta: applied to the weights the caller
// holds, every value finite).

#include <grpcpp/grpcpp.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "hips/v1/hips.pb.h"
#include "services/net/chunk_receiver.h"
#include "services/net/proto_convert.h"
#include "services/net/weights_stream.h"
#include "services/numeric/compression.h"

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

// A caller holding weights of version 3, incarnation 0, with a layout of
// 2 x 32 floats, that a delta may target.
std::shared_ptr<const hips::WeightsSnapshot> Held() {
  static const std::shared_ptr<const hips::WeightsSnapshot> held = [] {
    auto s = std::make_shared<hips::WeightsSnapshot>();
    s->version = 3;
    s->layout = *hips::ModelLayout::Create({hips::TensorSpec{"w", {2, 32}}});
    s->weights.assign(kModelFloats, 0.5f);
    return s;
  }();
  return held;
}

void WeightsStream(const std::vector<absl::string_view>& messages) {
  hips::WeightsReceiver receiver(Held());
  for (absl::string_view m : messages) {
    if (!receiver.Add(Message(m)).ok()) return;
  }
  absl::StatusOr<std::shared_ptr<const hips::WeightsSnapshot>> weights = receiver.Finish();
  if (!weights.ok()) return;
  Check(static_cast<int64_t>((*weights)->weights.size()) == receiver.header().num_floats());
  Check(static_cast<int64_t>((*weights)->weights.size()) == (*weights)->layout.num_floats());
  if (receiver.header().has_delta()) {
    Check((*weights)->layout == Held()->layout);
    for (float x : (*weights)->weights) Check(std::isfinite(x));
  }
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
