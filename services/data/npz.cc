#include "services/data/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hips {
namespace {

// No .npy header numpy writes comes near this; a larger one is damage.
constexpr size_t kMaxHeaderBytes = 1 << 16;
// Arrays up to 1 TiB: far beyond a data set one host trains on.
constexpr int64_t kMaxArrayBytes = int64_t{1} << 40;

uint64_t Le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

bool ReadAt(FILE* f, uint64_t offset, void* into, size_t n) {
  return fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0 && std::fread(into, 1, n, f) == n;
}

// The value after `'key':` in a header dict, up to the next top-level comma
// or the closing brace.
absl::StatusOr<std::string> DictValue(absl::string_view dict, absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = dict.find(quoted);
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("the .npy header has no '", key, "'"));
  }
  at = dict.find(':', at + quoted.size());
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("the .npy header's '", key, "' has no value"));
  }
  size_t end = at + 1;
  int depth = 0;
  for (; end < dict.size(); ++end) {
    const char c = dict[end];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return std::string(absl::StripAsciiWhitespace(dict.substr(at + 1, end - at - 1)));
}

}  // namespace

int64_t NpyHeader::row_bytes() const {
  int64_t n = DtypeBytes(dtype);
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

int64_t DtypeBytes(absl::string_view dtype) {
  if (dtype.size() != 3 || (dtype[0] != '<' && dtype[0] != '|' && dtype[0] != '=')) return 0;
  const char kind = dtype[1];
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') return 0;
  const int bytes = dtype[2] - '0';
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8) return 0;
  if (bytes > 1 && dtype[0] == '|') return 0;
  return bytes;
}

absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes, size_t* consumed) {
  if (bytes.size() < 10 || !absl::StartsWith(bytes, "\x93NUMPY")) {
    return absl::InvalidArgumentError("not a .npy array (no \\x93NUMPY magic)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = p[6];
  size_t prefix = 0, length = 0;
  if (major == 1) {
    prefix = 10;
    length = Le(p + 8, 2);
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return absl::InvalidArgumentError("truncated .npy header");
    prefix = 12;
    length = Le(p + 8, 4);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(".npy format version ", major, " is unknown"));
  }
  if (length > kMaxHeaderBytes || bytes.size() < prefix + length) {
    return absl::InvalidArgumentError("truncated or oversized .npy header");
  }
  const absl::string_view dict = bytes.substr(prefix, length);
  NpyHeader h;
  absl::StatusOr<std::string> descr = DictValue(dict, "descr");
  if (!descr.ok()) return descr.status();
  if (descr->size() < 2 || (*descr)[0] != '\'' || descr->back() != '\'') {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", *descr, " is structured or unreadable; hips reads plain arrays"));
  }
  h.dtype = descr->substr(1, descr->size() - 2);
  absl::StatusOr<std::string> fortran = DictValue(dict, "fortran_order");
  if (!fortran.ok()) return fortran.status();
  if (*fortran != "False") {
    return absl::InvalidArgumentError(
        "the array is in Fortran order; save it in C order (numpy.ascontiguousarray)");
  }
  absl::StatusOr<std::string> shape = DictValue(dict, "shape");
  if (!shape.ok()) return shape.status();
  absl::string_view dims = *shape;
  if (!absl::ConsumePrefix(&dims, "(") || !absl::ConsumeSuffix(&dims, ")")) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", *shape, " is not a tuple"));
  }
  int64_t elements = 1;
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &v) || v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", *shape, " is not a tuple of sizes"));
    }
    h.shape.push_back(v);
    if (v > 0 && elements > kMaxArrayBytes / v) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", *shape, " is too large"));
    }
    elements *= v;
  }
  if (DtypeBytes(h.dtype) != 0 && elements * DtypeBytes(h.dtype) > kMaxArrayBytes) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", *shape, " is too large"));
  }
  *consumed = prefix + length;
  return h;
}

