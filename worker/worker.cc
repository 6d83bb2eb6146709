#include "worker/worker.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
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

std::vector<HomeOptions> HostedHomes(const WorkerOptions& o) {
  if (!o.homes.empty()) return o.homes;
  return {HomeOptions{o.id, o.index, o.examples}};
}

absl::Status ValidateWorkerOptions(const WorkerOptions& o) {
  const std::vector<HomeOptions> homes = HostedHomes(o);
  if (static_cast<int64_t>(homes.size()) > kMaxHostedHomes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a worker process hosts at most ", kMaxHostedHomes, " homes (--homes)"));
  }
  absl::flat_hash_set<std::string> ids;
  for (const HomeOptions& h : homes) {
    if (absl::Status s = ValidateMemberId(h.id, "the worker id (--id)"); !s.ok()) return s;
    if (!ids.insert(h.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("two homes are called ", h.id));
    }
    if (o.num_workers < 1 || h.index < 0 || h.index >= o.num_workers) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker index ", h.index, " is not in [0, ", o.num_workers,
                       ") (--index or --first_home, --homes, --workers)"));
    }
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
  std::vector<Home> homes;
  for (HomeOptions& h : HostedHomes(options)) {
    absl::StatusOr<ShardSampler> sampler =
        h.examples.empty()
            ? ShardSampler::Create(data->num_whole_examples(), h.index, options.num_workers,
                                   options.batch_size, options.data_seed)
            : ShardSampler::FromExamples(h.examples, h.index, options.batch_size,
                                         options.data_seed);
    if (!sampler.ok()) {
      return absl::Status(sampler.status().code(),
                          absl::StrCat(h.id, ": ", sampler.status().message()));
    }
    h.examples.clear();  // (the sampler holds them)
    homes.push_back(
        Home{std::move(h), *std::move(sampler), 0, -1, nullptr, nullptr, std::thread()});
    if (options.compression.encoding != Encoding::kFp32) {
      homes.back().compressor = std::make_unique<Compressor>(
          options.compression, model->layout().num_floats(), model->layout().buffer_ranges());
    }
  }
  return std::unique_ptr<Worker>(new Worker(std::move(options), std::move(model), std::move(data),
                                            std::move(homes), std::move(clients)));
}

Worker::Worker(WorkerOptions options, std::unique_ptr<Model> model,
               std::shared_ptr<const Dataset> data, std::vector<Home> homes,
               std::vector<AggregatorClient*> clients)
    : options_(std::move(options)),
      model_(std::move(model)),
      data_(std::move(data)),
      homes_(std::move(homes)),
      clients_(std::move(clients)),
      incarnation_(NewIncarnation()),
      lease_micros_(absl::ToInt64Microseconds(options_.lease)) {}

Worker::~Worker() {
  Shutdown();
  for (Home& h : homes_) AwaitPush(h);
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

HeartbeatRequestData Worker::HomesHeartbeat(bool leaving) const {
  HeartbeatRequestData hb;
  hb.member = homes_[0].options.id;
  hb.incarnation = incarnation_;
  hb.leaving = leaving;
  for (size_t i = 1; i < homes_.size(); ++i) hb.homes.push_back(homes_[i].options.id);
  return hb;
}

absl::StatusOr<HeartbeatAnswer> Worker::Join() {
  absl::StatusOr<HeartbeatAnswer> answer =
      client()->Heartbeat(HomesHeartbeat(/*leaving=*/false),
                          options_.clock->Now() + absl::Microseconds(lease_micros_.load()) / 2);
  if (answer.ok()) lease_micros_.store(absl::ToInt64Microseconds(answer->lease));
  return answer;
}

void Worker::HeartbeatLoop() {
  const std::string& me = homes_[0].options.id;
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
      LOG(WARNING) << me << ": aggregator " << watched << " has not answered for "
                   << absl::FormatDuration(now - last_answer) << "; failing over";
      failover_.store(true);
      clients_[watched]->CancelInFlight();
    }
    if (options_.return_to_preferred && watched != 0 && now >= next_probe && !move_back_.load()) {
      next_probe = now + 2 * lease;
      // A probe that does not join: `leaving` is a no-op for a non-member.
      if (clients_[0]->Heartbeat(HomesHeartbeat(/*leaving=*/true), now + lease / 2).ok()) {
        move_back_.store(true);
      }
    }
  }
}

