/* net_probe: both ends of `make bench-net` (tests/bench/net/README.md), one
 * static program: the guest end measures, the host end (`serve`) answers.
 *
 * Guest side (each prints one line `NETPROBE {json}` on stdout):
 *   net_probe connect HOST PORT N     N TCP connects (then close), after one
 *                                     untimed warm-up: connect() time in us
 *   net_probe rr HOST PORT N          one connection, N one-byte request /
 *                                     one-byte answer round trips (TCP_NODELAY)
 *   net_probe send HOST PORT SECONDS  guest -> host: writes as fast as it can
 *                                     for SECONDS, then waits for the host's
 *                                     count of bytes received (so socket
 *                                     buffers do not inflate the figure)
 *   net_probe recv HOST PORT SECONDS  host -> guest: the host writes for
 *                                     SECONDS, the guest reads to EOF
 *   net_probe all HOST PORT N SECONDS connect, rr, send, recv in that order
 *   net_probe ifconfig IFACE ADDR/PREFIX [GATEWAY [MTU]]
 *                                     brings lo and IFACE up with that address
 *                                     (and a default route, an MTU): for a
 *                                     guest without husk's agent (QEMU)
 * HOST is an IPv4 address or a name from /etc/hosts (no NSS in a static
 * program). Host side:
 *   net_probe serve PORT [ADDR]       listens on ADDR (default 0.0.0.0), one
 *                                     thread per connection; the first byte
 *                                     picks the test: none (EOF) = connect,
 *                                     'P' = rr (echo), 'S' = sink (answers the
 *                                     byte count), 'R' + 4-byte ms = source.
 *   net_probe unchroot CMD [ARG...]   runs CMD outside the test host's chroot
 *                                     (below), in the same folder
 * Exit code: 0 when the test ran, 1 when it failed (a line on stderr), 2 on
 * a usage error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)
#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_S 20

static const char* prog_test = "?";

static void die(const char* what) {
  fprintf(stderr, "net_probe %s: %s: %s\n", prog_test, what, strerror(errno));
  exit(1);
}

static void fail(const char* msg) {
  fprintf(stderr, "net_probe %s: %s\n", prog_test, msg);
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static long parse_num(const char* s, const char* what) {
  char* end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !*s || *end || v <= 0) {
    fprintf(stderr, "net_probe: %s must be a positive number, not '%s'\n", what, s);
    exit(2);
  }
  return v;
}

/* HOST: a dotted IPv4 address, else the first IPv4 line of /etc/hosts that
 * names it. */
static struct in_addr resolve(const char* host) {
  struct in_addr a;
  if (inet_pton(AF_INET, host, &a) == 1) return a;
  FILE* f = fopen("/etc/hosts", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      char* hash = strchr(line, '#');
      if (hash) *hash = 0;
      char* save = NULL;
      char* addr = strtok_r(line, " \t\r\n", &save);
      if (!addr || inet_pton(AF_INET, addr, &a) != 1) continue;
      for (char* name; (name = strtok_r(NULL, " \t\r\n", &save));) {
        if (!strcmp(name, host)) {
          fclose(f);
          return a;
        }
      }
    }
    fclose(f);
  }
  fprintf(stderr, "net_probe: cannot resolve '%s' (not an IPv4 address, not in /etc/hosts)\n", host);
  exit(1);
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A connected TCP socket, or -1 with errno set; *us gets the connect() time. */
static int tcp_connect(struct in_addr addr, int port, double* us) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
  double t0 = now_us();
  int rc = connect(fd, (struct sockaddr*)&sa, sizeof sa);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    rc = poll(&p, 1, CONNECT_TIMEOUT_MS);
    if (rc == 0) {
      errno = ETIMEDOUT;
      rc = -1;
    } else if (rc > 0) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        errno = err;
        rc = -1;
      } else {
        rc = 0;
      }
    }
  }
  double t1 = now_us();
  if (rc < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (us) *us = t1 - t0;
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  /* A peer that stalls fails the test instead of hanging it. */
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Linear interpolation between closest ranks (as the harness computes). */
static double pct(const double* sorted, long n, double q) {
  if (n <= 0) return 0;
  double pos = (double)(n - 1) * q;
  long lo = (long)pos;
  long hi = lo + 1 < n ? lo + 1 : n - 1;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - (double)lo);
}

