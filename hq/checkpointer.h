#ifndef HIPS_HQ_CHECKPOINTER_H_
#define HIPS_HQ_CHECKPOINTER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "hq/checkpoint_store.h"

namespace hips {

// Writes HQ's checkpoints on a thread of its own, so that encoding and
// fsync never hold up training: Offer hands over a captured checkpoint and
// returns at once. When the writer is still busy with an older one, a newer
// offer replaces the one waiting (only the newest state matters). Flush
// waits until what was offered is on disk. Thread-safe.
class Checkpointer {
 public:
  explicit Checkpointer(CheckpointStore store);
  ~Checkpointer();  // writes what is waiting, then stops

  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  void Offer(Checkpoint checkpoint);
  // Waits until every offered checkpoint is written (or failed).
  void Flush();

  struct Stats {
    int64_t written = 0;
    int64_t failed = 0;
    int64_t replaced = 0;  // offers superseded before they were written
    int64_t last_version = -1;
    std::string last_path;
    absl::Status last_error;
  };
  Stats stats() const;

 private:
  void Loop();

  CheckpointStore store_;  // used by the writer thread only
  mutable absl::Mutex mu_;
  std::optional<Checkpoint> waiting_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace hips

#endif  // HIPS_HQ_CHECKPOINTER_H_
