#ifndef HIPS_CLI_LOCAL_CLUSTER_H_
#define HIPS_CLI_LOCAL_CLUSTER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/run_summary.h"

namespace hips {

struct LocalClusterOptions {
  int aggregators = 2;
  int workers = 4;
  int64_t batch_size = 64;
  // The most samples one worker push stands for (fedavg: batch_size times
  // the local steps); the tiers' --max_batch_samples are at least this.
  int64_t samples_per_push = 64;
  // Training budget (at least one > 0), see hips-hq --max_versions and
  // --max_samples.
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  int64_t eval_every = 100;
  // Extra flags for HQ (mode, deadlines, learning-rate scaling) and for
  // every aggregator (deadlines, coalescing).
  std::vector<std::string> hq_args;
  std::vector<std::string> aggregator_args;
  // Flags for every sender of gradients, workers and aggregators (how
  // their pushes travel: --compression ...).
  std::vector<std::string> push_args;
  // Tensors between the tiers over Unix sockets in run_dir instead of
  // loopback TCP (status and metrics stay on TCP).
  bool unix_sockets = false;
  // Every channel with mutual TLS: a throwaway CA and a certificate per
  // process in <run_dir>/tls. Fresh cluster and admin tokens are made for
  // every run either way (docs/security.md).
  bool tls = false;
  // Sync backup workers: each aggregator closes a round at its deadline with
  // all but this many of its workers.
  int backup_workers = 0;
  // Extra flags for some workers, by index (straggler injection).
  std::map<int, std::vector<std::string>> worker_args;
  // Where hips-hq, hips-aggregator and hips-worker are.
  std::string bin_dir;
  // Logs and port files of this run.
  std::string run_dir;
  // Model, optimizer, data and seed flags handed to HQ and workers.
  std::vector<std::string> training_args;
  // Fashion-MNIST's directory when the run trains on it: the cluster
  // unpacks it into a directory of its own in run_dir while HQ starts
  // (removed at the end) and points the workers there, so that each does
  // not inflate the gzipped files itself. Empty: the workers read what
  // training_args say.
  std::string unpack_data_from;
  absl::Duration progress_every = absl::Seconds(3);
  absl::Duration start_timeout = absl::Seconds(60);
  // Supervision: a child that dies is started again with the same flags and
  // port (HQ resumes from its newest checkpoint), at most this many times
  // per child; 0 turns supervision off (a death fails the run).
  int max_restarts = 10;
  // HQ's checkpoints (default: <run_dir>/checkpoints). A directory that
  // already holds checkpoints (an earlier run's) is continued only with
  // `resume`; otherwise the run refuses to start rather than mix two runs.
  std::string checkpoint_dir;
  bool resume = false;
  // If set, the scrape targets of every process, as a Prometheus file_sd
  // JSON list with labels job, tier and name (rewritten atomically).
  std::string metrics_targets;
  // Sync rounds stop waiting for a member not heard from for this long.
  int64_t lease_ms = 2000;
};

// Runs a whole cluster as real processes on 127.0.0.1 with free ports: one
// hips-hq, `aggregators` hips-aggregator, `workers` hips-worker (worker k
// talks to aggregator k % aggregators and fails over to the others). Prints
// a progress line every `progress_every` and returns once HQ evaluated the
// final weights. A child that dies is restarted (see max_restarts); one that
// dies too often fails the run with its name, exit status and the end of its
// log. Each child's pid is in <run_dir>/<name>.pid. Every child is stopped
// before this returns, and setting `*interrupted` (e.g. from a signal) stops
// the run with CANCELLED.
absl::StatusOr<RunSummary> RunLocalCluster(const LocalClusterOptions& options,
                                           const std::atomic<bool>* interrupted);

}  // namespace hips

#endif  // HIPS_CLI_LOCAL_CLUSTER_H_
