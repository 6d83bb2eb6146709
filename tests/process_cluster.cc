#include "tests/process_cluster.h"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/run_credentials.h"
#include "services/testing/wait_for.h"

namespace hips {

std::string NewRunDir(const std::string& base, const std::string& name) {
  std::string tmpl = absl::StrCat(base, "/hips-", name, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return base;
  return tmpl;
}

int64_t SumCounts(const std::map<std::string, int64_t>& counts) {
  int64_t total = 0;
  for (const auto& [reason, n] : counts) total += n;
  return total;
}

ProcessCluster::ProcessCluster(ProcessClusterOptions options) : options_(std::move(options)) {}

ProcessCluster::~ProcessCluster() {
  // Our own connections first (a server shutting down waits for its clients
  // to close), then workers, aggregators and HQ (as hips local does).
  status_.reset();
  for (const char* tier : {"worker", "aggregator", "hq"}) {
    for (auto& [name, c] : children_) {
      if (name.rfind(tier, 0) == 0) {
        kill(c->pid(), SIGCONT);  // a stopped child cannot handle SIGTERM
        c->Stop(absl::Seconds(5));
      }
    }
  }
}

absl::StatusOr<int> ProcessCluster::Launch(const std::string& name, bool wait_for_port) {
  Spec& spec = specs_.at(name);
  const std::string port_file = absl::StrCat(options_.run_dir, "/", name, ".port");
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {absl::StrCat(options_.bin_dir, "/", spec.binary)};
  if (wait_for_port) {
    argv.push_back(absl::StrCat("--port_file=", port_file));
    if (spec.port > 0) argv.push_back(absl::StrCat("--port=", spec.port));
  }
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(name, argv, LogOf(name));
  if (!child.ok()) return child.status();
  children_[name] = *std::move(child);
  if (!wait_for_port) return 0;
  int port = 0;
  WaitFor(
      [&] {
        std::ifstream in(port_file);
        return (in >> port && port > 0) || children_[name]->Exited();
      },
      absl::Seconds(60));
  if (port > 0) {
    spec.port = port;
    return port;
  }
  if (children_[name]->Exited()) {
    return absl::AbortedError(absl::StrCat(name,
                                           " died at start: ", children_[name]->DescribeExit(),
                                           "\n", TailOfFile(LogOf(name), 10)));
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " did not start listening"));
}

int ProcessCluster::WorkerHealthPort(int k) const {
  std::ifstream in(absl::StrCat(options_.run_dir, "/worker-", k, ".health_port"));
  int port = 0;
  return in >> port ? port : 0;
}

std::string ProcessCluster::LogOf(const std::string& name) const {
  return absl::StrCat(options_.run_dir, "/", name, ".log");
}

absl::Status ProcessCluster::Start() {
  absl::StatusOr<ClientCredentials> credentials = PrepareRunCredentials(
      options_.run_dir, options_.tls, options_.aggregators + options_.later_aggregators,
      options_.workers + options_.later_workers);
  if (!credentials.ok()) return credentials.status();
  specs_["hq"].binary = "hips-hq";
  specs_["hq"].args = {absl::StrCat("--aggregators=", options_.aggregators),
                       absl::StrCat("--lease_ms=", options_.lease_ms)};
  for (std::string& arg : RunSecurityArgs(options_.run_dir, "hq", options_.tls, true)) {
    specs_["hq"].args.push_back(std::move(arg));
  }
  specs_["hq"].args.insert(specs_["hq"].args.end(), options_.hq_args.begin(),
                           options_.hq_args.end());
  absl::StatusOr<int> hq_port = Launch("hq", true);
  if (!hq_port.ok()) return hq_port.status();
  hq_address_ = absl::StrCat("127.0.0.1:", *hq_port);
  status_ = std::make_unique<StatusClient>(hq_address_, *credentials);
  for (int a = 0; a < options_.aggregators; ++a) {
    int assigned = 0;
    for (int k = 0; k < options_.workers; ++k) assigned += (k % options_.aggregators == a);
    if (absl::Status s = StartAggregator(a, assigned); !s.ok()) return s;
  }
  for (int k = 0; k < options_.workers; ++k) {
    std::vector<int> order;
    for (int i = 0; i < options_.aggregators; ++i) order.push_back((k + i) % options_.aggregators);
    if (absl::Status s = StartWorker(k, order); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ProcessCluster::StartAggregator(int a, int min_homes) {
  const std::string name = absl::StrCat("aggregator-", a);
  specs_[name].binary = "hips-aggregator";
  specs_[name].args = {absl::StrCat("--id=agg-", a), absl::StrCat("--hq=", hq_address_),
                       absl::StrCat("--workers=", min_homes),
                       absl::StrCat("--lease_ms=", options_.lease_ms)};
  for (std::string& arg :
       RunSecurityArgs(options_.run_dir, absl::StrCat("agg-", a), options_.tls, false)) {
    specs_[name].args.push_back(std::move(arg));
  }
  specs_[name].args.insert(specs_[name].args.end(), options_.aggregator_args.begin(),
                           options_.aggregator_args.end());
  absl::StatusOr<int> port = Launch(name, true);
  if (!port.ok()) return port.status();
  aggregator_addresses_[a] = absl::StrCat("127.0.0.1:", *port);
  return absl::OkStatus();
}

absl::Status ProcessCluster::StartWorker(int k, const std::vector<int>& aggregators) {
  std::vector<std::string> order;
  for (int a : aggregators) order.push_back(aggregator_addresses_.at(a));
  const std::string name = absl::StrCat("worker-", k);
  specs_[name].binary = "hips-worker";
  specs_[name].args = {absl::StrCat("--aggregator=", absl::StrJoin(order, ",")),
                       absl::StrCat("--index=", k),
                       absl::StrCat("--workers=", options_.workers + options_.later_workers)};
  for (std::string& arg :
       RunSecurityArgs(options_.run_dir, absl::StrCat("worker-", k), options_.tls, false)) {
    specs_[name].args.push_back(std::move(arg));
  }
  if (options_.worker_health) {
    specs_[name].args.push_back("--health_port=0");
    specs_[name].args.push_back(
        absl::StrCat("--health_port_file=", options_.run_dir, "/", name, ".health_port"));
  }
  specs_[name].args.insert(specs_[name].args.end(), options_.worker_args.begin(),
                           options_.worker_args.end());
  if (auto it = options_.worker_extra_args.find(k); it != options_.worker_extra_args.end()) {
    specs_[name].args.insert(specs_[name].args.end(), it->second.begin(), it->second.end());
  }
  return Launch(name, false).status();
}

void ProcessCluster::Terminate(const std::string& name) {
  ChildProcess& c = child(name);
  kill(c.pid(), SIGCONT);  // a stopped child cannot handle SIGTERM
  c.Stop(absl::Seconds(10));
}

void ProcessCluster::Kill(const std::string& name) {
  ChildProcess& c = child(name);
  if (c.pid() > 0) kill(c.pid(), SIGKILL);
  c.WaitOrKill(absl::Now() + absl::Seconds(5));
}

void ProcessCluster::Stop(const std::string& name) {
  if (child(name).pid() > 0) kill(child(name).pid(), SIGSTOP);
}

void ProcessCluster::Continue(const std::string& name) {
  if (child(name).pid() > 0) kill(child(name).pid(), SIGCONT);
}

absl::Status ProcessCluster::Restart(const std::string& name) {
  const bool server = name.rfind("worker", 0) != 0;
  return Launch(name, server).status();
}

absl::StatusOr<HqStatus> ProcessCluster::QueryHq() {
  // The first call after HQ restarted may still go to the dead connection
  // (UNAVAILABLE: broken pipe); a real client retries, so does this one.
  absl::StatusOr<HqStatus> s = absl::UnavailableError("not asked yet");
  WaitFor(
      [&] {
        s = status_->Hq(absl::Seconds(2), /*wait_for_ready=*/true);
        return s.ok() || !absl::IsUnavailable(s.status());
      },
      absl::Seconds(10));
  return s;
}

absl::StatusOr<AggregatorStatus> ProcessCluster::QueryAggregator(int a) {
  return status_->Aggregator(aggregator_addresses_[a], absl::Seconds(2));
}

bool ProcessCluster::HoldsLease(int a, const std::string& worker) {
  absl::StatusOr<AggregatorStatus> s = QueryAggregator(a);
  if (!s.ok()) return false;
  const std::vector<std::string>& live = s->counters.live_workers;
  return std::find(live.begin(), live.end(), worker) != live.end();
}

int64_t ProcessCluster::Version() {
  absl::StatusOr<HqStatus> s = QueryHq();
  return s.ok() ? s->server.version : -1;
}

}  // namespace hips
