//! Finding (and if needed building) the executables the harness runs.
//!
//! - The Kubernetes binaries come from `tests/testenv/k8s/build.sh`, which builds them once
//!   into a cache outside the clone and afterwards only prints where they are.
//! - The supervisor is this crate's `metallb-testenv` binary. Tests of other crates cannot
//!   use `CARGO_BIN_EXE_*`, so it is looked up in this order:
//!   1. `$METALLB_TESTENV_BIN`;
//!   2. the running executable, when it is `metallb-testenv` itself;
//!   3. `metallb-testenv` in the cargo target directory of the running test (`cargo test
//!      --workspace` builds it), used only if its build id matches this library's;
//!   4. `cargo build --bin metallb-testenv` of this crate, run once per process.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tracing::info;

use crate::error::{Error, Result};

/// The build recipe, located through this crate's source directory so it works from any
/// crate's tests.
pub const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/build.sh");
/// Identifies the sources the library was built from; see `build.rs`.
pub const BUILD_ID: &str = env!("METALLB_TESTENV_BUILD_ID");
/// Environment variable naming a `metallb-testenv` binary to use as the supervisor.
pub const SUPERVISOR_ENV: &str = "METALLB_TESTENV_BIN";
/// Name of this crate's binary.
const SUPERVISOR_NAME: &str = "metallb-testenv";
/// Lines of a failed command's output quoted in an error.
const TAIL_LINES: usize = 30;

/// Runs the build script (a no-op when the cache is warm) and returns the bin directory.
///
/// `with_controller_manager` also builds kube-controller-manager. Progress goes to stderr so a
/// person watching a first, slow test run sees why it waits.
pub fn build_k8s(with_controller_manager: bool) -> Result<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(BUILD_SCRIPT);
    if with_controller_manager {
        cmd.arg("--with-controller-manager");
    }
    let build_err = |detail: String| Error::Build {
        script: PathBuf::from(BUILD_SCRIPT),
        detail,
    };
    let (status, stdout, stderr_tail) = run_forwarding_stderr(&mut cmd).map_err(build_err)?;
    if !status.success() {
        return Err(build_err(format!("{status}; last output:\n{stderr_tail}")));
    }
    let dir = stdout.lines().last().map(PathBuf::from).unwrap_or_default();
    for name in ["etcd", "kube-apiserver", "kubectl"] {
        if !dir.join(name).is_file() {
            return Err(build_err(format!(
                "it did not produce {}",
                dir.join(name).display()
            )));
        }
    }
    Ok(dir)
}

/// [`build_k8s`] without kube-controller-manager, once per process.
pub(crate) fn k8s_bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        build_k8s(false).map_err(|e| match e {
            Error::Build { detail, .. } => detail,
            other => other.to_string(),
        })
    })
    .clone()
    .map_err(|detail| Error::Build {
        script: PathBuf::from(BUILD_SCRIPT),
        detail,
    })
}

/// The `metallb-testenv` binary to run as the supervisor, found or built once per process.
pub(crate) fn supervisor_exe() -> Result<PathBuf> {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(find_or_build_supervisor)
        .clone()
        .map_err(Error::SupervisorBinary)
}

fn find_or_build_supervisor() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(SUPERVISOR_ENV) {
        return Ok(PathBuf::from(path));
    }
    let current =
        std::env::current_exe().map_err(|e| format!("locating the running executable: {e}"))?;
    if current.file_name().is_some_and(|n| n == SUPERVISOR_NAME) {
        return Ok(current);
    }
    // A test executable lives in <target>/<profile>/deps/; binaries one level up.
    if let Some(profile_dir) = current.parent().and_then(Path::parent) {
        let sibling = profile_dir.join(SUPERVISOR_NAME);
        if build_id_of(&sibling).as_deref() == Some(BUILD_ID) {
            return Ok(sibling);
        }
    }
    cargo_build_supervisor()
}

fn build_id_of(exe: &Path) -> Option<String> {
    let output = Command::new(exe).arg("build-id").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn cargo_build_supervisor() -> Result<PathBuf, String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    info!("building the metallb-testenv supervisor with cargo");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--manifest-path",
        manifest,
        "--bin",
        SUPERVISOR_NAME,
    ])
    .arg("--message-format=json-render-diagnostics");
    let fail = |detail: String| format!("`cargo build --bin {SUPERVISOR_NAME}` failed: {detail}");
    let (status, stdout, stderr_tail) = run_forwarding_stderr(&mut cmd).map_err(fail)?;
    if !status.success() {
        return Err(fail(format!("{status}:\n{stderr_tail}")));
    }
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact" && msg["target"]["name"] == SUPERVISOR_NAME
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| fail("it reported no metallb-testenv executable".into()))
}

/// Runs `cmd`, copying its stderr to ours as it comes; returns the status, the whole stdout
/// and the last lines of stderr.
pub(crate) fn run_forwarding_stderr(
    cmd: &mut Command,
) -> std::result::Result<(std::process::ExitStatus, String, String), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let forward = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::io::Result::ok)
        {
            // Straight to fd 2: libtest captures eprintln!, and a slow first build should
            // show its progress.
            let _ = writeln!(std::io::stderr(), "{line}");
            tail.push(line);
            if tail.len() > TAIL_LINES {
                tail.remove(0);
            }
        }
        tail.join("\n")
    });
    let mut stdout = String::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {program}: {e}"))?;
    let tail = forward.join().unwrap_or_default();
    read.map_err(|e| format!("reading the output of {program}: {e}"))?;
    Ok((status, stdout, tail))
}
