#!/usr/bin/env bash
# keyward's test command (README "Try it"; CI runs it from .ci/run): formatting, lints, then
# every test — unit, property, the end-to-end tests against a real privacyIDEA (which the
# tests start themselves, scripts/privacyidea.sh), the operator against kube-double with the
# real kubectl, the provider mocks, and the Helm chart with the real Helm engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# privacyIDEA lives in a Python venv; install it first so that the first test does not
# spend its time in pip.
bash scripts/privacyidea.sh install
bash scripts/helm.sh install  # Helm v4 engine (helm-python-sdk venv) and lua5.1/5.4 for tests/chart.rs

cargo fmt --all --check
# --workspace: kube-double, the Kubernetes API test server, is tested in its own crate.
# Benchmarks are type-checked here and run with `cargo bench`, not as tests.
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace --lib --bins --tests
