//! A product binary run by a test with its stderr lines and its exit timestamped on the test's
//! clock, so a test can order events across processes ("A stopped before B started").
//!
//! The process gets SIGKILL as its parent-death signal (`setpriv --pdeathsig`) and is killed
//! when the handle drops, so it never outlives the test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct Seen {
    lines: Vec<(Instant, String)>,
    exit: Option<(Instant, ExitStatus)>,
}

/// A running binary and what it has printed so far.
#[derive(Debug)]
pub struct Watched {
    name: String,
    child: Arc<Mutex<Child>>,
    seen: Arc<Mutex<Seen>>,
}

impl Watched {
    /// Starts `program` with `args`; `name` labels it in messages.
    pub fn spawn(name: &str, program: &Path, args: &[String]) -> Result<Watched> {
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!("starting {}", program.display())))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let child = Arc::new(Mutex::new(child));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader_seen = seen.clone();
        let reader_child = child.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lock(&reader_seen).lines.push((Instant::now(), line));
            }
            // stderr closed: the process is exiting; reap it and note when.
            loop {
                let status = lock(&reader_child).try_wait();
                match status {
                    Ok(Some(status)) => {
                        lock(&reader_seen).exit = Some((Instant::now(), status));
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(5)),
                    Err(_) => break,
                }
            }
        });
        Ok(Watched {
            name: name.to_owned(),
            child,
            seen,
        })
    }

    /// When the first line containing `text` was printed, if it was.
    pub fn printed(&self, text: &str) -> Option<Instant> {
        lock(&self.seen)
            .lines
            .iter()
            .find(|(_, line)| line.contains(text))
            .map(|(at, _)| *at)
    }

    /// When the process exited, and how, if it has.
    pub fn exited(&self) -> Option<(Instant, ExitStatus)> {
        lock(&self.seen).exit
    }

    /// Sends SIGTERM, as the kubelet does to stop a container.
    pub fn terminate(&self) {
        let pid = lock(&self.child).id();
        // setpriv execs the binary, so its pid is the binary's.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pids fit in i32"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Everything printed so far, for failure messages.
    pub fn output(&self) -> String {
        let seen = lock(&self.seen);
        let mut text = format!("--- {} ---\n", self.name);
        for (_, line) in &seen.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
