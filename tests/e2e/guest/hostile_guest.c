/* hostile_guest: a static guest program for tests/e2e/hostile_guest_test.cpp.
 * It does, from the guest's user space, what a hostile job can do to the
 * host through husk's devices and limits. The test compiles it
 * (cc -static) and uploads it with [[files]].
 *
 *   hostile_guest vsock-refused PORT N      N connections, one after another,
 *                                           to host port PORT where nothing
 *                                           listens; each must be refused
 *   hostile_guest vsock-burst PORT N        N non-blocking connections to
 *                                           PORT at once, then waits for each
 *   hostile_guest vsock-hold PORT N SECONDS [BIG BUFSIZE]
 *                                           N connections to PORT (the host
 *                                           listens), never read; the first
 *                                           BIG ask for a BUFSIZE-byte receive
 *                                           buffer (the credit they announce);
 *                                           then sleeps SECONDS
 *   hostile_guest vsock-send PORT N SECONDS N connections to PORT, all
 *                                           written to until none takes a
 *                                           byte for 1 s (the host never
 *                                           reads), then sleeps SECONDS
 *   hostile_guest eat-memory                allocates and touches 1 MiB at a
 *                                           time until it is killed
 *   hostile_guest fork-forever              every process forks without end,
 *                                           ignoring failures
 * Each vsock mode prints one summary line ("refused=... connected=...") that
 * the test reads from the run's stdout. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

static struct sockaddr_vm host_addr(unsigned port) {
  struct sockaddr_vm a;
  memset(&a, 0, sizeof a);
  a.svm_family = AF_VSOCK;
  a.svm_cid = VMADDR_CID_HOST;
  a.svm_port = port;
  return a;
}

/* One blocking connect; returns the socket, or -1 with errno set. */
static int connect_host(unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct sockaddr_vm a = host_addr(port);
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
    int err = errno;
    close(s);
    errno = err;
    return -1;
  }
  return s;
}

static int vsock_refused(unsigned port, int n) {
  int refused = 0, connected = 0, other = 0, last_err = 0;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    int s = connect_host(port);
    if (s >= 0) {
      connected++;
      close(s);
    } else if (errno == ECONNRESET || errno == ECONNREFUSED) {
      refused++;
    } else {
      other++;
      last_err = errno;
    }
  }
  printf("refused=%d connected=%d other=%d last_error=%s seconds=%.1f\n", refused, connected, other,
         last_err ? strerror(last_err) : "none", now_s() - t0);
  return 0;
}

static int vsock_burst(unsigned port, int n) {
  raise_nofile();
  int* fds = calloc((size_t)n, sizeof *fds);
  struct pollfd* p = calloc((size_t)n, sizeof *p);
  if (!fds || !p) return 2;
  int started = 0, immediate_fail = 0;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
      fds[i] = -1;
      immediate_fail++;
      continue;
    }
    struct sockaddr_vm a = host_addr(port);
    if (connect(s, (struct sockaddr*)&a, sizeof a) != 0 && errno != EINPROGRESS) {
      close(s);
      fds[i] = -1;
      immediate_fail++;
      continue;
    }
    fds[i] = s;
    started++;
  }
  /* Wait for every pending connect to end one way or the other (the guest
   * kernel times a connect out after 2 s). */
  int refused = 0, timed_out = 0, other = 0, connected = 0, pending = 0;
  double deadline = now_s() + 30;
  int left = started;
  while (left > 0 && now_s() < deadline) {
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (fds[i] < 0) continue;
      p[m].fd = fds[i];
      p[m].events = POLLOUT;
      p[m].revents = 0;
      m++;
    }
    if (poll(p, (nfds_t)m, 500) < 0 && errno != EINTR) break;
    for (int j = 0; j < m; j++) {
      if (!p[j].revents) continue;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(p[j].fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) connected++;
      else if (err == ECONNRESET || err == ECONNREFUSED) refused++;
      else if (err == ETIMEDOUT) timed_out++;
      else other++;
      for (int i = 0; i < n; i++) {
        if (fds[i] == p[j].fd) fds[i] = -1;
      }
      close(p[j].fd);
      left--;
    }
  }
  pending = left;
  printf("started=%d refused=%d timed_out=%d other=%d connected=%d immediate_fail=%d pending=%d seconds=%.1f\n",
         started, refused, timed_out, other, connected, immediate_fail, pending, now_s() - t0);
  return 0;
}

