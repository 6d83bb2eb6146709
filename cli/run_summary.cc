#include "cli/run_summary.h"

#include <cmath>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hips {

std::string FinalLine(const RunSummary& s) {
  if (s.regression) {
    return absl::StrFormat("final: version=%d rmse=%.4f r2=%.4f samples=%d seconds=%.1f", s.version,
                           s.rmse, s.r2, s.samples, s.seconds);
  }
  return absl::StrFormat("final: version=%d accuracy=%.4f f1=%.4f samples=%d seconds=%.1f",
                         s.version, s.accuracy, s.f1, s.samples, s.seconds);
}

namespace {

// Rounded to `digits` decimals, so the JSON shows what is meaningful.
double Rounded(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

}  // namespace

nlohmann::json SummaryJson(const RunSummary& s) {
  nlohmann::json out = {
      {"version", s.version}, {"samples", s.samples}, {"seconds", Rounded(s.seconds, 3)}};
  out["rollbacks"] = s.rollbacks;
  out["diverged"] = nullptr;
  if (s.diverged.has_value()) {
    out["diverged"] = {{"version", s.diverged->version}, {"reason", s.diverged->reason}};
  }
  if (s.regression) {
    out["rmse"] = Rounded(s.rmse, 6);
    out["r2"] = Rounded(s.r2, 6);
  } else {
    out["accuracy"] = Rounded(s.accuracy, 6);
    out["f1"] = Rounded(s.f1, 6);
  }
  if (!s.accounting.has_value()) return out;
  const RunSummary::Accounting& a = *s.accounting;
  out["mode"] = a.mode;
  out["gradients"] = {{"received", a.received},
                      {"applied", a.applied},
                      {"duplicate", a.duplicate},
                      {"pending", a.pending},
                      {"dropped", a.dropped}};
  out["staleness_counts"] = a.staleness_counts;
  out["max_staleness"] = a.max_staleness;
  nlohmann::json aggregators = nlohmann::json::array();
  for (const RunSummary::Accounting::Aggregator& g : a.aggregators) {
    aggregators.push_back({{"id", g.id},
                           {"gradients_received", g.received},
                           {"gradients_duplicate", g.duplicate},
                           {"gradients_forwarded", g.forwarded},
                           {"gradients_pending", g.pending},
                           {"gradients_edge_applied", g.edge_applied},
                           {"gradients_clipped", g.clipped},
                           {"gradients_capped", g.capped},
                           {"gradients_trimmed", g.trimmed},
                           {"members_quarantined", g.quarantined},
                           {"gradients_dropped", g.dropped},
                           {"calls_refused", g.calls_refused}});
  }
  out["aggregators"] = std::move(aggregators);
  out["bytes"] = {{"worker_to_aggregator", a.worker_to_aggregator_bytes},
                  {"aggregator_to_hq", a.aggregator_to_hq_bytes}};
  out["restarts"] = s.restarts;
  return out;
}

absl::Status WriteSummaryJson(const std::string& path, const RunSummary& s) {
  std::ofstream out(path, std::ios::trunc);
  out << SummaryJson(s).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string DescribeAccounting(const RunSummary::Accounting& a) {
  std::string dropped;
  for (const auto& [reason, count] : a.dropped) absl::StrAppend(&dropped, " ", reason, "=", count);
  std::string out = absl::StrCat("gradients: received=", a.received, " applied=", a.applied,
                                 " duplicate=", a.duplicate, " pending=", a.pending, " dropped{",
                                 dropped.empty() ? "" : dropped.substr(1),
                                 "} max_staleness=", a.max_staleness, " mode=", a.mode);
  for (const RunSummary::Accounting::Aggregator& g : a.aggregators) {
    std::string agg_dropped;
    for (const auto& [reason, count] : g.dropped) {
      absl::StrAppend(&agg_dropped, " ", reason, "=", count);
    }
    absl::StrAppend(&out, "\n  ", g.id, ": received=", g.received, " duplicate=", g.duplicate,
                    " forwarded=", g.forwarded, " pending=", g.pending, " dropped{",
                    agg_dropped.empty() ? "" : agg_dropped.substr(1), "}");
    if (g.edge_applied > 0) absl::StrAppend(&out, " edge_applied=", g.edge_applied);
    if (g.clipped > 0) absl::StrAppend(&out, " clipped=", g.clipped);
    if (g.capped > 0) absl::StrAppend(&out, " capped=", g.capped);
    if (g.trimmed > 0) absl::StrAppend(&out, " trimmed=", g.trimmed);
    if (g.quarantined > 0) absl::StrAppend(&out, " quarantined=", g.quarantined);
  }
  return out;
}

}  // namespace hips
