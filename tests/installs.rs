//! What a fresh machine installs is what the repository locks: privacyIDEA's venv
//! comes from `tools/privacyidea/requirements.lock` alone, is rebuilt when that lock changes,
//! and every other install the scripts make names an exact version.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lock_path() -> PathBuf {
    repo().join("tools/privacyidea/requirements.lock")
}

/// `name==version` of every requirement in a pip-compile lock, with the number of hashes each
/// carries; names normalised as PEP 503 does.
fn locked_requirements(lock: &str) -> BTreeMap<String, (String, usize)> {
    let mut found: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lock.lines() {
        let trimmed = line.trim();
        if let Some(hash) = trimmed.strip_prefix("--hash=sha256:") {
            let name = current.as_ref().unwrap_or_else(|| panic!("a hash before any requirement: {line}"));
            assert_eq!(hash.trim_end_matches(" \\").len(), 64, "not a SHA-256: {line}");
            found.get_mut(name).expect("requirement recorded").1 += 1;
        } else if !line.starts_with([' ', '#']) && !trimmed.is_empty() {
            let requirement = trimmed.trim_end_matches('\\').trim();
            let (name, version) = requirement.split_once("==").unwrap_or_else(|| panic!("not pinned with ==: {line}"));
            let name = normalise(name);
            current = Some(name.clone());
            found.insert(name, (version.to_string(), 0));
        }
    }
    found
}

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn install(venv: &Path) -> Output {
    let output = Command::new("bash")
        .arg(repo().join("scripts/privacyidea.sh"))
        .arg("install")
        .env("KEYWARD_PI_VENV", venv)
        .output()
        .expect("run scripts/privacyidea.sh install");
    assert!(
        output.status.success(),
        "scripts/privacyidea.sh install into {} failed:\n{}",
        venv.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every distribution in the venv with its version, and the resolver types privacyIDEA
/// offers (a resolver module that fails to import is silently left out of that list).
fn inspect(venv: &Path) -> (BTreeMap<String, String>, Vec<String>) {
    let script = r#"
import json
from importlib.metadata import distributions
from privacyidea.lib.config import get_resolver_class_dict
print(json.dumps({
    "installed": {d.metadata["Name"]: d.version for d in distributions()},
    "resolver_types": sorted(set(get_resolver_class_dict()[1].values())),
}))
"#;
    let output = Command::new(venv.join("bin/python")).arg("-c").arg(script).output().expect("run the venv's python");
    assert!(output.status.success(), "inspecting the venv failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON from the venv");
    let installed = value["installed"]
        .as_object()
        .expect("installed")
        .iter()
        .map(|(name, version)| (normalise(name), version.as_str().expect("version").to_string()))
        .collect();
    let types = value["resolver_types"]
        .as_array()
        .expect("resolver_types")
        .iter()
        .map(|t| t.as_str().expect("type").to_string())
        .collect();
    (installed, types)
}

fn stamp(venv: &Path) -> String {
    std::fs::read_to_string(venv.join(".keyward-lock-sha256")).expect("the venv records its lock").trim().to_string()
}

#[test]
fn privacyidea_venv_holds_exactly_the_lock_and_is_rebuilt_when_the_lock_changes() {
    let lock_text = std::fs::read_to_string(lock_path()).expect("read the lock");
    let locked = locked_requirements(&lock_text);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let venv = tmp.path().join("venv");

    // From scratch, as on a new machine.
    install(&venv);
    let (installed, resolver_types) = inspect(&venv);
    for kind in ["sqlresolver", "passwdresolver", "ldapresolver"] {
        assert!(resolver_types.iter().any(|t| t == kind), "privacyIDEA offers no {kind}: {resolver_types:?}");
    }
    // The venv's own pip and setuptools come with the interpreter; everything else is the lock.
    let beyond_lock: BTreeMap<_, _> = installed
        .iter()
        .filter(|(name, _)| !locked.contains_key(*name) && !["pip", "setuptools"].contains(&name.as_str()))
        .collect();
    assert!(beyond_lock.is_empty(), "installed but not locked: {beyond_lock:?}");
    for (name, (version, _)) in &locked {
        assert_eq!(installed.get(name), Some(version), "{name} is locked at {version}");
    }
    assert_eq!(stamp(&venv), hex::encode(Sha256::digest(lock_text.as_bytes())));

    // A venv that is right is reused, untouched.
    let kept = venv.join("kept-by-reuse");
    std::fs::write(&kept, "").expect("mark the venv");
    let again = install(&venv);
    assert!(String::from_utf8_lossy(&again.stderr).contains("reusing venv"), "a second install rebuilt a good venv");
    assert!(kept.exists(), "a good venv was rebuilt");

    // A venv built from another lock (an old cache) is rebuilt from scratch: nothing it held
    // survives, and it records the current lock.
    std::fs::write(venv.join(".keyward-lock-sha256"), "0".repeat(64)).expect("age the venv");
    install(&venv);
    assert!(!kept.exists(), "a venv from another lock was reused");
    assert_eq!(stamp(&venv), hex::encode(Sha256::digest(lock_text.as_bytes())));
}

#[test]
fn the_lock_pins_every_package_with_hashes_for_the_python_the_script_names() {
    let lock_text = std::fs::read_to_string(lock_path()).expect("read the lock");
    let locked = locked_requirements(&lock_text);
    assert!(locked.len() > 30, "privacyIDEA's closure is larger than {}", locked.len());
    for (name, (version, hashes)) in &locked {
        assert!(*hashes > 0, "{name}=={version} has no hash");
    }
    assert_eq!(locked.get("privacyidea").map(|(v, _)| v.as_str()), Some("3.14"));
    // passlib 1.9 dropped what privacyIDEA 3.14's SQL and passwd resolvers import.
    assert_eq!(locked.get("passlib").map(|(v, _)| v.as_str()), Some("1.7.4"));

    let script = std::fs::read_to_string(repo().join("scripts/privacyidea.sh")).expect("read the script");
    let python = script
        .lines()
        .find_map(|l| l.strip_prefix("LOCK_PYTHON="))
        .expect("scripts/privacyidea.sh names the lock's Python");
    assert!(
        lock_text.contains(&format!("autogenerated by pip-compile with Python {python}\n")),
        "the lock is not compiled for Python {python}"
    );
    // Nothing in the lock points pip at a source of packages other than PyPI.
    for option in ["--find-links", "--index-url", "--extra-index-url", "-e "] {
        assert!(!lock_text.contains(option), "the lock carries {option}");
    }
}

/// The logical lines of a shell script: continuation lines joined, comments
/// dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let code = line.trim();
        if code.starts_with('#') {
            continue;
        }
        match code.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(code);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// Problems with the installs of one script: each names what would let a registry's new
/// release change what a fresh machine gets.
fn unlocked_installs(file: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for line in logical_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // What a script only says (a progress line naming a command) installs nothing.
        if words.first().is_some_and(|w| ["echo", "log", "printf", "die"].contains(w)) {
            continue;
        }
        let has = |w: &str| words.contains(&w);
        let mut say = |what: &str| problems.push(format!("{file}: {what}: {line}"));
        if has("pip") && has("install") && !(has("--require-hashes") && has("--no-deps")) {
            say("pip install without --require-hashes --no-deps from a lock file");
        }
        if words.windows(2).any(|w| w == ["go", "install"]) {
            let modules: Vec<&&str> = words.iter().filter(|w| w.contains('@')).collect();
            if modules.is_empty() || modules.iter().any(|m| !m.trim_matches('"').contains("@v")) {
                say("go install of a module without an exact @vX.Y.Z");
            }
        }
        if words.iter().any(|w| w.contains("-mod=mod")) {
            say("-mod=mod lets go resolve what go.mod and go.sum do not hold");
        }
        if has("mvn") {
            // `prefix:goal` (dependency:copy) makes Maven take the plugin's newest release.
            let short_goal = words.iter().any(|w| {
                let w = w.trim_matches('"');
                !w.starts_with(['-', '$']) && w.split(':').count() == 2 && w.split(':').all(|p| !p.is_empty())
            });
            if short_goal {
                say("a Maven goal without its plugin's group, artifact and version");
            }
        }
        if words.windows(2).any(|w| w == ["npm", "install"] || w == ["npm", "i"]) {
            say("npm install resolves; use npm ci with a lock file");
        }
        let cargo_resolves = ["build", "test", "bench", "run", "install", "clippy"];
        if words.windows(2).any(|w| w[0] == "cargo" && cargo_resolves.contains(&w[1])) && !has("--locked") {
            say("cargo without --locked");
        }
    }
    // A Maven plugin named in a variable is checked where it is set.
    for line in text.lines() {
        if let Some((_, value)) = line.split_once("_PLUGIN=") {
            let parts: Vec<&str> = value.trim().split(':').collect();
            let versioned = parts.len() == 3 && parts[2].split('.').all(|n| n.parse::<u32>().is_ok());
            if !versioned {
                problems.push(format!("{file}: a Maven plugin without an exact version: {line}"));
            }
        }
    }
    problems
}

fn install_scripts() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scripts"))
        .expect("scripts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.push(repo().join(".ci/run"));
    files.sort();
    files
}

#[test]
fn every_install_the_scripts_make_names_an_exact_version() {
    let mut problems = Vec::new();
    for file in install_scripts() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let name = file.strip_prefix(repo()).expect("in the repository").display().to_string();
        problems.extend(unlocked_installs(&name, &text));
    }
    assert!(problems.is_empty(), "installs that resolve versions on the machine:\n{}", problems.join("\n"));
}

