#!/usr/bin/env bash
# keyward's benchmark table: runs the benchmarks, prints one table and writes it,
# with the machine and the date, to docs/performance.md. Every figure comes from this run.
#
# Usage: scripts/bench.sh [BENCH...]
#
#   With no BENCH, all of them. Named ones only (plan, operator_scale, revocation_rate, mocks,
#   operator_latency, pod_scale): their rows replace the table's, the others are kept and the
#   header says which rows came from which run.
#
#   cargo bench --bench plan              planning time and heap, 100,000 Employees x 200 grants
#   cargo bench --bench operator_scale    `keyward run` on a real local kube-apiserver + etcd:
#                                         RSS, first sweep, status writes, exit after SIGTERM
#   cargo bench --bench revocation_rate   1,000 approved revocations at maxRequestsPerSecond 20
#   cargo bench --bench operator_latency  kubectl patch -> revocation at a real privacyIDEA,
#                                         and privacyIDEA requests per offboarding
#   cargo bench --bench pod_scale         the chart on a real node (kube.sh up --node, as
#                                         root): each replica's cgroup memory peak under the
#                                         chart's limits, restarts, OOM kills
#
# Environment (all optional):
#   KEYWARD_BENCH_PEOPLE    Employees per operator_scale run   (default 1000,10000; add 50000
#                           for the large row: about 10 more minutes)
#   KEYWARD_BENCH_COMPANY   Employees per latency run           (default 100,1000)
#   KEYWARD_BENCH_POD_PEOPLE  Employees per in-Pod run          (default 1000,10000)
#   KEYWARD_BENCH_BASELINE  another keyward binary (say, the previous release) measured by
#                           operator_scale too, as a "before" column
#   KEYWARD_BENCH_OUT       where the table goes                (default docs/performance.md)
#
# Needs what the end-to-end tests need (scripts/kube.sh install, scripts/privacyidea.sh
# install; both are run on demand). Took 28 minutes on 2 shared cores, release builds included,
# with 50000 in KEYWARD_BENCH_PEOPLE.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${KEYWARD_BENCH_OUT:-$REPO_ROOT/docs/performance.md}
export KEYWARD_BENCH_PEOPLE=${KEYWARD_BENCH_PEOPLE:-1000,10000}
export KEYWARD_BENCH_COMPANY=${KEYWARD_BENCH_COMPANY:-100,1000}
export KEYWARD_BENCH_POD_PEOPLE=${KEYWARD_BENCH_POD_PEOPLE:-1000,10000}
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT

log() { printf '[bench] %s\n' "$*" >&2; }

cd "$REPO_ROOT"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The commit measured: the one checked out when the run starts (each `cargo bench` builds
# from the working tree as it is then; the mark says it differed from that commit).
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo "+changes")
ONLY=$(IFS=,; echo "$*")
for name in "$@"; do
    case $name in
        plan | operator_scale | revocation_rate | mocks | operator_latency | pod_scale) ;;
        *) log "no benchmark $name (plan, operator_scale, revocation_rate, mocks, operator_latency, pod_scale)"; exit 2 ;;
    esac
done
wanted() { [[ -z $ONLY || ,$ONLY, == *,$1,* ]]; }
# `cargo bench --bench NAME` into the raw lines when NAME is wanted; NOTE says what it measures.
bench() {
    local name=$1 note=${2:-}
    wanted "$name" || return 0
    log "cargo bench --bench $name${note:+ ($note)}"
    cargo bench --locked --bench "$name" | tee -a "$RAW" >&2
}
bench plan
bench operator_scale "people: $KEYWARD_BENCH_PEOPLE"
if wanted operator_scale && [[ -n ${KEYWARD_BENCH_BASELINE:-} ]]; then
    log "cargo bench --bench operator_scale with the baseline $KEYWARD_BENCH_BASELINE"
    KEYWARD_TEST_BIN=$KEYWARD_BENCH_BASELINE cargo bench --locked --bench operator_scale | sed 's/^scale /baseline /' | tee -a "$RAW" >&2
fi
bench revocation_rate
if wanted mocks; then
    log "cargo test --test providers_okta --test providers_entra -- an_offboarding (request counts on the mocks)"
    cargo test --locked --release --test providers_okta --test providers_entra -- an_offboarding --nocapture 2>&1 | grep -E '^(okta|entra) ' | tee -a "$RAW" >&2
fi
bench operator_latency "company sizes: $KEYWARD_BENCH_COMPANY"
bench pod_scale "people: $KEYWARD_BENCH_POD_PEOPLE"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
machine="$(nproc) CPUs (${cpu:-unknown model}), $ram RAM, $(uname -sr)"

python3 "$REPO_ROOT/scripts/bench_table.py" "$RAW" "$OUT" "$machine" "$started" "$commit" "${KEYWARD_BENCH_BASELINE:-}" "$ONLY"
log "wrote $OUT"
