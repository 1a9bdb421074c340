//! Google Workspace (docs/providers.md): Admin SDK Directory API with a service account acting
//! for an admin (domain-wide delegation).
//!
//! Google exposes no per-factor objects: only whether a user is enrolled in 2-Step
//! Verification, and one call that turns all of it off. A user enrolled in 2SV is reported
//! with one enrolment of kind `2sv`; revoking it is `twoStepVerification/turnOff`, checked by
//! reading the user again. Grants on a Google provider therefore name the kind `2sv`.

pub mod spec;
use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::jwt::SigningKey;
use super::oauth::{Grant, TokenSource};
use super::paging;
use super::rest::{Backoff, Call, Rest, base_url, declared_name, declared_set, decode, join, snippet, status_failure};
use super::user_ids::{Names, UserIds};
use super::{Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::{GoogleWorkspaceSpec, RevocationMode};
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

/// The kind (and enrolment id) standing for a user's whole 2-Step Verification.
pub const KIND: &str = "2sv";
/// Default pace: the Directory API allows 2,400 queries a minute per user and project.
const DEFAULT_RPS: u32 = 20;
const MAX_PAGES: usize = 10_000;
/// The least the client needs: `users.list` and `users.get` accept `admin.directory.user.readonly`,
/// `twoStepVerification.turnOff` requires `admin.directory.user.security`.
pub const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user.security",
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
];
/// The `User` fields keyward reads ([`User`]): a user goes by its primary address, its aliases
/// and its non-editable (domain alias) addresses, and is addressed by its immutable id.
pub const USER_FIELDS: &[&str] =
    &["id", "primaryEmail", "aliases", "nonEditableAliases", "isEnrolledIn2Sv", "suspended"];
/// The largest page `users.list` serves.
pub const PAGE_SIZE: &str = "500";

/// The fields of a service account's JSON key that keyward uses.
#[derive(Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

/// The Admin SDK's root, unless the block says otherwise (tests).
pub const DEFAULT_URL: &str = "https://admin.googleapis.com";

pub struct Google {
    directory: url::Url,
    customer: String,
    org_unit_path: Option<String>,
    rest: Rest,
    /// The 2SV listing, resumed from the page where it last failed.
    user_listing: paging::Resumable<Option<String>, User>,
    /// Every name of a listed user (lower-cased) → its id, rebuilt by every listing: a user
    /// is turned off by id, since a domain alias address need not be a `userKey` Google takes.
    users: UserIds,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    users: Vec<User>,
    #[serde(rename = "nextPageToken", default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    id: String,
    #[serde(rename = "primaryEmail")]
    primary_email: String,
    #[serde(rename = "isEnrolledIn2Sv", default)]
    enrolled: bool,
    #[serde(default)]
    aliases: Vec<String>,
    /// Addresses in the domain aliases of the user's domain: an Employee may well be mapped by
    /// one, and missing it would make the user undeclared under `scope: All`.
    #[serde(rename = "nonEditableAliases", default)]
    non_editable_aliases: Vec<String>,
    #[serde(default)]
    suspended: bool,
}

impl User {
    /// Every address the user goes by, the primary one first.
    fn names(&self) -> Vec<&str> {
        let mut names = vec![self.primary_email.as_str()];
        names.extend(self.aliases.iter().chain(&self.non_editable_aliases).map(String::as_str));
        names
    }
}

#[derive(Debug, Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<GoogleErrorItem>,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorItem {
    #[serde(default)]
    reason: String,
}

/// Google signals rate limits as 403 `userRateLimitExceeded`/`rateLimitExceeded`/
/// `quotaExceeded` as well as 429; none carries a hint, so they back off exponentially.
fn throttle(response: &super::http::Response) -> Option<Option<Duration>> {
    match response.status {
        429 => Some(response.retry_after()),
        403 => {
            let error: GoogleError = serde_json::from_slice(&response.body).ok()?;
            let limited =
                error.error.errors.iter().any(|e| {
                    matches!(e.reason.as_str(), "userRateLimitExceeded" | "rateLimitExceeded" | "quotaExceeded")
                });
            limited.then_some(None)
        }
        _ => None,
    }
}

