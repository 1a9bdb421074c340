//! `keyward conformance`: proof, on a live tenant, that keyward reads, revokes and reads again
//! the way it will in Enforce — with the MfaProvider's own credentials and through the very
//! reads and revocation the operator uses. A disposable user is created, given one second
//! factor through the admin API, listed, revoked, listed again, and deleted; every request is
//! shown (method, URL without query, status; never a credential), and the verdict names the
//! first step that did not behave.

use crate::crd::FactorKind;
use crate::crd::mfa_provider::RevocationMode;
use crate::engine::identity::user_key;
use crate::engine::{Enrolment, Inventory};
use crate::providers::http::journal;
use crate::providers::{Provider, Revoked, TestUsers, UserQuery};

/// One step and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    /// `Ok(what was seen)` or `Err(why it is wrong)`.
    pub result: Result<String, String>,
    /// The requests it made, in order.
    pub requests: Vec<String>,
}

/// Every step run, in order; the run passed when each did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub user: String,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.result.is_ok())
    }

    /// The steps as the command prints them, then the verdict.
    pub fn render(&self, provider: &str) -> String {
        let mut out = format!("conformance of {provider} with the disposable user {}\n", self.user);
        for (n, step) in self.steps.iter().enumerate() {
            let (mark, said) = match &step.result {
                Ok(seen) => ("ok  ", seen),
                Err(why) => ("FAIL", why),
            };
            out.push_str(&format!("{mark} {}. {}: {said}\n", n + 1, step.what));
            for request in &step.requests {
                out.push_str(&format!("       {request}\n"));
            }
        }
        match self.steps.iter().position(|s| s.result.is_err()) {
            None => out.push_str(&format!("verdict: PASS — {provider} is read and revoked as Enforce will\n")),
            Some(n) => out.push_str(&format!(
                "verdict: FAIL at step {} ({}): do not switch {provider} to Enforce until it passes\n",
                n + 1,
                self.steps[n].what
            )),
        }
        out
    }
}

/// The disposable user's name: `prefix` with `suffix` appended, before the `@` of an address
/// (`kw-conformance@acme.example` → `kw-conformance-1f2e3d@acme.example`).
pub fn test_user_name(prefix: &str, suffix: &str) -> String {
    match prefix.split_once('@') {
        Some((local, domain)) => format!("{local}-{suffix}@{domain}"),
        None => format!("{prefix}-{suffix}"),
    }
}

/// Runs the steps against `provider` for the user `name`. The user is deleted at the end
/// whenever it was created, whatever failed in between.
pub async fn run(provider: &Provider, name: &str) -> Report {
    let mut report = Report { user: name.to_string(), steps: Vec::new() };
    let Some(writes) = provider.test_users() else {
        report.steps.push(Step {
            what: "admin writes".into(),
            result: Err("this provider's admin API cannot give a user a second factor (Google Workspace: users \
                         turn 2-Step Verification on themselves, and keyward's delegation may not create users): \
                         prove it with a test account enrolled by hand, in Observe mode (`keyward plan` lists its \
                         enrolment; `keyward apply` on a tree that declares it away revokes it)"
                .into()),
            requests: Vec::new(),
        });
        return report;
    };
    let (checked, requests) = journal::recording(provider.check()).await;
    let ok = checked.is_ok();
    report.steps.push(Step {
        what: "sign in with the MfaProvider's credentials".into(),
        result: checked.map(|()| "accepted".into()).map_err(|e| e.to_string()),
        requests,
    });
    if !ok {
        return report;
    }
    let (created, requests) = journal::recording(writes.create_user(name)).await;
    let created_ok = created.is_ok();
    report.steps.push(Step {
        what: format!("create the test user {name}"),
        result: created.map(|()| "created".into()).map_err(|e| e.to_string()),
        requests,
    });
    if !created_ok {
        return report;
    }
    proven(provider, writes, name, &mut report).await;
    let (deleted, requests) = journal::recording(writes.delete_user(name)).await;
    report.steps.push(Step {
        what: format!("delete the test user {name}"),
        result: deleted.map(|()| "deleted".into()).map_err(|e| e.to_string()),
        requests,
    });
    report
}

