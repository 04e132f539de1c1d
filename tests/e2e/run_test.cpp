// End-to-end: `husk run` (cli/run_command.cpp, runtime/job/) with the real
// husk binary, the real guest and real files. The job files are in
// tests/e2e/jobs/. Each `husk run` boots one VM (2-4 s in the nested test
// host), so each job packs many checks: every verdict and limit in one job,
// every compare mode in one judge. What is checked: each run's verdict and
// fields in the JSON result, the job's verdict and husk's exit code, streamed
// output, files in and outputs out byte for byte, the serverless --input,
// the result against docs/result.schema.json, validation errors (no boot),
// and that nothing is left behind (husk-vm-* folders, processes) after every
// run, after SIGTERM, SIGINT, SIGHUP, a closed stdout and a kill -9, and
// when the guest starves its own agent.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/sha256.h"
#include "tests/e2e/run_support.h"

using namespace husk::test;
using namespace husk::test::run;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("husk run: every verdict and limit in one job (failures continue_on_error)", "[e2e][run]") {
  Sandbox sb;
  const std::string job = job_path("verdicts.toml");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  INFO("husk stderr (tail): " << tail(run.proc.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));

  // The job: every failure was continue_on_error.
  CHECK(run.proc.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  CHECK(str(res, "message").empty());
  CHECK(str(res, "job") == job);
  CHECK(res.at("cases").empty());
  CHECK(res.at("summary").at("cases") == 0);
  CHECK(res.at("files").empty());
  CHECK(res.at("outputs_truncated") == false);
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"ok", "exit-3", "segv", "wall-time", "polite-kill", "cpu-time", "memory",
                                                      "stdout-cap", "stderr-cap", "file-size", "open-files",
                                                      "fork-bomb", "after"});
  for (size_t i = 0; i < steps.size(); ++i) {
    check_run_shape(steps[i]);
    CHECK(str(steps[i], "kind") == "step");
    if (i > 0) CHECK(steps[i].at("start_ms").get<double>() >= steps[i - 1].at("end_ms").get<double>());
  }

  {
    const json& s = run_named(steps, "ok");
    CHECK(str(s, "verdict") == "OK");
    CHECK(str(s, "message").empty());
    CHECK(s.at("exit_code") == 0);
    CHECK(s.at("signal") == 0);
    CHECK(str(s, "stdout") == "ok-out hi\n");
    CHECK(str(s, "stderr") == "ok-err\n");
    CHECK(s.at("stdout_truncated") == false);
    CHECK(s.at("peak_memory_bytes").get<uint64_t>() > 0);
  }
  {
    const json& s = run_named(steps, "exit-3");
    CHECK(str(s, "verdict") == "RE");
    CHECK(s.at("exit_code") == 3);
    CHECK(s.at("signal") == 0);
    CHECK(contains(str(s, "message"), "exit status 3"));
    CHECK(str(s, "stdout") == "before-exit\n");
  }
  {
    const json& s = run_named(steps, "segv");
    CHECK(str(s, "verdict") == "SG");
    CHECK(s.at("exit_code") == -1);
    CHECK(s.at("signal") == SIGSEGV);
    CHECK(contains(str(s, "message"), "SIGSEGV"));
  }
  {
    const json& s = run_named(steps, "wall-time");
    CHECK(str(s, "verdict") == "TO");
    CHECK(contains(str(s, "message"), "wall time limit of 1 s"));
    CHECK(str(s, "stdout") == "started\n");
    CHECK(s.at("wall_ms").get<double>() >= 1000);
    CHECK(s.at("wall_ms").get<double>() < 5000);  // the agent's deadline, not the sleep nor the host's
    CHECK(s.at("cpu_ms").get<double>() < 1000);
  }
  {
    // kill_signal = SIGTERM: the handler ran (its output and exit status),
    // the verdict is still TO, and SIGKILL was not needed.
    const json& s = run_named(steps, "polite-kill");
    CHECK(str(s, "verdict") == "TO");
    CHECK(str(s, "stdout") == "started\ngot-term\n");
    CHECK(s.at("exit_code") == 7);
    CHECK(s.at("wall_ms").get<double>() >= 1000);
    CHECK(s.at("wall_ms").get<double>() < 3500);
  }
  {
    const json& s = run_named(steps, "cpu-time");
    CHECK(str(s, "verdict") == "TO");
    CHECK(contains(str(s, "message"), "CPU time limit of 1 s"));
    CHECK(s.at("cpu_ms").get<double>() >= 900);
    CHECK(s.at("cpu_ms").get<double>() < 10000);
  }
  {
    const json& s = run_named(steps, "memory");
    CHECK(str(s, "verdict") == "ML");
    CHECK(contains(str(s, "message"), "memory limit of 32 MiB"));
    CHECK(s.at("peak_memory_bytes").get<uint64_t>() > (16u << 20));
    CHECK(s.at("peak_memory_bytes").get<uint64_t>() <= (32u << 20));
  }
  const std::string stdout_kept = repeated_prefix("ZZZZZZZZZZZZZZZ\n", 64 * 1024);
  {
    const json& s = run_named(steps, "stdout-cap");
    CHECK(str(s, "verdict") == "OL");
    CHECK(contains(str(s, "message"), "stdout"));
    CHECK(s.at("stdout_truncated") == true);
    CHECK(s.at("stderr_truncated") == false);
    // The schema: "bytes the program wrote, up to stdout_max".
    CHECK(s.at("stdout_bytes") == 64 * 1024);
    CHECK(str(s, "stdout") == stdout_kept);
  }
  const std::string stderr_kept = repeated_prefix("EEEEEEE\n", 1024);
  {
    const json& s = run_named(steps, "stderr-cap");
    CHECK(str(s, "verdict") == "OL");
    CHECK(contains(str(s, "message"), "stderr"));
    CHECK(s.at("stderr_truncated") == true);
    CHECK(s.at("stdout_truncated") == false);
    CHECK(s.at("stderr_bytes") == 1024);
    CHECK(str(s, "stderr") == stderr_kept);
  }
  {
    // Needs the agent's RLIMIT_FSIZE (proto::Limits::file_size).
    const json& s = run_named(steps, "file-size");
    CHECK(str(s, "verdict") == "SG");
    CHECK(s.at("signal") == SIGXFSZ);
    CHECK(contains(str(s, "message"), "SIGXFSZ"));
  }
  {
    // Needs the agent's RLIMIT_NOFILE (proto::Limits::open_files).
    const json& s = run_named(steps, "open-files");
    CHECK(str(s, "verdict") == "RE");
    CHECK(s.at("exit_code").get<int>() > 0);
    CHECK(str(s, "stdout").empty());
    CHECK_FALSE(str(s, "stderr").empty());
  }
  {
    const json& s = run_named(steps, "fork-bomb");
    CHECK((str(s, "verdict") == "RE" || str(s, "verdict") == "SG"));
    CHECK(contains(str(s, "message"), "process limit of 24 reached"));
    CHECK(s.at("wall_ms").get<double>() < 30000);
  }
  {
    // The VM lived on; the file the file_size step wrote stopped at 64 KiB.
    const json& s = run_named(steps, "after");
    CHECK(str(s, "verdict") == "OK");
    CHECK(str(s, "stdout") == "65536\nalive\n");
  }

  // Streamed output: each step's stdout in order, the capped one cut at
  // exactly 64 KiB; the capped stderr at exactly 1 KiB.
  const std::string before_cap = "ok-out hi\nbefore-exit\nstarted\nstarted\ngot-term\n";
  CHECK(run.proc.out.size() == before_cap.size() + stdout_kept.size() + std::string("65536\nalive\n").size());
  CHECK(run.proc.out == before_cap + stdout_kept + "65536\nalive\n");
  CHECK(contains(run.proc.err, "ok-err\n"));
  CHECK(contains(run.proc.err, stderr_kept));
  CHECK_FALSE(contains(run.proc.err, stderr_kept + "E"));

  // The timeline is in order and ends after the last step.
  const json& t = res.at("timeline");
  CHECK(t.at("kernel_entry_ms").get<double>() > 0);
  CHECK(t.at("agent_ready_ms").get<double>() > t.at("kernel_entry_ms").get<double>());
  CHECK(steps[0].at("start_ms").get<double>() >= t.at("agent_ready_ms").get<double>());
  CHECK(t.at("shutdown_ms").get<double>() >= steps.back().at("end_ms").get<double>());
  CHECK(t.at("end_ms").get<double>() >= t.at("shutdown_ms").get<double>());
  const double now_ms = static_cast<double>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  CHECK(t.at("vmm_start_unix_ms").get<double>() > now_ms - 600e3);
  CHECK(t.at("vmm_start_unix_ms").get<double>() < now_ms);
  // The guest's own boot moments from the real kernel's log and the agent,
  // in order: the kernel first, then PID 1, then the agent answering.
  {
    const json& guest = t.at("guest");
    std::vector<std::string> names;
    double last = -1;
    for (const json& m : guest) {
      names.push_back(str(m, "mark"));
      CHECK(m.at("ms").get<double>() >= last);
      last = m.at("ms").get<double>();
    }
    INFO(guest.dump());
    REQUIRE(names.size() >= 4);
    CHECK(names.front() == "kernel_start");
    CHECK(std::find(names.begin(), names.end(), "initcalls_done") != names.end());
    const auto init = std::find(names.begin(), names.end(), "init_start");
    CHECK(init != names.end());
    // PID 1's own steps, after the kernel started it.
    for (const char* step : {"agent_mounts", "agent_loopback", "agent_cgroups", "agent_listening"}) {
      INFO(step);
      CHECK(std::find(init, names.end(), step) != names.end());
    }
    CHECK(names.back() == "agent_ready");
    // The guest's clock at ready is within the host's kernel entry to ready
    // (its clock starts after the first instruction; slack for the skew).
    CHECK(last <= t.at("agent_ready_ms").get<double>() - t.at("kernel_entry_ms").get<double>() + 250);
  }

  check_nothing_left(sb);
}

