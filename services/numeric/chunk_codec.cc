#include "services/numeric/chunk_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/float_kernels.h"
#include "services/types/drop_reason.h"

namespace hips {

absl::Status ValidateChunkBytes(size_t chunk_bytes) {
  if (chunk_bytes == 0 || chunk_bytes % sizeof(float) != 0 || chunk_bytes > (size_t{64} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk size must be a positive multiple of 4 bytes up to 64 MiB, got ", chunk_bytes));
  }
  return absl::OkStatus();
}

ChunkSplitter::ChunkSplitter(absl::Span<const float> data, size_t chunk_bytes)
    : bytes_(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)),
      chunk_bytes_(chunk_bytes),
      num_chunks_((bytes_.size() + chunk_bytes - 1) / chunk_bytes) {}

absl::string_view ChunkSplitter::chunk(size_t i) const {
  return bytes_.substr(i * chunk_bytes_, chunk_bytes_);
}

absl::Status CheckAnnouncedFloats(int64_t num_floats, int64_t expected_floats) {
  if (num_floats != expected_floats) {
    return absl::InvalidArgumentError(absl::StrCat("num_floats: the stream announces ", num_floats,
                                                   " floats, the model has ", expected_floats));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChunkAssembler> ChunkAssembler::Create(int64_t num_floats, int64_t expected_floats,
                                                      std::vector<float> spare) {
  if (absl::Status s = CheckAnnouncedFloats(num_floats, expected_floats); !s.ok()) return s;
  ChunkAssembler assembler(num_floats);
  if (static_cast<int64_t>(spare.size()) == num_floats) assembler.buffer_ = std::move(spare);
  return assembler;
}

absl::Status ChunkAssembler::Append(absl::string_view bytes) {
  return Append(absl::MakeConstSpan(&bytes, 1));
}

absl::Status ChunkAssembler::Append(absl::Span<const absl::string_view> pieces) {
  size_t bytes = 0;
  for (absl::string_view piece : pieces) bytes += piece.size();
  if (bytes % sizeof(float) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: a chunk of ", bytes, " bytes is not a whole number of floats"));
  }
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
  const int64_t filled = received_floats();
  if (n > expected_ - filled) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: the stream carries more than the announced ", expected_, " floats"));
  }
  if (n == 0) return absl::OkStatus();
  if (buffer_.size() < static_cast<size_t>(filled + n) &&
      buffer_.capacity() < static_cast<size_t>(filled + n)) {
    // The first chunk reserves the whole announced size up to 64 MiB (one
    // allocation, no copies, for most models); beyond that the buffer
    // doubles, so a lying header costs memory only as bytes arrive.
    constexpr int64_t kFirstReserve = int64_t{16} << 20;  // floats
    buffer_.reserve(
        std::min<int64_t>(expected_, std::max({2 * filled, filled + n, kFirstReserve})));
  }
  // (A spare buffer is already whole: no resize, so no zero-fill.)
  if (buffer_.size() < static_cast<size_t>(filled + n)) buffer_.resize(filled + n);
  filled_ = filled + n;
  char* out = reinterpret_cast<char*>(buffer_.data() + filled);
  for (absl::string_view piece : pieces) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ChunkAssembler::Finish() && {
  if (received_floats() != expected_) {
    return absl::InvalidArgumentError(absl::StrCat("data: the stream ended after ",
                                                   received_floats(), " of ", expected_,
                                                   " announced floats"));
  }
  buffer_.resize(filled_);
  return std::move(buffer_);
}

uint32_t MaxAbsBits(const FloatPieces& values) {
  uint32_t max = 0;
  values.ForEachRun([&max](size_t, const char* bytes, size_t n) {
    max = std::max(max, MaxAbsBitsOfRun(bytes, n));
  });
  return max;
}

absl::Status CheckFinite(const FloatPieces& values) {
  if (MaxAbsBits(values) < kNonFiniteBits) return absl::OkStatus();
  // Only a refusal pays for finding the culprit.
  absl::Status status;
  values.ForEachRun([&status](size_t first, const char* bytes, size_t n) {
    for (size_t i = 0; i < n && status.ok(); ++i) {
      const float v = LoadFloat(bytes + i * sizeof(float));
      if (!std::isfinite(v)) {
        status = NonFiniteError(absl::StrCat("data: non-finite value ", v, " at float ", first + i));
      }
    }
  });
  return status;
}

}  // namespace hips
