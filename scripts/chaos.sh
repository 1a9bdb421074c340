#!/usr/bin/env bash
# keyward's reliability suite, the long version: the scenarios of tests/chaos.rs —
# provider faults through scripts/fault_proxy.py, SIGKILL crashes, failover with killed and
# paused (SIGSTOP) leaders — against the real operator, a real local kube-apiserver + etcd and
# a real privacyIDEA, with more leavers per scenario than CI runs. Prints one table and writes
# it, with the machine and the date, to docs/reliability.md.
#
# Usage: scripts/chaos.sh [--soak]
#
#   --soak   instead of the scenarios: the soak (KEYWARD_SOAK_MINUTES of continuous changes
#            and faults, default 30), its figures written to the "Soak" section of the file.
#
# Environment (all optional):
#   KEYWARD_CHAOS_ROUNDS   leavers offboarded per scenario  (default 30; CI runs 6)
#   KEYWARD_CHAOS_SEED     the schedule's seed              (default: the clock; printed)
#   KEYWARD_CHAOS_OUT      where the table goes             (default docs/reliability.md)
#
# Every row must read wrong=0, missing=0, doubled=0: the run fails otherwise (the table is
# still written, so that the failing row is on record).
set -uo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${KEYWARD_CHAOS_OUT:-$REPO_ROOT/docs/reliability.md}
export KEYWARD_CHAOS_ROUNDS=${KEYWARD_CHAOS_ROUNDS:-30}
RAW=$(mktemp)
trap 'rm -f "$RAW"' EXIT
cd "$REPO_ROOT"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests scripts || echo "+changes")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
machine="$(nproc) CPUs (${cpu:-unknown model}), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
# What follows this line in the file is kept by the scenario run; the soak writes below it.
KEEP='<!-- Everything below is kept by scripts/chaos.sh; the text above is generated. -->'

if [[ ${1:-} == --soak ]]; then
    echo "[chaos] the soak: ${KEYWARD_SOAK_MINUTES:-30} minutes" >&2
    cargo test --locked --test chaos soak -- --ignored --nocapture 2>&1 | tee "$RAW" >&2
    status=${PIPESTATUS[0]}
    python3 - "$RAW" "$OUT" "$machine" "$started" "$commit" "$KEEP" <<'PY'
import sys
raw, out, machine, started, commit, keep = sys.argv[1:7]
summary = None
for line in open(raw, errors="replace"):
    if line.startswith("soak "):
        summary = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
if summary is None:
    sys.exit("[chaos] the soak printed no summary (see above)")
s = summary
section = f"""## Soak

Run by `scripts/chaos.sh --soak`, started {started}, on {machine}; keyward at {commit}.
{s['minutes']} minutes of continuous changes through the fault proxy at 30 %: {s['changes']}
offboardings, each followed by the person's return with a new token; {s['faults']} faults
injected; seed {s['seed']}. The operator sampled every 10 s from `/proc`; "middle" and
"last" are the means of the middle and last thirds of the run.

| Measure | Middle third | Last third |
|---|---|---|
| RSS | {s['rss_mib_middle']} MiB | {s['rss_mib_last']} MiB (peak {s['rss_mib_peak']} MiB) |
| Open file descriptors | {s['fds_middle']} | {s['fds_last']} |
| … of which sockets | {s['sockets_middle']} | {s['sockets_last']} |

Tokens wrongly revoked: {s['wrong']}.
"""
text = open(out).read() if __import__("os").path.exists(out) else ""
head, _, _ = text.partition(keep)
open(out, "w").write(head.rstrip("\n") + "\n\n" + keep + "\n\n" + section)
print(f"[chaos] wrote the soak to {out}", file=sys.stderr)
PY
    table=$?
    exit $(( status != 0 ? status : table ))
fi

echo "[chaos] cargo test --test chaos (rounds: $KEYWARD_CHAOS_ROUNDS)" >&2
cargo test --locked --test chaos -- --nocapture --test-threads=1 2>&1 | tee "$RAW" >&2
status=${PIPESTATUS[0]}
python3 - "$RAW" "$OUT" "$machine" "$started" "$commit" "$KEEP" <<'PY'
import os, sys
raw, out, machine, started, commit, keep = sys.argv[1:7]
rows = []
for line in open(raw, errors="replace"):
    # The harness prints `test NAME ... ` and the scenario's own line can follow on it.
    if "chaos scenario=" in line:
        line = line[line.index("chaos scenario="):]
        rows.append(dict(w.split("=", 1) for w in line.split()[1:] if "=" in w))
head = ("| Scenario | Rounds (leavers) | Faults injected | Revocations expected / made / wrongly made "
        "| Audit records missing / doubled | Convergence after faults stop, median / worst | Seed |")