TEST_CASE("husk run: a failing step without continue_on_error ends the job", "[e2e][run]") {
  Sandbox sb;
  const HuskRun run = husk_run(sb, job_path("stop_on_error.toml"));
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "RE");
  CHECK(contains(str(res, "message"), "fails"));
  CHECK(contains(str(res, "message"), "exit status 4"));
  // The later step and [process] did not run and are left out.
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"first", "fails"});
  CHECK(str(res.at("steps")[0], "verdict") == "OK");
  CHECK(str(res.at("steps")[1], "verdict") == "RE");
  CHECK(res.at("steps")[1].at("exit_code") == 4);
  CHECK(run.proc.out == "first-ran\nfails-ran\n");
  check_nothing_left(sb);
}

TEST_CASE("husk run: a judge with each compare mode (OK and WA cases) and a TO case", "[e2e][run]") {
  Sandbox sb;
  const HuskRun run = husk_run(sb, job_path("judge/judge.toml"));
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "WA");
  CHECK(contains(str(res, "message"), "exact-wa"));  // the first case that failed
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"check"});
  CHECK(str(res.at("steps")[0], "verdict") == "OK");

  struct Expect {
    const char* name;
    const char* verdict;
    const char* compare;
  };
  // The schema: compare is "none" for a case without an expected output.
  const std::vector<Expect> expect = {
      {"exact-ok", "OK", "exact"},
      {"exact-wa", "WA", "exact"},
      {"trailing-ok", "OK", "trailing-whitespace"},
      {"trailing-wa", "WA", "trailing-whitespace"},
      {"tokens-ok", "OK", "tokens"},
      {"tokens-wa", "WA", "tokens"},
      {"checker-ok", "OK", "checker"},
      {"checker-wa", "WA", "checker"},
      {"files-ok", "OK", "exact"},
      {"no-expected", "OK", "none"},
      {"time-limit", "TO", "trailing-whitespace"},
  };
  const json& cases = res.at("cases");
  REQUIRE(cases.size() == expect.size());
  for (size_t i = 0; i < expect.size(); ++i) {
    const json& c = cases[i];
    INFO("case: " << c.dump().substr(0, 1500));
    CHECK(str(c, "name") == expect[i].name);
    CHECK(str(c, "kind") == "case");
    CHECK(str(c, "verdict") == expect[i].verdict);
    CHECK(str(c, "compare") == expect[i].compare);
    check_run_shape(c);
  }
  CHECK(str(run_named(cases, "exact-ok"), "stdout") == "3\n");
  CHECK(str(run_named(cases, "exact-wa"), "stdout") == "3\n");
  CHECK(str(run_named(cases, "trailing-ok"), "stdout") == "3\n4\n");
  CHECK(str(run_named(cases, "tokens-ok"), "stdout") == "30\n10\n");
  CHECK(str(run_named(cases, "files-ok"), "stdout") == "42\n0\n");  // from tests/pair.in
  CHECK(str(run_named(cases, "no-expected"), "stdout") == "10\n");
  CHECK(contains(str(run_named(cases, "checker-wa"), "message"), "checker-says: wanted 8, got 7"));
  CHECK(contains(str(run_named(cases, "time-limit"), "message"), "wall time limit of 1 s"));
  CHECK(run_named(cases, "time-limit").at("wall_ms").get<double>() < 5000);

  const json& summary = res.at("summary");
  CHECK(summary.at("cases") == 11);
  CHECK(summary.at("passed") == 6);
  CHECK(summary.at("by_verdict") == json({{"OK", 6}, {"WA", 4}, {"TO", 1}}));
  check_nothing_left(sb);
}

