#include "services/types/ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hips {

absl::Status ValidateMemberId(absl::string_view id, absl::string_view field) {
  bool ok = !id.empty() && id.size() <= kMaxIdLength;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    const char c = id[i];
    ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  }
  if (ok) return absl::OkStatus();
  constexpr size_t kShown = 40;
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be 1 to ", kMaxIdLength, " characters of [A-Za-z0-9._-], got \"",
                   absl::CHexEscape(id.substr(0, kShown)), id.size() > kShown ? "\"..." : "\"",
                   " (", id.size(), " bytes)"));
}

namespace {

// A decimal number without leading zeros (or "0"), at most 18 digits.
bool ParseIndex(absl::string_view digits, int64_t* out) {
  if (digits.empty() || digits.size() > 18) return false;
  if (digits.size() > 1 && digits[0] == '0') return false;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(digits, out);
}

}  // namespace

std::string HomeRange::Home(int64_t n) const { return absl::StrCat(prefix, n); }

std::string HomeRange::Name() const { return absl::StrCat(prefix, "[", first, "..", last, "]"); }

absl::StatusOr<HomeRange> ParseHomeRange(absl::string_view name, absl::string_view field) {
  const auto bad = [&](absl::string_view why) {
    constexpr size_t kShown = 40;
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", absl::CHexEscape(name.substr(0, kShown)),
                     name.size() > kShown ? "\"..." : "\"", " is not a range of homes ",
                     "PREFIX[FIRST..LAST]: ", why));
  };
  const size_t open = name.find('[');
  if (open == absl::string_view::npos || name.empty() || name.back() != ']') {
    return bad("no [FIRST..LAST] at its end");
  }
  const absl::string_view inside = name.substr(open + 1, name.size() - open - 2);
  const size_t dots = inside.find("..");
  HomeRange range;
  range.prefix = std::string(name.substr(0, open));
  if (dots == absl::string_view::npos || !ParseIndex(inside.substr(0, dots), &range.first) ||
      !ParseIndex(inside.substr(dots + 2), &range.last)) {
    return bad("FIRST and LAST are numbers without leading zeros");
  }
  if (range.first > range.last) return bad("FIRST is after LAST");
  if (range.count() > kMaxHostedHomes) {
    return bad(absl::StrCat("more than ", kMaxHostedHomes, " homes"));
  }
  if (!ValidateMemberId(range.Home(range.last), "").ok()) {
    return bad(absl::StrCat("PREFIX + LAST is not a member id (1 to ", kMaxIdLength,
                            " characters of [A-Za-z0-9._-])"));
  }
  return range;
}

absl::Status ValidateMemberOrRange(absl::string_view name, absl::string_view field) {
  if (name.find('[') != absl::string_view::npos) return ParseHomeRange(name, field).status();
  return ValidateMemberId(name, field);
}

bool SpeaksFor(absl::string_view holder, absl::string_view member) {
  if (holder == member) return true;
  if (holder.empty() || holder.back() != ']') return false;
  absl::StatusOr<HomeRange> range = ParseHomeRange(holder, "");
  if (!range.ok() || !absl::StartsWith(member, range->prefix)) return false;
  int64_t n = 0;
  return ParseIndex(member.substr(range->prefix.size()), &n) && n >= range->first &&
         n <= range->last;
}

}  // namespace hips
