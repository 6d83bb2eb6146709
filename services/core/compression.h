#ifndef HIPS_SERVICES_CORE_COMPRESSION_H_
#define HIPS_SERVICES_CORE_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/core/float_pieces.h"
#include "services/core/model_layout.h"

// How gradients and aggregates travel on a hop (docs/performance.md,
// "Compression"). The sender of each hop chooses; receivers take any.

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
  // kFp32 only: the buffer that holds exactly these floats, when its owner
  // lets a GradientAccumulator take it over instead of copying out of it
  // (the first Add to a sum swaps it with the sum's own buffer, so the
  // owner is left with that one, or an empty vector). Null: copy.
  std::vector<float>* adoptable = nullptr;
};

// INVALID_ARGUMENT unless the payload has the size its encoding and counts
// say, every value is finite, and top-k indices increase and are in range.
absl::Status CheckEncodedValues(const EncodedValues& values);

// Writes the dense floats (num_floats of them) into `out`. Precondition:
// CheckEncodedValues passed.
void DecodeInto(const EncodedValues& values, float* out);
// Adds the dense floats to `out` (out[i] += value i; a top-k payload touches
// only its entries). Same precondition.
void AddDecodedInto(const EncodedValues& values, float* out);

uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBfloat16(float f);
float Bfloat16ToFloat(uint16_t h);

struct CompressionOptions {
  Encoding encoding = Encoding::kFp32;
  // kTopK: the fraction of floats sent (at least one).
  double topk_ratio = 0.01;
  // Lossy encodings add what they did not send to the next values (error
  // feedback), so nothing is lost, only delayed.
  bool error_feedback = true;
};

absl::Status ValidateCompressionOptions(const CompressionOptions& options);

// Encodes successive values of one sender (a worker's gradients, an
// aggregator's sums), keeping the error-feedback residual between them.
// The floats in `values_ranges` are values rather than increments (a model's
// buffers: ModelLayout::buffer_ranges): top-k always sends them, on top of
// its k, and no encoding carries a residual of them into the next values.
// Not thread-safe.
class Compressor {
 public:
  Compressor(CompressionOptions options, size_t num_floats,
             std::vector<FloatRange> values_ranges = {});

  const CompressionOptions& options() const { return options_; }
  size_t num_floats() const { return num_floats_; }
  // Encodes `values` (num_floats of them) into `out`; returns the number of
  // entries (top-k) or 0.
  int64_t Encode(absl::Span<const float> values, std::string* out);

 private:
  // Values are sent whole each time: nothing of them is held back.
  void ForgetValues();

  const CompressionOptions options_;
  const size_t num_floats_;
  const std::vector<FloatRange> values_ranges_;
  size_t num_values_ = 0;        // floats in values_ranges_
  std::vector<float> residual_;  // empty without error feedback
  std::vector<float> work_;
  std::vector<uint32_t> magnitudes_;
  std::vector<uint32_t> scratch_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_COMPRESSION_H_