void Worker::MaybeSwitch() {
  std::lock_guard<std::mutex> lock(switch_mu_);
  const int from = active_.load();
  int to = from;
  if (failover_.load()) {
    to = (from + 1) % static_cast<int>(clients_.size());
  } else if (move_back_.load()) {
    to = 0;
    // Leave at once, so that the old aggregator's rounds do not wait a
    // lease for these homes.
    (void)clients_[from]->Heartbeat(HomesHeartbeat(/*leaving=*/true),
                                    options_.clock->Now() + absl::Milliseconds(500));
  }
  failover_.store(false);
  move_back_.store(false);
  if (to == from) return;
  LOG(WARNING) << homes_[0].options.id << ": moving from aggregator " << from << " to aggregator "
               << to;
  active_.store(to);
  switches_.fetch_add(1);
  (void)Join();
}

void Worker::NoteNewest(int64_t version) {
  int64_t known = newest_known_.load();
  while (version > known && !newest_known_.compare_exchange_weak(known, version)) {
  }
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
      if (const int64_t newest = newest_known_.load(); newest > current_->version) {
        // Newer weights exist (an ack said so) and are on their way to the
        // aggregator: wait a moment for them rather than compute a gradient
        // on weights already known to be stale. Never a round's wait: the
        // bound is short and the worker goes on with what it has.
        absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> fresh = client()->PullWeights(
            newest, options_.clock->Now() + options_.fresh_weights_wait,
            /*no_wait=*/false, incarnation);
        if (!absl::IsDeadlineExceeded(fresh.status())) return fresh;
      }
      break;
    case Mode::kSsp: {
      // A gradient on weights older than this is refused for sure.
      const int64_t freshest_useful = newest_known_.load() - current_->mode.staleness;
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
    for (Home& h : homes_) {
      auto it = joined->data_positions.find(h.options.id);
      if (it == joined->data_positions.end()) continue;
      // A restarted home: its data order continues where HQ last saw it.
      h.last_step = std::max(h.last_step, it->second - 1);
      LOG_IF(INFO, homes_.size() == 1)
          << h.options.id << ": continuing at data step " << it->second;
    }
  }
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  absl::Status status = Loop();
  for (Home& h : homes_) AwaitPush(h);
  // No heartbeat after the goodbye: it would join the aggregator again.
  StopHeartbeats();
  heartbeat_.join();
  if (killed_.load()) return status;
  // Leave at once rather than hold up rounds for a lease.
  (void)client()->Heartbeat(HomesHeartbeat(/*leaving=*/true),
                            options_.clock->Now() + absl::Milliseconds(500));
  return status;
}

