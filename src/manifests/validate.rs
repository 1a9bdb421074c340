//! The checks the API server would make from the CRD schemas but serde does not, and the
//! checks between objects that no schema can make.

use super::Manifests;
use super::document::{Outline, Step};
use super::source::{Loaded, Problem, Severity, Source};
use crate::crd::mfa_provider::{SecretRef, UserMapping};
use crate::crd::{AccessGrant, Employee, MfaProvider};
use crate::engine::identity;
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use Step::{Key, Value};

/// Every problem of the loaded manifests, sorted by file and line, each at the line of the
/// offending field where it can be found in the file (else the object's line).
///
/// No check depends on `now`: an expired grant or a finished active window is history that a
/// Git tree may keep, not a mistake.
pub fn validate(manifests: &Manifests, now: DateTime<Utc>) -> Vec<Problem> {
    let _ = now;
    let key = |metadata: &ObjectMeta| (namespace(metadata).to_string(), name(metadata).to_string());
    let mut validation = Validation {
        manifests,
        providers: manifests.providers.iter().map(|p| key(&p.object.metadata)).collect(),
        employees: manifests.employees.iter().map(|e| key(&e.object.metadata)).collect(),
        outlines: HashMap::new(),
        problems: Vec::new(),
    };
    validation.metadata();
    validation.duplicates();
    for provider in &manifests.providers {
        validation.provider(provider);
    }
    for employee in &manifests.employees {
        validation.employee(employee);
    }
    for grant in &manifests.grants {
        validation.grant(grant);
    }
    validation.identity_conflicts();
    let mut problems = validation.problems;
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems.dedup();
    problems
}

fn namespace(metadata: &ObjectMeta) -> &str {
    metadata.namespace.as_deref().unwrap_or_default()
}

fn name(metadata: &ObjectMeta) -> &str {
    metadata.name.as_deref().unwrap_or_default()
}

/// Every object with its kind, metadata and source.
fn objects(m: &Manifests) -> impl Iterator<Item = (&'static str, &ObjectMeta, &Source)> {
    let providers = m.providers.iter().map(|l| ("MfaProvider", &l.object.metadata, &l.source));
    let employees = m.employees.iter().map(|l| ("Employee", &l.object.metadata, &l.source));
    let grants = m.grants.iter().map(|l| ("AccessGrant", &l.object.metadata, &l.source));
    let secrets = m.secrets.iter().map(|l| ("Secret", &l.object.metadata, &l.source));
    providers.chain(employees).chain(grants).chain(secrets)
}

fn who(kind: &str, metadata: &ObjectMeta) -> String {
    format!("{kind} {}/{}", namespace(metadata), metadata.name.as_deref().unwrap_or("(no name)"))
}

struct Validation<'a> {
    manifests: &'a Manifests,
    /// (namespace, name) of every MfaProvider and Employee, for reference checks.
    providers: HashSet<(String, String)>,
    employees: HashSet<(String, String)>,
    /// Each file read again (once) to find the lines of fields; `None` if it cannot be read.
    outlines: HashMap<PathBuf, Option<Outline>>,
    problems: Vec<Problem>,
}

