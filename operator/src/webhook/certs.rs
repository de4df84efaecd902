//! The webhook serving certificate when the operator manages it: generated once and kept in
//! the Secret [`SECRET`], so every replica serves the same certificate and a restart does not
//! change it, and replaced in the last third of its life (or when the names it must carry
//! change). Each replica copies the Secret into files that the server reloads.

use std::{path::Path, time::Duration};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, api::PostParams};
use metallb_webhooks::{CertError, GeneratedCerts, ServingCert};
use time::OffsetDateTime;

/// The Secret holding the generated certificate (the Go operator's name).
pub const SECRET: &str = "metallb-operator-webhook-server-cert";

/// Lifetime of a generated certificate.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Annotation with the certificate's expiry in seconds since the epoch.
const NOT_AFTER: &str = "metallb.io/not-after";
/// Annotation with the names the certificate was made for, comma-separated.
const NAMES: &str = "metallb.io/names";

const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";
const CA_KEY: &str = "ca.crt";

/// A certificate as stored, with the names it was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The certificate.
    pub cert: ServingCert,
    /// DNS names or IP addresses in it.
    pub names: Vec<String>,
}

/// Reads the certificate from `secret`; `None` when a part is missing or unreadable, which
/// makes the caller issue a new one.
pub fn from_secret(secret: &Secret) -> Option<Stored> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    let annotations = secret.metadata.annotations.as_ref()?;
    let not_after = annotations.get(NOT_AFTER)?.parse().ok()?;
    Some(Stored {
        cert: ServingCert {
            cert_pem: text(CERT_KEY)?,
            key_pem: text(KEY_KEY)?,
            ca_bundle_pem: text(CA_KEY)?,
            not_after: OffsetDateTime::from_unix_timestamp(not_after).ok()?,
        },
        names: annotations
            .get(NAMES)?
            .split(',')
            .map(str::to_owned)
            .collect(),
    })
}

