#ifndef HIPS_WORKER_WORKER_H_
#define HIPS_WORKER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/data/dataset.h"
#include "services/data/shard_sampler.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/models/model.h"
#include "services/numeric/compression.h"
#include "services/numeric/fedavg.h"
#include "services/numeric/scaffold.h"
#include "worker/aggregator_client.h"
#include "services/time/clock.h"

namespace hips {

// One home (member) of a worker process: its id, its index among the run's
// homes and its examples.
struct HomeOptions {
  std::string id = "worker-0";
  int index = 0;  // this home's shard
  // If not empty: the examples of the whole set this home draws its batches
  // from (its part under --partition, partition.h), instead of shard index
  // of num_workers.
  std::vector<int64_t> examples;
};

struct WorkerOptions {
  // The process's one home (the default), or, when `homes` is not empty,
  // none of these: `homes` are the homes it hosts (hips-worker --homes).
  std::string id = "worker-0";
  int index = 0;
  std::vector<int64_t> examples;
  std::vector<HomeOptions> homes;
  int num_workers = 1;  // homes (shards) in the cluster
  int64_t batch_size = 64;
  uint64_t data_seed = 1;  // --seed: the data order and the module's random draws
  // Straggler injection (tests and demos): after each gradient, sleep
  // (slowdown - 1) times the time it took, plus step_delay.
  double slowdown = 1.0;
  absl::Duration step_delay = absl::ZeroDuration();
  // Async: how long to wait for weights that a push's ack announced before
  // computing on the older ones again.
  absl::Duration fresh_weights_wait = absl::Milliseconds(20);
  absl::Duration long_poll = absl::Seconds(2);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Heartbeats per lease (the aggregator says how long its lease is; until
  // then `lease` is assumed). An aggregator that has not answered for a
  // lease is given up for the next one in the list.
  absl::Duration lease = absl::Seconds(2);
  int heartbeats_per_lease = 4;
  // After failing over, move back to the first aggregator of the list once
  // it answers again (checked every 2 leases), so a restarted aggregator
  // gets its workers back and the load stays balanced.
  bool return_to_preferred = true;
  // How gradients travel to the aggregator (docs/performance.md).
  CompressionOptions compression;
  // Where time comes from (RPC deadlines, leases, failover, step times);
  // must outlive the worker.
  Clock* clock = SystemClock();
};

absl::Status ValidateWorkerOptions(const WorkerOptions& options);

// The homes a worker process hosts: options.homes, or the one home of id,
// index and examples.
std::vector<HomeOptions> HostedHomes(const WorkerOptions& options);

// The aggregators of worker `index` when every worker is given the same
// list (a Kubernetes Job's pods): entry index mod N is its own, the entries
// after it, wrapping around, are where it fails over to. Worker k of a
// 2-aggregator list [a, b] gets [a, b] for even k and [b, a] for odd k.
// `index` must be >= 0.
std::vector<std::string> AggregatorsByIndex(const std::vector<std::string>& aggregators, int index);

// The worker tier (the story's "home models", docs/architecture.md): a
// model replica and one data shard. The loop follows
// the mode that comes with the weights (docs/modes.md):
//   sync   weights of version v -> gradient on this worker's batch -> push
//          tagged with v -> wait for v+1;
//   async  never waits for a round: after each push it takes the newest
//          weights the aggregator has (the same ones if nothing newer came),
//          waiting at most fresh_weights_wait for ones an ack announced;
//   ssp    as async, but it waits for weights no more than `staleness`
//          versions older than the newest version it has heard of (pushes'
//          acks report it), since a gradient on older ones would be refused;
//   fedavg as sync, but on weights of version v it takes H = local_steps
//          SGD steps (the LocalSgd that came with the weights) and pushes
//          start - end, its model delta, for all H batches' samples; a
//          worker the aggregator did not draw for the round (participants)
//          waits for v+1. With E edge rounds the weights of v come E times,
//          as (v, e): HQ's, then the aggregator's copy after each of its
//          rounds; after a push on (v, e) the worker waits for (v, e+1), or
//          v+1 after the last round (from an aggregator of another edge
//          epoch, having moved or after it restarted: for whatever round of
//          v it is in, unless this worker's push was of the last round).
// Step s uses the batch ShardSampler::Batch(s). In sync s is the version
// (in fedavg (v·E + e)·H + j for local step j), so
// every worker's data order is reproducible (the equality test and the
// monolith rely on it); in async and ssp s counts this worker's gradients
// (a restarted worker continues where HQ says its data order was).
//
// Many homes (hips-worker --homes, docs/modes.md "Many homes"): a worker
// process may host several homes. Each is a member of its own (id, data
// shard and order, sequence numbers, lease, compression residual); they
// share the process's incarnation, its model (the weights are set once per
// version and again before each home computes), its channels and one
// heartbeat that names them all. Per weights the homes compute in turn:
// every home in sync, the drawn ones in fedavg, the next one in turn in
// async and ssp. A push travels on a thread of its own while the next home
// computes (a sync or fedavg push is answered only once its round is over,
// which needs the other homes' pushes); a home computes again only once its
// push was answered. With one home this is the loop above, push for push.
//
// Faults (docs/faults.md): a heartbeat thread holds the homes' leases at
// their aggregator. An aggregator that has not answered for a lease is
// given up: the pushes in flight are cancelled and sent again, marked as
// retries, to the next aggregator of the list (HQ applies a retried
// gradient at most once).
//
// Run() is called from one thread; Shutdown() from any.
class Worker {
 public:
  // `clients` (aggregators in order of preference, at least one) must
  // outlive the worker.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(WorkerOptions options,
                                                        std::unique_ptr<Model> model,
                                                        std::shared_ptr<const Dataset> data,
                                                        std::vector<AggregatorClient*> clients);
  static absl::StatusOr<std::unique_ptr<Worker>> Create(WorkerOptions options,
                                                        std::unique_ptr<Model> model,
                                                        std::shared_ptr<const Dataset> data,
                                                        AggregatorClient* client) {
    return Create(std::move(options), std::move(model), std::move(data),
                  std::vector<AggregatorClient*>{client});
  }
  ~Worker();

