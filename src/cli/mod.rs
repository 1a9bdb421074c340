//! Command-line interface: argument types and one function per subcommand.

mod audit;
mod crds;
pub mod import;
mod manifests_mode;
pub mod plan_render;

use clap::{Parser, Subcommand};
use plan_render::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "keyward", version, about = "Revokes every MFA enrolment that is no longer declared")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Hosts provider credentials may be sent to (`acme.okta.com`, `*.duosecurity.com`,
    /// `127.0.0.1:5000`); repeatable or comma-separated. Set, every other host is refused
    /// before a request is made. Unset: any host an MfaProvider names.
    #[arg(long = "allow-host", global = true, env = "KEYWARD_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,
    /// Hosts notifications (Slack, webhooks) may be posted to; repeatable or comma-separated.
    /// Unset: the provider host allowlist applies to them too (any host when that is unset).
    /// Either way only https is posted to (plain http on loopback), never a link-local address.
    #[arg(long = "notification-host", global = true, env = "KEYWARD_NOTIFICATION_HOSTS", value_delimiter = ',')]
    pub notification_hosts: Vec<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ManifestArgs {
    /// Files or directories of YAML manifests (multi-document; Secrets included); `-` reads
    /// standard input.
    #[arg(short = 'f', long = "filename", num_args = 1.., required_unless_present = "kustomize")]
    pub paths: Vec<PathBuf>,
    /// Kustomization directories, built with `kubectl kustomize` (the overlays a GitOps tool
    /// applies); `KEYWARD_KUBECTL` names the kubectl binary.
    #[arg(short = 'k', long = "kustomize", num_args = 1..)]
    pub kustomize: Vec<PathBuf>,
    /// Namespace for objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Evaluate active windows and grant validity at this time (RFC 3339) instead of now.
    /// `plan` and `validate` only: `apply` refuses it, since it would really revoke.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Checks the hash chain and sequence of audit logs (files in order; a rotated log goes
    /// on in the next); that the log starts at seq 0, or where an anchor written at a rotation
    /// says (the files before it pruned); and that it is not shorter than its checkpoint and
    /// holds the record the checkpoint counted last. Exit 1 names the first line that is not
    /// as written.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The checkpoint to hold the log to (default: `<last file>.checkpoint`, if present).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A verifier key (text, or a file holding it): the checkpoint and the anchor must
        /// carry a valid signature by it.
        #[arg(long)]
        key: Option<String>,
        /// An anchor to start from, besides the `<log>.anchor-<seq>` files next to the first
        /// file (repeatable).
        #[arg(long = "anchor")]
        anchors: Vec<PathBuf>,
        /// Fail when the checkpoint was written longer ago than this (`24h`, `90m`), or
        /// carries no time.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
    },
    /// Makes an Ed25519 key pair for signing checkpoints: the signer key (for the operator's
    /// Secret, `--audit-signing-key`) on the first line, the verifier key (for auditors,
    /// `audit verify --key`) on the second.
    Keygen {
        /// The key's name, which every signature carries (e.g. `acme-keyward-audit`).
        name: String,
    },
}

impl Command {
    /// Whether the command signs in to providers with the credentials of the manifests.
    fn signs_in_to_providers(&self) -> bool {
        matches!(
            self,
            Command::Plan { .. }
                | Command::Apply { .. }
                | Command::Check { .. }
                | Command::Import { .. }
                | Command::Conformance { .. }
        )
    }
}