TEST_CASE("husk run: files in and outputs out (modes; empty folder; glob; odd names; cap)", "[e2e][run]") {
  Sandbox sb;
  const std::string dir = sb.copy_job("files");
  // What git cannot hold: an empty folder, and modes that a umask would change.
  fs::create_directory(dir + "/tree/empty");
  REQUIRE(::chmod((dir + "/tree/run.sh").c_str(), 0775) == 0);
  REQUIRE(::chmod((dir + "/tree/a/b/nested.txt").c_str(), 0664) == 0);
  REQUIRE(::chmod((dir + "/single.txt").c_str(), 0644) == 0);  // the job's mode "0600" wins

  const HuskRun run = husk_run(sb, dir + "/files.toml");
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"check", "make"});
  const json& check = res.at("steps")[0];
  CHECK(str(check, "verdict") == "OK");
  CHECK(str(check, "stdout") ==
        "600 12 single.txt\n"
        "775 26 tree/run.sh\n"
        "664 15 tree/a/b/nested.txt\n"
        "directory tree/empty\n"
        "directory tree/a\n"
        "0\n"
        "nested content\n"
        "run-sh-ran\n");
  CHECK(str(res.at("steps")[1], "verdict") == "OK");

  // The outputs: the glob's two .txt files, the folder's three files (a name
  // with a newline, one with the byte 0xff), then big.txt cut at the 4 KiB
  // cap; late.txt comes after the cap and is left out.
  const fs::path out = fs::path(dir) / "out";
  std::string seq;
  for (int i = 1; i <= 2000; ++i) seq += std::to_string(i) + "\n";
  const std::map<std::string, std::string> expect_host = {
      {"out/glob/a.txt", "one"},
      {"out/glob/b.txt", "two2"},
      {"out/dir/new\nline", "nl"},
      {"out/dir/bad\xffname", "bad"},
      {"out/dir/sub/deep.bin", "deep"},
      {"out/big.txt", seq.substr(0, 4096 - 16)}};
  std::map<std::string, std::string> got_host;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    if (e.is_regular_file()) got_host[fs::relative(e.path(), out).string()] = read_file(e.path());
  }
  CHECK(got_host == expect_host);
  CHECK(res.at("outputs_truncated") == true);

  // The JSON names each file (a name that is not UTF-8 has U+FFFD in place
  // of its bad byte) with its host path, size and sha256.
  const json& files = res.at("files");
  REQUIRE(files.size() == expect_host.size());
  uint64_t total = 0;
  std::set<std::string> guest_paths;
  for (const json& f : files) {
    INFO("file: " << f.dump());
    const std::string guest = str(f, "guest_path");
    guest_paths.insert(guest);
    std::string rel = guest.substr(1);
    const size_t bad = rel.find("\xEF\xBF\xBD");
    if (bad != std::string::npos) rel.replace(bad, 3, "\xff");
    REQUIRE(expect_host.count(rel) == 1);
    const std::string& bytes = expect_host.at(rel);
    CHECK(f.at("size") == bytes.size());
    CHECK(str(f, "sha256") == husk::sha256_hex(bytes));
    CHECK(f.at("truncated") == (rel == "out/big.txt"));
    if (bad == std::string::npos) {
      CHECK(str(f, "host_path") == (out / rel).string());
      CHECK(read_file(str(f, "host_path")) == bytes);
    }
    total += f.at("size").get<uint64_t>();
  }
  CHECK(total == 4096);
  CHECK(guest_paths.count("/out/glob/c.log") == 0);
  CHECK(guest_paths.count("/out/late.txt") == 0);
  // Outputs come in the order of [outputs] paths.
  CHECK(str(files[0], "guest_path") == "/out/glob/a.txt");
  CHECK(str(files[1], "guest_path") == "/out/glob/b.txt");
  CHECK(str(files.back(), "guest_path") == "/out/big.txt");
  check_nothing_left(sb);
}

