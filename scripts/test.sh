#!/usr/bin/env bash
# keyward's test command (README "Try it"; CI runs it from .ci/run): formatting, lints, then
# every test — unit, property, the end-to-end tests against a real privacyIDEA (which the
# tests start themselves, scripts/privacyidea.sh), the operator and the Helm chart against a
# real kube-apiserver and etcd with the real kubectl and helm (scripts/kube.sh; each test binary
# starts its own control plane), a real node where Pods start (tests/node.rs: `kube.sh up
# --node`, containerd, runc, CNI, kubelet, kube-proxy; as root, one node per machine at a time),
# and the provider mocks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Installs first, so that no test spends its time in pip or in the Go build:
# privacyIDEA (a Python venv), the control plane and node tools (kube-apiserver, etcd, kubectl,
# helm, kubelet, kube-proxy, scheduler, controller-manager, containerd, runc, CNI plugins,
# crictl built from Go modules into ~/.cache/keyward, and the Debian packages the node needs;
# the first build takes many minutes), and Lua for the Argo CD health check tests; the Debian
# packages of keyward's image (tools/image/base.lock, checked by hash: a version Debian
# replaced stops CI here, saying how to refresh the lock). tests/image.rs builds the image from
# the test run's own binaries.
# cargo-deny (scripts/deny.sh) builds beside them: a cold build is minutes of its own.
bash scripts/deny.sh install > /tmp/keyward-deny-install.log 2>&1 &
deny_install=$!
bash scripts/privacyidea.sh install
bash scripts/kube.sh install
bash scripts/helm.sh install
bash scripts/keycloak.sh install
bash scripts/image.sh fetch

cargo fmt --all --check
# Benchmarks are type-checked here and run with `cargo bench`, not as tests.
cargo clippy --locked --all-targets -- -D warnings
# Licenses, bans and sources of the dependency graph (deny.toml); advisories need GitHub and
# run in the release workflow.
wait "$deny_install" || { cat /tmp/keyward-deny-install.log >&2; exit 1; }
bash scripts/deny.sh check
# Everything keyward shows during the tests is kept under target/tmp/shown and searched
# afterwards for the credentials the tests gave it (tests/support/shown.rs).
target=$(cargo metadata --locked --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
rm -rf "$target/tmp/shown"
# keyward refuses to plan without a host allowlist under CI=true (tests/cli.rs checks that);
# the other tests run it as a developer does, whatever the CI runner sets.
unset CI
cargo test --locked --lib --bins --tests
python3 scripts/secrets_shown.py "$target/tmp/shown"
