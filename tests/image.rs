//! keyward's OCI image: `scripts/image.sh build` assembles it without a container
//! engine from the Debian packages tools/image/base.lock pins and keyward's binaries, and the
//! release workflow publishes what that one recipe builds.
//!
//! The image here is built from the binaries this test run already has (the debug build of
//! `keyward` and `kubectl-keyward`, `--binaries`), so that no test compiles a release; the
//! recipe is the same one `scripts/image.sh build` runs on release binaries. The tests read the
//! OCI layout on their own (tar, gzip, JSON, ELF) rather than through the script's code, and run
//! `keyward` from the image's root filesystem with chroot (as root, which CI is).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const NONROOT: u64 = 65532;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the `keyward` and `kubectl-keyward` cargo built for this test run.
fn binaries() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_keyward")).parent().expect("binary directory").to_path_buf()
}

/// A binary as the image ships it from this test run: `objcopy --strip-debug` (binutils,
/// which cargo's linker comes with), as `--strip-debug` asks of the script.
fn stripped(name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let out = dir.path().join(name);
    let status = Command::new("objcopy").arg("--strip-debug").arg(binaries().join(name)).arg(&out).status();
    assert!(status.expect("objcopy (binutils)").success(), "objcopy --strip-debug {name}");
    std::fs::read(out).expect("the stripped binary")
}

/// A program on the test's PATH, for commands run with a cleared environment.
fn on_path(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no {name} on PATH"))
}

/// What `scripts/image.sh build` printed on stdout.
struct Built {
    /// `KEYWARD_IMAGE`: `<tag>@sha256:<manifest digest>`.
    image: String,
    tar: PathBuf,
}

fn build(out: &Path, tag: Option<&str>) -> Built {
    let mut command = Command::new("bash");
    // A debug build's binaries are 380 MB each, almost all debug information; without it,
    // 85 MB, and three builds and their checks take seconds. The dynamic section stays.
    command.arg(repo().join("scripts/image.sh")).arg("build").arg("--binaries").arg(binaries()).arg("--strip-debug");
    command.arg("--out").arg(out);
    if let Some(tag) = tag {
        command.args(["--tag", tag]);
    }
    let output = command.output().expect("run scripts/image.sh build");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/image.sh build failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= on stdout:\n{stdout}"))
            .to_string()
    };
    // stdout is for the KEY=VALUE lines only: the tests and the node scripts read it.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    Built { image: value("KEYWARD_IMAGE"), tar: PathBuf::from(value("KEYWARD_IMAGE_TAR")) }
}

/// One image built once for the tests of this binary, kept under the test target directory.
fn image() -> &'static Built {
    static IMAGE: OnceLock<Built> = OnceLock::new();
    IMAGE.get_or_init(|| build(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-a"), None))
}

/// That image's layout, read and checked once.
fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| read_layout(&image().tar))
}

/// Every entry of a tar stream: path (without a leading `./`) to entry.
#[derive(Clone, Debug)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
}

