// bench-handoff: the floor under bench-overhead on this machine. The hand-offs a split request
// cannot avoid, with no libsplit code at all: the device thread writes to a loopback TCP socket,
// the server's I/O thread wakes and hands the request to a worker thread, the worker "computes"
// (spins for the tail's time) and writes the reply, the device thread wakes. The device spins
// for the head's time between requests, so every thread sleeps as long as in the real run.
//   bench-handoff [--requests N (1000)] [--head-us H (3000)] [--tail-us T (6500)]
// Prints the round trip minus the tail's spin: three thread wake-ups, two socket writes and
// two reads; what libsplit adds to a request is measured against this.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void spin_for(int us) {
  const auto until = Clock::now() + std::chrono::microseconds(us);
  while (Clock::now() < until) {
  }
}

bool io_exact(int fd, char* p, size_t n, bool write) {
  while (n > 0) {
    const ssize_t k = write ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k <= 0) return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 1000, head_us = 3000, tail_us = 6500;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--requests") requests = v;
    else if (a == "--head-us") head_us = v;
    else if (a == "--tail-us") tail_us = v;
    else return std::fprintf(stderr, "usage: bench-handoff [--requests N] [--head-us H] [--tail-us T]\n"), 2;
  }
  if (requests < 1 || head_us < 0 || tail_us < 0) return std::fprintf(stderr, "bench-handoff: bad arguments\n"), 2;

  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(lfd, 1) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return std::perror("bench-handoff: listen"), 1;
  const int cfd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(cfd, reinterpret_cast<sockaddr*>(&addr), len) != 0) return std::perror("bench-handoff: connect"), 1;
  const int sfd = ::accept(lfd, nullptr, nullptr);
  int one = 1;
  ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  std::mutex mu;
  std::condition_variable cv;
  int queued = 0;
  bool stop = false;
  char request[247] = {}, reply[64] = {};
  std::thread worker([&] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return queued > 0 || stop; });
        if (stop) return;
        --queued;
      }
      spin_for(tail_us);
      char out[sizeof reply] = {};
      if (!io_exact(sfd, out, sizeof out, true)) return;
    }
  });
  std::thread io([&] {
    char in[sizeof request];
    while (io_exact(sfd, in, sizeof in, false)) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++queued;
      }
      cv.notify_one();
    }
  });

  std::vector<double> over;
  for (int i = 0; i < requests + 20; ++i) {
    spin_for(head_us);
    const auto t0 = Clock::now();
    if (!io_exact(cfd, request, sizeof request, true) || !io_exact(cfd, reply, sizeof reply, false))
      return std::fprintf(stderr, "bench-handoff: loopback connection failed\n"), 1;
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() - tail_us;
    if (i >= 20) over.push_back(us);
  }
  ::shutdown(cfd, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_one();
  io.join();
  worker.join();
  ::close(cfd);
  ::close(sfd);
  ::close(lfd);
  std::sort(over.begin(), over.end());
  auto at = [&](double q) { return over[std::min(over.size() - 1, size_t(q * double(over.size())))]; };
  std::printf("hand-off floor (round trip - tail spin), %d requests, head %d us, tail %d us: "
              "p50 %.1f us, p90 %.1f us, p99 %.1f us\n",
              requests, head_us, tail_us, at(0.5), at(0.9), at(0.99));
  return 0;
}
