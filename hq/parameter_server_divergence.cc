// ParameterServer's watch over divergence (docs/faults.md, "Divergence"):
// non-finite gradients as the tiers report them, and what HQ does once the
// run diverged: roll back to the best weights with a smaller learning rate,
// or stop with the last weights it published.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "hq/parameter_server.h"

namespace hips {

void ParameterServer::NonFinite(const std::string& aggregator,
                                const std::vector<std::string>& workers) {
  if (workers.empty() || trainer_.training_done()) return;
  guard_.NonFinite(aggregator, workers);
  if (std::optional<std::string> why = guard_.EveryGradientNonFinite(roster_.LiveWorkers())) {
    Diverge(trainer_.version(), *why);
  }
}

void ParameterServer::Diverge(int64_t version, const std::string& reason) {
  const DivergenceOptions& d = options_.divergence;
  const std::shared_ptr<const WeightsSnapshot> point = guard_.rollback_point();
  absl::Status rolled_back = absl::FailedPreconditionError("--on_divergence=stop");
  if (d.on == OnDivergence::kRollback) {
    rolled_back =
        trainer_.rollbacks() >= d.max_rollbacks
            ? absl::FailedPreconditionError(absl::StrCat("no rollback left of ", d.max_rollbacks))
        : point == nullptr
            ? absl::FailedPreconditionError("no healthy weights to roll back to")
            : trainer_.RollBack(point->weights, d.lr_factor, board_.Latest()->version);
  }
  if (rolled_back.ok()) {
    LOG(WARNING) << "diverged at version " << version << ": " << reason
                 << "; rolled back to the weights of version " << point->version
                 << " with the learning rate x" << trainer_.lr_scale() << " (rollback "
                 << trainer_.rollbacks() << " of " << d.max_rollbacks << ")";
    guard_.Reset();
  } else {
    // The last weights published are finite: the run ends with them.
    const std::shared_ptr<const WeightsSnapshot> last = board_.Latest();
    if (absl::Status s = trainer_.Stop(last->weights, last->version); !s.ok()) LOG(ERROR) << s;
    divergence_ = Divergence{version, reason};
    LOG(ERROR) << DescribeDivergence(divergence_)
               << "; training stopped with the weights of version " << last->version << " ("
               << rolled_back.message() << ")";
  }
  {
    // A sync round still open was computed on weights the run has left.
    absl::MutexLock status_lock(&mu_);
    status_.gradients_dropped[std::string(DropReasonName(DropReason::kStaleVersion))] +=
        status_.gradients_pending;
    status_.gradients_pending = 0;
  }
  Publish(Snapshot());
  {
    absl::MutexLock status_lock(&mu_);
    CopyTrainingState();
  }
  MaybeCheckpoint();
}

}  // namespace hips
