// husk-start-floor: the least any VMM must do on this machine, from exec to
// its first KVM_RUN, to start a Linux guest from a vmlinux. A benchmark
// peer for husk's own start (tests/bench/start-ab --floor, `make
// bench-start`): no threads, no seccomp, no jail, no devices, no checks
// beyond what keeps it from crashing, one vCPU, nothing lazy, no cache.
//
// It does what a guest's first instruction needs, the way husk does it:
//   - guest RAM: one private anonymous mapping, 2 MiB aligned, advised for
//     transparent huge pages;
//   - the kernel: each PT_LOAD's data extents (SEEK_DATA; the holes are
//     not read) read with pread to its physical address, after 4 KiB pages
//     are asked for (MADV_NOHUGEPAGE) where a 2 MiB page would get less
//     than 64 KiB of them: husk's rule (GuestMemory::fit_page_sizes);
//   - the boot structures in the low 2 MiB: the zero page with its memory
//     map and command line, an identity map of 4 GiB in 2 MiB pages, a GDT,
//     an MP table's worth of bytes under 640 KiB. The initrd is not copied:
//     husk copies it beside the guest too (docs/boot-timeline.md);
//   - KVM: the VM with its TSS and identity map addresses, in-kernel
//     irqchip and PIT, one memory slot, one vCPU with KVM's supported CPUID
//     as is, and 64-bit sregs and regs.
// It stamps the process's CPU clock (exec included, as husk's timeline
// does) after each step and just before KVM_RUN, runs the vCPU once under
// a one-second alarm, and prints one JSON line.
//
// Usage: husk-start-floor VMLINUX [MEMORY_MIB]
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define HUGE (2 * MIB)
#define FEW_BYTES (64 * 1024)
#define ZERO_PAGE 0x7000
#define PML4 0x9000
#define CMDLINE 0x20000
#define GDT 0x500
#define EBDA 0x9fc00
#define MAX_EXTENTS 4096

static uint8_t* ram;
static uint64_t ram_size;

static void die(const char* what) {
  fprintf(stderr, "husk-start-floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int kvm_ioctl(int fd, unsigned long req, void* arg, const char* what) {
  int r = ioctl(fd, req, arg);
  if (r < 0) die(what);
  return r;
}

struct extent {
  uint64_t gpa, off, len;
};

// The kernel's PT_LOAD data extents; returns how many.
static size_t kernel_extents(int fd, struct extent* out, uint64_t* entry) {
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    errno = EINVAL;
    die("not an ELF kernel");
  }
  *entry = eh.e_entry;
  size_t n = 0;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (pread(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * eh.e_phentsize) != (ssize_t)sizeof ph) die("phdr");
    if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
    if (ph.p_paddr + ph.p_memsz > ram_size) {
      errno = ERANGE;
      die("segment outside RAM");
    }
    for (uint64_t at = ph.p_offset, end = ph.p_offset + ph.p_filesz; at < end && n < MAX_EXTENTS;) {
      off_t data = lseek(fd, (off_t)at, SEEK_DATA);
      if (data < 0 || (uint64_t)data >= end) break;
      off_t hole = lseek(fd, data, SEEK_HOLE);
      uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
      out[n++] = (struct extent){ph.p_paddr + ((uint64_t)data - ph.p_offset), (uint64_t)data, stop - (uint64_t)data};
      at = stop;
    }
  }
  return n;
}

// husk's rule: 4 KiB pages where a 2 MiB page would hold few written bytes.
static void fit_page_sizes(const struct extent* e, size_t n) {
  static uint64_t bytes[4096];
  memset(bytes, 0, sizeof bytes);
  for (size_t i = 0; i < n; ++i) {
    for (uint64_t a = e[i].gpa; a < e[i].gpa + e[i].len;) {
      uint64_t page_end = (a / HUGE + 1) * HUGE;
      uint64_t stop = page_end < e[i].gpa + e[i].len ? page_end : e[i].gpa + e[i].len;
      if (a / HUGE < 4096) bytes[a / HUGE] += stop - a;
      a = stop;
    }
  }
  for (uint64_t p = 0; p < 4096 && p * HUGE < ram_size; ++p) {
    if (bytes[p] != 0 && bytes[p] < FEW_BYTES) madvise(ram + p * HUGE, HUGE, MADV_NOHUGEPAGE);
  }
}

