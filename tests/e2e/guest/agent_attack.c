/* agent_attack: a static guest program that turns a job against its own
 * guest agent, for tests/e2e/hostile_agent_test.cpp (which builds it with
 * cc -static and puts it into the guest). The agent is PID 1: signals from
 * the guest's own processes cannot kill or stop it, but a job runs as root
 * and ptrace(2) can: a tracer's SIGSTOP stops even init (a SIGKILL it
 * ignores, so "kill" makes it call exit_group).
 *
 *   agent_attack loopback CID PORT   connect to CID:PORT over vsock (CID 1 or
 *                                    the guest's own: the loopback transport),
 *                                    send a Hello frame, print what happened:
 *                                    "refused: ..." (exit 0), "answered: N
 *                                    bytes" (1), "connect: ..." (2), "silent"
 *                                    (3: open, no answer in 5 s)
 *   agent_attack kill                PID 1 dies: its next system call is
 *                                    made exit_group (the kernel panics,
 *                                    "Attempted to kill init!")
 *   agent_attack stop                PTRACE_ATTACH to PID 1 (its SIGSTOP), held
 *                                    stopped as long as this program lives
 *   agent_attack stop-on TYPE        trace PID 1's system calls and leave it
 *                                    stopped as it reads a request frame of
 *                                    message TYPE (decimal) from the host
 *   agent_attack steal garbage|drip  stop PID 1 and take its connection to
 *                                    the host (pidfd_getfd; the host's only
 *                                    one), then send 64 bytes of 0xff, or a
 *                                    frame that claims 1 MiB a byte a second
 *   agent_attack fake-agent          be the agent (PID 1 from a root disk,
 *                                    where it runs without arguments):
 *                                    listen on vsock port 52 and, per the mode
 *                                    in /husk-fake-agent, never answer
 *                                    ("silent") or drip a frame ("drip")
 *   -b MS (first)                    leave the job first: out of its cgroup
 *                                    and session, return at once (the job's
 *                                    step ends), attack MS later; -b 0: the
 *                                    step ends once the attack is in place
 * Everything it says goes to stdout with an "agent_attack: " prefix. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX_BODY (1u << 20)

static void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("agent_attack: ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static void hold_forever(void) {
  for (;;) pause();
}

/* With -b 0, the job's step ends only once the attack is in place. */
static int armed_fd = -1;
static void armed(void) {
  if (armed_fd < 0) return;
  char c = 1;
  if (write(armed_fd, &c, 1) != 1) {
  }
  close(armed_fd);
  armed_fd = -1;
}

/* Out of the job: the agent kills the job's cgroup (or process group) when
 * its leader exits, so the attacker moves to the root cgroup, starts a new
 * session and lets the leader return. */
static void leave_job(long delay_ms) {
  int fd = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY);
  if (fd >= 0) {
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)n) != n) say("cannot leave the job's cgroup: %s", strerror(errno));
    close(fd);
  }
  say("detaching; attacking in %ld ms", delay_ms);
  int ready[2] = {-1, -1};
  if (delay_ms == 0 && pipe(ready) != 0) ready[0] = ready[1] = -1;
  pid_t child = fork();
  if (child < 0) {
    say("fork: %s", strerror(errno));
    exit(2);
  }
  if (child > 0) {
    if (ready[0] >= 0) {
      close(ready[1]);
      struct pollfd p = {ready[0], POLLIN, 0};
      char c = 0;
      if (poll(&p, 1, 20000) == 1 && read(ready[0], &c, 1) == 1) {
        say("armed");
      } else {
        say("the attack did not arm");
      }
    }
    exit(0);
  }
  if (ready[1] >= 0) {
    close(ready[0]);
    armed_fd = ready[1];
  }
  setsid();
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  sleep_ms(delay_ms);
}

