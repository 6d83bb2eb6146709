#ifndef HIPS_CLI_CLI_FLAGS_H_
#define HIPS_CLI_CLI_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"

// The flags of the hips CLI's own, by the subcommands that take them (hips
// SUBCOMMAND --help lists them). The daemons' flags that hips local hands on
// are the daemons' own (services/runtime/*_flags.h; cli/child_flags.h). A few
// names a daemon takes as well mean something else to hips local (the tree's
// shape, its stragglers, its resume) and keep a default of their own:
// --workers, --aggregators, --slowdown, --resume, --async_lr_batch
// (docs/architecture.md, "Flags").

// hips local
ABSL_DECLARE_FLAG(int, aggregators);
ABSL_DECLARE_FLAG(std::string, run_dir);
ABSL_DECLARE_FLAG(std::string, bin_dir);
ABSL_DECLARE_FLAG(double, progress_seconds);
ABSL_DECLARE_FLAG(std::string, export);
ABSL_DECLARE_FLAG(int64_t, async_lr_batch);
ABSL_DECLARE_FLAG(int, backup_workers);
ABSL_DECLARE_FLAG(std::vector<std::string>, slow_workers);
ABSL_DECLARE_FLAG(double, slowdown);
ABSL_DECLARE_FLAG(bool, supervise);
ABSL_DECLARE_FLAG(int, max_restarts);
ABSL_DECLARE_FLAG(bool, tls);
ABSL_DECLARE_FLAG(bool, unix_sockets);
ABSL_DECLARE_FLAG(std::string, metrics_targets);
ABSL_DECLARE_FLAG(bool, resume);
// hips local and hips train
ABSL_DECLARE_FLAG(int, workers);
ABSL_DECLARE_FLAG(int, homes);
ABSL_DECLARE_FLAG(double, epochs);
ABSL_DECLARE_FLAG(std::string, summary_json);
// hips train, hips export
ABSL_DECLARE_FLAG(bool, monolith);
ABSL_DECLARE_FLAG(std::string, checkpoint);
ABSL_DECLARE_FLAG(std::string, out);
// hips token
ABSL_DECLARE_FLAG(std::string, member);
ABSL_DECLARE_FLAG(std::string, role);
ABSL_DECLARE_FLAG(std::string, key_file);
ABSL_DECLARE_FLAG(std::string, new_key_file);
// hips status, hips health
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(std::string, service);
ABSL_DECLARE_FLAG(int64_t, timeout_ms);
ABSL_DECLARE_FLAG(bool, live);

#endif  // HIPS_CLI_CLI_FLAGS_H_