fn read_tar(reader: impl Read) -> Vec<(String, Entry)> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path =
            entry.path().expect("path").to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        let header = entry.header().clone();
        let link = entry.link_name().expect("link name").map(|l| l.to_string_lossy().to_string());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        entries.push((
            path,
            Entry {
                kind: header.entry_type(),
                mode: header.mode().expect("mode"),
                uid: header.uid().expect("uid"),
                gid: header.gid().expect("gid"),
                mtime: header.mtime().expect("mtime"),
                link,
                data,
            },
        ));
    }
    entries
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An OCI image layout read from its tarball, each reference checked on the way: index →
/// manifest → config and layers, every blob named by its SHA-256 and as long as its
/// descriptor says, every layer's uncompressed digest the config's `diff_id`.
struct Layout {
    files: BTreeMap<String, Vec<u8>>,
    index: Value,
    manifest_digest: String,
    manifest: Value,
    config: Value,
    /// The layers, uncompressed, bottom first.
    layers: Vec<Vec<u8>>,
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
    let digest = descriptor["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let data = files.get(&format!("blobs/sha256/{hex}")).unwrap_or_else(|| panic!("no blob {digest}"));
    assert_eq!(sha256(data), digest, "blob content and name differ");
    assert_eq!(descriptor["size"].as_u64(), Some(data.len() as u64), "size of {digest}");
    data
}

fn read_layout(tar_path: &Path) -> Layout {
    let file = std::fs::File::open(tar_path).expect("open the image tarball");
    let files: BTreeMap<String, Vec<u8>> = read_tar(file)
        .into_iter()
        .filter(|(_, e)| e.kind == tar::EntryType::Regular)
        .map(|(p, e)| (p, e.data))
        .collect();
    let json = |name: &str| -> Value {
        serde_json::from_slice(files.get(name).unwrap_or_else(|| panic!("no {name}"))).expect("JSON")
    };
    assert_eq!(json("oci-layout"), json!({"imageLayoutVersion": "1.0.0"}));
    let index = json("index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let descriptor = &manifests[0];
    assert_eq!(descriptor["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let manifest: Value = serde_json::from_slice(blob(&files, descriptor)).expect("manifest JSON");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let config: Value = serde_json::from_slice(blob(&files, &manifest["config"])).expect("config JSON");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    let layer_descriptors = manifest["layers"].as_array().expect("layers");
    assert_eq!(layer_descriptors.len(), diff_ids.len());
    let mut layers = Vec::new();
    for (descriptor, diff_id) in layer_descriptors.iter().zip(diff_ids) {
        assert_eq!(descriptor["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(blob(&files, descriptor)).read_to_end(&mut raw).expect("gunzip a layer");
        assert_eq!(diff_id.as_str(), Some(sha256(&raw).as_str()), "diff_id of {}", descriptor["digest"]);
        layers.push(raw);
    }
    // Nothing in the layout that nothing refers to.
    let referenced: BTreeSet<String> = layer_descriptors
        .iter()
        .chain([&manifest["config"], descriptor])
        .map(|d| format!("blobs/sha256/{}", d["digest"].as_str().expect("digest").trim_start_matches("sha256:")))
        .collect();
    let blobs: BTreeSet<String> = files.keys().filter(|p| p.starts_with("blobs/")).cloned().collect();
    assert_eq!(blobs, referenced, "blobs that nothing references, or references without a blob");
    let manifest_digest = descriptor["digest"].as_str().expect("digest").to_string();
    Layout { files, index, manifest_digest, manifest, config, layers }
}

/// The root filesystem the layers make, path to entry (later layers win; the recipe writes no
/// whiteouts, and a whiteout here would be a bug).
fn rootfs(layout: &Layout) -> BTreeMap<String, Entry> {
    let mut root = BTreeMap::new();
    for layer in &layout.layers {
        let entries = read_tar(layer.as_slice());
        let paths: Vec<&String> = entries.iter().map(|(p, _)| p).collect();
        let mut sorted = paths.clone();
        sorted.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(paths, sorted, "a layer's entries are not in path order");
        for (path, entry) in entries {
            assert!(!path.rsplit('/').next().unwrap_or_default().starts_with(".wh."), "whiteout {path}");
            root.insert(path, entry);
        }
    }
    root
}

/// A path inside the root filesystem with its symbolic links followed (absolute ones from the
/// image's root): the regular file it names, if any.
fn resolve<'a>(root: &'a BTreeMap<String, Entry>, path: &str) -> Option<(String, &'a Entry)> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = path.split('/').rev().filter(|p| !p.is_empty()).map(String::from).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => parts.push(part),
        }
        let here = parts.join("/");
        let entry = root.get(&here)?;
        if entry.kind == tar::EntryType::Symlink {
            hops += 1;
            assert!(hops < 40, "symlink loop at {path}");
            let target = entry.link.clone().expect("symlink target");
            parts.pop();
            if target.starts_with('/') {
                parts.clear();
            }
            pending.extend(target.split('/').rev().filter(|p| !p.is_empty()).map(String::from));
        }
    }
    let here = parts.join("/");
    root.get(&here).filter(|e| e.kind == tar::EntryType::Regular).map(|e| (here, e))
}

/// The dynamic loader an ELF file names and the libraries it needs (DT_NEEDED).
fn dynamic_needs(elf: &[u8]) -> (Option<String>, Vec<String>) {
    use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(elf).expect("an ELF64 file");
    let endian = file.endian();
    let mut interpreter = None;
    let mut needed = Vec::new();
    for segment in file.elf_program_headers() {
        if let Some(interp) = segment.interpreter(endian, elf).expect("PT_INTERP") {
            interpreter = Some(String::from_utf8_lossy(interp).to_string());
        }
        if let Some(entries) = segment.dynamic(endian, elf).expect("PT_DYNAMIC") {
            let strtab = entries
                .iter()
                .find(|d| d.d_tag(endian) == object::elf::DT_STRTAB)
                .map(|d| d.d_val(endian))
                .expect("DT_STRTAB");
            let strsz = entries
                .iter()
                .find(|d| d.d_tag(endian) == object::elf::DT_STRSZ)
                .map(|d| d.d_val(endian))
                .expect("DT_STRSZ");
            // DT_STRTAB is an address: find the bytes through the segment that loads it.
            let strings = file
                .elf_program_headers()
                .iter()
                .find_map(|s| s.data_range(endian, elf, strtab, strsz).ok().flatten())
                .expect("the dynamic string table");
            for d in entries.iter().filter(|d| d.d_tag(endian) == object::elf::DT_NEEDED) {
                let offset = d.d_val(endian) as usize;
                let end = strings[offset..].iter().position(|b| *b == 0).expect("NUL") + offset;
                needed.push(String::from_utf8_lossy(&strings[offset..end]).to_string());
            }
        }
    }
    (interpreter, needed)
}

fn git(args: &[&str]) -> String {
    let output = Command::new("git").arg("-C").arg(repo()).args(args).output().expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The image's time: the commit's, unless SOURCE_DATE_EPOCH says otherwise (as the script).
fn image_epoch() -> i64 {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch.parse().expect("SOURCE_DATE_EPOCH is a number of seconds"),
        Err(_) => git(&["log", "-1", "--format=%ct", "HEAD"]).parse().expect("commit time"),
    }
}

#[test]
fn building_twice_gives_the_same_image_and_another_tag_shares_its_layers() {
    let first = image();
    let second = build(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-b"), None);
    assert_ne!(first.tar, second.tar);
    assert_eq!(first.image, second.image, "two builds of the same inputs differ");
    let (a, b) = (std::fs::read(&first.tar).expect("first tarball"), std::fs::read(&second.tar).expect("second"));
    assert!(a == b, "same manifest digest, yet the tarballs differ");
    let version = env!("CARGO_PKG_VERSION");
    let (name, digest) = first.image.split_once('@').expect("NAME@DIGEST");
    assert_eq!(name, format!("keyward.local/keyward:{version}"), "the default tag");
    assert_eq!(digest, layout().manifest_digest);

    // The second tag an upgrade test installs: the same layers under a config of its own.
    let upgrade = build(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-c"), Some("keyward.local/keyward:upgrade"));
    let (upgrade_name, upgrade_digest) = upgrade.image.split_once('@').expect("NAME@DIGEST");
    assert_eq!(upgrade_name, "keyward.local/keyward:upgrade");
    assert_ne!(upgrade_digest, digest, "another tag is another image");
    let (before, after) = (layout(), read_layout(&upgrade.tar));
    assert_eq!(before.manifest["layers"], after.manifest["layers"], "the layers do not depend on the tag");
    assert_eq!(after.index["manifests"][0]["annotations"]["io.containerd.image.name"], upgrade_name);
    assert_eq!(after.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "upgrade");
}

#[test]
fn the_layout_is_valid_and_its_config_runs_keyward_as_the_charts_user() {
    let layout = layout();
    let descriptor = &layout.index["manifests"][0];
    let version = env!("CARGO_PKG_VERSION");
    // containerd names the image after the full reference; OCI tools read the tag.
    assert_eq!(descriptor["annotations"]["io.containerd.image.name"], format!("keyward.local/keyward:{version}"));
    assert_eq!(descriptor["annotations"]["org.opencontainers.image.ref.name"], version);
    assert_eq!(descriptor["platform"], json!({"architecture": "amd64", "os": "linux"}));
    assert!(layout.files.contains_key("index.json") && layout.files.contains_key("oci-layout"));

    let config = &layout.config;
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    // The chart's podSecurityContext runs the pod as this user and group.
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("charts/keyward/values.yaml")).expect("values.yaml"))
            .expect("values.yaml is YAML");
    let pod = &values["podSecurityContext"];
    assert_eq!((pod["runAsUser"].as_u64(), pod["runAsGroup"].as_u64()), (Some(NONROOT), Some(NONROOT)));
    assert_eq!(config["config"]["User"], format!("{NONROOT}:{NONROOT}"));
    // The chart passes the subcommand and its flags as args (`run --listen=…`).
    assert_eq!(config["config"]["Entrypoint"], json!(["/usr/local/bin/keyward"]));
    assert!(config["config"]["Cmd"].is_null(), "no default arguments to mix with the chart's");

    // Labels: what Cargo.toml and git say, the time of the commit — never the time of the build.
    let head = git(&["rev-parse", "HEAD"]);
    let created =
        chrono::DateTime::from_timestamp(image_epoch(), 0).expect("a time").format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "keyward");
    assert_eq!(labels["org.opencontainers.image.description"], env!("CARGO_PKG_DESCRIPTION"));
    assert_eq!(labels["org.opencontainers.image.licenses"], env!("CARGO_PKG_LICENSE"));
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/keyward/keyward");
    let revision = labels["org.opencontainers.image.revision"].as_str().expect("revision");
    assert!(revision == head || revision == format!("{head}-dirty"), "revision {revision}, HEAD {head}");
    assert_eq!(labels["org.opencontainers.image.created"], created.as_str());
    assert_eq!(config["created"], created.as_str());
    assert_eq!(layout.manifest["annotations"]["org.opencontainers.image.created"], created.as_str());
}

#[test]
fn the_rootfs_holds_keyward_and_every_library_it_needs_and_no_shell() {
    let layout = layout();
    let root = rootfs(layout);
    let epoch = u64::try_from(image_epoch()).expect("a time after 1970");

    for name in ["keyward", "kubectl-keyward"] {
        let entry = &root[&format!("usr/local/bin/{name}")];
        assert_eq!(entry.mode, 0o755, "{name}");
        assert!(entry.data == stripped(name), "usr/local/bin/{name} is not the binary given to the build");
    }
    // The dynamic loader and every library keyward needs, and every library those need.
    let keyward = &root["usr/local/bin/keyward"].data;
    let (interpreter, mut wanted) = dynamic_needs(keyward);
    let interpreter = interpreter.expect("keyward is dynamically linked (glibc)");
    resolve(&root, &interpreter).unwrap_or_else(|| panic!("no dynamic loader {interpreter} in the image"));
    assert!(wanted.iter().any(|l| l.starts_with("libc.so")), "{wanted:?}");
    let mut seen = BTreeSet::new();
    while let Some(library) = wanted.pop() {
        if !seen.insert(library.clone()) {
            continue;
        }
        let found = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"]
            .iter()
            .find_map(|dir| resolve(&root, &format!("{dir}/{library}")));
        let (_, entry) = found.unwrap_or_else(|| panic!("keyward needs {library}, which the image lacks"));
        wanted.extend(dynamic_needs(&entry.data).1);
    }

    // CA certificates for the providers' and the API server's TLS, and the non-root user.
    let bundle = &root["etc/ssl/certs/ca-certificates.crt"].data;
    let certificates = String::from_utf8_lossy(bundle).matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certificates > 100, "{certificates} certificates in the bundle");
    let passwd = String::from_utf8_lossy(&root["etc/passwd"].data).to_string();
    assert!(passwd.lines().any(|l| l.starts_with(&format!("nonroot:x:{NONROOT}:{NONROOT}:"))), "{passwd}");
    let group = String::from_utf8_lossy(&root["etc/group"].data).to_string();
    assert!(group.lines().any(|l| l == format!("nonroot:x:{NONROOT}:")), "{group}");
    assert_eq!(root["tmp"].mode, 0o1777);

    // No shell, no package manager, no programs but keyward's; no manuals or locales.
    for path in root.keys() {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
        let is_program_dir = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/libexec"].contains(&dir);
        assert!(!is_program_dir, "{path}: the image holds programs besides keyward's");
        for unwanted in ["usr/share/man/", "usr/share/locale/", "usr/share/info/", "/gconv/", "var/lib/dpkg/info/"] {
            assert!(!path.contains(unwanted), "{path}");
        }
    }
    for shell in ["bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/apt-get", "usr/bin/dpkg"] {
        assert!(resolve(&root, shell).is_none() && !root.contains_key(shell), "{shell} is in the image");
    }
    // Each package's licence stays with its files; the packages are listed where scanners look.
    for package in ["libc6", "libgcc-s1", "ca-certificates"] {
        resolve(&root, &format!("usr/share/doc/{package}/copyright")).unwrap_or_else(|| panic!("{package} copyright"));
        let status = String::from_utf8_lossy(&root[&format!("var/lib/dpkg/status.d/{package}")].data).to_string();
        assert!(status.starts_with(&format!("Package: {package}\n")), "{status}");
    }

    // Fixed metadata: owned by root except the non-root user's home, the commit's time.
    for (path, entry) in &root {
        assert_eq!(entry.mtime, epoch, "{path}: mtime is not the commit's time");
        let owner = if path == "home/nonroot" { NONROOT } else { 0 };
        assert_eq!((entry.uid, entry.gid), (owner, owner), "{path}");
    }
}

#[test]
fn keyward_runs_from_the_images_root_filesystem_as_the_non_root_user() {
    let layout = layout();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    for layer in &layout.layers {
        let mut archive = tar::Archive::new(layer.as_slice());
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.unpack(dir.path()).expect("unpack a layer");
    }
    // chroot: only the image's files are there, so the run fails if the base lacks anything
    // the binary loads at start. As the chart's user, who owns nothing but its home.
    let run = |program: &str, args: &[&str]| {
        let output = Command::new(on_path("chroot"))
            .arg(format!("--userspec={NONROOT}:{NONROOT}"))
            .arg(dir.path())
            .arg(program)
            .args(args)
            // Nothing from the test's environment: what keyward finds is the image's alone.
            .env_clear()
            .output()
            .expect("chroot (the tests run as root)");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{program} {args:?} in the image's root filesystem failed: {text}");
        text
    };
    let version = run("/usr/local/bin/keyward", &["--version"]);
    assert_eq!(version.trim(), format!("keyward {}", env!("CARGO_PKG_VERSION")));
    let plugin = run("/usr/local/bin/kubectl-keyward", &["--help"]);
    assert!(plugin.contains("status"), "{plugin}");
    // The CRDs come from the binary alone: a real subcommand, not only clap's.
    let crds = run("/usr/local/bin/keyward", &["crds"]);
    assert!(crds.contains("kind: CustomResourceDefinition"), "{}", &crds[..crds.len().min(400)]);

    // And without the base, the same binary cannot start: the run above proves the base.
    let bare = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    std::fs::create_dir_all(bare.path().join("usr/local/bin")).expect("mkdir");
    std::fs::write(bare.path().join("usr/local/bin/keyward"), stripped("keyward")).expect("write keyward");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(bare.path().join("usr/local/bin/keyward"), mode).expect("chmod");
    let status = Command::new("chroot").arg(bare.path()).arg("/usr/local/bin/keyward").arg("--version").output();
    assert!(!status.expect("chroot").status.success(), "keyward started without a C runtime");
}

// ---------------------------------------------------------------------------------------
// One recipe

#[test]
fn the_release_workflow_publishes_what_scripts_image_sh_builds() {
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yaml")).expect("release.yaml");
    let release: Value = serde_yaml::from_str(&text).expect("YAML");
    let steps = release["jobs"]["release"]["steps"].as_array().expect("steps");
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    for builder in ["docker/build-push-action@", "docker/setup-buildx-action@"] {
        assert!(!uses.iter().any(|u| u.starts_with(builder)), "the workflow builds an image with {builder}");
    }
    let run = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .and_then(|s| s["run"].as_str())
            .unwrap_or_else(|| panic!("no step with id {id} that runs a script"))
            .to_string()
    };
    // Each architecture is built by the script (arm64 cross-compiled on the runner) and the
    // published index is made of exactly those manifests.
    let build = run("build");
    assert!(build.contains("scripts/image.sh build"), "{build}");
    for target in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        assert!(text.contains(target), "the release does not build {target}");
    }
    assert!(build.contains("crane push") && build.contains("crane index append"), "{build}");
    assert!(build.contains("digest=") && build.contains("GITHUB_OUTPUT"), "{build}");
    // Nothing else in the repository describes an image.
    for file in ["Dockerfile", "Containerfile", ".dockerignore"] {
        assert!(!repo().join(file).exists(), "{file}: a second image recipe beside scripts/image.sh");
    }
}