static void print_latency(const char* test, const char* host, int port, long n, long failures, double first,
                          double* v, long got) {
  qsort(v, (size_t)got, sizeof *v, cmp_double);
  double sum = 0;
  for (long i = 0; i < got; i++) sum += v[i];
  printf("NETPROBE {\"test\":\"%s\",\"host\":\"%s\",\"port\":%d,\"n\":%ld,\"ok\":%ld,\"failures\":%ld,"
         "\"first_us\":%.1f,\"min_us\":%.1f,\"median_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
         "\"max_us\":%.1f,\"mean_us\":%.1f}\n",
         test, host, port, n, got, failures, first, got ? v[0] : 0, pct(v, got, 0.5), pct(v, got, 0.9),
         pct(v, got, 0.99), got ? v[got - 1] : 0, got ? sum / (double)got : 0);
  fflush(stdout);
}

static int test_connect(const char* host, int port, long n) {
  prog_test = "connect";
  struct in_addr addr = resolve(host);
  double* v = calloc((size_t)n, sizeof *v);
  if (!v) fail("out of memory");
  double first = 0;
  int fd = tcp_connect(addr, port, &first); /* warm-up: ARP, caches */
  if (fd < 0) die("warm-up connect");
  close(fd);
  long got = 0, failures = 0;
  for (long i = 0; i < n; i++) {
    double us = 0;
    fd = tcp_connect(addr, port, &us);
    if (fd < 0) {
      failures++;
      if (failures == 1) fprintf(stderr, "net_probe connect: connect %ld: %s\n", i, strerror(errno));
      continue;
    }
    v[got++] = us;
    close(fd);
  }
  print_latency("connect", host, port, n, failures, first, v, got);
  free(v);
  return failures ? 1 : 0;
}

static void write_all(int fd, const void* p, size_t n) {
  const char* c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    c += w;
    n -= (size_t)w;
  }
}

static int read_all(int fd, void* p, size_t n) {
  char* c = p;
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int test_rr(const char* host, int port, long n) {
  prog_test = "rr";
  struct in_addr addr = resolve(host);
  double* v = calloc((size_t)n, sizeof *v);
  if (!v) fail("out of memory");
  int fd = tcp_connect(addr, port, NULL);
  if (fd < 0) die("connect");
  set_nodelay(fd);
  write_all(fd, "P", 1);
  char b = 'x';
  double first = 0;
  for (long i = -1; i < n; i++) { /* i == -1: the untimed warm-up */
    double t0 = now_us();
    write_all(fd, &b, 1);
    if (read_all(fd, &b, 1) < 0) fail("the server closed the connection");
    double us = now_us() - t0;
    if (i < 0)
      first = us;
    else
      v[i] = us;
  }
  close(fd);
  print_latency("rr", host, port, n, 0, first, v, n);
  free(v);
  return 0;
}

static int mss_of(int fd) {
  int mss = 0;
  socklen_t len = sizeof mss;
  getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len);
  return mss;
}

static void print_stream(const char* test, const char* host, int port, double seconds, uint64_t bytes, double us,
                         int mss) {
  double mb_s = us > 0 ? (double)bytes / us : 0; /* bytes per us = MB/s */
  printf("NETPROBE {\"test\":\"%s\",\"host\":\"%s\",\"port\":%d,\"seconds\":%.0f,\"bytes\":%llu,"
         "\"elapsed_s\":%.3f,\"mb_s\":%.2f,\"mbit_s\":%.1f,\"mss\":%d}\n",
         test, host, port, seconds, (unsigned long long)bytes, us / 1e6, mb_s, mb_s * 8, mss);
  fflush(stdout);
}

static int test_send(const char* host, int port, long seconds) {
  prog_test = "send";
  struct in_addr addr = resolve(host);
  static char buf[BUF_SIZE];
  memset(buf, 0x5a, sizeof buf);
  int fd = tcp_connect(addr, port, NULL);
  if (fd < 0) die("connect");
  write_all(fd, "S", 1);
  double t0 = now_us(), end = t0 + (double)seconds * 1e6;
  uint64_t sent = 0;
  while (now_us() < end) {
    write_all(fd, buf, sizeof buf);
    sent += sizeof buf;
  }
  int mss = mss_of(fd);
  if (shutdown(fd, SHUT_WR) < 0) die("shutdown");
  uint64_t got = 0;
  if (read_all(fd, &got, sizeof got) < 0) fail("no byte count from the server");
  double us = now_us() - t0;
  close(fd);
  if (got != sent) {
    fprintf(stderr, "net_probe send: sent %llu bytes, the server counted %llu\n", (unsigned long long)sent,
            (unsigned long long)got);
    return 1;
  }
  print_stream("send", host, port, (double)seconds, got, us, mss);
  return 0;
}