fn failure(response: &super::http::Response) -> Failure {
    let message = match serde_json::from_slice::<GoogleError>(&response.body) {
        Ok(e) => {
            let reasons: Vec<&str> = e.error.errors.iter().map(|r| r.reason.as_str()).collect();
            format!("{} [{}]", e.error.message, reasons.join(", "))
        }
        _ => snippet(&response.body),
    };
    status_failure(response, message)
}

impl Google {
    pub fn new(
        name: &str,
        spec: &GoogleWorkspaceSpec,
        settings: &super::rest::TransportSettings,
        key: ServiceAccountKey,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let configure = |message: String| ProviderError::Configure { provider: name.to_string(), message };
        let root = base_url(spec.url.as_deref().unwrap_or(DEFAULT_URL)).map_err(configure)?;
        let token_uri = key.token_uri.as_deref().unwrap_or("https://oauth2.googleapis.com/token");
        let token_url = base_url(token_uri).map_err(|e| configure(format!("serviceAccountKey token_uri: {e}")))?;
        let loopback = matches!(token_url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if token_url.scheme() != "https" && !loopback {
            return Err(configure(format!("serviceAccountKey token_uri {token_uri:?} must be https")));
        }
        let transport = super::rest::provider_transport(name, spec.timeout.as_deref(), settings, Some(DEFAULT_RPS))?;
        let signing = SigningKey::from_pem(&key.private_key)
            .map_err(|e| configure(format!("serviceAccountKey private_key: {e}")))?;
        let grant = Grant::ServiceAccount {
            client_email: key.client_email,
            key: signing,
            key_id: key.private_key_id,
            subject: spec.admin_email.clone(),
            scope: SCOPES.join(" "),
        };
        let mut rest = Rest::new(transport, Box::new(TokenSource::new(token_url, grant)), throttle);
        rest.backoff = backoff;
        Ok(Google {
            directory: join(&root, &["admin", "directory", "v1"]),
            customer: spec.customer.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "my_customer".into()),
            org_unit_path: spec.org_unit_path.clone().filter(|o| !o.is_empty()),
            rest,
            user_listing: paging::Resumable::default(),
            users: UserIds::default(),
        })
    }

    /// Every user enrolled in 2SV (in the organizational unit, if set), all pages; a listing
    /// that failed on a page goes on from that page's token next time.
    async fn enrolled_users(&self) -> Result<Vec<User>, Failure> {
        let mut query = "isEnrolledIn2Sv=true".to_string();
        if let Some(ou) = &self.org_unit_path {
            query = format!("orgUnitPath='{}' {query}", ou.replace('\'', "\\'"));
        }
        let key = format!("{} {query}", self.customer);
        let what = "user listing";
        self.user_listing.list(&key, None, MAX_PAGES, what, |token| self.enrolled_page(&query, token)).await
    }

