#ifndef HIPS_SERVICES_TYPES_IDS_H_
#define HIPS_SERVICES_TYPES_IDS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hips {

// Longest member id (worker, aggregator) accepted, from a flag or a peer.
inline constexpr size_t kMaxIdLength = 128;

// A member id is 1 to kMaxIdLength characters of [A-Za-z0-9._-]: it names
// files, metric labels and log lines, and with mTLS a certificate's common
// name. INVALID_ARGUMENT naming `field` (and showing the id, escaped and
// cut short) otherwise.
absl::Status ValidateMemberId(absl::string_view id, absl::string_view field);

// The most homes one worker process hosts (hips-worker --homes).
inline constexpr int64_t kMaxHostedHomes = 16384;

// The homes one worker process hosts (hips-worker --homes=K
// --first_home=I): the member ids PREFIX + n for n in [first, last], written
// "PREFIX[FIRST..LAST]" (e.g. "worker-[0..249]" for worker-0 to
// worker-249). The brackets make a range never a member id itself. A
// member token or a certificate may name a range: it speaks for each home
// in it (docs/security.md, "Hosts of many homes").
struct HomeRange {
  std::string prefix;
  int64_t first = 0;
  int64_t last = 0;

  int64_t count() const { return last - first + 1; }
  // PREFIX + n.
  std::string Home(int64_t n) const;
  std::string Name() const;
};

// INVALID_ARGUMENT naming `field` unless `name` is a range: a prefix such
// that PREFIX + n is a member id, '[', FIRST, "..", LAST, ']' with
// 0 <= FIRST <= LAST, decimal without leading zeros, at most
// kMaxHostedHomes homes.
absl::StatusOr<HomeRange> ParseHomeRange(absl::string_view name, absl::string_view field);

// A member id, or a range of homes (what a member token may name).
absl::Status ValidateMemberOrRange(absl::string_view name, absl::string_view field);

// Whether the holder of credentials naming `holder` (a member id or a range
// of homes) speaks for `member`: the same id, or one of the range's homes.
bool SpeaksFor(absl::string_view holder, absl::string_view member);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_IDS_H_