absl::Status Worker::Loop() {
  const std::string& me = homes_[0].options.id;
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (!stop_.HasBeenNotified()) {
    MaybeSwitch();
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights = NextWeights();
    if (!weights.ok()) {
      if (absl::IsDeadlineExceeded(weights.status())) continue;  // the long poll ran out
      if (!IsRetryable(weights.status())) return weights.status();
      LOG_EVERY_N(WARNING, 20) << me << ": pulling weights: " << weights.status();
      if (stop_.WaitForNotificationWithTimeout(backoff.Next())) break;
      continue;
    }
    backoff.Reset();
    const std::shared_ptr<const WeightsSnapshot> w = *std::move(weights);
    if (w != current_) {
      const bool variates =
          w->layout != model_->layout() && HasControlVariates(w->layout, model_->layout());
      if (w->layout != model_->layout() && !variates) {
        return absl::FailedPreconditionError(
            absl::StrCat("the cluster trains a different model: ",
                         ModelLayout::FirstDifference(w->layout, model_->layout(), "at HQ",
                                                      "in this worker's")));
      }
      if (variates && w->mode.mode != Mode::kFedAvg) {
        // (HQ refuses such a switch; a home cannot train SCAFFOLD outside
        // fedavg's rounds.)
        return absl::FailedPreconditionError(
            absl::StrCat("HQ serves SCAFFOLD's control variates in mode ", DescribeMode(w->mode),
                         "; they are for fedavg only"));
      }
      variates_ = variates;
      if (w->training_done) {
        LOG(INFO) << me << ": training done at version " << w->version << " after "
                  << steps_.load() << " steps (" << refused_.load() << " gradients refused)";
        return absl::OkStatus();
      }
      if (absl::Status s = model_->SetWeights(ModelPart(*w)); !s.ok()) return s;
      model_moved_ = false;
      if (current_ != nullptr && current_->incarnation != w->incarnation) {
        LOG(WARNING) << me << ": HQ restarted; continuing from version " << w->version;
        newest_known_.store(-1);
      }
      if (current_ == nullptr || current_->mode != w->mode) {
        LOG(INFO) << me << ": mode " << DescribeMode(w->mode) << " at version " << w->version;
      }
      current_ = w;
      version_.store(w->version);
      NoteNewest(w->version);
    }
    if (w->mode.mode == Mode::kAsync || w->mode.mode == Mode::kSsp) {
      // One home's gradient per weights: the next home takes the newest.
      Home& h = homes_[next_home_];
      next_home_ = (next_home_ + 1) % homes_.size();
      absl::StatusOr<bool> went = Turn(h, w);
      if (!went.ok()) return went.status();
      if (!*went) break;
      continue;
    }
    bool stopped = false;
    for (Home& h : homes_) {
      if (w->mode.mode == Mode::kFedAvg && !w->participants.empty() &&
          !std::binary_search(w->participants.begin(), w->participants.end(), h.options.id)) {
        ++rounds_sat_out_;
        continue;  // not drawn for this round: waits for the next version
      }
      absl::StatusOr<bool> went = Turn(h, w);
      if (!went.ok()) return went.status();
      if (!*went) {
        stopped = true;
        break;
      }
    }
    if (stopped) break;
  }
  return absl::CancelledError("worker shut down");
}

absl::StatusOr<bool> Worker::Turn(Home& h, const std::shared_ptr<const WeightsSnapshot>& w) {
  AwaitPush(h);  // a home's pushes go one after the other
  if (stop_.HasBeenNotified()) return false;
  if (model_moved_) {
    if (absl::Status s = model_->SetWeights(ModelPart(*w)); !s.ok()) return s;
  }
  std::unique_ptr<GradientPush> push = TakeBuffer();
  push->gradient.resize(w->weights.size());  // (the model's floats, and c's)
  if (w->mode.mode == Mode::kFedAvg) {
    model_moved_ = true;
    absl::StatusOr<bool> trained = LocalRound(h, *w, push.get());
    if (!trained.ok() || !*trained) return trained;
  } else {
    const int64_t step =
        w->mode.mode == Mode::kSync ? std::max(w->version, h.last_step + 1) : h.last_step + 1;
    const absl::Time start = options_.clock->Now();
    if (absl::Status s = ComputeStep(h, *w, step, push.get()); !s.ok()) return s;
    // A forward pass may move buffers (BatchNorm's running statistics).
    model_moved_ = !w->layout.buffer_ranges().empty();
    if (!Straggle(options_.clock->Now() - start)) return false;
    h.last_step = step;
    ++steps_;
  }
  ++pushes_;
  if (homes_.size() == 1) {
    Send(h, std::move(push));  // one home: nothing to overlap with
  } else {
    GradientPush* raw = push.release();
    h.sending = std::thread([this, &h, raw] { Send(h, std::unique_ptr<GradientPush>(raw)); });
  }
  return !stop_.HasBeenNotified();
}

