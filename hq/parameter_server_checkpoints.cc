// ParameterServer's checkpoints: what it captures (the trainer's state, the
// data positions and both ledgers' numbers), when one is due, and
// how it continues from one.

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "hq/parameter_server.h"
#include "services/rounds/round_policies.h"

namespace hips {

namespace {
constexpr char kWorkerKey[] = "worker:";
constexpr char kAggregatorKey[] = "aggregator:";

// A ledger's numbers into the checkpoint, each sender under `prefix`.
void PutNumbers(const PushLedger& ledger, const char* prefix, Checkpoint* c) {
  for (const auto& [sender, n] : ledger.numbers()) {
    const std::string key = absl::StrCat(prefix, sender);
    c->sequences[key] = n.sequence;
    if (n.incarnation == 0 && n.retired.empty()) continue;
    std::vector<int64_t>& incarnations = c->incarnations[key];
    incarnations.push_back(n.incarnation);
    incarnations.insert(incarnations.end(), n.retired.begin(), n.retired.end());
  }
}
}  // namespace

absl::StatusOr<Checkpoint> ParameterServer::Capture() {
  absl::MutexLock lock(&apply_mu_);
  return CaptureLocked();
}

absl::StatusOr<Checkpoint> ParameterServer::CaptureLocked() {
  absl::StatusOr<Checkpoint> c = trainer_.Capture();
  if (!c.ok()) return c.status();
  c->data_positions = data_positions_;
  PutNumbers(worker_ledger_, kWorkerKey, &*c);
  PutNumbers(ledger_, kAggregatorKey, &*c);
  c->created_unix_micros = absl::ToUnixMicros(clock_->Now());
  c->diverged_version = divergence_.version;
  c->diverged_reason = divergence_.reason;
  c->forgotten_before = std::max(worker_retention_.horizon(), aggregator_retention_.horizon());
  return c;
}

void ParameterServer::MaybeCheckpoint() {
  const int64_t version = trainer_.version();
  if (!on_checkpoint_ || version == last_checkpoint_version_) return;
  const absl::Time now = clock_->Now();
  const bool due = trainer_.training_done() ||
                   (options_.checkpoint_every_versions > 0 &&
                    version - std::max<int64_t>(0, last_checkpoint_version_) >=
                        options_.checkpoint_every_versions) ||
                   (options_.checkpoint_every > absl::ZeroDuration() &&
                    now - last_checkpoint_time_ >= options_.checkpoint_every);
  if (!due) return;
  absl::StatusOr<Checkpoint> c = CaptureLocked();
  if (!c.ok()) {
    LOG_FIRST_N(ERROR, 1) << "cannot checkpoint: " << c.status();
    return;
  }
  last_checkpoint_version_ = version;
  last_checkpoint_time_ = now;
  on_checkpoint_(*std::move(c));
  absl::MutexLock status_lock(&mu_);
  ++status_.checkpoints_taken;
  status_.last_checkpoint_version = version;
}

absl::Status ParameterServer::Restore(const Checkpoint& c) {
  absl::MutexLock lock(&apply_mu_);
  if (absl::Status s = trainer_.Restore(c); !s.ok()) return s;
  policy_ = MakeRoundPolicy(PolicyOptions(trainer_.mode()), this);
  data_positions_ = c.data_positions;
  divergence_ = Divergence{c.diverged_version, c.diverged_reason};
  // The members it held are remembered from now on, for as long as any.
  const absl::Time now = clock_->Now();
  for (const auto& [key, sequence] : c.sequences) {
    PushLedger::Numbers numbers;
    numbers.sequence = sequence;
    if (auto it = c.incarnations.find(key); it != c.incarnations.end() && !it->second.empty()) {
      numbers.incarnation = it->second.front();
      numbers.retired.assign(it->second.begin() + 1, it->second.end());
    }
    if (absl::StartsWith(key, kWorkerKey)) {
      const std::string worker = key.substr(strlen(kWorkerKey));
      worker_ledger_.Restore(worker, std::move(numbers));
      worker_retention_.Touch(worker, now);
    } else if (absl::StartsWith(key, kAggregatorKey)) {
      const std::string aggregator = key.substr(strlen(kAggregatorKey));
      ledger_.Restore(aggregator, std::move(numbers));
      aggregator_retention_.Touch(aggregator, now);
    }
  }
  worker_retention_.Restore(c.forgotten_before);
  aggregator_retention_.Restore(c.forgotten_before);
  // The aggregators that trained before are not waited for at start: any
  // of them may be gone.
  roster_.members().EndForming();
  last_checkpoint_version_ = trainer_.version();
  {
    absl::MutexLock status_lock(&mu_);
    CopyTrainingState();
    status_.resumed_from = trainer_.version();
    status_.forming = false;
  }
  LOG(INFO) << "resumed from the checkpoint of version " << trainer_.version() << " ("
            << trainer_.samples_applied() << " samples applied, mode "
            << DescribeMode(trainer_.mode()) << ")";
  Publish(Snapshot());
  return absl::OkStatus();
}

}  // namespace hips
