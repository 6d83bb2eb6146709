#include "services/runtime/aggregator_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, coalesce_ms, 0,
          "async/ssp: an aggregator sums the gradients arriving within this window into one "
          "aggregate (0: each goes on alone).");
ABSL_FLAG(std::string, max_samples_per_push, "auto",
          "An aggregator counts a worker gradient that claims more samples than this bound as "
          "if it had the bound (its weight in the sum; its mean gradient is kept): auto (four "
          "times the median of the last 64 claims, from the 5th on), auto:K (K times it), off "
          "(or 0), or a count. Pushes above --max_batch_samples are refused outright.");
ABSL_FLAG(std::string, robust, "trimmed_mean",
          "How an aggregator combines the gradients of a sync or fedavg round: trimmed_mean (the "
          "default: with 3 or more, a gradient far from the others' coordinate-wise median is "
          "left out whole, then per coordinate the mean without the --trim_fraction smallest "
          "and largest values, at least one of each once 3 are left), median (the same, then "
          "the coordinate-wise median), or none (the sample-weighted mean of all). Robust ones "
          "count every gradient once, whatever its samples (docs/security.md, \"Robust "
          "combination\").");
ABSL_FLAG(double, trim_fraction, 0.1,
          "--robust=trimmed_mean: the share of values dropped at each end of a coordinate, in "
          "[0, 0.5) (rounded up: 0.1 of 3 drops one at each end).");
ABSL_FLAG(int64_t, quarantine_ms, 60000,
          "An aggregator puts a worker out for this long once 5 of its gradients in a row were "
          "refused as malformed or left out of robust rounds as outliers: its pushes and "
          "heartbeats are refused meanwhile (0: never; at most a day).");
ABSL_FLAG(std::string, hq, "",
          "HQ's address, host:port: an aggregator's HQ, the one hips mode and hips status ask.");