static void put_le(unsigned char* p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int loopback(unsigned cid, unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  if (s < 0 || connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
    say("connect: CID %u port %u: %s", cid, port, strerror(errno));
    return 2;
  }
  /* Hello: length 18, type 1, id 1, protocol 1.3, no features. */
  unsigned char hello[22] = {0};
  put_le(hello, 18, 4);
  put_le(hello + 4, 1, 2);
  put_le(hello + 6, 1, 4);
  put_le(hello + 10, 1, 2);
  put_le(hello + 12, 3, 2);
  ssize_t w = write(s, hello, sizeof hello);
  struct pollfd p = {s, POLLIN, 0};
  int rc = poll(&p, 1, 5000);
  if (rc == 0) {
    say("silent: connected to CID %u port %u, no answer in 5 s", cid, port);
    return 3;
  }
  unsigned char buf[4096];
  ssize_t n = read(s, buf, sizeof buf);
  if (n > 0) {
    say("answered: %zd bytes from CID %u port %u", n, cid, port);
    return 1;
  }
  say("refused: CID %u port %u closed the connection without an answer (%s; the Hello %s)", cid, port,
      n == 0 ? "end of stream" : strerror(errno), w == (ssize_t)sizeof hello ? "was sent" : "was not sent");
  return 0;
}

static int stop_init(void) {
  if (ptrace(PTRACE_ATTACH, 1, 0, 0) != 0) {
    say("PTRACE_ATTACH 1: %s", strerror(errno));
    return 2;
  }
  int st = 0;
  if (waitpid(1, &st, __WALL) != 1) say("waitpid 1: %s", strerror(errno));
  say("PID 1 stopped (signal %d); holding it", WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
  armed();
  hold_forever();
  return 0;
}

/* Seize and interrupt PID 1: it stops where it is, for as long as we live. */
static int seize_and_stop_init(void) {
  if (ptrace(PTRACE_SEIZE, 1, 0, (void*)(long)PTRACE_O_TRACESYSGOOD) != 0) {
    say("PTRACE_SEIZE 1: %s", strerror(errno));
    return -1;
  }
  if (ptrace(PTRACE_INTERRUPT, 1, 0, 0) != 0) {
    say("PTRACE_INTERRUPT 1: %s", strerror(errno));
    return -1;
  }
  int st = 0;
  if (waitpid(1, &st, __WALL) != 1) {
    say("waitpid 1: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Resumes PID 1 to its next system-call stop; 0 there, -1 when it is gone.
 * Signals it receives on the way are passed on. */
static int next_syscall_stop(void) {
  int sig = 0;
  for (;;) {
    if (ptrace(PTRACE_SYSCALL, 1, 0, (void*)(long)sig) != 0) return -1;
    int st = 0;
    if (waitpid(1, &st, __WALL) != 1 || !WIFSTOPPED(st)) return -1;
    sig = 0;
    if (WSTOPSIG(st) == (SIGTRAP | 0x80)) return 0;
    if ((st >> 16) == PTRACE_EVENT_STOP) continue;
    sig = WSTOPSIG(st);
  }
}

/* Whether PID 1's descriptor `fd` is its connection to the host: a
 * connected vsock socket whose peer is CID 2. Returns our copy (pidfd_getfd:
 * root may, as with ptrace) or -1. */
static int host_connection_copy(int pidfd, int fd) {
  int mine = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
  if (mine < 0) return -1;
  struct sockaddr_vm peer;
  socklen_t len = sizeof peer;
  if (getpeername(mine, (struct sockaddr*)&peer, &len) == 0 && peer.svm_family == AF_VSOCK &&
      peer.svm_cid == VMADDR_CID_HOST) {
    return mine;
  }
  close(mine);
  return -1;
}

static int pidfd_of_init(void) {
  int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);
  if (pidfd < 0) say("pidfd_open 1: %s", strerror(errno));
  return pidfd;
}

/* PID 1's connection to the host (the only one it has). */
static int take_host_connection(void) {
  int pidfd = pidfd_of_init();
  if (pidfd < 0) return -1;
  for (int fd = 0; fd < 1024; fd++) {
    int mine = host_connection_copy(pidfd, fd);
    if (mine >= 0) {
      say("took PID 1's fd %d: its connection to the host", fd);
      close(pidfd);
      return mine;
    }
  }
  say("PID 1 has no connection to the host");
  close(pidfd);
  return -1;
}

/* PID 1 exits: stopped at its next system call's entry, that call becomes
 * exit_group(137) (a kernel-sent SIGKILL would not do: global init ignores
 * it). The kernel then panics, "Attempted to kill init!". */
static int kill_init(void) {
  if (seize_and_stop_init() != 0) return 2;
  for (;;) {
    if (next_syscall_stop() != 0) {
      say("lost PID 1");
      return 2;
    }
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, 1, 0, &r) != 0) return 2;
    if ((long long)r.rax == -ENOSYS) {
      r.orig_rax = SYS_exit_group;
      r.rdi = 137;
      if (ptrace(PTRACE_SETREGS, 1, 0, &r) != 0) return 2;
      break;
    }
  }
  say("PID 1 calls exit_group(137) now");
  ptrace(PTRACE_DETACH, 1, 0, 0);
  /* The kernel panics and the VM resets: nothing after this should run. */
  sleep_ms(30000);
  say("PID 1 is still alive after 30 s");
  return 1;
}

static int stop_on(unsigned type) {
  int pidfd = pidfd_of_init();
  if (pidfd < 0 || seize_and_stop_init() != 0) return 2;
  say("tracing PID 1 until it reads a frame of type %u", type);
  armed();
  for (;;) {
    if (next_syscall_stop() != 0) {
      say("lost PID 1");
      return 2;
    }
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, 1, 0, &r) != 0) return 2;
    /* At a syscall's exit rax is its result (at its entry, -ENOSYS). */
    if (r.orig_rax != SYS_read || (long long)r.rax < 10) continue;
    errno = 0;
    long word = ptrace(PTRACE_PEEKDATA, 1, (void*)r.rsi, 0);
    if (errno != 0) continue;
    const unsigned frame_type = (unsigned)((unsigned long)word >> 32) & 0xffff;
    if (frame_type != type) continue;
    /* Job output in a pipe may look like it: only the host's connection counts. */
    int conn = host_connection_copy(pidfd, (int)r.rdi);
    if (conn >= 0) {
      close(conn);
      break;
    }
  }
  say("PID 1 read a frame of type %u: holding it stopped there", type);
  hold_forever();
  return 0;
}

