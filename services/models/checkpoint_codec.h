#ifndef HIPS_SERVICES_MODELS_CHECKPOINT_CODEC_H_
#define HIPS_SERVICES_MODELS_CHECKPOINT_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/models/checkpoint.h"

namespace hips {

// The checkpoint file format: torch::pickle_save of one dict, which Python
// reads with torch.load(path):
//   format               "hips-checkpoint-1"
//   version, samples_applied, mode_since, staleness, created_unix_micros: int
//   training_done        bool
//   mode                 "sync" | "async" | "ssp" | "fedavg"
//   local_steps: int, participation: float
//                        fedavg only (absent in the other modes)
//   edge_rounds: int     fedavg with more than 1 edge round only (absent:
//                        1)
//   weights              {tensor name: float32 tensor of its shape}, in layout
//                        order (a state_dict of the same torch.nn.Sequential)
//   buffers              [names of the weights that are buffers]; absent
//                        when there are none (and in files written before
//                        buffers existed)
//   optimizer            {"name": str, "state": {"<tensor>/<buffer>": tensor
//                        of the tensor's shape}, "steps": {tensor: int}}
//   data_positions       {worker id: int}
//   sequences            {sender id: int}
//   incarnations         {sender id: [int]}: the incarnation of its
//                        sequence, then its earlier ones; absent when empty
//                        (and in files written before incarnations)
//   checksum             ChecksumOf(checkpoint)
// The zip archive's comment is "hips-crc32 <8 hex digits>", the CRC-32 of
// the file's bytes before it: damaged bytes are refused before LibTorch's
// unpickler (not safe on damaged input) sees them.
inline constexpr char kCheckpointFormat[] = "hips-checkpoint-1";

// INVALID_ARGUMENT when the weights or an optimizer buffer do not fit the
// layout.
absl::StatusOr<std::string> EncodeCheckpoint(const Checkpoint& checkpoint);

// DATA_LOSS for bytes that are not a complete checkpoint of this format:
// truncated, damaged (file CRC or checksum mismatch), or not a checkpoint at
// all. Never throws. Safe on damaged files; the bytes are trusted not to be
// crafted (a forged CRC reaches LibTorch's unpickler).
absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes);

}  // namespace hips

#endif  // HIPS_SERVICES_MODELS_CHECKPOINT_CODEC_H_
