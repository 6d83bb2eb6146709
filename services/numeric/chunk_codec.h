#ifndef HIPS_SERVICES_NUMERIC_CHUNK_CODEC_H_
#define HIPS_SERVICES_NUMERIC_CHUNK_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/types/float_pieces.h"

namespace hips {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "hips puts host floats on the wire as little-endian bytes");

// Default bulk chunk: 1 MiB of payload per message (docs/protocol.md).
inline constexpr size_t kDefaultChunkBytes = size_t{1} << 20;

// Checks a chunk size given by a user: a positive multiple of 4 bytes, at most
// 64 MiB.
absl::Status ValidateChunkBytes(size_t chunk_bytes);

// Splits a flat float buffer into the raw little-endian byte ranges that the
// data fields of a chunked stream carry, in order. Views point into `data`,
// which must outlive them. Zero floats give zero chunks.
class ChunkSplitter {
 public:
  ChunkSplitter(absl::Span<const float> data, size_t chunk_bytes);

  size_t num_chunks() const { return num_chunks_; }
  absl::string_view chunk(size_t i) const;

 private:
  absl::string_view bytes_;
  size_t chunk_bytes_;
  size_t num_chunks_;
};

// INVALID_ARGUMENT unless a stream's announced float count equals what the
// receiver's layout says.
absl::Status CheckAnnouncedFloats(int64_t num_floats, int64_t expected_floats);

// Reassembles an announced number of floats from chunks received in order.
// Refuses, with INVALID_ARGUMENT, chunks whose size is not a whole number of
// floats, more bytes than announced, and (in Finish) fewer. Memory grows with
// the bytes that actually arrive, not with what a header announces.
// Not thread-safe.
class ChunkAssembler {
 public:
  // `num_floats` is what the header announced; `expected_floats` what the
  // receiver's layout says. They must match.
  // A `spare` buffer of exactly num_floats floats is filled in place (no
  // allocation, no zero-fill); any other is dropped.
  static absl::StatusOr<ChunkAssembler> Create(int64_t num_floats, int64_t expected_floats,
                                               std::vector<float> spare = {});

  absl::Status Append(absl::string_view bytes);
  // One chunk given as consecutive pieces (a float may straddle two).
  absl::Status Append(absl::Span<const absl::string_view> pieces);
  // Returns the buffer once every announced float arrived.
  absl::StatusOr<std::vector<float>> Finish() &&;

  int64_t received_floats() const { return filled_; }

 private:
  explicit ChunkAssembler(int64_t num_floats) : expected_(num_floats) {}

  int64_t expected_;
  int64_t filled_ = 0;
  std::vector<float> buffer_;  // filled up to filled_ (a spare is whole from the start)
};

// INVALID_ARGUMENT naming the first NaN or infinity, OK otherwise.
absl::Status CheckFinite(const FloatPieces& values);

// The largest |x| of `values` as its IEEE bit pattern without the sign
// (0 for none). Integer max, so the loop vectorizes: for finite floats the
// bit patterns order like the magnitudes, and any NaN or infinity gives a
// result >= kNonFiniteBits.
inline constexpr uint32_t kNonFiniteBits = 0x7f800000u;
uint32_t MaxAbsBits(const FloatPieces& values);

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_CHUNK_CODEC_H_
