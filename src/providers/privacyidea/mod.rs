//! privacyIDEA (docs/providers.md): admin JWT, realm-wide paged token listing, delete or disable.

mod mapping;
mod session;
pub mod spec;
mod types;

pub use mapping::kind_of;

use super::api::ProviderApi;
use super::error::{Failure, ProviderError};
use super::rest::{Backoff, provider_transport, url_field};
use super::{EnrolmentEvents, Revoked, UserQuery};
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
/// Audit entries per page of the event log read, and the pages one read follows: a burst of
/// more changes than this between two reads is swept in full instead.
const EVENT_PAGE_SIZE: u32 = 100;
const EVENT_PAGES: u32 = 5;
/// The audit entries of calls that can give a user an enrolment or make one usable again:
/// `POST /token/init` (enrolment, self-service or by an admin), `/token/assign`,
/// `/token/enable`, `/token/unrevoke`... Keyward's own disables and deletes match too and cost
/// one per-user read each.
const TOKEN_CHANGES: &str = "POST /token/*";

/// privacyIDEA's error code for "the user can not be found in any resolver in this realm".
const USER_NOT_FOUND: i64 = 904;

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

    /// The tokens of one user of the realm (`GET /token/?user=&realm=`), all pages; `None`
    /// when privacyIDEA no longer finds the user by that name (ERR904): its tokens, if any,
    /// are orphans that only the realm-wide listing finds (under the name its audit log
    /// recalls), so the caller lists the realm instead.
    async fn user_tokens(&self, user: &str) -> Result<Option<Vec<Token>>, Failure> {
        let mut tokens = Vec::new();
        let page_size = PAGE_SIZE.to_string();
        let mut page = 1u32;
        while page <= MAX_PAGES {
            let page_number = page.to_string();
            let query = [
                ("user", user),
                ("realm", self.realm.as_str()),
                ("sortby", "serial"),
                ("page", page_number.as_str()),
                ("pagesize", page_size.as_str()),
            ];
            let value: TokenPage = match self.session.call(Method::GET, &["token", ""], &query, None).await {
                Ok(value) => value,
                Err(Failure::Status { code: Some(USER_NOT_FOUND), .. }) => return Ok(None),
                Err(failure) => return Err(failure),
            };
            tokens.extend(value.tokens);
            match value.next.filter(|next| *next > u64::from(page)) {
                Some(next) => page = next as u32,
                None => return Ok(Some(tokens)),
            }
        }
        Err(Failure::Configuration(format!("the token listing of {user} did not end after {MAX_PAGES} pages")))
    }

    /// The realm's successful token changes after audit entry `after` (newest first, up to
    /// [`EVENT_PAGES`] pages), or only the newest entry's number when `after` is `None`.
    async fn token_changes(&self, after: Option<u64>) -> Result<EnrolmentEvents, Failure> {
        let mut events = EnrolmentEvents::default();
        let mut newest = after.unwrap_or(0);
        let page_size = if after.is_some() { EVENT_PAGE_SIZE } else { 1 }.to_string();
        for page in 1..=EVENT_PAGES {
            let page_number = page.to_string();
            let query = [
                ("action", TOKEN_CHANGES),
                ("realm", self.realm.as_str()),
                ("success", "1"),
                ("sortorder", "desc"),
                ("page", page_number.as_str()),
                ("page_size", page_size.as_str()),
            ];
            let found: AuditPage = self.session.call(Method::GET, &["audit", ""], &query, None).await?;
            newest = newest.max(found.auditdata.iter().map(|e| e.number).max().unwrap_or(0));
            let Some(after) = after else { break };
            let fresh: Vec<_> = found.auditdata.iter().filter(|e| e.number > after).collect();
            events.users.extend(fresh.iter().filter(|e| !e.user.is_empty()).map(|e| e.user.clone()));
            if fresh.len() < found.auditdata.len() || found.next.is_none() {
                events.cursor = newest.to_string();
                events.users.sort();
                events.users.dedup();
                return Ok(events);
            }
            events.overflowed = page == EVENT_PAGES;
        }
        events.cursor = newest.to_string();
        events.users.sort();
        events.users.dedup();
        Ok(events)
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

/// Whether privacyIDEA listed `token` with an owner it could not name. When a user store
/// (an LDAP or SQL resolver) cannot be read, the listing still answers 200, but each token of
/// that store carries the owner `**resolver error**` and no realm (`lib/token/query.py`,
/// `_build_token_dicts`); filed under that name, every such token would be an undeclared
/// user's. A token with an owner (user id or name) but no realm cannot be placed either.
/// A token whose user was removed from the store keeps its realm and an empty name: that one
/// is an orphan, attributed by [`PrivacyIdea::former_owner`].
impl PrivacyIdea {
    /// The resolver that stores this realm's users (the realm's first; its users must be
    /// editable for a test user to be created there).
    async fn realm_resolver(&self) -> Result<String, Failure> {
        let realms: serde_json::Map<String, serde_json::Value> =
            self.session.call(Method::GET, &["realm", ""], &[], None).await?;
        let resolvers = realms.get(&self.realm).and_then(|r| r.get("resolver")).and_then(|r| r.as_array());
        resolvers
            .and_then(|list| list.iter().find_map(|r| r.get("name").and_then(|n| n.as_str())))
            .map(str::to_string)
            .ok_or_else(|| Failure::Configuration(format!("realm {:?} has no resolver", self.realm)))
    }
}

#[async_trait]
impl crate::providers::TestUsers for PrivacyIdea {
    async fn create_user(&self, name: &str) -> Result<(), Failure> {
        let resolver = self.realm_resolver().await?;
        // POST /user/ of an existing name is an unhandled database error (500): ask first.
        let query = [("realm", self.realm.as_str()), ("resolver", resolver.as_str()), ("username", name)];
        let found: Vec<serde_json::Value> = self.session.call(Method::GET, &["user", ""], &query, None).await?;
        if found.iter().any(|u| u.get("username").and_then(|n| n.as_str()) == Some(name)) {
            return Err(Failure::Configuration(format!("a user {name} already exists in resolver {resolver}")));
        }
        let password = format!("kw-{:032x}", rand::random::<u128>());
        let form = [("user", name), ("resolver", resolver.as_str()), ("password", password.as_str())];
        self.session.call::<serde_json::Value>(Method::POST, &["user", ""], &[], Some(&form)).await.map(|_| ())
    }

    async fn enrol(&self, name: &str) -> Result<crate::crd::FactorKind, Failure> {
        let form = [("type", "totp"), ("genkey", "1"), ("user", name), ("realm", self.realm.as_str())];
        self.session.call::<serde_json::Value>(Method::POST, &["token", "init"], &[], Some(&form)).await?;
        Ok(kind_of("totp"))
    }

    async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        // Its tokens first: deleting only the user would leave them behind, orphaned.
        for token in self.user_tokens(name).await?.unwrap_or_default() {
            self.session.call::<serde_json::Value>(Method::DELETE, &["token", &token.serial], &[], None).await?;
        }
        let resolver = self.realm_resolver().await?;
        self.session.call::<serde_json::Value>(Method::DELETE, &["user", &resolver, name], &[], None).await.map(|_| ())
    }
}