void Worker::AwaitPush(Home& h) {
  if (h.sending.joinable()) h.sending.join();
}

std::unique_ptr<GradientPush> Worker::TakeBuffer() {
  {
    std::lock_guard<std::mutex> lock(buffers_mu_);
    if (!buffers_.empty()) {
      std::unique_ptr<GradientPush> push = std::move(buffers_.back());
      buffers_.pop_back();
      return push;
    }
  }
  auto push = std::make_unique<GradientPush>();
  push->gradient.resize(model_->layout().num_floats());
  return push;
}

void Worker::Send(Home& h, std::unique_ptr<GradientPush> push) {
  if (absl::Status s = PushWithRetry(*push); !s.ok() && !absl::IsCancelled(s)) {
    // The aggregator counted the refusal (e.g. a late gradient of a closed
    // round, or one too stale for ssp); the home moves on.
    ++refused_;
    LOG_EVERY_N(WARNING, 100) << h.options.id << ": gradient of version " << push->version
                              << " refused: " << s << " (every 100th refusal is logged)";
  }
  std::lock_guard<std::mutex> lock(buffers_mu_);
  buffers_.push_back(std::move(push));
}

absl::StatusOr<double> Worker::Gradient(Home& h, int64_t step, absl::Span<float> out,
                                        int64_t* samples) {
  const std::vector<int64_t> batch = h.sampler.Batch(step);
  data_->Gather(batch, &features_, &labels_, &targets_);
  // Dropout and the module's other draws come from (--seed, id, step): a
  // restarted home recomputes the same gradient of a step.
  model_->SeedNextGradient(StepSeed(options_.data_seed, h.options.id, step));
  absl::StatusOr<double> loss_sum = model_->ComputeGradient(features_, labels_, targets_, out);
  if (!loss_sum.ok()) return loss_sum.status();
  *samples = static_cast<int64_t>(batch.size());
  last_loss_.store(*loss_sum / static_cast<double>(batch.size()));
  return loss_sum;
}

absl::Status Worker::ComputeStep(Home& h, const WeightsSnapshot& w, int64_t step,
                                 GradientPush* push) {
  int64_t samples = 0;
  absl::StatusOr<double> loss_sum = Gradient(h, step, absl::MakeSpan(push->gradient), &samples);
  if (!loss_sum.ok()) return loss_sum.status();
  Seal(h, w.version, samples, *loss_sum, step, push);
  push->hq_incarnation = w.incarnation;
  return absl::OkStatus();
}

absl::Span<const float> Worker::ModelPart(const WeightsSnapshot& w) const {
  return absl::MakeConstSpan(w.weights).first(static_cast<size_t>(model_->layout().num_floats()));
}

