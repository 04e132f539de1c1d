# husk: the developer entry points. CMake does the building; this file wraps
# it and the guest/test-host scripts so that a fresh machine needs only
# `make demo` and `make test`.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
WERROR     ?= $(if $(CI),ON,OFF)
HUSK       := $(BUILD)/bin/husk
GUEST      := $(BUILD)/guest

# Every Debian package husk needs to build, test and run its guest.
DEB_PACKAGES := build-essential cmake ninja-build pkg-config git \
  libseccomp-dev libcli11-dev libtomlplusplus-dev catch2 libexpected-dev \
  libspdlog-dev libfmt-dev nlohmann-json3-dev nettle-dev python3-jsonschema \
  qemu-system-x86 busybox-static linux-source-6.1 flex bison libelf-dev bc \
  cpio xz-utils zstd kmod e2fsprogs python3 clang libclang-rt-14-dev \
  debootstrap fakeroot libcpp-httplib-dev curl passt iproute2 \
  containerd runc podman conmon
DEPS_STAMP := $(BUILD)/.deps-$(shell echo $(DEB_PACKAGES) | md5sum | cut -c1-12)

.PHONY: all deps build guest test test-unit test-kvm test-e2e test-asan demo \
        bench-boot clean

all: build

# Installs the Debian packages (once per package list; safe to run again).
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $(DEB_PACKAGES)
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/build.ninja: CMakeLists.txt | $(DEPS_STAMP)
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUSK_WERROR=$(WERROR)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

# The guest kernel (cached by config hash) and the initramfs.
guest: build
	rootfs/kernel/build.sh $(GUEST)
	rootfs/initramfs/build.sh $(GUEST)/initramfs.cpio --agent $(BUILD)/bin/husk-agent

test: build guest
	ctest --test-dir $(BUILD) --output-on-failure
	$(MAKE) fuzz-smoke

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit

test-kvm: build
	ctest --test-dir $(BUILD) --output-on-failure -L kvm

test-e2e: build guest
	ctest --test-dir $(BUILD) --output-on-failure -L e2e

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: | $(DEPS_STAMP)
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHUSK_SANITIZE=ON -DHUSK_WERROR=$(WERROR)
	ninja -C $(BUILD_ASAN) -j $(JOBS) husk-unit-tests
	ctest --test-dir $(BUILD_ASAN) --output-on-failure -L unit

demo: build guest
	tests/e2e/demo

bench-boot: build guest
	HUSK_BUILD=$(BUILD) tests/bench/boot

# husk's own start on this machine's /dev/kvm, CPU and wall to its first
# KVM_RUN, against the floor (tests/bench/start_floor.c: only what any VMM
# must do to start this kernel) in the same run, START_RUNS (30) rounds
# interleaved; prints the floor's split by step (tests/bench/start-ab);
# writes $(BUILD)/bench/start-ab.json.
START_RUNS ?= 30
.PHONY: bench-start
bench-start: build guest
	HUSK_BUILD=$(BUILD) tests/bench/start-ab --runs $(START_RUNS) --floor $(BUILD)/bin/husk-start-floor \
	  $(BUILD)/bin/husk

# VM creations per second: RATE_VMS (10) VMs back to back, then RATE_LEVELS
# (1,2) at a time, to agent ready: husk boot and QEMU microvm to the guest's
# marker, `husk exec -- true` end to end (tests/bench/rate); writes
# $(BUILD)/bench/rate.json.
.PHONY: bench-rate
bench-rate: build guest
	HUSK_BUILD=$(BUILD) tests/bench/rate

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

# The libFuzzer targets (tests/fuzz/README.md): every parser of guest or
# client bytes, built with clang, ASan and UBSan into $(BUILD_FUZZ) (one
# library of the runtime sources they share, then one small binary each).
#   make fuzz          each target for FUZZ_SECONDS (60) from its committed
#                      seeds; fails on any crash, leak, hang or broken
#                      invariant and leaves the input in
#                      $(BUILD_FUZZ)/fuzz/crashes/TARGET/
#   make fuzz-smoke    the same for FUZZ_SMOKE_SECONDS (15) each: what
#                      `make test` (and so CI) runs
#   make fuzz-regress  every target over its committed corpus once (CTest,
#                      label fuzz)
# FUZZ_TARGETS picks some (names as in tests/fuzz/*_fuzz.cpp).
BUILD_FUZZ         ?= build-fuzz
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS       ?=
.PHONY: fuzz fuzz-build fuzz-smoke fuzz-regress
fuzz-build: | $(DEPS_STAMP)
	CC=clang CXX=clang++ cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DHUSK_FUZZ=ON -DHUSK_WERROR=$(WERROR)
	ninja -C $(BUILD_FUZZ) -j $(JOBS) husk-fuzz

fuzz: fuzz-build
	FUZZ_SMOKE_SECONDS=$(FUZZ_SMOKE_SECONDS) tests/fuzz/run $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	tests/fuzz/run $(BUILD_FUZZ) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	ctest --test-dir $(BUILD_FUZZ) --output-on-failure -L fuzz

# A Debian 12 userland (minbase + python3, gcc, libc6-dev) as an ext4 image,
# with the agent at /sbin/husk-agent: build/guest/debian.ext4. debootstrap
# from this machine's apt mirror, cached by a hash of the script and package
# list; the first build takes minutes, so it is not part of `make test`.
# Boot it: husk exec --disk build/guest/debian.ext4,ro --cmdline "... husk.root=/dev/vda" -- CMD
.PHONY: guest-rootfs-debian
guest-rootfs-debian: build
	rootfs/disk/debian.sh $(GUEST)/debian.ext4 --agent $(BUILD)/bin/husk-agent

