#include "cli/local_cluster.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/child_process.h"
#include "cli/cluster_status.h"
#include "cli/listen_ports.h"
#include "cli/run_credentials.h"
#include "cli/status_client.h"
#include "nlohmann/json.hpp"
#include "services/data/dataset.h"

namespace hips {
namespace {

constexpr absl::Duration kTick = absl::Milliseconds(50);
constexpr absl::Duration kStopGrace = absl::Seconds(5);
constexpr absl::Duration kStatusEvery = absl::Milliseconds(250);
constexpr absl::Duration kFinalEvalTimeout = absl::Minutes(5);

void PrintProgress(const HqStatus& status, double seconds, double samples_per_second,
                   const std::string& note) {
  const ParameterServerStatus& s = status.server;
  std::string eval = "accuracy=n/a";
  if (status.latest_eval.has_value()) {
    eval = absl::StrFormat("%s (at version %d)", DescribeMetrics(status.latest_eval->metrics),
                           status.latest_eval->version);
  }
  int64_t dropped = 0;
  for (const auto& [reason, count] : s.gradients_dropped) dropped += count;
  std::printf("[%6.1fs] version=%lld %s loss=%.4f %s samples=%lld samples/s=%.0f dropped=%lld%s\n",
              seconds, static_cast<long long>(s.version), DescribeMode(s.mode).c_str(), s.last_loss,
              eval.c_str(), static_cast<long long>(s.samples_applied), samples_per_second,
              static_cast<long long>(dropped), note.c_str());
}

void FillAccounting(const ParameterServerStatus& s, RunSummary* summary) {
  summary->accounting = RunSummary::Accounting();
  RunSummary::Accounting& a = *summary->accounting;
  a.mode = DescribeMode(s.mode);
  a.received = s.gradients_received;
  a.applied = s.gradients_applied;
  a.duplicate = s.gradients_duplicate;
  a.pending = s.gradients_pending;
  a.dropped = s.gradients_dropped;
  a.staleness_counts = s.staleness.counts();
  a.max_staleness = s.staleness.max();
  a.aggregator_to_hq_bytes = s.aggregate_bytes_received;
}

bool HasCheckpoints(const std::string& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "checkpoint-") && absl::EndsWith(name, ".pt")) return true;
  }
  return false;
}

class Cluster {
 public:
  Cluster(const LocalClusterOptions& options, const std::atomic<bool>* interrupted)
      : options_(options), interrupted_(interrupted) {}

  ~Cluster() {
    // Our own connections go first: a server shutting down waits (up to its
    // grace) for its clients to close, and this process would not notice
    // its peer's goodbye while it waits for the children.
    status_.reset();
    // Tier by tier, workers first, then aggregators, then HQ, so that nobody
    // retries towards a peer that is already gone; within a tier in parallel.
    for (const char* tier : {"worker", "aggregator", "hq"}) {
      const absl::Time deadline = absl::Now() + kStopGrace;
      for (const auto& c : children_) {
        if (absl::StartsWith(c->name(), tier)) c->Terminate();
      }
      for (const auto& c : children_) {
        if (absl::StartsWith(c->name(), tier)) c->WaitOrKill(deadline);
      }
    }
    // The unpacked data set was for this run's workers only (in a
    // directory the cluster made: nothing of the user's is removed).
    if (!unpacked_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(unpacked_dir_, ignored);
    }
  }

  absl::StatusOr<RunSummary> Run();

 private:
  // Refuses an earlier run's checkpoints (without --resume) and writes this
  // run's credentials.
  absl::Status Prepare();
  // Starts HQ (and, meanwhile, unpacks the workers' data), the
  // aggregators, the workers.
  absl::Status StartHq();
  absl::Status StartAggregators();
  absl::Status StartWorkers();
  std::vector<std::string> WorkerIdentities() const {
    std::vector<std::string> ids;
    for (int k = 0; k < options_.workers; ++k) ids.push_back(WorkerIdentity(options_, k));
    return ids;
  }
  // Reports progress until HQ evaluated the final weights: the summary.
  absl::StatusOr<RunSummary> Watch(absl::Time start);
  RunSummary Summarize(const HqStatus& status, absl::Time start);
  // How to start a child again.
  struct Spec {
    std::string binary;
    std::vector<std::string> args;
    int port = 0;          // servers: the port it listens on (kept across restarts)
    int metrics_port = 0;  // its /metrics port, once known (kept across restarts)
    int restarts = 0;
  };

