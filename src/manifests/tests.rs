//! `load` and `validate` on files: every problem at its exact line.

use super::*;
use chrono::TimeZone;
use std::path::{Path, PathBuf};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests").join(path)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("valid time")
}

/// A directory holding the given files.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// Problems as (file name, line, message), for readable assertions.
fn located(problems: &[Problem]) -> Vec<(String, usize, String)> {
    problems
        .iter()
        .map(|p| {
            (
                p.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                p.line,
                p.message.clone(),
            )
        })
        .collect()
}

/// Asserts exactly these problems, in order: file name, line, and a part of the message.
#[track_caller]
fn assert_problems(problems: &[Problem], expected: &[(&str, usize, &str)]) {
    let got = located(problems);
    let matches = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|((file, line, message), (f, l, m))| file == f && line == l && message.contains(m));
    assert!(matches, "expected {expected:#?}\ngot {got:#?}");
}

const PROVIDER: &str = "\
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: corp-pi, namespace: acme}
spec:
  privacyidea:
    url: https://pi.acme.example
    realm: corp
    credentials:
      secretRef: {name: pi-admin}
---
apiVersion: v1
kind: Secret
metadata: {name: pi-admin, namespace: acme}
stringData: {username: admin, password: change-me}
";

#[test]
fn reports_serde_errors_at_their_file_line() {
    let file = fixture("broken/people.yaml");
    let (manifests, problems) = load(std::slice::from_ref(&file), "default");
    assert_problems(
        &problems,
        &[
            ("people.yaml", 7, "Employee acme/alice: spec: unknown field `rolse`, expected one of"),
            ("people.yaml", 15, "Employee default/bob: spec.state: unknown variant `Gone`, expected one of `Active`"),
            (
                "people.yaml",
                22,
                "invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 22",
            ),
            (
                "people.yaml",
                30,
                "AccessGrant default/sre-otp: spec.factors: invalid type: string \"totp\", expected a sequence",
            ),
        ],
    );
    assert_eq!(problems[0].to_string(), format!("{}:7: {}", file.display(), problems[0].message));
    // The good document after the broken ones is read; the broken ones are not.
    let names: Vec<_> = manifests.employees.iter().map(|e| (e.object.metadata.name.clone(), e.source.line)).collect();
    assert_eq!(names, vec![(Some("dave".to_string()), 32)]);
    assert_eq!(manifests.employees[0].object.metadata.namespace.as_deref(), Some("default"));
    assert!(manifests.grants.is_empty());
}