impl Validation<'_> {
    fn report(&mut self, source: &Source, path: &[Step<'_>], message: String) {
        self.report_as(source, path, message, Severity::Error);
    }

    fn report_as(&mut self, source: &Source, path: &[Step<'_>], message: String, severity: Severity) {
        let outline = self.outlines.entry(source.file.clone()).or_insert_with(|| {
            let text = fs::read_to_string(&source.file).ok()?;
            // A byte-order mark shifts offsets, not lines.
            Some(Outline::new(text.strip_prefix('\u{feff}').unwrap_or(&text)))
        });
        let line = outline.as_ref().map_or(source.line, |o| o.line(source.line, path));
        self.problems.push(Problem { file: source.file.clone(), line, message, severity });
    }

    fn provider_exists(&self, namespace: &str, name: &str) -> bool {
        self.providers.contains(&(namespace.to_string(), name.to_string()))
    }

    fn employee_exists(&self, namespace: &str, name: &str) -> bool {
        self.employees.contains(&(namespace.to_string(), name.to_string()))
    }

    /// Names and namespaces as the API server checks them.
    fn metadata(&mut self) {
        let m = self.manifests;
        for (kind, metadata, source) in objects(m) {
            let who = who(kind, metadata);
            match metadata.name.as_deref() {
                None | Some("") => self.report(source, &[Key("metadata")], format!("{who}: metadata.name is required")),
                Some(name) if !is_dns_subdomain(name) => self.report(
                    source,
                    &[Key("metadata"), Key("name")],
                    format!("{who}: metadata.name: `{name}` is not a valid name (lower-case letters, digits, `-` and `.`, at most 253)"),
                ),
                Some(_) => {}
            }
            let namespace = namespace(metadata);
            if !is_dns_label(namespace) {
                self.report(
                    source,
                    &[Key("metadata"), Key("namespace")],
                    format!("{who}: metadata.namespace: `{namespace}` is not a valid namespace (lower-case letters, digits and `-`, at most 63)"),
                );
            }
        }
        for secret in &m.secrets {
            let who = who("Secret", &secret.object.metadata);
            let keys = secret
                .object
                .data
                .iter()
                .flat_map(|d| d.keys().map(|k| ("data", k)))
                .chain(secret.object.string_data.iter().flat_map(|d| d.keys().map(|k| ("stringData", k))));
            for (field, key) in keys {
                let valid = !key.is_empty()
                    && key.len() <= 253
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !valid {
                    self.report(
                        &secret.source,
                        &[Key(field), Key(key)],
                        format!("{who}: {field}: `{key}` is not a valid key (letters, digits, `-`, `_` and `.`)"),
                    );
                }
            }
        }
    }

    /// Two objects of one kind with one namespace and name: the second is reported.
    fn duplicates(&mut self) {
        let mut first: HashMap<(&str, &str, &str), &Source> = HashMap::new();
        for (kind, metadata, source) in objects(self.manifests) {
            let Some(name) = metadata.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            match first.entry((kind, namespace(metadata), name)) {
                Entry::Vacant(entry) => {
                    entry.insert(source);
                }
                Entry::Occupied(entry) => {
                    let message =
                        format!("{}: metadata.name: duplicate, first declared at {}", who(kind, metadata), entry.get());
                    self.report(source, &[Key("metadata"), Key("name")], message);
                }
            }
        }
    }

    fn provider(&mut self, loaded: &Loaded<MfaProvider>) {
        let (provider, source) = (&loaded.object, &loaded.source);
        let who = who("MfaProvider", &provider.metadata);
        let spec = &provider.spec;
        // One entry per provider block of the spec; a new block is added here too.
        let blocks = [
            ("privacyidea", spec.privacyidea.is_some()),
            ("okta", spec.okta.is_some()),
            ("duo", spec.duo.is_some()),
            ("entraId", spec.entra_id.is_some()),
            ("googleWorkspace", spec.google_workspace.is_some()),
            ("keycloak", spec.keycloak.is_some()),
        ];
        let names: Vec<&str> = blocks.iter().map(|(name, _)| *name).collect();
        if blocks.iter().filter(|(_, set)| *set).count() != 1 {
            self.report(
                source,
                &[Key("spec")],
                format!("{who}: spec: exactly one provider block must be set ({})", names.join(", ")),
            );
        }
        if let Some(pi) = &spec.privacyidea {
            let path = |field| [Key("spec"), Key("privacyidea"), Key(field)];
            if !is_allowed_url(&pi.url) {
                let message = format!(
                    "{who}: spec.privacyidea.url: `{}` is not a URL keyward may use (https, or http only for loopback)",
                    pi.url
                );
                self.report(source, &path("url"), message);
            }
            if pi.realm.is_empty() {
                self.report(source, &path("realm"), format!("{who}: spec.privacyidea.realm: must not be empty"));
            }
            if let Some(timeout) = &pi.timeout
                && !is_timeout(timeout)
            {
                let message = format!(
                    "{who}: spec.privacyidea.timeout: `{timeout}` is not a duration such as `10s`, `500ms` or `1m`"
                );
                self.report(source, &path("timeout"), message);
            }
            self.credentials(loaded, &pi.credentials.secret_ref);
        }
        self.saas_blocks(loaded);
        for (i, user) in spec.protected_users.iter().enumerate() {
            if user.trim().is_empty() {
                self.report(
                    source,
                    &[Key("spec"), Key("protectedUsers")],
                    format!("{who}: spec.protectedUsers[{i}]: must not be empty"),
                );
            }
        }
        let policy = &spec.policy;
        if let Some(interval) = &policy.resync_interval
            && !is_interval(interval)
        {
            let message = format!(
                "{who}: spec.policy.resyncInterval: `{interval}` is not a duration such as `10m`, `30s` or `1h30m`"
            );
            self.report(source, &[Key("spec"), Key("policy"), Key("resyncInterval")], message);
        }
        let budget = &policy.budget;
        if budget.max_revocations > 100_000 {
            let message = format!(
                "{who}: spec.policy.budget.maxRevocations: {} is above the maximum 100000",
                budget.max_revocations
            );
            self.report(source, &[Key("spec"), Key("policy"), Key("budget"), Key("maxRevocations")], message);
        }
        if let Some(percent) = budget.max_percent
            && !(1..=100).contains(&percent)
        {
            let message = format!("{who}: spec.policy.budget.maxPercent: {percent} is outside 1..100");
            self.report(source, &[Key("spec"), Key("policy"), Key("budget"), Key("maxPercent")], message);
        }
        if let Some(window) = &budget.window
            && !is_interval(window)
        {
            let message =
                format!("{who}: spec.policy.budget.window: `{window}` is not a duration such as `1h`, `30m` or `24h`");
            self.report(source, &[Key("spec"), Key("policy"), Key("budget"), Key("window")], message);
        }
    }

    /// The Okta, Duo, Entra ID, Google Workspace and Keycloak blocks: URLs, timeouts and the
    /// Secret keys each credential method reads.
    fn saas_blocks(&mut self, loaded: &Loaded<MfaProvider>) {
        use crate::crd::mfa_provider::{EntraAuthMethod, KeycloakAuthMethod, OktaAuthMethod};
        let spec = &loaded.object.spec;
        // (block, [(url field, url)], [(other non-empty field, value)], timeout, secret, keys)
        type Block<'s> = (
            &'static str,
            Vec<(&'static str, &'s str)>,
            Vec<(&'static str, &'s str)>,
            Option<&'s String>,
            &'s str,
            Vec<&'static str>,
        );
        let mut blocks: Vec<Block> = Vec::new();
        if let Some(b) = &spec.okta {
            let keys = match b.credentials.method {
                OktaAuthMethod::ApiToken => vec!["apiToken"],
                OktaAuthMethod::PrivateKeyJwt => vec!["clientId", "privateKey"],
            };
            blocks.push((
                "okta",
                vec![("url", &b.url)],
                vec![],
                b.timeout.as_ref(),
                &b.credentials.secret_ref.name,
                keys,
            ));
        }
        if let Some(b) = &spec.duo {
            let keys = vec!["integrationKey", "secretKey"];
            blocks.push((
                "duo",
                vec![("url", &b.url)],
                vec![],
                b.timeout.as_ref(),
                &b.credentials.secret_ref.name,
                keys,
            ));
        }
        if let Some(b) = &spec.entra_id {
            let keys = match b.credentials.method {
                EntraAuthMethod::ClientSecret => vec!["clientId", "clientSecret"],
                EntraAuthMethod::Certificate => vec!["clientId", "certificate", "privateKey"],
            };
            let mut urls = Vec::new();
            if let Some(u) = &b.authority_url {
                urls.push(("authorityUrl", u.as_str()));
            }
            if let Some(u) = &b.graph_url {
                urls.push(("graphUrl", u.as_str()));
            }
            let fields = vec![("tenantId", b.tenant_id.as_str())];
            blocks.push(("entraId", urls, fields, b.timeout.as_ref(), &b.credentials.secret_ref.name, keys));
        }
        if let Some(b) = &spec.google_workspace {
            let urls = b.url.iter().map(|u| ("url", u.as_str())).collect();
            let fields = vec![("adminEmail", b.admin_email.as_str())];
            let keys = vec!["serviceAccountKey"];
            blocks.push(("googleWorkspace", urls, fields, b.timeout.as_ref(), &b.credentials.secret_ref.name, keys));
        }
        if let Some(b) = &spec.keycloak {
            let keys = match b.credentials.method {
                KeycloakAuthMethod::ClientCredentials => vec!["clientId", "clientSecret"],
                KeycloakAuthMethod::Password => vec!["username", "password"],
            };
            let fields = vec![("realm", b.realm.as_str())];
            blocks.push((
                "keycloak",
                vec![("url", &b.url)],
                fields,
                b.timeout.as_ref(),
                &b.credentials.secret_ref.name,
                keys,
            ));
        }
        let source = &loaded.source;
        let who = who("MfaProvider", &loaded.object.metadata);
        for (block, urls, fields, timeout, secret, keys) in blocks {
            for (field, url) in urls {
                if !is_allowed_url(url) {
                    let message = format!(
                        "{who}: spec.{block}.{field}: `{url}` is not a URL keyward may use (https, or http only for loopback)"
                    );
                    self.report(source, &[Key("spec"), Key(block), Key(field)], message);
                }
            }
            for (field, value) in fields {
                if value.trim().is_empty() {
                    self.report(
                        source,
                        &[Key("spec"), Key(block), Key(field)],
                        format!("{who}: spec.{block}.{field}: must not be empty"),
                    );
                }
            }
            if let Some(timeout) = timeout
                && !is_timeout(timeout)
            {
                let message = format!(
                    "{who}: spec.{block}.timeout: `{timeout}` is not a duration such as `10s`, `500ms` or `1m`"
                );
                self.report(source, &[Key("spec"), Key(block), Key("timeout")], message);
            }
            self.secret_keys(loaded, block, secret, &keys);
        }
        if let Some(rps) = spec.policy.max_requests_per_second
            && !(1..=1000).contains(&rps)
        {
            let message = format!("{who}: spec.policy.maxRequestsPerSecond: {rps} is outside 1..1000");
            self.report(source, &[Key("spec"), Key("policy"), Key("maxRequestsPerSecond")], message);
        }
    }

    /// The Secret a provider block names exists and holds the keys its credential method reads.
    fn secret_keys(&mut self, loaded: &Loaded<MfaProvider>, block: &str, secret_name: &str, keys: &[&str]) {
        let (provider, source) = (&loaded.object, &loaded.source);
        let who = who("MfaProvider", &provider.metadata);
        let namespace = namespace(&provider.metadata);
        let path = [Key("spec"), Key(block), Key("credentials"), Key("secretRef"), Key("name")];
        if secret_name.is_empty() || secret_name.len() > 253 {
            let message = format!("{who}: spec.{block}.credentials.secretRef.name: must be 1 to 253 characters");
            self.report(source, &path, message);
            return;
        }
        let found = self
            .manifests
            .secrets
            .iter()
            .find(|s| self::namespace(&s.object.metadata) == namespace && name(&s.object.metadata) == secret_name);
        let Some(secret) = found else {
            let message =
                format!("{who}: spec.{block}.credentials.secretRef.name: Secret {namespace}/{secret_name} not found");
            self.report(source, &path, message);
            return;
        };
        for key in keys {
            if !Manifests::secret_has_key(&secret.object, key) {
                let message = format!(
                    "{who}: spec.{block}.credentials.secretRef: Secret {namespace}/{secret_name} ({}) has no key `{key}`",
                    secret.source
                );
                self.report(source, &path, message);
            }
        }
    }

    fn credentials(&mut self, loaded: &Loaded<MfaProvider>, secret_ref: &SecretRef) {
        let (provider, source) = (&loaded.object, &loaded.source);
        let who = who("MfaProvider", &provider.metadata);
        let namespace = namespace(&provider.metadata);
        let path = |field| [Key("spec"), Key("privacyidea"), Key("credentials"), Key("secretRef"), Key(field)];
        if secret_ref.name.is_empty() || secret_ref.name.len() > 253 {
            let message = format!("{who}: spec.privacyidea.credentials.secretRef.name: must be 1 to 253 characters");
            self.report(source, &path("name"), message);
            return;
        }
        let found =
            self.manifests.secrets.iter().find(|s| {
                self::namespace(&s.object.metadata) == namespace && name(&s.object.metadata) == secret_ref.name
            });
        let Some(secret) = found else {
            let message = format!(
                "{who}: spec.privacyidea.credentials.secretRef.name: Secret {namespace}/{} not found",
                secret_ref.name
            );
            self.report(source, &path("name"), message);
            return;
        };
        let keys = [
            ("usernameKey", secret_ref.username_key.is_some(), secret_ref.username_key()),
            ("passwordKey", secret_ref.password_key.is_some(), secret_ref.password_key()),
        ];
        for (field, explicit, key) in keys {
            if !Manifests::secret_has_key(&secret.object, key) {
                let message = format!(
                    "{who}: spec.privacyidea.credentials.secretRef: Secret {namespace}/{} ({}) has no key `{key}`",
                    secret_ref.name, secret.source
                );
                self.report(source, &path(if explicit { field } else { "name" }), message);
            }
        }
    }

    fn employee(&mut self, loaded: &Loaded<Employee>) {
        let (employee, source) = (&loaded.object, &loaded.source);
        let who = who("Employee", &employee.metadata);
        let namespace = namespace(&employee.metadata);
        let spec = &employee.spec;
        if !is_email(&spec.email) {
            self.report(
                source,
                &[Key("spec"), Key("email")],
                format!("{who}: spec.email: `{}` is not an e-mail address", spec.email),
            );
        }
        if let (Some(from), Some(until)) = (spec.active_from, spec.active_until)
            && from >= until
        {
            let message = format!(
                "{who}: spec.activeUntil: activeFrom must be before activeUntil ({from} is not before {until})"
            );
            self.report(source, &[Key("spec"), Key("activeUntil")], message);
        }
        for (i, id) in spec.identities.iter().enumerate() {
            // The n-th identity naming this provider, to find its line.
            let nth = spec.identities[..i].iter().filter(|other| other.provider == id.provider).count();
            let path = [Key("spec"), Key("identities"), Value(&id.provider, nth)];
            if id.provider.is_empty() || id.username.is_empty() {
                let message = format!("{who}: spec.identities[{i}]: provider and username must not be empty");
                self.report(source, &[Key("spec"), Key("identities")], message);
                continue;
            }
            if nth > 0 {
                let message = format!(
                    "{who}: spec.identities[{i}].provider: at most one identity per provider (`{}` repeated)",
                    id.provider
                );
                self.report(source, &path, message);
            } else if !self.provider_exists(namespace, &id.provider) {
                let message =
                    format!("{who}: spec.identities[{i}].provider: MfaProvider {namespace}/{} not found", id.provider);
                self.report(source, &path, message);
            }
        }
    }

    fn grant(&mut self, loaded: &Loaded<AccessGrant>) {
        let (grant, source) = (&loaded.object, &loaded.source);
        let who = who("AccessGrant", &grant.metadata);
        let namespace = namespace(&grant.metadata);
        let spec = &grant.spec;
        if spec.provider.is_empty() || spec.provider.len() > 253 {
            self.report(
                source,
                &[Key("spec"), Key("provider")],
                format!("{who}: spec.provider: must be 1 to 253 characters"),
            );
        } else if !self.provider_exists(namespace, &spec.provider) {
            let message = format!("{who}: spec.provider: MfaProvider {namespace}/{} not found", spec.provider);
            self.report(source, &[Key("spec"), Key("provider")], message);
        }
        if spec.subjects.roles.is_empty() && spec.subjects.employees.is_empty() {
            let message = format!("{who}: spec.subjects: subjects must name at least one role or employee");
            self.report(source, &[Key("spec"), Key("subjects")], message);
        }
        for (i, employee) in spec.subjects.employees.iter().enumerate() {
            if !self.employee_exists(namespace, employee) {
                let nth = spec.subjects.employees[..i].iter().filter(|e| *e == employee).count();
                // A typo here silently drops an entitlement, and with it enrolments.
                let message = format!("{who}: spec.subjects.employees[{i}]: Employee {namespace}/{employee} not found");
                self.report(source, &[Key("spec"), Key("subjects"), Key("employees"), Value(employee, nth)], message);
            }
        }
        if spec.factors.is_empty() {
            self.report(
                source,
                &[Key("spec"), Key("factors")],
                format!("{who}: spec.factors: must list at least one factor kind"),
            );
        }
        for (i, factor) in spec.factors.iter().enumerate() {
            if !factor.is_well_formed() {
                let nth = spec.factors[..i].iter().filter(|f| *f == factor).count();
                let message = format!(
                    "{who}: spec.factors[{i}]: `{factor}` is not a factor kind (lower-case letters, digits, `-` and `_`, at most 63)"
                );
                self.report(source, &[Key("spec"), Key("factors"), Value(factor.as_str(), nth)], message);
            }
        }
        self.unreported_kinds(loaded);
        if let (Some(from), Some(until)) = (spec.valid_from, spec.valid_until)
            && from >= until
        {
            let message =
                format!("{who}: spec.validUntil: validFrom must be before validUntil ({from} is not before {until})");
            self.report(source, &[Key("spec"), Key("validUntil")], message);
        }
    }

    /// Factor kinds the grant's provider never reports: the grant entitles nobody to them, and
    /// whoever holds what its author meant would lose it as `NotEntitled`.
    fn unreported_kinds(&mut self, loaded: &Loaded<AccessGrant>) {
        let (grant, source) = (&loaded.object, &loaded.source);
        let ns = namespace(&grant.metadata);
        let provider = self
            .manifests
            .providers
            .iter()
            .find(|p| namespace(&p.object.metadata) == ns && name(&p.object.metadata) == grant.spec.provider);
        let Some(Ok(block)) = provider.map(|p| p.object.spec.block()) else { return };
        let reported = crate::providers::kinds::Reported::of(&block);
        let who = who("AccessGrant", &grant.metadata);
        for kind in reported.never_reported(&grant.spec.factors) {
            let Some(i) = grant.spec.factors.iter().position(|f| *f == kind) else { continue };
            let message = format!(
                "{who}: spec.factors[{i}]: {} (MfaProvider {ns}/{})",
                reported.message(&block, std::slice::from_ref(&kind)),
                grant.spec.provider
            );
            self.report_as(source, &[Key("spec"), Key("factors"), Value(kind.as_str(), 0)], message, Severity::Warning);
        }
    }

    /// Two Employees mapped to one user of a provider: keyward leaves that user alone until it
    /// is resolved, so it is better caught before the merge.
    fn identity_conflicts(&mut self) {
        let m = self.manifests;
        let mut providers_seen = HashSet::new();
        for provider in &m.providers {
            let (namespace, provider_name) = (namespace(&provider.object.metadata), name(&provider.object.metadata));
            if !providers_seen.insert((namespace, provider_name)) {
                continue;
            }
            let mut employees_seen = HashSet::new();
            let mut claimed: HashMap<String, &Loaded<Employee>> = HashMap::new();
            for employee in m.employees.iter().filter(|e| self::namespace(&e.object.metadata) == namespace) {
                if !employees_seen.insert(name(&employee.object.metadata)) {
                    continue; // a duplicate, reported as such
                }
                let user = identity::username(&employee.object, &provider.object);
                let key = identity::user_key(&user);
                if key.is_empty() {
                    continue;
                }
                match claimed.entry(key) {
                    Entry::Vacant(entry) => {
                        entry.insert(employee);
                    }
                    Entry::Occupied(entry) => {
                        let first = *entry.get();
                        let spec = &employee.object.spec;
                        // The field the user name came from, as `identity::username` picks it.
                        let overridden = spec.identities.iter().position(|i| i.provider == provider_name);
                        let (field, path) = match (overridden, provider.object.spec.user_mapping) {
                            (Some(i), _) => (
                                format!("spec.identities[{i}]"),
                                vec![Key("spec"), Key("identities"), Value(provider_name, 0)],
                            ),
                            (None, UserMapping::Email) => ("spec.email".to_string(), vec![Key("spec"), Key("email")]),
                            (None, UserMapping::Name) => {
                                ("metadata.name".to_string(), vec![Key("metadata"), Key("name")])
                            }
                        };
                        let message = format!(
                            "{}: {field}: maps to user `{user}` on MfaProvider {namespace}/{provider_name}, already claimed by {} ({})",
                            who("Employee", &employee.object.metadata),
                            who("Employee", &first.object.metadata),
                            first.source
                        );
                        self.report_as(&employee.source, &path, message, Severity::Warning);
                    }
                }
            }
        }
    }
}

