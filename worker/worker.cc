#include "worker/worker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/core/push_ledger.h"
#include "services/time/retry.h"
#include "services/types/ids.h"

namespace hips {

std::vector<std::string> AggregatorsByIndex(const std::vector<std::string>& aggregators,
                                            int index) {
  std::vector<std::string> out;
  const size_t n = aggregators.size();
  for (size_t i = 0; i < n; ++i) out.push_back(aggregators[(index % n + i) % n]);
  return out;
}

absl::Status ValidateWorkerOptions(const WorkerOptions& o) {
  if (absl::Status s = ValidateMemberId(o.id, "the worker id (--id)"); !s.ok()) return s;
  if (o.num_workers < 1 || o.index < 0 || o.index >= o.num_workers) {
    return absl::InvalidArgumentError(absl::StrCat("worker index ", o.index, " is not in [0, ",
                                                   o.num_workers, ") (--index, --workers)"));
  }
  if (!(o.slowdown >= 1.0 && o.slowdown <= 1000.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("slowdown must be in [1, 1000], got ", o.slowdown));
  }
  if (o.step_delay < absl::ZeroDuration() || o.step_delay > absl::Minutes(10)) {
    return absl::InvalidArgumentError("step delay must be in [0, 10 min]");
  }
  if (o.lease <= absl::ZeroDuration() || o.heartbeats_per_lease < 2) {
    return absl::InvalidArgumentError("the lease must be positive, with >= 2 heartbeats in it");
  }
  return ValidateCompressionOptions(o.compression);
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(WorkerOptions options,
                                                       std::unique_ptr<Model> model,
                                                       std::shared_ptr<const Dataset> data,
                                                       std::vector<AggregatorClient*> clients) {
  if (absl::Status s = ValidateWorkerOptions(options); !s.ok()) return s;
  if (clients.empty()) return absl::InvalidArgumentError("a worker needs an aggregator");
  absl::StatusOr<ShardSampler> sampler =
      options.examples.empty()
          ? ShardSampler::Create(data->num_whole_examples(), options.index, options.num_workers,
                                 options.batch_size, options.data_seed)
          : ShardSampler::FromExamples(options.examples, options.index, options.batch_size,
                                       options.data_seed);
  if (!sampler.ok()) return sampler.status();
  return std::unique_ptr<Worker>(new Worker(std::move(options), std::move(model), std::move(data),
                                            *std::move(sampler), std::move(clients)));
}

Worker::Worker(WorkerOptions options, std::unique_ptr<Model> model,
               std::shared_ptr<const Dataset> data, ShardSampler sampler,
               std::vector<AggregatorClient*> clients)
    : options_(std::move(options)),
      model_(std::move(model)),
      data_(std::move(data)),
      sampler_(std::move(sampler)),
      clients_(std::move(clients)),
      incarnation_(NewIncarnation()),
      lease_micros_(absl::ToInt64Microseconds(options_.lease)) {
  push_.sender = options_.id;
  push_.incarnation = incarnation_;
  push_.sequence = 0;  // (the first push is 1)
  push_.gradient.resize(model_->layout().num_floats());
  if (options_.compression.encoding != Encoding::kFp32) {
    compressor_ = std::make_unique<Compressor>(options_.compression, push_.gradient.size(),
                                               model_->layout().buffer_ranges());
  }
}

Worker::~Worker() {
  Shutdown();
  if (heartbeat_.joinable()) heartbeat_.join();
}

void Worker::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    stop_.Notify();
    StopHeartbeats();
    for (AggregatorClient* c : clients_) c->CancelCalls();
  });
}

void Worker::Kill() {
  killed_.store(true);
  Shutdown();
}

void Worker::StopHeartbeats() {
  std::call_once(heartbeat_stop_once_, [this] { heartbeat_stop_.Notify(); });
}

absl::StatusOr<HeartbeatAnswer> Worker::Join() {
  HeartbeatRequestData hb;
  hb.member = options_.id;
  hb.incarnation = incarnation_;
  absl::StatusOr<HeartbeatAnswer> answer =
      client()->Heartbeat(hb, options_.clock->Now() + absl::Microseconds(lease_micros_.load()) / 2);
  if (answer.ok()) lease_micros_.store(absl::ToInt64Microseconds(answer->lease));
  return answer;
}

