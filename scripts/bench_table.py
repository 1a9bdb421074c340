#!/usr/bin/env python3
"""The table of scripts/bench.sh from the benchmarks' `key=value` lines, into docs/performance.md.

Usage: bench_table.py RAW OUT MACHINE STARTED COMMIT [BASELINE [ONLY]]

ONLY (comma-separated benchmark names) marks a partial run: rows it did not measure keep their
values from OUT's previous table, and the header says which rows the partial run replaced.
"""
import sys

raw, out, machine, started, commit = sys.argv[1:6]
baseline = sys.argv[6] if len(sys.argv) > 6 else ""
only = [b for b in (sys.argv[7] if len(sys.argv) > 7 else "").split(",") if b]
runs = {}
for line in open(raw):
    words = line.split()
    if not words or words[0] not in ("plan", "scale", "baseline", "latency", "rate", "outofband", "okta", "entra", "pod"):
        continue
    fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    if words[0] in ("scale", "baseline"):
        key = (words[0], int(fields["people"]))
    elif words[0] == "latency":
        key = ("latency", int(fields["employees"]))
    elif words[0] == "rate":
        key = ("rate", int(fields["revocations"]))
    elif words[0] == "outofband":
        key = ("outofband", fields["following"])
    elif words[0] in ("okta", "entra"):
        key = (words[0], int(fields["people"]))
    elif words[0] == "pod":
        key = ("pod", int(fields["people"]), fields["role"])
    else:
        key = ("plan", int(fields["people"]))
    runs[key] = fields

NOT = "not measured"
def get(kind, size, field, unit=""):
    value = runs.get((kind, size), {}).get(field)
    if value is None:
        return NOT
    # n/a: the benchmark says the run could not tell (say, start-up had not settled).
    return value if value == "n/a" else f"{value}{unit}"

scale_sizes = [1000, 10000, 50000]
rows = []  # (measure, goal, value, before)
for n in scale_sizes:
    label = f"{n:,}"
    rows.append((f"Operator RSS, steady (40 s after start), {label} Employees", "≤ 64 MiB at 10,000" if n == 10000 else "",
                 get("scale", n, "rss_steady_mib", " MiB"), get("baseline", n, "rss_steady_mib", " MiB")))
    rows.append((f"… of which heap and stacks (RssAnon) / the binary's pages (RssFile), {label} Employees", "",
                 f'{get("scale", n, "rss_steady_anon_mib", " MiB")} / {get("scale", n, "rss_steady_file_mib", " MiB")}',
                 f'{get("baseline", n, "rss_steady_anon_mib", " MiB")} / {get("baseline", n, "rss_steady_file_mib", " MiB")}'))
    rows.append((f"Operator RSS, peak (VmHWM), {label} Employees", "< 640 MiB (chart limit)",
                 get("scale", n, "rss_peak_mib", " MiB"), get("baseline", n, "rss_peak_mib", " MiB")))
for n in scale_sizes:
    label = f"{n:,}"
    rows.append((f"Start → first sweep finished (caches synced), {label} Employees", "",
                 get("scale", n, "first_sweep_s", " s"), get("baseline", n, "first_sweep_s", " s")))
    rows.append((f"Start → every Employee has its status, {label} Employees", "",
                 get("scale", n, "settled_s", " s"), get("baseline", n, "settled_s", " s")))
    rows.append((f"Employee status writes at start, {label} Employees", f"≤ {2 * n:,} (two each)",
                 get("scale", n, "employee_status_writes_at_start"), get("baseline", n, "employee_status_writes_at_start")))
    rows.append((f"Employee status writes for one offboarding (its own / others'), {label} Employees", "≤ 2 / 0",
                 f'{get("scale", n, "employee_status_writes_per_offboarding")} / {get("scale", n, "other_employee_status_writes_per_offboarding")}',
                 f'{get("baseline", n, "employee_status_writes_per_offboarding")} / {get("baseline", n, "other_employee_status_writes_per_offboarding")}'))
    rows.append((f"Exit after SIGTERM, idle / right after the first sweep, {label} Employees",
                 "< 30 s (chart grace); bound 20 s",
                 f'{get("scale", n, "exit_after_sigterm_s", " s")} / {get("scale", n, "exit_after_sigterm_busy_s", " s")}',
                 f'{get("baseline", n, "exit_after_sigterm_s", " s")} / {get("baseline", n, "exit_after_sigterm_busy_s", " s")}'))
p = ("plan", 100000)
rows.append(("Planning, 100,000 Employees × 200 grants: time", "< 1 s", get(*p, "plan_s", " s"), ""))
rows.append(("Planning, 100,000 Employees × 200 grants: peak heap of the plan (inputs apart)", "< 300 MB",
             get(*p, "plan_peak_heap_mib", " MiB"), ""))