absl::StatusOr<bool> Worker::LocalRound(Home& h, const WeightsSnapshot& w, GradientPush* push) {
  const ModelLayout& model = model_->layout();
  const size_t n = static_cast<size_t>(model.num_floats());
  if (trainer_ == nullptr) {
    trainer_ = std::make_unique<LocalTrainer>(n, model.buffer_ranges());
  }
  trainer_->Begin(ModelPart(w));
  const absl::Span<float> grad = absl::MakeSpan(push->gradient).first(n);
  if (variates_) {
    if (h.variate == nullptr) h.variate = std::make_unique<HomeVariate>(model);
    h.variate->Begin(absl::MakeConstSpan(w.weights).subspan(n));
  }
  // Local step j of round (v, e) reads batch (v·E + e)·H + j of this
  // home's order, so a round of one step reads what sync would (and a
  // restarted home goes on from its data position).
  int64_t samples = 0;
  double loss_sum = 0;
  for (int64_t j = 0; j < w.mode.local_steps; ++j) {
    if (j > 0) {
      if (absl::Status s = model_->SetWeights(trainer_->weights()); !s.ok()) return s;
    }
    const int64_t step = std::max(
        (w.version * w.mode.edge_rounds + w.edge_round) * w.mode.local_steps + j, h.last_step + 1);
    const absl::Time start = options_.clock->Now();
    int64_t batch = 0;
    absl::StatusOr<double> loss = Gradient(h, step, grad, &batch);
    if (!loss.ok()) return loss.status();
    if (variates_) h.variate->Correct(grad);  // + c - c_i
    trainer_->Step(grad, w.local_sgd, w.mode.proximal_mu);
    samples += batch;
    loss_sum += *loss;
    h.last_step = step;
    ++steps_;
    if (!Straggle(options_.clock->Now() - start)) return false;
  }
  trainer_->DeltaInto(grad);
  if (variates_) {
    // The home's update of c, a value in the buffer slots after the delta.
    h.variate->Finish(w.mode.participation, absl::MakeSpan(push->gradient).subspan(n));
    if (h.compressor != nullptr && h.compressor->num_floats() != push->gradient.size()) {
      h.compressor = std::make_unique<Compressor>(h.compressor->options(), push->gradient.size(),
                                                  w.layout.buffer_ranges());
    }
  }
  last_loss_.store(loss_sum / static_cast<double>(samples));
  Seal(h, w.version, samples, loss_sum, h.last_step, push);
  push->hq_incarnation = w.incarnation;
  push->edge_round = w.edge_round;
  return true;
}

void Worker::Seal(Home& h, int64_t version, int64_t samples, double loss_sum, int64_t step,
                  GradientPush* push) {
  push->sender = h.options.id;
  push->incarnation = incarnation_;
  push->version = version;
  push->samples = samples;
  push->loss_sum = loss_sum;
  push->step = step;
  push->edge_round = 0;
  push->retry = false;
  push->sequence = ++h.sequence;
  if (h.compressor != nullptr) {
    // Once per gradient (its retries resend the same bytes): the error
    // feedback carries what this one does not send into the next.
    push->encoded.encoding = h.compressor->options().encoding;
    push->encoded.nonzeros = h.compressor->Encode(push->gradient, &push->encoded.bytes);
  }
}

bool Worker::Straggle(absl::Duration compute_time) {
  const absl::Duration pause = (options_.slowdown - 1.0) * compute_time + options_.step_delay;
  if (pause <= absl::ZeroDuration()) return !stop_.HasBeenNotified();
  return !stop_.WaitForNotificationWithTimeout(pause);
}

absl::Status Worker::PushWithRetry(GradientPush& push) {
  RpcTimer timer(rpc_metrics_, "PushGradient");
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (true) {
    absl::StatusOr<PushResult> result = client()->PushGradient(push);
    timer.Sent(push.encoded.encoding == Encoding::kFp32
                   ? static_cast<int64_t>(push.gradient.size() * sizeof(float))
                   : static_cast<int64_t>(push.encoded.bytes.size()));
    if (stop_.HasBeenNotified()) return absl::CancelledError("worker shut down");
    if (result.ok()) {
      LOG_IF(WARNING, result->duplicate)
          << push.sender << ": the aggregator already had push " << push.sequence
          << " of version " << push.version << " (is this worker's id unique?)";
      NoteNewest(result->newest_version);
      return absl::OkStatus();
    }
    if (!IsRetryable(result.status())) return result.status();
    // The outcome is unknown: the gradient may have reached HQ. Every
    // further attempt says so, and goes wherever the worker is now.
    push.retry = true;
    LOG_EVERY_N(WARNING, 20) << push.sender << ": pushing version " << push.version << ": "
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
  out->Gauge("hips_worker_homes", "Homes this worker process hosts (--homes)", w.homes());
  out->Gauge("hips_version", "Version of the weights the worker computes on", w.version());
  out->Gauge("hips_training_loss", "Mean loss of the worker's newest batch", w.last_loss());
}

}  // namespace hips