// A member's uncompressed bytes, read front to back, its CRC checked at
// the end.
class NpzFile::MemberStream {
 public:
  static absl::StatusOr<std::unique_ptr<MemberStream>> Open(const std::string& path,
                                                            const Member& m) {
    auto s = std::unique_ptr<MemberStream>(new MemberStream(m));
    s->file_.reset(std::fopen(path.c_str(), "rb"));
    if (s->file_ == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
    unsigned char local[30];
    if (!ReadAt(s->file_.get(), m.local_header, local, sizeof(local)) ||
        Le(local, 4) != 0x04034b50) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", m.name, ": no local header"));
    }
    const uint64_t data = m.local_header + 30 + Le(local + 26, 2) + Le(local + 28, 2);
    if (fseeko(s->file_.get(), static_cast<off_t>(data), SEEK_SET) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", m.name, ": cannot seek to its data"));
    }
    if (m.method == 8) {
      if (inflateInit2(&s->z_, -MAX_WBITS) != Z_OK) {
        return absl::InternalError("zlib's inflateInit2 failed");
      }
      s->inflating_ = true;
    } else if (m.method != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", m.name, ": compression method ", m.method,
                       " (numpy.savez and savez_compressed write 0 and 8)"));
    }
    return s;
  }

  ~MemberStream() {
    if (inflating_) inflateEnd(&z_);
  }

  // Exactly `n` bytes, or an error.
  absl::Status Read(char* into, size_t n) {
    size_t got = 0;
    while (got < n) {
      if (out_left_ > 0) {
        const size_t take = std::min(n - got, out_left_);
        std::memcpy(into + got, out_.data() + out_used_, take);
        out_used_ += take;
        out_left_ -= take;
        got += take;
        continue;
      }
      if (absl::Status s = Fill(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // After the last Read: the member held exactly what was read and its CRC.
  absl::Status Finish() {
    if (out_left_ > 0 || produced_ != member_.uncompressed) {
      return absl::InvalidArgumentError("its size does not match its header");
    }
    if (static_cast<uint32_t>(crc_) != member_.crc) {
      return absl::InvalidArgumentError("CRC mismatch (damaged)");
    }
    return absl::OkStatus();
  }

 private:
  explicit MemberStream(const Member& m) : member_(m), out_(kChunk), in_(kChunk) {}

  static constexpr size_t kChunk = 1 << 20;

  // Refills out_ with the next uncompressed bytes.
  absl::Status Fill() {
    const auto truncated = [&] { return absl::InvalidArgumentError("truncated"); };
    if (!inflating_) {
      const uint64_t left = member_.compressed - consumed_;
      if (left == 0) return truncated();
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, left));
      if (std::fread(out_.data(), 1, n, file_.get()) != n) return truncated();
      consumed_ += n;
      Produced(n);
      return absl::OkStatus();
    }
    z_.next_out = reinterpret_cast<Bytef*>(out_.data());
    z_.avail_out = static_cast<uInt>(out_.size());
    while (z_.avail_out == out_.size()) {
      if (z_.avail_in == 0) {
        const uint64_t left = member_.compressed - consumed_;
        if (left == 0) return truncated();
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, left));
        if (std::fread(in_.data(), 1, n, file_.get()) != n) return truncated();
        consumed_ += n;
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        z_.avail_in = static_cast<uInt>(n);
      }
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END && z_.avail_out == out_.size()) return truncated();
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot inflate (", z_.msg ? z_.msg : "damaged", ")"));
      }
      if (rc == Z_STREAM_END) break;
    }
    Produced(out_.size() - z_.avail_out);
    return absl::OkStatus();
  }

  void Produced(size_t n) {
    crc_ = crc32_z(crc_, reinterpret_cast<const Bytef*>(out_.data()), n);
    produced_ += n;
    out_used_ = 0;
    out_left_ = n;
  }

  const Member member_;
  File file_;
  bool inflating_ = false;
  z_stream z_{};
  std::vector<char> out_, in_;
  size_t out_used_ = 0, out_left_ = 0;
  uint64_t consumed_ = 0, produced_ = 0;
  uLong crc_ = crc32_z(0, nullptr, 0);
};

namespace {

absl::Status NotNpz(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a .npz file written by numpy.savez (", what, ")"));
}

// Where a ZIP file's central directory is, and how many entries it holds.
struct CentralDirectory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
};

