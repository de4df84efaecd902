//! The admin kubeconfig of a control plane.

use std::path::Path;

use crate::error::{Error, Result};
use crate::pki::Pki;

/// Name used for the cluster, user and context entries.
const NAME: &str = "metallb-testenv";

/// Writes a kubeconfig for `server` that authenticates with the admin client certificate.
///
/// The certificates are referenced by path rather than embedded: they live next to the
/// kubeconfig for the life of the control plane, and this keeps the file readable.
pub(crate) fn write(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    // JSON strings are valid YAML scalars, so quoting through serde_json is safe for any path.
    let q = |s: &str| serde_json::to_string(s).expect("strings always serialise");
    let p = |p: &Path| q(&p.to_string_lossy());
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {NAME}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
    namespace: default
current-context: {NAME}
",
        server = q(server),
        ca = p(&pki.ca_cert),
        cert = p(&pki.admin_cert),
        key = p(&pki.admin_key),
    );
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}
