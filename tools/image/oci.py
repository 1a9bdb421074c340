#!/usr/bin/env python3
"""Assemble keyward's OCI image from unpacked Debian packages and the release binaries.

Called by scripts/image.sh (which fetches, verifies and unpacks the packages); standard library
only. Everything written is a function of the inputs: tar entries in path order, owners 0:0
except the non-root user's home, every mtime the commit's time (SOURCE_DATE_EPOCH), no atime or
user names, gzip with mtime 0 and no file name. Two runs on the same inputs write the same bytes.

    oci.py assemble --packages DIR --binaries DIR --out DIR --tag NAME:TAG --arch ARCH
                    --version V --revision R --epoch SECONDS --source URL --description TEXT

--packages holds one directory per Debian package (`dpkg-deb -x`) and `<package>.control`
(`dpkg-deb -f`). Prints the manifest digest and the path of the OCI layout tarball, one per
line.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile

# The non-root user the chart runs keyward as (securityContext runAsUser/runAsGroup), with the
# name and home distroless gives it.
NONROOT = 65532
ETC_PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
ETC_GROUP = "root:x:0:\nnobody:x:65534:\n" f"nonroot:x:{NONROOT}:\n"
# Kubernetes writes /etc/hosts into every container: look there before DNS, as glibc does on a
# full system (without the file glibc asks DNS first).
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\n"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def kept(path):
    """Whether a file a package ships belongs in the image: the shared libraries and the
    dynamic loader, each package's copyright (its licence, which a binary distribution must
    carry) and os-release (what image scanners read to name the distribution). Not kept: every
    program, the iconv modules (keyward never converts character sets), locales, manuals and
    other documentation, maintainer scripts' helpers."""
    if "/gconv/" in path:
        return False
    if re.fullmatch(r"(usr/)?lib(64)?/([a-z0-9_-]+-linux-gnu/)?[^/]+\.so(\.[0-9.]+)?", path):
        return True
    if re.fullmatch(r"usr/share/doc/[^/]+/copyright", path) or re.fullmatch(r"usr/share/doc/[^/]+", path):
        return True  # the second form: libgcc-s1's doc directory is a symlink to gcc-12-base's
    return path in ("usr/lib/os-release", "etc/os-release")


class Layer:
    """One image layer: entries by path, written sorted."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.entries = {}

    def _info(self, path, kind, mode, owner=0):
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = owner
        info.uname = info.gname = ""
        info.mtime = self.epoch
        return info

    def directory(self, path, mode=0o755, owner=0):
        self.entries[path] = (self._info(path, tarfile.DIRTYPE, mode, owner), None)

    def file(self, path, data, mode=0o644):
        self._parents(path)
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.entries[path] = (info, data)

    def symlink(self, path, target):
        self._parents(path)
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.entries[path] = (info, None)

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.directory(parent)

    def write(self, blobs):
        """The layer as a gzip blob in `blobs`: (descriptor, diff_id)."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # Parents before children: compare paths component by component.
            for path in sorted(self.entries, key=lambda p: p.split("/")):
                info, data = self.entries[path]
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        raw = raw.getvalue()
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        packed = io.BytesIO()
        # mtime=0 and no file name: the gzip header carries nothing of this run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=6) as gz:
            gz.write(raw)
        return write_blob(blobs, packed.getvalue(), LAYER), diff_id


