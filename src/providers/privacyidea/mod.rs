//! privacyIDEA (reference §1): admin JWT, realm-wide paged token listing, delete or disable.

mod mapping;
mod session;
pub mod spec;
mod types;

pub use mapping::kind_of;

use super::client::Client;
use super::error::{Failure, ProviderError};
use super::rest::{Backoff, provider_transport, url_field};
use super::{Revoked, UserQuery};
use crate::crd::mfa_provider::{PrivacyIdeaSpec, RevocationMode};
use crate::engine::{Capabilities, Enrolment, Inventory, ProviderUser};
use async_trait::async_trait;
use reqwest::Method;
use session::Session;
use std::collections::BTreeMap;
#[cfg(test)]
use std::time::Duration;
use types::{AuditPage, Token, TokenPage};

/// Tokens per listing page. privacyIDEA's default is 15; a larger page keeps a realm of a
/// few thousand tokens to a handful of requests while each response stays small.
const PAGE_SIZE: u32 = 200;
/// Guard against a server that keeps answering `next`: no realm keyward manages has more.
const MAX_PAGES: u32 = 10_000;

pub struct PrivacyIdea {
    realm: String,
    session: Session,
    /// The realm's token listing, resumed from the page where it last failed.
    token_listing: crate::providers::paging::Resumable<u32, Token>,
}

impl PrivacyIdea {
    pub fn new(
        name: &str,
        spec: &PrivacyIdeaSpec,
        settings: &super::rest::TransportSettings,
        username: String,
        password: String,
        backoff: Backoff,
    ) -> Result<Self, ProviderError> {
        let base = url_field(name, &spec.url)?;
        // No default pace: a self-hosted server is paced by `policy.maxRequestsPerSecond` alone.
        let transport = provider_transport(name, spec.timeout.as_deref(), settings, None)?;
        let mut session = Session::new(base, username, password, transport);
        session.set_backoff(backoff);
        Ok(PrivacyIdea { realm: spec.realm.clone(), session, token_listing: Default::default() })
    }

    /// privacyIDEA answers a token listing for an unknown realm with an empty list, which
    /// would read as "nobody has enrolments": a typo in `realm` must be an error instead.
    async fn realm_exists(&self) -> Result<(), Failure> {
        let realms: serde_json::Map<String, serde_json::Value> =
            self.session.call(Method::GET, &["realm", ""], &[], None).await?;
        if realms.contains_key(&self.realm) {
            Ok(())
        } else {
            Err(Failure::Configuration(format!("realm {:?} does not exist", self.realm)))
        }
    }

    /// Every token assigned to a user, in this realm, all pages; a listing that failed on a
    /// page goes on from that page next time.
    async fn realm_tokens(&self) -> Result<Vec<Token>, Failure> {
        let what = "token listing";
        let mut tokens =
            self.token_listing.list(&self.realm, 1, MAX_PAGES as usize, what, |p| self.token_page(p)).await?;
        // Pages shift when tokens are enrolled or removed between a failed listing and its
        // resumption: a token seen twice is kept once (one missed shows up in the next sweep,
        // and a token not listed is never revoked).
        let mut seen = std::collections::HashSet::new();
        tokens.retain(|t| seen.insert(t.serial.clone()));
        Ok(tokens)
    }

    async fn token_page(&self, page: u32) -> Result<crate::providers::paging::Page<u32, Token>, Failure> {
        let (page_number, page_size) = (page.to_string(), PAGE_SIZE.to_string());
        // `tokenrealm` (not `realm`, which needs `user`) also finds the tokens of users since
        // removed from the user store: their realm stays on the token.
        let query = [
            ("tokenrealm", self.realm.as_str()),
            ("assigned", "True"),
            ("sortby", "serial"),
            ("page", page_number.as_str()),
            ("pagesize", page_size.as_str()),
        ];
        let value: TokenPage = self.session.call(Method::GET, &["token", ""], &query, None).await?;
        let next = value.next.filter(|next| *next > u64::from(page)).map(|next| next as u32);
        Ok((value.tokens, next))
    }

    /// The user an orphaned token belonged to, from privacyIDEA's own audit log (the token
    /// keeps only the resolver's user id once the user is gone from the user store). One
    /// request per orphan: orphans are rare, and without a name the token could not be tied
    /// to the leaver's Employee.
    async fn former_owner(&self, token: &Token) -> Result<Option<String>, Failure> {
        let query = [("serial", token.serial.as_str()), ("sortorder", "desc"), ("page_size", "50")];
        let page: AuditPage = self.session.call(Method::GET, &["audit", ""], &query, None).await?;
        Ok(page
            .auditdata
            .into_iter()
            .filter(|e| !e.user.is_empty())
            .filter(|e| e.resolver.is_empty() || e.resolver == token.resolver)
            .find(|e| e.realm.is_empty() || e.realm == self.realm)
            .map(|e| e.user))
    }
}

