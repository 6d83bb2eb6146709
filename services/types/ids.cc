#include "services/types/ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

}  // namespace hips
