// The jail of an unprivileged husk (issue 12, item 4: "without root it
// works where the host allows unprivileged user namespaces and otherwise
// says exactly what is missing"): a child of the test drops to uid 65534
// and then does what husk would: check(), fork_into_jail, drop_privileges.
// Where cgroup v2 exists the test first delegates a cgroup to that uid (as
// systemd's Delegate=yes does) and the whole jail runs; elsewhere check()
// must name the cgroup as what is missing and the jail runs without it.
#include <arpa/inet.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <catch2/catch.hpp>

#include "tests/kvm/jail/jail_harness.h"

using namespace husk;
using namespace husk::test;

namespace {

constexpr uid_t kUser = 65534;

uint64_t bounding_set() {
  uint64_t bounding = 0;
  for (int cap = 0; cap < 64; ++cap) {
    const int in = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (in < 0) break;
    if (in == 1) bounding |= uint64_t{1} << cap;
  }
  return bounding;
}

uint64_t effective_set() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return ~0ull;
  return (uint64_t{data[1].effective | data[1].permitted} << 32) | data[0].effective | data[0].permitted;
}

void jailed_body(const Reporter& r, const jail::JailSpec& spec) {
  r.put("pid", ::getpid());
  r.put("uid_inside", ::geteuid());
  r.put_errno("open_passwd", ::open("/etc/passwd", O_RDONLY | O_CLOEXEC));
  {
    UniqueFd bound(::open("/bound.txt", O_RDONLY | O_CLOEXEC));
    char buf[128] = {};
    r.put("bound_text", bound && ::read(bound.get(), buf, sizeof(buf) - 1) >= 0 ? buf : errno_name(errno));
  }
  r.put_errno("bound_write_open", ::open("/bound.txt", O_WRONLY | O_CLOEXEC));
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  r.put("hostname", host);
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(22);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  r.put_errno("inet_connect", s ? ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) : -1);
  auto dropped = jail::drop_privileges(spec);
  r.put("drop", dropped ? "ok" : dropped.error().message);
  r.put("uid", ::getuid());
  r.put("caps", static_cast<long long>(effective_set()));
  r.put("cap_bnd", static_cast<long long>(bounding_set()));
  r.put("no_new_privs", ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  r.put_errno("mount_tmpfs", ::mount("x", "/", "tmpfs", 0, nullptr));
  r.put_errno("setuid_0", ::setuid(0));
  r.put("done", "1");
}

// A cgroup delegated to kUser as systemd would (the folder and its
// cgroup.procs, cgroup.subtree_control and cgroup.threads are the user's),
// removed with what is left in it at the end.
struct DelegatedCgroup {
  explicit DelegatedCgroup(bool available) {
    if (!available) return;
    const std::string root = jail::cgroup::kMount;
    std::ofstream(root + "/cgroup.subtree_control") << "+memory +cpu +pids";
    path = root + "/husk-test-delegated-" + std::to_string(::getpid());
    if (::mkdir(path.c_str(), 0755) != 0) return;
    for (const char* f : {"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"}) {
      ok = (ok || *f == '\0') && ::chown((path + f).c_str(), kUser, kUser) == 0;
    }
  }
  ~DelegatedCgroup() {
    if (path.empty()) return;
    ::rmdir((path + "/" + jail::cgroup::kSelfLeaf).c_str());
    ::rmdir(path.c_str());
  }
  DelegatedCgroup(const DelegatedCgroup&) = delete;
  DelegatedCgroup& operator=(const DelegatedCgroup&) = delete;
  std::string path;
  bool ok = false;
};

