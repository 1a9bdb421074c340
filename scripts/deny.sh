#!/usr/bin/env bash
# cargo-deny over keyward's dependency graph (deny.toml): licenses, bans and sources here, on
# every test run; advisories in the release workflow (the RustSec database is fetched from
# GitHub, which these machines cannot reach).
#
# Usage: scripts/deny.sh install|check|advisories [cargo-deny args…]
#
#   install     build the pinned cargo-deny once into ~/.cache/keyward/cargo-deny-$VERSION
#               (`cargo install --locked`: its own Cargo.lock, so a crates.io release of one of
#               its dependencies changes nothing). A no-op when it is there.
#   check       `cargo deny check licenses bans sources` on this repository (installs first)
#   advisories  `cargo deny check advisories` (needs github.com; the release workflow)
#   bin         print the path of the pinned cargo-deny (installs first)
#
# A cold install compiles cargo-deny and its dependencies: 10 minutes on 2 cores shared with
# other builds (measured 2026-12-08; scripts/test.sh runs it beside the Go builds), once per
# machine.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CARGO_DENY_VERSION=0.20.2
ROOT=${KEYWARD_KUBE_CACHE:-$HOME/.cache/keyward}/cargo-deny-$CARGO_DENY_VERSION
BIN=$ROOT/bin/cargo-deny

log() { printf '[deny] %s\n' "$*" >&2; }

install() {
    if [[ -x $BIN ]] && "$BIN" --version 2>/dev/null | grep -qF "$CARGO_DENY_VERSION"; then
        return
    fi
    log "building cargo-deny $CARGO_DENY_VERSION into $ROOT (once; a few minutes)"
    cargo install cargo-deny --version "=$CARGO_DENY_VERSION" --locked --root "$ROOT" --quiet
}

deny() {
    install
    cd "$REPO_ROOT"
    "$BIN" --manifest-path "$REPO_ROOT/Cargo.toml" --locked "$@"
}

case ${1:-} in
    install) install ;;
    check) shift; deny check licenses bans sources "$@" ;;
    advisories) shift; deny check advisories "$@" ;;
    bin) install; echo "$BIN" ;;
    *) sed -n '2,16p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
