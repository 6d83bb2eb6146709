// Every payload decoder (fp32, fp16, bf16, top-k): the first byte picks the
// encoding, the next two the float count (up to 4096), the next two the
// top-k entries; the rest is the payload. CheckEncodedValues must refuse
// what DecodeInto cannot take, and a payload it accepts decodes to finite
// floats, top-k ones only at their listed indices.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "services/numeric/compression.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const hips::Encoding encodings[] = {hips::Encoding::kFp32, hips::Encoding::kFp16,
                                      hips::Encoding::kBf16, hips::Encoding::kTopK};
  hips::EncodedValues v;
  v.encoding = encodings[data[0] % 4];
  v.num_floats = (data[1] | data[2] << 8) % 4097;
  v.nonzeros = v.encoding == hips::Encoding::kTopK ? (data[3] | data[4] << 8) : 0;
  // The payload in up to three pieces, as chunks arrive.
  const std::string payload(reinterpret_cast<const char*>(data + 5), size - 5);
  const size_t a = payload.size() / 3, b = 2 * payload.size() / 3;
  const std::string pieces[3] = {payload.substr(0, a), payload.substr(a, b - a), payload.substr(b)};
  for (const std::string& p : pieces) v.bytes.Append(p);
  if (!hips::CheckEncodedValues(v).ok()) return 0;
  std::vector<float> out(static_cast<size_t>(v.num_floats), -1.0f);
  hips::DecodeInto(v, out.data());
  for (float f : out) {
    if (!std::isfinite(f)) std::abort();
  }
  // A lossy encoding round-trips through the encoder too.
  if (v.encoding != hips::Encoding::kFp32 && v.num_floats > 0) {
    hips::CompressionOptions o;
    o.encoding = v.encoding;
    o.topk_ratio = 0.25;
    hips::Compressor compressor(o, static_cast<size_t>(v.num_floats));
    std::string encoded;
    compressor.Encode(out, &encoded);
  }
  return 0;
}