/// `CI=true` (or `1`): GitHub Actions, GitLab CI and most runners set it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask the providers and print what would change. Exit 0: nothing to do; 2: changes
    /// pending (or blocked); 1: error.
    Plan {
        #[command(flatten)]
        manifests: ManifestArgs,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// One reconcile sweep: revoke what is no longer declared, within the budget. Exit 0:
    /// done; 1: something failed; 2: revocations blocked, waiting for approval.
    Apply {
        #[command(flatten)]
        manifests: ManifestArgs,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
        /// Append one JSON audit record per revocation (and per blocked one) to this file.
        #[arg(long, default_value = "keyward-audit.jsonl", env = "KEYWARD_AUDIT_LOG")]
        audit_log: PathBuf,
        /// Sign the log's checkpoints with this signer key file (`keyward audit keygen`).
        #[arg(long, env = "KEYWARD_AUDIT_SIGNING_KEY_FILE")]
        audit_signing_key: Option<PathBuf>,
    },
    /// Sign in to every MfaProvider of the manifests with its credentials and read the least
    /// each provider allows (one user, the realm), no enrolments. Exit 0: every provider
    /// accepted its credentials; 1: one did not (each named with what it answered).
    Check {
        #[command(flatten)]
        manifests: ManifestArgs,
    },
    /// Prove one MfaProvider on its live tenant before Enforce: create a disposable user
    /// (`--user-prefix` and a random suffix), enrol a second factor through the admin API, read
    /// it as a sweep and a targeted sweep do, revoke it, read again, delete the user. Every
    /// request is printed (never a credential). Writes to the provider: refuses without
    /// `--i-understand-this-writes`. Exit 0: every step passed; 1: one failed; 2: refused.
    Conformance {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// The MfaProvider, `<namespace>/<name>` or its name when only one has it.
        #[arg(long)]
        provider: String,
        /// Start of the disposable user's name (`kw-conformance`, or an address such as
        /// `kw-conformance@acme.example` for providers that name users by e-mail).
        #[arg(long)]
        user_prefix: String,
        /// Confirms that a user is created and deleted, and a factor enrolled and revoked, on
        /// the provider.
        #[arg(long)]
        i_understand_this_writes: bool,
    },
    /// Offline schema and reference checks; every problem with its file and line. Errors and
    /// warnings fail it; notes (a Secret not in the tree, `policy.mode` left to its default)
    /// only with `--strict`.
    Validate {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Notes fail too (a tree that must hold its Secrets and say every mode).
        #[arg(long)]
        strict: bool,
    },
    /// Run the operator: watch the three kinds and their Secrets, sweep providers on every
    /// change and every resyncInterval, with leader election, metrics and health endpoints.
    Run {
        #[command(flatten)]
        args: crate::controller::config::RunArgs,
    },
    /// Read the MfaProviders of the manifests and write the Employees and AccessGrants that
    /// declare what they hold today (users no longer in the directory and protected users
    /// left out), for review in a pull request.
    Import {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Domain for user names that are not e-mail addresses (`alice` → `alice@DOMAIN`).
        #[arg(long)]
        email_domain: Option<String>,
        /// Write `imported.yaml` into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The access review and termination evidence for a period, from the audit logs and a
    /// live read of the providers (Markdown, JSON, CSV; with `--out`, one file per section and
    /// format and a manifest of their SHA-256). Exit 0: written; 2: written, but the audit
    /// chain did not verify or a provider could not be read; 1: error.
    Report {
        #[command(flatten)]
        args: crate::evidence::command::ReportArgs,
    },
    /// Print the CustomResourceDefinitions (or write one file per kind into a directory).
    Crds {
        /// Write `<plural>.yaml` files into this directory instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    if !cli.notification_hosts.is_empty() {
        let installed = crate::providers::allowlist::HostAllowlist::only(&cli.notification_hosts)
            .and_then(crate::outbound::install_notification_hosts);
        if let Err(e) = installed {
            eprintln!("error: --notification-host: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !cli.allow_hosts.is_empty() {
        let installed = crate::providers::allowlist::HostAllowlist::only(&cli.allow_hosts)
            .and_then(crate::providers::allowlist::install);
        if let Err(e) = installed {
            eprintln!("error: --allow-host: {e}");
            return ExitCode::FAILURE;
        }
    } else if matches!(cli.command, Command::Run { .. }) {
        tracing::warn!(
            "no provider host allowlist (--allow-host, chart value providerHosts): credentials go to any URL an MfaProvider names"
        );
    } else if cli.command.signs_in_to_providers() {
        // In CI the manifests are often a pull request's: whoever opened it chooses the URLs.
        if in_ci() {
            eprintln!(
                "error: no provider host allowlist (--allow-host or KEYWARD_ALLOWED_HOSTS) and CI is set: \
                 refusing to send provider credentials to whatever host the manifests name"
            );
            return ExitCode::FAILURE;
        }
        eprintln!(
            "warning: no provider host allowlist (--allow-host or KEYWARD_ALLOWED_HOSTS): provider credentials go to \
             any URL an MfaProvider in these manifests names"
        );
    }
    match cli.command {
        Command::Plan { manifests, output } => manifests_mode::plan(&manifests, output).await,
        Command::Apply { manifests, output, audit_log, audit_signing_key } => {
            manifests_mode::apply(&manifests, output, &audit_log, audit_signing_key.as_deref()).await
        }
        Command::Check { manifests } => manifests_mode::check(&manifests).await,
        Command::Conformance { manifests, provider, user_prefix, i_understand_this_writes } => {
            manifests_mode::conformance(&manifests, &provider, &user_prefix, i_understand_this_writes).await
        }
        Command::Validate { manifests, strict } => manifests_mode::validate(&manifests, strict),
        Command::Import { manifests, email_domain, out } => {
            manifests_mode::import(&manifests, email_domain.as_deref(), out.as_deref()).await
        }
        Command::Audit { command: AuditCommand::Verify { files, checkpoint, key, anchors, max_age } } => {
            audit::verify(&audit::VerifyArgs {
                files: &files,
                checkpoint: checkpoint.as_deref(),
                key: key.as_deref(),
                anchors: &anchors,
                max_age,
            })
        }
        Command::Audit { command: AuditCommand::Keygen { name } } => match crate::audit::Signer::generate(&name) {
            Ok((signer, verifier)) => {
                println!("{signer}\n{verifier}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Report { args } => crate::evidence::command::run(args).await,
        Command::Crds { write } => crds::crds(write.as_deref()),
        Command::Run { args } => match crate::controller::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
