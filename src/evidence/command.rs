//! `keyward report` and `keyward report sample`: reading the logs and the manifests, the live
//! read of the providers, and writing the outputs. The decisions are the pure modules'.

use super::provenance::Checkpoint;
use super::terminations::{Deadlines, terminations};
use super::{Format, Inputs, Listing, Section};
use crate::cli::ManifestArgs;
use crate::crd::{AccessGrant, Employee, MfaProvider};
use crate::manifests::{self, Manifests, Severity};
use crate::providers::{self, UserQuery};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code of a report that was written but whose evidence has a gap: the audit chain did
/// not verify, or a provider could not be read.
const EXIT_GAP: u8 = 2;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
    #[command(flatten)]
    pub review: ReviewArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum ReportCommand {
    /// Draw a repeatable sample of the terminations in the audit logs, each with its audit
    /// lines, as an auditor would: the same seed draws the same sample on any machine.
    Sample(SampleArgs),
}

#[derive(clap::Args, Debug)]
pub struct ReviewArgs {
    /// Audit logs, in order (a rotated log goes on in the next file).
    #[arg(long = "audit-log", num_args = 1.., required = true)]
    pub audit_logs: Vec<PathBuf>,
    #[command(flatten)]
    pub manifests: ManifestArgs,
    /// Start of the period: a date (`2026-11-01`, from its start, UTC) or an RFC 3339 time.
    #[arg(long, value_parser = from_bound, required = true)]
    pub from: Option<DateTime<Utc>>,
    /// End of the period: a date (`2026-11-30`, to its end, UTC) or an RFC 3339 time
    /// (excluded).
    #[arg(long, value_parser = to_bound, required = true)]
    pub to: Option<DateTime<Utc>>,
    /// Output formats (repeatable). Default: markdown on standard output; all three with
    /// `--out`.
    #[arg(long, value_enum)]
    pub format: Vec<Format>,
    /// Write one file per section and format into this directory, and `manifest.json` with
    /// the SHA-256 of each.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The longest a revocation may take from its trigger.
    #[arg(long, default_value = "1h", value_parser = parse_sla)]
    pub sla: chrono::Duration,
    /// The checkpoint to hold the logs to (default: `<last log>.checkpoint`, if present).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// How many terminations to draw.
    #[arg(long = "n", default_value_t = 25)]
    pub n: usize,
    /// Any text; the auditor's choice, written down with the sample.
    #[arg(long)]
    pub seed: String,
    /// Audit logs, in order (a rotated log goes on in the next file).
    #[arg(long = "audit-log", num_args = 1.., required = true)]
    pub audit_logs: Vec<PathBuf>,
    /// Start of the period (default: the first record).
    #[arg(long, value_parser = from_bound)]
    pub from: Option<DateTime<Utc>>,
    /// End of the period (default: after the last record).
    #[arg(long, value_parser = to_bound)]
    pub to: Option<DateTime<Utc>>,
    /// Output format, on standard output.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// The longest a revocation may take from its trigger (judged from the records alone:
    /// the sample reads no manifests).
    #[arg(long, default_value = "1h", value_parser = parse_sla)]
    pub sla: chrono::Duration,
}

fn from_bound(s: &str) -> Result<DateTime<Utc>, String> {
    super::period::parse_bound(s, super::period::End::From)
}

fn to_bound(s: &str) -> Result<DateTime<Utc>, String> {
    super::period::parse_bound(s, super::period::End::To)
}

fn parse_sla(s: &str) -> Result<chrono::Duration, String> {
    let duration = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 15m or 1h: {e}"))?;
    chrono::Duration::from_std(duration).map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read audit log {file}: {source}")]
    ReadAuditLog { file: PathBuf, source: std::io::Error },
    #[error("cannot write {file}: {source}")]
    WriteOutput { file: PathBuf, source: std::io::Error },
    #[error("{count} problem(s) in the manifests (each named above with its file and line); no report was made")]
    Manifests { count: usize },
    #[error("{0}")]
    Usage(String),
}

