//! A certificate authority and per-service certificates for tests and the
//! demo (`vigil-gen-certs`). Clusters use cert-manager (`k8s/README.md`).
//!
//! A service `<name>` gets SAN URI `spiffe://vigil/<name>` (its identity),
//! DNS names `<name>`, `vigil-<name>`, `vigil-<name>.vigil.svc`,
//! `vigil-<name>.vigil.svc.cluster.local` and `localhost`, IP 127.0.0.1,
//! and CN `<name>`; it may serve and be a client.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// The SPIFFE trust domain of the identities this module issues.
pub const TRUST_DOMAIN: &str = "vigil";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A self-signed CA that issues service certificates.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key.
pub struct Issued {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Issued {
    pub fn cert_pem(&self) -> String {
        self.certificate.pem()
    }

    pub fn cert_der(&self) -> &[u8] {
        self.certificate.der()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Writes `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (mode 0600).
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), CertError> {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        write(&cert, &self.cert_pem(), 0o644)?;
        write(&key, &self.key_pem(), 0o600)?;
        Ok((cert, key))
    }
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(error)
}

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Vigil");
    name.push(DnType::CommonName, common_name);
    name
}

impl Authority {
    pub fn new(common_name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for service (or tool) `name`, identity
    /// `spiffe://vigil/<name>`.
    pub fn issue(&self, name: &str) -> Result<Issued, CertError> {
        let uri = format!("spiffe://{TRUST_DOMAIN}/{name}");
        let mut sans = vec![SanType::URI(uri.try_into()?)];
        for dns in [
            name.to_owned(),
            format!("vigil-{name}"),
            format!("vigil-{name}.vigil.svc"),
            format!("vigil-{name}.vigil.svc.cluster.local"),
            "localhost".to_owned(),
        ] {
            sans.push(SanType::DnsName(dns.try_into()?));
        }
        sans.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { certificate, key })
    }

    /// Writes `<dir>/ca.pem` and, per name, `<name>.pem` and `<name>-key.pem`.
    pub fn write_all(&self, dir: &Path, names: &[&str]) -> Result<(), CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })?;
        write(&dir.join("ca.pem"), &self.cert_pem(), 0o644)?;
        for name in names {
            self.issue(name)?.write(dir, name)?;
        }
        Ok(())
    }
}
