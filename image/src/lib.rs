//! Container images without a registry or a daemon: an [`Image`] is a set of files (binaries
//! with the shared libraries `ldd` says they load, plus a few directories) that
//! [`Image::write`] turns into one OCI image layout tar holding one uncompressed layer. The
//! archive imports with `ctr -n k8s.io images import --local FILE` (the local cluster does so
//! on every node) and can be pushed to a registry with any OCI tool (`skopeo copy
//! oci-archive:FILE docker://...`).
//!
//! The output depends only on the files' contents and the settings: owners, modes and times
//! are fixed, so the same binaries give the same image digest.
//!
//! `index.json` names the image twice, as containerd's `io.containerd.image.name` and as
//! `org.opencontainers.image.ref.name`, both the full reference, because `ctr import` takes the
//! former and other OCI tools the latter.

mod error;
mod tar;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

pub use error::{Error, Result};
pub use tar::Tar;

/// Where binaries go inside the image; the image's `PATH` starts with it, so a pod's
/// `command: [metallb-speaker]` finds them.
pub const BIN_DIR: &str = "usr/local/bin";

/// The product image's reference: what the operator's `DEFAULT_OPERAND_IMAGE` and
/// `manifests/install` name (the workspace shares one version).
pub const PRODUCT_REFERENCE: &str =
    concat!("quay.io/metallb-rs/metallb-rs:", env!("CARGO_PKG_VERSION"));
/// The binaries of the product image, found by name in a cargo target directory.
pub const PRODUCT_BINARIES: [&str; 4] = [
    "metallb-operator",
    "metallb-controller",
    "metallb-speaker",
    "metallb-gather",
];
/// Where must-gather images keep the collection (`oc adm must-gather` runs `/usr/bin/gather`);
/// in the product image a link to `metallb-gather`.
pub const GATHER_PATH: &str = "usr/bin/gather";
/// The must-gather image's reference.
pub const MUST_GATHER_REFERENCE: &str = concat!(
    "quay.io/metallb-rs/metallb-rs-must-gather:",
    env!("CARGO_PKG_VERSION")
);
/// What `oc adm must-gather` runs in the image besides `/usr/bin/gather`: its pod's command
/// is `/bin/bash -c` with a disk-usage watchdog (`df`, `awk`, `sed`, `sleep`) and `sync`, its
/// copy container sleeps, and `oc rsync` falls back to `tar` in it. Found on the building
/// machine's `PATH`, placed in `/usr/bin` with the libraries they load.
pub const MUST_GATHER_TOOLS: [&str; 7] = ["bash", "df", "awk", "sed", "sleep", "sync", "tar"];
/// The product image's default user: the operator and controller pods say `runAsNonRoot`
/// without a uid; the speaker pod asks for root itself, for its capabilities.
pub const PRODUCT_USER: &str = "65532:65532";
/// The sandbox image the local cluster's containerd pins, so it is never pulled.
pub const PAUSE_REFERENCE: &str = "localhost/metallb-rs/pause:1";

const PATH_ENV: &str = "PATH=/usr/local/bin:/usr/bin:/bin";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// One entry of the layer.
#[derive(Debug, Clone)]
enum Entry {
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A host file (symbolic links followed) copied with `mode`; with `strip`, without its
    /// debug sections.
    File {
        source: PathBuf,
        mode: u32,
        strip: bool,
    },
}

/// An image to write: its reference and the layer's contents.
#[derive(Debug, Clone)]
pub struct Image {
    reference: String,
    /// Paths inside the image without a leading slash, sorted, so parents come first.
    entries: BTreeMap<String, Entry>,
    entrypoint: Option<Vec<String>>,
    user: Option<String>,
    strip_debug: bool,
}

/// What [`Image::write`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `sha256:<hex>` of the manifest: the image's digest as containerd and registries show it.
    pub manifest_digest: String,
    /// Size of the uncompressed layer in bytes.
    pub layer_size: u64,
}