/// The stand-in name of a removed user whose name could not be recovered: it maps to no
/// Employee, so only `scope: All` manages it (as undeclared).
fn removed_user_name(token: &Token) -> String {
    format!("removed-user:{}/{}", token.resolver, token.user_id)
}

#[async_trait]
impl Client for PrivacyIdea {
    fn capabilities(&self) -> Capabilities {
        // privacyIDEA has no invitation flow that leaves the secret with the user: every
        // enrolment call returns the seed to the caller. Required kinds stay pending.
        Capabilities { disable: true, invite: Vec::new() }
    }

    async fn check(&self) -> Result<(), Failure> {
        self.realm_exists().await
    }

    async fn read(&self, _query: &UserQuery) -> Result<Inventory, Failure> {
        // One realm-wide listing serves both scopes: it is a few paged requests however many
        // users are declared, where per-user listing would be one request per Employee.
        self.realm_exists().await?;
        let tokens = self.realm_tokens().await?;
        let mut users: BTreeMap<String, ProviderUser> = BTreeMap::new();
        for token in tokens {
            // A token also tagged with this realm but owned by a user of another realm is that
            // realm's business.
            if !token.user_realm.is_empty() && token.user_realm != self.realm {
                continue;
            }
            let (name, in_directory) = if !token.username.is_empty() {
                (token.username.clone(), true)
            } else if !token.user_id.is_empty() {
                let owner = self.former_owner(&token).await?;
                (owner.unwrap_or_else(|| removed_user_name(&token)), false)
            } else {
                continue; // not assigned: not an enrolment
            };
            let user = users.entry(name.clone()).or_insert_with(|| ProviderUser {
                name,
                in_directory,
                enrolments: Vec::new(),
            });
            user.in_directory &= in_directory;
            user.enrolments.push(Enrolment::new(
                token.serial.clone(),
                kind_of(&token.tokentype),
                token.active && !token.revoked && !token.locked,
            ));
        }
        Ok(Inventory { users: users.into_values().collect() })
    }

    async fn revoke(&self, _: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, Failure> {
        let (method, path): (Method, [&str; 3]) = match mode {
            RevocationMode::Delete => (Method::DELETE, ["token", enrolment.id.as_str(), ""]),
            RevocationMode::Disable => (Method::POST, ["token", "disable", enrolment.id.as_str()]),
        };
        let path: Vec<&str> = path.into_iter().filter(|s| !s.is_empty()).collect();
        match self.session.call::<serde_json::Value>(method, &path, &[], None).await {
            Ok(_) => Ok(Revoked::Done),
            // 404 / code 601 "No token found": someone (or an earlier attempt) was quicker.
            Err(Failure::Status { status: 404, .. }) => Ok(Revoked::AlreadyGone),
            Err(failure) => Err(failure),
        }
    }

    fn requests(&self) -> u64 {
        self.session.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(max_requests_per_second: u32) -> crate::providers::rest::TransportSettings {
        crate::providers::rest::TransportSettings {
            max_requests_per_second: Some(max_requests_per_second),
            ca_bundle: None,
        }
    }
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// privacyIDEA goes through the request layer every provider shares, so
    /// `policy.maxRequestsPerSecond` paces it too (it used to be ignored).
    #[tokio::test]
    async fn requests_are_paced_by_max_requests_per_second() {
        let server = MockServer::start().await;
        let ok = |value: serde_json::Value| {
            ResponseTemplate::new(200).set_body_json(json!({"result": {"status": true, "value": value}}))
        };
        Mock::given(method("POST")).and(path("/auth")).respond_with(ok(json!({"token": "jwt"}))).mount(&server).await;
        Mock::given(path("/realm/")).respond_with(ok(json!({"corp": {}}))).mount(&server).await;
        let spec: PrivacyIdeaSpec = serde_json::from_value(
            json!({"url": server.uri(), "realm": "corp", "credentials": {"secretRef": {"name": "s"}}}),
        )
        .expect("spec");
        let pi = PrivacyIdea::new("acme/pi", &spec, &pace(2), "admin".into(), "pw".into(), Backoff::quick())
            .expect("client");
        let start = std::time::Instant::now();
        for _ in 0..3 {
            pi.realm_exists().await.expect("realm");
        }
        // A login and three calls at two a second: the last starts a second and a half in.
        assert_eq!(pi.requests(), 4);
        assert!(start.elapsed() >= Duration::from_millis(1400), "{:?}", start.elapsed());
    }
}
