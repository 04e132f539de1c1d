// Every command the README and docs/ show in a ```sh block runs, on the real
// guest, and exits 0: the documentation cannot rot. Synopses with
// placeholders live in ```text blocks and are not run. Two kinds of line are
// left to other checks, and the test says which: `make` targets (CI runs
// `make test`; `make demo` and the benches are their own targets) and jobs
// that need the Debian root disk when it has not been built
// (`make guest-rootfs-debian`; `make bench-run` runs the CI example).
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/e2e/guest_session.h"

using namespace husk::test;

namespace {

struct DocCommand {
  std::string file;
  int line = 0;
  std::string text;
};

// The commands of the ```sh blocks of one Markdown file; a line ending in
// a backslash continues on the next.
std::vector<DocCommand> sh_commands(const std::string& path, const std::string& shown) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<DocCommand> out;
  std::string line;
  bool in_sh = false;
  int number = 0;
  DocCommand pending;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (!in_sh) continue;
    if (pending.text.empty()) pending = DocCommand{shown, number, ""};
    if (!line.empty() && line.back() == '\\') {
      pending.text += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    pending.text += line;
    if (pending.text.find_first_not_of(' ') != std::string::npos) out.push_back(pending);
    pending = DocCommand{};
  }
  return out;
}

}  // namespace

TEST_CASE("every command in the README and docs/ runs and exits 0", "[e2e][docs]") {
  const std::string root = HUSK_SOURCE_DIR;
  std::vector<DocCommand> commands = sh_commands(root + "/README.md", "README.md");
  for (const auto& entry : std::filesystem::directory_iterator(root + "/docs")) {
    if (entry.path().extension() != ".md") continue;
    auto more = sh_commands(entry.path().string(), "docs/" + entry.path().filename().string());
    commands.insert(commands.end(), more.begin(), more.end());
  }
  REQUIRE(commands.size() >= 10);
  const bool have_debian = std::filesystem::exists(guest_file("vmlinux").substr(0, guest_file("vmlinux").rfind('/')) +
                                                   "/debian.ext4");
  // `husk ...` and `build/bin/husk ...` mean the husk under test.
  const std::regex husk_word(R"((^|[|;&(] *)(build/bin/)?husk )");
  int ran = 0;
  // `--warm` commands make their snapshots here (the home folder's cache
  // may be read-only, as in the test host).
  const TempDir snapshots;
  for (const DocCommand& c : commands) {
    const std::string where = c.file + ":" + std::to_string(c.line);
    if (c.text.rfind("make ", 0) == 0) {
      WARN(where << ": not run here (a make target): " << c.text);
      continue;
    }
    if (c.text.find("examples/ci/") != std::string::npos && !have_debian) {
      WARN(where << ": not run here (needs build/guest/debian.ext4 from `make guest-rootfs-debian`): " << c.text);
      continue;
    }
    const std::string command = std::regex_replace(c.text, husk_word, "$1" + husk_bin() + " ");
    const ProcessResult r = run_process({"env", "HUSK_KERNEL=" + guest_file("vmlinux"),
                                         "HUSK_INITRD=" + guest_file("initramfs.cpio"),
                                         "HUSK_SNAPSHOT_CACHE=" + snapshots.file("cache"), "bash", "-c",
                                         "cd '" + root + "' && { " + command + "\n} </dev/null"},
                                        300);
    INFO(where << ": " << c.text << "\nstdout:\n" << r.out.substr(0, 2000) << "\nstderr:\n" << r.err.substr(0, 4000));
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    ++ran;
  }
  CHECK(ran >= 10);
}
