//! Builders for engine tests.

use super::inventory::{Capabilities, Enrolment, Inventory, ProviderUser};
use crate::crd::mfa_provider::{Credentials, PrivacyIdeaSpec, SecretRef, UserMapping};
use crate::crd::*;
use chrono::{DateTime, TimeZone, Utc};
use kube::api::ObjectMeta;

pub const NS: &str = "acme";

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).single().expect("valid time")
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() }
}

pub fn provider() -> MfaProvider {
    MfaProvider::new(
        "corp-pi",
        MfaProviderSpec {
            privacyidea: Some(PrivacyIdeaSpec {
                url: "http://127.0.0.1:5001".into(),
                realm: "corp".into(),
                credentials: Credentials {
                    secret_ref: SecretRef { name: "pi-admin".into(), username_key: None, password_key: None },
                },
                timeout: None,
            }),
            okta: None,
            duo: None,
            entra_id: None,
            google_workspace: None,
            keycloak: None,
            ca_bundle: None,
            user_mapping: UserMapping::Name,
            scope: Default::default(),
            protected_users: vec![],
            policy: Default::default(),
            suspend: false,
            notifications: vec![],
        },
    )
    .with_meta(meta("corp-pi"))
}

trait WithMeta {
    fn with_meta(self, meta: ObjectMeta) -> Self;
}
impl WithMeta for MfaProvider {
    fn with_meta(mut self, meta: ObjectMeta) -> Self {
        self.metadata = meta;
        self
    }
}

pub fn employee(name: &str, roles: &[&str], state: EmployeeState) -> Employee {
    let mut e = Employee::new(
        name,
        EmployeeSpec {
            email: format!("{name}@acme.example"),
            display_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            state,
            active_from: None,
            active_until: None,
            identities: vec![],
        },
    );
    e.metadata = meta(name);
    e
}

pub fn grant(name: &str, roles: &[&str], employees: &[&str], factors: &[&str]) -> AccessGrant {
    let mut g = AccessGrant::new(
        name,
        AccessGrantSpec {
            provider: "corp-pi".into(),
            subjects: Subjects {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                employees: employees.iter().map(|r| r.to_string()).collect(),
            },
            factors: factors.iter().map(|f| FactorKind::new(f)).collect(),
            enrolment: EnrolmentPolicy::Allowed,
            valid_from: None,
            valid_until: None,
        },
    );
    g.metadata = meta(name);
    g
}

/// `(serial, kind, active)`
pub type Listed<'a> = (&'a str, &'a str, bool);

/// `(user, [(serial, kind, active)])`
pub fn inventory(users: &[(&str, &[Listed])]) -> Inventory {
    Inventory {
        users: users
            .iter()
            .map(|(name, enrolments)| ProviderUser {
                aliases: Vec::new(),
                name: name.to_string(),
                in_directory: true,
                enrolments: enrolments
                    .iter()
                    .map(|(id, kind, active)| Enrolment::new(id.to_string(), FactorKind::new(kind), *active))
                    .collect(),
            })
            .collect(),
    }
}

pub fn capabilities() -> Capabilities {
    Capabilities { disable: true, invite: vec![] }
}

/// A Kubernetes `Time` (jiff-based in k8s-openapi) from a chrono time.
pub fn k8s_time(t: DateTime<Utc>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).expect("time in range"),
    )
}

/// The plan for this declared state and listing, at [`now`], with the fixtures' capabilities,
/// nothing revoked yet in the budget window, and the provider's approval annotation honoured
/// (as `keyward apply` does).
pub fn planned(provider: &MfaProvider, employees: &[Employee], grants: &[AccessGrant], inv: &Inventory) -> super::Plan {
    let approvals: Vec<_> = super::budget::annotation_offer(provider).into_iter().collect();
    super::plan(&super::PlanInput {
        provider,
        employees,
        grants,
        inventory: Ok(inv),
        capabilities: &capabilities(),
        now: now(),
        revoked_in_window: 0,
        approvals: &approvals,
    })
}
