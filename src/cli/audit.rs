//! `keyward audit verify`: reads the logs, the checkpoint and the anchors beside them (the
//! I/O), hands them to [`crate::audit::verify`] (pure), and says what was checked and how far
//! that goes.

use crate::audit::{Checkpoint, Expected, Held, Verifier};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct VerifyArgs<'a> {
    pub files: &'a [PathBuf],
    pub checkpoint: Option<&'a Path>,
    pub key: Option<&'a str>,
    pub anchors: &'a [PathBuf],
    pub max_age: Option<std::time::Duration>,
}

pub fn verify(args: &VerifyArgs) -> ExitCode {
    match run(args) {
        Ok(lines) => {
            println!("{}", lines.join("\n"));
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("{problem}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &VerifyArgs) -> Result<Vec<String>, String> {
    let mut texts = Vec::new();
    for file in args.files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("error: cannot read {}: {e}", file.display()))?;
        texts.push((file.clone(), text));
    }
    let verifier = match args.key {
        Some(key) => {
            let key = std::fs::read_to_string(key).unwrap_or_else(|_| key.to_string());
            Some(Verifier::parse(&key).map_err(|e| format!("error: --key: {e}"))?)
        }
        None => None,
    };
    let checkpoint_file = args
        .checkpoint
        .map(Path::to_path_buf)
        .or_else(|| args.files.last().map(|f| crate::audit::checkpoint_path(f)).filter(|p| p.exists()));
    let checkpoint = match &checkpoint_file {
        Some(path) => Some(held(path, verifier.as_ref()).map_err(|e| format!("error: {}: {e}", path.display()))?),
        None if verifier.is_some() => {
            return Err("error: --key given but there is no checkpoint to check (--checkpoint FILE)".into());
        }
        None => None,
    };
    let expected = Expected { checkpoint, anchors: anchors(args, verifier.as_ref())? };
    let verified = crate::audit::verify(&texts, &expected).map_err(|broken| broken.to_string())?;
    let max_age =
        args.max_age.map(chrono::Duration::from_std).transpose().map_err(|e| format!("error: --max-age: {e}"))?;
    let age = crate::audit::checkpoint_age(expected.checkpoint.as_ref(), chrono::Utc::now(), max_age).map_err(|e| {
        match &checkpoint_file {
            Some(path) => format!("{}: checkpoint {e}", path.display()),
            None => "error: --max-age needs a checkpoint to tell the log's age (--checkpoint FILE)".into(),
        }
    })?;
    let against = match (&checkpoint_file, &expected.checkpoint) {
        (Some(path), Some(held)) => format!(
            ", not shorter than {} and its last record (seq {}) as it saw it{}",
            path.display(),
            held.checkpoint.count.saturating_sub(1),
            if held.signed { ", checkpoint signature valid" } else { ", checkpoint signature not checked (no --key)" }
        ),
        _ => {
            ", no checkpoint: a log cut short at its end, or rewritten with its chain recomputed, cannot be told".into()
        }
    };
    Ok(vec![
        format!("ok: {} record(s), chain and sequence intact{against}", verified.records),
        format!("start: {}", verified.start.label()),
        format!("checkpoint: {age}"),
    ])
}

/// A checkpoint file as verify holds the log to it: with a verifier key, only from a note
/// whose signature by that key is valid.
fn held(path: &Path, verifier: Option<&Verifier>) -> Result<Held, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let (checkpoint, signed) = match verifier {
        Some(verifier) => (verifier.open(&text)?, true),
        None => (Checkpoint::parse(&text).ok_or("not a checkpoint")?, false),
    };
    Ok(Held { checkpoint, file: path.to_path_buf(), signed })
}

/// The anchors named with `--anchor` (each must read, and carry a valid signature with
/// `--key`), and those written beside the first file at its rotations (one that does not is
/// skipped, and said: verify then fails only if the log needed it).
fn anchors(args: &VerifyArgs, verifier: Option<&Verifier>) -> Result<Vec<Held>, String> {
    let mut anchors = Vec::new();
    for path in args.anchors {
        anchors.push(held(path, verifier).map_err(|e| format!("error: --anchor {}: {e}", path.display()))?);
    }
    let beside = match args.files.first() {
        Some(first) => crate::audit::anchor_files(first)
            .map_err(|e| format!("error: list the anchors beside {}: {e}", first.display()))?,
        None => Vec::new(),
    };
    for path in beside.iter().filter(|p| !args.anchors.contains(p)) {
        match held(path, verifier) {
            Ok(anchor) => anchors.push(anchor),
            Err(e) => eprintln!("note: {}: {e}; not taken as an anchor", path.display()),
        }
    }
    Ok(anchors)
}
