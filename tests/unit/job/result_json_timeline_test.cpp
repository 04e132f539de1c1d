// The job result's timeline (runtime/job/result_json.h): the VMM's host
// phases as docs/result.schema.json describes them, and left out when the
// VM never ran.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/job/result_json.h"

using namespace husk::job;

TEST_CASE("result json: the timeline's host split, phase by phase", "[job]") {
  JobResult r;
  r.timeline.end_ms = 900;
  r.timeline.kernel_entry_ms = 12.5;
  r.timeline.host = {HostPhase{"process_start", 0.25, 0}, HostPhase{"kvm_opened", 3.5, 1.25},
                     HostPhase{"first_kvm_run", 12.5, 4.75}};
  const auto j = nlohmann::json::parse(result_json(r, "0.1.0"));
  const auto& host = j["timeline"]["host"];
  REQUIRE(host.is_object());
  CHECK(host.size() == 2);
  CHECK(host["phases_ms"].size() == 3);
  CHECK(host["phases_ms"]["process_start"].get<double>() == 0.25);
  CHECK(host["phases_ms"]["kvm_opened"].get<double>() == 3.5);
  CHECK(host["phases_ms"]["first_kvm_run"].get<double>() == 12.5);
  CHECK(host["cpu_ms"]["kvm_opened"].get<double>() == 1.25);
  CHECK(host["cpu_ms"]["first_kvm_run"].get<double>() == 4.75);
}

TEST_CASE("result json: no host split for a VM that never ran", "[job]") {
  JobResult r;
  r.timeline.end_ms = 3;
  const auto j = nlohmann::json::parse(result_json(r, "0.1.0"));
  CHECK_FALSE(j["timeline"].contains("host"));
  CHECK(j["timeline"]["end_ms"].get<double>() == 3);
}
