// husk-seccomp-bake OUT: compiles every thread class's allow-list in the
// enforce and log modes (bpf.h) and writes the programs as C++ arrays into
// OUT, which programs.cpp includes. Run by the build, never installed.
#include <cstdio>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "seccomp/bpf.h"

namespace sc = husk::seccomp;

namespace {

std::string array_name(sc::ThreadClass c, sc::Mode m) {
  return fmt::format("k_{}_{}", sc::class_name(c), sc::mode_name(m));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: husk-seccomp-bake OUT\n");
    return 2;
  }
  std::string text = "// Written by husk-seccomp-bake (seccomp/bake.cpp) from seccomp/allow_list.cpp: do not edit.\n";
  std::string table = "constexpr std::array<std::array<std::span<const sock_filter>, 2>, " +
                      std::to_string(sc::kAllThreadClasses.size()) + "> kPrograms{{\n";
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    table += "    {{";
    for (sc::Mode m : {sc::Mode::kEnforce, sc::Mode::kLog}) {
      auto program = sc::compile_filter(c, m);
      if (!program) {
        std::fprintf(stderr, "husk-seccomp-bake: the %s filter in mode %s: %s\n", std::string(sc::class_name(c)).c_str(),
                     std::string(sc::mode_name(m)).c_str(), program.error().message.c_str());
        return 1;
      }
      text += fmt::format("constexpr sock_filter {}[] = {{\n", array_name(c, m));
      for (const sock_filter& insn : *program) {
        text += fmt::format("    {{{:#06x}, {}, {}, {:#010x}}},\n", insn.code, insn.jt, insn.jf, insn.k);
      }
      text += "};\n";
      table += array_name(c, m) + (m == sc::Mode::kEnforce ? ", " : "");
    }
    table += "}},\n";
  }
  text += table + "}};\n";
  const std::string tmp = std::string(argv[1]) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      std::fprintf(stderr, "husk-seccomp-bake: cannot write %s\n", tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), argv[1]) != 0) {
    std::perror("husk-seccomp-bake: rename");
    return 1;
  }
  return 0;
}
