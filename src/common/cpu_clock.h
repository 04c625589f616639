// The process's CPU time (every thread's), for timing device work apart from the waits a CPU
// quota or a busy core adds to its wall time.
#pragma once

#include <ctime>

namespace libsplit::detail {

// Microseconds. Reading it settles the process's CPU account: under a CPU quota, a thread whose
// slice is spent is stopped there.
inline double process_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

}  // namespace libsplit::detail