# virtio-blk throughput and IOPS, husk against QEMU microvm side by side;
# writes build/bench/blk.json.
.PHONY: bench-blk
bench-blk: build guest
	tests/bench/blk

# Exec round trip and vsock throughput, husk against QEMU + vhost-vsock;
# writes build/bench/vsock.json.
.PHONY: bench-vsock
bench-vsock: build guest
	tests/bench/vsock

# What a `husk run` job costs: per-case times of a 100-case judge job in one
# VM beside the same 100 processes started directly (the floor), the end to
# end time of examples/hello.toml (BENCH_RUNS), and the CI example when
# build/guest/debian.ext4 exists (BENCH_CI=1 builds it first); writes
# build/bench/run.json.
.PHONY: bench-run
bench-run: build guest
	HUSK_BUILD=$(BUILD) tests/bench/run

# Cold boot against restore from a VM snapshot, side by side in one session:
# `husk run` booted against `husk run --warm` (agent ready, first exec
# result, wall, host CPU), restore time from 128 MiB to 2 GiB of guest
# memory, and `husk serve` request latency (p50/p99) at 1 and 4 clients,
# restored and booted VMs; a part this build cannot run is recorded as
# skipped. BENCH_RUNS, BENCH_SWEEP, BENCH_SERVE_*; writes build/bench/warm.json.
.PHONY: bench-warm
bench-warm: build guest
	HUSK_BUILD=$(BUILD) tests/bench/warm

# TCP from the guest to a server on the host, side by side in one session:
# husk with its passt and tap backends against QEMU microvm with the same
# backends (connect time median/p90, one-byte round trip, throughput both
# ways; tests/bench/net/README.md); a cell this build cannot run is recorded
# as skipped. BENCH_RUNS, BENCH_NET_*; writes build/bench/net.json.
.PHONY: bench-net
bench-net: build guest
	HUSK_BUILD=$(BUILD) tests/bench/net/run

# `ctr run --rm` of a trivial container with runc, runsc (gVisor) and husk-oci
# side by side in one containerd in one test host: wall time median/min/max and
# the runtime's resident memory (tests/bench/oci/README.md). runsc is only for
# this benchmark, so it is installed here, not by `make deps`.
# BENCH_RUNS (10), BENCH_OCI_RUNTIMES, BENCH_OCI_RUNSC_FLAGS; writes
# build/bench/oci.json.
BENCH_OCI_PACKAGES := runsc
.PHONY: bench-oci
bench-oci: build guest
	@if ! command -v runsc >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $(BENCH_OCI_PACKAGES); fi
	HUSK_BUILD=$(BUILD) tests/bench/oci/run

# The e2e tier's reliability check (not part of `make test`): many 1- and
# 2-vCPU boots and the heaviest e2e workloads in one test host, with a report
# of every failure and the test host's kernel log (tests/testhost/README.md).
# STRESS_ROUNDS, STRESS_VMM=husk|qemu|both, STRESS_LOAD, HUSK_TESTHOST_*.
.PHONY: testhost-stress
testhost-stress: build guest
	tests/testhost/stress

# The soak test (not part of `make test` or CI): SOAK_RUNS (200) sequential
# `husk run tests/bench/soak.toml`, then SOAK_PARALLEL (8) at once; each
# run's descriptors, threads and RSS, and the machine's temporary files,
# processes, mounts and sockets, at the start and at the end, which must be
# equal; writes $(BUILD)/bench/soak.json and prints a table.
.PHONY: soak
soak: build guest
	HUSK_BUILD=$(BUILD) tests/bench/soak

# The kvm and e2e tiers once under ThreadSanitizer (not part of `make test`):
# husk and the test programs from $(BUILD_TSAN), the guest (kernel cached,
# initramfs with the normal build's static agent) beside them. A race report
# fails the run (TSAN_OPTIONS halt_on_error); reports go to $(BUILD_TSAN)/tsan.*.
BUILD_TSAN ?= build-tsan
TSAN_RUN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1 log_path=$(abspath $(BUILD_TSAN))/tsan
.PHONY: tsan
tsan: build
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUSK_TSAN=ON
	ninja -C $(BUILD_TSAN) -j $(JOBS) husk husk-kvm-tests husk-e2e-tests
	rootfs/kernel/build.sh $(BUILD_TSAN)/guest
	rootfs/initramfs/build.sh $(BUILD_TSAN)/guest/initramfs.cpio --agent $(BUILD)/bin/husk-agent
	rm -f $(BUILD_TSAN)/tsan.*
	TSAN_OPTIONS="$(TSAN_RUN_OPTIONS)" $(BUILD_TSAN)/bin/husk-kvm-tests
	TSAN_OPTIONS="$(TSAN_RUN_OPTIONS)" tests/e2e/launch $(BUILD_TSAN)/bin/husk $(BUILD_TSAN)/bin/husk-e2e-tests $(TSAN_E2E_FILTER)
	@if ls $(BUILD_TSAN)/tsan.* >/dev/null 2>&1; then echo "ThreadSanitizer reports:"; cat $(BUILD_TSAN)/tsan.*; exit 1; fi
