#include "services/types/model_layout.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hips {

int64_t TensorSpec::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<ModelLayout> ModelLayout::Create(std::vector<TensorSpec> tensors) {
  ModelLayout layout;
  absl::flat_hash_set<std::string> names;
  int64_t total = 0;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty()) {
      return absl::InvalidArgumentError("tensor with an empty name");
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
    int64_t n = 1;
    for (int64_t d : t.shape) {
      if (d <= 0 || d > kMaxFloats) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' has dimension ", d));
      }
      n *= d;
      if (n > kMaxFloats) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is too large"));
      }
    }
    layout.offsets_.push_back(total);
    if (t.buffer) {
      std::vector<FloatRange>& ranges = layout.buffer_ranges_;
      if (!ranges.empty() && ranges.back().offset + ranges.back().size == total) {
        ranges.back().size += n;
      } else {
        ranges.push_back({total, n});
      }
    }
    total += n;
    if (total > kMaxFloats) {
      return absl::InvalidArgumentError("model is larger than 2^31 floats");
    }
  }
  layout.tensors_ = std::move(tensors);
  layout.num_floats_ = total;
  return layout;
}

std::string ModelLayout::DebugString() const {
  return absl::StrJoin(tensors_, " ", [](std::string* out, const TensorSpec& t) {
    absl::StrAppend(out, t.name, "[", absl::StrJoin(t.shape, ","), "]",
                    t.buffer ? " (buffer)" : "");
  });
}

namespace {

std::string Describe(const TensorSpec& t) {
  return absl::StrCat("'", t.name, "'[", absl::StrJoin(t.shape, ","), "]",
                      t.buffer ? " (a buffer)" : "");
}

}  // namespace

std::string ModelLayout::FirstDifference(const ModelLayout& ours, const ModelLayout& theirs,
                                         absl::string_view here, absl::string_view there) {
  const std::vector<TensorSpec>& a = ours.tensors();
  const std::vector<TensorSpec>& b = theirs.tensors();
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i >= a.size()) {
      return absl::StrCat("tensor ", i, ": none ", here, ", ", Describe(b[i]), " ", there);
    }
    if (i >= b.size()) {
      return absl::StrCat("tensor ", i, ": ", Describe(a[i]), " ", here, ", none ", there);
    }
    if (!(a[i] == b[i])) {
      return absl::StrCat("tensor ", i, ": ", Describe(a[i]), " ", here, ", ", Describe(b[i]), " ",
                          there);
    }
  }
  return "";
}

}  // namespace hips
