// The initramfs's busybox (Debian's 1.35) crashes in `wget -T` (SIGSEGV,
// here too): the jobs use `timeout 20 wget`. Its date has no %N: times come
// from /proc/uptime. One name is resolved with its nslookup, the others by
// wget itself (glibc's resolver: /etc/hosts, then DNS).
// End-to-end: a job's [network] (runtime/net, the virtio-net device) with
// the real husk binary, the real guest, real passt and a real tap, against
// the lab's servers on the test host itself (tests/e2e/net_lab.h: never an
// outside address). What is checked, each in a job that boots one VM:
//   - egress through passt: the agent configured eth0, the route, the
//     resolver and host.husk.internal; an allowed name (and one through a
//     CNAME, matched by a wildcard) and the host are fetched; a denied
//     address and a denied port fail at once with "No route to host" (the
//     filter's ICMP reply), a denied name does not resolve (NXDOMAIN), and
//     the result counts each refusal with its destination and port;
//   - the same through a tap;
//   - mode none: no interface but loopback, and no network in the result;
//   - the bandwidth limit holds within 10% (the wire rate of a download);
//   - a guest flooding frames (UDP to a denied address, malformed raw
//     frames) is held to its packets_per_second and counted, while a second
//     VM's download and the host's own server go on.
// Nothing is left behind: no passt, no tap, no husk-vm-* folder.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/net_lab.h"
#include "tests/e2e/run_support.h"

using namespace husk::test;
using namespace husk::test::run;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string write_job(const Sandbox& sb, const std::string& name, const std::string& text) {
  const std::string path = sb.dir.file(name);
  std::ofstream(path) << "version = 1\n" << text;
  return path;
}

// The refusal of the result with this destination and protocol, or null.
json refusal(const json& result, const std::string& destination, const std::string& protocol) {
  for (const json& r : result.at("network").at("refused")) {
    if (r.at("destination") == destination && r.at("protocol") == protocol) return r;
  }
  return nullptr;
}

// Interfaces of the machine whose name starts with "husk" (taps husk made).
std::vector<std::string> husk_interfaces() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/sys/class/net")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("husk", 0) == 0 && name != husk::test::net::kLabInterface) out.push_back(name);
  }
  return out;
}

// The egress job, for either backend. The host is reachable on 8081 from
// passt (its gateway is the host's loopback) and on 8082 from a tap (the
// tap's host address).
std::string egress_job(const std::string& backend, int host_port) {
  return fmt::format(R"toml([network]
mode = "egress"
backend = "{0}"
allow = ["mirror.lab:8080", "*.cdn.lab:8080", "host.husk.internal:{1}"]
dns = ["192.168.50.1"]

[[steps]]
name = "interfaces"
run = "ls /sys/class/net; ip -4 -o addr show dev eth0; ip route; cat /etc/resolv.conf /etc/hosts"

[[steps]]
name = "allowed"
run = "timeout 20 wget -q -O - http://mirror.lab:8080/hello"

[[steps]]
name = "cname"
run = "timeout 20 wget -q -O - http://$(nslookup www.cdn.lab | awk '/^Address/ {{ a = $NF }} END {{ print a }}'):8080/hello"

[[steps]]
name = "host"
run = "timeout 20 wget -q -O - http://host.husk.internal:{1}/hello"

[[steps]]
name = "denied-address"
run = "timeout 20 wget -q -O - http://192.168.50.2:8080/hello"
continue_on_error = true

[[steps]]
name = "denied-port"
run = "timeout 20 wget -q -O - http://192.168.50.1:8082/hello"
continue_on_error = true

[[steps]]
name = "denied-name"
run = "nslookup denied.lab"
continue_on_error = true
)toml",
                     backend, host_port);
}

