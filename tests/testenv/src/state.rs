//! State directories of `metallb-testenv up`: claiming one, finding its supervisor, `down`.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::control_plane::spawn_supervisor;
use crate::error::{Error, Result};
use crate::supervisor::{Ready, SuperviseOptions};

/// The default state directory of `up`, `down` and `kubeconfig`.
pub const DEFAULT_STATE_DIR: &str = "/run/metallb-rs/controlplane";
/// File in an instance directory holding the supervisor's pid.
pub(crate) const PID_FILE: &str = "supervisor.pid";
/// File that marks a directory as created by the harness, so it may be wiped and removed.
const MARKER: &str = ".metallb-testenv";
/// How long `down` waits for the supervisor to finish its teardown.
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a control plane in the background from the state directory `dir` and returns once
/// it is ready. The supervisor runs in its own session and logs to `<dir>/supervisor.log`;
/// [`down`] stops it. Refuses a directory that a running supervisor owns.
pub fn up(dir: &Path, listen: IpAddr, start_timeout: Duration) -> Result<Ready> {
    let bin_dir = crate::binaries::k8s_bin_dir()?;
    claim(dir)?;
    let log_path = dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path)
        .map_err(Error::io(format!("creating {}", log_path.display())))?;
    let options = SuperviseOptions {
        bin_dir,
        listen,
        parent_pid: None,
        instance_dir: Some(dir.to_path_buf()),
        detach: true,
        start_timeout_secs: start_timeout.as_secs().max(1),
    };
    // The child is not waited for: it outlives this process on purpose.
    let (_child, ready) = spawn_supervisor(&options, Stdio::from(log))?;
    Ok(ready)
}

/// Makes `dir` usable as an instance directory: creates it with a marker, or accepts it if it
/// already carries the marker. A directory with other contents is refused, because the
/// supervisor removes its instance directory when it stops.
pub(crate) fn claim(dir: &Path) -> Result<()> {
    let state_err = |detail: String| Error::State {
        dir: dir.to_path_buf(),
        detail,
    };
    if dir.join(MARKER).exists() {
        if let Some(pid) = running_supervisor(dir) {
            return Err(state_err(format!(
                "a control plane is already running from it (supervisor pid {pid}); \
                 run `metallb-testenv down --state-dir {}` first",
                dir.display()
            )));
        }
        return Ok(());
    }
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => return Err(state_err(err.to_string())),
    };
    if !empty {
        return Err(state_err(
            "it exists, is not empty and was not created by metallb-testenv; \
             it would be deleted on stop, so choose another directory"
                .into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| state_err(format!("cannot create it: {e}")))?;
    std::fs::write(
        dir.join(MARKER),
        "created by metallb-testenv; removed on stop\n",
    )
    .map_err(|e| state_err(format!("cannot write the marker file: {e}")))
}

/// The pid of the live supervisor that owns `dir`, if there is one.
pub fn running_supervisor(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid may have been reused since; only trust a process that is our supervisor.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_ours = args.iter().any(|a| *a == b"supervise")
        && args.iter().any(|a| Path::new(OsStr::from_bytes(a)) == dir);
    is_ours.then_some(pid)
}

/// Stops the control plane started from `dir` and removes the directory. Returns whether a
/// supervisor was running. Calling it again, or on a directory never used, does nothing.
pub fn down(dir: &Path) -> Result<bool> {
    let running = running_supervisor(dir);
    if let Some(pid) = running {
        let pid = Pid::from_raw(pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + DOWN_TIMEOUT;
        while kill(pid, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if kill(pid, None).is_ok() {
            // Its components die with it through their parent-death signal.
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    if dir.join(MARKER).exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io(format!("removing {}", dir.display())))?;
    }
    Ok(running.is_some())
}

/// The kubeconfig of the control plane started from `dir`, if it is running.
pub fn kubeconfig(dir: &Path) -> Option<PathBuf> {
    running_supervisor(dir).map(|_| dir.join("kubeconfig"))
}