  // Trains until the weights say training is done (OK) or Shutdown
  // (CANCELLED). Retries transient errors with backoff; returns other errors
  // (e.g. FAILED_PRECONDITION for weights of another model).
  absl::Status Run();

  void Shutdown();
  // Tests: stops as a killed process would, without telling its aggregator
  // it leaves (its lease runs out there) and without answering anything in
  // flight.
  void Kill();

  // Where pushes are timed (client side, end to end); call before Run. May
  // be null.
  void set_rpc_metrics(RpcMetrics* metrics) { rpc_metrics_ = metrics; }

  // Counters over all its homes, readable from any thread while Run runs.
  // Gradients computed so far (pushed or refused; in fedavg every local
  // step counts).
  int64_t steps() const { return steps_.load(); }
  int64_t refused() const { return refused_.load(); }
  // Gradients (fedavg: deltas) it pushed, retries not counted again.
  int64_t pushes() const { return pushes_.load(); }
  // Times this process moved to another aggregator.
  int64_t switches() const { return switches_.load(); }
  // fedavg: rounds a home was not drawn for, summed over the homes.
  int64_t rounds_sat_out() const { return rounds_sat_out_.load(); }
  // The version of the weights it computes on (-1 before the first).
  int64_t version() const { return version_.load(); }
  // Mean loss of its newest batch.
  double last_loss() const { return last_loss_.load(); }
  int homes() const { return static_cast<int>(homes_.size()); }

 private:
  // A hosted home's own state. Only Run's thread touches it, but for
  // `sending`, the thread of its push in flight (joined before the home
  // computes again).
  struct Home {
    HomeOptions options;
    ShardSampler sampler;
    int64_t sequence = 0;  // of its newest push (the first is 1)
    int64_t last_step = -1;
    // Encodes its pushes on a compressed hop (its error feedback); null for
    // fp32.
    std::unique_ptr<Compressor> compressor;
    // SCAFFOLD: its control variate c_i, from its first round on (lives as
    // long as this process; a restarted home starts again at 0).
    std::unique_ptr<HomeVariate> variate;
    std::thread sending;
  };

  Worker(WorkerOptions options, std::unique_ptr<Model> model, std::shared_ptr<const Dataset> data,
         std::vector<Home> homes, std::vector<AggregatorClient*> clients);