  std::string MetricsPortFile(const std::string& name) const {
    return absl::StrCat(options_.run_dir, "/", name, ".metrics_port");
  }
  // Waits (bounded) until every child wrote its metrics port, then writes
  // the Prometheus file_sd targets if asked to.
  absl::Status WriteMetricsTargets();

  absl::StatusOr<int> Start(const std::string& name, const std::string& binary,
                            std::vector<std::string> args, bool wait_for_port);
  absl::Status Spawn(const std::string& name, const std::vector<std::string>& argv);
  // Restarts children that died (a worker may end with code 0 once training
  // is done); an error naming one that died once too often.
  absl::Status CheckChildren();

  const LocalClusterOptions& options_;
  const std::atomic<bool>* const interrupted_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, int64_t> restarts_;
  // Where the servers listen (kept across their restarts).
  ListenPorts ports_{static_cast<uint64_t>(getpid()) * 0x9E3779B97F4A7C15ULL ^
                     static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()))};
  // Each aggregator's counters (what it could not answer is left out).
  void AddAggregatorAccounting(RunSummary* summary);
  // The rounds of the aggregators HQ's round waits for, once it has waited
  // two leases (an RPC each: only then).
  std::map<std::string, RoundWait> WaitingAggregators(const HqStatus& status);

  std::unique_ptr<ClientCredentials> credentials_;  // the run's own client's
  std::unique_ptr<StatusClient> status_;
  std::string hq_address_;                              // host:port
  std::string hq_data_address_;                         // where aggregators reach it
  std::vector<std::string> aggregator_addresses_;       // host:port, for their status
  std::vector<std::string> aggregator_data_addresses_;  // where workers reach them
  // The workers' data, being unpacked (a directory of this run's own).
  std::future<absl::StatusOr<std::string>> unpacked_;
  std::string unpacked_dir_;
};

std::string SocketOf(const LocalClusterOptions& o, const std::string& name) {
  return absl::StrCat(o.run_dir, "/", name, ".sock");
}

// How many of the homes are aggregator a's own (worker process k's is
// k % A).
int WorkersOf(const LocalClusterOptions& o, int a) {
  int n = 0;
  for (int k = 0; k < o.workers; ++k) {
    if (k % o.aggregators == a) n += static_cast<int>(ProcessHomes(o, k).count());
  }
  return n;
}

void Append(std::vector<std::string>* args, std::vector<std::string> more) {
  args->insert(args->end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
}

absl::Status Cluster::Spawn(const std::string& name, const std::vector<std::string>& argv) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(name, argv, absl::StrCat(options_.run_dir, "/", name, ".log"));
  if (!child.ok()) return child.status();
  std::ofstream(absl::StrCat(options_.run_dir, "/", name, ".pid")) << (*child)->pid() << "\n";
  children_.push_back(*std::move(child));
  return absl::OkStatus();
}