lines = [head, "|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['scenario']} | {r['rounds']} | {r['faults']} | {r['expected']} / {r['made']} / {r['wrong']} "
                 f"| {r['missing_records']} / {r['doubled_records']} | {r['converge_median_s']} s / {r['converge_worst_s']} s "
                 f"| {r['seed']} |")
text = f"""# Reliability

Measured by `scripts/chaos.sh` in one run, started {started}, on {machine}; keyward at {commit}.
Debug build (the suite waits on the world, not on the CPU). Every row comes from that run (`tests/chaos.rs`; CI runs the same scenarios with
fewer leavers as a test).

{chr(10).join(lines)}

How each row is taken:

- Each scenario declares, in a namespace and privacyIDEA realm of its own, 4 *stayers* entitled
  throughout and N *leavers*, each holding one TOTP token, and offboards the leavers one after
  another with `kubectl patch` while the faults run. **Wrongly made**: stayers' tokens missing
  at privacyIDEA at the end (a kept one must also still log in through `/validate/check`).
  **Made**: leavers' tokens gone once the faults stopped (a revoked one must fail to log in).
  **Missing / doubled**: revoked tokens without, or with more than one, final audit record
  (`revoked` or `already-gone`) across every replica's log; every log also passes `keyward audit
  verify`. In provider-faults keyward signs in with a recognisable password, and its log,
  Events, every object's status, the audit lines and `/metrics` must hold neither it nor its
  base64. **Convergence**: from each leaver's `kubectl patch` to its final audit record.
- **provider-faults**: `scripts/fault_proxy.py` in front of privacyIDEA fails 30 % of the
  requests — 5xx, 429 with and without `Retry-After`, a request held past keyward's 2 s timeout,
  a reset before and one mid-body, truncated JSON, a token page one token short, an empty 200,
  a 401 — and stops after the last offboarding. Re-entitlements are interleaved: every other
  leaver, once revoked, is made Active again and enrols a new token while the faults still
  run; that token must survive the faults and the next full resync (its loss counts as
  wrongly made). Faults: the count the proxy injected.
- **crashes**: privacyIDEA slowed by 80 ms a chunk; the operator is SIGKILLed at a random moment
  (100–1,500 ms) after each offboarding and restarted on the same audit log; while it is down,
  a stayer is offboarded and made Active again (changed and changed back). Faults: the kills.
- **failover**: two replicas of one installation (one Lease); after each offboarding the leader
  is either SIGKILLed and restarted, or paused with SIGSTOP for 10 s (past its 3 s Lease) and
  woken; each replica reads the other's log when it resolves an intent (`--audit-peer-logs`).
  Faults: the leaders killed or paused.
- **apiserver-restart**: a control plane of its own; after each offboarding the kube-apiserver
  is stopped 100–1,500 ms later for 1–6 s (every watch cut, the 3 s Lease not renewable) and
  started again on the same etcd. Faults: the restarts.

What the suite leans on elsewhere, and what it does not cover yet:

- More of the API side is covered by `tests/operator.rs` scenarios (cut watch connections and
  410s, a competing status writer, a hung Lease renewal, SIGTERM mid-sweep, a bad commit
  applied in pieces), not as rows here.
- Hostile and broken manifests: the files of `tests/hostile/` through `keyward validate`,
  `plan`, `apply` and `kubectl apply --dry-run=server`; those keyward accepts also through
  `kubectl apply` and the operator, which must revoke exactly what each file's header says
  (`tests/hostile.rs`).
- The same provider faults in front of the Okta and Entra ID mocks: `tests/providers_okta.rs`
  and `tests/providers_entra.rs` (`faults_at_a_third_of_the_requests_…`: 30 leavers, `keyward
  apply` run again and again under faults, then once more without).
- Secrets never shown, across the whole test suite: every credential the tests give keyward
  is a recognisable value (privacyIDEA's admin password, Okta's API token, Entra's client
  secret and certificate key, Duo's secret key, Google's service-account key, Keycloak's
  client secrets and admin password, collector and webhook tokens). Each CLI run's output,
  each operator's log and `/metrics`, the Events and keyward objects (with their status) of
  its namespace and every audit line are kept under `target/tmp/shown/`, and after the suite
  `scripts/secrets_shown.py` (run by `scripts/test.sh`) searches them for every value, raw and
  base64 at any alignment; a find fails the run and names the file and line.
- The soak (`scripts/chaos.sh --soak`: 30 minutes of changes and faults, RSS and file
  descriptors flat) is below when it has been run.

{keep}
"""
kept = open(out).read().partition(keep)[2] if os.path.exists(out) else ""
open(out, "w").write(text + kept)
print(f"[chaos] wrote {out}", file=sys.stderr)
bad = [r for r in rows if r["wrong"] != "0" or r["missing_records"] != "0" or r["doubled_records"] != "0" or r["made"] != r["expected"]]
sys.exit(1 if bad or not rows else 0)
PY
table=$?
exit $(( status != 0 ? status : table ))
