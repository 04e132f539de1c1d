// The content digest of a folder tree, and what building an ext4 image of it
// takes (blocks and inodes), gathered in the same walk. rootfs_image.h says
// what the digest covers and why; this is the walk behind tree_digest() and
// rootfs_image().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "runtime/common/result.h"

namespace husk::oci {

struct TreeSummary {
  std::string hex;        // SHA-256 of the canonical record stream, lowercase hex
  uint64_t data_kib = 0;  // files, folders and long symlinks rounded up to 4 KiB blocks
  uint64_t entries = 0;   // inodes the tree needs (hard links count once)
  uid_t root_uid = 0;     // the folder's own owner (the image's root folder gets it)
  gid_t root_gid = 0;
};

// Walks `folder` (following it if it is a symlink, nothing below it).
[[nodiscard]] Result<TreeSummary> summarize_tree(const std::string& folder);

}  // namespace husk::oci