/// The `[[bin]]` names in Cargo.toml, read line by line (no TOML parser in the tree).
fn declared_binaries() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let mut bins = BTreeSet::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name = ") {
            bins.insert(value.trim_matches('"').to_string());
        }
    }
    bins
}

#[test]
fn the_image_ships_every_binary_cargo_toml_declares() {
    // Cargo.toml's [[bin]] targets are the programs the image must hold: a new binary fails
    // here until scripts/image.sh builds and ships it.
    let declared = declared_binaries();
    assert!(declared.contains("keyward") && declared.contains("kubectl-keyward"), "{declared:?}");
    let root = rootfs(layout());
    let shipped: BTreeSet<String> = root
        .keys()
        .filter_map(|p| p.strip_prefix("usr/local/bin/"))
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(shipped, declared);
    let script = std::fs::read_to_string(repo().join("scripts/image.sh")).expect("scripts/image.sh");
    for bin in &declared {
        assert!(script.contains(&format!("--bin {bin}")), "scripts/image.sh does not build {bin}");
    }
}

#[test]
fn a_lock_entry_debian_no_longer_serves_fails_the_build_and_says_how_to_refresh() {
    // A copy of the repository's script and lock whose libc6 entry names a version Debian
    // never published: the build must stop with the refresh command, not take another libc.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    for file in ["scripts/image.sh", "tools/image/oci.py", "Cargo.toml"] {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(repo().join(file), to).expect("copy");
    }
    let lock = std::fs::read_to_string(repo().join("tools/image/base.lock")).expect("base.lock");
    let stale: String = lock
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            if fields.len() == 5 && fields[0] == "amd64" && fields[1] == "libc6" {
                format!("amd64 libc6 2.36-9+deb12u0keyward {} {}\n", "0".repeat(64), fields[4])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(stale, lock);
    std::fs::write(dir.path().join("tools/image/base.lock"), stale).expect("write the stale lock");
    for args in [
        &["init", "-q"][..],
        &["-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "t"],
    ] {
        assert!(Command::new("git").arg("-C").arg(dir.path()).args(args).status().expect("git").success());
    }
    let output = Command::new("bash")
        .arg(dir.path().join("scripts/image.sh"))
        .args(["build", "--binaries"])
        .arg(binaries())
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("run scripts/image.sh build");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a build from a stale lock succeeded");
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        stderr.contains("Debian no longer serves libc6 2.36-9+deb12u0keyward for amd64")
            && stderr.contains("scripts/image.sh lock"),
        "{stderr}"
    );
}
