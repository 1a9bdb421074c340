//! `keyward validate` and the real API server agree on every manifest fixture: each file of
//! `tests/fixtures/schema` is accepted or rejected alike by `keyward validate -f FILE` and by
//! `kubectl apply --dry-run=server -f FILE` against the CRDs of `crds/` (strict field
//! validation, as kubectl does by default). Each file states what both must say
//! (`# expect: accept|reject`), so a rule that neither applies is caught too.

mod support;

use support::cluster::cluster;
use support::*;

const NAMESPACE: &str = "schema-check";

#[test]
fn validate_and_the_api_server_accept_and_reject_the_same_manifests() {
    let cluster = cluster();
    let exists = cluster.kubectl(&["get", "namespace", NAMESPACE]).status.success();
    if !exists {
        cluster.kubectl_ok(&["create", "namespace", NAMESPACE]);
    }
    let dir = repo().join("tests/fixtures/schema");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 20, "the fixtures are there: {}", dir.display());
    let mut disagreements = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("fixture");
        let expect_accept = match text.lines().next() {
            Some("# expect: accept") => true,
            Some("# expect: reject") => false,
            other => panic!("{}: first line must be `# expect: accept|reject`, not {other:?}", file.display()),
        };
        let path = file.to_str().expect("utf-8");
        let ours = keyward(&["validate", "-f", path]);
        let server = cluster.kubectl(&["apply", "--dry-run=server", "-f", path]);
        let (ours_ok, server_ok) = (ours.status.success(), server.status.success());
        if ours_ok != expect_accept || server_ok != expect_accept {
            disagreements.push(format!(
                "{}: expected {}, keyward validate {} ({}), apiserver {} ({})",
                file.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                if expect_accept { "accept" } else { "reject" },
                if ours_ok { "accepted" } else { "rejected" },
                (stdout(&ours) + &stderr(&ours)).trim(),
                if server_ok { "accepted" } else { "rejected" },
                stderr(&server).trim(),
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} fixtures:\n{}",
        disagreements.len(),
        files.len(),
        disagreements.join("\n")
    );
}