void check_egress(const HuskRun& run, const std::string& backend, int host_port) {
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(str(res, "verdict") == "OK");
  const json& steps = res.at("steps");
  const json& ifs = run_named(steps, "interfaces");
  CHECK(str(ifs, "verdict") == "OK");
  CHECK(contains(str(ifs, "stdout"), "eth0"));
  CHECK(contains(str(ifs, "stdout"), "host.husk.internal"));
  for (const char* name : {"allowed", "cname"}) {
    const json& s = run_named(steps, name);
    CHECK(str(s, "verdict") == "OK");
    CHECK(str(s, "stdout") == "hello from 192.168.50.1:8080\n");
  }
  const json& host = run_named(steps, "host");
  CHECK(str(host, "verdict") == "OK");
  CHECK(contains(str(host, "stdout"), fmt::format(":{}\n", host_port)));
  // Refused at once by the filter's ICMP "administratively prohibited",
  // not after wget's 20 s timeout.
  for (const char* name : {"denied-address", "denied-port"}) {
    const json& s = run_named(steps, name);
    CHECK(str(s, "verdict") == "RE");
    CHECK(contains(str(s, "stderr"), "No route to host"));
    CHECK(s.at("wall_ms").get<double>() < 10000);
  }
  CHECK(str(run_named(steps, "denied-name"), "verdict") == "RE");

  const json& n = res.at("network");
  CHECK(n.at("mode") == "egress");
  CHECK(n.at("backend") == backend);
  CHECK(n.at("bytes_out").get<uint64_t>() > 0);
  CHECK(n.at("bytes_in").get<uint64_t>() > 0);
  const json denied_address = refusal(res, "192.168.50.2", "tcp");
  REQUIRE(denied_address.is_object());
  CHECK(denied_address.at("port") == 8080);
  CHECK(denied_address.at("direction") == "out");
  CHECK(denied_address.at("count").get<uint64_t>() >= 1);
  const json denied_port = refusal(res, "192.168.50.1", "tcp");
  REQUIRE(denied_port.is_object());
  CHECK(denied_port.at("port") == 8082);
  const json denied_name = refusal(res, "denied.lab", "dns");
  REQUIRE(denied_name.is_object());
  CHECK(denied_name.at("count").get<uint64_t>() >= 1);
}

}  // namespace

TEST_CASE("husk run: egress through passt (allowed, denied address, port and name; the host)", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  const HuskRun run = husk_run(sb, write_job(sb, "egress-passt.toml", egress_job("passt", 8081)));
  INFO("husk stderr (tail): " << tail(run.proc.err));
  check_egress(run, "passt", 8081);
  check_nothing_left(sb);
}

TEST_CASE("husk run: egress through a tap, which is gone after the job", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  const HuskRun run = husk_run(sb, write_job(sb, "egress-tap.toml", egress_job("tap", 8082)));
  INFO("husk stderr (tail): " << tail(run.proc.err));
  check_egress(run, "tap", 8082);
  check_nothing_left(sb);
  const std::vector<std::string> taps = husk_interfaces();
  CAPTURE(taps);
  CHECK(taps.empty());
}

