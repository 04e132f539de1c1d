// The job file's [network] table (docs/job-file.md) to a NetworkSpec.
// Every problem goes to the reader as FILE:LINE:COLUMN: KEY: what was
// expected, like every other table's.
#pragma once

#include <toml++/toml.h>

#include "runtime/job/toml_reader.h"
#include "runtime/net/network_spec.h"

namespace husk::job {

void parse_network(TomlReader& r, const toml::table& t, net::NetworkSpec& spec);

}  // namespace husk::job