TEST_CASE("husk run: a function answers on stdout (--input -) and one that exits 1 makes husk exit 1",
          "[e2e][run]") {
  Sandbox sb;
  // 200 KiB of request, every byte value: tr a-z A-Z changes only a-z.
  std::string request;
  for (size_t i = 0; i < 200 * 1024; ++i) request += static_cast<char>((i * 7 + i / 256) % 256);
  std::string response = request;
  for (char& c : response) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  {
    const HuskRun run = husk_run(sb, (source_root() / "examples" / "function.toml").string(), {"--input", "-"}, request);
    REQUIRE(run.result.is_object());
    INFO("result: " << brief(run.result));
    CHECK(run.proc.exit_code == 0);
    CHECK(run.proc.out.size() == response.size());
    CHECK(run.proc.out == response);
    CHECK(str(run.result, "verdict") == "OK");
    REQUIRE(run.result.at("steps").size() == 1);
    const json& p = run.result.at("steps")[0];
    CHECK(str(p, "kind") == "process");
    CHECK(str(p, "name") == "process");
    CHECK(p.at("stdout_bytes") == response.size());
  }
  {
    const HuskRun run = husk_run(sb, job_path("fail_function.toml"), {"--input", "-"}, "the request\n");
    REQUIRE(run.result.is_object());
    INFO("result: " << brief(run.result));
    CHECK(run.proc.exit_code == 1);
    CHECK(run.proc.out == "the request\n");
    CHECK(contains(run.proc.err, "function-failed\n"));
    CHECK(str(run.result, "verdict") == "RE");
    REQUIRE(run.result.at("steps").size() == 1);
    CHECK(run.result.at("steps")[0].at("exit_code") == 1);
  }
  check_nothing_left(sb);
}

