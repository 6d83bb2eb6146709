#ifndef HIPS_SERVICES_DATA_NPZ_H_
#define HIPS_SERVICES_DATA_NPZ_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Reading the arrays of a file written by numpy.savez or
// numpy.savez_compressed: a ZIP archive (stored or deflated members, ZIP64
// or not) of .npy files, each a small header (dtype, order, shape) and the
// array's bytes. Only what hips needs: C-order arrays, read row by row, so
// that a caller can keep only some rows (a worker's shard) in memory.

namespace hips {

// An array's header: its dtype as numpy writes it ("<f4", "<i8", ...) and
// its shape.
struct NpyHeader {
  std::string dtype;
  std::vector<int64_t> shape;

  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  // Bytes of one row (of one element for a 0-d array).
  int64_t row_bytes() const;
};

// "<f4" -> 4, "<i8" -> 8, "|u1" -> 1; 0 for a dtype hips does not read.
int64_t DtypeBytes(absl::string_view dtype);

// Parses a .npy header ("\x93NUMPY", version 1, 2 or 3, the header dict);
// `*consumed` is set to the header's length. INVALID_ARGUMENT naming what is
// wrong (Fortran order is refused).
absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes, size_t* consumed);

// An opened .npz file: its members, found through the ZIP central
// directory. Not thread-safe.
class NpzFile {
 public:
  // NOT_FOUND for a missing file; INVALID_ARGUMENT, naming `path`, for one
  // that is not a ZIP archive or is damaged.
  static absl::StatusOr<NpzFile> Open(const std::string& path);

  // The names of its arrays ("x", "y": the member names without ".npy").
  std::vector<std::string> names() const;

  // The header of array `name`; NOT_FOUND if the file has no such array.
  absl::StatusOr<NpyHeader> Header(const std::string& name) const;

  // Streams array `name`'s data: `row(i, bytes)` is called for every row i
  // in order with the row's header.row_bytes() bytes (valid during the
  // call). INVALID_ARGUMENT if the member is truncated, damaged (CRC) or
  // cannot be inflated.
  absl::Status ReadRows(const std::string& name,
                        const std::function<void(int64_t, const char*)>& row) const;

 private:
  struct Member {
    std::string name;
    uint16_t method = 0;  // 0 stored, 8 deflated
    uint32_t crc = 0;
    uint64_t compressed = 0;
    uint64_t uncompressed = 0;
    uint64_t local_header = 0;
  };
  class MemberStream;

  // The central directory's entry at `*at` (moved past it); `file_size`
  // bounds where a member may be.
  absl::StatusOr<Member> ParseMember(const std::vector<unsigned char>& cd, size_t* at,
                                     uint64_t file_size) const;
  absl::StatusOr<const Member*> Find(const std::string& name) const;
  absl::StatusOr<NpyHeader> ReadHeader(MemberStream* s, const std::string& name) const;

  std::string path_;
  std::vector<Member> members_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_DATA_NPZ_H_
