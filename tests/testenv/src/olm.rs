//! The OLM tools and OLM v0 on a local [`Cluster`], driven by `olm/olm.sh`.
//!
//! `tests/testenv/olm/build.sh` builds opm, operator-sdk and OLM's olm and catalog operators from
//! the Go module proxy at the versions pinned next to it, once, into
//! `${METALLB_RS_CACHE:-~/.cache/metallb-rs}/olm/`. [`up`] runs OLM on a cluster and [`serve`]
//! a file-based catalog there; both run in the cluster's control-plane namespace and stop with
//! the cluster (`cluster.sh down`), so a test needs no teardown of its own.
//!
//! ```no_run
//! use metallb_testenv::{cluster::{Cluster, ClusterOptions}, olm};
//!
//! let cluster = Cluster::up(ClusterOptions::default()).unwrap();
//! olm::up(&cluster).unwrap();
//! olm::serve(&cluster, std::path::Path::new("olm/catalog"), olm::CATALOG_PORT).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::binaries::run_forwarding_stderr;
use crate::cluster::{Cluster, WORKSPACE_ROOT};
use crate::error::{Error, Result};

/// The build recipe of the OLM tools.
pub const OLM_BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/olm/build.sh");
/// The catalog and cluster script.
pub const OLM_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../olm/olm.sh");
/// The port `olm/install/10-catalogsource.yaml` names.
pub const CATALOG_PORT: u16 = 50051;

/// `olm/build.sh` once per process: the directory with opm, operator-sdk, olm and catalog.
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(OLM_BUILD_SCRIPT);
        let (status, stdout, tail) = run_forwarding_stderr(&mut cmd)?;
        if !status.success() {
            return Err(format!("{status}:\n{tail}"));
        }
        Ok(stdout.lines().last().map(PathBuf::from).unwrap_or_default())
    })
    .clone()
    .map_err(|detail| Error::Build {
        script: PathBuf::from(OLM_BUILD_SCRIPT),
        detail,
    })
}

/// Runs one of the tools (`opm`, `operator-sdk`) and returns its output, whatever its status.
pub fn tool(name: &str, args: &[&str]) -> Result<Output> {
    Command::new(bin_dir()?.join(name))
        .args(args)
        .current_dir(WORKSPACE_ROOT)
        .output()
        .map_err(|source| Error::Spawn {
            what: name.to_owned(),
            source,
        })
}

/// Writes the file-based catalog of `bundles` (in channel order, each replacing the one before)
/// into `out` and validates it with `opm validate`.
pub fn catalog(out: &Path, bundles: &[&Path]) -> Result<()> {
    let mut args = vec!["catalog".into(), "--out".into(), out.as_os_str().to_owned()];
    args.extend(bundles.iter().map(|b| b.as_os_str().to_owned()));
    script(&args, "catalog")
}

/// OLM's CRDs and its olm and catalog operators on `cluster`.
pub fn up(cluster: &Cluster) -> Result<()> {
    script(&["--name".into(), cluster.name().into(), "up".into()], "up")
}

/// `opm serve` of `catalog` on 127.0.0.1:`port` in `cluster`'s control-plane namespace, where
/// OLM's catalog operator reaches it; replaces what was served on that port.
pub fn serve(cluster: &Cluster, catalog: &Path, port: u16) -> Result<()> {
    script(
        &[
            "--name".into(),
            cluster.name().into(),
            "serve".into(),
            "--port".into(),
            port.to_string().into(),
            catalog.as_os_str().to_owned(),
        ],
        "serve",
    )
}

fn script(args: &[std::ffi::OsString], what: &str) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(OLM_SCRIPT).args(args);
    let (status, _, tail) = run_forwarding_stderr(&mut cmd).map_err(Error::Cluster)?;
    if !status.success() {
        return Err(Error::Cluster(format!(
            "olm.sh {what} failed ({status}):\n{tail}"
        )));
    }
    Ok(())
}
