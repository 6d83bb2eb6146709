#ifndef HIPS_TESTS_IN_PROCESS_CLUSTER_H_
#define HIPS_TESTS_IN_PROCESS_CLUSTER_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregator/aggregator_daemon.h"
#include "hq/hq_daemon.h"
#include "services/data/dataset.h"
#include "services/data/partition.h"
#include "services/numeric/chunk_codec.h"
#include "worker/worker_daemon.h"

namespace hips {

// A cluster token and an admin token for tests (what `hips local` would
// draw at random).
SecurityOptions TestSecurity();

struct InProcessClusterOptions {
  int aggregators = 2;
  int workers = 4;  // worker k talks to aggregator k % aggregators
  // Homes each worker process hosts (hips-worker --homes): worker k hosts
  // homes k·H .. k·H + H - 1 of the run's workers·H.
  int homes_per_worker = 1;
  // HQ's options; expected_aggregators and security are filled in.
  HqDaemonOptions hq;
  // Every aggregator's options; id and expected_workers are filled in.
  AggregatorOptions aggregator;
  // Every worker's options; id, index and num_workers are filled in, then
  // `customize_worker` (if set) may change worker k's.
  WorkerOptions worker;
  std::function<void(int k, WorkerOptions*)> customize_worker;
  // How the workers split the training examples (they read the labels from
  // the default DataOptions': the set `train` must be).
  Partition partition;
  // The workers' model (input shape from the data); worker k's initial
  // weights use seed init_seed + k (HQ's weights replace them).
  ModelOptions model;
  uint64_t init_seed = 1000;
  size_t chunk_bytes = kDefaultChunkBytes;
  // Every process's security (docs/security.md): the tokens below by
  // default, as `hips local` hands out.
  SecurityOptions security = TestSecurity();
};

// HQ, aggregators and workers in one process, talking real gRPC on loopback
// (free ports). Workers run on threads of their own from RunWorkers on; the
// destructor stops everything.
class InProcessCluster {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessCluster>> Start(
      InProcessClusterOptions options, std::shared_ptr<const Dataset> train);
  ~InProcessCluster();

  void RunWorkers();
  // Waits for every worker's Run and returns what each returned.
  std::vector<absl::Status> JoinWorkers();

  HqDaemon& hq() { return *hq_; }
  int num_aggregators() const { return static_cast<int>(aggregators_.size()); }
  AggregatorDaemon& aggregator(int i) { return *aggregators_[i]; }
  int num_workers() const { return static_cast<int>(workers_.size()); }
  Worker& worker(int k) { return workers_[k]->worker(); }

 private:
  InProcessCluster() = default;

  std::unique_ptr<HqDaemon> hq_;
  std::vector<std::unique_ptr<AggregatorDaemon>> aggregators_;
  std::vector<std::unique_ptr<WorkerDaemon>> workers_;
  std::vector<std::thread> threads_;
  std::vector<absl::Status> results_;
};

}  // namespace hips

#endif  // HIPS_TESTS_IN_PROCESS_CLUSTER_H_
