#include "cli/cluster_status.h"

#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

struct Snapshot {
  absl::Time at;
  v1::StatusReply hq;
  // By aggregator id; absent when it did not answer.
  std::map<std::string, v1::AggregatorStatus> aggregators;
};

class Prober {
 public:
  explicit Prober(const ClusterStatusOptions& options)
      : options_(options), hq_(v1::Hq::NewStub(CreateHipsChannel(options.hq))) {}

  absl::StatusOr<Snapshot> Take() {
    Snapshot s;
    s.at = absl::Now();
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    const grpc::Status status = hq_->GetStatus(&ctx, v1::StatusRequest(), &s.hq);
    if (!status.ok()) {
      absl::Status why = FromGrpcStatus(status);
      return absl::Status(why.code(), absl::StrCat("HQ at ", options_.hq, ": ", why.message()));
    }
    for (const v1::MemberStatus& a : s.hq.aggregators()) {
      if (a.address().empty()) continue;
      auto [it, added] = stubs_.try_emplace(a.address());
      if (added) it->second = v1::Aggregator::NewStub(CreateHipsChannel(a.address()));
      grpc::ClientContext actx;
      actx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
      v1::AggregatorStatus reply;
      if (it->second->GetStatus(&actx, v1::StatusRequest(), &reply).ok()) {
        s.aggregators[a.id()] = reply;
      }
    }
    return s;
  }

 private:
  const ClusterStatusOptions& options_;
  std::unique_ptr<v1::Hq::Stub> hq_;
  std::map<std::string, std::unique_ptr<v1::Aggregator::Stub>> stubs_;
};

// One row of the tree, with its rates.
struct Row {
  std::string tier, id, address, mode;
  int64_t version = -1;
  int64_t staleness = -1;  // -1: not applicable
  double samples_per_s = 0;
  double last_seen_s = -1;  // -1: not applicable
  int64_t gradients = -1;
  bool forming = false;
  bool reachable = true;
  std::vector<Row> children;
};

struct Tree {
  Row hq;
  int64_t max_staleness = 0;
  bool training_done = false;
  int64_t incarnation = 0;
  int live_aggregators = 0;
  int live_workers = 0;
};

absl::StatusOr<Tree> Build(const ClusterStatusOptions& options) {
  Prober prober(options);
  absl::StatusOr<Snapshot> first = prober.Take();
  if (!first.ok()) return first.status();
  absl::SleepFor(options.interval);
  absl::StatusOr<Snapshot> second = prober.Take();
  if (!second.ok()) return second.status();
  const double seconds = std::max(1e-3, absl::ToDoubleSeconds(second->at - first->at));
  // Workers' samples in the first snapshot, wherever they were.
  std::map<std::string, int64_t> samples_before;
  for (const auto& [id, a] : first->aggregators) {
    for (const v1::MemberStatus& w : a.workers()) samples_before[w.id()] += w.samples();
  }
  const v1::StatusReply& hq = second->hq;
  Tree tree;
  tree.hq.tier = "hq";
  tree.hq.id = "hq";
  tree.hq.address = options.hq;
  tree.hq.version = hq.version();
  tree.hq.mode = hq.mode();
  tree.hq.samples_per_s =
      static_cast<double>(hq.samples_applied() - first->hq.samples_applied()) / seconds;
  tree.max_staleness = hq.max_staleness();
  tree.training_done = hq.training_done();
  tree.incarnation = hq.incarnation();
  tree.live_aggregators = hq.live_aggregators_size();
  tree.live_workers = hq.live_workers_size();
  for (const v1::MemberStatus& m : hq.aggregators()) {
    Row& agg = tree.hq.children.emplace_back();
    agg.tier = "aggregator";
    agg.id = m.id();
    agg.address = m.address();
    agg.last_seen_s = static_cast<double>(m.last_seen_ms()) / 1000.0;
    agg.forming = m.forming();
    auto it = second->aggregators.find(m.id());
    if (it == second->aggregators.end()) {
      agg.reachable = false;
      continue;
    }
    const v1::AggregatorStatus& a = it->second;
    agg.version = a.version();
    agg.staleness = hq.version() - a.version();
    for (const v1::MemberStatus& w : a.workers()) {
      Row& worker = agg.children.emplace_back();
      worker.tier = "worker";
      worker.id = w.id();
      worker.version = w.last_version();
      worker.staleness = w.last_version() < 0 ? -1 : hq.version() - w.last_version();
      worker.last_seen_s = static_cast<double>(w.last_seen_ms()) / 1000.0;
      worker.gradients = w.gradients();
      auto before = samples_before.find(w.id());
      // A worker that just arrived here is counted from its first gradient.
      const int64_t then = before == samples_before.end() ? w.samples() : before->second;
      worker.samples_per_s = static_cast<double>(w.samples() - then) / seconds;
      agg.samples_per_s += worker.samples_per_s;
    }
  }
  return tree;
}

