// toml++'s implementation, compiled once into husk_fuzz_runtime with the
// fuzzer's instrumentation and the sanitizers (the Debian package's shared
// library has neither); every other file of the fuzz build includes toml++
// with TOML_HEADER_ONLY=0 and sees declarations only.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
