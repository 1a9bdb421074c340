#!/usr/bin/env bash
# keyward's OCI image, built without a container engine: Debian packages (the C runtime and CA
# certificates, what distroless' `cc` image holds) at the exact versions tools/image/base.lock
# pins, the release binaries, assembled reproducibly by tools/image/oci.py. The release
# workflow publishes what this script builds; the tests import what it builds into a node.
#
# Usage: scripts/image.sh build|load|fetch|lock [OPTIONS]
#
#   build [--tag NAME:TAG] [--target TRIPLE] [--binaries DIR [--strip-debug]] [--out DIR]
#         [--source URL]
#             `cargo build --release --locked` of keyward and kubectl-keyward (unless --binaries
#             names a directory that holds both), the locked Debian packages (apt-get download,
#             each checked against the lock's SHA-256, cached by hash), unpacked with
#             dpkg-deb -x; then an OCI image layout tarball under --out (default target/image).
#             --strip-debug: ship copies without debug information (objcopy; for a debug
#             build's 380 MB binaries, as the tests and local nodes use).
#             --tag: default keyward.local/keyward:<Cargo.toml version>. --target: a Rust target
#             triple (x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu; default the host's);
#             cross-compiling to aarch64 needs Debian's gcc-aarch64-linux-gnu.
#             Labels: version from Cargo.toml, revision the git commit (`-dirty` when tracked
#             files differ from it), created the commit's time, which is also every file's mtime
#             (SOURCE_DATE_EPOCH wins when set). Same inputs, same digest.
#             Prints on stdout: KEYWARD_IMAGE=<tag>@sha256:<manifest digest> and
#             KEYWARD_IMAGE_TAR=<path>.
#   load [TAR]
#             import an image tarball (default: build one first) into the containerd of the node
#             `scripts/kube.sh up --node` started: `ctr -n k8s.io images import` with the ctr of
#             $KEYWARD_KUBE_BIN at $KEYWARD_CONTAINERD_ADDRESS (both required), then check that
#             containerd knows the image by its name.
#   fetch [ARCH]
#             download and check the locked packages of ARCH (default: the machine's) into the
#             cache, as build would: CI's install step, so that a package Debian replaced is
#             reported before any test runs.
#   lock      take the current version of each base package for amd64 and arm64 from Debian and
#             rewrite tools/image/base.lock (review the diff and commit it). Needed when a
#             Debian point release has replaced a locked version, which `build` then reports.
#
# Environment (all optional):
#   KEYWARD_IMAGE_CACHE   downloaded packages and apt's lists (default ~/.cache/keyward/image)
#   SOURCE_DATE_EPOCH     the image's time instead of the commit's
#
# Progress goes to stderr; stdout carries only the KEY=VALUE lines.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOCK=$REPO_ROOT/tools/image/base.lock
CACHE=${KEYWARD_IMAGE_CACHE:-${KEYWARD_KUBE_CACHE:-$HOME/.cache/keyward}/image}
# The Debian release the image is made from: the one the machines that build it run (and the
# release workflow's build container), so that the binaries link against the glibc they run on.
DEBIAN_CODENAME=bookworm
# What distroless' cc image holds, less what keyward does not need: it links neither OpenSSL
# (rustls) nor reads the local time zone (chrono's Utc only), so no libssl3 and no tzdata.
# gcc-12-base carries libgcc-s1's copyright; base-files the os-release scanners read.
PACKAGES=(base-files ca-certificates gcc-12-base libc6 libgcc-s1)
ARCHES=(amd64 arm64)

# Scratch directories, removed on exit however the script ends.
WORK=""
trap 'if [[ -n $WORK ]]; then rm -rf "$WORK"; fi' EXIT

log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

arch_of_target() {
    case $1 in
        x86_64-unknown-linux-gnu) echo amd64 ;;
        aarch64-unknown-linux-gnu) echo arm64 ;;
        *) die "unsupported target $1 (x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu)" ;;
    esac
}

