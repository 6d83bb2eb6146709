#ifndef HIPS_HQ_CHECKPOINT_STORE_H_
#define HIPS_HQ_CHECKPOINT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/models/checkpoint.h"

namespace hips {

struct CheckpointStoreOptions {
  std::string dir;  // created by the first Write if missing
  int keep = 3;     // checkpoints kept after a Write (>= 1)
};

// INVALID_ARGUMENT for an empty dir or keep < 1.
absl::Status ValidateCheckpointStoreOptions(const CheckpointStoreOptions& options);

// A directory of checkpoints, <dir>/checkpoint-<version, 12 digits>.pt, that
// survives a crash at any moment: a checkpoint is written to a temporary file,
// fsynced, renamed into place and the directory fsynced, so a file under a
// checkpoint name is complete unless the disk lied; a damaged one (or one left
// by a crash before rename, which is only ever a temporary file) is skipped
// when loading, falling back to the newest intact checkpoint.
//
// One process writes a directory. Not thread-safe: the owner serializes calls.
class CheckpointStore {
 public:
  CheckpointStore(CheckpointStoreOptions options, CheckpointEncoder encode,
                  CheckpointDecoder decode);

  // Writes `checkpoint` durably and returns its path, then deletes all but
  // the newest `keep` checkpoints (never the one just written) and any
  // leftover temporary files. INVALID_ARGUMENT for bad options or a negative
  // version, the encoder's error, or an I/O error naming the path when the
  // directory cannot be created or written (a failed write leaves no
  // temporary file behind).
  absl::StatusOr<std::string> Write(const Checkpoint& checkpoint);

  // The newest checkpoint that decodes (checksum included) and holds the
  // version its file name says. Newer ones that do not are logged and
  // skipped, and their paths appended to `rejected` (may be null). Leftover
  // temporary files are removed. NOT_FOUND when the directory is missing or
  // holds no checkpoint, or when every one was rejected (the message counts
  // them and gives the newest one's reason); FAILED_PRECONDITION when dir is
  // not a directory.
  absl::StatusOr<Checkpoint> LoadNewest(std::vector<std::string>* rejected = nullptr);

  // Paths of the checkpoints in the directory, newest (highest version)
  // first; empty when the directory is missing or unreadable.
  std::vector<std::string> List() const;

  // The file name of a checkpoint of `version`: "checkpoint-000000000042.pt".
  static std::string FileName(int64_t version);

 private:
  void RemoveTemporaryFiles() const;

  const CheckpointStoreOptions options_;
  const CheckpointEncoder encode_;
  const CheckpointDecoder decode_;
};

}  // namespace hips

#endif  // HIPS_HQ_CHECKPOINT_STORE_H_