TEST_CASE("husk run: mode none has loopback only; open reaches what egress refuses", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  const HuskRun none = husk_run(sb, write_job(sb, "none.toml", R"toml([[steps]]
name = "interfaces"
run = "ls /sys/class/net; cat /sys/class/net/lo/flags"
)toml"));
  INFO("husk stderr (tail): " << tail(none.proc.err));
  REQUIRE(none.result.is_object());
  CHECK(str(none.result, "verdict") == "OK");
  const std::string out = str(run_named(none.result.at("steps"), "interfaces"), "stdout");
  CHECK(out.rfind("lo\n", 0) == 0);
  CHECK_FALSE(contains(out, "eth0"));
  CHECK(contains(out, "0x9"));  // IFF_UP | IFF_LOOPBACK: the agent brought lo up
  CHECK_FALSE(none.result.contains("network"));

  const HuskRun open = husk_run(sb, write_job(sb, "open.toml", R"toml([network]
mode = "open"

[[steps]]
name = "denied-in-egress"
run = "timeout 20 wget -q -O - http://192.168.50.2:8080/hello"
)toml"));
  INFO("husk stderr (tail): " << tail(open.proc.err));
  REQUIRE(open.result.is_object());
  CHECK(str(open.result, "verdict") == "OK");
  CHECK(str(run_named(open.result.at("steps"), "denied-in-egress"), "stdout") == "hello from 192.168.50.2:8080\n");
  CHECK(open.result.at("network").at("mode") == "open");
  check_nothing_left(sb);
}

TEST_CASE("husk run: the bandwidth limit holds within 10%", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  // 2 MiB at 256 KiB/s: about 8 s (through passt a frame is up to 64 KiB:
  // enough of them that one frame more or less is within 4%). The rate counts whole frames, so the
  // check is on the wire: the bytes that came in over the download's time.
  constexpr double kRate = 256 * 1024;
  const HuskRun run = husk_run(sb, write_job(sb, "rate.toml", R"toml([network]
mode = "egress"
allow = ["192.168.50.1:8080"]
bandwidth = "256KiB/s"

[[steps]]
name = "download"
run = "a=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null http://192.168.50.1:8080/bytes/2097152 || exit 1; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b | awk '{ printf \"%d\\n\", ($2 - $1) * 1000 }'"
)toml"));
  INFO("husk stderr (tail): " << tail(run.proc.err));
  REQUIRE(run.result.is_object());
  INFO("result: " << brief(run.result));
  REQUIRE(str(run.result, "verdict") == "OK");
  const double ms = std::stod(str(run_named(run.result.at("steps"), "download"), "stdout"));
  const double bytes_in = run.result.at("network").at("bytes_in").get<double>();
  const double rate = bytes_in / (ms / 1000);
  WARN("bandwidth 256KiB/s: 2 MiB downloaded in " << ms << " ms, " << bytes_in << " bytes on the wire, "
                                                   << rate / kRate * 100 << "% of the limit");
  CHECK(bytes_in > 2097152);
  CHECK(rate <= kRate * 1.10);
  CHECK(rate >= kRate * 0.90);
}

TEST_CASE("husk run: a guest flooding frames is held to its rate; another VM and the host go on", "[e2e][net]") {
  Sandbox flood_sb;
  Sandbox other_sb;
  flood_sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  other_sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  const std::string tool = HUSK_NET_FLOOD;
  // Below what the flooding guest manages in the test host, so that the
  // limit is what holds it: about 1100 frames/s once, but 250 to 470 on
  // 2026-11-30 (in a session of its own and in full e2e runs, with husk
  // static or dynamic), where a limit of 500 failed the lower bound.
  constexpr int kPps = 200;
  constexpr int kFloodSeconds = 12;
  const std::string flood_job = write_job(flood_sb, "flood.toml", fmt::format(R"toml([network]
mode = "egress"
allow = ["192.168.50.1:8080"]
packets_per_second = {0}

[[files]]
source = "{1}"
destination = "/bin/net_flood"

[[steps]]
name = "udp"
run = "net_flood udp 192.168.50.2 9 {2}"

[[steps]]
name = "raw"
run = "net_flood raw eth0 {2}"
)toml",
                                                                             kPps, tool, kFloodSeconds / 2));
  auto flood = std::async(std::launch::async, [&] { return husk_run(flood_sb, flood_job); });
  // The other VM boots while the first floods, then downloads.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const HuskRun other = husk_run(other_sb, write_job(other_sb, "other.toml", R"toml([network]
mode = "egress"
allow = ["192.168.50.1:8080"]

[[steps]]
name = "download"
run = "wget -q -O - http://192.168.50.1:8080/bytes/1048576 | wc -c"
)toml"));
  // The host's own server answers meanwhile.
  const ProcessResult host = run_process({"curl", "-s", "-m", "10", "http://192.168.50.1:8080/hello"}, 20);
  const HuskRun flooded = flood.get();

  INFO("flooding husk stderr (tail): " << tail(flooded.proc.err));
  INFO("other husk stderr (tail): " << tail(other.proc.err));
  CHECK(host.out == "hello from 192.168.50.1:8080\n");
  REQUIRE(other.result.is_object());
  CHECK(str(other.result, "verdict") == "OK");
  CHECK(str(run_named(other.result.at("steps"), "download"), "stdout") == "1048576\n");

  REQUIRE(flooded.result.is_object());
  INFO("flood result: " << brief(flooded.result));
  CHECK(str(flooded.result, "verdict") == "OK");
  const json& n = flooded.result.at("network");
  const double frames = n.at("frames_out").get<double>() + n.at("dropped_out").get<double>();
  const json& steps = flooded.result.at("steps");
  const double flood_s =
      (run_named(steps, "raw").at("end_ms").get<double>() - run_named(steps, "udp").at("start_ms").get<double>()) /
      1000;
  WARN("flood: " << frames << " frames from the guest in " << flood_s << " s (limit " << kPps << "/s), "
                  << n.at("dropped_out").get<uint64_t>() << " refused; the other VM's 1 MiB download: "
                  << run_named(other.result.at("steps"), "download").at("wall_ms").get<double>() << " ms");
  CHECK(frames >= kPps * flood_s * 0.8);          // it flooded up to the limit
  CHECK(frames <= kPps * (flood_s + 1) * 1.10);    // and was held to it
  const json udp = refusal(flooded.result, "192.168.50.2", "udp");
  REQUIRE(udp.is_object());
  CHECK(udp.at("port") == 9);
  CHECK(udp.at("count").get<uint64_t>() > 100);
  check_nothing_left(flood_sb);
  check_nothing_left(other_sb);
}

TEST_CASE("husk run: a published port reaches the guest's server; an unpublished one does not", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  // The guest serves on 8000 (published as the host's 18080) and on 8001
  // (not published) for a while; the host connects to both meanwhile.
  const std::string job = write_job(sb, "publish.toml", R"toml([network]
mode = "egress"
allow = ["192.168.50.1:8080"]
publish = ["18080:8000"]

[[steps]]
name = "serve"
run = "mkdir -p /www && echo served by the guest > /www/index.html && (httpd -f -p 8000 -h /www &) && (httpd -f -p 8001 -h /www &) && sleep 15"
)toml");
  auto run = std::async(std::launch::async, [&] { return husk_run(sb, job); });
  ProcessResult published;
  for (int i = 0; i < 60; ++i) {
    published = run_process({"curl", "-s", "-m", "2", "http://127.0.0.1:18080/index.html"}, 10);
    if (published.out == "served by the guest\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  // passt forwards only the published port: nothing listens on 18081.
  const ProcessResult other = run_process({"curl", "-s", "-m", "2", "http://127.0.0.1:18081/index.html"}, 10);
  const HuskRun done = run.get();
  INFO("husk stderr (tail): " << tail(done.proc.err));
  CHECK(published.out == "served by the guest\n");
  CHECK(other.exit_code != 0);
  CHECK(other.out.empty());
  REQUIRE(done.result.is_object());
  CHECK(str(done.result, "verdict") == "OK");
  CHECK(done.result.at("network").at("bytes_in").get<uint64_t>() > 0);
  check_nothing_left(sb);
}

TEST_CASE("husk run: max_bytes cuts a job's traffic and the result says so", "[e2e][net]") {
  Sandbox sb;
  sb.env.push_back(husk::test::net::Lab::get().passt_setting());
  const HuskRun run = husk_run(sb, write_job(sb, "cap.toml", R"toml([network]
mode = "egress"
allow = ["192.168.50.1:8080"]
max_bytes = "64KiB"

[[steps]]
name = "small"
run = "timeout 20 wget -q -O - http://192.168.50.1:8080/hello"

[[steps]]
name = "big"
run = "timeout 8 wget -q -O /dev/null http://192.168.50.1:8080/bytes/1048576"
continue_on_error = true
)toml"));
  INFO("husk stderr (tail): " << tail(run.proc.err));
  REQUIRE(run.result.is_object());
  INFO("result: " << brief(run.result));
  CHECK(str(run_named(run.result.at("steps"), "small"), "verdict") == "OK");
  CHECK(str(run_named(run.result.at("steps"), "big"), "verdict") != "OK");
  const json& n = run.result.at("network");
  CHECK(n.at("cap_reached") == true);
  CHECK(n.at("bytes_in").get<uint64_t>() + n.at("bytes_out").get<uint64_t>() <= 64 * 1024);
  check_nothing_left(sb);
}

TEST_CASE("husk run: husk killed with SIGKILL leaves no passt and no tap behind", "[e2e][net]") {
  for (const char* backend : {"passt", "tap"}) {
    INFO("backend " << backend);
    Sandbox sb;
    sb.env.push_back(husk::test::net::Lab::get().passt_setting());
    const std::string job = write_job(sb, std::string("kill-") + backend + ".toml",
                                      fmt::format(R"toml([network]
mode = "open"
backend = "{}"

[[steps]]
name = "wait"
run = "sleep 60"
)toml",
                                                  backend));
    // Killed once the job runs (the VM boots in a few seconds).
    const HuskRun run = husk_run(sb, job, {}, "", 12000, SIGKILL);
    CHECK(run.proc.signal == SIGKILL);
    // The VMM process dies with husk (its parent-death signal); passt
    // exits when its socket's other end is gone; the kernel removes a tap
    // with its last fd.
    std::vector<std::string> left;
    for (int i = 0; i < 100; ++i) {
      left = processes_of(sb);
      const std::vector<std::string> taps = husk_interfaces();
      left.insert(left.end(), taps.begin(), taps.end());
      if (left.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CAPTURE(left);
    CHECK(left.empty());
  }
}