/// The product image named `reference` holding `binaries` (the [`PRODUCT_BINARIES`]), and
/// [`GATHER_PATH`] when `metallb-gather` is among them. Debug sections are left out (see
/// [`Image::strip_debug`]).
pub fn product(reference: &str, binaries: &[PathBuf]) -> Result<Image> {
    let mut image = Image::new(reference).user(PRODUCT_USER).strip_debug();
    for binary in binaries {
        image = image.binary(binary)?;
        if binary.file_name().is_some_and(|n| n == "metallb-gather") {
            image = image.symlink(GATHER_PATH, &format!("/{BIN_DIR}/metallb-gather"));
        }
    }
    Ok(image)
}

/// The must-gather image named `reference`: `gather` (metallb-gather) as [`GATHER_PATH`] and
/// its entrypoint, and `tools` (name and program: the [`MUST_GATHER_TOOLS`] as
/// [`find_tool`] finds them) as `/usr/bin/<name>`, `bash` also as `/bin/bash`. The product
/// image stays without a shell; this one is only for `oc adm must-gather --image=...`.
pub fn must_gather(reference: &str, gather: &Path, tools: &[(&str, PathBuf)]) -> Result<Image> {
    let mut image = Image::new(reference)
        .user(PRODUCT_USER)
        .entrypoint(vec![format!("/{GATHER_PATH}")])
        .strip_debug()
        .binary_at(GATHER_PATH, gather)?;
    for (name, program) in tools {
        image = image.binary_at(&format!("usr/bin/{name}"), program)?;
        if *name == "bash" {
            image = image.symlink("bin/bash", "/usr/bin/bash");
        }
    }
    Ok(image)
}

/// The [`MUST_GATHER_TOOLS`] as found on this machine.
pub fn must_gather_tools() -> Result<Vec<(&'static str, PathBuf)>> {
    MUST_GATHER_TOOLS
        .iter()
        .map(|name| Ok((*name, find_tool(name)?)))
        .collect()
}

/// `name` on this machine's `PATH` (symbolic links resolved, so `awk` is the real program).
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .and_then(|found| found.canonicalize().ok())
        .ok_or_else(|| Error::NoTool(name.to_owned()))
}

/// The pause image: `binary` (a static program that waits for SIGTERM and reaps children) as
/// the entrypoint.
pub fn pause(reference: &str, binary: &Path) -> Result<Image> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::BadName(binary.to_owned()))?;
    Image::new(reference)
        .entrypoint(vec![format!("/{BIN_DIR}/{name}")])
        .binary(binary)
}

impl Image {
    /// An image named `reference` (e.g. `quay.io/metallb-rs/metallb-rs:0.1.0`) holding only
    /// `/tmp` (mode 1777, for programs that want a scratch directory).
    pub fn new(reference: impl Into<String>) -> Image {
        let mut entries = BTreeMap::new();
        entries.insert("tmp".to_owned(), Entry::Dir { mode: 0o1777 });
        Image {
            reference: reference.into(),
            entries,
            entrypoint: None,
            user: None,
            strip_debug: false,
        }
    }

    /// Binaries added after this call go into the image without their debug sections
    /// (`objcopy --strip-debug`; symbols stay, so backtraces still name functions). A debug
    /// build of the product halves, and a node imports it twice as fast.
    pub fn strip_debug(mut self) -> Image {
        self.strip_debug = true;
        self
    }

    /// The user processes run as unless the pod says otherwise (`uid[:gid]`). A pod with
    /// `runAsNonRoot: true` and no `runAsUser` only starts when this is a non-zero uid.
    pub fn user(mut self, user: impl Into<String>) -> Image {
        self.user = Some(user.into());
        self
    }

    /// The process the image runs when a pod gives no `command`.
    pub fn entrypoint(mut self, argv: Vec<String>) -> Image {
        self.entrypoint = Some(argv);
        self
    }

