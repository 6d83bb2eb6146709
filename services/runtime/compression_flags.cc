#include "services/runtime/compression_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, compression, "none",
          "How pushed gradients travel on this hop: none (fp32), fp16, bf16 or topk.");
ABSL_FLAG(double, topk_ratio, 0.01, "--compression=topk: the fraction of floats sent.");
ABSL_FLAG(bool, error_feedback, true,
          "Lossy compression: add what was not sent to the next push (error feedback).");

namespace hips {

absl::StatusOr<CompressionOptions> CompressionOptionsFromFlags() {
  CompressionOptions o;
  absl::StatusOr<Encoding> encoding = ParseEncoding(absl::GetFlag(FLAGS_compression));
  if (!encoding.ok()) return encoding.status();
  o.encoding = *encoding;
  o.topk_ratio = absl::GetFlag(FLAGS_topk_ratio);
  o.error_feedback = absl::GetFlag(FLAGS_error_feedback);
  if (absl::Status s = ValidateCompressionOptions(o); !s.ok()) return s;
  return o;
}

}  // namespace hips