absl::StatusOr<CentralDirectory> FindCentralDirectory(std::FILE* f, uint64_t size,
                                                      const std::string& path) {
  // The end-of-central-directory record: 22 bytes and a comment of up to
  // 65535, at the end.
  const uint64_t tail_size = std::min<uint64_t>(size, 22 + 65535);
  std::vector<unsigned char> tail(tail_size);
  if (!ReadAt(f, size - tail_size, tail.data(), tail.size())) return NotNpz(path, "unreadable");
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_size) - 22; i >= 0; --i) {
    if (Le(&tail[i], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return NotNpz(path, "no ZIP end-of-central-directory record");
  CentralDirectory cd{Le(&tail[eocd + 10], 2), Le(&tail[eocd + 12], 4), Le(&tail[eocd + 16], 4)};
  if (cd.entries == 0xffff || cd.size == 0xffffffff || cd.offset == 0xffffffff) {
    // ZIP64: a locator just before the record points at the ZIP64 record.
    const uint64_t eocd_at = size - tail_size + static_cast<uint64_t>(eocd);
    unsigned char locator[20], record[56];
    if (eocd_at < 20 || !ReadAt(f, eocd_at - 20, locator, sizeof(locator)) ||
        Le(locator, 4) != 0x07064b50) {
      return NotNpz(path, "no ZIP64 locator");
    }
    if (!ReadAt(f, Le(locator + 8, 8), record, sizeof(record)) || Le(record, 4) != 0x06064b50) {
      return NotNpz(path, "no ZIP64 end-of-central-directory record");
    }
    cd = CentralDirectory{Le(record + 32, 8), Le(record + 40, 8), Le(record + 48, 8)};
  }
  if (cd.offset > size || cd.size > size - cd.offset || cd.size > (uint64_t{1} << 30)) {
    return NotNpz(path, "central directory out of the file");
  }
  return cd;
}

}  // namespace

absl::StatusOr<NpzFile::Member> NpzFile::ParseMember(const std::vector<unsigned char>& cd,
                                                     size_t* at, uint64_t file_size) const {
  const size_t i = *at;
  if (i + 46 > cd.size() || Le(&cd[i], 4) != 0x02014b50) return NotNpz(path_, "damaged directory");
  Member m;
  m.method = static_cast<uint16_t>(Le(&cd[i + 10], 2));
  m.crc = static_cast<uint32_t>(Le(&cd[i + 16], 4));
  m.compressed = Le(&cd[i + 20], 4);
  m.uncompressed = Le(&cd[i + 24], 4);
  const size_t name_len = Le(&cd[i + 28], 2), extra_len = Le(&cd[i + 30], 2),
               comment_len = Le(&cd[i + 32], 2);
  m.local_header = Le(&cd[i + 42], 4);
  if (i + 46 + name_len + extra_len + comment_len > cd.size()) {
    return NotNpz(path_, "damaged directory");
  }
  m.name.assign(reinterpret_cast<const char*>(&cd[i + 46]), name_len);
  // The ZIP64 extra field holds, in this order, whichever of the three did
  // not fit in 32 bits.
  size_t x = i + 46 + name_len;
  const size_t x_end = x + extra_len;
  while (x + 4 <= x_end) {
    const uint64_t id = Le(&cd[x], 2), len = Le(&cd[x + 2], 2);
    if (x + 4 + len > x_end) return NotNpz(path_, "damaged extra field");
    if (id == 1) {
      size_t field = x + 4;
      for (uint64_t* v : {&m.uncompressed, &m.compressed, &m.local_header}) {
        if (*v != 0xffffffff) continue;
        if (field + 8 > x + 4 + len) return NotNpz(path_, "short ZIP64 field");
        *v = Le(&cd[field], 8);
        field += 8;
      }
    }
    x += 4 + len;
  }
  if (m.local_header >= file_size || m.compressed > file_size) {
    return NotNpz(path_, "member out of the file");
  }
  *at = i + 46 + name_len + extra_len + comment_len;
  return m;
}

absl::StatusOr<NpzFile> NpzFile::Open(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (fseeko(f.get(), 0, SEEK_END) != 0) return NotNpz(path, "cannot seek");
  const uint64_t size = static_cast<uint64_t>(ftello(f.get()));
  absl::StatusOr<CentralDirectory> where = FindCentralDirectory(f.get(), size, path);
  if (!where.ok()) return where.status();
  std::vector<unsigned char> cd(where->size);
  if (!ReadAt(f.get(), where->offset, cd.data(), cd.size())) {
    return NotNpz(path, "unreadable directory");
  }
  NpzFile npz;
  npz.path_ = path;
  size_t at = 0;
  for (uint64_t e = 0; e < where->entries; ++e) {
    absl::StatusOr<Member> m = npz.ParseMember(cd, &at, size);
    if (!m.ok()) return m.status();
    npz.members_.push_back(*std::move(m));
  }
  return npz;
}

std::vector<std::string> NpzFile::names() const {
  std::vector<std::string> out;
  for (const Member& m : members_) {
    absl::string_view name = m.name;
    absl::ConsumeSuffix(&name, ".npy");
    out.emplace_back(name);
  }
  return out;
}

absl::StatusOr<const NpzFile::Member*> NpzFile::Find(const std::string& name) const {
  const std::string member = absl::StrCat(name, ".npy");
  for (const Member& m : members_) {
    if (m.name == member) return &m;
  }
  return absl::NotFoundError(absl::StrCat(path_, " has no array '", name, "'"));
}

absl::StatusOr<NpyHeader> NpzFile::ReadHeader(MemberStream* s, const std::string& name) const {
  const auto failed = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": array '", name, "': ", what));
  };
  char prefix[12];
  if (absl::Status st = s->Read(prefix, 10); !st.ok()) return failed(st.message());
  const size_t prefix_len = prefix[6] == 1 ? 10 : 12;
  if (prefix_len == 12) {
    if (absl::Status st = s->Read(prefix + 10, 2); !st.ok()) return failed(st.message());
  }
  const size_t length =
      Le(reinterpret_cast<const unsigned char*>(prefix + 8), prefix_len == 10 ? 2 : 4);
  if (length > kMaxHeaderBytes) return failed("oversized .npy header");
  std::string bytes(prefix, prefix_len);
  bytes.resize(prefix_len + length);
  if (absl::Status st = s->Read(bytes.data() + prefix_len, length); !st.ok()) {
    return failed(st.message());
  }
  size_t consumed = 0;
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(bytes, &consumed);
  if (!h.ok()) return failed(h.status().message());
  return h;
}

