#ifndef HIPS_SERVICES_TYPES_ENCODING_H_
#define HIPS_SERVICES_TYPES_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/types/float_pieces.h"

// How gradients and aggregates travel on a hop (docs/performance.md,
// "Compression"): the encodings and the values they carry, as value types.
// The sender of each hop chooses; receivers take any. The codecs are in
// services/numeric/compression.h.

namespace hips {

enum class Encoding {
  kFp32,  // 4 bytes per float
  kFp16,  // 2 bytes per float: IEEE binary16, round to nearest even,
          // saturated at ±65504 (error feedback carries the rest)
  kBf16,  // 2 bytes per float: the upper half of binary32, nearest even
  kTopK,  // `nonzeros` entries of 8 bytes, uint32 index (increasing) then
          // float32 value; every other float is 0
};

absl::string_view EncodingName(Encoding e);  // "fp32", "fp16", "bf16", "topk"
absl::StatusOr<Encoding> ParseEncoding(absl::string_view name);
// Bytes of one element of the payload (a chunk carries whole elements).
size_t ElementBytes(Encoding e);
int64_t PayloadBytes(Encoding e, int64_t num_floats, int64_t nonzeros);

// What a push stream's data must add up to: `bytes`, in whole elements of
// `element_bytes` per chunk.
struct PayloadShape {
  int64_t bytes = 0;
  size_t element_bytes = sizeof(float);
};

// EncodedValues::max_abs_bits when nobody computed it (a real value has the
// sign bit clear, so it never equals this).
inline constexpr uint32_t kUnknownMaxBits = 0xffffffffu;

// A gradient's (or sum's) values as they travel: `bytes` in `encoding`,
// standing for `num_floats` dense floats. Views only, like FloatPieces.
struct EncodedValues {
  EncodedValues() = default;
  // Plain float32 values.
  EncodedValues(FloatPieces floats)  // NOLINT: implicit on purpose
      : bytes(std::move(floats)), num_floats(static_cast<int64_t>(bytes.size())) {}
  EncodedValues(const std::vector<float>& floats)  // NOLINT: implicit on purpose
      : EncodedValues(FloatPieces(floats)) {}
  EncodedValues(absl::Span<const float> floats)  // NOLINT: implicit on purpose
      : EncodedValues(FloatPieces(floats)) {}

  Encoding encoding = Encoding::kFp32;
  FloatPieces bytes;
  int64_t num_floats = 0;
  int64_t nonzeros = 0;  // kTopK only
  // kFp32: MaxAbsBits of the values (chunk_codec.h) if the receiver already
  // computed it while the chunks arrived, overlapped with the transfer;
  // kUnknownMaxBits otherwise.
  uint32_t max_abs_bits = kUnknownMaxBits;
  // kFp32: the sum of the squares of the values (SquaredNorm) if the
  // receiver already computed it while the chunks arrived; < 0: unknown.
  double squared_norm = -1.0;
  // kFp32 only: the buffer that holds exactly these floats, when its owner
  // lets a GradientAccumulator take it over instead of copying out of it
  // (the first Add to a sum swaps it with the sum's own buffer, so the
  // owner is left with that one, or an empty vector). Null: copy.
  std::vector<float>* adoptable = nullptr;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_ENCODING_H_
