use super::*;
use crate::crd::MfaProviderStatus;
use crate::engine::fixtures;

fn held(blocked: u32, listed: usize) -> MfaProvider {
    let mut provider = fixtures::provider();
    let planned = (0..listed)
        .map(|i| PlannedRevocation {
            user: format!("user{i}"),
            enrolment: format!("TOTP{i:04}"),
            kind: "totp".into(),
            reason: "EmployeeOffboarded".into(),
            employee: (i > 0).then(|| format!("user{i}")),
        })
        .collect();
    provider.status = Some(MfaProviderStatus {
        blocked_revocations: blocked,
        blocked_plan_digest: Some("0123456789abcdef".into()),
        planned_revocations: planned,
        ..MfaProviderStatus::default()
    });
    provider
}

fn api(code: u16, reason: &str, message: &str) -> kube::Error {
    kube::Error::Api(Box::new(kube::core::Status {
        code,
        reason: reason.into(),
        message: message.into(),
        ..kube::core::Status::default()
    }))
}

#[test]
fn a_403_says_what_may_not_be_done_to_which_object() {
    let request = Request { verb: "create", resource: "revocationapprovals", name: Some("pi-1"), namespace: "acme" };
    let text = api_error(&request, &api(403, "Forbidden", "User \"eddie\" cannot create"));
    assert_eq!(
        text,
        "Error from server (Forbidden): forbidden: you may not create revocationapprovals \"pi-1\" in namespace \"acme\": User \"eddie\" cannot create"
    );
    let missing = Request { verb: "get", resource: "mfaproviders", name: Some("nope"), namespace: "acme" };
    let text = api_error(&missing, &api(404, "NotFound", "mfaproviders.keyward.dev \"nope\" not found"));
    assert_eq!(text, "Error from server (NotFound): mfaproviders.keyward.dev \"nope\" not found");
}

#[test]
fn only_an_explicit_yes_confirms() {
    for yes in ["y\n", "Y", " yes\n", "YES"] {
        assert!(confirmed(yes), "{yes:?}");
    }
    for no in ["", "\n", "n", "no", "yess", "ja"] {
        assert!(!confirmed(no), "{no:?}");
    }
}

#[test]
fn the_approval_names_the_provider_and_exactly_the_held_digest() {
    let provider = held(2, 2);
    let digest = held_digest(&provider).unwrap();
    let approval = approval(&provider, digest, "ticket 42");
    assert_eq!(approval.spec.digest, "0123456789abcdef");
    assert_eq!(approval.spec.provider, provider.name_any());
    assert_eq!(approval.spec.reason, "ticket 42");
    assert_eq!(approval.namespace(), provider.namespace());
    assert_eq!(approval.name_any(), format!("{}-0123456789abcdef", provider.name_any()));

    let mut long = provider.clone();
    long.metadata.name = Some("p".repeat(253));
    assert_eq!(super::approval(&long, digest, "r").name_any().len(), 253);
}

#[test]
fn nothing_is_held_without_a_digest() {
    let mut provider = held(0, 0);
    provider.status.as_mut().unwrap().blocked_plan_digest = None;
    assert_eq!(held_digest(&provider), None);
    provider.status.as_mut().unwrap().blocked_plan_digest = Some(String::new());
    assert_eq!(held_digest(&provider), None);
    provider.status = None;
    assert_eq!(held_digest(&provider), None);
}

#[test]
fn status_shows_the_held_plan_its_digest_and_how_many_are_listed() {
    let provider = held(31, 3);
    let text = status(std::slice::from_ref(&provider), fixtures::now());
    assert!(text.contains("held plan digest:     0123456789abcdef"), "{text}");
    assert!(text.contains("held revocations:     31"), "{text}");
    assert!(text.contains("held for approval (first 3 of 31):"), "{text}");
    assert!(text.contains("suspended:            no"), "{text}");
    assert!(text.contains("last sweep:           never"), "{text}");
    let row = text.lines().find(|l| l.contains("TOTP0000")).unwrap();
    assert!(row.contains("user0") && row.contains("EmployeeOffboarded") && row.contains("(none: undeclared)"), "{row}");
    let header = text.lines().find(|l| l.contains("ENROLMENT")).unwrap();
    assert_eq!(header.find("KIND"), row.find("totp"), "columns aligned:\n{text}");
}

#[test]
fn the_held_plan_says_when_only_the_first_revocations_are_listed() {
    let text = held_plan(&held(31, 3), "0123456789abcdef");
    assert!(text.contains("holds a plan of 31 revocation(s) for approval, digest 0123456789abcdef"), "{text}");
    assert!(text.contains("the first 3 shown; the digest covers all 31"), "{text}");
    let all = held_plan(&held(3, 3), "0123456789abcdef");
    assert!(!all.contains("first"), "{all}");
}

#[test]
fn plan_notes_say_when_the_operator_would_not_act() {
    let mut provider = fixtures::provider();
    assert_eq!(plan_note(&provider), None);
    provider.spec.policy.mode = Mode::Observe;
    assert!(plan_note(&provider).unwrap().contains("Observe mode"));
    provider.spec.suspend = true;
    assert!(plan_note(&provider).unwrap().contains("suspended"));
}
