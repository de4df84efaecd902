//! Certificates and keys for one control plane, generated fresh with rcgen for every start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// The service IP of `kubernetes.default` for the service range the harness configures; the
/// serving certificate names it so in-cluster style clients could verify the server too.
pub(crate) const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Paths of the PEM files written by [`Pki::generate`].
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    /// CA certificate that signed the serving and client certificates (also the client CA).
    pub ca_cert: PathBuf,
    /// kube-apiserver serving certificate and key.
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// Admin client certificate (group `system:masters`) and key, used by the kubeconfig.
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Service-account token signing key and its public half.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl Pki {
    /// Generates a CA, a serving certificate valid for `listen`, 127.0.0.1 and localhost, an
    /// admin client certificate and a service-account key pair, and writes them under `dir`.
    pub(crate) fn generate(dir: &Path, listen: IpAddr) -> Result<Pki> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "metallb-testenv-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let mut ips: Vec<IpAddr> = vec![
            IpAddr::from([127, 0, 0, 1]),
            KUBERNETES_SERVICE_IP.parse().expect("constant is an IP"),
        ];
        if !ips.contains(&listen) {
            ips.push(listen);
        }
        serving
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &issuer)?;

        let admin_key = KeyPair::generate()?;
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin
            .distinguished_name
            .push(DnType::CommonName, "metallb-testenv-admin");
        // system:masters bypasses RBAC, like the admin kubeconfig of a real cluster.
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin.signed_by(&admin_key, &issuer)?;

        let sa_key = KeyPair::generate()?;

        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        };
        write(&pki.ca_cert, &ca_cert.pem())?;
        write(&pki.serving_cert, &serving_cert.pem())?;
        write(&pki.serving_key, &serving_key.serialize_pem())?;
        write(&pki.admin_cert, &admin_cert.pem())?;
        write(&pki.admin_key, &admin_key.serialize_pem())?;
        write(&pki.sa_key, &sa_key.serialize_pem())?;
        write(&pki.sa_pub, &sa_key.public_key_pem())?;
        Ok(pki)
    }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(Error::io(format!("writing {}", path.display())))
}
