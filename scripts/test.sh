#!/usr/bin/env bash
# keyward's test command (README "Run the tests"; CI runs it from .ci/run):
# formatting, lints, then every test — unit, property and the end-to-end tests against a
# real privacyIDEA, which the tests start themselves (scripts/privacyidea.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# privacyIDEA lives in a Python venv; install it first so that the first test does not
# spend its time in pip.
bash scripts/privacyidea.sh install
bash scripts/helm.sh install  # Helm v4 engine (helm-python-sdk venv) and lua5.1/5.4 for tests/chart.rs

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