# apt with a state of its own per architecture (lists, cache, an empty dpkg status) over the
# machine's Debian sources: it sees arm64 packages on an amd64 machine without changing the
# machine's dpkg architectures or lists.
apt_opts() {  # ARCH
    local state=$CACHE/apt-$1
    mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
    [[ -f $state/status ]] || : > "$state/status"
    printf '%s\n' -q -o "APT::Architecture=$1" -o "APT::Architectures::=$1" \
        -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status" \
        -o "Dir::Cache=$state/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
}

apt_update() {  # ARCH
    local opts
    mapfile -t opts < <(apt_opts "$1")
    log "apt-get update ($1 lists of this machine's Debian sources)"
    apt-get "${opts[@]}" update >&2 || die "apt-get update for $1 failed"
    touch "$CACHE/apt-$1/updated"
}

check_debian() {
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        die "apt-get and dpkg-deb are needed: run this on Debian $DEBIAN_CODENAME"
    fi
    local codename
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    [[ $codename == "$DEBIAN_CODENAME" ]] \
        || die "this machine runs '$codename'; the image is made from Debian $DEBIAN_CODENAME packages with binaries built on it"
}

# ---------------------------------------------------------------------------------------
# lock

cmd_lock() {
    check_debian
    local tmp arch pkg deb
    mkdir -p "$CACHE"
    exec 9> "$CACHE/.lock"
    flock 9
    WORK=$(mktemp -d)
    tmp=$WORK
    {
        echo "# The Debian $DEBIAN_CODENAME packages keyward's image is made of (scripts/image.sh)."
        echo "# Written by \`scripts/image.sh lock\`; \`build\` fetches exactly these and checks each hash."
        echo "# arch package version sha256 size"
        for arch in "${ARCHES[@]}"; do
            apt_update "$arch"
            local opts
            mapfile -t opts < <(apt_opts "$arch")
            mkdir -p "$tmp/$arch"
            for pkg in "${PACKAGES[@]}"; do
                (cd "$tmp/$arch" && apt-get "${opts[@]}" download "$pkg:$arch" >&2) || die "apt-get download $pkg:$arch"
            done
            for deb in "$tmp/$arch"/*.deb; do
                printf '%s %s %s %s %s\n' "$arch" "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
                    "$(sha256sum "$deb" | cut -d' ' -f1)" "$(stat -c %s "$deb")"
            done | sort
        done
    } > "$tmp/base.lock"
    mv "$tmp/base.lock" "$LOCK"
    log "wrote $LOCK"
}

# ---------------------------------------------------------------------------------------
# build

# The locked package file for ARCH PACKAGE VERSION SHA256 in the cache (by hash), fetched
# with apt-get download when missing. A version Debian no longer serves is a clear error.
fetch_deb() {
    local arch=$1 pkg=$2 version=$3 sha=$4
    local cached=$CACHE/debs/$sha.deb
    if [[ -f $cached ]] && [[ $(sha256sum "$cached" | cut -d' ' -f1) == "$sha" ]]; then
        echo "$cached"
        return 0
    fi
    local opts dl
    [[ -f $CACHE/apt-$arch/updated ]] || apt_update "$arch"
    mapfile -t opts < <(apt_opts "$arch")
    dl=$(mktemp -d)
    if ! (cd "$dl" && apt-get "${opts[@]}" download "$pkg:$arch=$version" >&2); then
        # The lists may be older than the lock: read them again once.
        apt_update "$arch"
        (cd "$dl" && apt-get "${opts[@]}" download "$pkg:$arch=$version" >&2) || {
            rm -rf "$dl"
            die "Debian no longer serves $pkg $version for $arch (a point release or security update replaced it).
    Refresh the lock: scripts/image.sh lock, review the diff of tools/image/base.lock, commit it."
        }
    fi
    local got
    got=$(sha256sum "$dl"/*.deb | cut -d' ' -f1)
    if [[ $got != "$sha" ]]; then
        rm -rf "$dl"
        die "$pkg $version ($arch) has SHA-256 $got, the lock says $sha: refusing it.
    If Debian rebuilt the package, refresh the lock (scripts/image.sh lock) and review the diff."
    fi
    mkdir -p "$CACHE/debs"
    mv "$dl"/*.deb "$cached"
    rm -rf "$dl"
    echo "$cached"
}

# Every locked package of ARCH, fetched and checked: "PACKAGE PATH" lines on stdout.
locked_debs() {
    local arch=$1 count=0
    local lock_arch pkg version sha size deb
    [[ -f $LOCK ]] || die "no $LOCK: run scripts/image.sh lock"
    mkdir -p "$CACHE"
    exec 9> "$CACHE/.lock"
    # One apt at a time on the cache's lists (parallel builds, e.g. the tests).
    flock 9
    while read -r lock_arch pkg version sha size; do
        [[ $lock_arch == "$arch" ]] || continue
        deb=$(fetch_deb "$arch" "$pkg" "$version" "$sha")
        [[ $(stat -c %s "$deb") == "$size" ]] || die "$pkg: size differs from the lock"
        echo "$pkg $deb"
        count=$((count + 1))
    done < <(grep -v '^#' "$LOCK")
    flock -u 9
    [[ $count -eq ${#PACKAGES[@]} ]] || die "$LOCK names $count packages for $arch, expected ${#PACKAGES[@]} (${PACKAGES[*]}): run scripts/image.sh lock"
}

# Unpack every locked package of ARCH into DIR/<package>, with its control fields beside it.
unpack_base() {
    local arch=$1 dir=$2 pkg deb listing
    listing=$(locked_debs "$arch")
    while read -r pkg deb; do
        dpkg-deb -x "$deb" "$dir/$pkg"
        dpkg-deb -f "$deb" > "$dir/$pkg.control"
    done <<< "$listing"
}

cmd_fetch() {
    check_debian
    local arch=${1:-$(dpkg --print-architecture)}
    locked_debs "$arch" > /dev/null
    log "the locked packages for $arch are in $CACHE/debs"
}

cargo_version() {
    python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["package"][sys.argv[2]])' \
        "$REPO_ROOT/Cargo.toml" "$1"
}

cmd_build() {
    local tag="" target="" binaries="" strip=false out=$REPO_ROOT/target/image source=https://github.com/keyward/keyward
    while [[ $# -gt 0 ]]; do
        case $1 in
            --strip-debug) strip=true; shift ;;
            --tag) tag=$2; shift 2 ;;
            --target) target=$2; shift 2 ;;
            --binaries) binaries=$2; shift 2 ;;
            --out) out=$2; shift 2 ;;
            --source) source=$2; shift 2 ;;
            *) die "build: unknown option $1" ;;
        esac
    done
    check_debian
    local version start=$SECONDS
    version=$(cargo_version version)
    tag=${tag:-keyward.local/keyward:$version}
    # Without --target, cargo builds for the host into target/release, the binaries
    # `cargo build --release` gives (with it, into target/<triple>/release).
    local host arch cross=()
    host=$(rustc -vV | sed -n 's/^host: //p')
    [[ -z $target ]] || cross=(--target "$target")
    arch=$(arch_of_target "${target:-$host}")

    if [[ -z $binaries ]]; then
        if [[ $target == aarch64-unknown-linux-gnu && $(uname -m) != aarch64 ]]; then
            # ring compiles C and assembly for the target: the cross gcc links and compiles.
            export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
            export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
        fi
        log "cargo build --release --locked${cross[*]:+ ${cross[*]}} --bin keyward --bin kubectl-keyward ..."
        (cd "$REPO_ROOT" && cargo build --release --locked "${cross[@]}" --bin keyward --bin kubectl-keyward >&2)
        local target_dir
        target_dir=$(cd "$REPO_ROOT" && cargo metadata --locked --format-version 1 --no-deps \
            | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
        binaries=$target_dir/${target:+$target/}release
        log "release build: $((SECONDS - start)) s"
    fi
    for bin in keyward kubectl-keyward; do
        [[ -x $binaries/$bin ]] || die "no executable $binaries/$bin"
    done

    local revision epoch
    revision=$(git -C "$REPO_ROOT" rev-parse HEAD) || die "not a git checkout: the image's revision is its commit"
    if [[ -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no) ]]; then revision+=-dirty; fi
    epoch=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_ROOT" log -1 --format=%ct HEAD)}

    local assembly=$SECONDS
    mkdir -p "$out"
    out=$(cd "$out" && pwd -P)
    WORK=$(mktemp -d "$out/.work.XXXXXX")
    if $strip; then
        mkdir "$WORK/bin"
        for bin in keyward kubectl-keyward; do
            objcopy --strip-debug "$binaries/$bin" "$WORK/bin/$bin"
        done
        binaries=$WORK/bin
    fi
    mkdir "$WORK/packages"
    unpack_base "$arch" "$WORK/packages"
    local result
    result=$(python3 "$REPO_ROOT/tools/image/oci.py" assemble --packages "$WORK/packages" --binaries "$binaries" \
        --out "$out" --tag "$tag" --arch "$arch" --version "$version" --revision "$revision" \
        --epoch "$epoch" --source "$source" --description "$(cargo_version description)")
    local digest tar
    digest=$(sed -n 1p <<< "$result")
    tar=$(sed -n 2p <<< "$result")
    log "assembled $tar in $((SECONDS - assembly)) s ($(du -h "$tar" | cut -f1))"
    echo "KEYWARD_IMAGE=$tag@$digest"
    echo "KEYWARD_IMAGE_TAR=$tar"
}

# ---------------------------------------------------------------------------------------
# load

cmd_load() {
    : "${KEYWARD_KUBE_BIN:?KEYWARD_KUBE_BIN (from scripts/kube.sh up --node) is required}"
    : "${KEYWARD_CONTAINERD_ADDRESS:?KEYWARD_CONTAINERD_ADDRESS (from scripts/kube.sh up --node) is required}"
    local ctr=$KEYWARD_KUBE_BIN/ctr tar=${1:-} built image
    [[ -x $ctr ]] || die "no ctr in $KEYWARD_KUBE_BIN"
    if [[ -z $tar ]]; then
        built=$(cmd_build)
        tar=$(sed -n 's/^KEYWARD_IMAGE_TAR=//p' <<< "$built")
    fi
    [[ -f $tar ]] || die "no image tarball $tar"
    # The name containerd files the image under: the one the tarball's index gives it.
    image=$(python3 - "$tar" <<'EOF'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    index = json.load(t.extractfile("index.json"))
print(index["manifests"][0]["annotations"]["io.containerd.image.name"])
EOF
    )
    log "ctr -n k8s.io images import $tar ($image)"
    "$ctr" --address "$KEYWARD_CONTAINERD_ADDRESS" -n k8s.io images import "$tar" >&2
    # The whole list first: `ctr … | grep -q` under pipefail fails whenever grep stops reading
    # before ctr has written everything (SIGPIPE), although the image is there.
    local listed
    listed=$("$ctr" --address "$KEYWARD_CONTAINERD_ADDRESS" -n k8s.io images ls -q)
    grep -qxF "$image" <<< "$listed" || die "containerd does not list $image after the import"
    [[ -z ${built:-} ]] || printf '%s\n' "$built"
    echo "KEYWARD_IMAGE_LOADED=$image"
}

case ${1:-} in
    build) shift; cmd_build "$@" ;;
    load) shift; cmd_load "$@" ;;
    fetch) shift; cmd_fetch "$@" ;;
    lock) shift; cmd_lock "$@" ;;
    *) die "usage: scripts/image.sh build|load|fetch|lock (see the comment at the top)" ;;
esac
