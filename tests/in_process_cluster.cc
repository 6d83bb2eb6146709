#include "tests/in_process_cluster.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

absl::StatusOr<std::unique_ptr<InProcessCluster>> InProcessCluster::Start(
    InProcessClusterOptions o, std::shared_ptr<const Dataset> train) {
  std::unique_ptr<InProcessCluster> c(new InProcessCluster);
  o.hq.server.expected_aggregators = o.aggregators;
  absl::StatusOr<std::unique_ptr<HqDaemon>> hq = HqDaemon::Start(o.hq);
  if (!hq.ok()) return hq.status();
  c->hq_ = *std::move(hq);

  for (int a = 0; a < o.aggregators; ++a) {
    AggregatorDaemonOptions ao;
    ao.aggregator = o.aggregator;
    ao.aggregator.id = absl::StrCat("agg-", a);
    ao.aggregator.expected_workers = 0;
    for (int k = a; k < o.workers; k += o.aggregators) ++ao.aggregator.expected_workers;
    ao.hq_address = absl::StrCat("127.0.0.1:", c->hq_->port());
    ao.chunk_bytes = o.chunk_bytes;
    absl::StatusOr<std::unique_ptr<AggregatorDaemon>> d = AggregatorDaemon::Start(ao);
    if (!d.ok()) return d.status();
    c->aggregators_.push_back(*std::move(d));
  }

  ModelOptions model = o.model;
  model.input_shape = train->example_shape;
  model.num_classes = train->num_classes;
  for (int k = 0; k < o.workers; ++k) {
    WorkerOptions wo = o.worker;
    wo.id = absl::StrCat("worker-", k);
    wo.index = k;
    wo.num_workers = o.workers;
    if (o.customize_worker) o.customize_worker(k, &wo);
    c->clients_.push_back(CreateGrpcAggregatorClient(
        absl::StrCat("127.0.0.1:", c->aggregators_[k % o.aggregators]->port()), wo.id,
        o.chunk_bytes));
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(model, o.init_seed + k);
    if (!m.ok()) return m.status();
    absl::StatusOr<std::unique_ptr<Worker>> w =
        Worker::Create(wo, *std::move(m), train, c->clients_.back().get());
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
