#!/usr/bin/env python3
"""tests/e2e/oci/make_image.py: a tiny OCI image from busybox-static, no registry.

Usage: make_image.py OUT_DIR [--busybox PATH] [--name NAME]

Writes OUT_DIR/busybox-<hash>.tar and prints its path. The tar is an OCI
image layout (oci-layout, index.json, blobs/sha256/...) that `ctr image
import` and `podman load` both accept, with a docker-archive manifest.json
beside it (podman's `load` tries docker-archive first; containerd reads
either). One uncompressed layer: /bin/busybox and a symlink per applet the
tests use, the folders a runtime mounts over (/proc, /sys, /dev, /tmp, /etc),
and /etc/passwd and /etc/group for root. The image is named NAME
(default localhost/husk-busybox:latest).

<hash> covers this script, the busybox binary and the name, so an existing
file is reused as it is (the tests call this once per run); everything in the
tar is deterministic (mtime 0, uid 0, sorted), so the same inputs give the
same image digest.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

APPLETS = ["sh", "echo", "cat", "sleep", "true", "false", "ls", "env", "id", "ps", "kill",
           "hostname", "mount", "pwd", "printf", "test", "[", "wc", "head", "tr", "stty", "tty",
           "sync", "uname", "grep", "date", "yes", "seq"]
DIRS = ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "run", "var", "var/tmp"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(entries) -> bytes:
    """entries: (TarInfo, data or None), written in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def layer(busybox: bytes) -> bytes:
    entries = []
    for d in DIRS:
        info = tarfile.TarInfo(d)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if d in ("tmp", "var/tmp") else 0o755
        entries.append((info, None))
    info = tarfile.TarInfo("bin/busybox")
    info.size = len(busybox)
    info.mode = 0o755
    entries.append((info, busybox))
    for applet in APPLETS:
        info = tarfile.TarInfo("bin/" + applet)
        info.type = tarfile.SYMTYPE
        info.linkname = "busybox"
        info.mode = 0o777
        entries.append((info, None))
    for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
                       ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        entries.append((info, data))
    return tar_bytes(entries)


def image(busybox: bytes, name: str) -> bytes:
    layer_blob = layer(busybox)
    layer_digest = "sha256:" + sha256(layer_blob)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/e2e/oci/make_image.py"}],
    }
    config_blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = "sha256:" + sha256(config_blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_blob)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer_blob)}],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = "sha256:" + sha256(manifest_blob)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest_blob),
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd names the image by the first, podman (oci-archive)
            # by the second.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    # docker-archive: the same blobs, addressed by path.
    docker_manifest = [{"Config": "blobs/sha256/" + config_digest.split(":")[1],
                        "RepoTags": [name],
                        "Layers": ["blobs/sha256/" + layer_digest.split(":")[1]]}]

    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps(index, sort_keys=True).encode()),
             ("manifest.json", json.dumps(docker_manifest, sort_keys=True).encode())]
    for digest, blob in ((config_digest, config_blob), (layer_digest, layer_blob),
                         (manifest_digest, manifest_blob)):
        files.append(("blobs/sha256/" + digest.split(":")[1], blob))
    entries = []
    for d in ("blobs", "blobs/sha256"):
        info = tarfile.TarInfo(d)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        entries.append((info, None))
    for path, data in files:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = 0o644
        entries.append((info, data))
    return tar_bytes(entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--busybox", default="/bin/busybox")
    parser.add_argument("--name", default="localhost/husk-busybox:latest")
    args = parser.parse_args()
    try:
        with open(args.busybox, "rb") as f:
            busybox = f.read()
    except OSError as e:
        print(f"make_image.py: cannot read busybox ({e}): install the Debian package busybox-static",
              file=sys.stderr)
        return 1
    with open(__file__, "rb") as f:
        key = sha256(f.read() + b"\0" + busybox + b"\0" + args.name.encode())[:16]
    out = os.path.join(args.out_dir, f"busybox-{key}.tar")
    if not os.path.exists(out):
        os.makedirs(args.out_dir, exist_ok=True)
        tmp = f"{out}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(image(busybox, args.name))
        os.replace(tmp, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
