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
    {"op": "install" | "upgrade", "kubeconfig": PATH, "values": {...}, "name": ..., "namespace": ...}
    {"op": "uninstall", "kubeconfig": PATH, "name": ..., "namespace": ...}
        -> {"ok": true, "release": {...}}: a real `helm install/upgrade/uninstall` against the
        cluster of the kubeconfig. Release records stay in memory for the request (storage
        driver "memory"), so one request holds a release's whole life.
    {"op": "kubectl", "kubeconfig": PATH, "args": [...], "stdin": "..."}
        -> {"ok": <exit code 0>, "stdout": ..., "stderr": ...}: kubectl between Helm actions.
and a failed OP answers {"ok": false, "error": "<Helm's message>", "type": "<error class>"},
so that a test can assert on the failure. Only a broken request exits non-zero.

scripts/helm.sh runs it with the venv's interpreter (`scripts/helm.sh py tests/chart/helm_tool.py`).
"""

import json
import os
import subprocess
import sys

import helm_python as helm


def cluster(configs, op):
    """One Helm configuration per kubeconfig and namespace for the whole request."""
    key = (op["kubeconfig"], op.get("namespace", "keyward-system"))
    if key not in configs:
        configs[key] = helm.Config(kubeconfig_path=key[0], namespace=key[1], storage_driver="memory")
    return configs[key]


def run(chart, op, configs):
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
    if kind in ("install", "upgrade"):
        action = getattr(cluster(configs, op), kind)
        release = action(
            chart, op.get("name", "keyward"), values,
            namespace=op.get("namespace", "keyward-system"), timeout=op.get("timeout", 60),
        )
        return {"release": {k: v for k, v in release.items() if k != "manifest"}}
    if kind == "uninstall":
        return {"release": cluster(configs, op).uninstall(op.get("name", "keyward"))}
    if kind == "kubectl":
        env = dict(os.environ, KUBECONFIG=op["kubeconfig"])
        done = subprocess.run(
            ["kubectl", *op["args"]], input=op.get("stdin", ""), capture_output=True, text=True, env=env
        )
        return {"ok": done.returncode == 0, "stdout": done.stdout, "stderr": done.stderr}
    if kind == "metadata":
        return {"metadata": chart.metadata, "values": chart.values, "schema": chart.schema}
    raise ValueError(f"unknown op {kind!r}")


def main():
    request = json.load(sys.stdin)
    results = []
    configs = {}
    with helm.Chart.load(request["chart"]) as chart:
        for op in request["ops"]:
            op.setdefault("path", request["chart"])
            try:
                results.append({"ok": True, **run(chart, op, configs)})  # "kubectl" may set ok
            except helm.HelmError as e:
                results.append({"ok": False, "error": str(e), "type": type(e).__name__})
    for config in configs.values():
        config.close()
    json.dump({"results": results, "helm": helm.helm_sdk_version()}, sys.stdout)


if __name__ == "__main__":
    main()