/// The CEL rule on `privacyidea.url`, and a URL with a host.
fn is_allowed_url(url: &str) -> bool {
    let allowed = ["https://", "http://127.", "http://localhost", "http://[::1]"];
    allowed.iter().any(|prefix| url.starts_with(prefix)) && url::Url::parse(url).is_ok_and(|u| u.host().is_some())
}

/// `^[0-9]+(ms|s|m)$`
fn is_timeout(s: &str) -> bool {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && matches!(&s[digits..], "ms" | "s" | "m")
}

/// `^([0-9]+(s|m|h))+$`
fn is_interval(s: &str) -> bool {
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || !rest[digits..].starts_with(['s', 'm', 'h']) {
            return false;
        }
        rest = &rest[digits + 1..];
    }
    !s.is_empty()
}

/// `^[^@\s]+@[^@\s]+\.[^@\s]+$`, at most 254 characters (`\s` as RE2, which Kubernetes uses).
fn is_email(s: &str) -> bool {
    let space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    if s.chars().count() > 254 || s.contains(space) {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.char_indices().any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
        }
        None => false,
    }
}

/// A DNS-1123 label: what a namespace must be.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: what the name of a Secret or a custom resource must be.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_schema() {
        for ok in ["10s", "500ms", "1m", "0s"] {
            assert!(is_timeout(ok), "{ok}");
        }
        for bad in ["", "s", "10", "10h", "1.5s", "10 s", "-1s"] {
            assert!(!is_timeout(bad), "{bad}");
        }
        for ok in ["10m", "30s", "1h30m", "1h1h"] {
            assert!(is_interval(ok), "{ok}");
        }
        for bad in ["", "m", "10", "10ms", "1h 30m", "1d"] {
            assert!(!is_interval(bad), "{bad}");
        }
        for ok in ["a@b.c", "alice@acme.example", "a.b+c@x.y.z", "ü@ß.de"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "alice", "a@b", "a@.b", "a@b.", "@b.c", "a@@b.c", "a b@c.d", "a@b@c.d"] {
            assert!(!is_email(bad), "{bad}");
        }
        for ok in ["https://pi.acme.example", "http://127.0.0.1:8080", "http://localhost:5000/", "http://[::1]:80"] {
            assert!(is_allowed_url(ok), "{ok}");
        }
        for bad in ["http://pi.acme.example", "ftp://x", "pi.acme.example", "https://", ""] {
            assert!(!is_allowed_url(bad), "{bad}");
        }
        assert!(is_dns_subdomain("pi-admin.v2") && !is_dns_subdomain("Pi") && !is_dns_subdomain("a..b"));
        assert!(is_dns_label("acme") && !is_dns_label("acme.corp") && !is_dns_label("-a") && !is_dns_label(""));
    }
}
