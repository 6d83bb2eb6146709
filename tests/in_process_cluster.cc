#include "tests/in_process_cluster.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

SecurityOptions TestSecurity() {
  SecurityOptions s;
  s.cluster_token = "in-process-cluster-token";
  s.admin_token = "in-process-admin-token";
  return s;
}

absl::StatusOr<std::unique_ptr<InProcessCluster>> InProcessCluster::Start(
    InProcessClusterOptions o, std::shared_ptr<const Dataset> train) {
  std::unique_ptr<InProcessCluster> c(new InProcessCluster);
  o.hq.server.expected_aggregators = o.aggregators;
  o.hq.serve.security = o.security;
  absl::StatusOr<std::unique_ptr<HqDaemon>> hq = HqDaemon::Start(o.hq);
  if (!hq.ok()) return hq.status();
  c->hq_ = *std::move(hq);

  for (int a = 0; a < o.aggregators; ++a) {
    AggregatorDaemonOptions ao;
    ao.aggregator = o.aggregator;
    ao.aggregator.id = absl::StrCat("agg-", a);
    ao.aggregator.expected_workers = 0;
    for (int k = a; k < o.workers; k += o.aggregators) {
      ao.aggregator.expected_workers += o.homes_per_worker;
    }
    ao.hq_address = absl::StrCat("127.0.0.1:", c->hq_->port());
    ao.chunk_bytes = o.chunk_bytes;
    ao.serve.security = o.security;
    absl::StatusOr<std::unique_ptr<AggregatorDaemon>> d = AggregatorDaemon::Start(ao);
    if (!d.ok()) return d.status();
    c->aggregators_.push_back(*std::move(d));
  }

  for (int k = 0; k < o.workers; ++k) {
    WorkerDaemonOptions wo;
    wo.worker = o.worker;
    wo.worker.id = absl::StrCat("worker-", k);
    wo.worker.index = k * o.homes_per_worker;
    wo.worker.num_workers = o.workers * o.homes_per_worker;
    wo.homes = o.homes_per_worker;
    if (o.customize_worker) o.customize_worker(k, &wo.worker);
    wo.aggregators = {absl::StrCat("127.0.0.1:", c->aggregators_[k % o.aggregators]->port())};
    wo.chunk_bytes = o.chunk_bytes;
    wo.serve.security = o.security;
    wo.model = o.model;
    wo.model_seed = o.init_seed + k;
    wo.train = train;
    wo.partition = o.partition;
    absl::StatusOr<std::unique_ptr<WorkerDaemon>> w = WorkerDaemon::Start(std::move(wo));
    if (!w.ok()) return w.status();
    c->workers_.push_back(*std::move(w));
  }
  c->results_.resize(o.workers);
  return c;
}

void InProcessCluster::RunWorkers() {
  for (size_t k = 0; k < workers_.size(); ++k) {
    threads_.emplace_back([this, k] { results_[k] = workers_[k]->Run(); });
  }
}

std::vector<absl::Status> InProcessCluster::JoinWorkers() {
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  return results_;
}

InProcessCluster::~InProcessCluster() {
  for (auto& w : workers_) w->Shutdown();
  for (std::thread& t : threads_) t.join();
  for (auto& a : aggregators_) a->Shutdown();
  if (hq_ != nullptr) hq_->Shutdown();
}

}  // namespace hips