void Worker::HeartbeatLoop() {
  int watched = active_.load();
  absl::Time last_answer = options_.clock->Now();
  absl::Time next_probe = options_.clock->Now();
  while (true) {
    const absl::Duration lease = absl::Microseconds(lease_micros_.load());
    if (heartbeat_stop_.WaitForNotificationWithTimeout(lease / options_.heartbeats_per_lease)) {
      return;
    }
    const absl::Time now = options_.clock->Now();
    if (active_.load() != watched) {  // Run moved to another aggregator
      watched = active_.load();
      last_answer = now;
      next_probe = now + 2 * lease;
    }
    if (Join().ok()) {
      last_answer = now;
    } else if (now - last_answer > lease && !failover_.load()) {
      LOG(WARNING) << options_.id << ": aggregator " << watched << " has not answered for "
                   << absl::FormatDuration(now - last_answer) << "; failing over";
      failover_.store(true);
      clients_[watched]->CancelInFlight();
    }
    if (options_.return_to_preferred && watched != 0 && now >= next_probe && !move_back_.load()) {
      next_probe = now + 2 * lease;
      // A probe that does not join: `leaving` is a no-op for a non-member.
      HeartbeatRequestData probe;
      probe.member = options_.id;
      probe.incarnation = incarnation_;
      probe.leaving = true;
      if (clients_[0]->Heartbeat(probe, now + lease / 2).ok()) move_back_.store(true);
    }
  }
}

void Worker::MaybeSwitch() {
  const int from = active_.load();
  int to = from;
  if (failover_.load()) {
    to = (from + 1) % static_cast<int>(clients_.size());
  } else if (move_back_.load()) {
    to = 0;
    // Leave at once, so that the old aggregator's rounds do not wait a
    // lease for this worker.
    HeartbeatRequestData bye;
    bye.member = options_.id;
    bye.incarnation = incarnation_;
    bye.leaving = true;
    (void)clients_[from]->Heartbeat(bye, options_.clock->Now() + absl::Milliseconds(500));
  }
  failover_.store(false);
  move_back_.store(false);
  if (to == from) return;
  LOG(WARNING) << options_.id << ": moving from aggregator " << from << " to aggregator " << to;
  active_.store(to);
  switches_.fetch_add(1);
  (void)Join();
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> Worker::NextWeights() {
  const absl::Time deadline = options_.clock->Now() + options_.long_poll;
  if (current_ == nullptr) return client()->PullWeights(0, deadline, /*no_wait=*/false, 0);
  const int64_t incarnation = current_->incarnation;
  const int64_t next = current_->version + 1;
  bool may_reuse = false;
  int64_t min_version = next;
  EdgePosition edge;
  switch (current_->mode.mode) {
    case Mode::kSync:
      break;
    case Mode::kFedAvg:
      // The aggregator's next edge round of this version, or the next
      // version after its last. An aggregator of another epoch (this worker
      // moved, or the aggregator restarted) has rounds of its own: any
      // round of this version of its will do then (WeightsBoard).
      edge.epoch = current_->edge_epoch;
      if (current_->edge_round + 1 < current_->mode.edge_rounds) {
        min_version = current_->version;
        edge.round = current_->edge_round + 1;
      }
      break;
    case Mode::kAsync:
      may_reuse = true;
      if (newest_known_ > current_->version) {
        // Newer weights exist (an ack said so) and are on their way to the
        // aggregator: wait a moment for them rather than compute a gradient
        // on weights already known to be stale. Never a round's wait: the
        // bound is short and the worker goes on with what it has.
        absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> fresh = client()->PullWeights(
            newest_known_, options_.clock->Now() + options_.fresh_weights_wait,
            /*no_wait=*/false, incarnation);
        if (!absl::IsDeadlineExceeded(fresh.status())) return fresh;
      }
      break;
    case Mode::kSsp: {
      // A gradient on weights older than this is refused for sure.
      const int64_t freshest_useful = newest_known_ - current_->mode.staleness;
      may_reuse = current_->version >= freshest_useful;
      min_version = std::max(next, freshest_useful);
      break;
    }
  }
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights =
      client()->PullWeights(min_version, deadline, /*no_wait=*/may_reuse, incarnation, edge);
  if (may_reuse && absl::IsDeadlineExceeded(weights.status())) return current_;
  return weights;
}

absl::Status Worker::Run() {
  if (absl::StatusOr<HeartbeatAnswer> joined = Join(); joined.ok()) {
    if (auto it = joined->data_positions.find(options_.id); it != joined->data_positions.end()) {
      // A restarted worker: its data order continues where HQ last saw it.
      last_step_ = std::max(last_step_, it->second - 1);
      LOG(INFO) << options_.id << ": continuing at data step " << it->second;
    }
  }
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  absl::Status status = Loop();
  // No heartbeat after the goodbye: it would join the aggregator again.
  StopHeartbeats();
  heartbeat_.join();
  if (killed_.load()) return status;
  // Leave at once rather than hold up rounds for a lease.
  HeartbeatRequestData bye;
  bye.member = options_.id;
  bye.incarnation = incarnation_;
  bye.leaving = true;
  (void)client()->Heartbeat(bye, options_.clock->Now() + absl::Milliseconds(500));
  return status;
}

absl::Status Worker::Loop() {
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (!stop_.HasBeenNotified()) {
    MaybeSwitch();
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights = NextWeights();
    if (!weights.ok()) {
      if (absl::IsDeadlineExceeded(weights.status())) continue;  // the long poll ran out
      if (!IsRetryable(weights.status())) return weights.status();
      LOG_EVERY_N(WARNING, 20) << options_.id << ": pulling weights: " << weights.status();
      if (stop_.WaitForNotificationWithTimeout(backoff.Next())) break;
      continue;
    }
    backoff.Reset();
    const std::shared_ptr<const WeightsSnapshot> w = *std::move(weights);
    if (w != current_) {
      if (w->layout != model_->layout()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the cluster trains a different model: ",
                         ModelLayout::FirstDifference(w->layout, model_->layout(), "at HQ",
                                                      "in this worker's")));
      }
      if (w->training_done) {
        LOG(INFO) << options_.id << ": training done at version " << w->version << " after "
                  << steps_.load() << " steps (" << refused_.load() << " gradients refused)";
        return absl::OkStatus();
      }
      if (absl::Status s = model_->SetWeights(w->weights); !s.ok()) return s;
      if (current_ != nullptr && current_->incarnation != w->incarnation) {
        LOG(WARNING) << options_.id << ": HQ restarted; continuing from version " << w->version;
        newest_known_ = -1;
      }
      if (current_ == nullptr || current_->mode != w->mode) {
        LOG(INFO) << options_.id << ": mode " << DescribeMode(w->mode) << " at version "
                  << w->version;
      }
      current_ = w;
      version_.store(w->version);
      newest_known_ = std::max(newest_known_, w->version);
    }
    if (w->mode.mode == Mode::kFedAvg) {
      if (!w->participants.empty() &&
          !std::binary_search(w->participants.begin(), w->participants.end(), options_.id)) {
        ++rounds_sat_out_;
        continue;  // not drawn for this round: wait for the next version
      }
      absl::StatusOr<bool> trained = LocalRound(*w);
      if (!trained.ok()) return trained.status();
      if (!*trained) break;
    } else {
      const int64_t step =
          w->mode.mode == Mode::kSync ? std::max(w->version, last_step_ + 1) : last_step_ + 1;
      const absl::Time start = options_.clock->Now();
      if (absl::Status s = ComputeStep(*w, step); !s.ok()) return s;
      if (!Straggle(options_.clock->Now() - start)) break;
      last_step_ = step;
      ++steps_;
    }
    if (absl::Status s = PushWithRetry(); !s.ok()) {
      if (absl::IsCancelled(s)) break;
      // The aggregator counted the refusal (e.g. a late gradient of a closed
      // round, or one too stale for ssp); this worker moves on.
      ++refused_;
      LOG_EVERY_N(WARNING, 100) << options_.id << ": gradient of version " << w->version
                                << " refused: " << s << " (every 100th refusal is logged)";
    }
  }
  return absl::CancelledError("worker shut down");
}

