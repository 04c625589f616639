// SIGINT/SIGTERM for the long-running tools: blocked in every thread (call before starting any),
// then awaited by main with sigwait.
#pragma once

#include <csignal>

namespace libsplit::tools {

inline sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

inline void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Returns the signal that arrived.
inline int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace libsplit::tools
