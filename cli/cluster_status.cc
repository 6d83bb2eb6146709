#include "cli/cluster_status.h"

#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/status_client.h"
#include "nlohmann/json.hpp"
#include "services/types/divergence.h"
#include "services/types/eval_metrics.h"
#include "services/types/tier_status.h"

namespace hips {
namespace {

struct Snapshot {
  absl::Time at;
  HqStatus hq;
  // By aggregator id; absent when it did not answer.
  std::map<std::string, AggregatorStatus> aggregators;
};

absl::StatusOr<Snapshot> Take(StatusClient* client, absl::Duration timeout) {
  Snapshot s;
  s.at = absl::Now();
  absl::StatusOr<HqStatus> hq = client->Hq(timeout);
  if (!hq.ok()) return hq.status();
  s.hq = *std::move(hq);
  for (const MemberInfo& a : s.hq.server.aggregators) {
    if (a.address.empty()) continue;
    absl::StatusOr<AggregatorStatus> status = client->Aggregator(a.address, timeout);
    if (status.ok()) s.aggregators[a.id] = *std::move(status);
  }
  return s;
}

// One row of the tree, with its rates.
struct Row {
  std::string tier, id, address, mode;
  int64_t version = -1;
  int64_t staleness = -1;  // -1: not applicable
  double samples_per_s = 0;
  double last_seen_s = -1;  // -1: not applicable
  int64_t gradients = -1;
  RoundWait round;
  bool forming = false;
  bool reachable = true;
  // Calls the process refused before serving them, by reason
  // (docs/security.md).
  std::map<std::string, int64_t> calls_refused;
  // An aggregator's gradients: scaled down to --clip_norm, capped to
  // --max_samples_per_push, left out by --robust (bounded influence),
  // and dropped by reason.
  int64_t clipped = 0;
  int64_t capped = 0;
  int64_t trimmed = 0;
  int64_t quarantined = 0;
  std::map<std::string, int64_t> dropped;
  HomeCounts homes;  // an aggregator's
  std::vector<Row> children;
};

struct Tree {
  Row hq;
  int64_t max_staleness = 0;
  bool training_done = false;
  int64_t rollbacks = 0;
  std::optional<Divergence> diverged;
  int64_t incarnation = 0;
  int live_aggregators = 0;
  int live_workers = 0;
  std::optional<EvalResult> latest_eval;
  std::optional<EvalResult> final_eval;
  std::string final_eval_error;
};

absl::StatusOr<Tree> Build(const ClusterStatusOptions& options) {
  StatusClient client(options.hq, options.credentials);
  absl::StatusOr<Snapshot> first = Take(&client, options.rpc_timeout);
  if (!first.ok()) return first.status();
  absl::SleepFor(options.interval);
  absl::StatusOr<Snapshot> second = Take(&client, options.rpc_timeout);
  if (!second.ok()) return second.status();
  const double seconds = std::max(1e-3, absl::ToDoubleSeconds(second->at - first->at));
  // Workers' samples in the first snapshot, wherever they were.
  std::map<std::string, int64_t> samples_before;
  for (const auto& [id, a] : first->aggregators) {
    for (const MemberInfo& w : a.counters.workers) samples_before[w.id] += w.samples;
  }
  const ParameterServerStatus& hq = second->hq.server;
  const absl::Time now = second->at;
  Tree tree;
  tree.hq.tier = "hq";
  tree.hq.id = "hq";
  tree.hq.address = options.hq;
  tree.hq.version = hq.version;
  tree.hq.mode = DescribeMode(hq.mode);
  tree.hq.samples_per_s =
      static_cast<double>(hq.samples_applied - first->hq.server.samples_applied) / seconds;
  tree.max_staleness = hq.staleness.max();
  tree.training_done = hq.training_done;
  tree.rollbacks = hq.rollbacks;
  if (hq.diverged_version >= 0) tree.diverged = Divergence{hq.diverged_version, hq.diverged_reason};
  tree.incarnation = hq.incarnation;
  tree.latest_eval = second->hq.latest_eval;
  tree.final_eval = second->hq.final_eval;
  tree.final_eval_error = second->hq.final_eval_error;
  tree.hq.calls_refused = second->hq.calls_refused;
  tree.hq.clipped = hq.aggregates_clipped;
  tree.hq.dropped = hq.aggregates_dropped;
  tree.hq.round = hq.round;
  tree.live_aggregators = static_cast<int>(hq.live_aggregators.size());
  tree.live_workers = static_cast<int>(hq.live_workers.size());
  for (const MemberInfo& m : hq.aggregators) {
    Row& agg = tree.hq.children.emplace_back();
    agg.tier = "aggregator";
    agg.id = m.id;
    agg.address = m.address;
    agg.last_seen_s = absl::ToDoubleSeconds(now - m.last_seen);
    agg.forming = m.forming;
    auto it = second->aggregators.find(m.id);
    if (it == second->aggregators.end()) {
      agg.reachable = false;
      continue;
    }
    const AggregatorStatus& a = it->second;
    agg.version = a.version;
    agg.round = a.counters.round;
    agg.staleness = hq.version - a.version;
    agg.calls_refused = a.calls_refused;
    agg.clipped = a.counters.gradients_clipped;
    agg.capped = a.counters.gradients_capped;
    agg.trimmed = a.counters.gradients_trimmed;
    agg.quarantined = a.counters.members_quarantined;
    agg.dropped = a.counters.gradients_dropped;
    agg.homes = CountHomes(a.counters.workers, a.counters.round, hq.version);
    for (const MemberInfo& w : a.counters.workers) {
      Row& worker = agg.children.emplace_back();
      worker.tier = "worker";
      worker.id = w.id;
      worker.version = w.last_version;
      worker.staleness = w.last_version < 0 ? -1 : hq.version - w.last_version;
      worker.last_seen_s = absl::ToDoubleSeconds(now - w.last_seen);
      worker.gradients = w.gradients;
      auto before = samples_before.find(w.id);
      // A worker that just arrived here is counted from its first gradient.
      const int64_t then = before == samples_before.end() ? w.samples : before->second;
      worker.samples_per_s = static_cast<double>(w.samples - then) / seconds;
      agg.samples_per_s += worker.samples_per_s;
    }
  }
  return tree;
}

// Rounded to `digits` decimals, so the JSON shows what is meaningful.
double Rounded(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

nlohmann::json EvalJson(const std::optional<EvalResult>& e) {
  if (!e.has_value()) return nullptr;
  nlohmann::json out = {{"version", e->version}, {"examples", e->metrics.examples}};
  if (e->metrics.regression) {
    out["rmse"] = Rounded(e->metrics.rmse, 6);
    out["r2"] = Rounded(e->metrics.r2, 6);
  } else {
    out["accuracy"] = Rounded(e->metrics.accuracy, 6);
    out["f1"] = Rounded(e->metrics.macro_f1, 6);
  }
  return out;
}

nlohmann::json RoundJson(const RoundWait& r) {
  if (r.version < 0) return nullptr;
  return {{"version", r.version}, {"waiting_for", r.members}, {"waited_s", Rounded(r.waited_s, 3)}};
}

std::string Cell(int64_t v) { return v < 0 ? "-" : absl::StrCat(v); }
std::string Seconds(double s) { return s < 0 ? "-" : absl::StrFormat("%.1fs", s); }

// "agg-0: clipped=3 trimmed=12; dropped non_finite=2; calls refused
// forbidden=5": what an aggregator bounded, dropped and refused (empty when
// nothing).
std::string DescribeDefenses(const Row& a) {
  std::vector<std::string> parts;
  std::vector<std::string> bounded;
  for (const auto& [name, n] :
       {std::pair<const char*, int64_t>{"clipped", a.clipped}, {"capped", a.capped},
        {"trimmed", a.trimmed}, {"quarantined", a.quarantined}}) {
    if (n > 0) bounded.push_back(absl::StrCat(name, "=", n));
  }
  if (!bounded.empty()) parts.push_back(absl::StrJoin(bounded, " "));
  auto counts = [](const char* title, const std::map<std::string, int64_t>& by_reason) {
    std::string out;
    for (const auto& [reason, n] : by_reason) {
      if (n > 0) absl::StrAppend(&out, " ", reason, "=", n);
    }
    return out.empty() ? out : absl::StrCat(title, out);
  };
  for (std::string part : {counts("dropped", a.dropped), counts("calls refused", a.calls_refused)}) {
    if (!part.empty()) parts.push_back(std::move(part));
  }
  return parts.empty() ? "" : absl::StrCat(a.id, ": ", absl::StrJoin(parts, "; "));
}

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
    if (options.list_homes || a.children.size() <= ClusterStatusOptions::kListedHomes) {
      for (const Row& w : a.children) {
        rows.push_back({absl::StrCat("    ", w.id), w.tier, "", Cell(w.version), "",
                        Cell(w.staleness), absl::StrFormat("%.0f", w.samples_per_s),
                        Seconds(w.last_seen_s)});
      }
      continue;
    }
    // Thousands of homes: one row for them all (--homes lists them).
    Row all;
    all.last_seen_s = 0;
    for (const Row& w : a.children) {
      all.version = std::max(all.version, w.version);
      all.staleness = std::max(all.staleness, w.staleness);
      all.samples_per_s += w.samples_per_s;
      all.last_seen_s = std::max(all.last_seen_s, w.last_seen_s);
    }
    rows.push_back({absl::StrCat("    ", a.children.size(), " homes"), "workers", "",
                    Cell(all.version), "", Cell(all.staleness),
                    absl::StrFormat("%.0f", all.samples_per_s), Seconds(all.last_seen_s)});
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
  absl::StrAppend(&out, tree->training_done ? "training done; " : "", tree->live_aggregators,
                  " live aggregators, ", tree->live_workers, " live workers\n");
  if (tree->diverged.has_value()) absl::StrAppend(&out, DescribeDivergence(*tree->diverged), "\n");
  // Rounds that wait, and for whom (in sync a round waits for everyone
  // for a moment: this names who holds it up).
  std::vector<std::string> waits = {DescribeRoundWait(hq.id, hq.round)};
  for (const Row& a : hq.children) waits.push_back(DescribeRoundWait(a.id, a.round));
  for (const Row& a : hq.children) {
    if (!options.list_homes && a.children.size() > ClusterStatusOptions::kListedHomes) {
      waits.push_back(DescribeHomeCounts(a.id, a.homes));
    }
  }
  // What each tier bounded, dropped and refused, by reason.
  waits.push_back(DescribeDefenses(hq));
  for (const Row& a : hq.children) waits.push_back(DescribeDefenses(a));
  for (const std::string& line : waits) {
    if (!line.empty()) absl::StrAppend(&out, line, "\n");
  }
  if (tree->rollbacks > 0) {
    absl::StrAppend(&out, "rollbacks after a divergence: ", tree->rollbacks, "\n");
  }
  if (tree->final_eval.has_value()) {
    absl::StrAppend(&out, "final evaluation: version=", tree->final_eval->version, " ",
                    DescribeMetrics(tree->final_eval->metrics), "\n");
  } else if (!tree->final_eval_error.empty()) {
    absl::StrAppend(&out, "final evaluation failed: ", tree->final_eval_error, "\n");
  } else if (tree->latest_eval.has_value()) {
    absl::StrAppend(&out, "latest evaluation: version=", tree->latest_eval->version, " ",
                    DescribeMetrics(tree->latest_eval->metrics),
                    tree->training_done ? " (the final one is under way)" : "", "\n");
  }
  return out;
}

absl::StatusOr<std::string> ClusterStatusJson(const ClusterStatusOptions& options) {
  absl::StatusOr<Tree> tree = Build(options);
  if (!tree.ok()) return tree.status();
  const Row& hq = tree->hq;
  nlohmann::json diverged = nullptr;
  if (tree->diverged.has_value()) {
    diverged = {{"version", tree->diverged->version}, {"reason", tree->diverged->reason}};
  }
  nlohmann::json aggregators = nlohmann::json::array();
  for (const Row& a : hq.children) {
    nlohmann::json workers = nlohmann::json::array();
    for (const Row& w : a.children) {
      workers.push_back({{"id", w.id},
                         {"version", w.version},
                         {"staleness", w.staleness},
                         {"samples_per_s", Rounded(w.samples_per_s, 1)},
                         {"last_seen_s", Rounded(w.last_seen_s, 3)},
                         {"gradients", w.gradients}});
    }
    aggregators.push_back({{"id", a.id},
                           {"address", a.address},
                           {"version", a.version},
                           {"staleness", a.staleness},
                           {"samples_per_s", Rounded(a.samples_per_s, 1)},
                           {"last_seen_s", Rounded(a.last_seen_s, 3)},
                           {"forming", a.forming},
                           {"reachable", a.reachable},
                           {"round", RoundJson(a.round)},
                           {"home_counts",
                            {{"live", a.homes.live},
                             {"waited_for", a.homes.waited_for},
                             {"recent", a.homes.recent},
                             {"older", a.homes.older},
                             {"never", a.homes.never}}},
                           {"calls_refused", a.calls_refused},
                           {"gradients_clipped", a.clipped},
                           {"gradients_capped", a.capped},
                           {"gradients_trimmed", a.trimmed},
                           {"members_quarantined", a.quarantined},
                           {"gradients_dropped", a.dropped},
                           {"workers", std::move(workers)}});
  }
  const nlohmann::json out = {{"hq",
                               {{"address", hq.address},
                                {"version", hq.version},
                                {"mode", hq.mode},
                                {"max_staleness", tree->max_staleness},
                                {"samples_per_s", Rounded(hq.samples_per_s, 1)},
                                {"training_done", tree->training_done},
                                {"rollbacks", tree->rollbacks},
                                {"diverged", std::move(diverged)},
                                {"incarnation", tree->incarnation},
                                {"live_aggregators", tree->live_aggregators},
                                {"live_workers", tree->live_workers},
                                {"round", RoundJson(hq.round)},
                                {"calls_refused", hq.calls_refused},
                                {"aggregates_clipped", hq.clipped},
                                {"aggregates_dropped", hq.dropped},
                                {"latest_eval", EvalJson(tree->latest_eval)},
                                {"final_eval", EvalJson(tree->final_eval)}}},
                              {"aggregators", std::move(aggregators)}};
  // Ids come from peers: replace bytes that are not UTF-8 rather than fail.
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

HomeCounts CountHomes(const std::vector<MemberInfo>& homes, const RoundWait& round,
                      int64_t hq_version) {
  HomeCounts c;
  const std::set<std::string> waited(round.members.begin(), round.members.end());
  for (const MemberInfo& h : homes) {
    ++c.live;
    if (waited.count(h.id) > 0) {
      ++c.waited_for;
    } else if (h.gradients == 0 || h.last_version < 0) {
      ++c.never;
    } else if (hq_version - h.last_version <= HomeCounts::kRecentVersions) {
      ++c.recent;
    } else {
      ++c.older;
    }
  }
  return c;
}

std::string DescribeHomeCounts(const std::string& who, const HomeCounts& c) {
  return absl::StrCat(who, ": ", c.live, " live homes: ", c.waited_for, " waited for, ",
                      c.recent, " recent (a gradient within ", HomeCounts::kRecentVersions,
                      " versions), ", c.older, " older, ", c.never, " none yet");
}

std::string DescribeRoundWait(const std::string& who, const RoundWait& round) {
  if (round.version < 0 || round.members.empty()) return "";
  // Thousands of homes may be waited for: the first few name the rest.
  constexpr size_t kNamed = 5;
  const size_t named = round.members.size() <= kNamed + 1 ? round.members.size() : kNamed;
  std::string whom = absl::StrJoin(round.members.begin(), round.members.begin() + named, ", ");
  if (named < round.members.size()) {
    absl::StrAppend(&whom, " and ", round.members.size() - named, " more");
  }
  return absl::StrFormat("%s's round of version %d has waited %.1fs for %s", who, round.version,
                         round.waited_s, whom);
}

}  // namespace hips