/// The Secret for `stored` in `namespace`.
pub fn to_secret(stored: &Stored, namespace: &str) -> Secret {
    let cert = &stored.cert;
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/name".to_owned(),
                    "metallb-operator".to_owned(),
                )]
                .into(),
            ),
            annotations: Some(
                [
                    (
                        NOT_AFTER.to_owned(),
                        cert.not_after.unix_timestamp().to_string(),
                    ),
                    (NAMES.to_owned(), stored.names.join(",")),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                (CERT_KEY.to_owned(), bytes(&cert.cert_pem)),
                (KEY_KEY.to_owned(), bytes(&cert.key_pem)),
                (CA_KEY.to_owned(), bytes(&cert.ca_bundle_pem)),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

/// Whether `stored` must be replaced for a server reached as `names` at `now`.
pub fn needs_new(stored: &Stored, names: &[String], now: OffsetDateTime) -> bool {
    stored.names != names || GeneratedCerts::new(names.to_vec(), VALIDITY).due(&stored.cert, now)
}

/// A new certificate for `names`. Its CA bundle also holds the CA of `previous`, so servers
/// still presenting the previous certificate stay trusted while they pick up the new one.
pub fn issue(
    names: &[String],
    previous: Option<&Stored>,
    now: OffsetDateTime,
) -> Result<Stored, CertError> {
    let mut cert = GeneratedCerts::new(names.to_vec(), VALIDITY).issue(now)?;
    if let Some(previous_ca) = previous.and_then(|p| first_certificate(&p.cert.ca_bundle_pem)) {
        if !cert.ca_bundle_pem.ends_with('\n') {
            cert.ca_bundle_pem.push('\n');
        }
        cert.ca_bundle_pem.push_str(previous_ca);
    }
    Ok(Stored {
        cert,
        names: names.to_vec(),
    })
}

/// The first PEM certificate of a bundle, with its line break: the CA that signed the
/// certificate stored with it.
fn first_certificate(bundle: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end = start + bundle[start..].find(END)? + END.len();
    let end = end + usize::from(bundle[end..].starts_with('\n'));
    Some(&bundle[start..end])
}

/// Reads the stored certificate; the Secret comes along for a conditional replace.
pub async fn read(secrets: &Api<Secret>) -> Result<(Option<Stored>, Option<Secret>), kube::Error> {
    let secret = secrets.get_opt(SECRET).await?;
    Ok((secret.as_ref().and_then(from_secret), secret))
}

/// Stores `stored`, creating the Secret or replacing the version read as `current`; fails with
/// a conflict when another replica wrote in between.
pub async fn write(
    secrets: &Api<Secret>,
    current: Option<Secret>,
    stored: &Stored,
    namespace: &str,
) -> Result<(), kube::Error> {
    let mut secret = to_secret(stored, namespace);
    match current {
        None => secrets.create(&PostParams::default(), &secret).await?,
        Some(current) => {
            secret.metadata.resource_version = current.metadata.resource_version;
            // The type of a Secret cannot change; keep whatever it was created with.
            secret.type_ = current.type_;
            secrets
                .replace(SECRET, &PostParams::default(), &secret)
                .await?
        }
    };
    Ok(())
}

/// Writes `tls.crt`, `tls.key` and `ca.crt` into `dir`, each replaced atomically.
pub fn write_files(dir: &Path, cert: &ServingCert) -> std::io::Result<()> {
    for (name, text) in [
        (KEY_KEY, &cert.key_pem),
        (CERT_KEY, &cert.cert_pem),
        (CA_KEY, &cert.ca_bundle_pem),
    ] {
        let staging = dir.join(format!(".{name}.new"));
        std::fs::write(&staging, text)?;
        std::fs::rename(&staging, dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        GeneratedCerts::service_names("metallb-operator-webhook-service", "metallb-system")
    }

    #[test]
    fn a_stored_certificate_reads_back_unchanged() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let stored = issue(&names(), None, now).unwrap();
        let secret = to_secret(&stored, "metallb-system");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(from_secret(&secret), Some(stored));
    }

    #[test]
    fn an_incomplete_secret_reads_as_no_certificate() {
        let now = OffsetDateTime::now_utc();
        let mut secret = to_secret(&issue(&names(), None, now).unwrap(), "ns");
        secret.data.as_mut().unwrap().remove(KEY_KEY);
        assert_eq!(from_secret(&secret), None);
        assert_eq!(from_secret(&Secret::default()), None);
    }

    #[test]
    fn a_certificate_is_replaced_in_its_last_third_or_when_the_names_change() {
        let now = OffsetDateTime::now_utc();
        let stored = issue(&names(), None, now).unwrap();
        assert!(!needs_new(&stored, &names(), now));
        assert!(!needs_new(&stored, &names(), now + VALIDITY / 2));
        assert!(needs_new(&stored, &names(), now + VALIDITY * 3 / 4));
        assert!(needs_new(&stored, &["127.0.0.1".to_owned()], now));
    }

    #[test]
    fn a_rotated_bundle_trusts_the_new_and_the_previous_ca_only() {
        let now = OffsetDateTime::now_utc();
        let first = issue(&names(), None, now).unwrap();
        let second = issue(&names(), Some(&first), now).unwrap();
        let third = issue(&names(), Some(&second), now).unwrap();
        assert_eq!(
            first
                .cert
                .ca_bundle_pem
                .matches("BEGIN CERTIFICATE")
                .count(),
            1
        );
        assert!(
            second
                .cert
                .ca_bundle_pem
                .ends_with(&first.cert.ca_bundle_pem)
        );
        assert_eq!(
            third
                .cert
                .ca_bundle_pem
                .matches("BEGIN CERTIFICATE")
                .count(),
            2
        );
        assert!(!third.cert.ca_bundle_pem.contains(&first.cert.ca_bundle_pem));
    }

    #[test]
    fn certificate_files_are_written_for_the_server_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let stored = issue(&names(), None, OffsetDateTime::now_utc()).unwrap();
        write_files(dir.path(), &stored.cert).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("tls.crt"), stored.cert.cert_pem);
        assert_eq!(read("tls.key"), stored.cert.key_pem);
        assert_eq!(read("ca.crt"), stored.cert.ca_bundle_pem);
    }
}
