#!/usr/bin/env python3
"""Write charts/keyward/README.md from the chart's values.yaml comments (python3 stdlib only).

Usage: scripts/chart-readme.py [VALUES.yaml] > charts/keyward/README.md

A value is documented by the comment block right above it that starts with `# -- `; the lines
that follow (`# …`) continue it. Its default is the value in values.yaml: inline values as
they are written, block values (maps and lists) as JSON. Keys without a `# --` comment are
groups: their documented children get rows of their own. `scripts/helm.sh sync` runs this, and
tests/chart.rs fails when the README differs from what it prints.
"""

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?: (?P<value>.*))?$")


def scalar(text):
    """A YAML scalar or flow collection as values.yaml writes them, as a Python value."""
    text = text.strip()
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text[0] in "\"'":
        return text[1:-1]
    if text[0] in "[{":
        return flow(text)
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", text):
        return float(text)
    return text


def flow(text):
    """`[a, b]`, `{k: v}` and nested ones, as values.yaml writes them (no commas in scalars)."""
    text = text.strip()
    if text[0] not in "[{":
        return scalar(text)
    inner, parts, depth, start = text[1:-1], [], 0, 0
    for i, ch in enumerate(inner):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    if inner.strip():
        parts.append(inner[start:])
    if text[0] == "[":
        return [flow(p) for p in parts]
    return {k.strip(): flow(v) for k, v in (p.split(":", 1) for p in parts)}


def block(lines):
    """A block map or list (lines with their indentation, comments dropped) as a Python value."""
    lines = [l for l in lines if l.strip() and not l.strip().startswith("#")]
    if not lines:
        return None
    indent = len(lines[0]) - len(lines[0].lstrip())
    if lines[0].lstrip().startswith("- "):
        items, current = [], None
        for line in lines:
            if len(line) - len(line.lstrip()) == indent and line.lstrip().startswith("- "):
                if current is not None:
                    items.append(current)
                current = [" " * (indent + 2) + line.lstrip()[2:]]
            else:
                current.append(line)
        items.append(current)
        return [scalar(i[0]) if len(i) == 1 and not KEY.match(i[0]) else block(i) for i in items]
    result, i = {}, 0
    while i < len(lines):
        m = KEY.match(lines[i])
        j = i + 1
        while j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) > indent:
            j += 1
        value = m.group("value")
        result[m.group("key")] = scalar(value) if value is not None and value.strip() else block(lines[i + 1 : j])
        i = j
    return result


def rows(text):
    """(key path, default, description) for every `# --` documented value, in file order."""
    lines = text.splitlines()
    out, stack, comment = [], [], None
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("# -- "):
            comment = [stripped[5:]]
            continue
        if stripped.startswith("#"):
            # A continuation of the description, unless a blank line ended it.
            if comment is not None and lines[n - 1].strip().startswith("#"):
                comment.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not m:
            comment = None if not stripped else comment
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m.group("key")])
        value = m.group("value")
        if comment is not None:
            if value is not None and value.strip():
                default = scalar(value)
            else:
                end = n + 1
                while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
                                            or lines[end].lstrip().startswith("- ") and len(lines[end]) - len(lines[end].lstrip()) == indent):
                    end += 1
                default = block(lines[n + 1 : end])
            out.append((path, default, " ".join(comment)))
            comment = None
        stack.append((indent, m.group("key")))
    return out


def kind(value):
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(type(value), "string")


def cell(text):
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def readme(values_text):
    table = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path, default, description in rows(values_text):
        shown = json.dumps(default, separators=(", ", ": "), ensure_ascii=False)
        table.append(f"| `{path}` | {kind(default)} | `{cell(shown)}` | {cell(description)} |")
    return f"""<!-- Generated by scripts/chart-readme.py from values.yaml (scripts/helm.sh sync); do not edit. -->
# keyward Helm chart

keyward is the Kubernetes operator that revokes every MFA enrolment (TOTP, HOTP, WebAuthn,
push, …) that is no longer declared. This chart deploys `keyward run` with its CRDs, a
least-privilege ServiceAccount, two replicas with leader election, a PodDisruptionBudget, a
metrics Service and, optionally, a ServiceMonitor and a NetworkPolicy.

```sh
helm install keyward oci://ghcr.io/keyward/charts/keyward --version <version> \\
  -n keyward-system --create-namespace --set 'watch.namespaces={{acme}}'
```

Start every MfaProvider in `policy.mode: Observe`; the NOTES printed after the install say
what to do next. Documentation: [installing with Helm](../../docs/helm.md) (sizing, RBAC,
CRDs), [GitOps](../../docs/gitops.md), [upgrading and uninstalling](../../docs/upgrade.md),
[metrics](../../docs/metrics.md), [troubleshooting](../../docs/troubleshooting.md).

## Values

Every value is checked by `values.schema.json`: a typo or a wrong type fails the install.

{chr(10).join(table)}
"""


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "charts/keyward/values.yaml"
    sys.stdout.write(readme(path.read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
