//! The names a verified client certificate carries.

use x509_parser::{extensions::GeneralName, parse_x509_certificate};

/// One name of a certificate's subject, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A SAN URI, e.g. a SPIFFE id `spiffe://vigil/console`.
    Uri(String),
    /// A SAN DNS name.
    Dns(String),
    /// The subject's common name (certificates without SANs).
    CommonName(String),
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Uri(name) | Identity::Dns(name) | Identity::CommonName(name) => name,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("client certificate names nobody (no SAN URI, no SAN DNS name, no CN)")]
    Anonymous,
}

/// The certificate's SAN URIs, then SAN DNS names, then CNs. The TLS layer
/// has verified the certificate against the CA before this reads it.
pub fn identities(der: &[u8]) -> Result<Vec<Identity>, IdentityError> {
    let (_, certificate) =
        parse_x509_certificate(der).map_err(|error| IdentityError::Parse(error.to_string()))?;
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    let san = certificate
        .subject_alternative_name()
        .map_err(|error| IdentityError::Parse(error.to_string()))?;
    for name in san.iter().flat_map(|san| &san.value.general_names) {
        match name {
            GeneralName::URI(uri) => uris.push(Identity::Uri((*uri).to_owned())),
            GeneralName::DNSName(name) => dns.push(Identity::Dns((*name).to_owned())),
            _ => {}
        }
    }
    let common_names = certificate
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(|cn| Identity::CommonName(cn.to_owned()));
    let all: Vec<Identity> = uris.into_iter().chain(dns).chain(common_names).collect();
    if all.is_empty() {
        return Err(IdentityError::Anonymous);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Authority;

    #[test]
    fn uris_then_dns_names_then_the_common_name() {
        let ca = Authority::new("test CA").expect("CA");
        let issued = ca.issue("console").expect("cert");
        let names = identities(issued.cert_der()).expect("names");
        assert_eq!(names[0], Identity::Uri("spiffe://vigil/console".into()));
        assert!(names.contains(&Identity::Dns("vigil-console".into())));
        assert_eq!(names.last(), Some(&Identity::CommonName("console".into())));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            identities(b"not a certificate"),
            Err(IdentityError::Parse(_))
        ));
    }
}
