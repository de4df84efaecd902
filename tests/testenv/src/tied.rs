//! Starting etcd and kube-apiserver so that they die with the supervisor.
//!
//! `unsafe` is allowed here only: `Command::pre_exec` is unsafe because the closure runs
//! between fork and exec. It is needed to set `PR_SET_PDEATHSIG`, which makes the kernel kill
//! a component if the supervisor itself is killed (SIGKILL gives it no chance to clean up).
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// Spawns `cmd` with SIGKILL as its parent-death signal.
///
/// Only call this from a thread that lives as long as the supervisor: the kernel sends the
/// signal when the *thread* that forked the child exits.
pub(crate) fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let supervisor = nix::unistd::getpid();
    // SAFETY: the closure only makes the prctl and getppid system calls, which are
    // async-signal-safe, and it does not allocate (Errno converts without allocating).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // If the supervisor died between fork and prctl, the signal will never come.
            if nix::unistd::getppid() != supervisor {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}