    /// Adds the executable at `path` as `/usr/local/bin/<its name>`, and every shared library
    /// `ldd` reports for it (the dynamic loader included) at the path `ldd` names, so a
    /// glibc-linked Rust binary runs in an otherwise empty image. A static binary adds itself.
    pub fn binary(self, path: &Path) -> Result<Image> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::BadName(path.to_owned()))?;
        self.binary_at(&format!("{BIN_DIR}/{name}"), path)
    }

    /// Like [`Image::binary`], at `inside` (no leading slash) instead of `/usr/local/bin`.
    pub fn binary_at(mut self, inside: &str, path: &Path) -> Result<Image> {
        let strip = self.strip_debug;
        self.add_file(inside, path, 0o755, strip);
        for lib in shared_libraries(path)? {
            let inside = lib
                .to_str()
                .and_then(|p| p.strip_prefix('/'))
                .ok_or_else(|| Error::BadName(lib.clone()))?
                .to_owned();
            self.add_file(&inside, &lib, 0o755, false);
        }
        Ok(self)
    }

    /// Adds a symbolic link at `inside` (no leading slash) pointing to `target`.
    pub fn symlink(mut self, inside: &str, target: &str) -> Image {
        self.add_entry(
            inside,
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
        self
    }

    fn add_file(&mut self, inside: &str, source: &Path, mode: u32, strip: bool) {
        let entry = Entry::File {
            source: source.to_owned(),
            mode,
            strip,
        };
        self.add_entry(inside, entry);
    }

    /// Adds `entry` at `inside` and the directories above it.
    fn add_entry(&mut self, inside: &str, entry: Entry) {
        let mut parent = Path::new(inside).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir { mode: 0o755 });
            parent = dir.parent();
        }
        self.entries.insert(inside.to_owned(), entry);
    }

    /// Writes the OCI image layout tar to `out` (through a temporary file renamed at the end,
    /// so a reader never sees half an archive).
    pub fn write(&self, out: &Path) -> Result<Written> {
        let dir = out.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let write_err = |source| Error::Read {
            path: out.to_owned(),
            source,
        };

        let mut layer = tempfile::tempfile_in(dir).map_err(write_err)?;
        let layer_blob = {
            let mut hashing = Hashing::new(BufWriter::new(&mut layer));
            let mut tar = Tar::new(&mut hashing);
            self.write_layer(&mut tar, dir)?;
            tar.finish()?;
            hashing.finish()?
        };
        layer.rewind().map_err(Error::Write)?;

        let mut config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Env": [PATH_ENV], "WorkingDir": "/" },
            "rootfs": { "type": "layers", "diff_ids": [layer_blob.digest()] },
        });
        if let Some(argv) = &self.entrypoint {
            config["config"]["Entrypoint"] = json!(argv);
        }
        if let Some(user) = &self.user {
            config["config"]["User"] = json!(user);
        }
        let config = Blob::of(serde_json::to_vec(&config).expect("JSON value"));
        let manifest = Blob::of(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": config.descriptor(CONFIG_MEDIA_TYPE),
                "layers": [layer_blob.descriptor(LAYER_MEDIA_TYPE)],
            }))
            .expect("JSON value"),
        );
        let mut manifest_descriptor = manifest.descriptor(MANIFEST_MEDIA_TYPE);
        manifest_descriptor["annotations"] = json!({
            "io.containerd.image.name": self.reference,
            "org.opencontainers.image.ref.name": self.reference,
        });
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [manifest_descriptor],
        }))
        .expect("JSON value");

        // A temporary name of its own: parallel writers of the same image must not share one.
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(dir)
            .map_err(write_err)?;
        let file = partial.reopen().map_err(write_err)?;
        let mut tar = Tar::new(BufWriter::new(file));
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tar.file("oci-layout", 0o644, layout.len() as u64, &layout[..])?;
        tar.file("index.json", 0o644, index.len() as u64, &index[..])?;
        tar.dir("blobs", 0o755)?;
        tar.dir("blobs/sha256", 0o755)?;
        for blob in [&config, &manifest] {
            tar.file(&blob.path(), 0o644, blob.size, &blob.bytes[..])?;
        }
        tar.file(&layer_blob.path(), 0o644, layer_blob.size, &layer)?;
        tar.finish()?;
        partial.persist(out).map_err(|e| write_err(e.error))?;
        Ok(Written {
            manifest_digest: manifest.digest(),
            layer_size: layer_blob.size,
        })
    }

    /// `scratch`: where stripped copies of binaries are made.
    fn write_layer(&self, tar: &mut Tar<impl Write>, scratch: &Path) -> Result<()> {
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir { mode } => tar.dir(path, *mode)?,
                Entry::Symlink { target } => tar.symlink(path, target)?,
                Entry::File {
                    source,
                    mode,
                    strip,
                } => {
                    let read_err = |source_err| Error::Read {
                        path: source.clone(),
                        source: source_err,
                    };
                    let stripped;
                    let file = if *strip {
                        stripped = strip_debug(source, scratch)?;
                        stripped.reopen().map_err(read_err)?
                    } else {
                        File::open(source).map_err(read_err)?
                    };
                    let size = file.metadata().map_err(read_err)?.len();
                    tar.file(path, *mode, size, file)?;
                }
            }
        }
        Ok(())
    }
}

