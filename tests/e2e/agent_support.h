// Jobs through the real agent, in-process (AgentClient::exec), for e2e
// tests that drive a VmSession themselves.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/agent/agent_client.h"

namespace husk::test {

inline const std::vector<std::string> kPath{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};

struct Job {
  agent::ExecResult result;
  std::string out;
  std::string err;
};

inline Job exec_job(agent::AgentClient& client, agent::ExecRequest req) {
  if (req.env.empty()) req.env = kPath;
  Job job;
  agent::ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) { job.out.append(d); };
  cb.on_stderr = [&](std::string_view d) { job.err.append(d); };
  auto r = client.exec(req, cb);
  INFO((r ? "" : r.error().message));
  REQUIRE(r);
  job.result = *r;
  return job;
}

inline Job run_sh(agent::AgentClient& client, const std::string& script) {
  agent::ExecRequest req;
  req.argv = {"sh", "-c", script};
  return exec_job(client, req);
}

}  // namespace husk::test
