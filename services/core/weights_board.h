#ifndef HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_
#define HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/time/clock.h"
#include "services/types/payloads.h"

namespace hips {

// Holds the newest published weights of a tier and lets readers wait for a
// version: the long poll behind PullWeights. Waits are asynchronous (a
// server answers from the publishing thread, holding no thread of its own
// while it waits); their deadlines run on `clock`. Thread-safe.
class WeightsBoard {
 public:
  using Snapshot = std::shared_ptr<const WeightsSnapshot>;
  // Called once with the weights a wait asked for, DEADLINE_EXCEEDED or
  // UNAVAILABLE (shut down); without any lock of the board held.
  using Callback = std::function<void(absl::StatusOr<Snapshot>)>;

  // `clock` must outlive the board.
  explicit WeightsBoard(Clock* clock = SystemClock());
  ~WeightsBoard();

  WeightsBoard(const WeightsBoard&) = delete;
  WeightsBoard& operator=(const WeightsBoard&) = delete;

  // Snapshots order by (version, edge_round): an aggregator's edge rounds
  // (fedavg) come between HQ's versions.
  // Replaces the current snapshot when `snapshot` is newer, of another HQ
  // incarnation (HQ restarted: its versions start a new line), or the board
  // is empty, and answers the waits it satisfies (on this thread). Returns
  // false when it was not newer.
  bool Publish(Snapshot snapshot);

  // The newest snapshot, or null before the first Publish.
  Snapshot Latest() const;

  // Calls `done` with the first snapshot at or past (`min_version`,
  // `edge.round`), or at or past `min_version` in another edge epoch than
  // a nonzero `edge.epoch` (or
  // once training is done, which ends every wait; or of an HQ incarnation
  // other than `incarnation`, 0 meaning any): at once, on this thread, if
  // the board holds one; else from Publish. DEADLINE_EXCEEDED once
  // `deadline` passed on the clock, UNAVAILABLE after Shutdown. Returns an id
  // for CancelWait.
  int64_t WaitAsync(int64_t min_version, absl::Time deadline, int64_t incarnation, Callback done,
                    EdgePosition edge = {}) const;
  // Withdraws a wait. True when it was still pending: `done` will not be
  // called. False when it was already answered (or is being answered).
  bool CancelWait(int64_t id) const;

  // The same wait, blocking the calling thread.
  absl::StatusOr<Snapshot> WaitFor(int64_t min_version, absl::Time deadline,
                                   int64_t incarnation = 0, EdgePosition edge = {}) const;

  // Ends every current and future wait with UNAVAILABLE and stops the
  // deadline timer. Idempotent.
  void Shutdown();

 private:
  struct Wait {
    int64_t min_version;
    EdgePosition edge;
    absl::Time deadline;
    int64_t incarnation;
    Callback done;
  };
  bool Satisfies(int64_t min_version, const EdgePosition& edge, int64_t incarnation) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time NextDeadline() const;
  absl::Time NextDeadlineLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireWaits(absl::Time now);

  Clock* const clock_;
  mutable absl::Mutex mu_;
  Snapshot latest_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Waiting changes nothing a reader sees: the waits are bookkeeping.
  mutable int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  mutable std::map<int64_t, Wait> waits_ ABSL_GUARDED_BY(mu_);

  // Last: it calls into the members above from its own thread.
  std::unique_ptr<Timer> timer_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_WEIGHTS_BOARD_H_
