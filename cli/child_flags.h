#ifndef HIPS_CLI_CHILD_FLAGS_H_
#define HIPS_CLI_CHILD_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"

namespace hips {

// The tiers hips local starts.
enum class Tier { kHq, kAggregator, kWorker };

// A daemon's flag that hips local takes and hands on as it is (given, or
// at its default, which is the daemon's own: one definition,
// services/runtime/*_flags.cc), and the tiers that take it.
struct ChildFlag {
  const absl::CommandLineFlag* flag;
  bool hq;
  bool aggregator;
  bool worker;
};

// The one table of them (what hips local computes for each child instead,
// ports, ids, shares, budgets, credentials, is in local_cluster.cc).
const std::vector<ChildFlag>& ChildFlags();

bool TakesFlag(const ChildFlag& f, Tier tier);

// "--name=value" for each flag of the table that `tier` takes, at the
// flags' current values, in the table's order.
std::vector<std::string> ChildFlagArgs(Tier tier);

}  // namespace hips

#endif  // HIPS_CLI_CHILD_FLAGS_H_
