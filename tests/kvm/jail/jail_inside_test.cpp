// The jail from inside (issue 12, item 5): a jailed process sees only its
// folder, has no network and no view of host processes, can use /dev/kvm
// before the drop and fds opened before it after, and has no privilege
// left after drop_privileges; outside, nothing of the jail is left after it
// ends. Runs with the jail's cgroup where cgroup v2 is available and
// without it elsewhere (said in a WARN).
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <algorithm>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/kvm/jail/jail_harness.h"

using namespace husk;
using namespace husk::test;

namespace {

std::string list_root() {
  std::vector<std::string> names;
  if (DIR* d = ::opendir("/")) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  } else {
    return "opendir: " + errno_name(errno);
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// capget's three sets, and the bounding set from PR_CAPBSET_READ.
void report_capabilities(const Reporter& r) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) {
    r.put("capget", errno_name(errno));
    return;
  }
  const auto both = [&](uint32_t __user_cap_data_struct::*set) {
    return (uint64_t{data[1].*set} << 32) | data[0].*set;
  };
  r.put("cap_eff", static_cast<long long>(both(&__user_cap_data_struct::effective)));
  r.put("cap_prm", static_cast<long long>(both(&__user_cap_data_struct::permitted)));
  r.put("cap_inh", static_cast<long long>(both(&__user_cap_data_struct::inheritable)));
  uint64_t bounding = 0;
  for (int cap = 0; cap < 64; ++cap) {
    const int in = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (in < 0) break;
    if (in == 1) bounding |= uint64_t{1} << cap;
  }
  r.put("cap_bnd", static_cast<long long>(bounding));
}

