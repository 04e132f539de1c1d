// tests/bench/jobs/floor.c: the floor of `make bench-run`. Starts one program
// once per input file, one after another, as directly as a host program can:
// the input in memory, a pipe for stdin and one for stdout, posix_spawn,
// write the input, read stdout to EOF, waitpid. Each start is timed from just
// before the pipes are made to the reap (CLOCK_MONOTONIC), the same span as
// a case's start_ms..end_ms in husk's result.
//
// Usage: floor OUT_DIR INPUT... -- PROGRAM [ARG...]
// For input number i (0-based) it writes the program's stdout to OUT_DIR/i
// and prints one line "i ms exit_status" (exit_status as waitpid gives it);
// last, "total ms": the first start to the last reap, as the judge's
// first case start to last case end.
// Built by tests/bench/run with the C compiler (cc -O2); stdlib only.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static void die(const char* what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(2);
}

static char* slurp(const char* path, size_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  struct stat st;
  if (fstat(fd, &st) != 0) die(path);
  char* buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) die("malloc");
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n <= 0) die(path);
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return buf;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  int sep = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { sep = i; break; }
  }
  if (argc < 4 || sep < 2 || sep + 1 >= argc) {
    fprintf(stderr, "usage: floor OUT_DIR INPUT... -- PROGRAM [ARG...]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a program that exits without reading its input
  const char* out_dir = argv[1];
  char** prog = argv + sep + 1;
  static char buf[65536];
  double first = -1, last = 0;
  for (int i = 2; i < sep; i++) {
    size_t len = 0;
    char* input = slurp(argv[i], &len);
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%s/%d", out_dir, i - 2);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) die(out_path);

    const double t0 = now_ms();
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) die("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    pid_t pid;
    int err = posix_spawn(&pid, prog[0], &fa, NULL, prog, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
      errno = err;
      die(prog[0]);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    // The inputs are a few bytes, below the pipe's capacity: the write does
    // not wait for the reader.
    if (write(in_pipe[1], input, len) != (ssize_t)len && errno != EPIPE) die("write stdin");
    close(in_pipe[1]);
    for (;;) {
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("read stdout");
      if (n == 0) break;
      if (write(out, buf, (size_t)n) != n) die(out_path);
    }
    close(out_pipe[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) die("waitpid");
    }
    const double t1 = now_ms();
    if (first < 0) first = t0;
    last = t1;
    close(out);
    free(input);
    printf("%d %.3f %d\n", i - 2, t1 - t0, status);
  }
  printf("total %.3f\n", last - first);
  return 0;
}
