//! `keyward plan | apply | validate -f PATH…`: the engine on a GitOps checkout.

use super::ManifestArgs;
use super::plan_render::{self, Format};
use crate::audit::{AuditSink, JsonLinesFile, Memory};
use crate::crd::{AccessGrant, Employee, ProviderKey};
use crate::manifests::{self, Manifests, Severity};
use crate::providers;
use crate::sweep::{self, Declared, Execution, SweepReport};
use kube::ResourceExt;
use std::path::Path;
use std::process::ExitCode;

/// Exit code of `plan` when changes are pending, and of `apply` when revocations are blocked.
const EXIT_PENDING: u8 = 2;

/// How much of what `validate` finds stops the command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fatal {
    /// `plan`, `apply`: errors only; the engine deals with warnings itself.
    Errors,
    /// `validate`: errors and warnings.
    Warnings,
    /// `validate --strict`: notes too.
    Notes,
}

/// Loads and validates. An error stops here, before a provider is contacted: an object left
/// out for a typo would read as a deleted Employee.
fn load(args: &ManifestArgs, fatal: Fatal) -> Result<Manifests, ExitCode> {
    let (manifests, mut problems) = manifests::load_with_kustomize(&args.paths, &args.kustomize, &args.namespace);
    problems.extend(manifests.default_modes.iter().cloned());
    problems.extend(manifests::validate(&manifests, args.now.unwrap_or_else(chrono::Utc::now)));
    for problem in &problems {
        eprintln!("{problem}");
    }
    let fatal = problems
        .iter()
        .filter(|p| match p.severity {
            Severity::Error => true,
            Severity::Warning => fatal != Fatal::Errors,
            Severity::Note => fatal == Fatal::Notes,
        })
        .count();
    if fatal == 0 {
        return Ok(manifests);
    }
    eprintln!("error: {fatal} problem(s) in the manifests; nothing was planned or changed");
    Err(ExitCode::FAILURE)
}