def write_blob(blobs, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as out:
        out.write(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def add_tree(layer, root):
    """The kept files under one unpacked package, with the modes the package gives them."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            path = os.path.relpath(full, root)
            st = os.lstat(full)
            if not kept(path):
                continue
            if stat.S_ISLNK(st.st_mode):
                layer.symlink(path, os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    layer.file(path, f.read(), stat.S_IMODE(st.st_mode))


def ca_bundle(packages):
    """/etc/ssl/certs/ca-certificates.crt as ca-certificates' update-ca-certificates writes it
    on install (its postinst never runs here): every certificate the package ships, in name
    order, each ending with a newline."""
    mozilla = os.path.join(packages, "ca-certificates", "usr/share/ca-certificates/mozilla")
    names = sorted(n for n in os.listdir(mozilla) if n.endswith(".crt"))
    if not names:
        sys.exit(f"oci.py: no certificates under {mozilla}")
    bundle = b""
    for name in names:
        with open(os.path.join(mozilla, name), "rb") as f:
            pem = f.read()
        bundle += pem if pem.endswith(b"\n") else pem + b"\n"
    return bundle


def base_layer(packages, epoch):
    layer = Layer(epoch)
    names = sorted(n for n in os.listdir(packages) if os.path.isdir(os.path.join(packages, n)))
    for name in names:
        add_tree(layer, os.path.join(packages, name))
        # What the package is, where image scanners look for it in images without dpkg's
        # database (the layout distroless uses).
        with open(os.path.join(packages, f"{name}.control"), "rb") as f:
            layer.file(f"var/lib/dpkg/status.d/{name}", f.read())
    layer.file(CA_BUNDLE, ca_bundle(packages))
    layer.file("etc/passwd", ETC_PASSWD.encode())
    layer.file("etc/group", ETC_GROUP.encode())
    layer.file("etc/nsswitch.conf", NSSWITCH.encode())
    layer.directory("home")
    layer.directory("home/nonroot", 0o700, NONROOT)
    layer.directory("tmp", 0o1777)
    return layer, names


# ELF e_machine of each image architecture: a binary built for another one is refused.
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def binaries_layer(binaries, epoch, arch):
    layer = Layer(epoch)
    for name in ("keyward", "kubectl-keyward"):
        path = os.path.join(binaries, name)
        with open(path, "rb") as f:
            data = f.read()
        machine = int.from_bytes(data[18:20], "little") if data[:4] == b"\x7fELF" else None
        if machine != ELF_MACHINE[arch]:
            sys.exit(f"oci.py: {path} is not an ELF executable for {arch}")
        layer.file(f"usr/local/bin/{name}", data, 0o755)
    return layer


def layout_tar(layout, path, epoch):
    """The OCI layout directory as one tarball, in path order with fixed metadata."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(layout):
        for name in dirnames + filenames:
            entries.append(os.path.relpath(os.path.join(dirpath, name), layout))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda p: p.split("/")):
            full = os.path.join(layout, entry)
            info = tarfile.TarInfo(entry)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            if os.path.isdir(full):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, os.path.getsize(full)
                with open(full, "rb") as f:
                    tar.addfile(info, f)


def assemble(args):
    created = datetime.datetime.fromtimestamp(args.epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    layout = os.path.join(args.out, "layout")
    shutil.rmtree(layout, ignore_errors=True)
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)

    base, packages = base_layer(args.packages, args.epoch)
    base_desc, base_diff = base.write(blobs)
    bin_desc, bin_diff = binaries_layer(args.binaries, args.epoch, args.arch).write(blobs)

    labels = {
        "org.opencontainers.image.title": "keyward",
        "org.opencontainers.image.description": args.description,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.ref.name": args.tag,
    }
    config = {
        "architecture": args.arch,
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{NONROOT}:{NONROOT}",
            "Entrypoint": ["/usr/local/bin/keyward"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"SSL_CERT_FILE=/{CA_BUNDLE}"],
            "WorkingDir": "/home/nonroot",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [base_diff, bin_diff]},
        "history": [
            {"created": created, "created_by": "scripts/image.sh: Debian packages " + " ".join(packages)},
            {"created": created, "created_by": "scripts/image.sh: /usr/local/bin/keyward, kubectl-keyward"},
        ],
    }
    config_desc = write_blob(blobs, canonical(config), CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc,
        "layers": [base_desc, bin_desc],
        "annotations": {"org.opencontainers.image.created": created},
    }
    manifest_desc = write_blob(blobs, canonical(manifest), MANIFEST)
    tag = args.tag.rsplit(":", 1)[1] if ":" in args.tag.rsplit("/", 1)[-1] else "latest"
    manifest_desc["platform"] = {"architecture": args.arch, "os": "linux"}
    # containerd names an imported image after io.containerd.image.name (the full reference);
    # other tools (skopeo, crane, oras) read the OCI tag in ref.name. containerd's own export
    # writes both in the same way.
    manifest_desc["annotations"] = {"io.containerd.image.name": args.tag, "org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]}
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))

    name = re.sub(r"[^A-Za-z0-9._-]", "_", args.tag.rsplit("/", 1)[-1])
    tar_path = os.path.join(args.out, f"{name}-{args.arch}.oci.tar")
    with tempfile.NamedTemporaryFile(dir=args.out, delete=False) as tmp:
        pass
    layout_tar(layout, tmp.name, args.epoch)
    os.replace(tmp.name, tar_path)
    print(manifest_desc["digest"])
    print(os.path.abspath(tar_path))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assemble")
    for option in ("packages", "binaries", "out", "tag", "arch", "version", "revision", "source", "description"):
        a.add_argument(f"--{option}", required=True)
    a.add_argument("--epoch", type=int, required=True)
    args = parser.parse_args()
    assemble(args)


if __name__ == "__main__":
    main()
