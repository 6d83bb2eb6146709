// HQ's checkpoint reader (DecodeCheckpoint), as HQ runs it on the files in
// its checkpoint directory at start: whatever the bytes, it refuses them
// (DATA_LOSS) or returns a checkpoint whose checksum matches its fields.
// The seeds are real checkpoints; a mutation breaks their CRC seal, which
// is what stands between damaged bytes and LibTorch's unpickler
// (docs/security.md, "Fuzzing").

#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "services/models/checkpoint.h"
#include "services/models/checkpoint_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<hips::Checkpoint> c = hips::DecodeCheckpoint(bytes);
  if (c.ok() && c->weights.size() != static_cast<size_t>(c->layout.num_floats())) std::abort();
  return 0;
}