std::string Cell(int64_t v) { return v < 0 ? "-" : absl::StrCat(v); }
std::string Seconds(double s) { return s < 0 ? "-" : absl::StrFormat("%.1fs", s); }

}  // namespace

absl::StatusOr<std::string> ClusterStatusTable(const ClusterStatusOptions& options) {
  absl::StatusOr<Tree> tree = Build(options);
  if (!tree.ok()) return tree.status();
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "TIER", "ADDRESS", "VERSION", "MODE", "STALENESS", "SAMPLES/S", "LAST SEEN"}};
  const Row& hq = tree->hq;
  rows.push_back({hq.id, hq.tier, hq.address, Cell(hq.version), hq.mode,
                  absl::StrCat("max ", tree->max_staleness),
                  absl::StrFormat("%.0f", hq.samples_per_s), "-"});
  for (const Row& a : hq.children) {
    rows.push_back({absl::StrCat("  ", a.id), a.tier, a.address, Cell(a.version), "",
                    Cell(a.staleness),
                    a.reachable ? absl::StrFormat("%.0f", a.samples_per_s) : "unreachable",
                    Seconds(a.last_seen_s)});
    for (const Row& w : a.children) {
      rows.push_back({absl::StrCat("    ", w.id), w.tier, "", Cell(w.version), "",
                      Cell(w.staleness), absl::StrFormat("%.0f", w.samples_per_s),
                      Seconds(w.last_seen_s)});
    }
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      // Text left-aligned, numbers right-aligned.
      const bool left = i < 3 || i == 4;
      const std::string pad(widths[i] - row[i].size(), ' ');
      absl::StrAppend(&line, left ? row[i] + pad : pad + row[i], i + 1 < row.size() ? "  " : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  absl::StrAppend(&out, tree->training_done ? "training done; " : "",
                  tree->live_aggregators, " live aggregators, ", tree->live_workers,
                  " live workers\n");
  return out;
}

absl::StatusOr<std::string> ClusterStatusJson(const ClusterStatusOptions& options) {
  absl::StatusOr<Tree> tree = Build(options);
  if (!tree.ok()) return tree.status();
  const Row& hq = tree->hq;
  std::vector<std::string> aggregators;
  for (const Row& a : hq.children) {
    std::vector<std::string> workers;
    for (const Row& w : a.children) {
      workers.push_back(absl::StrFormat(
          "{\"id\": \"%s\", \"version\": %d, \"staleness\": %d, \"samples_per_s\": %.1f, "
          "\"last_seen_s\": %.3f, \"gradients\": %d}",
          w.id, w.version, w.staleness, w.samples_per_s, w.last_seen_s, w.gradients));
    }
    aggregators.push_back(absl::StrFormat(
        "{\"id\": \"%s\", \"address\": \"%s\", \"version\": %d, \"staleness\": %d, "
        "\"samples_per_s\": %.1f, \"last_seen_s\": %.3f, \"forming\": %s, \"reachable\": %s, "
        "\"workers\": [%s]}",
        a.id, a.address, a.version, a.staleness, a.samples_per_s, a.last_seen_s,
        a.forming ? "true" : "false", a.reachable ? "true" : "false",
        absl::StrJoin(workers, ", ")));
  }
  return absl::StrFormat(
      "{\"hq\": {\"address\": \"%s\", \"version\": %d, \"mode\": \"%s\", \"max_staleness\": %d, "
      "\"samples_per_s\": %.1f, \"training_done\": %s, \"incarnation\": %d, "
      "\"live_aggregators\": %d, \"live_workers\": %d}, \"aggregators\": [%s]}\n",
      hq.address, hq.version, hq.mode, tree->max_staleness, hq.samples_per_s,
      tree->training_done ? "true" : "false", tree->incarnation, tree->live_aggregators,
      tree->live_workers, absl::StrJoin(aggregators, ", "));
}

}  // namespace hips
