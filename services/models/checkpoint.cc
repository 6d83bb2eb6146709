#include "services/models/checkpoint.h"

#include <zlib.h>

#include <cmath>
#include <cstring>

namespace hips {
namespace {

// Feeds the canonical encoding straight into the CRC, so that the checksum of
// a large model copies nothing.
class ChecksumWriter {
 public:
  void Bytes(const void* data, size_t n) {
    crc_ = crc32_z(crc_, static_cast<const Bytef*>(data), n);
  }
  void Int(int64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i));
    Bytes(b, sizeof(b));
  }
  void String(absl::string_view s) {
    Int(static_cast<int64_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  // Little-endian IEEE bits, whatever the host's byte order.
  void Floats(const std::vector<float>& values) {
    Int(static_cast<int64_t>(values.size()));
    unsigned char buffer[4096];
    size_t used = 0;
    for (float f : values) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof(bits));
      for (int i = 0; i < 4; ++i) buffer[used++] = static_cast<unsigned char>(bits >> (8 * i));
      if (used == sizeof(buffer)) {
        Bytes(buffer, used);
        used = 0;
      }
    }
    Bytes(buffer, used);
  }
  void Ints(const std::map<std::string, int64_t>& values) {
    Int(static_cast<int64_t>(values.size()));
    for (const auto& [key, value] : values) {
      String(key);
      Int(value);
    }
  }
  void IntLists(const std::map<std::string, std::vector<int64_t>>& values) {
    Int(static_cast<int64_t>(values.size()));
    for (const auto& [key, list] : values) {
      String(key);
      Int(static_cast<int64_t>(list.size()));
      for (int64_t v : list) Int(v);
    }
  }
  uint32_t value() const { return static_cast<uint32_t>(crc_); }

 private:
  uLong crc_ = crc32_z(0, nullptr, 0);
};

}  // namespace

uint32_t ChecksumOf(const Checkpoint& c) {
  ChecksumWriter w;
  w.Int(c.version);
  w.Int(c.samples_applied);
  w.Int(c.training_done ? 1 : 0);
  w.String(ModeName(c.mode.mode));
  w.Int(c.mode.staleness);
  if (c.mode.mode == Mode::kFedAvg) {  // (so that other checkpoints keep their sums)
    w.Int(c.mode.local_steps);
    w.Int(static_cast<int64_t>(std::llround(c.mode.participation * 1e9)));
    if (c.mode.edge_rounds > 1) w.Int(c.mode.edge_rounds);  // (older sums stay)
    if (c.mode.proximal_mu > 0) w.Int(static_cast<int64_t>(std::llround(c.mode.proximal_mu * 1e9)));
  }
  if (c.mode.hq_buffer > 0) {  // (older sums stay)
    w.Int(c.mode.hq_buffer);
    if (c.mode.staleness_weighting == StalenessWeighting::kPolynomial) {
      w.Int(static_cast<int64_t>(std::llround(c.mode.staleness_exponent * 1e9)));
    }
  }
  w.Int(c.mode_since);
  w.Int(static_cast<int64_t>(c.layout.tensors().size()));
  for (const TensorSpec& spec : c.layout.tensors()) {
    w.String(spec.name);
    w.Int(static_cast<int64_t>(spec.shape.size()));
    for (int64_t d : spec.shape) w.Int(d);
  }
  // Only when there are buffers, so that older checkpoints keep their sums.
  for (const TensorSpec& spec : c.layout.tensors()) {
    if (spec.buffer) w.String(spec.name);
  }
  w.Floats(c.weights);
  w.String(c.optimizer.name);
  w.Int(static_cast<int64_t>(c.optimizer.buffers.size()));
  for (const auto& [key, values] : c.optimizer.buffers) {
    w.String(key);
    w.Floats(values);
  }
  w.Ints(c.optimizer.steps);
  w.Ints(c.data_positions);
  w.Ints(c.sequences);
  w.Int(c.created_unix_micros);
  if (c.rollbacks != 0 || c.lr_scale != 1.0 || c.diverged_version >= 0) {
    w.Int(static_cast<int64_t>(std::llround(c.lr_scale * 1e9)));
    w.Int(c.rollbacks);
    w.Int(c.diverged_version);
    w.String(c.diverged_reason);
  }
  if (c.forgotten_before > 0) w.Int(c.forgotten_before);
  if (!c.incarnations.empty()) w.IntLists(c.incarnations);
  return w.value();
}

}  // namespace hips
