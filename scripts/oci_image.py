#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (an OCI image layout in a tar) from local files.

No daemon and no registry: the layer is a tar of the given files, the archive is what
`ctr -n k8s.io images import` reads. Used by scripts/kube.sh for the node's pause image and by
tests/node.rs for its probe image. The output is byte-for-byte reproducible (fixed times,
owners and order), so the image digest changes only when a file does.

    oci_image.py --ref keyward.local/pause:3.10.1 --entrypoint /pause --user 65535:65535 \
        --file build/pause:/pause --out pause.tar
"""

import argparse
import gzip
import hashlib
import io
import json
import tarfile


def tar_bytes(entries):
    """A reproducible tar: entries is a list of (name, bytes, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="full image name, e.g. keyward.local/probe:1")
    parser.add_argument("--file", action="append", required=True, help="SRC:DEST (DEST absolute)")
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--arg", action="append", default=[], help="one argument of Cmd")
    parser.add_argument("--user", default="65532:65532")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    files = []
    for spec in sorted(args.file):
        src, dest = spec.rsplit(":", 1)
        if not dest.startswith("/"):
            parser.error(f"{dest}: the path in the image must be absolute")
        with open(src, "rb") as f:
            files.append((dest.lstrip("/"), f.read(), 0o755))
    layer_tar = tar_bytes(files)
    # mtime=0 keeps gzip's header constant too.
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [args.entrypoint], "Cmd": args.arg, "User": args.user},
            "rootfs": {"type": "layers", "diff_ids": [blob(layer_tar)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer), "size": len(layer)}
            ],
        },
        sort_keys=True,
    ).encode()
    tag = args.ref.rsplit(":", 1)[1] if ":" in args.ref.rsplit("/", 1)[-1] else "latest"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": blob(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    # ctr import names the image after io.containerd.image.name.
                    "annotations": {"io.containerd.image.name": args.ref, "org.opencontainers.image.ref.name": tag},
                }
            ],
        },
        sort_keys=True,
    ).encode()
    entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644), ("index.json", index, 0o644)]
    for data in (config, manifest, layer):
        entries.append(("blobs/sha256/" + blob(data).split(":", 1)[1], data, 0o644))
    with open(args.out, "wb") as f:
        f.write(tar_bytes(entries))


if __name__ == "__main__":
    main()
