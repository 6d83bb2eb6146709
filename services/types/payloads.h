#ifndef HIPS_SERVICES_TYPES_PAYLOADS_H_
#define HIPS_SERVICES_TYPES_PAYLOADS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/types/consistency.h"
#include "services/types/encoding.h"
#include "services/types/float_pieces.h"
#include "services/types/model_layout.h"
#include "services/types/sgd.h"

// Domain types of what travels between tiers. The gRPC adapters convert
// between these and the hips.v1 protobuf messages; logic never sees protobuf.

namespace hips {

// Values as they arrived from the network, read in place (no copy into one
// buffer): the pieces of a stream in the sender's encoding, and what keeps
// them alive.
struct ReceivedValues {
  EncodedValues values;
  std::shared_ptr<const void> owner;
  // The values are already multiplied by the contribution's scale (a
  // worker's sample count): ReadChunkedScaled wrote them into a buffer of
  // the receiver's while the chunks arrived.
  bool scaled = false;
};

// How a sender's dense values travel on a compressed hop (Encoding other
// than fp32): the encoded bytes, and the entries of a top-k encoding.
struct EncodedPayload {
  Encoding encoding = Encoding::kFp32;
  std::string bytes;
  int64_t nonzeros = 0;
};

// The values a push stands for: `received` on the receiving side (when
// `dense` is empty), else `dense` as `encoded` says it travels.
inline EncodedValues PushValues(const std::vector<float>& dense, const EncodedPayload& encoded,
                                const ReceivedValues& received) {
  if (dense.empty()) return received.values;
  if (encoded.encoding == Encoding::kFp32) return EncodedValues(dense);
  EncodedValues v;
  v.encoding = encoded.encoding;
  v.bytes = FloatPieces();
  v.bytes.Append(encoded.bytes);
  v.num_floats = static_cast<int64_t>(dense.size());
  v.nonzeros = encoded.nonzeros;
  return v;
}

// A worker's mean gradient over `samples` examples, computed on `version`.
struct GradientPush {
  std::string sender;
  int64_t version = 0;
  int64_t samples = 0;
  double loss_sum = 0.0;
  // The sender process's incarnation (NewIncarnation; 0: not said) and,
  // within it, a number that increases with every new push; a retry
  // repeats both.
  int64_t incarnation = 0;
  int64_t sequence = 0;
  // A repeat whose first attempt's outcome is unknown (it may have been
  // applied through another aggregator): forwarded alone, deduplicated at HQ.
  bool retry = false;
  // Where in the sender's data order it was computed.
  int64_t step = 0;
  // fedavg with edge rounds: the edge round of the weights it was computed
  // on (WeightsSnapshot::edge_round).
  int64_t edge_round = 0;
  // HQ's incarnation of those weights (0: not said): one of another
  // incarnation belongs to another line of weights and is refused.
  int64_t hq_incarnation = 0;
  // The gradient: the sender's dense buffer (and, on a compressed hop, its
  // encoding), or on the receiving side (with `gradient` empty) the
  // stream's pieces.
  std::vector<float> gradient;
  EncodedPayload encoded;
  ReceivedValues received;
  EncodedValues values() const { return PushValues(gradient, encoded, received); }
};

// One worker gradient inside an aggregate (HQ applies each (worker,
// sequence) at most once).
struct ContributorRef {
  std::string worker;
  int64_t sequence = 0;
  int64_t version = 0;
  int64_t step = 0;
  int64_t incarnation = 0;  // the worker's (GradientPush::incarnation)
  // The receiving aggregator's own handle for the push (not sent on).
  int64_t ticket = 0;
};

// An aggregator's sample-weighted sum Σ n_i·g_i of one round.
struct AggregatePush {
  std::string aggregator;
  int64_t version = 0;
  int64_t total_samples = 0;
  int64_t contributors = 0;
  double loss_sum = 0.0;
  int64_t hq_incarnation = 0;  // as GradientPush::hq_incarnation
  int64_t incarnation = 0;     // as GradientPush::incarnation
  int64_t sequence = 0;        // as GradientPush::sequence
  // Coalesced gradients of several versions: contributors per version
  // (`version` is the oldest). Empty: all computed on `version`.
  std::map<int64_t, int64_t> contributor_versions;
  // Every worker gradient in the sum; empty only in an aggregate with no
  // contributors (an aggregator's sync round whose gradients all went on
  // alone: it only says the aggregator is done with `version`).
  std::vector<ContributorRef> contributor_list;
  // A retried worker gradient sent on alone: it does not end the
  // aggregator's part of a sync round.
  bool single = false;
  // fedavg with edge rounds: the deltas of the version's earlier rounds,
  // applied at the aggregator (in total_samples, not in the list).
  int64_t edge_pushes = 0;
  // The workers whose gradients the aggregator refused as non-finite (NaN,
  // infinity, a sum that would overflow) since its previous aggregate, in
  // id order: HQ tells a diverging run by them (docs/faults.md,
  // "Divergence").
  std::vector<std::string> non_finite_workers;
  // The sum: the sender's dense buffer (and, on a compressed hop, its
  // encoding), or on the receiving side (with `sum` empty) the stream's
  // pieces.
  std::vector<float> sum;
  EncodedPayload encoded;
  ReceivedValues received;
  EncodedValues values() const { return PushValues(sum, encoded, received); }
};

struct PushResult {
  int64_t version = 0;
  bool duplicate = false;
  // The newest version the receiver knows of.
  int64_t newest_version = 0;
};

// A member's heartbeat: worker -> aggregator, aggregator -> HQ.
struct HeartbeatRequestData {
  std::string member;
  int64_t incarnation = 0;  // the member process's (NewIncarnation)
  bool leaving = false;     // leave at once (also a probe that does not join)
  // Aggregator -> HQ: its live workers, and whether it is still forming.
  std::vector<std::string> live_workers;
  bool forming = false;
  std::string address;  // aggregator -> HQ: where it serves its workers
  // Worker -> aggregator: the other homes of `member`'s process (hips-worker
  // --homes), each heartbeating as `member` does.
  std::vector<std::string> homes;
};

// A member as the server it holds its lease at sees it (hips status).
struct MemberInfo {
  std::string id;
  std::string address;  // aggregators
  absl::Time last_seen;
  std::vector<std::string> live_workers;  // aggregators
  bool forming = false;                   // aggregators
  int64_t last_version = -1;              // workers: of their newest gradient
  int64_t gradients = 0;                  // workers
  int64_t samples = 0;                    // workers
};

// What a heartbeat tells a member.
struct HeartbeatAnswer {
  absl::Duration lease = absl::Seconds(2);
  int64_t version = -1;  // the newest version the server knows of
  // Where a worker's data order continues (the newest step HQ applied + 1).
  std::map<std::string, int64_t> data_positions;
};

// One published version of the model's weights. Immutable once published and
// shared by reference between every reader.
struct WeightsSnapshot {
  int64_t version = 0;
  ModelLayout layout;
  std::vector<float> weights;
  bool training_done = false;
  // The mode these weights are trained in, and the version it started at.
  ModeConfig mode;
  int64_t mode_since = 0;
  // HQ's run (NewIncarnation): versions compare within one incarnation.
  int64_t incarnation = 0;
  // fedavg: the local optimizer for this version's round (set by HQ).
  LocalSgd local_sgd;
  // fedavg with participation < 1: the workers an aggregator drew for this
  // version's round (set by the aggregator that serves the weights; empty:
  // every worker takes part).
  std::vector<std::string> participants;
  // How far these weights may be from HQ's (max |difference|; 0: exactly
  // HQ's). Nonzero only downstream of HQ's --weights_compression.
  float drift = 0.0f;
  // fedavg with edge rounds: 0 for HQ's weights of `version`, e for the
  // serving aggregator's copy after e rounds of its workers' deltas
  // (snapshots order by (version, edge_round)).
  int64_t edge_round = 0;
  // fedavg with edge rounds: the serving aggregator's line of rounds (its
  // start, µs; 0 outside edge rounds). Rounds compare within one epoch.
  int64_t edge_epoch = 0;
};

// Where a caller of PullWeights is in fedavg's edge rounds: it wants at
// least `round` of the version it asks for, within `epoch` (its weights'
// WeightsSnapshot::edge_epoch; 0: none); weights of another epoch at that
// version or later will do, whatever their round.
struct EdgePosition {
  int64_t round = 0;
  int64_t epoch = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_PAYLOADS_H_
