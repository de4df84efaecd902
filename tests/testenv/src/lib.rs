//! A real Kubernetes control plane (etcd + kube-apiserver) for metallb-rs tests.
//!
//! The binaries are built from the Go module proxy by `tests/testenv/k8s/build.sh` at the
//! versions pinned in `tests/testenv/k8s/go.mod`, once, into
//! `${METALLB_RS_CACHE:-~/.cache/metallb-rs}/k8s/<k8s>-etcd<etcd>/bin/`.
//!
//! Use from any crate's tests (add `metallb-testenv` as a dev-dependency):
//!
//! ```no_run
//! use metallb_testenv::{ControlPlane, test_name};
//!
//! let cp = ControlPlane::shared(); // started once per test binary
//! assert_eq!(cp.kubectl(["get", "--raw", "/readyz"]).unwrap().trim(), "ok");
//! let ns = cp.namespace(test_name!()).unwrap();
//! cp.kubectl(["-n", ns.name(), "get", "configmaps"]).unwrap();
//! cp.install_crds().unwrap(); // manifests/crds, Established; once per control plane
//! ```
//!
//! A supervisor process (`metallb-testenv supervise`, see [`supervisor`]) owns etcd and
//! kube-apiserver, so nothing outlives the test binary even when it panics or is killed.
//! `hack/check-leftovers` verifies that after a test run.
//!
//! [`ha`] is a control plane of three etcd members with an API server each, for the
//! rolling-update scenario. [`lab`] provides network labs (namespaces, a bridge, an FRR router)
//! for the speaker, and [`cluster`] multi-node Kubernetes clusters on such a lab, with the
//! product as pods, and [`olm`] the OLM tools and OLM itself on such a cluster.

mod binaries;
mod client;
pub mod cluster;
mod control_plane;
mod crds;
mod error;
mod freeze;
pub mod ha;
mod instance;
mod kubeconfig;
pub mod lab;
mod namespace;
pub mod olm;
pub mod peers;
mod pki;
mod proxy;
pub mod state;
pub mod supervisor;
mod tied;
mod wait;
mod watched;

pub use binaries::{BUILD_ID, BUILD_SCRIPT, SUPERVISOR_ENV, build_k8s};
pub use control_plane::{ControlPlane, Options};
pub use crds::CRDS_DIR;
pub use error::{Error, Result};
pub use freeze::{Takeover, leader_freeze, lease_holder};
pub use namespace::TestNamespace;
pub use proxy::FreezableProxy;
pub use supervisor::TEMP_DIR_PREFIX;
pub use wait::wait_for;
pub use watched::Watched;
