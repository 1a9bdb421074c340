//! `keyward import -f PROVIDER-MANIFESTS`: the Employees and AccessGrants that declare what a
//! provider holds today, for review in a pull request — so that `scope: All` can be adopted
//! without writing thousands of files by hand.
//!
//! The decision (who becomes an Employee under which name, which grant covers which kind) is
//! [`declare`], pure; the command around it reads the provider and writes YAML. Users the
//! provider lists but no longer has in its directory (leavers whose enrolments stayed behind)
//! and protected users are never imported: declaring them would keep what should go.

use crate::crd::access_grant::{AccessGrantSpec, EnrolmentPolicy, Subjects};
use crate::crd::employee::{EmployeeSpec, Identity};
use crate::crd::mfa_provider::UserMapping;
use crate::crd::{AccessGrant, Employee, FactorKind, MfaProvider};
use crate::engine::Inventory;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// What [`declare`] made of one provider's users.
#[derive(Debug, Default)]
pub struct Declared {
    pub employees: Vec<Employee>,
    pub grants: Vec<AccessGrant>,
    /// Users left out, and why.
    pub skipped: Vec<(String, String)>,
}

/// Employees for the users `inventory` lists on `provider` (in its directory, not protected),
/// and one AccessGrant per factor kind they hold, naming exactly the Employees holding it.
/// A user name that is not an e-mail address gets `@email_domain`, or is skipped without one.
pub fn declare(provider: &MfaProvider, inventory: &Inventory, email_domain: Option<&str>) -> Declared {
    let provider_name = provider.name_any();
    let namespace = provider.namespace();
    let protected: BTreeSet<String> = provider.spec.protected_users.iter().map(|u| u.to_lowercase()).collect();
    let mut out = Declared::default();
    let mut names = BTreeSet::new();
    let mut holders: BTreeMap<FactorKind, BTreeSet<String>> = BTreeMap::new();
    for user in &inventory.users {
        let skip = |why: &str| (user.name.clone(), why.to_string());
        if !user.in_directory {
            out.skipped.push(skip("no longer in the provider's directory (a leaver's enrolments stay undeclared)"));
            continue;
        }
        if protected.contains(&user.name.to_lowercase()) {
            out.skipped.push(skip("a protected user"));
            continue;
        }
        let email = match (user.name.contains('@'), email_domain) {
            (true, _) => user.name.clone(),
            (false, Some(domain)) => format!("{}@{domain}", user.name),
            (false, None) => {
                out.skipped.push(skip("not an e-mail address; pass --email-domain"));
                continue;
            }
        };
        let name = unique(object_name(&user.name), &mut names);
        // The identity is written out only where the provider's mapping would not find it.
        let mapped = match provider.spec.user_mapping {
            UserMapping::Email => email.clone(),
            UserMapping::Name => name.clone(),
        };
        let identities = if mapped.eq_ignore_ascii_case(&user.name) {
            Vec::new()
        } else {
            vec![Identity { provider: provider_name.clone(), username: user.name.clone() }]
        };
        let mut employee = Employee::new(
            &name,
            EmployeeSpec {
                email,
                display_name: None,
                roles: Vec::new(),
                state: Default::default(),
                active_from: None,
                active_until: None,
                identities,
            },
        );
        employee.metadata.namespace = namespace.clone();
        out.employees.push(employee);
        for enrolment in &user.enrolments {
            holders.entry(enrolment.kind.clone()).or_default().insert(name.clone());
        }
    }
    for (kind, employees) in holders {
        let mut grant = AccessGrant::new(
            &object_name(&format!("{provider_name}-{kind}")),
            AccessGrantSpec {
                provider: provider_name.clone(),
                subjects: Subjects { roles: Vec::new(), employees: employees.into_iter().collect() },
                factors: vec![kind],
                enrolment: EnrolmentPolicy::default(),
                valid_from: None,
                valid_until: None,
            },
        );
        grant.metadata.namespace = namespace.clone();
        out.grants.push(grant);
    }
    out
}

/// A DNS subdomain name from a user name: lower case, `@` and other characters as `-`.
fn object_name(user: &str) -> String {
    let mut name: String = user
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    name = name.trim_matches(|c: char| c == '-' || c == '.').to_string();
    name.truncate(240);
    if name.is_empty() { "user".to_string() } else { name }
}

/// `name`, or `name-2`, `name-3`… when taken.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Enrolment, ProviderUser};

    fn provider(mapping: &str) -> MfaProvider {
        serde_yaml::from_str(&format!(
            "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: acme}}\nspec:\n  privacyidea: {{url: https://pi.acme.example, realm: corp, credentials: {{secretRef: {{name: s}}}}}}\n  userMapping: {mapping}\n  protectedUsers: [breakglass]\n"
        ))
        .expect("provider")
    }

    fn user(name: &str, in_directory: bool, kinds: &[&str]) -> ProviderUser {
        let enrolments =
            kinds.iter().map(|k| Enrolment::new(format!("{name}-{k}"), FactorKind::new(k), true)).collect();
        ProviderUser { name: name.into(), in_directory, enrolments, aliases: Vec::new() }
    }

    #[test]
    fn leavers_and_protected_users_are_never_declared() {
        let inventory = Inventory {
            users: vec![
                user("alice", true, &["totp", "hotp"]),
                user("Bob.Smith", true, &["totp"]),
                user("dave", false, &["totp"]),
                user("breakglass", true, &["totp"]),
                user("carol@other.example", true, &[]),
            ],
        };
        let declared = declare(&provider("name"), &inventory, Some("acme.example"));
        let names: Vec<String> = declared.employees.iter().map(|e| e.name_any()).collect();
        assert_eq!(names, ["alice", "bob.smith", "carol-other.example"]);
        let skipped: Vec<&str> = declared.skipped.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(skipped, ["dave", "breakglass"]);
        // userMapping name: alice is found by her name; Bob.Smith and carol need an identity.
        let identities: Vec<usize> = declared.employees.iter().map(|e| e.spec.identities.len()).collect();
        assert_eq!(identities, [0, 0, 1], "bob.smith matches Bob.Smith case-insensitively");
        assert_eq!(declared.employees[0].spec.email, "alice@acme.example");
        assert_eq!(declared.employees[2].spec.email, "carol@other.example");
        let grants: Vec<(String, Vec<String>)> =
            declared.grants.iter().map(|g| (g.name_any(), g.spec.subjects.employees.clone())).collect();
        assert_eq!(
            grants,
            [
                ("corp-pi-hotp".to_string(), vec!["alice".to_string()]),
                ("corp-pi-totp".to_string(), vec!["alice".to_string(), "bob.smith".to_string()]),
            ]
        );
    }

    #[test]
    fn a_user_name_without_an_address_needs_a_domain() {
        let inventory = Inventory { users: vec![user("alice", true, &["totp"])] };
        let declared = declare(&provider("email"), &inventory, None);
        assert!(declared.employees.is_empty());
        assert!(declared.skipped[0].1.contains("--email-domain"));
        let declared = declare(&provider("email"), &inventory, Some("acme.example"));
        assert_eq!(declared.employees[0].spec.identities.len(), 1, "the e-mail is not the user name");
    }
}
