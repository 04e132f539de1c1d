// sum: adds the integers on a line of text. The C program the CI example
// (examples/ci/ci.toml) builds and tests inside the Debian root disk.
#pragma once

#include <stdbool.h>

// Adds the integers in `line` (separated by blanks) into *total. Returns
// false when the line holds anything else or a sum overflows.
bool sum_line(const char *line, long long *total);