fn owner_unnamed(token: &Token) -> bool {
    let marker = token.username.len() > 4 && token.username.starts_with("**") && token.username.ends_with("**");
    let owned = !token.username.is_empty() || !token.user_id.is_empty();
    marker || (owned && token.user_realm.is_empty())
}

/// A listing with any token whose owner privacyIDEA could not name is a failed read: nothing
/// is decided about the realm until the user store answers again.
fn require_named_owners(tokens: &[Token], listing: &str) -> Result<(), Failure> {
    let unnamed: Vec<&Token> = tokens.iter().filter(|t| owner_unnamed(t)).collect();
    let Some(first) = unnamed.first() else { return Ok(()) };
    let mut resolvers: Vec<&str> = unnamed.iter().map(|t| t.resolver.as_str()).filter(|r| !r.is_empty()).collect();
    resolvers.sort_unstable();
    resolvers.dedup();
    let owner = if first.username.is_empty() { "no name" } else { first.username.as_str() };
    Err(Failure::OwnersUnknown(format!(
        "privacyIDEA could not name the owner of {} token(s) in {listing} (first {}: owner {owner:?}, realm {:?}; \
         resolver(s) {}): a user store is likely unreadable, and nothing is decided until it answers",
        unnamed.len(),
        first.serial,
        first.user_realm,
        if resolvers.is_empty() { "unknown".to_string() } else { resolvers.join(", ") },
    )))
}

/// The stand-in name of a removed user whose name could not be recovered: it maps to no
/// Employee, so only `scope: All` manages it (as undeclared).
fn removed_user_name(token: &Token) -> String {
    format!("removed-user:{}/{}", token.resolver, token.user_id)
}

#[async_trait]
impl ProviderApi for PrivacyIdea {
    fn capabilities(&self) -> Capabilities {
        // privacyIDEA has no invitation flow that leaves the secret with the user: every
        // enrolment call returns the seed to the caller. Required kinds stay pending.
        Capabilities { disable: true, invite: Vec::new() }
    }

    async fn check(&self) -> Result<(), Failure> {
        self.realm_exists().await
    }

