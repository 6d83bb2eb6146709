#ifndef HIPS_BENCH_TCP_TRANSFER_H_
#define HIPS_BENCH_TCP_TRANSFER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace hips::bench {

// The raw-TCP reference of the network benchmarks: a sender process writes
// `bytes` from a buffer in 1 MiB writes over a loopback connection, a
// receiver process (forked here) reads them into a buffer of that size and
// answers one byte; each transfer is timed from the first write to that
// answer. Returns the seconds of each of `repeats` transfers (after one
// untimed warm-up). Forks: call before starting any thread.
absl::StatusOr<std::vector<double>> TimeTcpTransfers(int64_t bytes, int repeats);

}  // namespace hips::bench

#endif  // HIPS_BENCH_TCP_TRANSFER_H_