static int vsock_hold(unsigned port, int n, int seconds, int big, unsigned long long bufsize) {
  raise_nofile();
  int connected = 0, failed = 0, last_err = 0;
  for (int i = 0; i < n; i++) {
    int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
      failed++;
      last_err = errno;
      continue;
    }
    if (i < big) {
      /* The receive buffer the guest announces to the host as buf_alloc:
       * user space may ask for any size up to the maximum, which it may
       * raise itself. */
      unsigned long long max = bufsize;
      setsockopt(s, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &max, sizeof max);
      setsockopt(s, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &bufsize, sizeof bufsize);
    }
    struct sockaddr_vm a = host_addr(port);
    if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
      failed++;
      last_err = errno;
      close(s);
      continue;
    }
    connected++;  /* kept open, never read */
  }
  printf("connected=%d failed=%d last_error=%s\n", connected, failed, last_err ? strerror(last_err) : "none");
  fflush(stdout);
  sleep((unsigned)seconds);
  return 0;
}

static int vsock_send(unsigned port, int n, int seconds) {
  raise_nofile();
  static char buf[65536];
  memset(buf, 'g', sizeof buf);
  int* fds = calloc((size_t)n, sizeof *fds);
  unsigned long long* sent = calloc((size_t)n, sizeof *sent);
  if (!fds || !sent) return 2;
  int connected = 0, failed = 0, last_err = 0;
  for (int i = 0; i < n; i++) {
    fds[i] = connect_host(port);
    if (fds[i] < 0) {
      failed++;
      last_err = errno;
      continue;
    }
    connected++;
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
  }
  /* Write to every connection until the host's credit is spent: rounds over
   * all of them until one second passes without a byte taken. */
  int idle_rounds = 0;
  while (idle_rounds < 10) {
    unsigned long long round = 0;
    for (int i = 0; i < n; i++) {
      if (fds[i] < 0) continue;
      for (;;) {
        ssize_t w = write(fds[i], buf, sizeof buf);
        if (w > 0) {
          sent[i] += (unsigned long long)w;
          round += (unsigned long long)w;
          continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
          close(fds[i]);
          fds[i] = -1;
        }
        break;
      }
    }
    if (round == 0) {
      idle_rounds++;
      usleep(100000);
    } else {
      idle_rounds = 0;
    }
  }
  unsigned long long total = 0, max_one = 0;
  for (int i = 0; i < n; i++) {
    total += sent[i];
    if (sent[i] > max_one) max_one = sent[i];
  }
  printf("connected=%d failed=%d last_error=%s sent_total=%llu sent_max=%llu\n", connected, failed,
         last_err ? strerror(last_err) : "none", total, max_one);
  fflush(stdout);
  sleep((unsigned)seconds);
  return 0;
}

static _Noreturn void eat_memory(void) {
  unsigned long mib = 0;
  for (;;) {
    char* p = malloc(1 << 20);
    if (!p) {
      usleep(1000);
      continue;
    }
    memset(p, (int)(mib & 0xff) | 1, 1 << 20);
    mib++;
    if (mib % 32 == 0) {
      printf("ate %lu MiB\n", mib);
      fflush(stdout);
    }
  }
}

static _Noreturn void fork_forever(void) {
  printf("forking\n");
  fflush(stdout);
  for (;;) {
    if (fork() < 0) usleep(10000);
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 2 && !strcmp(argv[1], "eat-memory")) eat_memory();
  if (argc >= 2 && !strcmp(argv[1], "fork-forever")) fork_forever();
  if (argc < 4) {
    fprintf(stderr, "usage: see the comment at the top of hostile_guest.c\n");
    return 2;
  }
  unsigned port = (unsigned)strtoul(argv[2], 0, 10);
  int n = atoi(argv[3]);
  int seconds = argc > 4 ? atoi(argv[4]) : 0;
  if (!strcmp(argv[1], "vsock-refused")) return vsock_refused(port, n);
  if (!strcmp(argv[1], "vsock-burst")) return vsock_burst(port, n);
  if (!strcmp(argv[1], "vsock-hold")) {
    int big = argc > 5 ? atoi(argv[5]) : 0;
    unsigned long long bufsize = argc > 6 ? strtoull(argv[6], 0, 10) : 0;
    return vsock_hold(port, n, seconds, big, bufsize);
  }
  if (!strcmp(argv[1], "vsock-send")) return vsock_send(port, n, seconds);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