rows.append(("Planning, 100,000 Employees × 200 grants: heap of the inputs", "", get(*p, "inputs_heap_mib", " MiB"), ""))
for n in sorted(k[1] for k in runs if k[0] == "latency") or [100, 1000]:
    label = f"{n:,}"
    rows.append((f"kubectl patch → revocation at privacyIDEA, p50 / p99, {label} Employees", "seconds",
                 f'{get("latency", n, "p50_ms", " ms")} / {get("latency", n, "p99_ms", " ms")}', ""))
    rows.append((f"privacyIDEA requests per offboarding, median / max, {label} Employees", "constant",
                 f'{get("latency", n, "pi_requests_per_offboarding_median")} / {get("latency", n, "pi_requests_per_offboarding_max")}', ""))
    pages = -(-n // 200)
    rows.append((f"privacyIDEA requests at start-up (full sweeps), {label} tokens", f"≤ {pages} pages + a constant, per sweep",
                 get("latency", n, "pi_requests_startup"), ""))

for n in sorted(k[1] for k in runs if k[0] == "rate") or [1000]:
    cap = runs.get(("rate", n), {}).get("cap_rps", "20")
    rows.append((f"Mass revocation of {n:,} approved enrolments at maxRequestsPerSecond {cap}: achieved rate",
                 "≥ 95 % of the cap", f'{get("rate", n, "achieved_rps", " /s")} ({get("rate", n, "of_cap_pct", " %")})', ""))
    rows.append((f"… most requests within any one second, at the mock", f"≤ {cap}", get("rate", n, "busiest_second"), ""))

for following, label in (("yes", "with privacyIDEA's audit log followed (every 5 s)"), ("no", "without (found by a 30 s resync)")):
    rows.append((f"Out-of-band enrolment → revocation, median / worst, {label}", "seconds" if following == "yes" else "",
                 f'{get("outofband", following, "median_s", " s")} / {get("outofband", following, "worst_s", " s")}', ""))
for provider in ("okta", "entra"):
    for n in sorted(k[1] for k in runs if k[0] == provider):
        name = "Okta" if provider == "okta" else "Entra ID"
        rows.append((f"{name} (mock) requests per offboarding / per full `scope: All` sweep, {n:,} users", "constant / per user",
                     f'{get(provider, n, "per_offboarding_requests")} / {get(provider, n, "full_sweep_requests")}', ""))

def pod(size, role, field, unit=""):
    value = runs.get(("pod", size, role), {}).get(field)
    return NOT if value is None else value if value == "n/a" else f"{value}{unit}"

pod_sizes = sorted({k[1] for k in runs if k[0] == "pod"} | {1000, 10000})
for n in pod_sizes:
    label = f"{n:,}"
    limit = pod(n, "leader", "limit_mib", " MiB")
    rows.append((f"In a Pod under the chart's limits: cgroup memory peak, leader / standby, {label} Employees",
                 f"< the limit ({limit})" if limit != NOT else "< the chart's limit",
                 f'{pod(n, "leader", "peak_mib", " MiB")} / {pod(n, "standby", "peak_mib", " MiB")}', ""))
    rows.append((f"… of which resident (RSS) / page cache at the end, leader, {label} Employees", "",
                 f'{pod(n, "leader", "rss_mib", " MiB")} / {pod(n, "leader", "cache_mib", " MiB")}', ""))
    rows.append((f"… restarts / OOM kills / times the limit was hit, both replicas, {label} Employees", "0 / 0 / 0",
                 " / ".join(
                     NOT if any(pod(n, r, f) == NOT for r in ("leader", "standby"))
                     else str(sum(int(pod(n, r, f)) for r in ("leader", "standby")))
                     for f in ("restarts", "oomkilled", "limit_hits")), ""))
    rows.append((f"… helm install → both Ready / every Employee has its status, {label} Employees", "",
                 f'{pod(n, "leader", "ready_s", " s")} / {pod(n, "leader", "settled_s", " s")}', ""))

# A partial run keeps what it did not measure from the previous table.
previous_rows = {}
try:
    in_table = False
    # The generated table only: the one headed "Measure", not the hand-written ones below it.
    for line in open(out):
        if line.startswith("| Measure |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if in_table and not line.startswith("|---") and len(cells) >= 3:
            previous_rows[cells[0]] = cells
except FileNotFoundError:
    pass
if only:
    # The previous table's rows in their order, each replaced where this run measured it;
    # rows this run measured that the table did not have yet come last.
    measured = {row[0]: row for row in rows if NOT not in row[2]}
    merged = []
    for measure, cells in previous_rows.items():
        merged.append(measured.pop(measure, (measure, cells[1], cells[2], cells[3] if len(cells) > 3 else "")))
    rows = merged + [row for row in rows if row[0] in measured]

with_baseline = any(k[0] == "baseline" for k in runs)
head = "| Measure | Goal | This build |" + (" Baseline |" if with_baseline else "")
rule = "|---|---|---|" + ("---|" if with_baseline else "")
lines = [head, rule]
for measure, goal, value, before in rows:
    line = f"| {measure} | {goal} | {value} |"
    if with_baseline:
        line += f" {before} |"
    lines.append(line)
table = "\n".join(lines)
print(table)

run = f"""Measured by `scripts/bench.sh` in one run, started {started}, on {machine}; keyward at
{commit}{f", baseline binary `{baseline}`" if baseline else ""}. Release build (`cargo bench`).
Every figure below comes from that run; "not measured" means the run did not include it."""
if only:
    try:
        text = open(out).read()
        intro = text[text.index("\n\n") + 2:text.index("\n\n| Measure")]
    except (FileNotFoundError, ValueError):
        intro = ""
    run = (intro + "\n" if intro else "") + (
        f"The rows of `{', '.join(only)}` come from `scripts/bench.sh {' '.join(only)}`, started {started}, "
        f"at {commit} on the same machine; the others are from the run above.")

notes = f"""# Performance

{run}

{table}

How each figure is taken (see the benchmarks' module docs):

- **Operator rows** (`benches/operator_scale.rs`): a real local kube-apiserver and etcd; one
  namespace with N Employees created as `kubectl apply` creates them (its last-applied
  annotation included), one privacyIDEA MfaProvider on a realm without users and one grant;
  `keyward run` as the chart's ServiceAccount. RSS is `VmRSS` from `/proc` 40 s after start
  (when users measured it) and the kernel's high-water mark `VmHWM` at the end of
  the run (after start-up and one offboarding). Status writes are counted in the API server's
  own audit log. The first sweep is the first `keyward_reconcile_duration_seconds` sample.
- **Planning rows** (`benches/plan.rs`): the pure engine, 100,000 people in two of 200 roles,
  one grant per role, two enrolments each; heap counted by a counting global allocator.
- **Out-of-band rows** (`benches/operator_latency.rs`, at the first company size): an admin
  enrols an HOTP token (entitled by no grant) for three people at privacyIDEA; the time until
  its revocation record. With the audit log followed (the default), then with the operator
  restarted with `--event-poll-interval 0s` and the resync set to 30 s (the default is 10
  minutes: without following, an out-of-band enrolment waits for it).
- **Okta and Entra ID rows** (`tests/providers_okta.rs`, `tests/providers_entra.rs`, run by
  `scripts/bench.sh` with `--nocapture`): the providers' mocks with N users holding one
  factor each; requests of a full `scope: All` listing, then of the per-user read of one
  leaver (a targeted sweep). Neither provider has a bulk factor read, so a full sweep costs
  a request per user; an offboarding costs two at any size.
- **Mass revocation rows** (`benches/revocation_rate.rs`): 1,000 leavers with a token each at
  a privacyIDEA-shaped HTTP mock; the plan is held by the default budget and let through by
  an approval of its digest, then carried out by `keyward::sweep` with
  `maxRequestsPerSecond: 20`. The achieved rate is the deletes' (first to last); the busiest
  second is a sliding one-second window over every request's arrival at the mock.
- **In-Pod rows** (`benches/pod_scale.rs`): a real node (`scripts/kube.sh up --node`),
  keyward's image from the release build, the chart installed with its defaults (two
  replicas, its requests and memory limit) over a namespace of N Employees made beforehand
  (as `kubectl apply` makes them), one privacyIDEA MfaProvider reached over TLS and one grant.
  Read from each replica's container cgroup (v1) once every Employee has its status and 30 s
  more: the high-water mark (`memory.max_usage_in_bytes`, what the limit is enforced against;
  page cache counts), resident and cache figures from `memory.stat`, and `memory.failcnt`.
- **Latency rows** (`benches/operator_latency.rs`): every Employee of the company holds a
  TOTP token at a real privacyIDEA (all but 20 seeded in bulk); 20 of them are offboarded one
  after another with `kubectl patch`. p99 of 20 samples is the worst one. Requests are counted
  in privacyIDEA's own request log from each patch to 2 s after its revocation. An offboarding
  is a targeted sweep: the leaver's token listing (`GET /token/?user=`) and the
  delete, plus a login when the admin JWT expired — the same at any company size. The
  start-up row is every request from the operator's start until its MfaProvider is Ready and
  5 s more: the login, the realm check and the realm's token pages of the first full sweeps.
"""
# Hand-written findings below the marker are kept from the previous file.
MARKER = "<!-- Everything below is kept by scripts/bench.sh; the text above is generated. -->"
try:
    previous = open(out).read()
except FileNotFoundError:
    previous = ""
kept = previous[previous.index(MARKER) + len(MARKER):] if MARKER in previous else "\n"
open(out, "w").write(notes + "\n" + MARKER + kept)