// The nested test host runs its commands chrooted into the host's root
// (tests/testhost/init), and the kernel refuses user namespaces to a
// chrooted process (unshare(2), EPERM). A root process can undo that for
// itself as switch_root would: in a mount namespace of its own, it moves
// its root folder's mount onto the real root ("/" of PID 1) and enters it.
// Elsewhere (root is PID 1's root, or PID 1's root cannot be seen) nothing
// is done. Returns "" or what failed.
std::string leave_chroot() {
  struct stat ours {};
  struct stat real {};
  if (::stat("/", &ours) != 0 || ::stat("/proc/1/root/", &real) != 0) return "";
  if (ours.st_dev == real.st_dev && ours.st_ino == real.st_ino) return "";
  if (::chdir("/proc/1/root/") != 0) return "chdir to PID 1's root: " + errno_name(errno);
  // unshare moves the cwd to its copy in the new namespace.
  if (::unshare(CLONE_NEWNS) != 0) return "unshare(CLONE_NEWNS): " + errno_name(errno);
  if (::mount(nullptr, ".", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return "make private: " + errno_name(errno);
  if (::chroot(".") != 0) return "chroot to PID 1's root: " + errno_name(errno);
  // Which folder of the real root was ours.
  std::string ours_there;
  for (const auto& e : std::filesystem::directory_iterator("/")) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0 && st.st_dev == ours.st_dev && st.st_ino == ours.st_ino) {
      ours_there = e.path();
    }
  }
  if (ours_there.empty()) return "the chroot folder is not a folder of PID 1's root";
  if (::chdir(ours_there.c_str()) != 0) return "chdir " + ours_there + ": " + errno_name(errno);
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return "move " + ours_there + " to /: " + errno_name(errno);
  if (::chroot(".") != 0 || ::chdir("/") != 0) return "chroot: " + errno_name(errno);
  return "";
}

}  // namespace

