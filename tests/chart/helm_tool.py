"""The real Helm v4 engine (PyPI helm-python-sdk, no helm binary) for keyward's chart tests.

Reads one JSON request on stdin and writes one JSON answer on stdout:

    {"chart": "charts/keyward", "ops": [OP, ...]}  ->  {"results": [RESULT, ...]}

Each OP is one of
    {"op": "render", "values": {...}, "name": "keyward", "namespace": "keyward-system"}
        -> {"ok": true, "manifests": {"<template path>": "<YAML>", ...}}
    {"op": "lint", "values": {...}, "strict": true, "namespace": "..."}
        -> {"ok": true, "report": {"messages": [...], "errors": [...], ...}}
    {"op": "validate", "values": {...}}        (values.schema.json only)
        -> {"ok": true}
    {"op": "metadata"}
        -> {"ok": true, "metadata": {...}, "values": {...}, "schema": {...}}
and a failed OP answers {"ok": false, "error": "<Helm's message>", "type": "<error class>"},
so that a test can assert on the failure. Only a broken request exits non-zero.

scripts/helm.sh runs it with the venv's interpreter (`scripts/helm.sh py tests/chart/helm_tool.py`).
"""

import json
import sys

import helm_python as helm


def run(chart, op):
    kind = op["op"]
    values = op.get("values")
    if kind == "render":
        manifests = chart.render(
            values,
            name=op.get("name", "keyward"),
            namespace=op.get("namespace", "keyward-system"),
            is_install=True,
        )
        return {"manifests": manifests}
    if kind == "lint":
        report = helm.lint(
            op["path"],
            values,
            strict=op.get("strict", True),
            namespace=op.get("namespace", "keyward-system"),
        )
        return {"report": report}
    if kind == "validate":
        chart.validate_schema(values)
        return {}
    if kind == "metadata":
        return {"metadata": chart.metadata, "values": chart.values, "schema": chart.schema}
    raise ValueError(f"unknown op {kind!r}")


def main():
    request = json.load(sys.stdin)
    results = []
    with helm.Chart.load(request["chart"]) as chart:
        for op in request["ops"]:
            op.setdefault("path", request["chart"])
            try:
                results.append({"ok": True, **run(chart, op)})
            except helm.HelmError as e:
                results.append({"ok": False, "error": str(e), "type": type(e).__name__})
    json.dump({"results": results, "helm": helm.helm_sdk_version()}, sys.stdout)


if __name__ == "__main__":
    main()