#[test]
fn the_install_check_finds_each_kind_of_unlocked_install() {
    // The check above passes only if it can fail: each line here is one it must refuse.
    let unlocked = [
        r#"python -m pip install -q "privacyidea==3.14""#,
        "go install github.com/rhysd/actionlint/cmd/actionlint@latest",
        "cd tools/kube && GOFLAGS=-mod=mod go build ./...",
        r#"mvn -B -q dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:26.7.4:tar.gz""#,
        "npm install",
        "cargo build --release",
        "PLUGIN_X_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin",
    ];
    for line in unlocked {
        assert_eq!(unlocked_installs("example.sh", line).len(), 1, "not refused: {line}");
    }
    let locked = [
        r#""$VENV/bin/python" -m pip --isolated install -q --require-hashes --no-deps -r "$LOCK""#,
        r#"go install -v -trimpath "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION""#,
        r#"mvn -B -q "$DEPENDENCY_PLUGIN:copy" "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz""#,
        "DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.11.0",
        "cargo build --locked --quiet",
        r#"log "cargo bench --bench plan""#,
    ];
    for line in locked {
        assert_eq!(unlocked_installs("example.sh", line), Vec::<String>::new(), "refused: {line}");
    }
}

/// cargo-deny checks the dependency graph on every test run (licenses, bans,
/// sources; advisories in the release workflow). The repository passes; a crate under a
/// license deny.toml does not allow, or depending on a crate it bans, fails.
#[test]
fn cargo_deny_passes_the_tree_and_refuses_a_license_or_crate_it_does_not_allow() {
    let script = repo().join("scripts/deny.sh");
    let bin = Command::new("bash").arg(&script).arg("bin").output().expect("run scripts/deny.sh bin");
    assert!(bin.status.success(), "{}", String::from_utf8_lossy(&bin.stderr));
    let bin = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
    let check = Command::new("bash").arg(&script).arg("check").output().expect("run scripts/deny.sh check");
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success() && said.contains("bans ok, licenses ok, sources ok"), "{said}");

    // A crate of its own under the GPL, with keyward's deny.toml: refused, naming the license.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src")).expect("src");
    std::fs::write(dir.path().join("src/lib.rs"), "").expect("lib.rs");
    std::fs::copy(repo().join("deny.toml"), dir.path().join("deny.toml")).expect("deny.toml");
    let manifest = "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\nlicense = \"GPL-3.0-only\"\n";
    std::fs::write(dir.path().join("Cargo.toml"), manifest).expect("Cargo.toml");
    let lock = Command::new("cargo")
        .args(["generate-lockfile", "--offline", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .output()
        .expect("cargo generate-lockfile");
    assert!(lock.status.success(), "{}", String::from_utf8_lossy(&lock.stderr));
    let refused = Command::new(&bin)
        .arg("--manifest-path")
        .arg(dir.path().join("Cargo.toml"))
        .args(["--locked", "check", "licenses"])
        .current_dir(dir.path())
        .output()
        .expect("run cargo-deny");
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(!refused.status.success(), "a GPL crate passed: {said}");
    assert!(said.contains("GPL-3.0-only") && said.contains("rejected"), "{said}");
}

/// `NAME=VALUE` lines of tools/versions.env.
fn pinned_versions() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("tools/versions.env")).expect("read tools/versions.env");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_go_module_under_tools_builds_the_version_tools_versions_env_names() {
    let versions = pinned_versions();
    // (wrapper module, the module it builds, its variable in tools/versions.env)
    let wrappers = [
        ("kube", "k8s.io/kubernetes", "KUBE_VERSION"),
        ("etcd", "go.etcd.io/etcd/server/v3", "ETCD_VERSION"),
        ("containerd", "github.com/containerd/containerd/v2", "CONTAINERD_VERSION"),
        ("runc", "github.com/opencontainers/runc", "RUNC_VERSION"),
        ("cni", "github.com/containernetworking/plugins", "CNI_PLUGINS_VERSION"),
        ("crictl", "sigs.k8s.io/cri-tools", "CRICTL_VERSION"),
    ];
    for (dir, module, variable) in wrappers {
        let version = versions.get(variable).unwrap_or_else(|| panic!("tools/versions.env has no {variable}"));
        let go_mod = std::fs::read_to_string(repo().join(format!("tools/{dir}/go.mod"))).expect("read go.mod");
        let wanted = format!("v{version}");
        let required = go_mod
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == [module, wanted.as_str()]));
        assert!(required, "tools/{dir}/go.mod does not require {module} v{version}");
        // The sums are there, so -mod=readonly builds resolve nothing on the machine.
        let go_sum = std::fs::read_to_string(repo().join(format!("tools/{dir}/go.sum"))).expect("read go.sum");
        assert!(go_sum.contains(&format!("{module} v{version} h1:")), "tools/{dir}/go.sum lacks {module} v{version}");
    }
    // The node's Kubernetes commands come from the same module and replace block as the
    // apiserver's: tools/kube names them all as tools.
    let kube = std::fs::read_to_string(repo().join("tools/kube/go.mod")).expect("read tools/kube/go.mod");
    for command in ["kube-apiserver", "kubectl", "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"] {
        assert!(
            kube.contains(&format!("\tk8s.io/kubernetes/cmd/{command}\n")),
            "tools/kube/go.mod has no tool {command}"
        );
    }
}