static int test_recv(const char* host, int port, long seconds) {
  prog_test = "recv";
  struct in_addr addr = resolve(host);
  static char buf[BUF_SIZE];
  int fd = tcp_connect(addr, port, NULL);
  if (fd < 0) die("connect");
  unsigned char req[5] = {'R'};
  uint32_t ms = (uint32_t)(seconds * 1000);
  memcpy(req + 1, &ms, sizeof ms);
  double t0 = now_us();
  write_all(fd, req, sizeof req);
  uint64_t got = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read");
    if (r == 0) break;
    got += (uint64_t)r;
  }
  double us = now_us() - t0;
  int mss = mss_of(fd);
  close(fd);
  if (!got) fail("the server sent nothing");
  print_stream("recv", host, port, (double)seconds, got, us, mss);
  return 0;
}

/* ------------------------------------------------------------ ifconfig */
static void set_addr(struct sockaddr* sa, struct in_addr a) {
  struct sockaddr_in* in = (struct sockaddr_in*)(void*)sa;
  memset(in, 0, sizeof *in);
  in->sin_family = AF_INET;
  in->sin_addr = a;
}

static void if_up(int s, const char* ifname) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die(ifname);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS");
}

static int cmd_ifconfig(int argc, char** argv) {
  prog_test = "ifconfig";
  const char* ifname = argv[0];
  char cidr[64];
  snprintf(cidr, sizeof cidr, "%s", argv[1]);
  char* slash = strchr(cidr, '/');
  long prefix = 24;
  if (slash) {
    *slash = 0;
    prefix = strtol(slash + 1, NULL, 10);
  }
  struct in_addr addr, mask = {.s_addr = prefix <= 0 ? 0 : htonl(~0u << (32 - prefix))};
  if (inet_pton(AF_INET, cidr, &addr) != 1 || prefix < 0 || prefix > 32) fail("ADDR/PREFIX is not an IPv4 CIDR");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  if_up(s, "lo");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  set_addr(&ifr.ifr_addr, addr);
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0) die("SIOCSIFADDR");
  set_addr(&ifr.ifr_netmask, mask);
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) die("SIOCSIFNETMASK");
  if (argc > 3) {
    ifr.ifr_mtu = (int)parse_num(argv[3], "MTU");
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) die("SIOCSIFMTU");
  }
  if_up(s, ifname);
  if (argc > 2) {
    struct in_addr gw, any = {0};
    if (inet_pton(AF_INET, argv[2], &gw) != 1) fail("GATEWAY is not an IPv4 address");
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    set_addr(&rt.rt_dst, any);
    set_addr(&rt.rt_genmask, any);
    set_addr(&rt.rt_gateway, gw);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char*)ifname;
    if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) die("SIOCADDRT (default route)");
  }
  close(s);
  return 0;
}

/* --------------------------------------------------------------- serve */
static void* serve_one(void* arg) {
  int fd = (int)(intptr_t)arg;
  char* buf = malloc(BUF_SIZE);
  char cmd;
  if (!buf) {
    close(fd);
    return NULL;
  }
  ssize_t r = read(fd, &cmd, 1);
  if (r == 1 && cmd == 'P') { /* rr: echo each byte */
    set_nodelay(fd);
    char b;
    while (read(fd, &b, 1) == 1)
      if (write(fd, &b, 1) != 1) break;
  } else if (r == 1 && cmd == 'S') { /* sink: count to EOF, answer the count */
    uint64_t got = 0;
    for (;;) {
      ssize_t n = read(fd, buf, BUF_SIZE);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (uint64_t)n;
    }
    if (write(fd, &got, sizeof got) != (ssize_t)sizeof got) perror("net_probe serve: sink answer");
  } else if (r == 1 && cmd == 'R') { /* source: write for ms */
    uint32_t ms = 0;
    if (read_all(fd, &ms, sizeof ms) == 0 && ms <= 600000) {
      memset(buf, 0xa5, BUF_SIZE);
      double end = now_us() + (double)ms * 1e3;
      while (now_us() < end)
        if (write(fd, buf, BUF_SIZE) <= 0) break;
    }
  } /* else: EOF (a connect test) or an unknown byte: close */
  close(fd);
  free(buf);
  return NULL;
}

