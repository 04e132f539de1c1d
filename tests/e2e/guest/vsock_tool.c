/* vsock_tool: a tiny static guest program for the end-to-end tests of the
 * virtio-vsock device.
 *   vsock_tool echo PORT N        accept N connections on PORT, echo each
 *                                 until EOF, then close it
 *   vsock_tool send PORT BYTES    connect to the host (CID 2) on PORT, send
 *                                 BYTES pseudo-random bytes, shut down the
 *                                 write side, print what came back's length
 *   vsock_tool sink PORT          accept one connection, read to EOF and
 *                                 print the byte count and a checksum */
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on(unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 16)) {
    perror("vsock listen");
    exit(2);
  }
  return s;
}

static uint64_t fnv(uint64_t h, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int main(int argc, char** argv) {
  static unsigned char buf[65536];
  if (argc < 3) return 2;
  unsigned port = (unsigned)strtoul(argv[2], 0, 10);
  if (!strcmp(argv[1], "echo")) {
    int s = listen_on(port);
    int n = argc > 3 ? atoi(argv[3]) : 1;
    printf("vsock_tool: listening on %u\n", port);
    fflush(stdout);
    for (int i = 0; i < n; i++) {
      int c = accept(s, 0, 0);
      ssize_t r;
      while ((r = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < r;) {
          ssize_t w = write(c, buf + off, r - off);
          if (w <= 0) break;
          off += w;
        }
      }
      close(c);
    }
    return 0;
  }
  if (!strcmp(argv[1], "sink")) {
    int s = listen_on(port);
    printf("vsock_tool: listening on %u\n", port);
    fflush(stdout);
    int c = accept(s, 0, 0);
    uint64_t h = 1469598103934665603ull, total = 0;
    ssize_t r;
    while ((r = read(c, buf, sizeof buf)) > 0) {
      h = fnv(h, buf, r);
      total += r;
    }
    printf("vsock_tool: received %llu bytes fnv %016llx\n", (unsigned long long)total, (unsigned long long)h);
    return 0;
  }
  if (!strcmp(argv[1], "send")) {
    uint64_t bytes = argc > 3 ? strtoull(argv[3], 0, 10) : 0;
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (connect(s, (struct sockaddr*)&a, sizeof a)) {
      perror("vsock connect");
      return 3;
    }
    uint64_t h = 1469598103934665603ull, x = 88172645463325252ull;
    for (uint64_t sent = 0; sent < bytes;) {
      size_t n = bytes - sent < sizeof buf ? bytes - sent : sizeof buf;
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = (unsigned char)x;
      }
      h = fnv(h, buf, n);
      for (size_t off = 0; off < n;) {
        ssize_t w = write(s, buf + off, n - off);
        if (w <= 0) { perror("write"); return 4; }
        off += w;
      }
      sent += n;
    }
    shutdown(s, SHUT_WR);
    uint64_t back = 0;
    ssize_t r;
    while ((r = read(s, buf, sizeof buf)) > 0) back += r;
    printf("vsock_tool: sent %llu bytes fnv %016llx, got %llu back\n", (unsigned long long)bytes,
           (unsigned long long)h, (unsigned long long)back);
    return 0;
  }
  return 2;
}