absl::StatusOr<int> Cluster::Start(const std::string& name, const std::string& binary,
                                   std::vector<std::string> args, bool wait_for_port) {
  const std::string port_file = absl::StrCat(options_.run_dir, "/", name, ".port");
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {absl::StrCat(options_.bin_dir, "/", binary)};
  if (wait_for_port) {
    argv.push_back(absl::StrCat("--port_file=", port_file));
    // Below the ephemeral range, so that it is still free when the server
    // is restarted there (0: the server picks one).
    if (const int port = ports_.Next(); port > 0) argv.push_back(absl::StrCat("--port=", port));
  }
  args.push_back(absl::StrCat("--metrics_port_file=", MetricsPortFile(name)));
  if (const int port = ports_.Next(); port > 0) {
    args.push_back(absl::StrCat("--metrics_port=", port));  // (last: it wins)
  }
  std::remove(MetricsPortFile(name).c_str());
  argv.insert(argv.end(), args.begin(), args.end());
  specs_[name] = Spec{binary, args};
  if (absl::Status s = Spawn(name, argv); !s.ok()) return s;
  if (!wait_for_port) return 0;
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  while (absl::Now() < deadline) {
    if (interrupted_->load()) return absl::CancelledError("interrupted");
    if (absl::Status s = CheckChildren(); !s.ok()) return s;
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) {
      specs_[name].port = port;
      return port;
    }
    absl::SleepFor(kTick);
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " did not start listening within ",
                                                  absl::FormatDuration(options_.start_timeout)));
}