  // The next weights to compute on: newer ones, or `current_` again when the
  // mode allows it and nothing newer is there. Null after Shutdown.
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> NextWeights();
  absl::Status Loop();
  // Home `h`'s turn on `w`: its gradient (or fedavg round), then its push on
  // its way. False if the worker was shut down meanwhile.
  absl::StatusOr<bool> Turn(Home& h, const std::shared_ptr<const WeightsSnapshot>& w);
  absl::Status ComputeStep(Home& h, const WeightsSnapshot& weights, int64_t step,
                           GradientPush* push);
  // The gradient of step `step`'s batch of home `h` into `out`; its sample
  // count into `samples`. Returns the batch's loss sum.
  absl::StatusOr<double> Gradient(Home& h, int64_t step, absl::Span<float> out, int64_t* samples);
  // fedavg: the round's local steps of home `h` on `weights`, leaving the
  // delta in `push`. False if the worker was shut down meanwhile.
  absl::StatusOr<bool> LocalRound(Home& h, const WeightsSnapshot& weights, GradientPush* push);
  // The model's floats of `w` (without the control variates that may
  // follow them).
  absl::Span<const float> ModelPart(const WeightsSnapshot& w) const;
  // Fills the header of home `h`'s push for what push->gradient now holds
  // (and encodes it on a compressed hop).
  void Seal(Home& h, int64_t version, int64_t samples, double loss_sum, int64_t step,
            GradientPush* push);
  // Sleeps as a straggler would; false if the worker was shut down meanwhile.
  bool Straggle(absl::Duration compute_time);
  // Sends `push` (on home `h`'s own thread), then gives its buffer back.
  void Send(Home& h, std::unique_ptr<GradientPush> push);
  absl::Status PushWithRetry(GradientPush& push);
  // Waits for home `h`'s push in flight, if any.
  static void AwaitPush(Home& h);
  // A buffer for a push (from those whose pushes were answered).
  std::unique_ptr<GradientPush> TakeBuffer();
  AggregatorClient* client() const { return clients_[active_.load()]; }
  // The heartbeat of all the homes.
  HeartbeatRequestData HomesHeartbeat(bool leaving) const;
  // Joins the current aggregator; returns its answer.
  absl::StatusOr<HeartbeatAnswer> Join();
  // Moves to another aggregator when the heartbeat thread asked for it
  // (from Run's thread or a push's).
  void MaybeSwitch();
  void HeartbeatLoop();
  void NoteNewest(int64_t version);

  const WorkerOptions options_;
  std::unique_ptr<Model> model_;
  const std::shared_ptr<const Dataset> data_;
  std::vector<Home> homes_;
  const std::vector<AggregatorClient*> clients_;
  const int64_t incarnation_;
  absl::Notification stop_;
  // Ends the heartbeat thread (when Run ends, or at Shutdown).
  absl::Notification heartbeat_stop_;
  std::once_flag heartbeat_stop_once_;
  void StopHeartbeats();
  std::once_flag shutdown_once_;
  // Shared with the heartbeat thread and the pushes' threads.
  std::atomic<int> active_{0};          // index into clients_
  std::atomic<bool> failover_{false};   // the current one stopped answering
  std::atomic<bool> move_back_{false};  // the preferred one answers again
  std::atomic<int64_t> lease_micros_;
  std::atomic<int64_t> switches_{0};
  std::atomic<int64_t> newest_known_{-1};  // newest version heard of
  std::mutex switch_mu_;                    // one MaybeSwitch at a time
  std::thread heartbeat_;

  // Only Run's thread touches the members below.
  std::shared_ptr<const WeightsSnapshot> current_;  // what the model holds
  // Whether current_ carries SCAFFOLD's control variate after the model's
  // floats (services/numeric/scaffold.h).
  bool variates_ = false;
  // The model's weights are no longer current_'s (a fedavg round, or a
  // forward pass that moved buffers) and must be set again.
  bool model_moved_ = false;
  size_t next_home_ = 0;  // async, ssp: whose turn it is
  std::vector<float> features_;
  std::vector<int64_t> labels_;
  std::vector<float> targets_;
  // fedavg: the replica's local steps (made at the first fedavg round).
  std::unique_ptr<LocalTrainer> trainer_;

  std::mutex buffers_mu_;
  std::vector<std::unique_ptr<GradientPush>> buffers_;  // free ones

  std::atomic<int64_t> steps_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> pushes_{0};
  std::atomic<bool> killed_{false};
  std::atomic<int64_t> rounds_sat_out_{0};
  std::atomic<int64_t> version_{-1};
  std::atomic<double> last_loss_{0};
  RpcMetrics* rpc_metrics_ = nullptr;
};

// A worker's metrics at scrape time (docs/observability.md).
void CollectWorkerMetrics(const Worker& worker, MetricFamilies* out);

}  // namespace hips

#endif  // HIPS_WORKER_WORKER_H_