pub async fn run(args: ReportArgs) -> ExitCode {
    let outcome = match args.command {
        Some(ReportCommand::Sample(sample)) => draw_sample(&sample),
        None => review(&args.review).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_logs(files: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Error> {
    files
        .iter()
        .map(|file| {
            std::fs::read_to_string(file)
                .map(|text| (file.clone(), text))
                .map_err(|source| Error::ReadAuditLog { file: file.clone(), source })
        })
        .collect()
}

fn draw_sample(args: &SampleArgs) -> Result<ExitCode, Error> {
    let period = super::period::Period::new(args.from, args.to).map_err(Error::Usage)?;
    let logs = read_logs(&args.audit_logs)?;
    let trail = super::trail::read(&logs);
    for unreadable in &trail.unreadable {
        eprintln!("warning: {}: {}", unreadable.at, unreadable.problem);
    }
    // From the log alone: the declared state is not asked, so a trigger the records do not
    // carry is unknown here (the full report looks at activeUntil/validUntil too).
    let population = terminations(&trail, &period, args.sla, &Deadlines::default());
    let drawn = super::sample::draw(&population, args.n, &args.seed, &trail);
    let drawing =
        super::sample::Drawing { seed: &args.seed, population: population.len(), period: &period, drawn: &drawn };
    print!("{}", drawing.render(args.format));
    Ok(ExitCode::SUCCESS)
}

async fn review(args: &ReviewArgs) -> Result<ExitCode, Error> {
    let period = super::period::Period::new(args.from, args.to).map_err(Error::Usage)?;
    if let Some(now) = args.manifests.now {
        return Err(Error::Usage(format!(
            "--now {} is for `keyward plan`: holdings are evidence of today, read at the real time",
            now.to_rfc3339()
        )));
    }
    let formats = formats(args)?;
    let logs = read_logs(&args.audit_logs)?;
    let checkpoint = checkpoint(args);
    let anchors = anchors(args);
    let manifests = load(&args.manifests)?;
    let providers: Vec<MfaProvider> = manifests.providers.iter().map(|l| l.object.clone()).collect();
    let employees: Vec<Employee> = manifests.employees.iter().map(|l| l.object.clone()).collect();
    let grants: Vec<AccessGrant> = manifests.grants.iter().map(|l| l.object.clone()).collect();
    let now = Utc::now();
    let mut live = Vec::new();
    for provider in &providers {
        let listing = list(provider, &manifests, &employees, &grants).await;
        live.push(super::live_provider(provider, &employees, &grants, listing, now));
    }
    let deadlines = Deadlines::of(&employees, &grants);
    let report = super::compose(Inputs {
        period,
        sla: args.sla,
        generated_at: Utc::now(),
        live_read_at: now,
        logs: &logs,
        checkpoint: checkpoint.as_ref(),
        anchors: &anchors,
        deadlines: &deadlines,
        providers: live,
        declared_source_revisions: super::declared_source_revisions(&providers, &employees, &grants),
    });
    match &args.out {
        Some(dir) => write_out(&report, dir, &formats)?,
        None => print!("{}", report.whole(formats[0])),
    }
    let gap = !report.provenance.chain.verified
        || report.provenance.providers.iter().any(|p| p.live_read.starts_with("FAILED"));
    if gap {
        eprintln!(
            "warning: the report has a gap: the audit chain did not verify or a provider could not be read (see provenance)"
        );
        return Ok(ExitCode::from(EXIT_GAP));
    }
    Ok(ExitCode::SUCCESS)
}

fn formats(args: &ReviewArgs) -> Result<Vec<Format>, Error> {
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    match (&args.out, formats.len()) {
        (Some(_), 0) => Ok(Format::ALL.to_vec()),
        (None, 0) => Ok(vec![Format::Markdown]),
        (None, 1) | (Some(_), _) => Ok(formats),
        (None, _) => {
            Err(Error::Usage("several --format values need --out DIR (one file per section and format)".into()))
        }
    }
}

/// `--checkpoint`, else the checkpoint `keyward apply` keeps beside the last log.
fn checkpoint(args: &ReviewArgs) -> Option<Checkpoint> {
    let file = args
        .checkpoint
        .clone()
        .or_else(|| args.audit_logs.last().map(|f| crate::audit::checkpoint_path(f)).filter(|p| p.exists()))?;
    let expected = std::fs::read_to_string(&file).ok().and_then(|t| crate::audit::Checkpoint::parse(&t));
    Some(Checkpoint { file, expected })
}

/// The anchors `keyward apply` and the operator write beside the first log at its
/// rotations, read as they are (the report checks no signature). One that cannot be read
/// anchors nothing; the chain check then says where the log starts unanchored.
fn anchors(args: &ReviewArgs) -> Vec<crate::audit::Held> {
    let files = args.audit_logs.first().and_then(|first| crate::audit::anchor_files(first).ok()).unwrap_or_default();
    files
        .into_iter()
        .filter_map(|file| {
            let checkpoint = crate::audit::Checkpoint::parse(&std::fs::read_to_string(&file).ok()?)?;
            Some(crate::audit::Held { checkpoint, file, signed: false })
        })
        .collect()
}

/// The manifests, as `keyward plan` takes them: an error in them stops the report before a
/// provider is asked (an Employee left out for a typo would show its enrolments as undeclared).
fn load(args: &ManifestArgs) -> Result<Manifests, Error> {
    let (manifests, problems) = manifests::load_with_kustomize(&args.paths, &args.kustomize, &args.namespace);
    let mut problems = problems;
    problems.extend(manifests::validate(&manifests, Utc::now()));
    for problem in &problems {
        eprintln!("{problem}");
    }
    match problems.iter().filter(|p| p.severity == Severity::Error).count() {
        0 => Ok(manifests),
        count => Err(Error::Manifests { count }),
    }
}

/// Every user of the provider's realm and their enrolments: the declared users keyward
/// manages and, whatever `scope` says, everyone else who holds a factor there (an access
/// review lists the break-glass account and the out-of-band user too). Read only.
async fn list(
    provider: &MfaProvider,
    manifests: &Manifests,
    employees: &[Employee],
    grants: &[AccessGrant],
) -> Listing {
    let namespace = provider.namespace().unwrap_or_default();
    let lookup = |secret: &str, key: &str| manifests.secret_value(&namespace, secret, key);
    let declared = crate::sweep::Declared { provider, employees, grants };
    let query = UserQuery { declared: crate::sweep::user_query(&declared).declared, all: true };
    let connected = providers::connect(provider, &lookup).map_err(|e| e.to_string())?;
    let inventory = connected.inventory(&query).await.map_err(|e| e.to_string())?;
    Ok((inventory, connected.capabilities()))
}

/// One file per section and format, then `manifest.json` naming each with its SHA-256.
fn write_out(report: &super::Report, dir: &Path, formats: &[Format]) -> Result<(), Error> {
    let write = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).map_err(|source| Error::WriteOutput { file, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteOutput { file: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for section in Section::ALL {
        for format in formats {
            let name = format!("{}.{}", section.name(), format.extension());
            let text = report.section(section, *format);
            write(&name, &text)?;
            files.push(serde_json::json!({
                "file": name,
                "sha256": crate::audit::sha256_hex(text.as_bytes()),
                "bytes": text.len(),
            }));
        }
    }
    let p = &report.provenance;
    let manifest = serde_json::json!({
        "keyward_version": p.keyward_version,
        "generated_at": p.generated_at,
        "period_from": p.period_from,
        "period_to": p.period_to,
        "files": files,
    });
    write("manifest.json", &(serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n"))?;
    eprintln!("wrote {} file(s) and manifest.json to {}", files.len(), dir.display());
    Ok(())
}