static int cmd_serve(const char* port_s, const char* bind_s) {
  prog_test = "serve";
  int port = (int)parse_num(port_s, "PORT");
  struct in_addr addr = {.s_addr = htonl(INADDR_ANY)};
  if (bind_s && inet_pton(AF_INET, bind_s, &addr) != 1) fail("ADDR is not an IPv4 address");
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
  if (bind(s, (struct sockaddr*)&sa, sizeof sa) < 0) die("bind");
  if (listen(s, 1024) < 0) die("listen");
  fprintf(stderr, "NETPROBE_SERVING %s:%d\n", bind_s ? bind_s : "0.0.0.0", port);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (;;) {
    int fd = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      die("accept");
    }
    pthread_t t;
    if (pthread_create(&t, &attr, serve_one, (void*)(intptr_t)fd) != 0) {
      perror("net_probe serve: pthread_create");
      close(fd);
    }
  }
  return 1;
}

/* ------------------------------------------------------------ unchroot */
/* The nested test host runs its commands chrooted into this machine's root
 * (tests/testhost/init), and the kernel refuses user namespaces to a
 * chrooted process (unshare(2) EPERM): passt, which isolates itself in one,
 * then exits ("Couldn't create user namespace: Operation not permitted").
 * Root can undo the chroot for itself as switch_root would (as
 * tests/kvm/jail/jail_userns_test.cpp does): in a mount namespace of its own
 * it moves its root folder's mount onto the real root (PID 1's "/") and
 * enters it. Where "/" is PID 1's root already, CMD just runs. */
static int cmd_unchroot(char** argv) {
  prog_test = "unchroot";
  struct stat ours, real;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) die("getcwd");
  if (stat("/", &ours) == 0 && stat("/proc/1/root/", &real) == 0 &&
      (ours.st_dev != real.st_dev || ours.st_ino != real.st_ino)) {
    if (chdir("/proc/1/root/") < 0) die("chdir to PID 1's root");
    if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS)"); /* the cwd moves along */
    if (mount(NULL, ".", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount --make-rprivate");
    if (chroot(".") < 0) die("chroot to PID 1's root");
    /* Which folder of the real root was ours. */
    DIR* d = opendir("/");
    if (!d) die("opendir /");
    char ours_there[512] = "";
    for (struct dirent* e; (e = readdir(d));) {
      char path[300];
      struct stat st;
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "/%s", e->d_name);
      if (stat(path, &st) == 0 && st.st_dev == ours.st_dev && st.st_ino == ours.st_ino)
        snprintf(ours_there, sizeof ours_there, "%s", path);
    }
    closedir(d);
    if (!*ours_there) fail("the chroot folder is not a folder of PID 1's root");
    if (chdir(ours_there) < 0) die("chdir to the chroot folder");
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) die("move the chroot folder to /");
    if (chroot(".") < 0 || chdir("/") < 0) die("chroot");
    if (chdir(cwd) < 0) die("chdir back");
  }
  execvp(argv[0], argv);
  die(argv[0]);
  return 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: net_probe connect|rr HOST PORT N\n"
          "       net_probe send|recv HOST PORT SECONDS\n"
          "       net_probe all HOST PORT N SECONDS\n"
          "       net_probe ifconfig IFACE ADDR/PREFIX [GATEWAY [MTU]]\n"
          "       net_probe serve PORT [ADDR]\n"
          "       net_probe unchroot CMD [ARG...]\n");
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const char* cmd = argv[1];
  signal(SIGPIPE, SIG_IGN);
  if (!strcmp(cmd, "unchroot") && argc >= 3) return cmd_unchroot(argv + 2);
  if (!strcmp(cmd, "serve") && (argc == 3 || argc == 4)) return cmd_serve(argv[2], argc == 4 ? argv[3] : NULL);
  if (!strcmp(cmd, "ifconfig") && argc >= 4 && argc <= 6) return cmd_ifconfig(argc - 2, argv + 2);
  if (argc < 5) return usage();
  const char* host = argv[2];
  int port = (int)parse_num(argv[3], "PORT");
  long n = parse_num(argv[4], !strcmp(cmd, "send") || !strcmp(cmd, "recv") ? "SECONDS" : "N");
  if (argc == 5 && !strcmp(cmd, "connect")) return test_connect(host, port, n);
  if (argc == 5 && !strcmp(cmd, "rr")) return test_rr(host, port, n);
  if (argc == 5 && !strcmp(cmd, "send")) return test_send(host, port, n);
  if (argc == 5 && !strcmp(cmd, "recv")) return test_recv(host, port, n);
  if (argc == 6 && !strcmp(cmd, "all")) {
    long seconds = parse_num(argv[5], "SECONDS");
    int rc = test_connect(host, port, n);
    rc |= test_rr(host, port, n);
    rc |= test_send(host, port, seconds);
    rc |= test_recv(host, port, seconds);
    return rc;
  }
  return usage();
}
