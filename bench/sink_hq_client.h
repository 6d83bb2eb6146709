#ifndef HIPS_BENCH_SINK_HQ_CLIENT_H_
#define HIPS_BENCH_SINK_HQ_CLIENT_H_

#include <cstdint>
#include <memory>

#include "aggregator/hq_client.h"

namespace hips::bench {

// An HQ that answers at once, for measuring the worker -> aggregator hop
// alone: it publishes zero weights of `floats` floats (version 0, async),
// acknowledges every aggregate without applying it, and grants leases.
std::unique_ptr<HqClient> CreateSinkHqClient(int64_t floats);

}  // namespace hips::bench

#endif  // HIPS_BENCH_SINK_HQ_CLIENT_H_
