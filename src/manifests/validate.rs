//! The checks the API server would make from the CRD schemas but serde does not, and the
//! checks between objects that no schema can make.

use super::Manifests;
use super::document::{Outline, Step};
use super::schema::{self, PathPart};
use super::source::{Loaded, Problem, Severity, Source};
use crate::crd::mfa_provider::{ProviderBlock, UserMapping};
use crate::crd::{AccessGrant, Employee, MfaProvider, RevocationApproval};
use crate::engine::identity;
use crate::providers::spec::SecretKey;
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
    for approval in &manifests.approvals {
        validation.approval(approval);
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

    /// Every rule of the object's own CRD schema (structural and CEL), reported at the field.
    fn schema<T: serde::Serialize>(&mut self, kind: &str, loaded: &Loaded<T>, metadata: &ObjectMeta) {
        let Ok(mut object) = serde_json::to_value(&loaded.object) else { return };
        let size = object.to_string().len();
        if size > MAX_OBJECT_BYTES {
            let message = format!(
                "{}: the object is {size} bytes as JSON; the API server stores at most {MAX_OBJECT_BYTES} (etcd's limit)",
                who(kind, metadata)
            );
            self.report(&loaded.source, &[], message);
        }
        // Status is a subresource: `kubectl apply` does not write it, so it is not checked.
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        let who = who(kind, metadata);
        for violation in schema::check(kind, &object) {
            let keys = steps(&violation.path, &object);
            let path: Vec<Step<'_>> = keys.iter().map(|(key, nth)| step(key, *nth)).collect();
            let message = format!("{who}: {}: {}", violation.field(), abbreviated(&violation.message));
            self.report(&loaded.source, &path, message);
        }
    }

    fn provider(&mut self, loaded: &Loaded<MfaProvider>) {
        self.schema("MfaProvider", loaded, &loaded.object.metadata);
        if let Ok(block) = loaded.object.spec.block() {
            self.secret_keys(loaded, &block);
            self.urls(loaded, &block);
        }
        let who = who("MfaProvider", &loaded.object.metadata);
        for (i, user) in loaded.object.spec.protected_users.iter().enumerate() {
            if let Some(why) = unusable_user_name(user) {
                let message = format!("{who}: spec.protectedUsers[{i}]: `{}` {why}", user.escape_debug());
                self.report(&loaded.source, &[Key("spec"), Key("protectedUsers")], message);
            }
        }
    }

    /// A base URL is scheme, host, port and path: a query or fragment would ride along on
    /// every call (ahead of keyward's own parameters: `?tokenrealm=other` lists another
    /// realm), and user info would put a password where logs show it, or pass a host off as
    /// loopback (`http://127.0.0.1@pi.example`).
    fn urls(&mut self, loaded: &Loaded<MfaProvider>, block: &ProviderBlock<'_>) {
        let who = who("MfaProvider", &loaded.object.metadata);
        let block_name = block.name();
        for (i, url) in block.spec().urls().into_iter().enumerate() {
            let Err(why) = crate::providers::rest::base_url(url) else { continue };
            let field = if i == 0 { format!("spec.{block_name}.url") } else { format!("spec.{block_name}") };
            let message = format!("{who}: {field}: {why}");
            self.report(&loaded.source, &[Key("spec"), Key(block_name), Value(url, 0)], message);
        }
        self.notification_secrets(loaded);
    }

    /// The Secrets `spec.notifications` names hold the keys named (reported at the list: a
    /// target's items cannot be told apart by value, its index is in the message).
    fn notification_secrets(&mut self, loaded: &Loaded<MfaProvider>) {
        let (provider, source) = (&loaded.object, &loaded.source);
        let who = who("MfaProvider", &provider.metadata);
        let namespace = namespace(&provider.metadata);
        for (i, target) in provider.spec.notifications.iter().enumerate() {
            let refs = [
                ("slack.urlSecretRef", target.slack.as_ref().map(|s| &s.url_secret_ref)),
                ("webhook.urlSecretRef", target.webhook.as_ref().map(|w| &w.url_secret_ref)),
                ("webhook.hmacSecretRef", target.webhook.as_ref().and_then(|w| w.hmac_secret_ref.as_ref())),
            ];
            let at = [Key("spec"), Key("notifications")];
            for (field, secret) in refs.into_iter().filter_map(|(field, secret)| Some((field, secret?))) {
                let found = self.manifests.secrets.iter().find(|s| {
                    self::namespace(&s.object.metadata) == namespace && name(&s.object.metadata) == secret.name
                });
                let (message, severity) = match found {
                    None => (
                        format!(
                            "{who}: spec.notifications[{i}].{field}.name: Secret {namespace}/{} not found in these manifests (the operator needs it)",
                            secret.name
                        ),
                        Severity::Note,
                    ),
                    Some(s) if !Manifests::secret_has_key(&s.object, &secret.key) => (
                        format!(
                            "{who}: spec.notifications[{i}].{field}: Secret {namespace}/{} ({}) has no key `{}`",
                            secret.name, s.source, secret.key
                        ),
                        Severity::Error,
                    ),
                    Some(_) => continue,
                };
                self.report_as(source, &at, message, severity);
            }
        }
    }

    /// The Secret a provider block names exists and holds the keys its credential method reads.
    fn secret_keys(&mut self, loaded: &Loaded<MfaProvider>, block: &ProviderBlock<'_>) {
        let (provider, source) = (&loaded.object, &loaded.source);
        let (spec, block_name) = (block.spec(), block.name());
        let secret_name = spec.secret();
        if secret_name.is_empty() {
            return; // the schema's rule, reported as such
        }
        let who = who("MfaProvider", &provider.metadata);
        let namespace = namespace(&provider.metadata);
        let path = |field| [Key("spec"), Key(block_name), Key("credentials"), Key("secretRef"), Key(field)];
        let found = self
            .manifests
            .secrets
            .iter()
            .find(|s| self::namespace(&s.object.metadata) == namespace && name(&s.object.metadata) == secret_name);
        let Some(secret) = found else {
            // Secrets are usually kept out of Git: said, not fatal (`validate --strict` is).
            let message = format!(
                "{who}: spec.{block_name}.credentials.secretRef.name: Secret {namespace}/{secret_name} not found in these manifests (plan and apply need it)"
            );
            self.report_as(source, &path("name"), message, Severity::Note);
            return;
        };
        for SecretKey { key, field } in spec.secret_keys() {
            if !Manifests::secret_has_key(&secret.object, &key) {
                let message = format!(
                    "{who}: spec.{block_name}.credentials.secretRef: Secret {namespace}/{secret_name} ({}) has no key `{key}`",
                    secret.source
                );
                self.report(source, &path(field), message);
            }
        }
    }

    fn employee(&mut self, loaded: &Loaded<Employee>) {
        self.schema("Employee", loaded, &loaded.object.metadata);
        let (employee, source) = (&loaded.object, &loaded.source);
        let who = who("Employee", &employee.metadata);
        let namespace = namespace(&employee.metadata);
        if let Some(why) = unusable_user_name(&employee.spec.email) {
            let message = format!("{who}: spec.email: `{}` {why}", employee.spec.email.escape_debug());
            self.report(source, &[Key("spec"), Key("email")], message);
        }
        let identities = &employee.spec.identities;
        for (i, id) in identities.iter().enumerate() {
            if let Some(why) = unusable_user_name(&id.username) {
                let message = format!("{who}: spec.identities[{i}].username: `{}` {why}", id.username.escape_debug());
                self.report(source, &[Key("spec"), Key("identities"), Value(&id.provider, 0)], message);
            }
            // The first identity naming a provider (a repeat is the schema's rule).
            let first = !identities[..i].iter().any(|other| other.provider == id.provider);
            if first && !id.provider.is_empty() && !self.provider_exists(namespace, &id.provider) {
                let message =
                    format!("{who}: spec.identities[{i}].provider: MfaProvider {namespace}/{} not found", id.provider);
                self.report(source, &[Key("spec"), Key("identities"), Value(&id.provider, 0)], message);
            }
        }
    }

    /// `spec.provider` must name an MfaProvider of the object's namespace.
    fn provider_reference(&mut self, source: &Source, who: &str, namespace: &str, provider: &str) {
        if !provider.is_empty() && !self.provider_exists(namespace, provider) {
            let message = format!("{who}: spec.provider: MfaProvider {namespace}/{provider} not found");
            self.report(source, &[Key("spec"), Key("provider")], message);
        }
    }

    /// An approval of a provider the tree does not hold approves nothing: a typo, or a
    /// provider renamed since.
    fn approval(&mut self, loaded: &Loaded<RevocationApproval>) {
        self.schema("RevocationApproval", loaded, &loaded.object.metadata);
        let (approval, source) = (&loaded.object, &loaded.source);
        let who = who("RevocationApproval", &approval.metadata);
        self.provider_reference(source, &who, namespace(&approval.metadata), &approval.spec.provider);
    }

    fn grant(&mut self, loaded: &Loaded<AccessGrant>) {
        self.schema("AccessGrant", loaded, &loaded.object.metadata);
        let (grant, source) = (&loaded.object, &loaded.source);
        let who = who("AccessGrant", &grant.metadata);
        let namespace = namespace(&grant.metadata);
        let spec = &grant.spec;
        self.provider_reference(source, &who, namespace, &spec.provider);
        for (i, employee) in spec.subjects.employees.iter().enumerate() {
            if !self.employee_exists(namespace, employee) {
                let nth = spec.subjects.employees[..i].iter().filter(|e| *e == employee).count();
                // A typo here silently drops an entitlement, and with it enrolments.
                let message = format!("{who}: spec.subjects.employees[{i}]: Employee {namespace}/{employee} not found");
                self.report(source, &[Key("spec"), Key("subjects"), Key("employees"), Value(employee, nth)], message);
            }
        }
        self.unreported_kinds(loaded);
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

/// A schema violation's path as the keys [`Outline::line`] searches for: object keys, and the
/// value of an item of a list of scalars with its occurrence (an item of a list of objects
/// has no key of its own: the search stops at the list).
fn steps(path: &[PathPart], object: &serde_json::Value) -> Vec<(String, Option<usize>)> {
    let mut steps = Vec::new();
    let mut at = Some(object);
    for part in path {
        match part {
            PathPart::Key(key) => {
                steps.push((key.clone(), None));
                at = at.and_then(|v| v.get(key));
            }
            PathPart::Index(i) => {
                let list = at.and_then(|v| v.as_array());
                let item = list.and_then(|l| l.get(*i));
                let Some(serde_json::Value::String(text)) = item else { break };
                let nth = list.map_or(0, |l| l[..*i].iter().filter(|v| v.as_str() == Some(text)).count());
                steps.push((text.clone(), Some(nth)));
                break;
            }
        }
    }
    steps
}

fn step(key: &str, nth: Option<usize>) -> Step<'_> {
    match nth {
        Some(n) => Value(key, n),
        None => Key(key),
    }
}

/// The largest object etcd stores by default (`--max-request-bytes`, 1.5 MiB): a bigger one
/// passes `kubectl apply --dry-run=server` and fails for real.
const MAX_OBJECT_BYTES: usize = 1_572_864;

/// A schema message quotes the value it refuses: a 4000-character e-mail or a list of 300
/// names would drown what is wrong with it (said at the end), so the middle goes.
fn abbreviated(message: &str) -> String {
    const KEEP: usize = 100;
    let chars: Vec<char> = message.chars().collect();
    if chars.len() <= 3 * KEEP {
        return message.to_string();
    }
    let head: String = chars[..KEEP].iter().collect();
    let tail: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{head}… ({} characters) …{tail}", chars.len() - 2 * KEEP)
}

/// Why a provider user name (an identity, a protected user, an e-mail used as one) cannot be
/// meant as written, if it cannot: a control character (URL parsers drop tabs and line breaks,
/// so `bo<TAB>b` would address `bob` in a URL path), a character that changes how the text
/// is shown without being seen (a right-to-left override makes `alice` of another name), white
/// space at either end (`breakglass ` protects nobody), or a name that is only dots (`..`
/// is resolved away in a URL path, leaving the collection).
fn unusable_user_name(name: &str) -> Option<String> {
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character U+{:04X}", u32::from(c)));
    }
    if let Some(c) = name.chars().find(|c| is_invisible_format(*c)) {
        return Some(format!("contains the invisible formatting character U+{:04X}", u32::from(c)));
    }
    if name.trim() != name {
        return Some("begins or ends with white space".to_string());
    }
    if name == "." || name == ".." {
        return Some("cannot be a user name: `.` and `..` cannot be put in a URL path".to_string());
    }
    None
}

