//! Where an object came from, and what is wrong with it.

use std::fmt;
use std::path::PathBuf;

/// Where a document (or a field in it) stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An object read from a manifest file, with the line where its document starts.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    pub object: T,
    pub source: Source,
}

/// Something wrong in the manifests, at a file and line.
///
/// `line` is 1-based; `0` means the problem concerns the file as a whole (it does not exist or
/// cannot be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub severity: Severity,
}

/// Whether a problem stops `plan` and `apply`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Severity {
    /// The manifests cannot be trusted: nothing is planned or changed.
    #[default]
    Error,
    /// `validate` fails, but `plan`/`apply` go on: the engine handles the situation itself
    /// (an identity conflict leaves that one user alone) and everyone else's revocations
    /// must not wait for it.
    Warning,
    /// Said, and fatal only to `validate --strict`: what a real GitOps tree legitimately
    /// leaves out or leaves to a default (Secrets kept out of Git, `policy.mode` not set).
    Note,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
            Severity::Note => "note: ",
        };
        write!(f, "{}:{}: {prefix}{}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for Problem {}
