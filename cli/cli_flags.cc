#include "cli/cli_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int, aggregators, 2, "hips local: aggregators to start.");
ABSL_FLAG(int, workers, 4,
          "hips local: workers to start; hips train: workers whose union batch each step takes.");
ABSL_FLAG(int, homes, 0,
          "hips local: homes of the run, spread over the --workers processes (default then: "
          "one per core, at least one per aggregator), each process hosting a range of them "
          "(hips-worker --homes). 0: one home per worker process.");
ABSL_FLAG(double, epochs, 10.0, "Training budget in epochs over the training set.");
ABSL_FLAG(std::string, summary_json, "", "Also write the final summary as JSON here.");
ABSL_FLAG(std::string, run_dir, "", "hips local: directory for logs (default: a new /tmp dir).");
ABSL_FLAG(std::string, bin_dir, "", "hips local: where the daemons are (default: beside hips).");
ABSL_FLAG(double, progress_seconds, 3.0, "hips local: seconds between progress lines.");
ABSL_FLAG(bool, monolith, false, "hips train: run the single-process reference.");
ABSL_FLAG(std::string, checkpoint, "",
          "hips export: a checkpoint file of HQ's, or a checkpoint directory (its newest).");
ABSL_FLAG(std::string, out, "",
          "hips export: where to write the trained TorchScript module. hips token: write the "
          "token to this file (readable by its owner only) instead of printing it.");
ABSL_FLAG(std::string, member, "",
          "hips token: the member id the token is for, or for a worker process hosting "
          "several homes their range, e.g. 'worker-[0..249]' (hips-worker --homes).");
ABSL_FLAG(std::string, role, "", "hips token: the member's role, worker or aggregator.");
ABSL_FLAG(std::string, key_file, "",
          "hips token: the cluster's secret member key (default: member.key of --run_dir).");
ABSL_FLAG(std::string, new_key_file, "",
          "hips token: make a new member key: the secret half here (owner-only), the public "
          "half (servers' --member_key_file) beside it as FILE.pub.");
ABSL_FLAG(std::string, export, "",
          "hips local: at the end, write the trained module here (as hips export; needs "
          "--model=torchscript).");
ABSL_FLAG(int64_t, async_lr_batch, -1,
          "async/ssp: an update of n samples uses lr*n/N with N this value (-1: workers * "
          "batch_size, the global batch of a sync round; 0: no scaling).");
ABSL_FLAG(int, backup_workers, 0,
          "sync: each aggregator closes a round at its deadline with all but this many of its "
          "workers.");
ABSL_FLAG(std::vector<std::string>, slow_workers, {},
          "Straggler injection: indices of workers to slow down (comma-separated).");
ABSL_FLAG(double, slowdown, 10.0, "Straggler injection: factor for --slow_workers.");
ABSL_FLAG(bool, json, false, "hips status: print JSON instead of a table.");
ABSL_FLAG(bool, supervise, true,
          "hips local: restart a child that dies (same flags and port; HQ resumes from its "
          "newest checkpoint). false: a death fails the run.");
ABSL_FLAG(int, max_restarts, 10, "hips local: restarts per child before the run fails.");
ABSL_FLAG(bool, tls, false,
          "hips local: every channel with mutual TLS (a throwaway CA and a certificate per "
          "process, made with openssl in the run dir).");
ABSL_FLAG(bool, unix_sockets, false,
          "hips local: tensors between the tiers over Unix sockets in the run dir, not TCP.");
ABSL_FLAG(std::string, metrics_targets, "",
          "hips local: write the /metrics addresses of every process here, as a Prometheus "
          "file_sd JSON list (deploy/prometheus).");
ABSL_FLAG(bool, resume, false,
          "hips local: continue the run whose checkpoints are in the checkpoint directory "
          "(without it, a directory holding checkpoints is refused).");
ABSL_FLAG(std::string, service, "",
          "hips health: the service to ask about (\"\": the daemon as a whole; "
          "hips.v1.Hq or hips.v1.Aggregator).");
ABSL_FLAG(int64_t, timeout_ms, 2000, "hips health: how long to wait for the answer.");
ABSL_FLAG(bool, live, false,
          "hips health: exit 0 when the daemon answers at all, SERVING or NOT_SERVING (a "
          "liveness probe: an aggregator waiting for HQ is alive, not ready).");
