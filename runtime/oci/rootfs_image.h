// A container's root file system folder (an OCI bundle's root.path: a
// containerd overlay snapshot or a Podman mount) as the guest's root disk:
// a read-only ext4 image built with `mkfs.ext4 -d` and cached by a digest of
// the tree's content, so every container of one image boots from one file
// and only the first pays for the build.
//
// The cache folder holds `<hex>.ext4` (the images, mode 0444), `<hex>.lock`
// (a per-digest flock: one builder, and eviction never races a build or a
// hit) and `<hex>.tmp-*` (an image being built; renamed into place whole, so
// nobody sees half of one, and swept under the lock when its builder died).
//
// What the digest covers, entry by entry, the folder itself first, then
// depth-first with each folder's names sorted bytewise; symlinks are not
// followed:
//   - the relative path, the type, the permission bits (07777: setuid,
//     setgid and sticky too), uid and gid;
//   - regular files: size and the SHA-256 of the bytes; symlinks: the target;
//     character and block devices: major and minor;
//   - extended attributes, names sorted, with their values (file capabilities
//     and ACLs are xattrs, and mkfs -d copies them all);
//   - hard links as mkfs -d makes them: a non-folder with more than one link
//     whose inode was already met in the tree is recorded as "a link to
//     <first path>" (so the digest sees the link structure, which the image
//     keeps, but never an inode number);
//   - a format version, so a change in what is hashed or how images are
//     built never reuses an old image.
// Not covered: times (mkfs copies them, so a cached image carries the times
// of the tree it was first built from), inode numbers, folder sizes (they
// depend on the file system underneath), the link count itself (links from
// outside the tree are not content), and inode flags (mkfs does not copy them).
// Mount points inside the folder are crossed, because mkfs -d crosses them:
// the digest describes exactly the tree that goes into the image.
// The image's root folder has mode 0755 whatever the folder's mode (mkfs -d
// does not copy it); its owner is the folder's (root_owner=).
//
// The tree must not change while it is hashed and built (a bundle's rootfs
// does not before the container starts); a regular file whose size changes
// under the hash is an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "runtime/common/result.h"

namespace husk::oci {

struct ImageCacheOptions {
  std::string dir;        // the cache folder (created, 0700; its parents 0755)
  uint64_t max_bytes = 0;  // 0: no eviction; else least-recently-used images past it are removed
  // Images built or hit within this time are never evicted: rootfs_image
  // returns a path, and its caller needs a moment to open it. Images that a
  // process holds open (a running VM's root disk) are never evicted either.
  std::chrono::seconds keep_recent{300};
};

struct RootfsImage {
  std::string path;    // the ext4 image in the cache (shared read-only by every container of this content)
  std::string digest;  // "sha256:<hex>" of the tree's content
  bool built = false;  // false: it was in the cache already
  std::chrono::milliseconds hash_time{0}, build_time{0};
};

// root: /var/cache/husk/oci-images; else $XDG_CACHE_HOME (or ~/.cache)/husk/oci-images.
[[nodiscard]] std::string default_image_cache_dir();

// The content digest alone, "sha256:<hex>". Errors name the path
// ("rootfs folder /x does not exist", "read /x/etc/shadow: Permission denied").
[[nodiscard]] Result<std::string> tree_digest(const std::string& folder);

// The cached image of `folder`'s content, built first when there is none.
// Concurrent calls (threads or processes) for one content build it once;
// the others wait and get the same path. A hit refreshes the image's mtime
// (the LRU clock). Then, with max_bytes set, the least recently used images
// are removed until the cache's allocated size is within max_bytes, skipping
// the one returned, recent ones (keep_recent), ones held open by any process
// (a write lease cannot be had on them; where leases are off, only
// keep_recent protects them, and an unlinked image stays readable through
// the descriptors already open on it) and ones whose lock is held.
// Sizes are allocated bytes (the images are sparse).
// Errors: a missing folder, a missing mkfs.ext4 ("install the Debian package
// e2fsprogs"), or mkfs's failure with what it said.
[[nodiscard]] Result<RootfsImage> rootfs_image(const std::string& folder, const ImageCacheOptions& cache);

}  // namespace husk::oci