TEST_CASE("husk run and validate: a bad job file is exit 2 at file:line:column and nothing boots", "[e2e][run]") {
  Sandbox sb;
  const std::string bad = job_path("invalid.toml");
  const std::vector<std::string> problems = {
      bad + ":7:11: process.timeout: expected a duration",
      bad + ":9:2: unknown key 'limts' (did you mean 'limits'?)",
      bad + ":13:10: files[0].source: ",
  };
  {
    const ProcessResult r = run_process({"env", "TMPDIR=" + sb.tmp, husk_bin(), "run", bad}, 60);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    for (const std::string& p : problems) CHECK(contains(r.err, p));
    CHECK(r.out.empty());
    CHECK(r.seconds < 10);  // no boot (a boot in the test host alone takes 2 s or more)
    CHECK(fs::is_empty(sb.tmp));
  }
  {
    const ProcessResult r = run_process({husk_bin(), "validate", bad}, 60);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    for (const std::string& p : problems) CHECK(contains(r.err, p));
  }
  const std::vector<std::string> good = {
      (source_root() / "examples" / "hello.toml").string(),
      (source_root() / "examples" / "function.toml").string(),
      (source_root() / "examples" / "judge" / "judge.toml").string(),
      job_path("verdicts.toml"),
      job_path("judge/judge.toml"),
      job_path("files/files.toml"),
  };
  {
    std::vector<std::string> argv{husk_bin(), "validate"};
    argv.insert(argv.end(), good.begin(), good.end());
    const ProcessResult r = run_process(argv, 60);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 0);
    for (const std::string& g : good) CHECK(contains(r.out, g + ": valid"));
    CHECK(r.err.empty());
  }
  {
    // One bad file among good ones: exit 2, the good ones still reported.
    const ProcessResult r = run_process({husk_bin(), "validate", good[0], bad, good[1]}, 60);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.out, good[0] + ": valid"));
    CHECK(contains(r.out, good[1] + ": valid"));
    CHECK(contains(r.err, problems[1]));
  }
  {
    // Bad input and bad options are exit 2 too, before anything boots.
    const std::string function = good[1];
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"run", function, "--input", sb.dir.file("no-such-request")},
          std::vector<std::string>{"run", sb.dir.file("no-such-job.toml")},
          std::vector<std::string>{"run", function, "--no-such-option"},
          std::vector<std::string>{"run", function, "--vcpus", "99"},
          std::vector<std::string>{"run", function, "--memory", "1"}}) {
      std::vector<std::string> argv{"env", "TMPDIR=" + sb.tmp, husk_bin()};
      argv.insert(argv.end(), args.begin(), args.end());
      const ProcessResult r = run_process(argv, 60);
      INFO("husk " << args[0] << " " << args[1] << " " << args.back() << "\nstderr: " << r.err);
      CHECK(r.exit_code == 2);
      CHECK_FALSE(r.err.empty());
      CHECK(r.out.empty());
      CHECK(r.seconds < 10);
    }
    CHECK(fs::is_empty(sb.tmp));
  }
  {
    // A kernel that is not one: the VM never runs (XX), and the timeline
    // leaves out what never happened (the schema: kernel_entry_ms "absent
    // when the VM never ran", agent_ready_ms "absent when it never did").
    const std::string not_a_kernel = sb.dir.file("not-a-kernel");
    std::ofstream(not_a_kernel) << "not a kernel\n";
    const std::string result = sb.dir.file("result.json");
    const ProcessResult r = run_process({"env", "TMPDIR=" + sb.tmp, husk_bin(), "run", good[0], "--kernel",
                                         not_a_kernel, "--json", "--result", result},
                                        60);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.seconds < 10);
    REQUIRE(fs::exists(result));
    const json res = json::parse(read_file(result), nullptr, false);
    REQUIRE(res.is_object());
    INFO("result: " << brief(res));
    results().keep(result, "not-a-kernel");
    CHECK(str(res, "verdict") == "XX");
    CHECK(contains(str(res, "message"), "did not start"));
    CHECK(res.at("steps").empty());
    CHECK_FALSE(res.at("timeline").contains("kernel_entry_ms"));
    CHECK_FALSE(res.at("timeline").contains("agent_ready_ms"));
    CHECK(vm_folders(sb.tmp).empty());
  }
}

