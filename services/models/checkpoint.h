#ifndef HIPS_SERVICES_MODELS_CHECKPOINT_H_
#define HIPS_SERVICES_MODELS_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/models/optimizer.h"
#include "services/types/consistency.h"
#include "services/types/model_layout.h"

// What a checkpoint holds, and its checksum: the part of the checkpoint
// format that is not LibTorch's (services/models/checkpoint_codec.h turns it
// into a file; hq/checkpoint_store.h keeps the files).

namespace hips {

// Everything HQ needs to continue a run where it stopped: the training state,
// the master weights with their optimizer state, and where every worker's data
// and every sender's pushes had got to.
struct Checkpoint {
  int64_t version = 0;
  int64_t samples_applied = 0;
  bool training_done = false;
  ModeConfig mode;
  int64_t mode_since = 0;  // the first version trained in `mode`
  ModelLayout layout;
  std::vector<float> weights;  // flat, in layout order
  OptimizerState optimizer;
  std::map<std::string, int64_t> data_positions;  // worker id -> next data step
  std::map<std::string, int64_t> sequences;       // sender id -> last applied push sequence
  int64_t created_unix_micros = 0;
  // Divergence (docs/faults.md): the factor rollbacks left on the learning
  // rate and how many there were; where the run diverged (-1: it did not)
  // and why. (Written, and summed, only when set: older checkpoints keep
  // their checksums.)
  double lr_scale = 1.0;
  int64_t rollbacks = 0;
  int64_t diverged_version = -1;
  std::string diverged_reason;
  // Bounded state (docs/faults.md): pushes computed before this version
  // from members HQ holds nothing of may repeat ones it forgot (0: it forgot
  // nobody). Written, and summed, only when set.
  int64_t forgotten_before = 0;
  // Per key of `sequences`: the sender incarnation its sequence is of, then
  // the incarnations the sender had before, oldest first (PushLedger's
  // Numbers; a key without one is incarnation 0, as in checkpoints written
  // before incarnations). Written, and summed, only when set.
  std::map<std::string, std::vector<int64_t>> incarnations;
};

// CRC-32 (zlib's) of a canonical byte encoding of every field of `checkpoint`
// in declaration order: 64-bit little-endian integers (bools and sizes too),
// the mode by name, length-prefixed strings and float lists (little-endian
// IEEE bits), counted maps in key order. The same checkpoint gives the same checksum in every
// process and build; changing any field changes it (up to CRC-32 collisions).
uint32_t ChecksumOf(const Checkpoint& checkpoint);

// How a checkpoint becomes bytes and back. The store does not care about the
// format; HQ passes EncodeCheckpoint / DecodeCheckpoint
// (checkpoint_codec.h), tests a fake. A decoder returns an
// error (DATA_LOSS for damaged bytes) for anything it cannot fully trust,
// including a checksum mismatch.
using CheckpointEncoder = std::function<absl::StatusOr<std::string>(const Checkpoint&)>;
using CheckpointDecoder = std::function<absl::StatusOr<Checkpoint>(absl::string_view)>;

}  // namespace hips

#endif  // HIPS_SERVICES_MODELS_CHECKPOINT_H_
