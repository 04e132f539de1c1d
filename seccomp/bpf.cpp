// Compiles an allow-list with libseccomp 2.5: one libseccomp rule per
// combination of a rule's argument values, exported with
// seccomp_export_bpf (the only export 2.5.4 has: into a memfd, read back).
#include "seccomp/bpf.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

#include <fmt/format.h>
#include <seccomp.h>

#include "runtime/common/unique_fd.h"
#include "seccomp/allow_list.h"

namespace husk::seccomp {

namespace {

// RAII for a libseccomp context (scmp_filter_ctx is a void*).
struct ContextRelease {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextRelease>;

// libseccomp returns 0 or -errno.
Result<void> check(int rc, const std::string& what) {
  if (rc < 0) return fail_errno("libseccomp: " + what, -rc);
  return {};
}

scmp_arg_cmp to_cmp(const ArgCheck& check, uint64_t value) {
  if (check.width32) {
    // The kernel reads the argument as 32 bits: the upper half of the
    // register is ignored (a sign-extended int matches too).
    return scmp_arg_cmp{check.index, SCMP_CMP_MASKED_EQ, check.mask & 0xffffffffu, value & 0xffffffffu};
  }
  if (check.mask == ArgCheck::kWholeArgument) return scmp_arg_cmp{check.index, SCMP_CMP_EQ, value, 0};
  return scmp_arg_cmp{check.index, SCMP_CMP_MASKED_EQ, check.mask, value};
}

// Adds one libseccomp rule per combination of the checks' values (each
// check is on its own argument, so a combination is one AND).
Result<void> add_combinations(scmp_filter_ctx ctx, uint32_t action, const Rule& rule, size_t next,
                              std::vector<scmp_arg_cmp>& cmps) {
  if (next == rule.checks.size()) {
    return check(seccomp_rule_add_exact_array(ctx, action, rule.nr, static_cast<unsigned>(cmps.size()), cmps.data()),
                 fmt::format("rule for {} ({})", rule.name, describe_checks(rule)));
  }
  const ArgCheck& c = rule.checks[next];
  for (const Value& v : c.values) {
    cmps.push_back(to_cmp(c, v.value));
    HUSK_TRY(add_combinations(ctx, action, rule, next + 1, cmps));
    cmps.pop_back();
  }
  return {};
}

Result<std::vector<sock_filter>> export_program(scmp_filter_ctx ctx) {
  UniqueFd fd(::memfd_create("husk-seccomp", MFD_CLOEXEC));
  if (!fd) return fail_errno("memfd_create for the seccomp program");
  HUSK_TRY(check(seccomp_export_bpf(ctx, fd.get()), "seccomp_export_bpf"));
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return fail_errno("size of the seccomp program");
  if (size == 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0 ||
      size / static_cast<off_t>(sizeof(sock_filter)) > BPF_MAXINSNS) {
    return fail(fmt::format("libseccomp exported a program of {} bytes", size));
  }
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  const ssize_t n = ::pread(fd.get(), program.data(), static_cast<size_t>(size), 0);
  if (n != size) return fail_errno("read back the seccomp program");
  return program;
}

}  // namespace

Result<std::vector<sock_filter>> compile_filter(ThreadClass c, Mode m) {
  if (m == Mode::kOff) return fail("seccomp mode off has no filter");
  if (seccomp_arch_native() != SCMP_ARCH_X86_64) return fail("husk's seccomp filters are for x86_64 only");
  const uint32_t default_action = m == Mode::kEnforce ? SCMP_ACT_TRAP : SCMP_ACT_LOG;
  Context ctx(seccomp_init(default_action));
  if (!ctx) return fail(fmt::format("libseccomp: seccomp_init for mode {} failed", mode_name(m)));
  // Another architecture's (or x32's) numbers mean other calls: killed.
  HUSK_TRY(check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action"));
  // enter() sets no_new_privs itself; the program is installed by hand.
  HUSK_TRY(check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0), "no_new_privs attribute"));
  // A binary tree of system call numbers instead of a linear scan.
  HUSK_TRY(check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimization level"));

  const AllowList& list = allow_list(c);
  for (const Rule& rule : list.rules) {
    const uint32_t action =
        rule.action == Action::kAllow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(static_cast<uint32_t>(rule.errno_value));
    std::vector<scmp_arg_cmp> cmps;
    HUSK_TRY(add_combinations(ctx.get(), action, rule, 0, cmps));
  }
  HUSK_TRY_ASSIGN(std::vector<sock_filter> program, export_program(ctx.get()));
  // libseccomp's trap carries no data: mark this class's traps.
  for (sock_filter& insn : program) {
    if (insn.code == (BPF_RET | BPF_K) && insn.k == SECCOMP_RET_TRAP) insn.k |= trap_data(c);
  }
  return program;
}

}  // namespace husk::seccomp