// What the jailed process checks, as the VMM would live: open, drop, run.
void jailed_body(const Reporter& r, const jail::JailSpec& spec, pid_t host_pid, int tcp_port,
                 const std::string& host_file, ReportPipe& stop) {
  r.put("pid", ::getpid());
  // The parent closed its end of `stop`; once this process closes its own,
  // nobody holds one (the first child kept no copy): EOF.
  stop.write_end.reset();
  {
    struct pollfd p {stop.read_end.get(), POLLIN, 0};
    char byte = 0;
    r.put("stop_pipe", ::poll(&p, 1, 2000) == 1 && ::read(stop.read_end.get(), &byte, 1) == 0 ? "eof" : "open");
  }
  r.put_errno("kill_host_pid", ::kill(host_pid, 0));
  r.put_errno("proc_self", ::access("/proc/self", F_OK));
  r.put_errno("open_passwd", ::open("/etc/passwd", O_RDONLY | O_CLOEXEC));
  r.put_errno("open_host_file", ::open(host_file.c_str(), O_RDONLY | O_CLOEXEC));
  r.put("root_entries", list_root());
  {
    UniqueFd bound(::open("/bound.txt", O_RDONLY | O_CLOEXEC));
    r.put("bound_text", bound ? read_all(bound.get()) : "open: " + errno_name(errno));
  }
  r.put_errno("bound_write_open", ::open("/bound.txt", O_WRONLY | O_CLOEXEC));
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  r.put("hostname", host);

  // The network: a fresh namespace with only a loopback that is down.
  {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    r.put("inet_socket", s ? "0" : errno_name(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(tcp_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r.put_errno("inet_connect", s ? ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) : -1);
  }

  // Open (privileged), as the VMM does before the drop.
  UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  r.put("kvm_open", kvm ? "0" : errno_name(errno));
  r.put("kvm_api", kvm ? ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0) : -1);
  UniqueFd console(::open("/console.log", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  r.put("console_open", console ? "0" : errno_name(errno));
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/vsock.sock");
  r.put_errno("unix_bind", ::bind(sock.get(), reinterpret_cast<sockaddr*>(&un), sizeof(un)));

  // Drop.
  auto dropped = jail::drop_privileges(spec);
  r.put("drop", dropped ? "ok" : dropped.error().message);

  // Run: nothing privileged works any more.
  r.put("uid", ::getuid());
  r.put("euid", ::geteuid());
  r.put("gid", ::getgid());
  r.put("egid", ::getegid());
  report_capabilities(r);
  r.put_errno("mount_tmpfs", ::mount("x", "/dev", "tmpfs", 0, nullptr));
  r.put_errno("remount_root", ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr));
  r.put_errno("setuid_0", ::setuid(0));
  r.put("no_new_privs", ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  r.put("dumpable", ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
  r.put_errno("create_in_root", ::open("/new-file", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  r.put_errno("symlink_in_root", ::symlink("/elsewhere", "/vsock2.sock"));
  r.put_errno("unlink_socket", ::unlink("/vsock.sock"));
  r.put_errno("reopen_kvm", ::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  r.put("kvm_api_after", kvm ? ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0) : -1);
  r.put("kvm_create_vm_after", kvm ? (::ioctl(kvm.get(), KVM_CREATE_VM, 0) >= 0 ? "0" : errno_name(errno)) : "no fd");
  const char text[] = "console line\n";
  r.put("console_write", console ? ::write(console.get(), text, sizeof(text) - 1) : -1);
  r.put_errno("unix_listen", ::listen(sock.get(), 1));
  r.put("done", "1");
}

}  // namespace

TEST_CASE("a jailed process sees only its folder, no network, no host process, and keeps no privilege",
          "[jail]") {
  REQUIRE(::geteuid() == 0);
  JailFolder folder;
  REQUIRE(folder.dir);
  const std::string root = folder.spec.root;
  const std::set<std::string> before = tree(root);

  const CgroupVariant variant = cgroup_variant();
  jail::JailSpec spec = folder.spec;
  spec.cgroup = {256ull << 20, 64, 100};
  auto checked = jail::check(spec);
  if (variant.available) {
    WARN("variant: the whole jail, with its cgroup v2");
    REQUIRE(checked);
  } else {
    WARN("variant: no cgroup v2 on this host (" << variant.problem << "): the jail without its cgroup");
    REQUIRE_FALSE(checked);
    CHECK(checked.error().message ==
          "the jail cannot run here: " + variant.problem + ". Fix that, or run husk with --no-jail");
  }
  CHECK_FALSE(spec.user_namespace);

  // A TCP listener on the host's loopback that the jail must not reach.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(listener.get(), 4) == 0);
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);

  ReportPipe pipe;
  ReportPipe stop;
  const pid_t self = ::getpid();
  auto forked = jail::fork_jailed(spec, variant.available ? jail::WithCgroup::kYes : jail::WithCgroup::kNo);
  if (::getpid() != self) {
    const Reporter r(pipe.write_end.get());
    if (!forked) {
      r.put("setup_error", forked.error().message);
      ::_exit(70);
    }
    jailed_body(r, spec, self, port, folder.bound_source, stop);
    ::_exit(0);
  }
  REQUIRE(forked);
  REQUIRE_FALSE(forked->jailed);
  const pid_t pid = forked->pid;
  pipe.write_end.reset();
  stop.write_end.reset();

  std::string cgroup_path;
  Report report = read_report(pipe.read_end.get(), 30, "pid");
  if (variant.available) cgroup_path = std::string(jail::cgroup::kMount) + cgroup_of(pid);
  // The jail's mounts are its own namespace's, even while it runs.
  const std::string mounts_during = mounts_mentioning(root);
  read_report_into(report, pipe.read_end.get(), 30);
  const int status = wait_for_exit(pid, 10);
  if (status == -1) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
  jail::remove_cgroup(pid);

  INFO("report: " << [&] {
    std::string all;
    for (const auto& [k, v] : report.values) all += k + "=" + v + "; ";
    return all;
  }());
  CHECK(describe_status(status) == "exit 0");
  CHECK(report.get("setup_error") == "<missing>");
  REQUIRE(report.get("done") == "1");

  // Namespaces: PID 1, no host process, no /proc, hostname.
  CHECK(report.get("pid") == "1");
  CHECK(report.get("kill_host_pid") == "ESRCH");
  CHECK(report.get("proc_self") == "ENOENT");
  CHECK(report.get("hostname") == "husk");
  CHECK(report.get("stop_pipe") == "eof");
  // Files: only the folder and what was bound into it.
  CHECK(report.get("open_passwd") == "ENOENT");
  CHECK(report.get("open_host_file") == "ENOENT");
  CHECK(report.get("root_entries") == ".lock bound.txt dev");
  CHECK(report.get("bound_text") == kBoundText);
  CHECK(report.get("bound_write_open") == "EROFS");
  // Network: a new, empty namespace.
  CHECK(report.get("inet_socket") == "0");
  CHECK(report.get("inet_connect") == "ENETUNREACH");
  // /dev/kvm before the drop ("/" is nodev, the bind is not).
  CHECK(report.get("kvm_open") == "0");
  CHECK(report.get("kvm_api") == std::to_string(KVM_API_VERSION));
  CHECK(report.get("console_open") == "0");
  CHECK(report.get("unix_bind") == "0");
  // After the drop.
  CHECK(report.get("drop") == "ok");
  CHECK(report.get("uid") == "65534");
  CHECK(report.get("euid") == "65534");
  CHECK(report.get("gid") == "65534");
  CHECK(report.get("egid") == "65534");
  CHECK(report.get("cap_eff") == "0");
  CHECK(report.get("cap_prm") == "0");
  CHECK(report.get("cap_inh") == "0");
  CHECK(report.get("cap_bnd") == "0");
  CHECK(report.get("mount_tmpfs") == "EPERM");
  CHECK(report.get("remount_root") == "EPERM");
  CHECK(report.get("setuid_0") == "EPERM");
  CHECK(report.get("no_new_privs") == "1");
  CHECK(report.get("dumpable") == "0");
  // The folder is root's, mode 0711: nothing can be added, replaced or removed.
  CHECK(report.get("create_in_root") == "EACCES");
  CHECK(report.get("symlink_in_root") == "EACCES");
  CHECK(report.get("unlink_socket") == "EACCES");
  CHECK(report.get("reopen_kvm") == "EACCES");
  // What was opened before the drop still works.
  CHECK(report.get("kvm_api_after") == std::to_string(KVM_API_VERSION));
  CHECK(report.get("kvm_create_vm_after") == "0");
  CHECK(report.get("console_write") == "13");
  CHECK(report.get("unix_listen") == "0");

  // Outside, after the end: no mount, no cgroup; the folder holds what it
  // held, the mount points the jail made (empty) and what the jailed
  // process made before the drop.
  CHECK(mounts_during.empty());
  CHECK(mounts_mentioning(root).empty());
  if (variant.available) {
    CHECK(cgroup_path.find("/husk/") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(cgroup_path));
  }
  std::set<std::string> expected = before;
  expected.insert({"bound.txt", "dev", "dev/kvm", "console.log", "vsock.sock"});
  CHECK(tree(root) == expected);
  CHECK(std::filesystem::file_size(root + "/bound.txt") == 0);
  CHECK(std::filesystem::file_size(root + "/console.log") == 13);
  struct stat st {};
  REQUIRE(::stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0711);
  CHECK(st.st_uid == 0);
}