TEST_CASE("husk run: SIGTERM/SIGINT/SIGHUP end it promptly (XX interrupted) and leave nothing", "[e2e][run]") {
  for (const int sig : {SIGTERM, SIGINT, SIGHUP}) {
    DYNAMIC_SECTION("signal " << ::sigabbrev_np(sig)) {
      Sandbox sb;
      constexpr int kAfterMs = 6000;
      const HuskRun run = husk_run(sb, job_path("sleep.toml"), {}, "", kAfterMs, sig);
      INFO("stdout: " << run.proc.out);
      // The signal came while the step ran (boot takes 2-4 s), not at boot.
      CHECK(run.proc.out == "started\n");
      CHECK(run.proc.signal == 0);
      CHECK(run.proc.exit_code == 1);
      CHECK(run.proc.seconds < kAfterMs / 1000.0 + 5);  // the sleep would take 60 s
      REQUIRE(run.result.is_object());
      INFO("result: " << brief(run.result));
      CHECK(str(run.result, "verdict") == "XX");
      CHECK(contains(str(run.result, "message"), "interrupted"));
      check_nothing_left(sb);
    }
  }
}

TEST_CASE("husk run: stdout closed early (| head -1) ends it within seconds and leaves nothing", "[e2e][run]") {
  Sandbox sb;
  const std::string result = sb.dir.file("result.json");
  const std::string script =
      "\"$@\" | head -n 1; echo \"husk-exit=${PIPESTATUS[0]}\" >&2";
  const ProcessResult r = run_process({"env", "TMPDIR=" + sb.tmp, "bash", "-c", script, "bash", husk_bin(), "run",
                                       job_path("yes.toml"), "--kernel", guest_file("vmlinux"), "--initrd",
                                       guest_file("initramfs.cpio"), "--json", "--result", result},
                                      kRunTimeoutS);
  INFO("stderr: " << tail(r.err));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.out == "y\n");
  CHECK(r.seconds < 25);  // boot and a moment; `yes` would run for the job's 60 s
  // husk was not killed by SIGPIPE: it stopped the run and wrote its result.
  const bool exited = contains(r.err, "husk-exit=0") || contains(r.err, "husk-exit=1");
  CHECK(exited);
  REQUIRE(fs::exists(result));
  const json res = json::parse(read_file(result), nullptr, false);
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(contains(str(res, "message"), "closed"));
  results().keep(result, "yes.toml");
  check_nothing_left(sb);
}

