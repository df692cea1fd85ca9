#include "telemetry/time_format.h"

#include <algorithm>
#include <chrono>

namespace viscount {
namespace {

using std::chrono::days;
using std::chrono::milliseconds;

char* putDigits(char* p, long value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return p + width;
}

// "HH:MM:SS.mmm" for the time elapsed since midnight.
char* putClock(char* p, milliseconds since_midnight) {
  const long ms = static_cast<long>(since_midnight.count());
  p = putDigits(p, ms / 3'600'000, 2);
  *p++ = ':';
  p = putDigits(p, ms / 60'000 % 60, 2);
  *p++ = ':';
  p = putDigits(p, ms / 1000 % 60, 2);
  *p++ = '.';
  return putDigits(p, ms % 1000, 3);
}

}  // namespace

void appendRfc3339Millis(std::string& out, WallTime time) {
  const auto ms = std::chrono::floor<milliseconds>(time);
  const auto day = std::chrono::floor<days>(ms);
  const std::chrono::year_month_day date{day};
  char buf[32];
  // Four digits, as RFC 3339 requires; a clock that far off is wrong anyway.
  const int year = std::clamp(static_cast<int>(date.year()), 0, 9999);
  char* p = putDigits(buf, year, 4);
  *p++ = '-';
  p = putDigits(p, static_cast<unsigned>(date.month()), 2);
  *p++ = '-';
  p = putDigits(p, static_cast<unsigned>(date.day()), 2);
  *p++ = 'T';
  p = putClock(p, ms - day);
  *p++ = 'Z';
  out.append(buf, static_cast<size_t>(p - buf));
}

void appendClockMillis(std::string& out, WallTime time) {
  const auto ms = std::chrono::floor<milliseconds>(time);
  char buf[16];
  char* p = putClock(buf, ms - std::chrono::floor<days>(ms));
  out.append(buf, static_cast<size_t>(p - buf));
}

}  // namespace viscount
