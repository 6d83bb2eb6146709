#ifndef HIPS_TESTS_PROCESS_CLUSTER_H_
#define HIPS_TESTS_PROCESS_CLUSTER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/child_process.h"
#include "cli/status_client.h"
#include "services/types/tier_status.h"

namespace hips {

// A cluster of the real daemons (hips-hq, hips-aggregator, hips-worker) on
// 127.0.0.1 with free ports, started and controlled one process at a time
// by a fault test: kill -9, SIGSTOP/SIGCONT, restart on the same port. Every
// process is a child of the test and dies with it (PR_SET_PDEATHSIG).
struct ProcessClusterOptions {
  int aggregators = 2;
  int workers = 4;
  int64_t lease_ms = 1000;
  std::string bin_dir;
  std::string run_dir;  // logs, port files, checkpoints, credentials
  // Mutual TLS on every channel (fresh tokens are made either way, as hips
  // local does).
  bool tls = false;
  // Extra flags: for HQ, every aggregator, every worker.
  std::vector<std::string> hq_args;
  std::vector<std::string> aggregator_args;
  std::vector<std::string> worker_args;
  // More flags for single workers, by index (after worker_args): a slow
  // site's homes (--slowdown).
  std::map<int, std::vector<std::string>> worker_extra_args;
  // Each worker serves grpc.health.v1 on a free port (WorkerHealthPort).
  bool worker_health = false;
  // Members that join later (elastic membership): credentials are made for
  // aggregators `aggregators` .. + later_aggregators - 1 and workers
  // `workers` .. + later_workers - 1 (shards of workers + later_workers),
  // started by StartAggregator and StartWorker.
  int later_aggregators = 0;
  int later_workers = 0;
};

// A fresh directory for a run's files under `base` (a test's
// ::testing::TempDir()), named hips-NAME-XXXXXX; `base` itself if none can
// be made.
std::string NewRunDir(const std::string& base, const std::string& name);
// The total of counts by reason (drops, refusals).
int64_t SumCounts(const std::map<std::string, int64_t>& counts);

class ProcessCluster {
 public:
  explicit ProcessCluster(ProcessClusterOptions options);
  ~ProcessCluster();  // stops everything

  // Starts HQ, the aggregators and the workers; returns once every server
  // listens (workers are started, not waited for).
  absl::Status Start();

  // Starts aggregator `a` (agg-<a>, waiting for `min_homes`) and returns
  // once it listens; starts worker k with the aggregators `aggregators`
  // (indices; the first its own). Either may be started again after it
  // ended (Restart).
  absl::Status StartAggregator(int a, int min_homes);
  absl::Status StartWorker(int k, const std::vector<int>& aggregators);
  void Terminate(const std::string& name);  // SIGTERM (a goodbye), reaped
  bool Running(const std::string& name) {
    return children_.count(name) > 0 && !children_.at(name)->Exited();
  }

  // Children by name: "hq", "aggregator-<a>", "worker-<k>".
  ChildProcess& child(const std::string& name) { return *children_.at(name); }
  void Kill(const std::string& name);      // kill -9, reaped
  void Stop(const std::string& name);      // SIGSTOP
  void Continue(const std::string& name);  // SIGCONT
  // Starts a dead child again with the same flags (and port, for a server).
  absl::Status Restart(const std::string& name);

  // HQ's status, retrying while HQ is unreachable (bounded).
  absl::StatusOr<HqStatus> QueryHq();
  absl::StatusOr<AggregatorStatus> QueryAggregator(int a);

  // HQ's version, or -1 when it does not answer.
  int64_t Version();
  // Whether aggregator `a` holds a lease of `worker` (false when it does
  // not answer).
  bool HoldsLease(int a, const std::string& worker);

  const std::string& run_dir() const { return options_.run_dir; }
  const std::string& hq_address() const { return hq_address_; }
  const std::string& aggregator_address(int a) const { return aggregator_addresses_.at(a); }
  std::string LogOf(const std::string& name) const;
  // The health port worker k wrote (worker_health), 0 while it has not.
  int WorkerHealthPort(int k) const;

 private:
  struct Spec {
    std::string binary;
    std::vector<std::string> args;
    int port = 0;
  };
  absl::StatusOr<int> Launch(const std::string& name, bool wait_for_port);

  const ProcessClusterOptions options_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::unique_ptr<ChildProcess>> children_;
  std::string hq_address_;
  std::unique_ptr<StatusClient> status_;
  std::map<int, std::string> aggregator_addresses_;
};

}  // namespace hips

#endif  // HIPS_TESTS_PROCESS_CLUSTER_H_