TEST_CASE("husk run: a kill -9 leaves its folder and the next run removes it (function --input FILE)",
          "[e2e][run]") {
  Sandbox sb;
  {
    const HuskRun run = husk_run(sb, job_path("sleep.toml"), {}, "", 6000, SIGKILL);
    CHECK(run.proc.signal == SIGKILL);
    CHECK(run.proc.out == "started\n");
    const std::vector<std::string> folders = vm_folders(sb.tmp);
    CAPTURE(folders);
    CHECK(folders.size() == 1);
    const std::vector<std::string> procs = processes_of(sb);
    CAPTURE(procs);
    CHECK(procs.empty());
  }
  // The next run, in the same TMPDIR: a function whose request is a file,
  // with the human result on stderr, so stdout is the response alone.
  const std::string request = sb.dir.file("request.txt");
  {
    std::ofstream(request) << "hello, World 42\nsecond line\n";
  }
  const HuskRun run = husk_run(sb, (source_root() / "examples" / "function.toml").string(), {"--input", request}, "",
                               -1, 0, /*json_result=*/false);
  INFO("stderr: " << tail(run.proc.err));
  CHECK(run.proc.exit_code == 0);
  CHECK(run.proc.out == "HELLO, WORLD 42\nSECOND LINE\n");
  CHECK(contains(run.proc.err, "husk: OK"));
  check_nothing_left(sb);
}

TEST_CASE("husk run: a guest that starves the agent is stopped at the host's deadline (TO)", "[e2e][run]") {
  Sandbox sb;
  const std::string dir = sb.copy_job("hostile");
  // busybox may have no chrt: the job then runs rtspin, its equivalent.
  {
    const ProcessResult cc = run_process({"cc", "-static", "-O2", "-o", dir + "/rtspin", dir + "/rtspin.c"}, 120);
    INFO("cc: " << cc.err);
    REQUIRE(cc.exit_code == 0);
  }
  const HuskRun run = husk_run(sb, dir + "/hostile.toml");
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "TO");
  CHECK(contains(str(res, "message"), "the VM was stopped"));
  // The run that starved the agent is the last one; nothing ran after it.
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"starve"});
  const json& s = res.at("steps")[0];
  CHECK(str(s, "verdict") == "TO");
  CHECK(contains(str(s, "message"), "the VM was stopped"));
  // Stopped at the wall limit (2 s) plus the host's grace (5 s), not later.
  const double took_ms = s.at("end_ms").get<double>() - s.at("start_ms").get<double>();
  CHECK(took_ms >= 6900);
  CHECK(took_ms < 7000 + 3000);
  CHECK(run.proc.seconds < res.at("timeline").at("agent_ready_ms").get<double>() / 1000 + 7 + 5);
  check_nothing_left(sb);
}

// Last in this file, so that it sees the results of the cases above (Catch2
// runs a file's cases in declaration order); run alone, it makes its own.
TEST_CASE("husk run: every JSON result validates against docs/result.schema.json", "[e2e][run]") {
  if (results().files.empty()) {
    Sandbox sb;
    const HuskRun run = husk_run(sb, job_path("judge/judge.toml"));
    REQUIRE(run.result.is_object());
  }
  std::vector<std::string> argv{"python3", (kE2eDir / "check_result_schema.py").string(),
                                (source_root() / "docs" / "result.schema.json").string()};
  argv.insert(argv.end(), results().files.begin(), results().files.end());
  const ProcessResult r = run_process(argv, 180);
  INFO("schema check of " << results().files.size() << " results:\n" << r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
}