absl::Status Cluster::WriteMetricsTargets() {
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  for (auto& [name, spec] : specs_) {
    while (spec.metrics_port <= 0) {
      if (interrupted_->load()) return absl::CancelledError("interrupted");
      if (absl::Status s = CheckChildren(); !s.ok()) return s;
      std::ifstream in(MetricsPortFile(name));
      if (in >> spec.metrics_port && spec.metrics_port > 0) break;
      spec.metrics_port = 0;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(name, " did not report a metrics port"));
      }
      absl::SleepFor(kTick);
    }
  }
  if (options_.metrics_targets.empty()) return absl::OkStatus();
  // Prometheus file_sd: one group per process, labelled with its tier and
  // name, so dashboards can tell the tiers apart.
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& [name, spec] : specs_) {
    const std::string tier = name == "hq" ? "hq" : name.substr(0, name.find('-'));
    groups.push_back({{"targets", {absl::StrCat("127.0.0.1:", spec.metrics_port)}},
                      {"labels", {{"job", "hips"}, {"tier", tier}, {"name", name}}}});
  }
  const std::string tmp = absl::StrCat(options_.metrics_targets, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << groups.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  // Prometheus re-reads the file when it changes: never show it half written.
  if (std::rename(tmp.c_str(), options_.metrics_targets.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", options_.metrics_targets));
  }
  std::printf("metrics targets: %s (%zu processes)\n", options_.metrics_targets.c_str(),
              groups.size());
  std::fflush(stdout);
  return absl::OkStatus();
}

absl::Status Cluster::CheckChildren() {
  for (size_t i = 0; i < children_.size(); ++i) {
    ChildProcess& c = *children_[i];
    if (!c.Exited()) continue;
    if (c.ExitedCleanly() && absl::StartsWith(c.name(), "worker")) continue;
    Spec& spec = specs_[c.name()];
    if (spec.metrics_port == 0) {
      std::ifstream in(MetricsPortFile(c.name()));
      in >> spec.metrics_port;
    }
    // A child that gave up before it ever came up (it writes its metrics
    // port once it serves) could not start: a wrong flag or a missing file,
    // which would fail every restart the same way. (One killed by a signal
    // is restarted as usual.)
    if (spec.metrics_port <= 0 && c.ExitedWithError()) {
      return absl::FailedPreconditionError(
          absl::StrCat(c.name(), " could not start (", c.DescribeExit(), "); last lines of ",
                       c.log_path(), ":\n", TailOfFile(c.log_path(), 15)));
    }
    if (spec.restarts >= options_.max_restarts) {
      return absl::AbortedError(
          absl::StrCat(c.name(), " (pid ", c.pid(), ") died: ", c.DescribeExit(),
                       spec.restarts > 0 ? absl::StrCat(" after ", spec.restarts, " restarts") : "",
                       "; last lines of ", c.log_path(), ":\n", TailOfFile(c.log_path(), 15)));
    }
    // The same flags, and for a server the same port, so that its peers
    // find it again.
    std::vector<std::string> argv = {absl::StrCat(options_.bin_dir, "/", spec.binary)};
    if (spec.port > 0) argv.push_back(absl::StrCat("--port=", spec.port));
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
    // Last, so it wins over an earlier --metrics_port: scrapers keep finding it.
    if (spec.metrics_port > 0) argv.push_back(absl::StrCat("--metrics_port=", spec.metrics_port));
    const std::string name = c.name();
    const std::string how = c.DescribeExit();
    const pid_t old_pid = c.pid();
    children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
    if (absl::Status s = Spawn(name, argv); !s.ok()) return s;
    ++spec.restarts;
    ++restarts_[name];
    std::printf("supervisor: %s (pid %d) died (%s); restarted as pid %d (restart %d)\n",
                name.c_str(), static_cast<int>(old_pid), how.c_str(),
                static_cast<int>(children_.back()->pid()), spec.restarts);
    std::fflush(stdout);
    --i;
  }
  return absl::OkStatus();
}

std::map<std::string, RoundWait> Cluster::WaitingAggregators(const HqStatus& status) {
  std::map<std::string, RoundWait> rounds;
  const RoundWait& round = status.server.round;
  if (round.waited_s <= 2 * absl::ToDoubleSeconds(options_.lease)) return rounds;
  for (const MemberInfo& a : status.server.aggregators) {
    if (a.address.empty() ||
        std::find(round.members.begin(), round.members.end(), a.id) == round.members.end()) {
      continue;
    }
    absl::StatusOr<AggregatorStatus> s = status_->Aggregator(a.address, absl::Seconds(1));
    if (s.ok()) rounds[a.id] = s->counters.round;
  }
  return rounds;
}

void Cluster::AddAggregatorAccounting(RunSummary* summary) {
  for (const std::string& address : aggregator_addresses_) {
    absl::StatusOr<AggregatorStatus> s = status_->Aggregator(address, absl::Seconds(5));
    if (!s.ok()) continue;
    const AggregatorCounters& c = s->counters;
    RunSummary::Accounting::Aggregator& a = summary->accounting->aggregators.emplace_back();
    a.id = s->id;
    a.received = c.gradients_received;
    a.duplicate = c.gradients_duplicate;
    a.forwarded = c.gradients_forwarded;
    a.pending = c.gradients_pending;
    a.edge_applied = c.gradients_edge_applied;
    a.clipped = c.gradients_clipped;
    a.capped = c.gradients_capped;
    a.trimmed = c.gradients_trimmed;
    a.quarantined = c.members_quarantined;
    a.calls_refused = s->calls_refused;
    a.dropped = c.gradients_dropped;
    summary->accounting->worker_to_aggregator_bytes += c.gradient_bytes_received;
  }
}

absl::Status Cluster::Prepare() {
  if (!options_.resume && HasCheckpoints(CheckpointDirOf(options_))) {
    return absl::FailedPreconditionError(
        absl::StrCat(CheckpointDirOf(options_),
                     " holds checkpoints of an earlier run: pass --resume to continue it, "
                     "or use another --run_dir or --checkpoint_dir"));
  }
  // Fresh credentials for this run: tokens always, certificates with --tls.
  absl::StatusOr<ClientCredentials> credentials =
      PrepareRunCredentials(options_.run_dir, options_.tls, options_.aggregators, WorkerIdentities());
  if (!credentials.ok()) return credentials.status();
  credentials_ = std::make_unique<ClientCredentials>(*std::move(credentials));
  return absl::OkStatus();
}

absl::Status Cluster::StartHq() {
  // The workers' data is unpacked while HQ starts (HQ reads only the small
  // test set).
  if (!options_.unpack_data_from.empty()) {
    std::string dir = absl::StrCat(options_.run_dir, "/unpacked-data-XXXXXX");
    if (mkdtemp(dir.data()) != nullptr) {
      unpacked_dir_ = dir;
      unpacked_ = std::async(std::launch::async, UnpackFashionMnist, options_.unpack_data_from,
                             unpacked_dir_);
    } else {
      std::fprintf(stderr, "hips local: workers read the gzipped data themselves: %s: %s\n",
                   dir.c_str(), std::strerror(errno));
    }
  }
  absl::StatusOr<int> hq_port = Start("hq", "hips-hq", HqArgs(options_), true);
  if (!hq_port.ok()) return hq_port.status();
  hq_address_ = absl::StrCat("127.0.0.1:", *hq_port);
  status_ = std::make_unique<StatusClient>(hq_address_, *credentials_);
  hq_data_address_ =
      options_.unix_sockets ? absl::StrCat("unix:", SocketOf(options_, "hq")) : hq_address_;
  return absl::OkStatus();
}

absl::Status Cluster::StartAggregators() {
  for (int a = 0; a < options_.aggregators; ++a) {
    const std::string name = absl::StrCat("aggregator-", a);
    absl::StatusOr<int> port =
        Start(name, "hips-aggregator", AggregatorArgs(options_, a, hq_data_address_), true);
    if (!port.ok()) return port.status();
    const std::string tcp_address = absl::StrCat("127.0.0.1:", *port);
    aggregator_data_addresses_.push_back(
        options_.unix_sockets ? absl::StrCat("unix:", SocketOf(options_, name)) : tcp_address);
    aggregator_addresses_.push_back(tcp_address);
  }
  return absl::OkStatus();
}

absl::Status Cluster::StartWorkers() {
  std::vector<std::string> data_args;
  if (unpacked_.valid()) {
    absl::StatusOr<std::string> dir = unpacked_.get();
    if (dir.ok()) {
      data_args.push_back(absl::StrCat("--data_dir=", *dir));
    } else {
      std::fprintf(stderr, "hips local: workers read the gzipped data themselves: %s\n",
                   dir.status().ToString().c_str());
    }
  }
  for (int k = 0; k < options_.workers; ++k) {
    std::vector<std::string> args = WorkerArgs(options_, k, aggregator_data_addresses_);
    args.insert(args.end(), data_args.begin(), data_args.end());  // (the last --data_dir wins)
    absl::StatusOr<int> started = Start(WorkerProcessName(options_, k), "hips-worker", args, false);
    if (!started.ok()) return started.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<RunSummary> Cluster::Run() {
  const absl::Time start = absl::Now();
  if (absl::Status s = Prepare(); !s.ok()) return s;
  if (absl::Status s = StartHq(); !s.ok()) return s;
  if (absl::Status s = StartAggregators(); !s.ok()) return s;
  if (absl::Status s = StartWorkers(); !s.ok()) return s;
  const std::string homes =
      options_.homes > 0 ? absl::StrCat(" hosting ", options_.homes, " homes") : "";
  std::printf(
      "cluster up: hq %s, %d aggregators, %d workers%s%s (logs and credentials in %s: "
      "hips status --hq=%s --run_dir=%s)\n",
      hq_address_.c_str(), options_.aggregators, options_.workers, homes.c_str(),
      options_.tls ? ", mutual TLS" : "", options_.run_dir.c_str(), hq_address_.c_str(),
      options_.run_dir.c_str());
  std::fflush(stdout);
  if (absl::Status s = WriteMetricsTargets(); !s.ok()) return s;
  return Watch(start);
}

absl::StatusOr<RunSummary> Cluster::Watch(absl::Time start) {
  // HQ's status is cheap: read it often (to notice the end at once), print
  // it every progress_every.
  absl::Time next_query = absl::Now();
  absl::Time next_report = absl::Now() + options_.progress_every;
  absl::Time last_time = start;
  absl::Time done_at = absl::InfiniteFuture();
  int64_t last_samples = 0;
  while (true) {
    if (interrupted_->load()) return absl::CancelledError("interrupted");
    if (absl::Status s = CheckChildren(); !s.ok()) return s;
    const absl::Time now = absl::Now();
    if (now < next_query) {
      absl::SleepFor(kTick);
      continue;
    }
    next_query = now + kStatusEvery;
    // Waits for a (re)connection: after HQ restarted, the channel's backoff
    // would otherwise fail queries for a while.
    absl::StatusOr<HqStatus> status = status_->Hq(absl::Seconds(2), /*wait_for_ready=*/true);
    const bool finished =
        status.ok() && status->server.training_done && status->final_eval.has_value();
    if (now >= next_report || finished) {
      next_report = now + options_.progress_every;
      if (!status.ok()) {
        std::printf("HQ status unavailable: %s\n", status.status().ToString().c_str());
      } else {
        PrintProgress(*status, absl::ToDoubleSeconds(now - start),
                      (status->server.samples_applied - last_samples) /
                          std::max(1e-9, absl::ToDoubleSeconds(now - last_time)),
                      WaitingNote(*status, options_.lease, WaitingAggregators(*status)));
        last_samples = status->server.samples_applied;
        last_time = now;
      }
      std::fflush(stdout);
    }
    if (status.ok() && !status->final_eval_error.empty()) {
      return absl::InternalError(
          absl::StrCat("HQ could not evaluate the final weights: ", status->final_eval_error));
    }
    if (status.ok() && status->server.training_done && done_at == absl::InfiniteFuture()) {
      done_at = now;
    }
    if (!finished && now - done_at > kFinalEvalTimeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("no final evaluation ", absl::FormatDuration(kFinalEvalTimeout),
                       " after training ended; see ", options_.run_dir, "/hq.log"));
    }
    if (finished) return Summarize(*status, start);
  }
}

RunSummary Cluster::Summarize(const HqStatus& status, absl::Time start) {
  RunSummary summary;
  summary.version = status.final_eval->version;
  summary.SetMetrics(status.final_eval->metrics);
  summary.samples = status.server.samples_applied;
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  FillAccounting(status.server, &summary);
  AddAggregatorAccounting(&summary);
  summary.restarts = restarts_;
  summary.rollbacks = status.server.rollbacks;
  if (status.server.diverged_version >= 0) {
    summary.diverged = Divergence{status.server.diverged_version, status.server.diverged_reason};
  }
  return summary;
}

}  // namespace

std::string WaitingNote(const HqStatus& status, absl::Duration lease,
                        const std::map<std::string, RoundWait>& aggregators) {
  const RoundWait& round = status.server.round;
  if (status.server.training_done || round.members.empty() ||
      round.waited_s <= 2 * absl::ToDoubleSeconds(lease)) {
    return "";
  }
  std::vector<std::string> parts = {DescribeRoundWait("hq", round)};
  for (const std::string& id : round.members) {
    auto it = aggregators.find(id);
    if (it == aggregators.end()) continue;
    const std::string below = DescribeRoundWait(id, it->second);
    if (!below.empty()) parts.push_back(below);
  }
  return absl::StrCat(" | ", absl::StrJoin(parts, "; "));
}

std::string CheckpointDirOf(const LocalClusterOptions& o) {
  return o.checkpoint_dir.empty() ? absl::StrCat(o.run_dir, "/checkpoints") : o.checkpoint_dir;
}

std::vector<std::string> HqArgs(const LocalClusterOptions& o) {
  // --resume: the first HQ continues an earlier run only when asked (the
  // cluster refuses one otherwise); a restarted one always continues this.
  std::vector<std::string> args = {
      absl::StrCat("--aggregators=", o.aggregators),
      absl::StrCat("--checkpoint_dir=", CheckpointDirOf(o)),
      "--resume=true",
      absl::StrCat("--max_versions=", o.max_versions),
      absl::StrCat("--max_samples=", o.max_samples),
      absl::StrCat("--max_workers=", HomesOfRun(o)),
      absl::StrCat("--max_batch_samples=", std::max<int64_t>(1 << 16, o.samples_per_push)),
      absl::StrCat("--async_lr_batch=", o.lr_reference_samples)};
  Append(&args, RunSecurityArgs(o.run_dir, "hq", o.tls, /*admin=*/true));
  args.insert(args.end(), o.hq_flags.begin(), o.hq_flags.end());
  if (o.unix_sockets) args.push_back(absl::StrCat("--unix_socket=", SocketOf(o, "hq")));
  return args;
}

std::vector<std::string> AggregatorArgs(const LocalClusterOptions& o, int a,
                                        const std::string& hq_address) {
  const int assigned = WorkersOf(o, a);
  std::vector<std::string> args = {
      absl::StrCat("--id=agg-", a), absl::StrCat("--hq=", hq_address),
      absl::StrCat("--workers=", assigned),
      // Failover may bring every home of the run here.
      absl::StrCat("--max_workers=", std::max(assigned, HomesOfRun(o))),
      absl::StrCat("--max_batch_samples=", std::max<int64_t>(1 << 16, o.samples_per_push)),
      absl::StrCat("--round_deadline_ms=", o.round_deadline_ms)};
  if (o.backup_workers > 0) {
    args.push_back(absl::StrCat("--quorum=", std::max(1, assigned - o.backup_workers)));
  }
  Append(&args, RunSecurityArgs(o.run_dir, absl::StrCat("agg-", a), o.tls, /*admin=*/false));
  args.insert(args.end(), o.aggregator_flags.begin(), o.aggregator_flags.end());
  const std::string name = absl::StrCat("aggregator-", a);
  if (o.unix_sockets) args.push_back(absl::StrCat("--unix_socket=", SocketOf(o, name)));
  return args;
}

std::vector<std::string> WorkerArgs(const LocalClusterOptions& o, int k,
                                    const std::vector<std::string>& aggregator_addresses) {
  // Its own aggregator first, then the others to fail over to.
  std::vector<std::string> order;
  for (size_t i = 0; i < aggregator_addresses.size(); ++i) {
    order.push_back(aggregator_addresses[(k + i) % aggregator_addresses.size()]);
  }
  std::vector<std::string> args = {absl::StrCat("--aggregator=", absl::StrJoin(order, ","))};
  if (o.homes > 0) {
    const HomeRange homes = ProcessHomes(o, k);
    args.push_back(absl::StrCat("--first_home=", homes.first));
    args.push_back(absl::StrCat("--homes=", homes.count()));
  } else {
    args.push_back(absl::StrCat("--index=", k));
  }
  args.push_back(absl::StrCat("--workers=", HomesOfRun(o)));
  Append(&args, RunSecurityArgs(o.run_dir, WorkerIdentity(o, k), o.tls, /*admin=*/false));
  args.insert(args.end(), o.worker_flags.begin(), o.worker_flags.end());
  if (o.slow_workers.count(k) > 0) {
    args.push_back(absl::StrCat("--slowdown=", o.slowdown));
    args.push_back(absl::StrCat("--step_delay_ms=", o.step_delay_ms));
  }
  return args;
}

int HomesOfRun(const LocalClusterOptions& o) { return o.homes > 0 ? o.homes : o.workers; }

HomeRange ProcessHomes(const LocalClusterOptions& o, int k) {
  if (o.homes <= 0) return HomeRange{"worker-", k, k};
  const int64_t n = o.homes;
  return HomeRange{"worker-", k * n / o.workers, (k + 1) * n / o.workers - 1};
}

std::string WorkerProcessName(const LocalClusterOptions& o, int k) {
  return absl::StrCat(o.homes > 0 ? "worker-host-" : "worker-", k);
}

std::string WorkerIdentity(const LocalClusterOptions& o, int k) {
  return o.homes > 0 ? ProcessHomes(o, k).Name() : absl::StrCat("worker-", k);
}

absl::StatusOr<RunSummary> RunLocalCluster(const LocalClusterOptions& options,
                                           const std::atomic<bool>* interrupted) {
  Cluster cluster(options, interrupted);
  return cluster.Run();
}

}  // namespace hips