/// A copy of `binary` without debug sections, in a temporary file under `scratch`.
fn strip_debug(binary: &Path, scratch: &Path) -> Result<tempfile::NamedTempFile> {
    let copy = tempfile::NamedTempFile::new_in(scratch).map_err(Error::Write)?;
    let output = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(copy.path())
        .output()
        .map_err(|e| Error::Strip {
            path: binary.to_owned(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::Strip {
            path: binary.to_owned(),
            reason: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(copy)
}

/// The shared libraries `ldd` lists for `path` (absolute paths; the vDSO has none and is
/// skipped). A static executable has none.
fn shared_libraries(path: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| Error::Ldd {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // glibc's ldd says so (and exits 1) for a static executable.
        if format!("{stdout}{stderr}").contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        return Err(Error::Ldd {
            path: path.to_owned(),
            reason: format!("{}: {}", output.status, stderr.trim()),
        });
    }
    Ok(parse_ldd(&stdout))
}

fn parse_ldd(stdout: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            // `name => /path (0x...)`, or `/path (0x...)` for the loader.
            let target = line.split_once("=>").map_or(line, |(_, t)| t.trim());
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A blob small enough to keep in memory (config, manifest).
struct Blob {
    bytes: Vec<u8>,
    hex: String,
    size: u64,
}

impl Blob {
    fn of(bytes: Vec<u8>) -> Blob {
        Blob {
            hex: hex(&Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            bytes,
        }
    }
}

/// What is known of a blob once written: its digest and size.
struct BlobInfo {
    hex: String,
    size: u64,
}

trait Described {
    fn hex(&self) -> &str;
    fn size(&self) -> u64;
    fn digest(&self) -> String {
        format!("sha256:{}", self.hex())
    }
    fn path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({ "mediaType": media_type, "digest": self.digest(), "size": self.size() })
    }
}

impl Described for Blob {
    fn hex(&self) -> &str {
        &self.hex
    }
    fn size(&self) -> u64 {
        self.size
    }
}

impl Described for BlobInfo {
    fn hex(&self) -> &str {
        &self.hex
    }
    fn size(&self) -> u64 {
        self.size
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(mut self) -> Result<BlobInfo> {
        self.inner.flush().map_err(Error::Write)?;
        Ok(BlobInfo {
            hex: hex(&self.hasher.finalize()),
            size: self.size,
        })
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn the_must_gather_image_holds_gather_and_the_tools_oc_runs_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let gather = dir.path().join("metallb-gather");
        std::fs::write(&gather, b"#!/bin/sh\n").unwrap();
        let image =
            must_gather("example.com/mg:1", &gather, &must_gather_tools().unwrap()).unwrap();
        for path in [
            "usr/bin/gather",
            "bin/bash",
            "usr/bin/bash",
            "usr/bin/awk",
            "usr/bin/tar",
        ] {
            assert!(image.entries.contains_key(path), "{path}");
        }
        assert!(
            matches!(&image.entries["bin/bash"], Entry::Symlink { target } if target == "/usr/bin/bash")
        );
        assert_eq!(image.entrypoint, Some(vec!["/usr/bin/gather".to_owned()]));
    }

    #[test]
    fn same_inputs_same_digest_and_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, b"#!/bin/sh\n").unwrap();
        let image = Image::new("example.com/a:1").binary(&bin).unwrap();
        let keys: Vec<_> = image.entries.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "tmp",
                "usr",
                "usr/local",
                "usr/local/bin",
                "usr/local/bin/tool"
            ]
        );
        let a = image.write(&dir.path().join("a.tar")).unwrap();
        let b = image.write(&dir.path().join("b.tar")).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["a.tar", "b.tar", "tool"],
            "no temporary file is left"
        );
    }
}