/* A frame that claims the largest body, then its bytes one a second. */
static void drip_frame(int s) {
  unsigned char header[10];
  put_le(header, FRAME_MAX_BODY, 4);
  put_le(header + 4, 0x43, 2); /* Output */
  put_le(header + 6, 0, 4);
  for (unsigned i = 0;; i++) {
    unsigned char b = i < sizeof header ? header[i] : 'x';
    if (write(s, &b, 1) != 1) return;
    sleep_ms(1000);
  }
}

static int steal(const char* how) {
  if (seize_and_stop_init() != 0) return 2;
  say("PID 1 stopped");
  int s = take_host_connection();
  if (s < 0) return 2;
  if (strcmp(how, "garbage") == 0) {
    unsigned char junk[64];
    memset(junk, 0xff, sizeof junk);
    ssize_t n = write(s, junk, sizeof junk);
    say("sent %zd bytes of 0xff to the host", n);
    hold_forever();
  }
  say("dripping a frame to the host, a byte a second");
  drip_frame(s);
  hold_forever();
  return 0;
}

/* PID 1 of a root disk in the agent's place: never exits (that would panic). */
static int fake_agent(void) {
  char mode[32] = "silent";
  int m = open("/husk-fake-agent", O_RDONLY);
  if (m >= 0) {
    ssize_t n = read(m, mode, sizeof mode - 1);
    mode[n > 0 ? n : 0] = 0;
    mode[strcspn(mode, "\n")] = 0;
    close(m);
  }
  signal(SIGCHLD, SIG_IGN); /* children reap themselves */
  int l = socket(AF_VSOCK, SOCK_STREAM, 0);
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 52};
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 16) != 0) {
    say("fake agent: vsock port 52: %s", strerror(errno));
    hold_forever();
  }
  say("fake agent (%s) listening on vsock port 52", mode);
  for (;;) {
    int c = accept(l, 0, 0);
    if (c < 0) continue;
    say("fake agent: the host connected");
    if (strcmp(mode, "drip") == 0 && fork() == 0) {
      drip_frame(c);
      _exit(0);
    }
    /* silent: keep it open and never read; drip: the child has it. */
    if (strcmp(mode, "drip") == 0) close(c);
  }
}

int main(int argc, char** argv) {
  /* From a root disk the initramfs runs /sbin/husk-agent as PID 1, with no
   * arguments: that is the fake agent. */
  if (getpid() == 1 && argc < 2) return fake_agent();
  int i = 1;
  if (argc > 2 && strcmp(argv[1], "-b") == 0) {
    leave_job(strtol(argv[2], 0, 10));
    i = 3;
  }
  const char* mode = i < argc ? argv[i] : "";
  if (strcmp(mode, "loopback") == 0 && i + 2 < argc) {
    return loopback((unsigned)strtoul(argv[i + 1], 0, 10), (unsigned)strtoul(argv[i + 2], 0, 10));
  }
  if (strcmp(mode, "kill") == 0) return kill_init();
  if (strcmp(mode, "stop") == 0) return stop_init();
  if (strcmp(mode, "stop-on") == 0 && i + 1 < argc) return stop_on((unsigned)strtoul(argv[i + 1], 0, 10));
  if (strcmp(mode, "steal") == 0 && i + 1 < argc) return steal(argv[i + 1]);
  if (strcmp(mode, "fake-agent") == 0) return fake_agent();
  fprintf(stderr, "usage: agent_attack [-b MS] loopback CID PORT | kill | stop | stop-on TYPE | "
                  "steal garbage|drip | fake-agent\n");
  return 2;
}