    async fn inventory(&self, _query: &UserQuery) -> Result<Inventory, Failure> {
        // One realm-wide listing serves both scopes: it is a few paged requests however many
        // users are declared, where per-user listing would be one request per Employee.
        self.realm_exists().await?;
        let tokens = self.realm_tokens().await?;
        require_named_owners(&tokens, &format!("the listing of realm {}", self.realm))?;
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
                aliases: Vec::new(),
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

    /// One token listing per user (usually one page): an offboarding costs the same requests
    /// at 100 users as at 100,000, where the realm-wide listing grows with the realm.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        let mut listed = Vec::new();
        for user in users {
            let Some(tokens) = self.user_tokens(user).await? else { return Ok(None) };
            require_named_owners(&tokens, &format!("the listing of {user}"))?;
            if tokens.is_empty() {
                continue;
            }
            let name =
                tokens.iter().map(|t| t.username.clone()).find(|n| !n.is_empty()).unwrap_or_else(|| user.clone());
            let enrolments = tokens
                .iter()
                .map(|t| Enrolment::new(t.serial.clone(), kind_of(&t.tokentype), t.active && !t.revoked && !t.locked))
                .collect();
            listed.push(ProviderUser { name, in_directory: true, enrolments, aliases: Vec::new() });
        }
        Ok(Some(Inventory { users: listed }))
    }

    /// privacyIDEA's own audit log, which records every token call with the user and realm
    /// it concerned: read a few seconds apart, an enrolment made past keyward is swept within
    /// seconds instead of at the next resync.
    async fn enrolment_events(&self, after: Option<&str>) -> Result<Option<EnrolmentEvents>, Failure> {
        let after = match after.map(str::parse::<u64>) {
            Some(Ok(number)) => Some(number),
            // A cursor this client did not write: start over from where the log stands.
            Some(Err(_)) | None => None,
        };
        self.token_changes(after).await.map(Some)
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

    fn test_users(&self) -> Option<&dyn crate::providers::TestUsers> {
        Some(self)
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

    fn token(serial: &str, username: &str, user_realm: &str, user_id: &str) -> serde_json::Value {
        json!({"serial": serial, "tokentype": "totp", "active": true, "username": username,
               "user_realm": user_realm, "user_id": user_id, "resolver": "corp-users"})
    }

    async fn read_listing(tokens: Vec<serde_json::Value>) -> Result<Inventory, Failure> {
        let server = MockServer::start().await;
        let ok = |value: serde_json::Value| {
            ResponseTemplate::new(200).set_body_json(json!({"result": {"status": true, "value": value}}))
        };
        Mock::given(method("POST")).and(path("/auth")).respond_with(ok(json!({"token": "jwt"}))).mount(&server).await;
        Mock::given(path("/realm/")).respond_with(ok(json!({"corp": {}}))).mount(&server).await;
        Mock::given(path("/token/"))
            .respond_with(ok(json!({"tokens": tokens, "count": 2, "current": 1, "next": null})))
            .mount(&server)
            .await;
        Mock::given(path("/audit/"))
            .respond_with(ok(
                json!({"auditdata": [{"number": 3, "user": "dave", "realm": "corp", "resolver": "corp-users"}]}),
            ))
            .mount(&server)
            .await;
        let spec: PrivacyIdeaSpec = serde_json::from_value(
            json!({"url": server.uri(), "realm": "corp", "credentials": {"secretRef": {"name": "s"}}}),
        )
        .expect("spec");
        let pi = PrivacyIdea::new("acme/pi", &spec, &pace(100), "admin".into(), "pw".into(), Backoff::quick())
            .expect("client");
        pi.inventory(&UserQuery::default()).await
    }

    /// A user store that cannot be read turns every owner it holds into `**resolver error**`
    /// with no realm: that listing decides nothing, rather than file every such token under
    /// one undeclared user that `scope: All` would revoke.
    #[tokio::test]
    async fn a_listing_with_owners_privacyidea_could_not_name_is_a_failed_read() {
        for unnamed in [token("T2", "**resolver error**", "", "9"), token("T2", "bob", "", "9")] {
            let failure = read_listing(vec![token("T1", "alice", "corp", "1"), unnamed.clone()])
                .await
                .expect_err("a listing with an unnamed owner must fail");
            assert_eq!(failure.category(), "owners_unknown", "{unnamed}");
            assert!(failure.to_string().contains("T2"), "{failure}");
        }
        // A removed user's token keeps its realm and loses its name: an orphan, named from
        // the audit log, not a failed read.
        let inventory = read_listing(vec![token("T1", "alice", "corp", "1"), token("T3", "", "corp", "4")])
            .await
            .expect("an orphan is read");
        let names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "dave"]);
    }

    /// privacyIDEA goes through the request layer every provider shares, so
    /// `policy.maxRequestsPerSecond` paces it too.
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
