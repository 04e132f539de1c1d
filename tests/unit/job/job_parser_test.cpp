// Tests for runtime/job/job_parser.h against docs/job-file.md: every key
// with a good value and a bad one, defaults, path resolution against the job
// file's folder (real temporary folders), messages that name
// FILE:LINE:COLUMN and the key (examples/ are in examples_test.cpp).
#include "runtime/job/job_parser.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/arch/x86_64/layout.h"
#include "runtime/job/job_runner.h"
#include "tests/support/temp_dir.h"

#include "tests/unit/job/job_test_support.h"

namespace husk::job {
namespace {

using namespace testing;
using std::chrono::milliseconds;


TEST_CASE("a minimal job gets every default", "[job]") {
  JobDir d;
  const Job job = d.ok("version = 1\n[process]\nrun = \"echo hi\"\n");
  CHECK(job.source == d.job_path());
  CHECK(job.hostname.empty());
  CHECK(job.vm.kernel == d.options.default_kernel);
  CHECK(job.vm.initramfs == d.options.default_initramfs);
  CHECK(job.vm.stock_initramfs);
  CHECK_FALSE(job.vm.root_disk);
  CHECK(job.vm.vcpus == 1);
  CHECK(job.vm.memory_mib == 256);
  CHECK(job.vm.boot_timeout == milliseconds(120'000));
  CHECK(job.files.empty());
  REQUIRE(job.steps.size() == 1);
  const Step& p = job.steps[0];
  CHECK(p.name == "process");
  CHECK(p.argv == std::vector<std::string>{"sh", "-c", "echo hi"});
  CHECK(p.env == std::map<std::string, std::string>{{"PATH", kDefaultPath}});
  CHECK(p.cwd == "/");
  CHECK(p.uid == 0);
  CHECK(p.gid == 0);
  CHECK(p.stdin.kind == Stdin::Kind::kNone);
  CHECK_FALSE(p.continue_on_error);
  CHECK_FALSE(p.limits.wall_time);
  CHECK_FALSE(p.limits.cpu_time);
  CHECK_FALSE(p.limits.memory);
  CHECK_FALSE(p.limits.processes);
  CHECK_FALSE(p.limits.open_files);
  CHECK_FALSE(p.limits.file_size);
  CHECK_FALSE(p.limits.stdout_max);
  CHECK_FALSE(p.limits.stderr_max);
  CHECK_FALSE(p.limits.kill_signal);
  CHECK_FALSE(p.limits.kill_grace);
  CHECK_FALSE(job.judge);
  CHECK(job.cases.empty());
  CHECK_FALSE(job.outputs);
  CHECK(job.result.format == ResultFormat::kHuman);
  CHECK(job.result.path.empty());
}

TEST_CASE("version is required and must be 1", "[job]") {
  JobDir d;
  const std::string missing = d.error("[process]\nrun = \"true\"\n");
  CHECK_THAT(missing, Contains("job.toml"));
  CHECK_THAT(missing, Contains("version = 1"));
  CHECK(line_count(missing) == 1);
  d.expect_error("version = 2\n[process]\nrun = \"true\"\n", "2", "version", "1");
  d.expect_error("version = \"1\"\n[process]\nrun = \"true\"\n", "\"1\"", "version", "expected an integer");
}

TEST_CASE("a job needs [process] or [[steps]]", "[job]") {
  JobDir d;
  CHECK_THAT(d.error("version = 1\n"), Contains("nothing to run"));
  CHECK_THAT(d.error("version = 1\nhostname = \"x\"\n[limits]\nwall_time = \"1s\"\n"), Contains("nothing to run"));
}

TEST_CASE("TOML syntax errors name the line and column", "[job]") {
  JobDir d;
  const std::string e = d.error("version = 1\n[process]\nrun = \"unterminated\n");
  CHECK_THAT(e, Contains("job.toml:3:"));
}

TEST_CASE("unknown keys are reported where they are, with a suggestion", "[job]") {
  JobDir d;
  SECTION("a misspelled table") {
    const std::string text = with_process("[limts]\nwall_time = \"1s\"\n");
    const std::string e = d.error(text);
    CHECK(line_count(e) == 1);
    CHECK_THAT(e, Contains("job.toml:" + position_of(text, "limts") +
                           ": unknown key 'limts' (did you mean 'limits'?)"));
  }
  SECTION("a misspelled key in a table") {
    const std::string text = with_process("[limits]\nwal_time = \"1s\"\n");
    CHECK_THAT(d.error(text), Contains("job.toml:" + position_of(text, "wal_time") +
                                       ": unknown key 'limits.wal_time' (did you mean 'limits.wall_time'?)"));
  }
  SECTION("a misspelled key in a step") {
    const std::string text = "version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\ntiemout = \"1s\"\n";
    CHECK_THAT(d.error(text), Contains("job.toml:5:1: unknown key 'steps[0].tiemout' (did you mean "
                                       "'steps[0].timeout'?)"));
  }
  SECTION("a key like nothing known gets no suggestion") {
    const std::string e = d.error(with_process("frobnicate = 3\n"));
    CHECK_THAT(e, Contains("unknown key 'frobnicate'"));
    CHECK_THAT(e, !Contains("did you mean"));
  }
  SECTION("continue_on_error belongs to steps, not [process]") {
    CHECK_THAT(d.error("version = 1\n[process]\nrun = \"true\"\ncontinue_on_error = true\n"),
               Contains("unknown key 'process.continue_on_error'"));
  }
  SECTION("in every table") {
    for (const char* table : {"vm", "limits", "network", "result", "outputs", "judge"}) {
      INFO(table);
      const std::string e =
          d.error(with_process("", std::string("[") + table + "]\nbogus_key = 1\n[[cases]]\nstdin = \"x\"\n"));
      CHECK_THAT(e, Contains(std::string("unknown key '") + table + ".bogus_key'"));
    }
  }
}

TEST_CASE("every problem is reported, one per line", "[job]") {
  JobDir d;
  const std::string text = with_process("[limits]\nwall_time = \"10\"\nprocesses = 0\n");
  const std::string e = d.error(text);
  CHECK(line_count(e) == 2);
  CHECK_THAT(e, Contains("job.toml:" + position_of(text, "\"10\"") + ": limits.wall_time: "));
  CHECK_THAT(e, Contains("job.toml:" + position_of(text, "0\n") + ": limits.processes: "));

  const std::string many = d.error(
      "version = 2\nlimts = 1\n[vm]\nvcpus = 0\n[[steps]]\nrun = 5\n[network]\nmode = \"host\"\n");
  CHECK(line_count(many) >= 5);
}

TEST_CASE("the message for a bad value names file, line, column, key and what was expected", "[job]") {
  JobDir d;
  // The example from docs/job-file.md: the value starts at line 7, column 13.
  const std::string text =
      "version = 1\n[process]\nrun = \"true\"\n\n\n[limits]\nwall_time = \"10\"\n";
  const std::string e = d.error(text);
  CHECK_THAT(e, Contains(d.job_path() + ":7:13: limits.wall_time: expected a duration such as \"10s\""));
  CHECK_THAT(e, Contains("got \"10\""));
}

TEST_CASE("the file is named as the caller gave it", "[job]") {
  JobDir d;
  auto job = parse_job("version = 2\n[process]\nrun = \"true\"\n", "some/where/job.toml", d.options);
  REQUIRE_FALSE(job);
  CHECK(job.error().message.rfind("some/where/job.toml:1:11: version: ", 0) == 0);
}

// --- top-level keys ----------------------------------------------------------

TEST_CASE("hostname", "[job]") {
  JobDir d;
  CHECK(d.ok(with_process("hostname = \"box-1.test\"")).hostname == "box-1.test");
  d.expect_error(with_process("hostname = \"bad host!\""), "\"bad host!\"", "hostname", "expected");
  d.expect_error(with_process("hostname = \"\""), "\"\"", "hostname", "expected");
  d.expect_error(with_process("hostname = 5"), "5", "hostname", "expected a string");
}

TEST_CASE("env: strings for every program, PATH by default", "[job]") {
  JobDir d;
  d.options.host_env = {{"HOME", "/root"}, {"PATH", "/host/bin"}, {"LANG", "C.UTF-8"}};
  SECTION("empty unless inherit_env, PATH added") {
    const Job job = d.ok(with_process("[env]\nA = \"1\"\n"));
    CHECK(process_of(job).env == std::map<std::string, std::string>{{"A", "1"}, {"PATH", kDefaultPath}});
  }
  SECTION("[env] PATH wins over the default") {
    CHECK(process_of(d.ok(with_process("[env]\nPATH = \"/opt/bin\"\n"))).env.at("PATH") == "/opt/bin");
  }
  SECTION("inherit_env starts from husk's own environment") {
    const Job job = d.ok(with_process("inherit_env = true\n[env]\nA = \"1\"\nLANG = \"C\"\n"));
    CHECK(process_of(job).env ==
          std::map<std::string, std::string>{{"A", "1"}, {"HOME", "/root"}, {"LANG", "C"}, {"PATH", "/host/bin"}});
  }
  SECTION("inherit_env = false is the default") {
    CHECK(process_of(d.ok(with_process("inherit_env = false"))).env.count("HOME") == 0);
  }
  SECTION("bad values") {
    d.expect_error(with_process("inherit_env = \"yes\""), "\"yes\"", "inherit_env", "expected true or false");
    d.expect_error(with_process("[env]\nA = 7\n"), "7", "env.A", "expected a string");
    d.expect_error(with_process("env = \"A=1\""), "\"A=1\"", "env", "expected a table");
  }
}

// --- [vm] --------------------------------------------------------------------

TEST_CASE("vm.kernel, vm.initramfs and vm.root_disk resolve against the job's folder and must exist", "[job]") {
  JobDir d;
  const std::string kernel = d.write("images/bzImage", "k");
  const std::string initramfs = d.write("images/initrd.gz", "i");
  const std::string disk = d.write("images/root.ext4", "d");
  const Job job = d.ok(with_process(
      "[vm]\nkernel = \"images/bzImage\"\ninitramfs = \"./images/initrd.gz\"\nroot_disk = \"" + disk + "\"\n"));
  CHECK(job.vm.kernel == kernel);
  CHECK(job.vm.initramfs == initramfs);
  // The job's own initramfs boots its own /init (no rdinit= for the agent).
  CHECK_FALSE(job.vm.stock_initramfs);
  REQUIRE(job.vm.root_disk);
  CHECK(job.vm.root_disk->path == disk);
  CHECK(job.vm.root_disk->mode == vmm::DiskMode::kCopyOnWrite);

  for (const char* key : {"kernel", "initramfs", "root_disk"}) {
    INFO(key);
    d.expect_error(with_process(std::string("[vm]\n") + key + " = \"nowhere/file\"\n"), "\"nowhere/file\"",
                   std::string("vm.") + key, d.path("nowhere/file") + " does not exist");
    d.expect_error(with_process(std::string("[vm]\n") + key + " = 7\n"), "7", std::string("vm.") + key,
                   "expected a string");
  }
}

TEST_CASE("the default kernel and initramfs must exist", "[job]") {
  JobDir d;
  d.options.default_kernel = d.path("guest/missing-vmlinux");
  const std::string e = d.error("version = 1\n[process]\nrun = \"true\"\n");
  CHECK_THAT(e, Contains("vm.kernel"));
  CHECK_THAT(e, Contains(d.path("guest/missing-vmlinux")));
  // A job that names its own kernel does not need the default.
  d.write("k", "k");
  CHECK(d.parse("version = 1\n[vm]\nkernel = \"k\"\n[process]\nrun = \"true\"\n"));
}

TEST_CASE("vm.root_disk_mode", "[job]") {
  JobDir d;
  d.write("root.ext4", "d");
  const auto mode_of = [&](const char* mode) {
    const Job job = d.ok(with_process(std::string("[vm]\nroot_disk = \"root.ext4\"\nroot_disk_mode = \"") + mode + "\""));
    REQUIRE(job.vm.root_disk);
    return job.vm.root_disk->mode;
  };
  CHECK(mode_of("cow") == vmm::DiskMode::kCopyOnWrite);
  CHECK(mode_of("ro") == vmm::DiskMode::kReadOnly);
  CHECK(mode_of("rw") == vmm::DiskMode::kPersistent);
  d.expect_error(with_process("[vm]\nroot_disk = \"root.ext4\"\nroot_disk_mode = \"rwx\""), "\"rwx\"",
                 "vm.root_disk_mode", "expected one of \"cow\", \"ro\", \"rw\"");
  d.expect_error(with_process("[vm]\nroot_disk_mode = \"ro\""), "\"ro\"", "vm.root_disk_mode", "root_disk");
}

TEST_CASE("vm.vcpus, vm.memory and vm.boot_timeout", "[job]") {
  JobDir d;
  const Job job = d.ok(with_process("[vm]\nvcpus = 2\nmemory = \"512MiB\"\nboot_timeout = \"30s\"\n"));
  CHECK(job.vm.vcpus == 2);
  CHECK(job.vm.memory_mib == 512);
  CHECK(job.vm.boot_timeout == milliseconds(30'000));
  CHECK(d.ok(with_process("[vm]\nmemory = \"1.5GiB\"")).vm.memory_mib == 1536);
  CHECK(d.ok(with_process("[vm]\nmemory = \"64MiB\"")).vm.memory_mib == 64);
  CHECK(d.ok(with_process("[vm]\nvcpus = " + std::to_string(x86_64::kMaxVcpus))).vm.vcpus == x86_64::kMaxVcpus);

  d.expect_error(with_process("[vm]\nvcpus = 0"), "0", "vm.vcpus", "expected an integer from 1 to");
  const std::string too_many = std::to_string(x86_64::kMaxVcpus + 1);
  d.expect_error(with_process("[vm]\nvcpus = " + too_many), too_many, "vm.vcpus", "expected an integer from 1 to");
  d.expect_error(with_process("[vm]\nvcpus = \"2\""), "\"2\"", "vm.vcpus", "expected an integer");
  d.expect_error(with_process("[vm]\nmemory = \"32MiB\""), "\"32MiB\"", "vm.memory", "64 MiB");
  d.expect_error(with_process("[vm]\nmemory = \"512\""), "\"512\"", "vm.memory", "expected a size such as");
  d.expect_error(with_process("[vm]\nmemory = \"100TiB\""), "\"100TiB\"", "vm.memory", "expected from");
  d.expect_error(with_process("[vm]\nmemory = 512"), "512", "vm.memory", "expected a size string");
  d.expect_error(with_process("[vm]\nboot_timeout = \"0s\""), "\"0s\"", "vm.boot_timeout", "more than 0");
  d.expect_error(with_process("[vm]\nboot_timeout = \"30\""), "\"30\"", "vm.boot_timeout", "expected a duration");
}

TEST_CASE("vm.huge_pages: on by default, and reaches the VM's configuration", "[job]") {
  JobDir d;
  const Job by_default = d.ok(with_process(""));
  CHECK(by_default.vm.huge_pages);
  CHECK(vm_config_for(by_default.vm).huge_pages);
  const Job off = d.ok(with_process("[vm]\nhuge_pages = false\n"));
  CHECK_FALSE(off.vm.huge_pages);
  CHECK_FALSE(vm_config_for(off.vm).huge_pages);
  d.expect_error(with_process("[vm]\nhuge_pages = \"no\""), "\"no\"", "vm.huge_pages", "expected true or false");
}

// --- [limits] ----------------------------------------------------------------

TEST_CASE("every limit, good", "[job]") {
  JobDir d;
  const Job job = d.ok(with_process(
      "[limits]\nwall_time = \"10s\"\ncpu_time = \"1.5m\"\nmemory = \"256MiB\"\nprocesses = 64\n"
      "open_files = 256\nfile_size = \"16MiB\"\nstdout_max = \"64MiB\"\nstderr_max = \"1MiB\"\n"
      "kill_signal = \"SIGTERM\"\nkill_grace = \"250ms\"\n"));
  const Limits& l = process_of(job).limits;
  CHECK(l.wall_time == milliseconds(10'000));
  CHECK(l.cpu_time == milliseconds(90'000));
  CHECK(l.memory == (256ull << 20));
  CHECK(l.processes == 64u);
  CHECK(l.open_files == 256u);
  CHECK(l.file_size == (16ull << 20));
  CHECK(l.stdout_max == (64ull << 20));
  CHECK(l.stderr_max == (1ull << 20));
  CHECK(l.kill_signal == SIGTERM);
  CHECK(l.kill_grace == milliseconds(250));

  CHECK(process_of(d.ok(with_process("[limits]\nkill_signal = \"TERM\""))).limits.kill_signal == SIGTERM);
  CHECK(process_of(d.ok(with_process("[limits]\nkill_signal = 2"))).limits.kill_signal == SIGINT);
  CHECK(process_of(d.ok(with_process("[limits]\nwall_time = \"24h\""))).limits.wall_time == std::chrono::hours(24));
  CHECK(process_of(d.ok(with_process("[limits]\nprocesses = 1000000"))).limits.processes == 1'000'000u);
  CHECK(process_of(d.ok(with_process("[limits]\nopen_files = 1048576"))).limits.open_files == 1'048'576u);
  CHECK(process_of(d.ok(with_process("[limits]\nmemory = \"100MB\""))).limits.memory == 100'000'000u);
  // docs/job-file.md: every duration limit may be up to 24 h.
  CHECK(process_of(d.ok(with_process("[limits]\nkill_grace = \"2h\""))).limits.kill_grace == std::chrono::hours(2));
}

TEST_CASE("every limit, bad", "[job]") {
  JobDir d;
  struct Bad {
    const char* key;
    const char* value;
    const char* fragment;
  };
  const Bad bad[] = {
      {"wall_time", "\"10\"", "expected a duration such as \"10s\""},
      {"wall_time", "\"0s\"", "more than 0"},
      {"wall_time", "\"25h\"", "at most"},
      {"wall_time", "10", "expected a duration string"},
      {"cpu_time", "\"-1s\"", "expected a duration"},
      {"cpu_time", "\"2d\"", "at most"},
      {"memory", "\"256\"", "expected a size such as \"256MiB\""},
      {"memory", "\"0B\"", "expected from"},
      {"memory", "\"-5MiB\"", "expected a size"},
      {"processes", "0", "expected an integer from 1 to 1000000"},
      {"processes", "1000001", "expected an integer from 1 to 1000000"},
      {"processes", "\"64\"", "expected an integer"},
      {"processes", "-3", "expected an integer from 1"},
      {"open_files", "0", "expected an integer from 1 to 1048576"},
      {"open_files", "1048577", "expected an integer from 1 to 1048576"},
      {"open_files", "2.5", "expected an integer"},
      {"file_size", "\"0B\"", "expected from"},
      {"file_size", "5", "expected a size string"},
      {"stdout_max", "\"64\"", "expected a size such as"},
      {"stdout_max", "\"64XiB\"", "expected a size such as"},
      {"stderr_max", "\"-1MiB\"", "expected a size"},
      {"stderr_max", "true", "expected a size string"},
      {"kill_signal", "\"SIGNOPE\"", "expected a signal"},
      {"kill_signal", "0", "expected a signal"},
      {"kill_signal", "true", "expected a signal name or number"},
      {"kill_grace", "\"1\"", "expected a duration"},
      {"kill_grace", "\"0ms\"", "more than 0"},
  };
  for (const Bad& b : bad) {
    const std::string text = with_process("[limits]\n" + std::string(b.key) + " = " + b.value + "\n");
    d.expect_error(text, b.value, std::string("limits.") + b.key, b.fragment);
  }
}

TEST_CASE("limits merge: [limits], then the step's, then its timeout", "[job]") {
  JobDir d;
  const Job job = d.ok(
      "version = 1\n[limits]\nwall_time = \"10s\"\nmemory = \"256MiB\"\nprocesses = 64\n"
      "[[steps]]\nname = \"a\"\nrun = \"true\"\n[steps.limits]\nmemory = \"1GiB\"\nwall_time = \"20s\"\n"
      "[[steps]]\nname = \"b\"\nrun = \"true\"\ntimeout = \"30s\"\n"
      "[process]\nrun = \"true\"\n[process.limits]\nprocesses = 8\n");
  REQUIRE(job.steps.size() == 3);
  CHECK(job.steps[0].limits.memory == (1ull << 30));
  CHECK(job.steps[0].limits.wall_time == milliseconds(20'000));
  CHECK(job.steps[0].limits.processes == 64u);
  CHECK(job.steps[1].limits.wall_time == milliseconds(30'000));
  CHECK(job.steps[1].limits.memory == (256ull << 20));
  CHECK(job.steps[2].name == "process");
  CHECK(job.steps[2].limits.processes == 8u);
  CHECK(job.steps[2].limits.wall_time == milliseconds(10'000));
}

TEST_CASE("limit errors in steps, [process], [judge] and cases name their table", "[job]") {
  JobDir d;
  d.expect_error("version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\n[steps.limits]\nmemory = \"1\"\n", "\"1\"",
                 "steps[0].limits.memory", "expected a size");
  d.expect_error("version = 1\n[process]\nrun = \"true\"\n[process.limits]\nprocesses = 0\n", "0\n",
                 "process.limits.processes", "expected an integer from 1");
  d.expect_error("version = 1\n[process]\nrun = \"true\"\n[judge.limits]\ncpu_time = \"1\"\n[[cases]]\n", "\"1\"",
                 "judge.limits.cpu_time", "expected a duration");
  d.expect_error("version = 1\n[process]\nrun = \"true\"\n[[cases]]\n[cases.limits]\nkill_signal = \"X\"\n",
                 "\"X\"", "cases[0].limits.kill_signal", "expected a signal");
}

// --- [[files]] ---------------------------------------------------------------

TEST_CASE("files: a host file or folder to an absolute guest path", "[job]") {
  JobDir d;
  const std::string a = d.write("src/a.c", "int main(void) { return 0; }\n");
  const Job job = d.ok(with_process(
      "[[files]]\nsource = \"src/\"\ndestination = \"/work/src\"\n"
      "[[files]]\nsource = \"src/a.c\"\ndestination = \"/work/a.c\"\nmode = \"0755\"\n"
      "[[files]]\nsource = \"" + a + "\"\ndestination = \"/work/b.c\"\nmode = \"644\"\n"));
  REQUIRE(job.files.size() == 3);
  CHECK(fs::equivalent(job.files[0].source, d.path("src")));
  CHECK(job.files[0].destination == "/work/src");
  CHECK_FALSE(job.files[0].mode);
  CHECK(job.files[1].source == a);
  CHECK(job.files[1].mode == 0755u);
  CHECK(job.files[2].source == a);
  CHECK(job.files[2].mode == 0644u);
}

TEST_CASE("files: bad entries", "[job]") {
  JobDir d;
  d.write("a.txt", "a");
  d.expect_error(with_process("[[files]]\nsource = \"missing.txt\"\ndestination = \"/a\"\n"), "\"missing.txt\"",
                 "files[0].source", d.path("missing.txt") + " does not exist");
  d.expect_error(with_process("[[files]]\nsource = \"a.txt\"\ndestination = \"work/a\"\n"), "\"work/a\"",
                 "files[0].destination", "expected an absolute guest path");
  d.expect_error(with_process("[[files]]\nsource = \"a.txt\"\ndestination = \"/a\"\nmode = \"0999\"\n"),
                 "\"0999\"", "files[0].mode", "expected an octal mode");
  d.expect_error(with_process("[[files]]\nsource = \"a.txt\"\ndestination = \"/a\"\nmode = \"rwx\"\n"), "\"rwx\"",
                 "files[0].mode", "expected an octal mode");
  d.expect_error(with_process("[[files]]\nsource = \"a.txt\"\ndestination = \"/a\"\nmode = \"17777\"\n"),
                 "\"17777\"", "files[0].mode", "expected an octal mode");
  // An integer would be decimal (755 is 0o1363): the mode is an octal string.
  d.expect_error(with_process("[[files]]\nsource = \"a.txt\"\ndestination = \"/a\"\nmode = 755\n"), "755",
                 "files[0].mode", "expected an octal mode");
  d.expect_error(with_process("[[files]]\nsource = 9\ndestination = \"/a\"\n"), "9", "files[0].source",
                 "expected a string");
  CHECK_THAT(d.error(with_process("[[files]]\ndestination = \"/a\"\n")), Contains("files[0].source"));
  CHECK_THAT(d.error(with_process("[[files]]\nsource = \"a.txt\"\n")), Contains("files[0].destination"));
  CHECK_THAT(d.error(with_process("files = \"a.txt\"\n")), Contains("files: expected an array of tables"));
}

// --- [[steps]] and [process] -------------------------------------------------

TEST_CASE("steps: every key, good", "[job]") {
  JobDir d;
  const std::string input = d.write("data/in.txt", "input\n");
  const Job job = d.ok(
      "version = 1\n[env]\nA = \"1\"\nB = \"2\"\n"
      "[[steps]]\nname = \"build\"\nrun = \"cc -o /work/a /work/a.c\"\nenv = { B = \"3\", CFLAGS = \"-O2\" }\n"
      "cwd = \"/work\"\nuser = \"nobody\"\nstdin = \"inline text\"\ntimeout = \"30s\"\ncontinue_on_error = true\n"
      "[[steps]]\nname = \"test\"\nargv = [\"/work/a\", \"--flag\"]\nuser = 1000\nstdin_file = \"data/in.txt\"\n"
      "[[steps]]\nname = \"root\"\nrun = \"id\"\nuser = \"root\"\n"
      "[[steps]]\nname = \"pair\"\nrun = \"id\"\nuser = \"1000:2000\"\n");
  REQUIRE(job.steps.size() == 4);
  const Step& build = job.steps[0];
  CHECK(build.name == "build");
  CHECK(build.argv == std::vector<std::string>{"sh", "-c", "cc -o /work/a /work/a.c"});
  CHECK(build.env ==
        std::map<std::string, std::string>{{"A", "1"}, {"B", "3"}, {"CFLAGS", "-O2"}, {"PATH", kDefaultPath}});
  CHECK(build.cwd == "/work");
  CHECK(build.uid == 65534);
  CHECK(build.gid == 65534);
  CHECK(build.stdin.kind == Stdin::Kind::kInline);
  CHECK(build.stdin.value == "inline text");
  CHECK(build.limits.wall_time == milliseconds(30'000));
  CHECK(build.continue_on_error);
  const Step& test = job.steps[1];
  CHECK(test.argv == std::vector<std::string>{"/work/a", "--flag"});
  CHECK(test.uid == 1000);
  CHECK(test.gid == 1000);
  CHECK(test.stdin.kind == Stdin::Kind::kFile);
  CHECK(test.stdin.value == input);
  CHECK_FALSE(test.continue_on_error);
  CHECK(job.steps[2].uid == 0);
  CHECK(job.steps[2].gid == 0);
  CHECK(job.steps[3].uid == 1000);
  CHECK(job.steps[3].gid == 2000);
}

TEST_CASE("steps: every key, bad", "[job]") {
  JobDir d;
  const auto step = [](const std::string& keys) { return "version = 1\n[[steps]]\nname = \"s\"\n" + keys + "\n"; };
  d.expect_error(step("run = 5"), "5", "steps[0].run", "expected a string");
  d.expect_error(step("argv = \"cc\""), "\"cc\"", "steps[0].argv", "expected an array of strings");
  d.expect_error(step("argv = []"), "[]", "steps[0].argv", "expected at least the program");
  d.expect_error(step("argv = [\"cc\", 1]"), "1]", "steps[0].argv[1]", "expected a string");
  d.expect_error(step("run = \"true\"\nenv = { A = 1 }"), "1 }", "steps[0].env.A", "expected a string");
  d.expect_error(step("run = \"true\"\nenv = \"A=1\""), "\"A=1\"", "steps[0].env", "expected a table");
  d.expect_error(step("run = \"true\"\ncwd = \"work\""), "\"work\"", "steps[0].cwd", "expected an absolute guest path");
  d.expect_error(step("run = \"true\"\ncwd = 9"), "9", "steps[0].cwd", "expected a string");
  for (const char* user : {"\"alice\"", "-1", "\"1000:x\"", "\":1000\"", "\"4294967296\"", "true"}) {
    INFO(user);
    d.expect_error(step(std::string("run = \"id\"\nuser = ") + user), user, "steps[0].user",
                   "expected \"root\", \"nobody\", a uid");
  }
  d.expect_error(step("run = \"true\"\nstdin = 5"), "5", "steps[0].stdin", "expected a string");
  d.expect_error(step("run = \"true\"\nstdin_file = \"no/such.txt\""), "\"no/such.txt\"", "steps[0].stdin_file",
                 d.path("no/such.txt") + " does not exist");
  d.expect_error(step("run = \"true\"\ntimeout = \"30\""), "\"30\"", "steps[0].timeout", "expected a duration");
  d.expect_error(step("run = \"true\"\ntimeout = \"25h\""), "\"25h\"", "steps[0].timeout", "at most");
  d.expect_error(step("run = \"true\"\ncontinue_on_error = \"no\""), "\"no\"", "steps[0].continue_on_error",
                 "expected true or false");
  d.expect_error("version = 1\n[[steps]]\nname = 3\nrun = \"true\"\n", "3", "steps[0].name", "expected a string");
}

TEST_CASE("a step needs exactly one of run and argv", "[job]") {
  JobDir d;
  const std::string both = "version = 1\n[[steps]]\nname = \"s\"\nrun = \"true\"\nargv = [\"true\"]\n";
  d.expect_error(both, "[\"true\"]", "steps[0].argv", "either run or argv, not both");
  const std::string e = d.error("version = 1\n[[steps]]\nname = \"s\"\ncwd = \"/\"\n");
  CHECK_THAT(e, Contains("steps[0]"));
  CHECK_THAT(e, Contains("run"));
  CHECK_THAT(e, Contains("argv"));
  CHECK_THAT(d.error("version = 1\n[process]\nrun = \"a\"\nargv = [\"b\"]\n"),
             Contains("process.argv: give either run or argv, not both"));
}

TEST_CASE("stdin and stdin_file together are refused", "[job]") {
  JobDir d;
  d.write("in.txt", "x");
  d.expect_error("version = 1\n[process]\nrun = \"cat\"\nstdin = \"a\"\nstdin_file = \"in.txt\"\n", "\"in.txt\"",
                 "process.stdin_file", "either stdin or stdin_file, not both");
}

TEST_CASE("step names are required and unique", "[job]") {
  JobDir d;
  CHECK_THAT(d.error("version = 1\n[[steps]]\nrun = \"true\"\n"), Contains("steps[0].name"));
  const std::string twice = "version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\n[[steps]]\nname = \"a\"\nrun = \"x\"\n";
  CHECK_THAT(d.error(twice), Contains("job.toml:6:8: steps[1].name: 'a' is used twice"));
}

TEST_CASE("steps run in order and [process] comes last", "[job]") {
  JobDir d;
  const Job job = d.ok(
      "version = 1\n[process]\nname = \"main\"\nrun = \"main\"\n"
      "[[steps]]\nname = \"one\"\nrun = \"1\"\n[[steps]]\nname = \"two\"\nrun = \"2\"\n");
  REQUIRE(job.steps.size() == 3);
  CHECK(job.steps[0].name == "one");
  CHECK(job.steps[1].name == "two");
  CHECK(job.steps[2].name == "main");
  CHECK(d.ok("version = 1\n[[steps]]\nname = \"only\"\nrun = \"true\"\n").steps.size() == 1);
}

TEST_CASE("the --input request becomes the process's stdin", "[job]") {
  JobDir d;
  d.options.has_request_input = true;
  const Job job = d.ok("version = 1\n[process]\nrun = \"tr a-z A-Z\"\n");
  CHECK(process_of(job).stdin.kind == Stdin::Kind::kRequest);
  CHECK_THAT(d.error("version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\n"), Contains("--input"));
}

// --- [judge] and [[cases]] ---------------------------------------------------

TEST_CASE("cases: every key, good", "[job]") {
  JobDir d;
  const std::string in2 = d.write("tests/2.in", "5 5\n");
  d.write("tests/2.out", "10\n");
  const Job job = d.ok(
      "version = 1\n[limits]\nmemory = \"64MiB\"\n"
      "[process]\nargv = [\"/work/sum\"]\ncwd = \"/work\"\nuser = \"nobody\"\n"
      "[process.limits]\nwall_time = \"5s\"\n"
      "[judge]\ncompare = \"exact\"\nchecker = \"cmp -s \\\"$2\\\" \\\"$3\\\"\"\nstop_on_failure = true\n"
      "[judge.limits]\nwall_time = \"2s\"\ncpu_time = \"1s\"\n"
      "[[cases]]\nname = \"small\"\nstdin = \"1 2\\n\"\nexpected = \"3\\n\"\ncompare = \"tokens\"\n"
      "[[cases]]\nstdin_file = \"tests/2.in\"\nexpected_file = \"tests/2.out\"\ntimeout = \"1s\"\n"
      "[[cases]]\nstdin = \"\"\ncompare = \"checker\"\n[cases.limits]\nmemory = \"32MiB\"\n"
      "[[cases]]\ncompare = \"trailing-whitespace\"\n");
  // The process is the judge's program, not a step.
  CHECK(job.steps.empty());
  REQUIRE(job.judge);
  CHECK(job.judge->program.argv == std::vector<std::string>{"/work/sum"});
  CHECK(job.judge->program.cwd == "/work");
  CHECK(job.judge->program.uid == 65534);
  CHECK(job.judge->compare == Compare::kExact);
  REQUIRE(job.judge->checker.size() >= 3);
  CHECK(job.judge->checker[0] == "sh");
  CHECK(job.judge->checker[1] == "-c");
  CHECK(job.judge->checker[2] == "cmp -s \"$2\" \"$3\"");
  CHECK(job.judge->stop_on_failure);
  REQUIRE(job.cases.size() == 4);
  const Case& small = job.cases[0];
  CHECK(small.name == "small");
  CHECK(small.stdin.kind == Stdin::Kind::kInline);
  CHECK(small.stdin.value == "1 2\n");
  CHECK(small.expected == "3\n");
  CHECK(small.compare == Compare::kTokens);
  // Limits: [limits], then [process], then [judge.limits], then the case.
  CHECK(small.limits.memory == (64ull << 20));
  CHECK(small.limits.wall_time == milliseconds(2000));
  CHECK(small.limits.cpu_time == milliseconds(1000));
  const Case& second = job.cases[1];
  CHECK(second.name == "case 2");
  CHECK(second.stdin.kind == Stdin::Kind::kFile);
  CHECK(second.stdin.value == in2);
  CHECK(second.expected == "10\n");  // expected_file is read
  CHECK(second.compare == Compare::kExact);
  CHECK(second.limits.wall_time == milliseconds(1000));
  CHECK(job.cases[2].name == "case 3");
  CHECK(job.cases[2].compare == Compare::kChecker);
  CHECK(job.cases[2].limits.memory == (32ull << 20));
  CHECK(job.cases[3].compare == Compare::kTrailingWhitespace);
  CHECK_FALSE(job.cases[3].expected);
  CHECK(job.cases[3].stdin.kind == Stdin::Kind::kNone);
}

TEST_CASE("judge defaults: trailing-whitespace, no checker, go on after failures", "[job]") {
  JobDir d;
  const Job job = d.ok("version = 1\n[process]\nrun = \"cat\"\n[[cases]]\nstdin = \"a\"\nexpected = \"a\"\n");
  REQUIRE(job.judge);
  CHECK(job.judge->compare == Compare::kTrailingWhitespace);
  CHECK(job.judge->checker.empty());
  CHECK_FALSE(job.judge->stop_on_failure);
  REQUIRE(job.cases.size() == 1);
  CHECK(job.cases[0].name == "case 1");
  CHECK(job.cases[0].compare == Compare::kTrailingWhitespace);
}

TEST_CASE("judge.checker as an argv", "[job]") {
  JobDir d;
  const Job job = d.ok(
      "version = 1\n[process]\nrun = \"cat\"\n[judge]\ncompare = \"checker\"\nchecker = [\"/work/check\", \"-v\"]\n"
      "[[cases]]\nexpected = \"x\"\n");
  CHECK(job.judge->checker == std::vector<std::string>{"/work/check", "-v"});
  CHECK(job.cases[0].compare == Compare::kChecker);
}

TEST_CASE("judge and cases: bad values", "[job]") {
  JobDir d;
  const std::string head = "version = 1\n[process]\nrun = \"cat\"\n";
  d.expect_error(head + "[judge]\ncompare = \"diff\"\n[[cases]]\n", "\"diff\"", "judge.compare",
                 "expected one of \"exact\", \"trailing-whitespace\", \"tokens\", \"checker\"");
  d.expect_error(head + "[judge]\nchecker = 5\n[[cases]]\n", "5", "judge.checker", "expected");
  d.expect_error(head + "[judge]\nchecker = []\n[[cases]]\n", "[]", "judge.checker", "expected at least the program");
  d.expect_error(head + "[judge]\nstop_on_failure = \"yes\"\n[[cases]]\n", "\"yes\"", "judge.stop_on_failure",
                 "expected true or false");
  d.expect_error(head + "[[cases]]\ncompare = \"token\"\n", "\"token\"", "cases[0].compare", "did you mean \"tokens\"");
  d.expect_error(head + "[[cases]]\nname = 9\n", "9", "cases[0].name", "expected a string");
  d.expect_error(head + "[[cases]]\nstdin = 9\n", "9", "cases[0].stdin", "expected a string");
  d.expect_error(head + "[[cases]]\nstdin_file = \"t/1.in\"\n", "\"t/1.in\"", "cases[0].stdin_file",
                 d.path("t/1.in") + " does not exist");
  d.expect_error(head + "[[cases]]\nexpected = 3\n", "3\n", "cases[0].expected", "expected a string");
  d.expect_error(head + "[[cases]]\nexpected_file = \"t/1.out\"\n", "\"t/1.out\"", "cases[0].expected_file",
                 d.path("t/1.out") + " does not exist");
  d.expect_error(head + "[[cases]]\ntimeout = \"1\"\n", "\"1\"", "cases[0].timeout", "expected a duration");
  d.write("t/1.out", "1\n");
  d.expect_error(head + "[[cases]]\nexpected = \"1\"\nexpected_file = \"t/1.out\"\n", "\"t/1.out\"",
                 "cases[0].expected_file", "either expected or expected_file, not both");
  d.expect_error(head + "[[cases]]\nstdin = \"1\"\n[[cases]]\nexpected = 5\n", "5\n", "cases[1].expected",
                 "expected a string");
}

TEST_CASE("compare = checker needs judge.checker", "[job]") {
  JobDir d;
  CHECK_THAT(d.error("version = 1\n[process]\nrun = \"cat\"\n[[cases]]\ncompare = \"checker\"\n"),
             Contains("judge.checker"));
  CHECK_THAT(d.error("version = 1\n[process]\nrun = \"cat\"\n[judge]\ncompare = \"checker\"\n[[cases]]\n"),
             Contains("judge.checker"));
}

TEST_CASE("cases need [process], and [judge] needs cases", "[job]") {
  JobDir d;
  const std::string no_process = "version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\n[[cases]]\nstdin = \"1\"\n";
  const std::string e = d.error(no_process);
  CHECK_THAT(e, Contains(": cases: "));
  CHECK_THAT(e, Contains("[process]"));
  CHECK_THAT(d.error("version = 1\n[[cases]]\nstdin = \"1\"\n"), Contains("[process]"));
  CHECK_THAT(d.error(with_process("", "[judge]\ncompare = \"exact\"\n")), Contains("judge: [judge] needs [[cases]]"));
}

// --- [outputs], [result] ([network]: network_parser_test.cpp) -------------

TEST_CASE("outputs: guest paths to a host folder beside the job", "[job]") {
  JobDir d;
  const Job job = d.ok(with_process("", "[outputs]\npaths = [\"/work/out/*.txt\", \"/work/report\"]\ndir = \"out\"\n"));
  REQUIRE(job.outputs);
  CHECK(job.outputs->paths == std::vector<std::string>{"/work/out/*.txt", "/work/report"});
  CHECK(job.outputs->dir == d.path("out"));
  CHECK(job.outputs->max_total == (64ull << 20));
  CHECK_FALSE(fs::exists(d.path("out")));  // validation creates nothing
  const Job capped = d.ok(with_process("", "[outputs]\npaths = [\"/a\"]\ndir = \"/tmp/x\"\nmax_total = \"1MiB\"\n"));
  CHECK(capped.outputs->dir == "/tmp/x");
  CHECK(capped.outputs->max_total == (1ull << 20));
}

TEST_CASE("outputs: bad values", "[job]") {
  JobDir d;
  const auto outputs = [](const std::string& keys) { return with_process("", "[outputs]\n" + keys + "\n"); };
  d.expect_error(outputs("paths = [\"out/*.txt\"]\ndir = \"o\""), "[\"out", "outputs.paths", "absolute");
  d.expect_error(outputs("paths = \"/a\"\ndir = \"o\""), "\"/a\"", "outputs.paths", "expected an array of strings");
  d.expect_error(outputs("paths = [\"/a\", 2]\ndir = \"o\""), "2]", "outputs.paths[1]", "expected a string");
  d.expect_error(outputs("paths = [\"/a\"]\ndir = 9"), "9\n", "outputs.dir", "expected a string");
  d.expect_error(outputs("paths = [\"/a\"]\ndir = \"o\"\nmax_total = \"16\""), "\"16\"", "outputs.max_total",
                 "expected a size such as");
  d.expect_error(outputs("paths = [\"/a\"]\ndir = \"o\"\nmax_total = \"0B\""), "\"0B\"", "outputs.max_total",
                 "expected from");
  CHECK_THAT(d.error(outputs("paths = []\ndir = \"o\"")), Contains("outputs.paths"));
  CHECK_THAT(d.error(outputs("dir = \"o\"")), Contains("outputs.paths"));
  CHECK_THAT(d.error(outputs("paths = [\"/a\"]")), Contains("outputs.dir"));
}

TEST_CASE("result: format and a path beside the job", "[job]") {
  JobDir d;
  const Job job = d.ok(with_process("[result]\nformat = \"json\"\npath = \"res/result.json\"\n"));
  CHECK(job.result.format == ResultFormat::kJson);
  CHECK(job.result.path == d.path("res/result.json"));
  CHECK(d.ok(with_process("[result]\nformat = \"human\"\n")).result.format == ResultFormat::kHuman);
  d.expect_error(with_process("[result]\nformat = \"xml\"\n"), "\"xml\"", "result.format",
                 "expected one of \"human\", \"json\"");
  d.expect_error(with_process("[result]\npath = 3\n"), "3\n", "result.path", "expected a string");
}

// --- paths and files on disk -------------------------------------------------

TEST_CASE("relative paths resolve against the job file's folder, not the working directory", "[job]") {
  JobDir d;
  d.write("project/ci/job.toml",
          "version = 1\n[vm]\nroot_disk = \"../images/root.ext4\"\n"
          "[[files]]\nsource = \"src\"\ndestination = \"/work/src\"\n"
          "[process]\nrun = \"cat\"\nstdin_file = \"data/in.txt\"\n"
          "[outputs]\npaths = [\"/work/out\"]\ndir = \"../out\"\n"
          "[result]\npath = \"result.json\"\n");
  d.write("project/images/root.ext4", "disk");
  d.write("project/ci/src/a.c", "");
  d.write("project/ci/data/in.txt", "in");
  auto job = load_job_file(d.path("project/ci/job.toml"), d.options);
  if (!job) FAIL(job.error().message);
  CHECK(job->source == d.path("project/ci/job.toml"));
  CHECK(job->vm.root_disk->path == d.path("project/images/root.ext4"));
  CHECK(job->files[0].source == d.path("project/ci/src"));
  CHECK(job->steps[0].stdin.value == d.path("project/ci/data/in.txt"));
  CHECK(job->outputs->dir == d.path("project/out"));
  CHECK(job->result.path == d.path("project/ci/result.json"));
}

TEST_CASE("a job file that cannot be read is an error naming it", "[job]") {
  JobDir d;
  auto job = load_job_file(d.path("absent.toml"), d.options);
  REQUIRE_FALSE(job);
  CHECK_THAT(job.error().message, Contains(d.path("absent.toml")));
}

TEST_CASE("a NUL character is refused where it would become a C string, allowed in inline data", "[job]") {
  // Once `husk validate` passed such a job and the agent refused the run.
  JobDir d;
  const std::string text = "version = 1\n[process]\nargv = [\"echo\", \"a\\u0000b\"]\nstdin = \"x\\u0000y\"\n";
  d.expect_error(text, "\"a\\u0000b\"", "process.argv[1]", "NUL character");
  const std::string env = "version = 1\n[env]\nA = \"1\\u0000\"\n[process]\nrun = \"true\"\n";
  d.expect_error(env, "\"1\\u0000\"", "env.A", "NUL character");
  const Job ok = d.ok("version = 1\n[process]\nrun = \"cat\"\nstdin = \"x\\u0000y\"\n");
  CHECK(ok.steps.at(0).stdin.value.size() == 3);
}

TEST_CASE("a value with a newline cannot split its problem over lines", "[job]") {
  JobDir d;
  const std::string text = "version = 1\n[process]\nrun = \"true\"\ncwd = 5\n[vm]\nkernel = \"no\\nsuch:1:1: forged\"\n";
  const std::string e = d.error(text);
  INFO(e);
  CHECK(line_count(e) == 2);  // the cwd and the kernel, one line each
  CHECK_THAT(e, Contains("no\\nsuch:1:1: forged"));
}

TEST_CASE("a TOML syntax error is one line even when it quotes a newline", "[job]") {
  // The fuzz target's reproducer (tests/fuzz/crashes/job_toml/syntax_error_quotes_newline).
  JobDir d;
  const std::string text("\x6e\x3d\x66\x0a", 4);
  const std::string e = d.error(text);
  INFO(e);
  CHECK(line_count(e) == 1);
  CHECK_THAT(e, Contains("TOML syntax"));
}

}  // namespace
}  // namespace husk::job