/// Bidirectional marks, overrides and isolates, zero-width characters and the BOM: they change
/// how a name reads, or hide in it.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

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
    fn names_are_checked_as_the_api_server_checks_them() {
        assert!(is_dns_subdomain("pi-admin.v2") && !is_dns_subdomain("Pi") && !is_dns_subdomain("a..b"));
        assert!(is_dns_label("acme") && !is_dns_label("acme.corp") && !is_dns_label("-a") && !is_dns_label(""));
    }

    #[test]
    fn long_values_are_cut_in_the_middle() {
        let message = format!("\"{}\" is longer than 254 characters", "a".repeat(4000));
        let short = abbreviated(&message);
        assert!(short.len() < 300 && short.ends_with("is longer than 254 characters"), "{short}");
        assert_eq!(abbreviated("short"), "short");
    }

    #[test]
    fn user_names_that_cannot_be_meant_as_written_are_named() {
        for good in ["alice", "o'brien", "a&b", "名前", "\u{0430}lice", "d..e", "alice@acme.example"] {
            assert_eq!(unusable_user_name(good), None, "{good}");
        }
        for (bad, why) in [
            ("bo\tb", "U+0009"),
            ("bob\n", "U+000A"),
            ("bob\0", "U+0000"),
            ("\u{202E}ecila", "U+202E"),
            ("\u{200F}breakglass", "U+200F"),
            ("bo\u{200B}b", "U+200B"),
            ("breakglass ", "white space"),
            ("..", "URL path"),
        ] {
            let found = unusable_user_name(bad).unwrap_or_default();
            assert!(found.contains(why), "{bad:?}: {found}");
        }
    }
}
