#ifndef HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_
#define HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/payloads.h"

namespace hips {

// Holds the newest published weights of a tier and lets readers wait for a
// version. Thread-safe.
class WeightsBoard {
 public:
  // Replaces the current snapshot when `snapshot` is newer, of another HQ
  // incarnation (HQ restarted: its versions start a new line), or the board
  // is empty, and wakes waiters. Returns false when it was not newer.
  bool Publish(std::shared_ptr<const WeightsSnapshot> snapshot);

  // The newest snapshot, or null before the first Publish.
  std::shared_ptr<const WeightsSnapshot> Latest() const;

  // Waits until a snapshot of version >= `min_version` is there (or training
  // is done, which ends every wait) and returns it. A snapshot of an HQ
  // incarnation other than `incarnation` (0: any) is returned at once.
  // DEADLINE_EXCEEDED when `deadline` passes first, UNAVAILABLE after
  // Shutdown.
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WaitFor(
      int64_t min_version, absl::Time deadline, int64_t incarnation = 0) const;

  // Ends every current and future wait with UNAVAILABLE. Idempotent.
  void Shutdown();

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const WeightsSnapshot> latest_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_