absl::StatusOr<double> Worker::Gradient(int64_t step, absl::Span<float> out, int64_t* samples) {
  const std::vector<int64_t> batch = sampler_.Batch(step);
  data_->Gather(batch, &features_, &labels_, &targets_);
  // Dropout and the module's other draws come from (--seed, id, step): a
  // restarted worker recomputes the same gradient of a step.
  model_->SeedNextGradient(StepSeed(options_.data_seed, options_.id, step));
  absl::StatusOr<double> loss_sum = model_->ComputeGradient(features_, labels_, targets_, out);
  if (!loss_sum.ok()) return loss_sum.status();
  *samples = static_cast<int64_t>(batch.size());
  last_loss_.store(*loss_sum / static_cast<double>(batch.size()));
  return loss_sum;
}

absl::Status Worker::ComputeStep(const WeightsSnapshot& w, int64_t step) {
  int64_t samples = 0;
  absl::StatusOr<double> loss_sum = Gradient(step, absl::MakeSpan(push_.gradient), &samples);
  if (!loss_sum.ok()) return loss_sum.status();
  Seal(w.version, samples, *loss_sum, step);
  push_.hq_incarnation = w.incarnation;
  return absl::OkStatus();
}

absl::StatusOr<bool> Worker::LocalRound(const WeightsSnapshot& w) {
  if (trainer_ == nullptr) {
    trainer_ = std::make_unique<LocalTrainer>(push_.gradient.size(), w.layout.buffer_ranges());
  }
  trainer_->Begin(w.weights);
  // Local step j of round (v, e) reads batch (v·E + e)·H + j of this
  // worker's order, so a round of one step reads what sync would (and a
  // restarted worker goes on from its data position).
  int64_t samples = 0;
  double loss_sum = 0;
  for (int64_t j = 0; j < w.mode.local_steps; ++j) {
    if (j > 0) {
      if (absl::Status s = model_->SetWeights(trainer_->weights()); !s.ok()) return s;
    }
    const int64_t step = std::max(
        (w.version * w.mode.edge_rounds + w.edge_round) * w.mode.local_steps + j, last_step_ + 1);
    const absl::Time start = options_.clock->Now();
    int64_t n = 0;
    absl::StatusOr<double> loss = Gradient(step, absl::MakeSpan(push_.gradient), &n);
    if (!loss.ok()) return loss.status();
    trainer_->Step(push_.gradient, w.local_sgd);
    samples += n;
    loss_sum += *loss;
    last_step_ = step;
    ++steps_;
    if (!Straggle(options_.clock->Now() - start)) return false;
  }
  trainer_->DeltaInto(absl::MakeSpan(push_.gradient));
  last_loss_.store(loss_sum / static_cast<double>(samples));
  Seal(w.version, samples, loss_sum, last_step_);
  push_.hq_incarnation = w.incarnation;
  push_.edge_round = w.edge_round;
  return true;
}

