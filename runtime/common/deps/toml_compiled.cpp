// toml++'s compiled part, built once for the static husk.
//
// The static husk cannot link Debian's shared toml++, and compiling it
// header-only put the parser into every file that includes toml.hpp. So
// the whole build sets TOML_HEADER_ONLY=0 and this one file holds the
// implementation (toml++'s documented TOML_IMPLEMENTATION switch).
#if TOML_HEADER_ONLY
#error "toml_compiled.cpp is for builds with TOML_HEADER_ONLY=0"
#endif

#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