#[test]
fn reports_unknown_top_level_and_metadata_fields() {
    let dir = tree(&[(
        "erin.yaml",
        "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata:
  name: erin
  namespce: acme   # would silently land in the default namespace
spec:
  email: erin@acme.example
spce: {}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringdata: {password: x}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "default");
    assert_problems(
        &problems,
        &[
            ("erin.yaml", 8, "Employee default/erin: unknown field `spce`"),
            ("erin.yaml", 5, "Employee default/erin: metadata: unknown field `namespce`"),
            ("erin.yaml", 13, "Secret default/s: unknown field `stringdata`"),
        ],
    );
    assert!(manifests.employees.is_empty() && manifests.secrets.is_empty());
}

#[test]
fn reports_missing_fields_at_their_parent_and_unknown_keyward_kinds() {
    let dir = tree(&[(
        "a.yaml",
        "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: frank}
spec:
  roles: [sre]
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: gina}
---
apiVersion: keyward.dev/v1beta1
kind: Employee
metadata: {name: hank}
spec: {email: hank@acme.example}
---
apiVersion: keyward.dev/v1alpha1
kind: Person
metadata: {name: ida}
---
kind: AccessGrant
metadata: {name: jo}
",
    )]);
    let (manifests, problems) = load(&[dir.path().join("a.yaml")], "acme");
    assert_problems(
        &problems,
        &[
            ("a.yaml", 4, "Employee acme/frank: spec: missing field `email`"),
            ("a.yaml", 7, "Employee acme/gina: missing field `spec`"),
            ("a.yaml", 11, "Employee acme/hank: unknown apiVersion `keyward.dev/v1beta1`"),
            ("a.yaml", 17, "Person acme/ida: unknown kind `Person`"),
            ("a.yaml", 20, "AccessGrant acme/jo: AccessGrant without an `apiVersion`"),
        ],
    );
    assert!(manifests.employees.is_empty());
}

#[test]
fn reads_list_items_and_reports_a_bad_one_at_its_line() {
    let dir = tree(&[(
        "list.yaml",
        "\
apiVersion: v1
kind: List
items:
- apiVersion: keyward.dev/v1alpha1
  kind: Employee
  metadata: {name: a}
  spec: {email: a@acme.example}
- apiVersion: keyward.dev/v1alpha1
  kind: Employee
  metadata: {name: b}
  spec:
    email: b@acme.example
    state: Gone
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
- apiVersion: keyward.dev/v1alpha1
  kind: Employee
  metadata: {name: d}
  spec: {email: d@acme.example}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert_problems(&problems, &[("list.yaml", 13, "Employee acme/b: spec.state: unknown variant `Gone`")]);
    let read: Vec<_> = manifests
        .employees
        .iter()
        .map(|e| (e.object.metadata.name.clone().unwrap_or_default(), e.source.line))
        .collect();
    assert_eq!(read, vec![("a".to_string(), 4), ("d".to_string(), 17)]);
}

#[test]
fn reports_unreadable_paths_and_files() {
    let dir = tree(&[("bad.yaml", "")]);
    std::fs::write(dir.path().join("bad.yaml"), b"a: 1\nb: \xff\n").expect("write");
    let missing = dir.path().join("nope");
    let (_, problems) = load(&[missing, dir.path().join("bad.yaml")], "acme");
    assert_problems(&problems, &[("nope", 0, "cannot read"), ("bad.yaml", 2, "not UTF-8")]);
}

#[test]
fn walks_a_clean_tree() {
    let (manifests, problems) = load(&[fixture("clean")], "acme");
    assert_problems(&problems, &[]);
    assert_eq!(validate(&manifests, now()), vec![]);

    let sources = |files: Vec<&Source>| -> Vec<(String, usize)> {
        files
            .iter()
            .map(|s| (s.file.strip_prefix(fixture("clean")).unwrap_or(&s.file).display().to_string(), s.line))
            .collect()
    };
    assert_eq!(sources(manifests.providers.iter().map(|l| &l.source).collect()), vec![("providers.yaml".into(), 2)]);
    assert_eq!(
        sources(manifests.grants.iter().map(|l| &l.source).collect()),
        vec![("grants.yml".into(), 2), ("grants.yml".into(), 13)]
    );
    assert_eq!(
        sources(manifests.employees.iter().map(|l| &l.source).collect()),
        vec![("people/alice.yaml".into(), 1), ("people/others.yaml".into(), 5), ("people/others.yaml".into(), 16)]
    );
    assert!(manifests.employees.iter().all(|e| e.object.metadata.namespace.as_deref() == Some("acme")));
    assert_eq!(manifests.grants[0].object.metadata.namespace.as_deref(), Some("acme"));

    assert_eq!(manifests.secret_value("acme", "pi-admin", "username").as_deref(), Some("admin"));
    assert_eq!(manifests.secret_value("acme", "pi-admin", "password").as_deref(), Some("change-me"));
    assert_eq!(manifests.secret_value("acme", "pi-admin", "token"), None);
    assert_eq!(manifests.secret_value("other", "pi-admin", "username"), None);
    assert!(manifests.secret("acme", "pi-admin").is_some());

    // A file named twice (itself and through its directory) is read once.
    let (twice, problems) = load(&[fixture("clean/providers.yaml"), fixture("clean")], "acme");
    assert!(problems.is_empty());
    assert_eq!(twice.providers.len(), 1);
}

#[test]
fn string_data_wins_over_data() {
    let dir = tree(&[(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: b2xk, raw: //79}\nstringData: {password: new}\n",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(manifests.secret_value("acme", "s", "password").as_deref(), Some("new"));
    assert_eq!(manifests.secret_value("acme", "s", "raw"), None, "not UTF-8");
}

#[test]
fn reports_dangling_references() {
    let dir = tree(&[
        ("provider.yaml", PROVIDER),
        (
            "grants.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: AccessGrant
metadata: {name: sre-otp, namespace: acme}
spec:
  provider: corp-pii
  subjects: {roles: [sre], employees: [bob, bobb]}
  factors: [totp, TOTP]
---
apiVersion: keyward.dev/v1alpha1
kind: AccessGrant
metadata: {name: nobody, namespace: acme}
spec:
  provider: corp-pi
  subjects: {}
  factors: []
  validFrom: \"2026-01-01T00:00:00Z\"
  validUntil: \"2025-01-01T00:00:00Z\"
",
        ),
        (
            "people.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: bob, namespace: acme}
spec:
  email: bob@acme.example
  identities:
  - {provider: corp-pi, username: bob}
  - provider: corp-okta
    username: bob
  - {provider: corp-pi, username: robert}
",
        ),
        (
            "approvals.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: RevocationApproval
metadata: {name: approve-held, namespace: acme}
spec:
  provider: corp-pii
  digest: 511234d4202f795c
  reason: the offboarding of the sales team
",
        ),
    ]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_problems(
        &validate(&manifests, now()),
        &[
            (
                "approvals.yaml",
                5,
                "RevocationApproval acme/approve-held: spec.provider: MfaProvider acme/corp-pii not found",
            ),
            ("grants.yaml", 5, "AccessGrant acme/sre-otp: spec.provider: MfaProvider acme/corp-pii not found"),
            ("grants.yaml", 6, "AccessGrant acme/sre-otp: spec.subjects.employees[1]: Employee acme/bobb not found"),
            ("grants.yaml", 7, "AccessGrant acme/sre-otp: spec.factors[1]: \"TOTP\" does not match"),
            (
                "grants.yaml",
                14,
                "AccessGrant acme/nobody: spec.subjects: subjects must name at least one role or employee",
            ),
            ("grants.yaml", 15, "AccessGrant acme/nobody: spec.factors: [] has less than 1 item"),
            ("grants.yaml", 17, "AccessGrant acme/nobody: spec.validUntil: validFrom must be before validUntil"),
            ("people.yaml", 6, "Employee acme/bob: spec.identities: at most one identity per provider"),
            ("people.yaml", 8, "Employee acme/bob: spec.identities[1].provider: MfaProvider acme/corp-okta not found"),
        ],
    );
}

#[test]
fn reports_missing_secrets_and_keys() {
    let dir = tree(&[(
        "providers.yaml",
        "\
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: no-secret, namespace: acme}
spec:
  privacyidea:
    url: https://pi.acme.example
    realm: corp
    credentials:
      secretRef:
        name: nowhere
---
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: no-keys, namespace: acme}
spec:
  privacyidea:
    url: https://pi.acme.example
    realm: corp
    credentials:
      secretRef:
        name: pi-admin
        passwordKey: pass
---
apiVersion: v1
kind: Secret
metadata: {name: pi-admin, namespace: acme}
stringData: {password: change-me}
---
apiVersion: v1
kind: Secret
metadata: {name: nowhere, namespace: elsewhere}
stringData: {username: a, password: b}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    let secret_at = format!("{}:24", dir.path().join("providers.yaml").display());
    assert_problems(
        &validate(&manifests, now()),
        &[
            (
                "providers.yaml",
                10,
                "MfaProvider acme/no-secret: spec.privacyidea.credentials.secretRef.name: Secret acme/nowhere not found",
            ),
            (
                "providers.yaml",
                21,
                "MfaProvider acme/no-keys: spec.privacyidea.credentials.secretRef: Secret acme/pi-admin",
            ),
            ("providers.yaml", 22, "has no key `pass`"),
        ],
    );
    let problems = validate(&manifests, now());
    assert!(problems[1].message.contains(&format!("({secret_at}) has no key `username`")), "{}", problems[1]);
}

#[test]
fn checks_provider_schema_rules() {
    let dir = tree(&[(
        "p.yaml",
        "\
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: Corp_PI, namespace: acme}
spec:
  privacyidea:
    url: http://pi.acme.example
    realm: ''
    credentials: {secretRef: {name: pi-admin}}
    timeout: 10h
  protectedUsers: [breakglass, '']
  policy:
    budget: {maxRevocations: 200000, maxPercent: 0, window: an hour}
    resyncInterval: 10 minutes
---
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {name: empty, namespace: acme}
spec: {}
---
apiVersion: v1
kind: Secret
metadata: {name: pi-admin, namespace: acme}
stringData: {username: admin, password: x}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_problems(
        &validate(&manifests, now()),
        &[
            ("p.yaml", 3, "MfaProvider acme/Corp_PI: metadata.name: `Corp_PI` is not a valid name"),
            ("p.yaml", 6, "spec.privacyidea.url: url must be https (http only for loopback)"),
            ("p.yaml", 7, "spec.privacyidea.realm: \"\" is shorter than 1 character"),
            ("p.yaml", 9, "spec.privacyidea.timeout: \"10h\" does not match \"^[0-9]+(ms|s|m)$\""),
            ("p.yaml", 10, "spec.protectedUsers[1]: \"\" is shorter than 1 character"),
            ("p.yaml", 12, "spec.policy.budget.maxPercent: 0 is less than the minimum of 1"),
            ("p.yaml", 12, "spec.policy.budget.maxRevocations: 200000 is greater than the maximum of 100000"),
            ("p.yaml", 12, "spec.policy.budget.window: \"an hour\" does not match"),
            ("p.yaml", 13, "spec.policy.resyncInterval: \"10 minutes\" does not match"),
            (
                "p.yaml",
                18,
                "MfaProvider acme/empty: spec: exactly one provider block must be set (privacyidea, okta, duo, entraId, googleWorkspace, keycloak)",
            ),
        ],
    );
}

#[test]
fn checks_notification_schema_rules_and_secrets() {
    let dir = tree(&[(
        "p.yaml",
        &format!(
            "{PROVIDER}---
apiVersion: keyward.dev/v1alpha1
kind: MfaProvider
metadata: {{name: notifying, namespace: acme}}
spec:
  privacyidea: {{url: https://pi.acme.example, realm: corp, credentials: {{secretRef: {{name: pi-admin}}}}}}
  notifications:
  - name: security-slack
    slack: {{urlSecretRef: {{name: hooks, key: slack}}}}
    events: [Revoked, Blocked]
  - name: siem
    webhook:
      urlSecretRef: {{name: hooks, key: siem}}
      hmacSecretRef: {{name: hooks, key: siem-hmac}}
  - name: both
    slack: {{urlSecretRef: {{name: hooks, key: slack}}}}
    webhook: {{urlSecretRef: {{name: hooks, key: siem}}}}
  - name: siem
    slack: {{urlSecretRef: {{name: elsewhere, key: slack}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: hooks, namespace: acme}}
stringData: {{slack: https://hooks.slack.com/services/T/B/X, siem: https://siem.acme.example}}
"
        ),
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_problems(
        &validate(&manifests, now()),
        &[
            ("p.yaml", 21, "spec.notifications: notification target names must be unique"),
            ("p.yaml", 21, "spec.notifications[2]: a notification target needs exactly one of slack or webhook"),
            ("p.yaml", 21, "spec.notifications[1].webhook.hmacSecretRef: Secret acme/hooks ("),
            (
                "p.yaml",
                21,
                "spec.notifications[3].slack.urlSecretRef.name: Secret acme/elsewhere not found in these manifests",
            ),
        ],
    );
    let problems = validate(&manifests, now());
    assert!(problems[2].message.ends_with("p.yaml:35) has no key `siem-hmac`"), "{}", problems[2]);
    assert_eq!(problems[3].severity, Severity::Note, "Secrets are usually kept out of Git");
}

#[test]
fn checks_employee_schema_rules() {
    let dir = tree(&[
        ("provider.yaml", PROVIDER),
        (
            "e.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: kim, namespace: acme}
spec:
  email: kim at acme
  activeFrom: \"2026-06-01T00:00:00Z\"
  activeUntil: \"2026-06-01T00:00:00Z\"
  identities: [{provider: corp-pi, username: ''}]
",
        ),
    ]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_problems(
        &validate(&manifests, now()),
        &[
            ("e.yaml", 5, "Employee acme/kim: spec.email: \"kim at acme\" does not match"),
            ("e.yaml", 7, "Employee acme/kim: spec.activeUntil: activeFrom must be before activeUntil"),
            ("e.yaml", 8, "Employee acme/kim: spec.identities[0].username: \"\" is shorter than 1 character"),
        ],
    );
}

#[test]
fn reports_duplicates_with_the_first_location() {
    let dir = tree(&[
        (
            "a.yaml",
            "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: bob}\nspec: {email: bob@acme.example}\n",
        ),
        (
            "b.yaml",
            "\
# bob again, in the same namespace through the default
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata:
  namespace: acme
  name: bob
spec: {email: bob@acme.example}
---
# same name, other namespace: fine
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: bob, namespace: other}
spec: {email: bob@acme.example}
",
        ),
    ]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    let first = format!("{}:1", dir.path().join("a.yaml").display());
    assert_problems(
        &validate(&manifests, now()),
        &[("b.yaml", 6, &format!("Employee acme/bob: metadata.name: duplicate, first declared at {first}"))],
    );
}

#[test]
fn reports_identity_conflicts_on_the_second_employee() {
    let dir = tree(&[
        ("provider.yaml", PROVIDER),
        (
            "people.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: bob, namespace: acme}
spec:
  email: bob@acme.example
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: robert, namespace: acme}
spec:
  email: Bob@ACME.example
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: bobby, namespace: acme}
spec:
  email: bobby@acme.example
  identities:
  - {provider: corp-pi, username: BOB@acme.example}
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: other-ns, namespace: elsewhere}
spec:
  email: bob@acme.example
",
        ),
    ]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    let first = format!("{}:1", dir.path().join("people.yaml").display());
    assert_problems(
        &validate(&manifests, now()),
        &[
            (
                "people.yaml",
                11,
                &format!(
                    "Employee acme/robert: spec.email: maps to user `Bob@ACME.example` on MfaProvider acme/corp-pi, already claimed by Employee acme/bob ({first})"
                ),
            ),
            ("people.yaml", 19, "Employee acme/bobby: spec.identities[0]: maps to user `BOB@acme.example`"),
        ],
    );
}

#[test]
fn validate_falls_back_to_the_object_line_without_the_file() {
    let mut manifests = Manifests::default();
    let (loaded, _) = load(&[fixture("clean/people/alice.yaml")], "acme");
    let mut alice = loaded.employees.into_iter().next().expect("alice");
    alice.source = Source { file: PathBuf::from("/nonexistent/alice.yaml"), line: 3 };
    alice.object.spec.email = "nope".into();
    manifests.employees.push(alice);
    assert_problems(
        &validate(&manifests, now()),
        &[
            ("alice.yaml", 3, "spec.email: \"nope\" does not match"),
            ("alice.yaml", 3, "spec.identities[0].provider: MfaProvider acme/corp-pi not found"),
        ],
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that make the input look enough like manifests to reach the deep paths.
    const FRAGMENTS: &[&str] = &[
        "apiVersion: keyward.dev/v1alpha1\n",
        "apiVersion: v1\n",
        "kind: Employee\n",
        "kind: MfaProvider\n",
        "kind: AccessGrant\n",
        "kind: Secret\n",
        "kind: List\n",
        "items:\n",
        "- ",
        "  ",
        "metadata: {name: x}\n",
        "metadata:\n",
        "name: x\n",
        "namespace: y\n",
        "spec:\n",
        "email: a@b.c\n",
        "identities:\n",
        "provider: p\n",
        "username: u\n",
        "privacyidea:\n",
        "stringData: {username: a}\n",
        "data: {k: '!!'}\n",
        "---\n",
        "--- # c\n",
        "{",
        "}",
        "[",
        "]",
        ", ",
        ": ",
        "# ",
        "'",
        "\"",
        "&a ",
        "*a ",
        "!!binary ",
        "\n",
        "\r\n",
        "é",
        "\t",
    ];

    fn check(text: &[u8]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fuzz.yaml");
        std::fs::write(&path, text).expect("write");
        let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
        for problem in &problems {
            let _ = problem.to_string();
        }
        let _ = validate(&manifests, now());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            check(&bytes);
        }

        /// Valid manifests with bytes deleted, replaced or inserted here and there.
        #[test]
        fn on_mutated_manifests(edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8)) {
            let mut text = format!("{PROVIDER}---\n{}", include_str!("../../tests/fixtures/manifests/clean/people/others.yaml")).into_bytes();
            for (at, op, byte) in edits {
                let i = at.index(text.len() + 1);
                match op {
                    0 if i < text.len() => { text.remove(i); }
                    1 if i < text.len() => text[i] = byte,
                    _ => text.insert(i, byte),
                }
            }
            check(&text);
        }

        #[test]
        fn on_manifest_like_text(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..80)) {
            check(parts.concat().as_bytes());
        }
    }
}

#[test]
fn identity_conflicts_follow_the_user_mapping() {
    let provider = PROVIDER
        .replace("      secretRef: {name: pi-admin}\n", "      secretRef: {name: pi-admin}\n  userMapping: name\n");
    let dir = tree(&[
        ("a-provider.yaml", provider.as_str()),
        (
            "people.yaml",
            "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: alice, namespace: acme}
spec:
  email: bob@acme.example
  identities: [{provider: corp-pi, username: Bob}]
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata:
  namespace: acme
  name: bob
spec:
  email: bob@acme.example
",
        ),
    ]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "acme");
    assert!(problems.is_empty(), "{problems:?}");
    assert_problems(
        &validate(&manifests, now()),
        &[(
            "people.yaml",
            12,
            "Employee acme/bob: metadata.name: maps to user `bob` on MfaProvider acme/corp-pi, already claimed by Employee acme/alice",
        )],
    );
}

/// A document that is a bare YAML list of keyward objects is refused (kubectl refuses it too);
/// skipped, its Employees would read as deleted. Other tools' lists are still ignored.
#[test]
fn a_bare_list_of_objects_is_refused_and_other_lists_ignored() {
    let dir = tree(&[(
        "people.yaml",
        "\
- apiVersion: keyward.dev/v1alpha1
  kind: Employee
  metadata: {name: dave, namespace: acme}
  spec: {email: dave@acme.example, state: Offboarded}
---
- name: install packages
  apt: {name: nginx}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "default");
    assert_problems(&problems, &[("people.yaml", 1, "Employee acme/dave: this document is a YAML list of objects")]);
    assert!(problems[0].message.contains("kind: List"), "{}", problems[0].message);
    assert!(manifests.employees.is_empty());
}

/// `name: 1234` and `username: 1234` are numbers to the API server, which refuses them for
/// string fields; serde_yaml would read them as text. A list where text is due stays serde's
/// error.
#[test]
fn numbers_and_booleans_where_text_is_due_are_refused() {
    let dir = tree(&[(
        "people.yaml",
        "\
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: 1234, namespace: acme}
spec: {email: a@acme.example}
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: bob, namespace: acme}
spec:
  email: bob@acme.example
  roles: [true]
  identities: [{provider: pi, username: 1234}]
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: carol, namespace: acme}
spec: {email: [carol@acme.example]}
",
    )]);
    let (manifests, problems) = load(&[dir.path().to_path_buf()], "default");
    assert_problems(
        &problems,
        &[
            ("people.yaml", 3, "Employee acme/(no name): metadata.name: 1234 is not a string (quote it)"),
            // In the order of the schema's checks, not of lines (`validate` sorts them).
            ("people.yaml", 12, "Employee acme/bob: spec.identities[0].username: 1234 is not of type \"string\""),
            ("people.yaml", 11, "Employee acme/bob: spec.roles[0]: true is not of type \"string\""),
            ("people.yaml", 17, "Employee acme/carol: spec.email: invalid type: sequence, expected a string"),
        ],
    );
    assert!(manifests.employees.is_empty());
}
