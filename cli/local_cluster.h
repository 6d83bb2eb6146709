#ifndef HIPS_CLI_LOCAL_CLUSTER_H_
#define HIPS_CLI_LOCAL_CLUSTER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/run_summary.h"
#include "services/types/ids.h"
#include "services/types/tier_status.h"

namespace hips {

struct LocalClusterOptions {
  int aggregators = 2;
  // Worker processes. With `homes` > 0 they host the run's `homes` homes
  // between them (hips-worker --homes), process k homes
  // [k·homes/workers, (k+1)·homes/workers); with 0, one home each.
  int workers = 4;
  int homes = 0;
  int64_t batch_size = 64;
  // The most samples one worker push stands for (fedavg: batch_size times
  // the local steps); the tiers' --max_batch_samples are at least this.
  int64_t samples_per_push = 64;
  // Training budget (at least one > 0), see hips-hq --max_versions and
  // --max_samples.
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  // The daemons' flags handed on as they are, per tier (ChildFlagArgs).
  std::vector<std::string> hq_flags;
  std::vector<std::string> aggregator_flags;
  std::vector<std::string> worker_flags;
  // async/ssp: HQ's learning-rate reference batch (--async_lr_batch).
  int64_t lr_reference_samples = 0;
  // Sync rounds at the aggregators: each closes at its deadline (0: none)
  // with all but `backup_workers` of its workers.
  int64_t round_deadline_ms = 0;
  int backup_workers = 0;
  // Straggler injection: these workers take `slowdown` times as long per
  // step, and `step_delay_ms` more.
  std::set<int> slow_workers;
  double slowdown = 10;
  int64_t step_delay_ms = 0;
  // Tensors between the tiers over Unix sockets in run_dir instead of
  // loopback TCP (status and metrics stay on TCP).
  bool unix_sockets = false;
  // Every channel with mutual TLS: a throwaway CA and a certificate per
  // process in <run_dir>/tls. Fresh cluster and admin tokens are made for
  // every run either way (docs/security.md).
  bool tls = false;
  // Where hips-hq, hips-aggregator and hips-worker are.
  std::string bin_dir;
  // Logs and port files of this run.
  std::string run_dir;
  // Fashion-MNIST's directory when the run trains on it: the cluster
  // unpacks it into a directory of its own in run_dir while HQ starts
  // (removed at the end) and points the workers there, so that each does
  // not inflate the gzipped files itself. Empty: the workers read what
  // their flags say.
  std::string unpack_data_from;
  absl::Duration progress_every = absl::Seconds(3);
  // The members' lease (--lease_ms): a progress line says whom a round
  // waits for once it has waited two.
  absl::Duration lease = absl::Seconds(2);
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
};

// The end of hips local's progress line once HQ's round has waited more
// than two leases: " | hq's round of version V has waited 5.2s for agg-1;
// agg-1's round of version V has waited 5.1s for worker-3" (whom HQ waits
// for, and whom those aggregators wait for in turn; `aggregators`: their
// rounds, by id). Empty otherwise.
std::string WaitingNote(const HqStatus& status, absl::Duration lease,
                        const std::map<std::string, RoundWait>& aggregators);

// The children's flags, beyond the ports hips local assigns: HQ's
// (`checkpoint_dir`: where it checkpoints), aggregator `a`'s (it reaches HQ
// at `hq_address`), worker `k`'s (its aggregator first, then the others it
// fails over to, from `aggregator_addresses`, aggregator i's at i).
std::string CheckpointDirOf(const LocalClusterOptions& options);
std::vector<std::string> HqArgs(const LocalClusterOptions& options);
std::vector<std::string> AggregatorArgs(const LocalClusterOptions& options, int a,
                                        const std::string& hq_address);
std::vector<std::string> WorkerArgs(const LocalClusterOptions& options, int k,
                                    const std::vector<std::string>& aggregator_addresses);

// The homes of the run: `homes`, or one per worker process.
int HomesOfRun(const LocalClusterOptions& options);
// The homes worker process k hosts.
HomeRange ProcessHomes(const LocalClusterOptions& options, int k);
// Worker process k's name (its log, pid file) and identity (its token and
// certificate): worker-<k> for a process of one home; worker-host-<k> and the
// range of its homes (HomeRange) with `homes`.
std::string WorkerProcessName(const LocalClusterOptions& options, int k);
std::string WorkerIdentity(const LocalClusterOptions& options, int k);

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
