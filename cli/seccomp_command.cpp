#include "cli/seccomp_command.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "seccomp/allow_list.h"
#include "seccomp/programs.h"

namespace husk::cli {

namespace {

using seccomp::Action;
using seccomp::AllowList;
using seccomp::Rule;

// The length of the program husk installs (compiled at build time).
long bpf_instructions(seccomp::ThreadClass c) {
  return static_cast<long>(seccomp::baked_program(c, seccomp::Mode::kEnforce).size());
}

void print_text() {
  for (seccomp::ThreadClass c : seccomp::kAllThreadClasses) {
    const AllowList& list = seccomp::allow_list(c);
    fmt::print("{}: {} system calls ({} rules)\n  runs: {}\n", seccomp::class_name(c),
               seccomp::allowed_syscall_count(list), list.rules.size(), list.runs);
    for (const Rule& r : list.rules) {
      fmt::print("  {:<18} {}\n  {:<18}   {}\n", r.name, seccomp::describe_checks(r), "", r.reason);
    }
    fmt::print("\n");
  }
}

void print_json() {
  nlohmann::json classes = nlohmann::json::array();
  for (seccomp::ThreadClass c : seccomp::kAllThreadClasses) {
    const AllowList& list = seccomp::allow_list(c);
    nlohmann::json syscalls = nlohmann::json::array();
    for (const Rule& r : list.rules) {
      nlohmann::json entry{{"name", r.name}, {"args", seccomp::describe_checks(r)}, {"reason", r.reason}};
      if (r.action == Action::kErrno) entry["errno"] = r.errno_value;
      syscalls.push_back(std::move(entry));
    }
    classes.push_back({{"name", seccomp::class_name(c)},
                       {"runs", list.runs},
                       {"count", seccomp::allowed_syscall_count(list)},
                       {"rules", list.rules.size()},
                       {"bpf_instructions", bpf_instructions(c)},
                       {"syscalls", std::move(syscalls)}});
  }
  fmt::print("{}\n", nlohmann::json{{"classes", std::move(classes)}}.dump(2));
}

void print_counts() {
  fmt::print("| thread class | system calls | rules | BPF instructions |\n| --- | ---: | ---: | ---: |\n");
  for (seccomp::ThreadClass c : seccomp::kAllThreadClasses) {
    const AllowList& list = seccomp::allow_list(c);
    fmt::print("| {} | {} | {} | {} |\n", seccomp::class_name(c), seccomp::allowed_syscall_count(list),
               list.rules.size(), bpf_instructions(c));
  }
}

}  // namespace

void add_seccomp_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("seccomp", "The seccomp allow-lists of husk's thread classes");
  cmd->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  CLI::App* list = cmd->add_subcommand("list", "Print every class's allowed system calls with their reasons");
  list->add_flag("--json", *json, "print the lists as JSON");
  list->callback([json, &exit_code] {
    if (*json) {
      print_json();
    } else {
      print_text();
    }
    exit_code = kExitOk;
  });
  CLI::App* counts = cmd->add_subcommand("counts", "Print the lists' sizes as a Markdown table (the README's)");
  counts->callback([&exit_code] {
    print_counts();
    exit_code = kExitOk;
  });
}

}  // namespace husk::cli