/// Enrol, list, revoke, list again; stops at the first step that fails.
async fn proven(provider: &Provider, writes: &dyn TestUsers, name: &str, report: &mut Report) {
    let (enrolled, requests) = journal::recording(writes.enrol(name)).await;
    let kind = match enrolled {
        Ok(kind) => {
            report.steps.push(Step { what: "enrol a second factor".into(), result: Ok(format!("{kind}")), requests });
            kind
        }
        Err(e) => {
            report.steps.push(Step { what: "enrol a second factor".into(), result: Err(e.to_string()), requests });
            return;
        }
    };
    let query = UserQuery { declared: vec![name.to_string()], all: false };
    let (listed, requests) = journal::recording(provider.inventory(&query)).await;
    let found = listed.map_err(|e| e.to_string()).and_then(|inventory| enrolment_of(&inventory, name, &kind));
    let enrolment = match found {
        Ok(enrolment) => {
            let seen = format!("listed {} as {}", enrolment.id, enrolment.kind);
            report.steps.push(Step { what: "read it as a sweep does".into(), result: Ok(seen), requests });
            enrolment
        }
        Err(why) => {
            report.steps.push(Step { what: "read it as a sweep does".into(), result: Err(why), requests });
            return;
        }
    };
    let (targeted, requests) = journal::recording(provider.inventory_of(&[name.to_string()])).await;
    let result = match targeted {
        Ok(None) => Ok("no per-user read for this provider: full listings only".to_string()),
        Ok(Some(inventory)) => enrolment_of(&inventory, name, &kind).and_then(|e| {
            if e.id == enrolment.id {
                Ok(format!("listed {} as {}", e.id, e.kind))
            } else {
                Err(format!("the per-user read lists {} where the listing said {}", e.id, enrolment.id))
            }
        }),
        Err(e) => Err(e.to_string()),
    };
    let targeted_ok = result.is_ok();
    report.steps.push(Step { what: "read it as a targeted sweep does".into(), result, requests });
    if !targeted_ok {
        return;
    }
    let (revoked, requests) = journal::recording(provider.revoke(name, &enrolment, RevocationMode::Delete)).await;
    let result = match revoked {
        Ok(Revoked::Done) => Ok("revoked".to_string()),
        // Just listed, so "not found" means the revocation addressed something else.
        Ok(Revoked::AlreadyGone) => Err("the provider said the enrolment it had just listed was not found".into()),
        Err(e) => Err(e.to_string()),
    };
    let revoked_ok = result.is_ok();
    report.steps.push(Step { what: format!("revoke {}", enrolment.id), result, requests });
    if !revoked_ok {
        return;
    }
    let (again, requests) = journal::recording(provider.inventory(&query)).await;
    let result = match again {
        Err(e) => Err(e.to_string()),
        Ok(inventory) => {
            let still = inventory
                .users
                .iter()
                .filter(|u| names(u).contains(&user_key(name)))
                .flat_map(|u| &u.enrolments)
                .any(|e| e.id == enrolment.id);
            if still {
                Err(format!("{} is still listed after its revocation", enrolment.id))
            } else {
                Ok(format!("{} is gone", enrolment.id))
            }
        }
    };
    report.steps.push(Step { what: "read again: the factor is gone".into(), result, requests });
}

fn names(user: &crate::engine::ProviderUser) -> Vec<String> {
    std::iter::once(&user.name).chain(&user.aliases).map(|n| user_key(n)).collect()
}

/// The one enrolment of `kind` the inventory lists for `name`.
fn enrolment_of(inventory: &Inventory, name: &str, kind: &FactorKind) -> Result<Enrolment, String> {
    let key = user_key(name);
    let users: Vec<_> = inventory.users.iter().filter(|u| names(u).contains(&key)).collect();
    let [user] = users.as_slice() else {
        return Err(format!("the listing has {} users named {name}, not one", users.len()));
    };
    let of_kind: Vec<&Enrolment> =
        user.enrolments.iter().filter(|e| &e.kind == kind || e.also.contains(kind)).collect();
    match of_kind.as_slice() {
        [one] if one.active => Ok((*one).clone()),
        [one] => Err(format!("{} is listed as inactive", one.id)),
        [] => Err(format!(
            "no {kind} enrolment listed for {name} (listed: {})",
            user.enrolments.iter().map(|e| format!("{} {}", e.kind, e.id)).collect::<Vec<_>>().join(", ")
        )),
        many => Err(format!("{} {kind} enrolments listed for a user given one", many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_user_is_named_after_the_callers_prefix() {
        assert_eq!(test_user_name("kw-conformance", "1f2e3d"), "kw-conformance-1f2e3d");
        assert_eq!(test_user_name("kw-conformance@acme.example", "1f2e3d"), "kw-conformance-1f2e3d@acme.example");
    }

    #[test]
    fn the_verdict_names_the_first_step_that_failed() {
        let step = |what: &str, result: Result<String, String>| Step { what: what.into(), result, requests: vec![] };
        let mut report = Report {
            user: "kw-1@acme.example".into(),
            steps: vec![
                step("create", Ok("created".into())),
                step("revoke", Err("403 forbidden".into())),
                step("delete", Ok("deleted".into())),
            ],
        };
        assert!(!report.passed());
        assert!(
            report.render("acme/okta").contains("verdict: FAIL at step 2 (revoke)"),
            "{}",
            report.render("acme/okta")
        );
        report.steps.remove(1);
        assert!(report.passed());
        assert!(
            report.render("acme/okta").ends_with("verdict: PASS — acme/okta is read and revoked as Enforce will\n")
        );
        assert!(!Report::default().passed(), "no step is no proof");
    }
}