void Worker::Seal(int64_t version, int64_t samples, double loss_sum, int64_t step) {
  push_.version = version;
  push_.samples = samples;
  push_.loss_sum = loss_sum;
  push_.step = step;
  push_.edge_round = 0;
  push_.retry = false;
  ++push_.sequence;
  if (compressor_ != nullptr) {
    // Once per gradient (its retries resend the same bytes): the error
    // feedback carries what this one does not send into the next.
    push_.encoded.encoding = compressor_->options().encoding;
    push_.encoded.nonzeros = compressor_->Encode(push_.gradient, &push_.encoded.bytes);
  }
}

bool Worker::Straggle(absl::Duration compute_time) {
  const absl::Duration pause = (options_.slowdown - 1.0) * compute_time + options_.step_delay;
  if (pause <= absl::ZeroDuration()) return !stop_.HasBeenNotified();
  return !stop_.WaitForNotificationWithTimeout(pause);
}

absl::Status Worker::PushWithRetry() {
  ++pushes_;
  RpcTimer timer(rpc_metrics_, "PushGradient");
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (true) {
    absl::StatusOr<PushResult> result = client()->PushGradient(push_);
    timer.Sent(push_.encoded.encoding == Encoding::kFp32
                   ? static_cast<int64_t>(push_.gradient.size() * sizeof(float))
                   : static_cast<int64_t>(push_.encoded.bytes.size()));
    if (stop_.HasBeenNotified()) return absl::CancelledError("worker shut down");
    if (result.ok()) {
      LOG_IF(WARNING, result->duplicate)
          << options_.id << ": the aggregator already had push " << push_.sequence << " of version "
          << push_.version << " (is this worker's id unique?)";
      newest_known_ = std::max(newest_known_, result->newest_version);
      return absl::OkStatus();
    }
    if (!IsRetryable(result.status())) return result.status();
    // The outcome is unknown: the gradient may have reached HQ. Every
    // further attempt says so, and goes wherever the worker is now.
    push_.retry = true;
    LOG_EVERY_N(WARNING, 20) << options_.id << ": pushing version " << push_.version << ": "
                             << result.status();
    if (!failover_.load() && stop_.WaitForNotificationWithTimeout(backoff.Next())) {
      return absl::CancelledError("worker shut down");
    }
    MaybeSwitch();
  }
}

void CollectWorkerMetrics(const Worker& w, MetricFamilies* out) {
  out->Counter("hips_worker_steps_total", "Gradients computed (pushed or refused)", w.steps());
  out->Counter("hips_worker_refused_total", "Gradients refused (dropped at a tier)", w.refused());
  out->Counter("hips_worker_failovers_total", "Moves to another aggregator", w.switches());
  out->Counter("hips_worker_rounds_sat_out_total",
               "fedavg: rounds this worker was not drawn for (--participation)",
               w.rounds_sat_out());
  out->Gauge("hips_version", "Version of the weights the worker computes on", w.version());
  out->Gauge("hips_training_loss", "Mean loss of the worker's newest batch", w.last_loss());
}

}  // namespace hips
