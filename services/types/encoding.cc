#include "services/types/encoding.h"

#include "absl/strings/str_cat.h"

namespace hips {

absl::string_view EncodingName(Encoding e) {
  switch (e) {
    case Encoding::kFp32:
      return "fp32";
    case Encoding::kFp16:
      return "fp16";
    case Encoding::kBf16:
      return "bf16";
    case Encoding::kTopK:
      return "topk";
  }
  return "unknown";
}

absl::StatusOr<Encoding> ParseEncoding(absl::string_view name) {
  for (Encoding e : {Encoding::kFp32, Encoding::kFp16, Encoding::kBf16, Encoding::kTopK}) {
    if (name == EncodingName(e)) return e;
  }
  if (name == "none") return Encoding::kFp32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compression \"", name, "\" (none, fp16, bf16 or topk)"));
}

size_t ElementBytes(Encoding e) {
  switch (e) {
    case Encoding::kFp32:
      return 4;
    case Encoding::kFp16:
    case Encoding::kBf16:
      return 2;
    case Encoding::kTopK:
      return 8;
  }
  return 4;
}

int64_t PayloadBytes(Encoding e, int64_t num_floats, int64_t nonzeros) {
  const int64_t elements = e == Encoding::kTopK ? nonzeros : num_floats;
  return elements * static_cast<int64_t>(ElementBytes(e));
}

}  // namespace hips
