//! `kubectl keyward`: the MfaProviders of a namespace as the operator sees them, what it would
//! do now, approving a held plan, suspending and resuming. The cluster is reached as kubectl
//! reaches it (KUBECONFIG, the context's namespace, `-n`); the formatting and the decisions
//! are in `view`, the requests in `cluster`.

mod cluster;
pub mod view;

use crate::cli::plan_render::{self, Format};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code of `plan` when the operator would change something (as `keyward plan`).
const EXIT_PENDING: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "kubectl-keyward", bin_name = "kubectl keyward", version)]
#[command(about = "keyward's MfaProviders as the operator sees them; approve a held plan; suspend and resume")]
pub struct Plugin {
    #[command(subcommand)]
    pub command: PluginCommand,
    /// The namespace (default: the kubeconfig context's, as kubectl).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Hosts `plan` may send provider credentials to, as `keyward --allow-host`; repeatable or
    /// comma-separated. Unset: any host an MfaProvider names.
    #[arg(long = "allow-host", global = true, env = "KEYWARD_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Per MfaProvider: mode, suspended, Ready, last sweep, pending and held revocations, the
    /// held plan's digest and the first revocations of the plan.
    Status {
        /// One MfaProvider (default: every one of the namespace).
        provider: Option<String>,
    },
    /// What the operator would do now: the MfaProvider, Employees, AccessGrants,
    /// RevocationApprovals and credentials read from the cluster, the provider asked, the same
    /// engine as `keyward plan`. Revokes nothing. Exit 0: nothing to do; 2: changes; 1: error.
    Plan {
        provider: String,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Shows the plan the MfaProvider holds for approval and creates a RevocationApproval
    /// naming exactly its digest. Exit 1 when nothing is held or the approval is declined.
    Approve {
        provider: String,
        /// Do not ask.
        #[arg(short, long)]
        yes: bool,
        /// Why the plan is right (a ticket, the reviewed change): the approval's spec.reason.
        #[arg(long, default_value = "approved with kubectl keyward approve")]
        reason: String,
    },
    /// Sets spec.suspend: the operator stops all action on the provider.
    Suspend { provider: String },
    /// Clears spec.suspend: the operator sweeps the provider again.
    Resume { provider: String },
}

/// A plugin command that failed, with what to tell the person.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A request to the API server failed; the text is kubectl's way of saying so.
    #[error("{0}")]
    Api(String),
    #[error("error: cannot reach the cluster: {0}")]
    Connect(#[source] kube::Error),
    #[error(
        "error: MfaProvider {provider} holds no plan for approval (status.blockedPlanDigest is empty); nothing was approved"
    )]
    NothingHeld { provider: String },
    #[error("approval declined: no RevocationApproval was created for MfaProvider {provider}")]
    Declined { provider: String },
    #[error("error: read the answer from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("error: --allow-host: {0}")]
    AllowHost(String),
}

pub async fn run(plugin: Plugin) -> ExitCode {
    match execute(plugin).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(plugin: Plugin) -> Result<ExitCode, PluginError> {
    if !plugin.allow_hosts.is_empty() {
        crate::providers::allowlist::HostAllowlist::only(&plugin.allow_hosts)
            .and_then(crate::providers::allowlist::install)
            .map_err(|e| PluginError::AllowHost(e.to_string()))?;
    }
    let cluster = cluster::Cluster::connect(plugin.namespace).await?;
    match plugin.command {
        PluginCommand::Status { provider } => {
            let providers = cluster.providers(provider.as_deref()).await?;
            print!("{}", view::status(&providers, chrono::Utc::now()));
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Plan { provider, output } => {
            let planned = cluster.plan(&provider).await?;
            print!("{}", plan_render::render(std::slice::from_ref(&planned.report), output, false));
            if let Some(note) = view::plan_note(&planned.provider) {
                eprintln!("{note}");
            }
            Ok(if planned.report.failed() {
                ExitCode::FAILURE
            } else if planned.report.plan.has_changes() {
                ExitCode::from(EXIT_PENDING)
            } else {
                ExitCode::SUCCESS
            })
        }
        PluginCommand::Approve { provider, yes, reason } => approve(&cluster, &provider, yes, &reason).await,
        PluginCommand::Suspend { provider } => cluster.set_suspend(&provider, true).await.map(|()| ExitCode::SUCCESS),
        PluginCommand::Resume { provider } => cluster.set_suspend(&provider, false).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn approve(cluster: &cluster::Cluster, name: &str, yes: bool, reason: &str) -> Result<ExitCode, PluginError> {
    let provider = cluster.provider(name).await?;
    let key = crate::crd::ProviderKey::of(&provider);
    let digest = view::held_digest(&provider).ok_or_else(|| PluginError::NothingHeld { provider: key.to_string() })?;
    let mut approval = view::approval(&provider, digest, reason);
    // Who approves, as the API server knows them: the chart's admission policy accepts the
    // approval only under that name, and the audit records carry it.
    let me = cluster.who_am_i().await?;
    approval.metadata.annotations = Some([(crate::crd::APPROVED_BY_ANNOTATION.to_string(), me)].into_iter().collect());
    print!("{}", view::held_plan(&provider, digest));
    if !yes {
        use std::io::Write;
        print!("{}", view::question(&approval));
        std::io::stdout().flush().map_err(PluginError::Stdin)?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(PluginError::Stdin)?;
        if !view::confirmed(&answer) {
            return Err(PluginError::Declined { provider: key.to_string() });
        }
    }
    let created = cluster.create_approval(&approval).await?;
    println!("{}", view::approval_created(&created));
    Ok(ExitCode::SUCCESS)
}