TEST_CASE("an unprivileged husk jails through a user namespace, or says what is missing", "[jail]") {
  REQUIRE(::geteuid() == 0);
  TempDir sources;  // readable by kUser
  const std::string bound = sources.file("bound.txt");
  std::ofstream(bound) << kBoundText;
  REQUIRE(::chmod(sources.path().c_str(), 0755) == 0);
  REQUIRE(::chown(bound.c_str(), kUser, kUser) == 0);  // the user's own, writable but for the bind

  const CgroupVariant variant = cgroup_variant();
  DelegatedCgroup delegated(variant.available);
  if (variant.available) REQUIRE(delegated.ok);

  ReportPipe pipe;
  const pid_t husk = ::fork();
  REQUIRE(husk >= 0);
  if (husk == 0) {
    // The unprivileged husk: into the delegated cgroup while still root,
    // then uid and gid kUser with no groups.
    const Reporter r(pipe.write_end.get());
    if (!delegated.path.empty()) std::ofstream(delegated.path + "/cgroup.procs") << "0";
    if (const std::string left = leave_chroot(); !left.empty()) {
      r.put("husk_error", "leaving the test host's chroot: " + left);
      ::_exit(70);
    }
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kUser, kUser, kUser) != 0 ||
        ::setresuid(kUser, kUser, kUser) != 0) {
      r.put("husk_error", "cannot become uid 65534: " + errno_name(errno));
      ::_exit(70);
    }
    char root_template[] = "/tmp/husk-jail-userns-XXXXXX";
    if (::mkdtemp(root_template) == nullptr) {
      r.put("husk_error", "mkdtemp: " + errno_name(errno));
      ::_exit(70);
    }
    r.put("root", root_template);
    jail::JailSpec spec;
    spec.root = root_template;
    spec.binds = {{bound, "/bound.txt", true}};
    spec.cgroup = {256ull << 20, 32, 100};
    auto checked = jail::check(spec);
    r.put("check", checked ? "ok" : checked.error().message);
    r.put("user_namespace", spec.user_namespace ? "1" : "0");
    r.put("spec_uid", spec.uid);
    const bool cgroup_only = !checked && checked.error().message.find("namespace") == std::string::npos;
    if (!checked && !cgroup_only) ::_exit(0);  // the message is the result
    const pid_t me = ::getpid();
    auto forked = jail::fork_jailed(spec, checked ? jail::WithCgroup::kYes : jail::WithCgroup::kNo);
    if (!forked) {
      r.put(::getpid() == me ? "husk_error" : "setup_error", forked.error().message);
      ::_exit(70);
    }
    if (forked->jailed) {
      jailed_body(r, spec);
      ::_exit(0);
    }
    // The first child joins its cgroup soon after the fork.
    const std::string own = cgroup_of(::getpid());
    std::string joined = cgroup_of(forked->pid);
    for (int i = 0; checked && i < 1000 && joined == own; ++i, ::usleep(2000)) joined = cgroup_of(forked->pid);
    r.put("cgroup", joined);
    const int status = wait_for_exit(forked->pid, 30);
    jail::remove_cgroup(forked->pid);
    r.put("jail_status", describe_status(status));
    ::_exit(0);
  }
  pipe.write_end.reset();
  const Report report = read_report(pipe.read_end.get(), 60);
  const int status = wait_for_exit(husk, 30);
  if (report.get("root") != "<missing>") {
    std::error_code ec;
    std::filesystem::remove_all(report.get("root"), ec);
  }
  INFO("report: " << [&] {
    std::string all;
    for (const auto& [k, v] : report.values) all += k + "=" + v + "; ";
    return all;
  }());
  CHECK(describe_status(status) == "exit 0");
  CHECK(report.get("husk_error") == "<missing>");
  CHECK(report.get("setup_error") == "<missing>");
  CHECK(report.get("user_namespace") == "1");
  CHECK(report.get("spec_uid") == std::to_string(kUser));

  const std::string check = report.get("check");
  if (check != "ok") {
    CHECK_THAT(check, Catch::StartsWith("the jail cannot run here: "));
    CHECK_THAT(check, Catch::EndsWith(". Fix that, or run husk with --no-jail"));
    if (check.find("namespace") != std::string::npos) {
      WARN("variant: this host refuses unprivileged user namespaces: " << check);
      return;
    }
    REQUIRE_FALSE(variant.available);
    CHECK_THAT(check, Catch::Contains(variant.problem));
    WARN("variant: user namespaces work, cgroup v2 missing (" << variant.problem
                                                               << "): the unprivileged jail without its cgroup");
  } else {
    REQUIRE(variant.available);
    WARN("variant: the whole unprivileged jail, in a cgroup delegated to uid 65534");
    CHECK_THAT(report.get("cgroup"),
               Catch::StartsWith(delegated.path.substr(std::string(jail::cgroup::kMount).size()) + "/" +
                                 std::to_string(husk) + "-"));
  }
  CHECK(report.get("jail_status") == "exit 0");
  REQUIRE(report.get("done") == "1");
  CHECK(report.get("pid") == "1");
  CHECK(report.get("uid_inside") == std::to_string(kUser));
  CHECK(report.get("open_passwd") == "ENOENT");
  CHECK(report.get("bound_text") == kBoundText);
  CHECK(report.get("bound_write_open") == "EROFS");
  CHECK(report.get("hostname") == "husk");
  CHECK(report.get("inet_connect") == "ENETUNREACH");
  CHECK(report.get("drop") == "ok");
  CHECK(report.get("uid") == std::to_string(kUser));
  CHECK(report.get("caps") == "0");
  CHECK(report.get("cap_bnd") == "0");
  CHECK(report.get("no_new_privs") == "1");
  CHECK(report.get("mount_tmpfs") == "EPERM");
  CHECK(report.get("setuid_0") == "EINVAL");  // uid 0 does not exist in the user namespace
  if (!delegated.path.empty()) {
    // Only husk's own leaf is left: the jail's cgroup went with remove_cgroup.
    std::set<std::string> children;
    for (const auto& e : std::filesystem::directory_iterator(delegated.path)) {
      if (e.is_directory()) children.insert(e.path().filename());
    }
    CHECK(children == std::set<std::string>{jail::cgroup::kSelfLeaf});
  }
}