    /// One page of the enrolled users and the next page's token.
    async fn enrolled_page(
        &self,
        query: &str,
        token: Option<String>,
    ) -> Result<paging::Page<Option<String>, User>, Failure> {
        let mut url = join(&self.directory, &["users"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("customer", &self.customer)
                .append_pair("query", query)
                .append_pair("maxResults", "500")
                .append_pair("projection", "basic");
            if let Some(token) = &token {
                pairs.append_pair("pageToken", token);
            }
        }
        let response = self.rest.send(&Call::get(url)).await?;
        if !(200..300).contains(&response.status) {
            return Err(failure(&response));
        }
        let page: Page = decode(&response, "user listing")?;
        let users = page.users.into_iter().filter(|u| u.enrolled).collect();
        match page.next.filter(|t| !t.is_empty()) {
            Some(next) if Some(&next) != token.as_ref() => Ok((users, Some(Some(next)))),
            Some(_) => Err(Failure::Malformed("user listing repeats its nextPageToken".into())),
            None => Ok((users, None)),
        }
    }

    /// The `userKey` of `user`: the id its listing gave (a name several users go by is an
    /// identity conflict), else the name itself (primary or alias address, which Google
    /// takes as a `userKey`).
    fn user_key(&self, user: &str) -> Result<String, Failure> {
        match self.users.get(user) {
            Some(ids) => Ok(super::user_ids::one(user, &ids)?.unwrap_or_else(|| user.to_string())),
            None => Ok(user.to_string()),
        }
    }

    /// Whether the user is enrolled in 2SV; `None` when Google has no such user.
    async fn enrolled(&self, user: &str) -> Result<Option<bool>, Failure> {
        let mut url = join(&self.directory, &["users", user]);
        url.query_pairs_mut().append_pair("projection", "basic");
        let response = self.rest.send(&Call::get(url)).await?;
        match response.status {
            404 => Ok(None),
            200..=299 => Ok(Some(decode::<User>(&response, &format!("user {user}"))?.enrolled)),
            _ => Err(failure(&response)),
        }
    }

    async fn turn_off(&self, user: &str) -> Result<Revoked, Failure> {
        let key = self.user_key(user)?;
        let user = key.as_str();
        match self.enrolled(user).await? {
            None | Some(false) => return Ok(Revoked::AlreadyGone),
            Some(true) => {}
        }
        let call = Call::post(join(&self.directory, &["users", user, "twoStepVerification", "turnOff"]));
        let response = self.rest.send(&call).await?;
        if response.status == 404 {
            return Ok(Revoked::AlreadyGone);
        }
        if !(200..300).contains(&response.status) {
            return Err(failure(&response));
        }
        // turnOff on a user whose organizational unit enforces 2SV is not documented: trust
        // only a fresh read.
        match self.enrolled(user).await? {
            Some(true) => Err(Failure::Status {
                status: 409,
                code: None,
                message:
                    "2-Step Verification is still on after turnOff (is it enforced for the user's organizational unit?)"
                        .into(),
            }),
            _ => Ok(Revoked::Done),
        }
    }
}

#[async_trait]
impl ProviderApi for Google {
    fn capabilities(&self) -> Capabilities {
        // Users enrol in 2SV themselves; the API can neither enrol nor invite.
        Capabilities { disable: false, invite: Vec::new() }
    }

    async fn check(&self) -> Result<(), Failure> {
        let mut url = join(&self.directory, &["users"]);
        url.query_pairs_mut().append_pair("customer", &self.customer).append_pair("maxResults", "1");
        let response = self.rest.send(&Call::get(url)).await?;
        if (200..300).contains(&response.status) { Ok(()) } else { Err(failure(&response)) }
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure> {
        // One bulk listing of the enrolled users serves both scopes: users not enrolled have
        // nothing to revoke, and the listing is a few pages whatever the number declared.
        let declared = declared_set(&query.declared);
        let users = self.enrolled_users().await?;
        let mut fresh = Names::default();
        let users = users
            .into_iter()
            .map(|user| {
                let names = user.names();
                let name = declared_name(&declared, &names);
                if !user.id.is_empty() {
                    fresh.add(&names, &user.id);
                }
                let mut known = names.clone();
                known.push(&user.id);
                ProviderUser {
                    aliases: ProviderUser::aliases_of(&name, &known),
                    name,
                    in_directory: true,
                    // A suspended user cannot sign in; its 2SV stays until turned off.
                    enrolments: vec![Enrolment::new(KIND, FactorKind::new(KIND), !user.suspended)],
                }
            })
            .collect();
        self.users.replace(fresh);
        Ok(Inventory { users })
    }

    async fn revoke(&self, user: &str, _: &Enrolment, _: RevocationMode) -> Result<Revoked, Failure> {
        self.turn_off(user).await
    }

    fn requests(&self) -> u64 {
        self.rest.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each field of [`USER_FIELDS`] reaches [`User`] (the contract tests check the list
    /// against the discovery document's `User` schema).
    #[test]
    fn every_user_field_listed_is_read() {
        let value = serde_json::json!({
            "id": "7", "primaryEmail": "a@acme.example", "aliases": ["b@acme.example"],
            "nonEditableAliases": ["a@acme-alias.example"], "isEnrolledIn2Sv": true, "suspended": true,
        });
        let mut keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        let mut fields = USER_FIELDS.to_vec();
        keys.sort_unstable();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        let user: User = serde_json::from_value(value).expect("user");
        assert_eq!((user.id.as_str(), user.enrolled, user.suspended), ("7", true, true));
        assert_eq!(user.names(), ["a@acme.example", "b@acme.example", "a@acme-alias.example"]);
    }
}
