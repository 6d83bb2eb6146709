#ifndef HIPS_SERVICES_NUMERIC_COMPRESSION_H_
#define HIPS_SERVICES_NUMERIC_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/types/encoding.h"
#include "services/types/float_pieces.h"
#include "services/types/model_layout.h"

// The codecs of the encodings gradients, aggregates and weights travel in
// (services/types/encoding.h; docs/performance.md, "Compression"), and the
// Compressor that keeps a sender's error feedback.

namespace hips {

// INVALID_ARGUMENT unless the payload has the size its encoding and counts
// say, every value is finite, and top-k indices increase and are in range.
absl::Status CheckEncodedValues(const EncodedValues& values);

// The sum of the squares of the dense floats, in double (the L2 norm's
// square): +inf or NaN when a value is not finite. The receiver's
// EncodedValues::squared_norm when it computed it. Same size precondition as
// DecodeInto (the payload's size checked; values need not be finite).
double SquaredNorm(const EncodedValues& values);

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

#endif  // HIPS_SERVICES_NUMERIC_COMPRESSION_H_
