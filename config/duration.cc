#include "config/duration.h"

#include <array>
#include <limits>
#include <numeric>

namespace viscount {
namespace {

struct Unit {
  std::string_view name;
  uint64_t scale;
};

constexpr std::array<Unit, 4> kDurationUnits = {{
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
}};

constexpr std::array<Unit, 14> kSizeUnits = {{
    {"B", 1},
    {"KiB", kKiB},
    {"MiB", kMiB},
    {"GiB", kMiB* kKiB},
    {"TiB", kMiB* kMiB},
    {"Ki", kKiB},
    {"Mi", kMiB},
    {"Gi", kMiB* kKiB},
    {"Ti", kMiB* kMiB},
    {"KB", 1000},
    {"kB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
}};

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

void setError(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// One "<number><unit>" term with the number already split into its integer and fraction digits.
// Exact integer arithmetic, because "0.1s" must be 100ms and not 99 after a floating-point trip.
std::optional<uint64_t> scaleTerm(std::string_view whole, std::string_view fraction, uint64_t scale,
                                  std::string_view what, std::string* error) {
  const auto integer = parseUnsigned(whole);
  if (!integer) {
    setError(error, "number too large");
    return std::nullopt;
  }
  if (*integer > std::numeric_limits<uint64_t>::max() / scale) {
    setError(error, "value too large");
    return std::nullopt;
  }
  uint64_t total = *integer * scale;
  if (fraction.empty()) return total;
  if (fraction.size() > 9) {
    setError(error, "too many decimal places");
    return std::nullopt;
  }
  uint64_t denominator = 1;
  for (size_t i = 0; i < fraction.size(); ++i)
    denominator *= 10;
  const uint64_t numerator = *parseUnsigned(fraction);
  // numerator * scale / denominator must be whole. Cancelling the common factor first keeps the
  // arithmetic in 64 bits: the remaining denominator must divide the numerator, and the result is
  // below `scale` because the fraction is below one.
  const uint64_t common = std::gcd(scale, denominator);
  const uint64_t reduced_denominator = denominator / common;
  if (numerator % reduced_denominator != 0) {
    setError(error, std::string("not a whole number of ") + std::string(what));
    return std::nullopt;
  }
  const uint64_t part = numerator / reduced_denominator * (scale / common);
  if (part > std::numeric_limits<uint64_t>::max() - total) {
    setError(error, "value too large");
    return std::nullopt;
  }
  return total + part;
}

// Splits "12.5" off the front of `text`; empty `whole` means there was no number.
void takeNumber(std::string_view& text, std::string_view& whole, std::string_view& fraction) {
  size_t i = 0;
  while (i < text.size() && isDigit(text[i]))
    ++i;
  whole = text.substr(0, i);
  fraction = {};
  // A dot counts only with digits after it, so "1." is left for the unit check to reject.
  if (i + 1 < text.size() && text[i] == '.' && isDigit(text[i + 1])) {
    size_t j = i + 1;
    while (j < text.size() && isDigit(text[j]))
      ++j;
    fraction = text.substr(i + 1, j - i - 1);
    i = j;
  }
  text.remove_prefix(i);
}

}  // namespace

std::optional<uint64_t> parseUnsigned(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (!isDigit(c)) return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::optional<Duration> parseDuration(std::string_view text, std::string* error) {
  if (text.empty()) {
    setError(error, "empty duration");
    return std::nullopt;
  }
  if (text.front() == '-') {
    setError(error, "durations cannot be negative");
    return std::nullopt;
  }
  uint64_t total = 0;
  while (!text.empty()) {
    std::string_view whole;
    std::string_view fraction;
    takeNumber(text, whole, fraction);
    if (whole.empty()) {
      setError(error, "expected a number followed by a unit, e.g. 250ms, 15s, 5m or 1h");
      return std::nullopt;
    }
    size_t unit_length = 0;
    while (unit_length < text.size() && text[unit_length] >= 'a' && text[unit_length] <= 'z') {
      ++unit_length;
    }
    const std::string_view unit_name = text.substr(0, unit_length);
    text.remove_prefix(unit_length);
    if (unit_name.empty()) {
      setError(error, "missing unit (ms, s, m or h), e.g. 15s");
      return std::nullopt;
    }
    const Unit* unit = nullptr;
    for (const auto& candidate : kDurationUnits) {
      if (candidate.name == unit_name) unit = &candidate;
    }
    if (unit == nullptr) {
      setError(error, "unknown unit '" + std::string(unit_name) + "' (use ms, s, m or h)");
      return std::nullopt;
    }
    const auto term = scaleTerm(whole, fraction, unit->scale, "milliseconds", error);
    if (!term) return std::nullopt;
    if (*term > static_cast<uint64_t>(kMaxDuration.count()) - total) {
      setError(error, "duration too large (the maximum is " + formatDuration(kMaxDuration) + ")");
      return std::nullopt;
    }
    total += *term;
  }
  return Duration(static_cast<Duration::rep>(total));
}

std::optional<uint64_t> parseSize(std::string_view text, std::string* error) {
  if (text.empty()) {
    setError(error, "empty size");
    return std::nullopt;
  }
  if (text.front() == '-') {
    setError(error, "sizes cannot be negative");
    return std::nullopt;
  }
  std::string_view rest = text;
  std::string_view whole;
  std::string_view fraction;
  takeNumber(rest, whole, fraction);
  if (whole.empty()) {
    setError(error, "expected a number of bytes, optionally with a unit, e.g. 64KiB or 1MiB");
    return std::nullopt;
  }
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  uint64_t scale = 1;
  if (!rest.empty()) {
    const Unit* unit = nullptr;
    for (const auto& candidate : kSizeUnits) {
      if (candidate.name == rest) unit = &candidate;
    }
    if (unit == nullptr) {
      setError(error, "unknown unit '" + std::string(rest) +
                          "' (use B, KiB, MiB, GiB, TiB, or decimal KB, MB, GB, TB)");
      return std::nullopt;
    }
    scale = unit->scale;
  }
  return scaleTerm(whole, fraction, scale, "bytes", error);
}

std::string formatDuration(Duration duration) {
  const auto ms = duration.count();
  if (ms == 0) return "0s";
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    const auto scale = static_cast<Duration::rep>(it->scale);
    if (ms % scale == 0) return std::to_string(ms / scale) + std::string(it->name);
  }
  return std::to_string(ms) + "ms";
}

std::string formatSize(uint64_t bytes) {
  if (bytes == 0) return "0";
  // Only the binary units: defaults and typical limits are powers of two.
  for (int i = 4; i >= 1; --i) {
    const uint64_t scale = kSizeUnits[static_cast<size_t>(i)].scale;
    if (bytes % scale == 0) {
      return std::to_string(bytes / scale) + std::string(kSizeUnits[static_cast<size_t>(i)].name);
    }
  }
  return std::to_string(bytes);
}

}  // namespace viscount
