#include "cli/run_summary.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace hips {

std::string FinalLine(const RunSummary& s) {
  return absl::StrFormat("final: version=%d accuracy=%.4f f1=%.4f samples=%d seconds=%.1f",
                         s.version, s.accuracy, s.f1, s.samples, s.seconds);
}

absl::Status WriteSummaryJson(const std::string& path, const RunSummary& s) {
  std::ofstream out(path, std::ios::trunc);
  out << absl::StrFormat(
      "{\"version\": %d, \"accuracy\": %.6f, \"f1\": %.6f, \"samples\": %d, \"seconds\": %.3f",
      s.version, s.accuracy, s.f1, s.samples, s.seconds);
  auto by_reason = [](const std::map<std::string, int64_t>& counts) {
    std::vector<std::string> out;
    for (const auto& [reason, count] : counts) {
      out.push_back(absl::StrFormat("\"%s\": %d", reason, count));
    }
    return absl::StrJoin(out, ", ");
  };
  if (s.accounting.has_value()) {
    const RunSummary::Accounting& a = *s.accounting;
    out << absl::StrFormat(
        ", \"mode\": \"%s\", \"gradients\": {\"received\": %d, \"applied\": %d, "
        "\"duplicate\": %d, \"pending\": %d, \"dropped\": {%s}}, \"staleness_counts\": [%s], "
        "\"max_staleness\": %d",
        a.mode, a.received, a.applied, a.duplicate, a.pending, by_reason(a.dropped),
        absl::StrJoin(a.staleness_counts, ", "), a.max_staleness);
    std::vector<std::string> aggregators;
    for (const RunSummary::Accounting::Aggregator& g : a.aggregators) {
      aggregators.push_back(absl::StrFormat(
          "{\"id\": \"%s\", \"gradients_received\": %d, \"gradients_duplicate\": %d, "
          "\"gradients_forwarded\": %d, \"gradients_pending\": %d, \"gradients_dropped\": {%s}}",
          g.id, g.received, g.duplicate, g.forwarded, g.pending, by_reason(g.dropped)));
    }
    out << ", \"aggregators\": [" << absl::StrJoin(aggregators, ", ") << "]";
    out << absl::StrFormat(", \"bytes\": {\"worker_to_aggregator\": %d, \"aggregator_to_hq\": %d}",
                           a.worker_to_aggregator_bytes, a.aggregator_to_hq_bytes);
    out << ", \"restarts\": {" << by_reason(s.restarts) << "}";
  }
  out << "}\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace hips