pub fn validate(args: &ManifestArgs, strict: bool) -> ExitCode {
    match load(args, if strict { Fatal::Notes } else { Fatal::Warnings }) {
        Ok(m) => {
            println!(
                "ok: {} MfaProvider(s), {} Employee(s), {} AccessGrant(s), {} Secret(s)",
                m.providers.len(),
                m.employees.len(),
                m.grants.len(),
                m.secrets.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `keyward check`: each provider's credentials tried, nothing read that a plan would.
pub async fn check(args: &ManifestArgs) -> ExitCode {
    let manifests = match load(args, Fatal::Errors) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let mut refused = 0;
    for loaded in &manifests.providers {
        let provider = &loaded.object;
        let namespace = provider.namespace().unwrap_or_default();
        let lookup = |secret: &str, key: &str| manifests.secret_value(&namespace, secret, key);
        let key = ProviderKey::of(provider);
        let checked = match providers::connect(provider, &lookup) {
            Ok(connected) => connected.check().await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => println!("ok     {key}: credentials accepted"),
            Err(e) => {
                refused += 1;
                println!("error  {key}: {e}");
            }
        }
    }
    if refused == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {refused} of {} provider(s) did not accept keyward's credentials", manifests.providers.len());
        ExitCode::FAILURE
    }
}

/// `keyward conformance`: one provider proven on its tenant (see [`crate::conformance`]).
pub async fn conformance(args: &ManifestArgs, wanted: &str, prefix: &str, confirmed: bool) -> ExitCode {
    if !confirmed {
        eprintln!(
            "error: conformance creates a user on the provider, enrols and revokes a factor and deletes the user: \
             run it again with --i-understand-this-writes"
        );
        return ExitCode::from(2);
    }
    if prefix.trim().is_empty() || prefix.contains(char::is_whitespace) {
        eprintln!("error: --user-prefix {prefix:?}: give the start of a user name, without spaces");
        return ExitCode::from(2);
    }
    let manifests = match load(args, Fatal::Errors) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let matching: Vec<_> = manifests
        .providers
        .iter()
        .filter(|l| ProviderKey::of(&l.object) == wanted || l.object.name_any() == wanted)
        .collect();
    let [loaded] = matching.as_slice() else {
        let known: Vec<String> = manifests.providers.iter().map(|l| ProviderKey::of(&l.object).into()).collect();
        eprintln!(
            "error: --provider {wanted}: {} MfaProviders match in these manifests (there are: {})",
            matching.len(),
            known.join(", ")
        );
        return ExitCode::from(2);
    };
    let provider = &loaded.object;
    let key = ProviderKey::of(provider);
    let namespace = provider.namespace().unwrap_or_default();
    let lookup = |secret: &str, key: &str| manifests.secret_value(&namespace, secret, key);
    let connected = match providers::connect(provider, &lookup) {
        Ok(connected) => connected,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let suffix = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let user = crate::conformance::test_user_name(prefix.trim(), &suffix);
    let report = crate::conformance::run(&connected, &user).await;
    print!("{}", report.render(key.as_str()));
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn sweep_all(
    manifests: &Manifests,
    args: &ManifestArgs,
    execution: Execution,
    audit: &dyn AuditSink,
) -> Vec<SweepReport> {
    let now = args.now.unwrap_or_else(chrono::Utc::now);
    let employees: Vec<Employee> = manifests.employees.iter().map(|l| l.object.clone()).collect();
    let grants: Vec<AccessGrant> = manifests.grants.iter().map(|l| l.object.clone()).collect();
    let mut reports = Vec::new();
    for loaded in &manifests.providers {
        let provider = &loaded.object;
        let namespace = provider.namespace().unwrap_or_default();
        let declared = Declared { provider, employees: &employees, grants: &grants };
        let lookup = |secret: &str, key: &str| manifests.secret_value(&namespace, secret, key);
        let approvals = ManifestApprovals::of(provider, manifests);
        let report = match providers::connect(provider, &lookup) {
            Ok(connected) => sweep::sweep_guarded(&connected, &declared, now, execution, audit, &approvals).await,
            Err(e) => unreachable_provider(&declared, e.to_string(), now),
        };
        reports.push(report);
    }
    reports
}

/// What `plan` and `apply` offer a held plan: the RevocationApprovals of the manifests that
/// name the provider, and its approval annotation. Nothing records their use (the files are
/// not written), so a `keyward apply` run again carries the same plan out again: the budget
/// of one run is the guard, as it always was for the annotation.
struct ManifestApprovals(Vec<crate::engine::ApprovalOffer>);

impl ManifestApprovals {
    fn of(provider: &crate::crd::MfaProvider, manifests: &Manifests) -> Self {
        let objects: Vec<&crate::crd::RevocationApproval> = manifests.approvals.iter().map(|l| &l.object).collect();
        let mut offers = crate::engine::budget::object_offers(provider, &objects);
        offers.extend(crate::engine::budget::annotation_offer(provider));
        ManifestApprovals(offers)
    }
}

impl sweep::Guard for ManifestApprovals {
    fn approvals(&self) -> Vec<crate::engine::ApprovalOffer> {
        self.0.clone()
    }
}

/// A provider that could not even be configured decides nothing, exactly as one that could
/// not be read.
fn unreachable_provider(declared: &Declared, error: String, now: chrono::DateTime<chrono::Utc>) -> SweepReport {
    let capabilities = crate::engine::Capabilities { disable: false, invite: Vec::new() };
    let plan = crate::engine::plan(&crate::engine::PlanInput {
        provider: declared.provider,
        employees: declared.employees,
        grants: declared.grants,
        inventory: Err(error),
        capabilities: &capabilities,
        now,
        revoked_in_window: 0,
        approvals: &[],
    });
    SweepReport {
        plan,
        results: Vec::new(),
        requests: 0,
        audit_errors: Vec::new(),
        error_category: Some("configuration"),
        deferred: false,
        latencies: Vec::new(),
        listing_duplicates: Default::default(),
    }
}

pub async fn plan(args: &ManifestArgs, output: Format) -> ExitCode {
    let manifests = match load(args, Fatal::Errors) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let reports = sweep_all(&manifests, args, Execution::PlanOnly, &Memory::default()).await;
    print!("{}", plan_render::render(&reports, output, false));
    if reports.iter().any(SweepReport::failed) {
        ExitCode::FAILURE
    } else if reports.iter().any(|r| r.plan.has_changes()) {
        ExitCode::from(EXIT_PENDING)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn apply(args: &ManifestArgs, output: Format, audit_log: &Path, signing_key: Option<&Path>) -> ExitCode {
    // `--now` is a what-if for `plan`: revoking for real on windows evaluated at another time
    // would revoke people who are still entitled today (or keep leavers). Refused, with exit 1
    // rather than clap's usage exit 2, which `apply` uses for "blocked, waiting for approval".
    if let Some(now) = args.now {
        eprintln!(
            "error: --now {} is only for `keyward plan`; `apply` acts at the real time. Nothing was changed.",
            now.to_rfc3339()
        );
        return ExitCode::FAILURE;
    }
    let manifests = match load(args, Fatal::Errors) {
        Ok(m) => m,
        Err(code) => return code,
    };
    // Opened before any provider is touched: a revocation without its audit record is
    // exactly what an auditor must never find.
    let signer = match signing_key.map(crate::controller::read_signer).transpose() {
        Ok(signer) => signer.map(std::sync::Arc::new),
        Err(e) => {
            eprintln!("error: audit signing key: {e}; nothing was changed");
            return ExitCode::FAILURE;
        }
    };
    let opened = JsonLinesFile::open(audit_log).and_then(|file| match signer {
        Some(signer) => file.signed(signer),
        None => Ok(file),
    });
    let audit = match opened {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: open audit log {}: {e}; nothing was changed", audit_log.display());
            return ExitCode::FAILURE;
        }
    };
    let reports = sweep_all(&manifests, args, Execution::Apply, &audit).await;
    print!("{}", plan_render::render(&reports, output, true));
    eprintln!("audit records appended to {}", audit.path().display());
    if reports.iter().any(SweepReport::failed) {
        ExitCode::FAILURE
    } else if reports.iter().any(SweepReport::blocked) {
        ExitCode::from(EXIT_PENDING)
    } else {
        ExitCode::SUCCESS
    }
}

/// `keyward import`: reads each MfaProvider of the manifests (every user it lists, as under
/// `scope: All`) and prints, or writes under `out`, the Employees and AccessGrants that
/// declare what it holds today.
pub async fn import(args: &ManifestArgs, email_domain: Option<&str>, out: Option<&Path>) -> ExitCode {
    let manifests = match load(args, Fatal::Errors) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if manifests.providers.is_empty() {
        eprintln!("error: no MfaProvider in the manifests: import reads the providers they name");
        return ExitCode::FAILURE;
    }
    let mut documents = vec![format!(
        "# Generated by `keyward import` at {}: what the providers hold today, declared.\n# Review before committing (roles instead of names, leavers, who should hold what), and\n# start the providers in `policy.mode: Observe`.\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )];
    for loaded in &manifests.providers {
        let provider = &loaded.object;
        let namespace = provider.namespace().unwrap_or_default();
        let lookup = |secret: &str, key: &str| manifests.secret_value(&namespace, secret, key);
        let query = providers::UserQuery { declared: Vec::new(), all: true };
        let read = match providers::connect(provider, &lookup) {
            Ok(connected) => connected.inventory(&query).await,
            Err(error) => Err(error),
        };
        let inventory = match read {
            Ok(inventory) => inventory,
            Err(error) => {
                eprintln!("error: import: {error}");
                return ExitCode::FAILURE;
            }
        };
        let declared = super::import::declare(provider, &inventory, email_domain);
        for (user, why) in &declared.skipped {
            eprintln!("skipped {user} on {}/{}: {why}", namespace, provider.name_any());
        }
        eprintln!(
            "{}/{}: {} Employee(s), {} AccessGrant(s)",
            namespace,
            provider.name_any(),
            declared.employees.len(),
            declared.grants.len()
        );
        let yaml = |value: Result<String, serde_yaml::Error>| value.unwrap_or_else(|e| format!("# not written: {e}\n"));
        documents.extend(declared.employees.iter().map(|e| yaml(serde_yaml::to_string(e))));
        documents.extend(declared.grants.iter().map(|g| yaml(serde_yaml::to_string(g))));
    }
    let text = documents.join("---\n");
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(dir) => {
            let file = dir.join("imported.yaml");
            match std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&file, text)) {
                Ok(()) => {
                    eprintln!("wrote {}", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
