//! Local multi-node Kubernetes clusters, driven by `tests/testenv/cluster/cluster.sh`.
//!
//! A [`Cluster`] named `N` is a network lab `N` (see [`crate::lab`]: FRR router, client, nodes on
//! one bridge) whose node namespaces are real Kubernetes nodes `node1`..`nodeK` (containerd,
//! kubelet, kube-proxy each; labelled `node-role.kubernetes.io/worker`), with etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler in a namespace `N-cp` on the same
//! bridge. Everything is built from upstream sources by `k8s/build.sh --cluster` and cached.
//! Images come from archives imported into every node ([`Cluster::import`]); the sandbox image
//! is [`pause_image`], the product's is [`product_image`]. Clusters with different names run
//! side by side. Needs root and cgroup v1.
//!
//! ```no_run
//! use metallb_testenv::cluster::{Cluster, ClusterOptions, product_image};
//!
//! let cluster = Cluster::up(ClusterOptions::default()).unwrap(); // torn down on drop
//! cluster.import(&product_image().unwrap()).unwrap();
//! cluster.kubectl(["apply", "--server-side", "-f", "manifests/crds"]).unwrap();
//! ```
//!
//! A cluster records its owner process: [`Cluster::up`] makes it this process, and runs
//! `cluster.sh gc` once per process first, which removes clusters whose owner died without
//! tearing them down. `hack/check-leftovers` reports such clusters.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Once, OnceLock};

use metallb_image::PRODUCT_BINARIES;
use tracing::info;

use crate::binaries::{BUILD_SCRIPT, run_forwarding_stderr};
use crate::error::{Error, Result};
use crate::lab::unique_name;

/// The script behind this module.
pub const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/cluster.sh");
/// Where the script keeps each cluster's state, logs and kubeconfig.
pub const CLUSTER_STATE_ROOT: &str = "/run/metallb-rs/cluster";
/// The demo workload's image reference ([`demo_image`]).
pub const DEMO_REFERENCE: &str = "localhost/metallb-rs/demo:1";
/// The workspace root, for `cargo build` of the product and its manifests.
pub const WORKSPACE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Settings of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// 1-8 characters `[a-z0-9]`, starting with a letter; also the lab's name. The default is
    /// unique per call, across threads and processes.
    pub name: String,
    /// 1 to 3 (the lab's nodes).
    pub nodes: u8,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: unique_name(),
            nodes: 3,
        }
    }
}

/// A running cluster. Dropping one started by [`Cluster::up`] runs `cluster.sh down`.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    bin_dir: PathBuf,
    /// Whether dropping this value tears the cluster down.
    owned: bool,
}

impl Cluster {
    /// Builds what is missing (minutes, once), then starts cluster `options.name` owned by
    /// this process and waits until every node is Ready.
    pub fn up(options: ClusterOptions) -> Result<Cluster> {
        static GC: Once = Once::new();
        GC.call_once(|| {
            let _ = script(&["gc"]).status();
        });
        Cluster::start(&options, std::process::id())
    }

    /// Like [`Cluster::up`], but the cluster outlives this process (its owner is init) until
    /// `cluster.sh down`; for the `metallb-testenv cluster up` command and `hack/run`.
    pub fn up_detached(options: ClusterOptions) -> Result<Cluster> {
        let mut cluster = Cluster::start(&options, 1)?;
        cluster.owned = false;
        Ok(cluster)
    }

    /// A cluster that is already up, not torn down on drop.
    pub fn attach(name: &str) -> Result<Cluster> {
        let cluster = Cluster {
            name: name.to_owned(),
            bin_dir: cluster_bin_dir()?,
            owned: false,
        };
        run(script(&["--name", name, "check"]), "check")
            .map_err(|_| Error::Cluster(format!("cluster {name} is not up or not whole")))?;
        Ok(cluster)
    }

    fn start(options: &ClusterOptions, owner: u32) -> Result<Cluster> {
        let bin_dir = cluster_bin_dir()?;
        let pause = pause_image(&bin_dir)?;
        let nodes = options.nodes.to_string();
        let mut cmd = script(&["--name", &options.name, "up", "--nodes", &nodes]);
        cmd.env("CLUSTER_OWNER_PID", owner.to_string())
            .env("CLUSTER_PAUSE_IMAGE", &pause);
        run(cmd, "up")?;
        Ok(Cluster {
            name: options.name.clone(),
            bin_dir,
            owned: true,
        })
    }

    /// The cluster's (and its lab's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin kubeconfig (group `system:masters`), for use from this machine.
    pub fn kubeconfig_path(&self) -> PathBuf {
        Path::new(CLUSTER_STATE_ROOT)
            .join(&self.name)
            .join("kubeconfig")
    }

    /// Runs kubectl with the admin kubeconfig and returns its stdout.
    pub fn kubectl<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_stdin(args, "")
    }

    /// Like [`Cluster::kubectl`], with `stdin` on kubectl's standard input (`apply -f -`).
    pub fn kubectl_stdin<I, S>(&self, args: I, stdin: &str) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let joined = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(self.bin_dir.join("kubectl"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig_path())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                what: "kubectl".into(),
                source,
            })?;
        // A kubectl that exits early closes its stdin; its stderr says why.
        let _ = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes());
        let output = child
            .wait_with_output()
            .map_err(Error::io("waiting for kubectl"))?;
        if !output.status.success() {
            return Err(Error::Kubectl {
                args: joined,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A command run in one of the lab's hosts (`"client"`, `"router"`, `"node1"`, ...), e.g.
    /// `curl` from the client to a Service's address.
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &format!("{}-{host}", self.name), program]);
        cmd
    }

    /// Imports an OCI image archive into every node's containerd.
    pub fn import(&self, archive: &Path) -> Result<()> {
        let mut cmd = script(&["--name", &self.name, "import"]);
        cmd.arg(archive);
        run(cmd, "import")
    }

    /// Tears the cluster down now (also done on drop for an owned cluster).
    pub fn down(mut self) -> Result<()> {
        self.owned = false;
        run(script(&["--name", &self.name, "down"]), "down")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.owned {
            let _ = script(&["--name", &self.name, "down"]).status();
        }
    }
}

