// Where the default guest kernel and initramfs live: beside the husk
// binary's build tree (build/bin/husk -> build/guest/), unless HUSK_KERNEL
// and HUSK_INITRD say otherwise.
#pragma once

#include <string>

namespace husk::cli {

std::string default_kernel_path();
std::string default_initrd_path();

}  // namespace husk::cli
