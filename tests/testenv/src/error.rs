//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building, starting, using or stopping a control plane.
///
/// The messages are written for a person reading a failed test: they say what was attempted
/// and include the tail of the relevant log where one exists.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `k8s/build.sh` failed or could not be run, so there are no binaries to start.
    #[error(
        "building the control-plane binaries with {script} failed: {detail}\n\
         (run `cargo run -p metallb-testenv -- build` to see the whole build output)"
    )]
    Build {
        /// The build script that was run.
        script: PathBuf,
        /// Exit status and the tail of its output.
        detail: String,
    },

    /// The `metallb-testenv` supervisor binary could not be found or built.
    #[error("cannot find or build the metallb-testenv supervisor binary: {0}")]
    SupervisorBinary(String),

    /// A process could not be started at all.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The program that failed to start.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The control plane started but did not become ready, or a component died.
    #[error("control plane did not start: {0}")]
    Start(String),

    /// The supervisor failed (to start the control plane, or to stop); the message says how.
    #[error("{0}")]
    Supervisor(String),

    /// The shared control plane of this test binary failed to start (on first use).
    #[error("the shared control plane of this test binary did not start: {0}")]
    Shared(String),

    /// A port could not be reserved on the listen address.
    #[error("cannot reserve a free TCP port on {addr}: {source}")]
    Port {
        /// The address a port was wanted on.
        addr: std::net::IpAddr,
        /// Why binding failed (for example: the address is not on any interface).
        #[source]
        source: std::io::Error,
    },

    /// Generating certificates or keys failed.
    #[error("cannot generate certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    /// Installing the CRDs of `manifests/crds/` failed.
    #[error("installing the CRDs of manifests/crds failed: {0}")]
    Crds(String),

    /// `kubectl` exited with an error.
    #[error("kubectl {args} failed ({status}):\n{stderr}")]
    Kubectl {
        /// The arguments, joined by spaces.
        args: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// What kubectl printed on stderr.
        stderr: String,
    },

    /// Reading the kubeconfig or building a `kube::Client` from it failed.
    #[error("cannot build a kube client from {kubeconfig}: {detail}")]
    Client {
        /// The kubeconfig that was used.
        kubeconfig: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// A state directory of `metallb-testenv up` is unusable.
    #[error("state directory {dir}: {detail}")]
    State {
        /// The state directory.
        dir: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A command of a network lab (`lab.sh`, vtysh, arping, ip ...) failed.
    #[error("lab command `{command}` failed: {detail}")]
    Lab {
        /// The command that was run.
        command: String,
        /// Exit status and stderr, or what was wrong with the output.
        detail: String,
    },

    /// A command of a local cluster (`cluster.sh`, or building what it runs) failed.
    #[error("local cluster: {0}")]
    Cluster(String),

    /// Changing the membership of an HA control plane's etcd cluster failed.
    #[error("etcd membership: {0}")]
    Etcd(String),

    /// Writing a container image failed.
    #[error("writing a container image: {0}")]
    Image(#[from] metallb_image::Error),

    /// A file-system or other I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
