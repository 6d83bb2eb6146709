#ifndef HIPS_SERVICES_TYPES_FLOAT_PIECES_H_
#define HIPS_SERVICES_TYPES_FLOAT_PIECES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace hips {

// A flat float32 buffer given as consecutive byte pieces: raw little-endian
// floats that need no alignment and may straddle two pieces, e.g. the slices
// gRPC read a stream into (docs/performance.md: receivers sum out of them
// instead of first copying them into one buffer). Views only: whoever owns
// the bytes keeps them alive. A contiguous buffer converts implicitly.
class FloatPieces {
 public:
  FloatPieces() = default;
  FloatPieces(absl::Span<const float> floats) {  // NOLINT: implicit on purpose
    if (!floats.empty()) {
      Append(absl::string_view(reinterpret_cast<const char*>(floats.data()),
                               floats.size() * sizeof(float)));
    }
  }
  FloatPieces(const std::vector<float>& floats)  // NOLINT: implicit on purpose
      : FloatPieces(absl::MakeConstSpan(floats)) {}

  void Append(absl::string_view bytes) {
    if (bytes.empty()) return;
    pieces_.push_back(bytes);
    bytes_ += bytes.size();
  }

  // Whole floats (a trailing partial float is not counted).
  size_t size() const { return bytes_ / sizeof(float); }
  bool empty() const { return bytes_ == 0; }
  size_t bytes() const { return bytes_; }
  const std::vector<absl::string_view>& pieces() const { return pieces_; }

  // Calls fn(first, bytes, n) for consecutive runs of whole floats in order:
  // floats [first, first + n) are at `bytes` (unaligned). A float split
  // between two pieces comes as a run of 1 from a local copy.
  template <typename Fn>
  void ForEachRun(Fn fn) const {
    ForEachRunOf<sizeof(float)>(std::move(fn));
  }

  // The same for elements of kSize bytes (an encoded payload's, say).
  template <size_t kSize, typename Fn>
  void ForEachRunOf(Fn fn) const {
    size_t index = 0;
    char carry[kSize];
    size_t carried = 0;
    for (absl::string_view piece : pieces_) {
      const char* p = piece.data();
      size_t len = piece.size();
      if (carried > 0) {
        const size_t take = std::min(kSize - carried, len);
        std::memcpy(carry + carried, p, take);
        carried += take;
        p += take;
        len -= take;
        if (carried < kSize) continue;
        fn(index++, static_cast<const char*>(carry), size_t{1});
        carried = 0;
      }
      const size_t n = len / kSize;
      if (n > 0) fn(index, p, n);
      index += n;
      carried = len - n * kSize;
      std::memcpy(carry, p + n * kSize, carried);
    }
  }

  // ForEachRun restricted to floats [begin, end).
  template <typename Fn>
  void ForEachRunIn(size_t begin, size_t end, Fn fn) const {
    ForEachRun([&](size_t first, const char* bytes, size_t n) {
      const size_t lo = std::max(first, begin), hi = std::min(first + n, end);
      if (lo < hi) fn(lo, bytes + (lo - first) * sizeof(float), hi - lo);
    });
  }

  // Copies the floats into `out` (size() floats).
  void CopyTo(float* out) const {
    ForEachRun([out](size_t first, const char* bytes, size_t n) {
      std::memcpy(out + first, bytes, n * sizeof(float));
    });
  }
  std::vector<float> ToVector() const {
    std::vector<float> out(size());
    CopyTo(out.data());
    return out;
  }

 private:
  std::vector<absl::string_view> pieces_;
  size_t bytes_ = 0;
};

inline float LoadFloat(const char* bytes) {
  float v;
  std::memcpy(&v, bytes, sizeof(v));
  return v;
}

// A float's IEEE bit pattern.
inline uint32_t FloatBits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
}

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_FLOAT_PIECES_H_
