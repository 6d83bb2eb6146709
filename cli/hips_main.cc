// hips: the operator CLI. One file per subcommand (cli/*_command.cc):
//   hips local [flags]             a whole cluster as local processes on 127.0.0.1
//   hips train --monolith [flags]  the single-process reference run
//   hips export --checkpoint ...   HQ's checkpoint as a TorchScript module
//   hips mode MODE --hq ADDR       switch a running cluster's consistency mode
//   hips status --hq ADDR [--json] the live tree: versions, staleness, samples/s, last seen
//   hips health ADDR               a daemon's grpc.health.v1 answer
//   hips token --member=ID --role=R  a member's own credential (member tokens)

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "services/runtime/process_setup.h"

namespace {

// The subcommands and the flags each takes (hips SUBCOMMAND --help).
hips::ProgramHelp Help() {
  const std::vector<std::string> training = {"services/runtime/training_flags.cc"};
  // hips local takes the daemons' flags it hands on (cli/child_flags.cc).
  const std::vector<std::string> local_files = {
      "services/runtime/training_flags.cc", "services/runtime/compression_flags.cc",
      "services/runtime/hq_flags.cc", "services/runtime/round_flags.cc",
      "services/runtime/worker_flags.cc"};
  return {
      "hips",
      "the operator CLI of hips, a hierarchical parameter server",
      {{"local",
        "hips local [--workers=4 --aggregators=2 --epochs=10 --mode=sync|async|ssp|fedavg ...]",
        "Starts a whole cluster (HQ, aggregators, workers) as processes on 127.0.0.1, trains\n"
        "to the budget and prints the final accuracy.",
        {"aggregators", "workers", "epochs", "summary_json", "run_dir", "bin_dir",
         "progress_seconds", "async_lr_batch", "coalesce_ms", "clip_norm", "max_samples_per_push", "robust", "trim_fraction",
         "quarantine_ms",
         "backup_workers", "slow_workers",
         "slowdown", "supervise", "max_restarts", "unix_sockets", "tls", "metrics_targets",
         "resume", "export"},
        local_files},
       {"train",
        "hips train --monolith [--workers=4 --batch_size=64 --epochs=10 ...]",
        "The single-process reference: the same model, data, seed and hyperparameters, each\n"
        "step on the union of the batches the workers would draw.",
        {"monolith", "workers", "batch_size", "epochs", "max_versions", "summary_json"},
        training},
       {"export",
        "hips export --checkpoint=PATH --model_file=PATH --out=trained.pt",
        "Writes the module of --model_file with the weights and buffers of HQ's checkpoint\n"
        "(a file, or the newest in a directory): a TorchScript file for torch.jit.load, in\n"
        "eval mode. The checkpoint must be of that module's layout.",
        {"checkpoint", "out", "model_file"},
        {}},
       {"mode",
        "hips mode sync|async|ssp|fedavg [--staleness=S] [--local_steps=H --participation=F "
        "--edge_rounds=E --proximal_mu=MU] [--hq_buffer=K --staleness_weighting=W "
        "--staleness_exponent=A] "
        "--hq=HOST:PORT (--run_dir=DIR | --admin_token_file=F)",
        "Switches a running cluster's consistency mode at its next version. An admin call:\n"
        "it presents the admin token of the hips local run in --run_dir, or the flags'.",
        {"hq", "staleness", "local_steps", "participation", "edge_rounds", "proximal_mu",
         "hq_buffer", "staleness_weighting", "staleness_exponent", "run_dir"},
        {"services/runtime/security_flags.cc"}},
       {"health",
        "hips health HOST:PORT [--service=NAME] [--live] [--timeout_ms=2000] [--tls_ca=F ...]",
        "Asks a daemon's gRPC health service (grpc.health.v1) whether it serves: exit 0 when\n"
        "SERVING (with --live: when it answers at all), 1 when not (or unreachable), 2 for bad\n"
        "flags. No token needed; against TLS it verifies with --tls_ca (and presents\n"
        "--tls_cert for mutual TLS).",
        {"service", "timeout_ms", "live", "check_flags"},
        {"services/runtime/security_flags.cc"}},
       {"status",
        "hips status --hq=HOST:PORT (--run_dir=DIR | --token_file=F) [--json] [--homes]",
        "Prints the live tree: versions, staleness, samples/s and last seen of every member.\n"
        "An aggregator of more than 16 homes gets one line of counts by state instead of a\n"
        "row per home (--homes lists them all; --json always does).\n"
        "It presents the cluster token of the hips local run in --run_dir, or the flags'.",
        {"hq", "json", "run_dir", "homes"},
        {"services/runtime/security_flags.cc"}},
       {"token",
        "hips token --member=ID --role=worker|aggregator (--key_file=KEY | --run_dir=DIR) "
        "[--out=FILE]\n"
        "       hips token --new_key_file=KEY",
        "Issues a member's own token, signed with the cluster's secret member key: a home\n"
        "(worker) or an aggregator presents it as --member_token_file, and servers given the\n"
        "public key (--member_key_file=KEY.pub) take its data calls for that id and role only.\n"
        "--new_key_file makes a new key pair (docs/security.md, \"Member tokens\").",
        {"member", "role", "key_file", "new_key_file", "out", "run_dir"},
        {}}}};
}

#ifndef HIPS_WITH_MONOLITH
// This binary does not link LibTorch: the monolith is hips-train beside it,
// the same program built with it, given the same arguments.
// (hips export too.)
int RunWithTorch(char** argv) {
  const std::string train = absl::StrCat(hips::OwnDirectory(), "/hips-train");
  execv(train.c_str(), argv);
  std::fprintf(stderr, "hips %s: cannot run %s: %s\n", argv[1], train.c_str(),
               std::strerror(errno));
  return 1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const hips::ProgramHelp help = Help();
  // `hips status --homes` lists every home: the flag is hips local's count
  // of homes, so the bare form stands for --homes=-1 here.
  static char list_homes[] = "--homes=-1";
  if (argc > 1 && std::strcmp(argv[1], "status") == 0) {
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "--homes") == 0) argv[i] = list_homes;
    }
  }
  std::vector<char*> args = hips::InitProcess(argc, argv, help);
  if (args.size() < 2) {
    hips::ExitWithUsageError(absl::StrCat("no subcommand\n", hips::HelpText(help, "")));
  }
  const std::string command = args[1];
  // Of the subcommands only health runs in deployments (container probes).
  if (hips::CheckingFlagsOnly() && command != "health") {
    hips::ExitWithUsageError(
        absl::StrCat("--check_flags is for the daemons and hips health, not hips ", command));
  }
  if (command == "mode") {
    if (args.size() != 3) {
      hips::ExitWithUsageError("hips mode takes one mode: sync, async, ssp or fedavg");
    }
    return hips::RunModeCommand(args[2]);
  }
  if (command == "health") {
    if (args.size() != 3) hips::ExitWithUsageError("hips health takes one address, HOST:PORT");
    return hips::RunHealthCommand(args[2]);
  }
  if (args.size() > 2) {
    hips::ExitWithUsageError(absl::StrCat("unexpected argument '", args[2], "' after ", command));
  }
  if (command == "local") return hips::RunLocalCommand();
  if (command == "status") return hips::RunStatusCommand();
  if (command == "token") return hips::RunTokenCommand();
  if (command == "train") {
    if (!absl::GetFlag(FLAGS_monolith)) {
      hips::ExitWithUsageError(
          "hips train needs --monolith (distributed training is 'hips local')");
    }
#ifdef HIPS_WITH_MONOLITH
    return hips::RunTrainCommand();
#else
    return RunWithTorch(argv);
#endif
  }
  if (command == "export") {
#ifdef HIPS_WITH_MONOLITH
    return hips::RunExportCommand();
#else
    return RunWithTorch(argv);
#endif
  }
  hips::ExitWithUnknownCommand(help, command);
}
