//! `crds/` must hold exactly what `keyward crds` prints: the CRDs are generated, never edited.

mod support;

use support::*;

#[test]
fn crds_directory_matches_the_generated_definitions() {
    for (plural, definition) in keyward::crd::definitions() {
        let generated = keyward::crd::definition_yaml(&definition).expect("serialize");
        let path = repo().join("crds").join(format!("{plural}.yaml"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "{} is out of date: run `cargo run -- crds --write crds`", path.display());
    }
}

#[test]
fn keyward_crds_prints_every_definition() {
    let out = keyward(&["crds"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).expect("YAML")).collect();
    let names: Vec<&str> = docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "mfaproviders.keyward.dev",
            "employees.keyward.dev",
            "accessgrants.keyward.dev",
            "revocationapprovals.keyward.dev"
        ]
    );
    for doc in &docs {
        assert_eq!(doc["spec"]["scope"], "Namespaced");
        let version = &doc["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(version["subresources"]["status"].is_mapping(), "status subresource");
        assert!(version["additionalPrinterColumns"].as_sequence().unwrap().len() >= 4);
    }
}

#[test]
fn the_schema_carries_the_rules_the_server_enforces() {
    let text = stdout(&keyward(&["crds"]));
    for rule in [
        "exactly one provider block must be set",
        "activeFrom must be before activeUntil",
        "validFrom must be before validUntil",
        "subjects must name at least one role or employee",
        "url must be https",
        "an approval cannot be changed; create a new one",
    ] {
        assert!(text.contains(rule), "CEL rule {rule:?} missing");
    }
    for enumerated in ["Offboarded", "Observe", "Disable", "Required", "All"] {
        assert!(text.contains(&format!("- {enumerated}")), "enum value {enumerated} missing");
    }
}

/// A target may list every kind of notification: the schema's bound on `events` is the number
/// of kinds there are, so adding a kind without raising it is caught here, not by a user whose
/// complete list the API server rejects.
#[test]
fn a_notification_target_may_name_every_event() {
    let (_, definition) = keyward::crd::definitions()
        .into_iter()
        .find(|(plural, _)| *plural == "mfaproviders")
        .expect("the MfaProvider CRD");
    let definition = serde_json::to_value(&definition).expect("CRD as JSON");
    let events = &definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["notifications"]
        ["items"]["properties"]["events"];
    let kinds = events["items"]["enum"].as_array().unwrap_or_else(|| panic!("events has no enum: {events}"));
    assert_eq!(events["maxItems"].as_u64(), Some(kinds.len() as u64), "events: {events}");
    assert!(kinds.iter().any(|k| k == "SettingsChanged"), "{kinds:?}");
}