absl::StatusOr<NpyHeader> NpzFile::Header(const std::string& name) const {
  absl::StatusOr<const Member*> m = Find(name);
  if (!m.ok()) return m.status();
  absl::StatusOr<std::unique_ptr<MemberStream>> s = MemberStream::Open(path_, **m);
  if (!s.ok()) return s.status();
  return ReadHeader(s->get(), name);
}

absl::Status NpzFile::ReadRows(const std::string& name,
                               const std::function<void(int64_t, const char*)>& row) const {
  absl::StatusOr<const Member*> m = Find(name);
  if (!m.ok()) return m.status();
  absl::StatusOr<std::unique_ptr<MemberStream>> s = MemberStream::Open(path_, **m);
  if (!s.ok()) return s.status();
  absl::StatusOr<NpyHeader> h = ReadHeader(s->get(), name);
  if (!h.ok()) return h.status();
  const auto failed = [&](const absl::Status& st) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": array '", name, "': ", st.message()));
  };
  const int64_t row_bytes = h->row_bytes();
  if (row_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": array '", name, "' has dtype '", h->dtype, "' or empty rows"));
  }
  // Rows in blocks of about 1 MiB.
  const int64_t block_rows = std::max<int64_t>(1, (int64_t{1} << 20) / row_bytes);
  std::vector<char> block(static_cast<size_t>(block_rows * row_bytes));
  for (int64_t first = 0; first < h->rows(); first += block_rows) {
    const int64_t n = std::min(block_rows, h->rows() - first);
    if (absl::Status st = (*s)->Read(block.data(), static_cast<size_t>(n * row_bytes)); !st.ok()) {
      return failed(st);
    }
    for (int64_t i = 0; i < n; ++i) row(first + i, block.data() + i * row_bytes);
  }
  if (absl::Status st = (*s)->Finish(); !st.ok()) return failed(st);
  return absl::OkStatus();
}

}  // namespace hips
