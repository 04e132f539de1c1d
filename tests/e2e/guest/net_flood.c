/* net_flood: a hostile guest's network traffic, for tests/e2e/net_test.cpp.
 * Static, so it runs in the bare initramfs.
 *
 *   net_flood udp ADDR PORT SECONDS   UDP datagrams to ADDR:PORT as fast as
 *                                     the socket takes them
 *   net_flood raw IFACE SECONDS       Ethernet frames of every shape through
 *                                     a packet socket: truncated, spoofed,
 *                                     VLAN-tagged, oversized headers, garbage
 *
 * Prints "sent N" (frames handed to the kernel) and exits 0. */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int flood_udp(const char *addr, int port, double seconds) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); return 1; }
  char payload[64] = "flood";
  unsigned long sent = 0;
  const double end = now() + seconds;
  while (now() < end) {
    for (int i = 0; i < 64; ++i) {
      if (sendto(fd, payload, sizeof payload, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) > 0) ++sent;
    }
  }
  printf("sent %lu\n", sent);
  return 0;
}

static int flood_raw(const char *iface, double seconds) {
  int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) { perror("socket(AF_PACKET)"); return 1; }
  struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(iface), .sll_halen = 6};
  if (ll.sll_ifindex == 0) { fprintf(stderr, "no interface %s\n", iface); return 1; }
  unsigned char frame[1514];
  unsigned long sent = 0;
  unsigned int seed = 1;
  const double end = now() + seconds;
  while (now() < end) {
    size_t len = 14 + (size_t)(rand_r(&seed) % 1500);
    for (size_t i = 0; i < len; ++i) frame[i] = (unsigned char)rand_r(&seed);
    switch (sent % 5) {
      case 0: frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45; break;         /* IPv4, random rest */
      case 1: frame[12] = 0x08; frame[13] = 0x06; break;                          /* ARP, random */
      case 2: frame[12] = 0x81; frame[13] = 0x00; break;                          /* VLAN */
      case 3: frame[12] = 0x86; frame[13] = 0xdd; break;                          /* IPv6 */
      default: len = 14 + (size_t)(rand_r(&seed) % 20); frame[12] = 0x08; frame[13] = 0x00; break; /* truncated */
    }
    if (sendto(fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&ll, sizeof ll) > 0) ++sent;
  }
  printf("sent %lu\n", sent);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "udp") == 0) return flood_udp(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc == 4 && strcmp(argv[1], "raw") == 0) return flood_raw(argv[2], atof(argv[3]));
  fprintf(stderr, "usage: net_flood udp ADDR PORT SECONDS | raw IFACE SECONDS\n");
  return 2;
}
