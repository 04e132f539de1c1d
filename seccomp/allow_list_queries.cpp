// Questions asked of the allow-lists (allow_list.h): their sizes, their
// conditions in words, and whether one class's filter lets another class's
// calls through (for a thread started under an inherited filter).
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "seccomp/allow_list.h"

namespace husk::seccomp {

namespace {

std::string describe_check(const ArgCheck& check) {
  std::string out = fmt::format("arg{}", check.index);
  if (check.mask != ArgCheck::kWholeArgument) out += fmt::format(" & {}", check.mask_name);
  if (check.values.size() == 1) return out + fmt::format(" == {}", check.values.front().name);
  out += " in {";
  for (size_t i = 0; i < check.values.size(); ++i) {
    out += fmt::format("{}{}", i == 0 ? "" : ", ", check.values[i].name);
  }
  return out + "}";
}

bool values_within(const ArgCheck& inner, const ArgCheck& outer) {
  for (const Value& v : inner.values) {
    bool found = false;
    for (const Value& o : outer.values) found = found || o.value == v.value;
    if (!found) return false;
  }
  return true;
}

// Whether every call `inner` matches is matched by `outer` too: each of
// outer's conditions is implied by one of inner's on the same argument.
bool rule_within(const Rule& inner, const Rule& outer) {
  if (inner.nr != outer.nr) return false;
  for (const ArgCheck& o : outer.checks) {
    bool implied = false;
    for (const ArgCheck& i : inner.checks) {
      implied = implied ||
                (i.index == o.index && i.mask == o.mask && i.width32 == o.width32 && values_within(i, o));
    }
    if (!implied) return false;
  }
  return true;
}

}  // namespace

size_t allowed_syscall_count(const AllowList& list) {
  std::set<int> numbers;
  for (const Rule& r : list.rules) {
    if (r.action == Action::kAllow) numbers.insert(r.nr);
  }
  return numbers.size();
}

std::string describe_checks(const Rule& rule) {
  std::string out;
  for (const ArgCheck& check : rule.checks) out += (out.empty() ? "" : ", ") + describe_check(check);
  if (out.empty()) out = "any";
  if (rule.action == Action::kErrno) out += fmt::format(" -> {}", strerrorname_np(rule.errno_value));
  return out;
}

std::vector<std::string> not_covered(ThreadClass outer, ThreadClass inner) {
  const AllowList& o = allow_list(outer);
  std::vector<std::string> missing;
  for (const Rule& r : allow_list(inner).rules) {
    // Under both filters the stricter answer wins: an allowed call needs
    // outer's allow; a refused one (errno) must not meet outer's trap.
    bool ok = false;
    for (const Rule& candidate : o.rules) {
      const bool action_fits = r.action == Action::kErrno || candidate.action == Action::kAllow;
      ok = ok || (action_fits && rule_within(r, candidate));
    }
    if (!ok) missing.push_back(fmt::format("{}({})", r.name, describe_checks(r)));
  }
  return missing;
}

}  // namespace husk::seccomp
