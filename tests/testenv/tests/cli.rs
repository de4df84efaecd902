//! The `metallb-testenv` command: up, kubeconfig, down.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, process_alive, processes_mentioning};

const EXE: &str = env!("CARGO_BIN_EXE_metallb-testenv");

fn testenv(args: &[&str], state: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A state directory whose control plane is stopped even if the test panics. Its name has
/// the harness prefix so `hack/check-leftovers` would report it if the test were killed.
struct State {
    _parent: tempfile::TempDir,
    dir: PathBuf,
}

impl State {
    fn new() -> State {
        let parent = tempfile::Builder::new()
            .prefix("metallb-testenv-cli-")
            .tempdir()
            .unwrap();
        let dir = parent.path().join("state");
        State {
            _parent: parent,
            dir,
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = testenv(&["down"], &self.dir);
    }
}

fn kubectl_readyz(kubeconfig: &str) -> String {
    let bin = metallb_testenv::build_k8s(false).unwrap();
    let out = Command::new(bin.join("kubectl"))
        .args(["--kubeconfig", kubeconfig, "get", "--raw", "/readyz"])
        .output()
        .unwrap();
    text(&out.stdout)
}

#[test]
fn up_prints_an_export_line_and_down_stops_everything_twice_over() {
    let state = State::new();
    let up = testenv(&["up"], &state.dir);
    assert!(up.status.success(), "up failed: {}", text(&up.stderr));
    let kubeconfig = state.dir.join("kubeconfig");
    let stdout = text(&up.stdout);
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );

    let printed = testenv(&["kubeconfig"], &state.dir);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    assert_eq!(text(&printed.stdout).trim(), kubeconfig.to_string_lossy());
    assert_eq!(kubectl_readyz(&kubeconfig.to_string_lossy()), "ok");

    // `up` again reports the running control plane instead of starting a second one.
    let again = testenv(&["up"], &state.dir);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already running"),
        "{}",
        text(&again.stderr)
    );

    let needle = state.dir.to_string_lossy().into_owned();
    assert_eq!(
        processes_mentioning(&needle).len(),
        3,
        "supervisor, etcd, kube-apiserver"
    );
    let down = testenv(&["down"], &state.dir);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(
        text(&down.stderr).contains("stopped"),
        "{}",
        text(&down.stderr)
    );
    assert!(!state.dir.exists());
    assert!(processes_mentioning(&needle).is_empty());

    let down_again = testenv(&["down"], &state.dir);
    assert!(down_again.status.success(), "{}", text(&down_again.stderr));
    assert!(text(&down_again.stderr).contains("no control plane running"));
    assert!(!testenv(&["kubeconfig"], &state.dir).status.success());
}

#[test]
fn up_in_the_foreground_stops_on_sigterm() {
    let state = State::new();
    let mut up = Command::new(EXE)
        .args(["up", "--foreground", "--state-dir"])
        .arg(&state.dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let export = BufReader::new(up.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("export KUBECONFIG="))
        .expect("up --foreground prints an export line");
    let kubeconfig = export.trim_start_matches("export KUBECONFIG=");
    assert_eq!(kubectl_readyz(kubeconfig), "ok");
    let printed = testenv(&["kubeconfig"], &state.dir);
    assert_eq!(text(&printed.stdout).trim(), kubeconfig);

    let pid = nix::unistd::Pid::from_raw(up.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = up.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!state.dir.exists());
    let needle = state.dir.to_string_lossy().into_owned();
    assert!(eventually(Duration::from_secs(5), || processes_mentioning(
        &needle
    )
    .into_iter()
    .all(|p| !process_alive(p))));
}
