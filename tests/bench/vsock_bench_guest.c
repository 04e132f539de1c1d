/* vsock_bench_guest: the guest end of `make bench-vsock`'s raw vsock
 * throughput runs (a static program uploaded through the agent). It moves
 * bytes and nothing else, so the figure is the vsock path's, not a checksum's.
 *   vsock_bench_guest sink PORT        accept one connection, read to EOF,
 *                                      close, print the byte count
 *   vsock_bench_guest send PORT BYTES  connect to the host (CID 2) on PORT,
 *                                      write BYTES zero bytes, shut down the
 *                                      write side, wait for the host's EOF
 *   vsock_bench_guest stdout BYTES     write BYTES zero bytes to stdout, in
 *                                      the same pieces as `send`: the agent's
 *                                      stdout path with the raw run's writer */
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char buf[256 * 1024];

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  if (!strcmp(argv[1], "stdout")) {
    uint64_t bytes = strtoull(argv[2], 0, 10);
    for (uint64_t sent = 0; sent < bytes;) {
      size_t n = bytes - sent < sizeof buf ? (size_t)(bytes - sent) : sizeof buf;
      ssize_t w = write(1, buf, n);
      if (w <= 0) {
        perror("stdout write");
        return 4;
      }
      sent += (uint64_t)w;
    }
    return 0;
  }
  unsigned port = (unsigned)strtoul(argv[2], 0, 10);
  if (!strcmp(argv[1], "sink")) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 1)) {
      perror("vsock listen");
      return 3;
    }
    int c = accept(s, 0, 0);
    uint64_t total = 0;
    ssize_t r;
    while ((r = read(c, buf, sizeof buf)) > 0) total += (uint64_t)r;
    close(c);
    printf("%llu\n", (unsigned long long)total);
    return 0;
  }
  if (!strcmp(argv[1], "send") && argc > 3) {
    uint64_t bytes = strtoull(argv[3], 0, 10);
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (s < 0 || connect(s, (struct sockaddr*)&a, sizeof a)) {
      perror("vsock connect");
      return 3;
    }
    for (uint64_t sent = 0; sent < bytes;) {
      size_t n = bytes - sent < sizeof buf ? (size_t)(bytes - sent) : sizeof buf;
      ssize_t w = write(s, buf, n);
      if (w <= 0) {
        perror("vsock write");
        return 4;
      }
      sent += (uint64_t)w;
    }
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof buf) > 0) {
    }
    printf("%llu\n", (unsigned long long)bytes);
    return 0;
  }
  return 2;
}