static void boot_structures(const char* cmdline) {
  // The zero page: a memory map (low RAM, then RAM from 1 MiB) and the
  // command line's address, as the 64-bit boot protocol reads them.
  uint8_t* zp = ram + ZERO_PAGE;
  struct {
    uint64_t addr, size;
    uint32_t type;
  } __attribute__((packed)) e820[2] = {{0, EBDA, 1}, {MIB, ram_size - MIB, 1}};
  memcpy(zp + 0x2d0, e820, sizeof e820);
  zp[0x1e8] = 2;                                            // e820_entries
  memcpy(zp + 0x202, "HdrS", 4);                            // header
  *(uint16_t*)(zp + 0x206) = 0x020f;                        // version
  zp[0x210] = 0xff;                                         // type_of_loader
  zp[0x211] = 0x01;                                         // loadflags: LOADED_HIGH
  *(uint32_t*)(zp + 0x228) = CMDLINE;                       // cmd_line_ptr
  *(uint32_t*)(zp + 0x238) = (uint32_t)strlen(cmdline);     // cmdline_size
  memcpy(ram + CMDLINE, cmdline, strlen(cmdline) + 1);
  // Identity map of 4 GiB: PML4 -> PDPT -> four page directories.
  uint64_t* pml4 = (uint64_t*)(ram + PML4);
  uint64_t* pdpt = (uint64_t*)(ram + PML4 + 0x1000);
  pml4[0] = (PML4 + 0x1000) | 3;
  for (uint64_t i = 0; i < 4; ++i) {
    pdpt[i] = (PML4 + 0x2000 + i * 0x1000) | 3;
    uint64_t* pd = (uint64_t*)(ram + PML4 + 0x2000 + i * 0x1000);
    for (uint64_t j = 0; j < 512; ++j) pd[j] = ((i * 512 + j) * HUGE) | 0x83;
  }
  // GDT: null, null, 64-bit code, data.
  const uint64_t gdt[4] = {0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
  memcpy(ram + GDT, gdt, sizeof gdt);
  // An MP table's bytes where husk writes them (a floating pointer and a
  // configuration table for one CPU, its buses and interrupts).
  memset(ram + EBDA, 0x5a, 400);
}

static void set_segment(struct kvm_segment* s, uint16_t sel, uint8_t type, int code) {
  *s = (struct kvm_segment){.base = 0, .limit = 0xfffff, .selector = sel, .type = type, .present = 1,
                            .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1};
}

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char** argv) {
  const double at_main = cpu_ms();
  const double wall_main = wall_ms();
  if (argc < 2) {
    fprintf(stderr, "usage: husk-start-floor VMLINUX [MEMORY_MIB]\n");
    return 2;
  }
  ram_size = (argc > 2 ? strtoull(argv[2], NULL, 10) : 256) * MIB;

  uint8_t* map = mmap(NULL, ram_size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
  if (map == MAP_FAILED) die("mmap guest RAM");
  ram = (uint8_t*)(((uintptr_t)map + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
  madvise(ram, ram_size, MADV_HUGEPAGE);
  const double at_memory = cpu_ms();

  int kfd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (kfd < 0) die(argv[1]);
  static struct extent ext[MAX_EXTENTS];
  uint64_t entry = 0;
  const size_t n = kernel_extents(kfd, ext, &entry);
  fit_page_sizes(ext, n);
  uint64_t copied = 0;
  for (size_t i = 0; i < n; ++i) {
    if (pread(kfd, ram + ext[i].gpa, ext[i].len, (off_t)ext[i].off) != (ssize_t)ext[i].len) die("read kernel");
    copied += ext[i].len;
  }
  close(kfd);
  const double at_kernel = cpu_ms();

  boot_structures("console=ttyS0 reboot=k panic=-1 quiet");
  const double at_boot = cpu_ms();

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = kvm_ioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
  kvm_ioctl(vm, KVM_SET_TSS_ADDR, (void*)0xfeffd000ul, "KVM_SET_TSS_ADDR");
  uint64_t identity = 0xfeffc000;
  kvm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity, "KVM_SET_IDENTITY_MAP_ADDR");
  kvm_ioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  kvm_ioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
  const double at_vm = cpu_ms();
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size,
                                               .userspace_addr = (uintptr_t)ram};
  kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  const double at_slot = cpu_ms();

  int vcpu = kvm_ioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
  int run_size = kvm_ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run* run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  const double at_vcpu = cpu_ms();
  struct {
    struct kvm_cpuid2 head;
    struct kvm_cpuid_entry2 entries[256];
  } cpuid = {.head.nent = 256};
  kvm_ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid, "KVM_GET_SUPPORTED_CPUID");
  const double at_supported = cpu_ms();
  kvm_ioctl(vcpu, KVM_SET_CPUID2, &cpuid, "KVM_SET_CPUID2");
  struct kvm_sregs sregs;
  kvm_ioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
  set_segment(&sregs.cs, 0x10, 0xb, 1);
  set_segment(&sregs.ds, 0x18, 0x3, 0);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  sregs.gdt.base = GDT;
  sregs.gdt.limit = 4 * 8 - 1;
  sregs.cr3 = PML4;
  sregs.cr4 = 1u << 5;                         // PAE
  sregs.cr0 = 1u | (1u << 31);                 // PE, PG
  sregs.efer = (1u << 8) | (1u << 10);         // LME, LMA
  kvm_ioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = entry & 0x7fffffffull, .rsi = ZERO_PAGE, .rflags = 2, .rsp = 0x8ff0};
  kvm_ioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
  const double at_run = cpu_ms();
  const double wall_run = wall_ms();

  struct sigaction sa = {.sa_handler = on_alarm};  // no SA_RESTART: KVM_RUN returns EINTR
  sigaction(SIGALRM, &sa, NULL);
  alarm(1);
  int r = ioctl(vcpu, KVM_RUN, 0);
  const int run_errno = r < 0 ? errno : 0;
  printf("{\"cpu_ms\": {\"main\": %.3f, \"memory\": %.3f, \"kernel_copied\": %.3f, \"boot_structures\": %.3f, "
         "\"vm\": %.3f, \"memory_slot\": %.3f, \"vcpu\": %.3f, \"supported_cpuid\": %.3f, \"first_kvm_run\": %.3f}, "
         "\"wall_ms\": %.3f, \"kernel_bytes_copied\": %llu, \"kernel_extents\": %zu, \"exit_reason\": %d, "
         "\"run_errno\": %d}\n",
         at_main, at_memory, at_kernel, at_boot, at_vm, at_slot, at_vcpu, at_supported, at_run, wall_run - wall_main,
         (unsigned long long)copied, n, r < 0 ? -1 : (int)run->exit_reason, run_errno);
  return 0;
}
