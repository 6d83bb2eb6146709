#ifndef HIPS_FUZZ_FUZZ_INPUT_H_
#define HIPS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"

// How the fuzzers cut their input into parts: a part is a 2-byte
// little-endian length, then that many bytes (a short tail counts as a
// part). The seed corpora are written the same way (fuzz/seeds_main.cc).

namespace hips::fuzz {

inline std::vector<absl::string_view> Parts(const uint8_t* data, size_t size) {
  std::vector<absl::string_view> parts;
  const char* p = reinterpret_cast<const char*>(data);
  while (size >= 2) {
    const size_t n =
        std::min<size_t>(static_cast<size_t>(p[0] & 0xff) | (p[1] & 0xff) << 8, size - 2);
    parts.emplace_back(p + 2, n);
    p += 2 + n;
    size -= 2 + n;
  }
  return parts;
}

inline std::string Part(absl::string_view bytes) {
  std::string out;
  out.push_back(static_cast<char>(bytes.size() & 0xff));
  out.push_back(static_cast<char>(bytes.size() >> 8));
  out.append(bytes.data(), bytes.size());
  return out;
}

// Protobuf logs every string field with invalid UTF-8 it parses (a
// refusal the harness sees anyway); the fuzzers' logs stay readable without.
inline void QuietProtobuf() { google::protobuf::SetLogHandler(nullptr); }

}  // namespace hips::fuzz

#endif  // HIPS_FUZZ_FUZZ_INPUT_H_
