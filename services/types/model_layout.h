#ifndef HIPS_SERVICES_TYPES_MODEL_LAYOUT_H_
#define HIPS_SERVICES_TYPES_MODEL_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hips {

// One float32 tensor of a model: its name and row-major shape, and whether
// it is a buffer: a value the forward pass updates (BatchNorm's running
// statistics), not a parameter trained by gradients. Where a parameter's
// gradient travels, a buffer's value travels, and HQ keeps the
// sample-weighted mean of the values it receives (docs/models.md).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool buffer = false;

  int64_t NumElements() const;
  friend bool operator==(const TensorSpec& a, const TensorSpec& b) {
    return a.name == b.name && a.shape == b.shape && a.buffer == b.buffer;
  }
};

// A run of consecutive floats in a model's flat buffer.
struct FloatRange {
  int64_t offset = 0;
  int64_t size = 0;
  friend bool operator==(const FloatRange& a, const FloatRange& b) {
    return a.offset == b.offset && a.size == b.size;
  }
};

// The order, names and shapes of a model's tensors. A model's flat buffer is
// its tensors concatenated in this order. Immutable after Create; safe to share
// between threads.
class ModelLayout {
 public:
  ModelLayout() = default;

  // Refuses empty or duplicate names and non-positive dimensions, and layouts
  // larger than `kMaxFloats` (INVALID_ARGUMENT).
  static absl::StatusOr<ModelLayout> Create(std::vector<TensorSpec> tensors);

  // 2^31 floats (8 GiB): far beyond any model hips trains on one host.
  static constexpr int64_t kMaxFloats = int64_t{1} << 31;

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int64_t num_floats() const { return num_floats_; }
  // Offset in floats of tensor `i` inside the flat buffer.
  int64_t offset(size_t i) const { return offsets_[i]; }
  // Where the buffers' floats are (adjacent buffers merged), in order; empty
  // for a model without buffers.
  const std::vector<FloatRange>& buffer_ranges() const { return buffer_ranges_; }

  // "name[d0,d1] name2[d0] (buffer) ..." for error messages.
  std::string DebugString() const;

  // Where `ours` and `theirs` first differ, for an error message: the first
  // tensor whose name or shape differs ("tensor 2: 'fc.weight'[10,64] here,
  // 'fc.weight'[10,32] there"), or the tensor one side lacks; empty when
  // they are equal.
  static std::string FirstDifference(const ModelLayout& ours, const ModelLayout& theirs,
                                     absl::string_view here = "here",
                                     absl::string_view there = "there");

  friend bool operator==(const ModelLayout& a, const ModelLayout& b) {
    return a.tensors_ == b.tensors_;
  }
  friend bool operator!=(const ModelLayout& a, const ModelLayout& b) { return !(a == b); }

 private:
  std::vector<TensorSpec> tensors_;
  std::vector<int64_t> offsets_;
  std::vector<FloatRange> buffer_ranges_;
  int64_t num_floats_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_MODEL_LAYOUT_H_
