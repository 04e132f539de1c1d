/* tests/bench/blk_tool.c: the guest half of `make bench-blk`. A static
 * program (busybox has no fio) that measures a block device with O_DIRECT,
 * so the guest's page cache never answers for the device:
 *
 *   blk_tool seqwrite DEV MIB [BLOCK_KIB]   sequential writes, then fdatasync
 *   blk_tool seqread  DEV MIB [BLOCK_KIB]   sequential reads
 *   blk_tool randread DEV SECONDS           4 KiB reads at random aligned
 *                                           offsets, queue depth 1
 *
 * Each prints one line the host parses:
 *   BLK_RESULT test=NAME bytes=N ops=N seconds=S mib_s=X iops=Y
 * Times are CLOCK_MONOTONIC in the guest. Exit code 0, or 1 with a message
 * on stderr. Built by tests/bench/blk with `gcc -static -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char* what, const char* dev) {
  fprintf(stderr, "blk_tool: %s %s: %s\n", what, dev, strerror(errno));
  return 1;
}

static void report(const char* test, uint64_t bytes, uint64_t ops, double seconds) {
  printf("BLK_RESULT test=%s bytes=%llu ops=%llu seconds=%.6f mib_s=%.2f iops=%.1f\n", test,
         (unsigned long long)bytes, (unsigned long long)ops, seconds,
         (double)bytes / 1048576.0 / seconds, (double)ops / seconds);
  fflush(stdout);
}

/* xorshift64*: cheap, and the same sequence in every run. */
static uint64_t next_random(uint64_t* s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static int sequential(const char* dev, int write, uint64_t mib, uint64_t block_kib) {
  const size_t block = (size_t)block_kib << 10;
  int fd = open(dev, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
  if (fd < 0) return fail("open", dev);
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return fail("BLKGETSIZE64", dev);
  if (mib << 20 > size) {
    fprintf(stderr, "blk_tool: %s holds %llu MiB, fewer than %llu\n", dev,
            (unsigned long long)(size >> 20), (unsigned long long)mib);
    return 1;
  }
  void* buf = NULL;
  if (posix_memalign(&buf, 4096, block) != 0) return fail("posix_memalign for", dev);
  /* Non-zero data: nothing on the way may treat it as a hole. */
  memset(buf, 0xa5, block);
  const uint64_t total = mib << 20;
  uint64_t done = 0, ops = 0;
  const double start = now_s();
  while (done < total) {
    const size_t n = total - done < block ? (size_t)(total - done) : block;
    const ssize_t r = write ? pwrite(fd, buf, n, (off_t)done) : pread(fd, buf, n, (off_t)done);
    if (r <= 0) return fail(write ? "pwrite" : "pread", dev);
    done += (uint64_t)r;
    ops++;
  }
  if (write && fdatasync(fd) != 0) return fail("fdatasync", dev);
  report(write ? "seqwrite" : "seqread", done, ops, now_s() - start);
  close(fd);
  free(buf);
  return 0;
}

static int random_read(const char* dev, double seconds) {
  int fd = open(dev, O_RDONLY | O_DIRECT);
  if (fd < 0) return fail("open", dev);
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return fail("BLKGETSIZE64", dev);
  const uint64_t blocks = size / 4096;
  if (blocks == 0) {
    fprintf(stderr, "blk_tool: %s is smaller than 4 KiB\n", dev);
    return 1;
  }
  void* buf = NULL;
  if (posix_memalign(&buf, 4096, 4096) != 0) return fail("posix_memalign for", dev);
  uint64_t state = 0x9e3779b97f4a7c15ULL, ops = 0;
  const double start = now_s();
  double elapsed = 0;
  do {
    /* The clock is read every 64 reads: a clock read can be a VM exit. */
    for (int i = 0; i < 64; i++) {
      const off_t off = (off_t)((next_random(&state) % blocks) * 4096);
      if (pread(fd, buf, 4096, off) != 4096) return fail("pread", dev);
      ops++;
    }
    elapsed = now_s() - start;
  } while (elapsed < seconds);
  report("randread", ops * 4096, ops, elapsed);
  close(fd);
  free(buf);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 4 && (strcmp(argv[1], "seqread") == 0 || strcmp(argv[1], "seqwrite") == 0)) {
    const uint64_t mib = strtoull(argv[3], NULL, 10);
    const uint64_t block_kib = argc >= 5 ? strtoull(argv[4], NULL, 10) : 1024;
    if (mib == 0 || block_kib == 0 || block_kib % 4 != 0) {
      fprintf(stderr, "blk_tool: MIB must be > 0 and BLOCK_KIB a multiple of 4\n");
      return 1;
    }
    return sequential(argv[2], argv[1][3] == 'w', mib, block_kib);
  }
  if (argc == 4 && strcmp(argv[1], "randread") == 0) {
    const double seconds = strtod(argv[3], NULL);
    if (!(seconds > 0)) {
      fprintf(stderr, "blk_tool: SECONDS must be > 0\n");
      return 1;
    }
    return random_read(argv[2], seconds);
  }
  fprintf(stderr,
          "usage: blk_tool seqwrite|seqread DEV MIB [BLOCK_KIB]\n"
          "       blk_tool randread DEV SECONDS\n");
  return 2;
}
