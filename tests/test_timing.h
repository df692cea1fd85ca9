#pragma once

// Time bounds for tests. A test states what must happen and gives it a generous deadline; it
// never asserts how fast something was (speed belongs in tests/bench). Sanitizer builds (which
// tests/run.sh also builds without optimisation) run several times slower, and ctest -j shares the
// cores with other tests, so every deadline goes through slowScaled().

#include <chrono>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VISCOUNT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VISCOUNT_TEST_SANITIZED 1
#endif
#endif

namespace viscount::test {

#ifdef VISCOUNT_TEST_SANITIZED
inline constexpr int kSlowBuildFactor = 5;
#else
inline constexpr int kSlowBuildFactor = 1;
#endif

// `d` stretched for a sanitizer build: for deadlines and settle periods, never for the time a
// product setting (a timeout, an interval) is expected to take.
template <typename Rep, typename Period>
constexpr std::chrono::duration<Rep, Period> slowScaled(std::chrono::duration<Rep, Period> d) {
  return d * kSlowBuildFactor;
}

}  // namespace viscount::test
