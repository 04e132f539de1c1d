// The agent's boot marks (guest-agent/src/boot_marks.h): /dev/kmsg records
// parsed (continuation lines, malformed heads and foreign messages give
// nothing), the kernel's moments picked from a log in a real file, the
// report sorted and capped; and the real husk-agent answering BootInfo on
// a Unix socket with its own marks only (outside a VM the kernel's log is
// the machine's, not a guest's).
#include "guest-agent/src/boot_marks.h"

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"
#include "tests/unit/agent/agent_fixture.h"
#include "tests/unit/agent/fake_agent_peer.h"

namespace husk::guest {
namespace {

namespace proto = agent::proto;

// Lines as /dev/kmsg gives them on a husk guest (6.1, quiet), dict lines and
// messages that must not count included.
constexpr const char* kLog =
    "5,0,0,-;Linux version 6.1.0 (root@husk) (gcc 12.2.0) #1 SMP\n"
    " SUBSYSTEM=cpu\n"
    "6,1,0,-;Command line: console=ttyS0 reboot=k panic=-1 quiet\n"
    "6,40,3120,-;Memory: 236000K/261752K available\n"
    "6,41,3200,-;Memory: this one is the second and does not count\n"
    "6,80,48211,-;smp: Brought up 1 node, 2 CPUs\n"
    "6,90,50001,-;devtmpfs: initialized\n"
    "garbage without a head\n"
    "6,91,51000,-;devtmpfs: a second one does not count\n"
    "6,120,91000,-;clocksource: Switched to clocksource kvm-clock\n"
    "6,150,120000,-;Run a foreign message that starts the same way\n"
    "6,200,150500,-;Freeing unused kernel image (initmem) memory: 1024K\n"
    "6,201,150600,-;Run /init as init process\n"
    "6,202,150700,-;Run /sbin/husk-agent as init process\n";

TEST_CASE("boot marks: one kmsg record's time and text", "[unit][agent][boot]") {
  auto r = parse_kmsg_line("6,201,150600,-;Run /init as init process");
  REQUIRE(r);
  CHECK(r->at_us == 150600);
  CHECK(r->text == "Run /init as init process");
  auto extra = parse_kmsg_line("6,3,77,c,extra;text; with semicolons");
  REQUIRE(extra);
  CHECK(extra->at_us == 77);
  CHECK(extra->text == "text; with semicolons");

  CHECK_FALSE(parse_kmsg_line(""));
  CHECK_FALSE(parse_kmsg_line(" SUBSYSTEM=cpu"));
  CHECK_FALSE(parse_kmsg_line("6,1;no time"));
  CHECK_FALSE(parse_kmsg_line("6,1,-5,-;negative"));
  CHECK_FALSE(parse_kmsg_line("6,1,12x,-;junk after the number"));
  CHECK_FALSE(parse_kmsg_line("6,1,99999999999999999999999,-;overflow"));
  CHECK_FALSE(parse_kmsg_line("no head at all"));
}

TEST_CASE("boot marks: the kernel's moments from a log file, first of each", "[unit][agent][boot]") {
  test::TempDir dir;
  const std::string path = dir.file("kmsg");
  std::ofstream(path) << kLog;
  const std::vector<proto::BootMark> marks = kernel_marks(read_kernel_log(path.c_str()));
  const std::vector<proto::BootMark> want = {
      {"kernel_start", 0},          {"memory_ready", 3120},     {"cpus_up", 48211},  {"devtmpfs", 50001},
      {"clocksource", 91000},       {"initcalls_done", 150500}, {"init_start", 150600}};
  CHECK(marks == want);

  // A log cut short gives what it has; no log gives nothing.
  CHECK(kernel_marks("6,1,5,-;Linux version 6.1\n6,2,9,-;Memory: 1K").size() == 2);
  CHECK(read_kernel_log(dir.file("absent").c_str()).empty());
  CHECK(kernel_marks("").empty());
}

TEST_CASE("boot marks: the report is in time order and capped", "[unit][agent][boot]") {
  const proto::BootReport r = boot_report({{"kernel_start", 0}, {"init_start", 900}},
                                          {{"agent_listening", 950}, {"agent_ready", 400}});
  REQUIRE(r.marks.size() == 4);
  CHECK(r.marks[0].name == "kernel_start");
  CHECK(r.marks[1].name == "agent_ready");
  CHECK(r.marks[3].name == "agent_listening");

  std::vector<proto::BootMark> many(proto::kMaxBootMarks + 5, proto::BootMark{"x", 1});
  CHECK(boot_report(many, {}).marks.size() == proto::kMaxBootMarks);
}

TEST_CASE("boot marks: husk-agent answers BootInfo with its own marks", "[unit][agent][boot]") {
  agent::test::AgentProcess process;
  agent::AgentClient client = process.client();
  auto marks = client.boot_info();
  REQUIRE(marks);
  // Not PID 1: no kernel marks, only the agent's, listening before ready.
  REQUIRE(marks->size() == 2);
  CHECK((*marks)[0].name == "agent_listening");
  CHECK((*marks)[1].name == "agent_ready");
  CHECK((*marks)[0].at_us <= (*marks)[1].at_us);
  CHECK((*marks)[1].at_us > 0);
  // Asked again, the same moments.
  auto again = client.boot_info();
  REQUIRE(again);
  CHECK(*again == *marks);
}

}  // namespace
}  // namespace husk::guest

namespace husk::agent::test {
namespace {

// An agent that answers BootInfo with `report`.
Result<std::vector<proto::BootMark>> ask(const proto::BootReport& report) {
  FakeAgentPeer peer([report](FakeAgentPeer& p) {
    p.answer_hello();
    if (auto f = p.request()) p.send(f->id, report);
    p.ignore_all();
  });
  AgentClient client = peer.client(std::chrono::seconds(5));
  REQUIRE(client.hello());
  return client.boot_info();
}

TEST_CASE("boot marks: the host takes only well-formed marks in order", "[unit][agent][boot]") {
  auto good = ask({{{"kernel_start", 0}, {"init_start", 900}, {"agent_ready", 900}}});
  REQUIRE(good);
  CHECK(good->size() == 3);

  for (const proto::BootReport& bad :
       {proto::BootReport{{{"init_start", 900}, {"kernel_start", 10}}},          // time runs back
        proto::BootReport{{{"Kernel", 1}}},                                       // not [a-z0-9_]
        proto::BootReport{{{"", 1}}},                                             // empty
        proto::BootReport{{{"a\"b", 1}}},                                         // would be JSON
        proto::BootReport{{{std::string(33, 'a'), 1}}}}) {                        // too long
    auto r = ask(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == EPROTO);
  }
}

}  // namespace
}  // namespace husk::agent::test
