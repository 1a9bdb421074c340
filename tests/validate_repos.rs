//! `keyward validate` on the trees a GitOps repository really has: Secrets kept out of Git, a
//! kustomize overlay instead of plain files, manifests piped in, providers that leave
//! `policy.mode` to its default.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

const PROVIDER: &str = "\
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: corp-pi}
spec:
  privacyidea:
    url: https://pi.acme.example
    realm: corp
    credentials: {secretRef: {name: pi-admin}}
";

const PEOPLE: &str = "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: alice}
spec: {email: alice@acme.example, roles: [sre]}
---
apiVersion: keyward.dev/v1alpha1
kind: AccessGrant
metadata: {name: sre-otp}
spec: {provider: corp-pi, subjects: {roles: [sre]}, factors: [totp]}
";

/// `keyward validate ARGS` with `stdin`: exit code and everything it printed.
fn validate(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("validate")
        .args(args)
        .env("KEYWARD_KUBECTL", support::kube::kubectl_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyward");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("keyward");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A Secret not in the tree and a mode left to its default are notes: said, and fatal only to
/// `--strict`. A real error (a dangling reference) still fails without it.
#[test]
fn secrets_out_of_git_and_default_modes_are_notes_unless_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("providers.yaml"), PROVIDER).expect("write");
    std::fs::write(dir.path().join("people.yaml"), PEOPLE).expect("write");
    let path = dir.path().to_str().expect("utf-8");

    let (code, out) = validate(&["-f", path, "-n", "acme"], "");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("providers.yaml:8: note: MfaProvider acme/corp-pi: spec.privacyidea.credentials.secretRef.name: Secret acme/pi-admin not found in these manifests"), "{out}");
    assert!(
        out.contains("providers.yaml:4: note: MfaProvider acme/corp-pi: spec.policy.mode is not set, so it is Enforce"),
        "{out}"
    );

    let (code, out) = validate(&["-f", path, "-n", "acme", "--strict"], "");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");

    std::fs::write(dir.path().join("people.yaml"), PEOPLE.replace("provider: corp-pi", "provider: corp-pii"))
        .expect("write");
    let (code, out) = validate(&["-f", path, "-n", "acme"], "");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("MfaProvider acme/corp-pii not found"), "{out}");
}

/// `-f -` reads the documents from standard input (`kustomize build … | keyward validate -f -`).
#[test]
fn manifests_piped_in_are_validated() {
    let text = format!("{PROVIDER}---\n{PEOPLE}");
    let (code, out) = validate(&["-f", "-", "-n", "acme"], &text);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 1 MfaProvider(s), 1 Employee(s), 1 AccessGrant(s)"), "{out}");
    let (code, out) = validate(&["-f", "-", "-n", "acme"], &text.replace("roles: [sre]}", "rolse: [sre]}"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("<stdin>:") && out.contains("unknown field `rolse`"), "{out}");
}

/// `-k DIR` builds the overlay with the real `kubectl kustomize` and validates what it would
/// apply: the overlay's namespace and patches included, so a patch that breaks a rule fails.
#[test]
fn a_kustomize_overlay_is_built_and_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base");
    let overlay = dir.path().join("overlays/prod");
    std::fs::create_dir_all(&base).expect("base");
    std::fs::create_dir_all(&overlay).expect("overlay");
    std::fs::write(base.join("providers.yaml"), PROVIDER).expect("write");
    std::fs::write(base.join("people.yaml"), PEOPLE).expect("write");
    std::fs::write(base.join("kustomization.yaml"), "resources: [providers.yaml, people.yaml]\n").expect("write");
    let patch = |mode: &str| {
        format!(
            "namespace: acme\nresources: [../../base]\npatches:\n- target: {{kind: MfaProvider, name: corp-pi}}\n  patch: |-\n    - op: add\n      path: /spec/policy\n      value: {{mode: {mode}}}\n"
        )
    };
    std::fs::write(overlay.join("kustomization.yaml"), patch("Observe")).expect("write");
    let path = overlay.to_str().expect("utf-8");

    let (code, out) = validate(&["-k", path], "");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 1 MfaProvider(s), 1 Employee(s), 1 AccessGrant(s)"), "{out}");
    assert!(!out.contains("spec.policy.mode is not set"), "the overlay sets it: {out}");
    assert!(out.contains("Secret acme/pi-admin not found"), "the overlay's namespace applies: {out}");

    std::fs::write(overlay.join("kustomization.yaml"), patch("Audit")).expect("write");
    let (code, out) = validate(&["-k", path], "");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("(kubectl kustomize)") && out.contains("spec.policy.mode"), "{out}");
}
