//! `keyward crds`.

use crate::crd;
use std::path::Path;
use std::process::ExitCode;

pub fn crds(write: Option<&Path>) -> ExitCode {
    let mut documents = Vec::new();
    for (plural, definition) in crd::definitions() {
        match crd::definition_yaml(&definition) {
            Ok(yaml) => documents.push((plural, yaml)),
            Err(e) => {
                eprintln!("error: serialize the {plural} CRD: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match write {
        Some(dir) => {
            for (plural, yaml) in documents {
                let path = dir.join(format!("{plural}.yaml"));
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("error: write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        None => {
            let all: Vec<String> = documents.into_iter().map(|(_, y)| y).collect();
            print!("{}", all.join("---\n"));
        }
    }
    ExitCode::SUCCESS
}