fn script(args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(CLUSTER_SCRIPT).args(args);
    cmd
}

/// Runs a `cluster.sh` command, its stderr forwarded as it comes (a first build is slow).
fn run(mut cmd: Command, what: &str) -> Result<()> {
    let (status, _, tail) = run_forwarding_stderr(&mut cmd).map_err(Error::Cluster)?;
    if !status.success() {
        return Err(Error::Cluster(format!(
            "cluster.sh {what} failed ({status}):\n{tail}"
        )));
    }
    Ok(())
}

/// `build.sh --cluster` once per process: the bin directory of every cluster binary.
pub fn cluster_bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.args([BUILD_SCRIPT, "--cluster"]);
        let (status, stdout, tail) = run_forwarding_stderr(&mut cmd)?;
        if !status.success() {
            return Err(format!("build.sh --cluster: {status}:\n{tail}"));
        }
        Ok(stdout.lines().last().map(PathBuf::from).unwrap_or_default())
    })
    .clone()
    .map_err(|detail| Error::Build {
        script: PathBuf::from(BUILD_SCRIPT),
        detail,
    })
}

/// The sandbox image archive next to the cached binaries (`<bin>/../images/pause.tar`),
/// written from `<bin>/pause` when missing.
pub fn pause_image(bin_dir: &Path) -> Result<PathBuf> {
    let dir = bin_dir.with_file_name("images");
    let out = dir.join("pause.tar");
    if !out.is_file() {
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        metallb_image::pause(metallb_image::PAUSE_REFERENCE, &bin_dir.join("pause"))?
            .write(&out)?;
    }
    Ok(out)
}

/// The demo workload's image `localhost/metallb-rs/demo:1` (an HTTP server on :8080 that
/// answers with its pod's and node's names), next to the cached binaries.
pub fn demo_image(bin_dir: &Path) -> Result<PathBuf> {
    let dir = bin_dir.with_file_name("images");
    let out = dir.join("demo.tar");
    if !out.is_file() {
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        metallb_image::Image::new(DEMO_REFERENCE)
            .entrypoint(vec![format!("/{}/demo", metallb_image::BIN_DIR)])
            .binary(&bin_dir.join("demo"))?
            .write(&out)?;
    }
    Ok(out)
}

/// Builds the product binaries with cargo (once per process) and writes the product image
/// (`quay.io/metallb-rs/metallb-rs:<version>`, what the operator and `manifests/install`
/// name) to `<target>/images/metallb-rs.tar`.
pub fn product_image() -> Result<PathBuf> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            product_image_tagged(metallb_image::PRODUCT_REFERENCE).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::Cluster)
}

/// Like [`product_image`], under another reference (an upgrade to roll out, a registry's
/// name), written to `<target>/images/<the reference's tag>.tar`.
pub fn product_image_tagged(reference: &str) -> Result<PathBuf> {
    let executables = product_binaries()?;
    // <target>/<profile>/<binary> -> <target>/images
    let target = executables[0]
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| Error::Cluster("an executable outside a target directory".into()))?;
    let dir = target.join("images");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, tag)| tag);
    let out = dir.join(format!("metallb-rs-{tag}.tar"));
    metallb_image::product(reference, &executables)?.write(&out)?;
    Ok(out)
}

/// `cargo build` of the product binaries, once per process; their paths.
fn product_binaries() -> Result<Vec<PathBuf>> {
    static BINARIES: OnceLock<Result<Vec<PathBuf>, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| cargo_build_product().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Cluster)
}

fn cargo_build_product() -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new(env!("CARGO"));
    // What cargo sets for a running test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, OUT_DIR, ...)
    // would reach build scripts that declare `rerun-if-env-changed` on them (ring does), so an
    // inheriting build rebuilds half the dependency tree and invalidates the outer build's.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ];
        if per_package.iter().any(|p| key.starts_with(p))
            || ["CARGO_TARGET_TMPDIR", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*key)
        {
            cmd.env_remove(&*key);
        }
    }
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(Path::new(WORKSPACE_ROOT).join("Cargo.toml"))
        .arg("--message-format=json-render-diagnostics");
    for bin in PRODUCT_BINARIES {
        cmd.args(["-p", bin]);
    }
    info!("building the product binaries with cargo");
    let (status, stdout, tail) = run_forwarding_stderr(&mut cmd).map_err(Error::Cluster)?;
    if !status.success() {
        return Err(Error::Cluster(format!(
            "cargo build of the product failed ({status}):\n{tail}"
        )));
    }
    let executables: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact"
                && PRODUCT_BINARIES.iter().any(|b| msg["target"]["name"] == *b)
        })
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .collect();
    if executables.len() != PRODUCT_BINARIES.len() {
        return Err(Error::Cluster(format!(
            "cargo reported {} of the product's executables, not {}",
            executables.len(),
            PRODUCT_BINARIES.len()
        )));
    }
    Ok(executables)
}
