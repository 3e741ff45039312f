//! Mutual TLS for Vigil's gRPC services (the responder's control API, the
//! anomaly scorer's queries) and authorisation by the caller's identity.
//!
//! - [`TlsConfig`]: certificate, key and CA paths (typed config, from file and
//!   env like every other section); [`TlsConfig::server`] requires a client
//!   certificate signed by the CA, so a caller without one, or with one from
//!   another CA, is refused during the TLS handshake, before any handler runs.
//! - [`Identity`]: who the caller is, read from its verified certificate
//!   (SAN URIs such as `spiffe://vigil/console`, then SAN DNS names, then the
//!   subject's CN).
//! - [`Roles`] and [`Authorizer`]: which identities may act (quarantine,
//!   release: the console) and which may only read (list, query: the CLIs).
//!   Anything else is refused with `PERMISSION_DENIED` and counted in
//!   `vigil_<service>_grpc_denied_total{method, reason}`.
//! - [`Caller::requested_by`]: who asked, for the audit trail: the
//!   authenticated identity, plus the console user it vouches for in the
//!   [`USER_HEADER`] metadata (only an operator identity may vouch); a
//!   `requested_by` in the request body is recorded as claimed, never trusted.
//! - [`certs`]: a CA and per-service certificates (`vigil-gen-certs`,
//!   `scripts/gen-certs`) for tests and the demo.
//!
//! Plaintext is a mode a service must be configured into ([`Transport`]); it
//! has no identities, so every caller may do everything and `requested_by`
//! is whatever the caller says. It exists for the dev overlay and local runs
//! on loopback.

pub mod certs;
mod identity;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::{
    Request, Status,
    metadata::MetadataMap,
    transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity, ServerTlsConfig},
};
use vigil_service::Problems;

pub use identity::{Identity, IdentityError, identities};

/// The metadata key the console puts its signed-in user under.
pub const USER_HEADER: &str = "vigil-user";

/// Where a service's TLS material is (PEM files).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This service's certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that signs the peers' certificates: clients' for a server,
    /// the server's for a client.
    pub ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS set-up: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("invalid endpoint {url:?}: {source}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl TlsConfig {
    /// Reports each file that cannot be read, under `<section>.cert` etc.
    pub fn validate(&self, section: &str, problems: &mut Problems) {
        for (name, path) in [("cert", &self.cert), ("key", &self.key), ("ca", &self.ca)] {
            if let Err(error) = std::fs::metadata(path) {
                problems.add(
                    &format!("{section}.{name}"),
                    format!("{}: {error}", path.display()),
                );
            }
        }
    }

    fn identity(&self) -> Result<TlsIdentity, TlsError> {
        Ok(TlsIdentity::from_pem(
            read("certificate", &self.cert)?,
            read("private key", &self.key)?,
        ))
    }

    fn ca_certificate(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read("CA certificate", &self.ca)?))
    }

    /// A server that requires a client certificate from the CA.
    pub fn server(&self) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(self.ca_certificate()?)
            .client_auth_optional(false))
    }

    /// A client that presents this certificate and trusts only the CA;
    /// `server_name` overrides the name checked against the server's
    /// certificate (otherwise the URL's host).
    pub fn client(&self, server_name: Option<&str>) -> Result<ClientTlsConfig, TlsError> {
        let config = ClientTlsConfig::new()
            .identity(self.identity()?)
            .ca_certificate(self.ca_certificate()?);
        Ok(match server_name {
            Some(name) => config.domain_name(name),
            None => config,
        })
    }

    /// A lazily connecting channel to `url` with this TLS.
    pub fn channel(
        &self,
        url: &str,
        server_name: Option<&str>,
    ) -> Result<tonic::transport::Channel, TlsError> {
        let tls = self.client(server_name)?;
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .and_then(|endpoint| endpoint.tls_config(tls))
            .map_err(|source| TlsError::Endpoint {
                url: url.to_owned(),
                source,
            })?;
        Ok(endpoint.connect_lazy())
    }
}

/// How a gRPC server talks to its callers.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Mutual TLS; callers authorised by identity.
    Tls { tls: TlsConfig, roles: Roles },
    /// No TLS, no identities: dev and loopback only, by explicit choice.
    Plaintext,
}

impl Transport {
    /// `tls` when configured, else plaintext only if `plaintext` says so, or
    /// the listener is on loopback (nothing off this host reaches it).
    /// Anything else is a configuration problem under `<prefix>tls` (keys
    /// `<prefix>tls`, `<prefix>plaintext`: `grpc_` gives `grpc_tls.cert`).
    pub fn from_config(
        prefix: &str,
        listen: std::net::SocketAddr,
        tls: Option<&TlsConfig>,
        plaintext: bool,
        roles: &Roles,
        problems: &mut Problems,
    ) -> Option<Self> {
        match (tls, plaintext) {
            (Some(_), true) => {
                problems.add(
                    &format!("{prefix}plaintext"),
                    "plaintext and tls are both set: choose one",
                );
                None
            }
            (Some(tls), false) => {
                tls.validate(&format!("{prefix}tls"), problems);
                Some(Transport::Tls {
                    tls: tls.clone(),
                    roles: roles.clone(),
                })
            }
            (None, true) => Some(Transport::Plaintext),
            (None, false) if listen.ip().is_loopback() => Some(Transport::Plaintext),
            (None, false) => {
                problems.add(
                    &format!("{prefix}tls"),
                    format!(
                        "{listen} is reachable from other hosts: set {prefix}tls (cert, key, ca) \
                         or, for development only, {prefix}plaintext = true"
                    ),
                );
                None
            }
        }
    }

    /// The server's TLS, if any.
    pub fn server_tls(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        match self {
            Transport::Tls { tls, .. } => tls.server().map(Some),
            Transport::Plaintext => Ok(None),
        }
    }
}

/// What an identity may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// List and query.
    Reader,
    /// Also act (quarantine, release) and vouch for a console user.
    Operator,
}

/// Which certificate identities have which role. An identity in neither list
/// may do nothing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Roles {
    pub operators: Vec<String>,
    pub readers: Vec<String>,
}

/// The console's identity in certificates made by `vigil-gen-certs` and
/// cert-manager in `k8s/`.
pub const CONSOLE_IDENTITY: &str = "spiffe://vigil/console";
pub const RESPONDER_CLI_IDENTITY: &str = "spiffe://vigil/responder-cli";
pub const SCORER_CLI_IDENTITY: &str = "spiffe://vigil/scorer-cli";

impl Default for Roles {
    fn default() -> Self {
        Self {
            operators: vec![CONSOLE_IDENTITY.to_owned()],
            readers: vec![
                RESPONDER_CLI_IDENTITY.to_owned(),
                SCORER_CLI_IDENTITY.to_owned(),
            ],
        }
    }
}

impl Roles {
    /// The strongest role any of the certificate's identities has, and the
    /// identity that has it; `None` when none is known.
    pub fn role_of<'a>(&self, identities: &'a [Identity]) -> Option<(Role, &'a Identity)> {
        let has = |list: &[String], identity: &Identity| list.iter().any(|n| n == identity.name());
        let find = |list: &[String]| identities.iter().find(|identity| has(list, identity));
        find(&self.operators)
            .map(|identity| (Role::Operator, identity))
            .or_else(|| find(&self.readers).map(|identity| (Role::Reader, identity)))
    }
}

/// Who called, once authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Over plaintext: nobody is known.
    Unauthenticated,
    Authenticated {
        identity: String,
        role: Role,
    },
}

impl Caller {
    /// Who asked, for the audit trail. With TLS: the identity, and the
    /// console user it vouches for (`<user> via <identity>`, operators only);
    /// a body's `claimed` name that says something else is appended as
    /// claimed. Over plaintext only the claim exists, so it must be given.
    pub fn requested_by(&self, metadata: &MetadataMap, claimed: &str) -> Result<String, Status> {
        let claimed = claimed.trim();
        let (identity, role) = match self {
            Caller::Unauthenticated if claimed.is_empty() => {
                return Err(Status::invalid_argument(
                    "requested_by: say who asks, it goes into the audit records",
                ));
            }
            Caller::Unauthenticated => return Ok(claimed.to_owned()),
            Caller::Authenticated { identity, role } => (identity, *role),
        };
        let vouched = match metadata.get(USER_HEADER) {
            Some(user) if role == Role::Operator => Some(
                user.to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|user| !user.is_empty())
                    .ok_or_else(|| {
                        Status::invalid_argument(format!("{USER_HEADER}: not a printable name"))
                    })?,
            ),
            _ => None,
        };
        let mut by = match vouched {
            Some(user) => format!("{user} via {identity}"),
            None => identity.clone(),
        };
        if !claimed.is_empty() && Some(claimed) != vouched && claimed != identity {
            by.push_str(&format!(" (claimed {claimed:?})"));
        }
        Ok(by)
    }
}

/// What a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Act,
}

impl Permission {
    fn allows(self, role: Role) -> bool {
        match self {
            Permission::Read => true,
            Permission::Act => role == Role::Operator,
        }
    }
}

/// Checks each call against the transport's roles.
#[derive(Clone, Debug)]
pub struct Authorizer {
    roles: Option<Roles>,
    denied_metric: String,
}

impl Authorizer {
    /// `service` names the metric: `vigil_<service>_grpc_denied_total`.
    pub fn new(service: &str, transport: &Transport) -> Self {
        let roles = match transport {
            Transport::Tls { roles, .. } => Some(roles.clone()),
            Transport::Plaintext => None,
        };
        let denied_metric = format!("vigil_{}_grpc_denied_total", service.replace('-', "_"));
        metrics::describe_counter!(
            denied_metric.clone(),
            "gRPC calls refused by authorisation, by method and reason."
        );
        Self {
            roles,
            denied_metric,
        }
    }

    /// The caller if its identity may do `permission`; PERMISSION_DENIED
    /// (counted) otherwise. `method` names the call in the metric and logs.
    pub fn authorize<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
        permission: Permission,
    ) -> Result<Caller, Status> {
        let Some(roles) = &self.roles else {
            return Ok(Caller::Unauthenticated);
        };
        let identities = match request.peer_certs() {
            Some(chain) => match chain.first() {
                Some(leaf) => identities(leaf).map_err(|error| {
                    self.deny(method, "unreadable_certificate", &error.to_string())
                })?,
                None => return Err(self.deny(method, "no_certificate", "no client certificate")),
            },
            None => return Err(self.deny(method, "no_certificate", "no client certificate")),
        };
        let Some((role, identity)) = roles.role_of(&identities) else {
            let names: Vec<&str> = identities.iter().map(Identity::name).collect();
            return Err(self.deny(
                method,
                "unknown_identity",
                &format!("{} has no role here", names.join(", ")),
            ));
        };
        if !permission.allows(role) {
            return Err(self.deny(
                method,
                "role",
                &format!("{} may only read", identity.name()),
            ));
        }
        Ok(Caller::Authenticated {
            identity: identity.name().to_owned(),
            role,
        })
    }

    fn deny(&self, method: &'static str, reason: &'static str, detail: &str) -> Status {
        metrics::counter!(self.denied_metric.clone(), "method" => method, "reason" => reason)
            .increment(1);
        tracing::warn!(message = "gRPC call refused.", method, reason, detail);
        Status::permission_denied(format!("{method}: {detail}"))
    }
}

/// Puts the console's signed-in `user` on a request, for an operator
/// identity to vouch for.
pub fn vouch<T>(request: &mut Request<T>, user: &str) -> Result<(), Status> {
    let value = user
        .parse()
        .map_err(|_| Status::invalid_argument(format!("user {user:?} is not printable ASCII")))?;
    request.metadata_mut().insert(USER_HEADER, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(user: Option<&str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(user) = user {
            metadata.insert(USER_HEADER, user.parse().expect("ascii"));
        }
        metadata
    }

    fn caller(identity: &str, role: Role) -> Caller {
        Caller::Authenticated {
            identity: identity.to_owned(),
            role,
        }
    }

    #[test]
    fn only_an_operator_vouches_and_a_claim_is_only_a_claim() {
        let console = caller(CONSOLE_IDENTITY, Role::Operator);
        let by = |c: &Caller, user, claimed| c.requested_by(&metadata(user), claimed);
        assert_eq!(
            by(&console, Some("alice"), "alice").expect("ok"),
            "alice via spiffe://vigil/console"
        );
        assert_eq!(
            by(&console, Some("alice"), "root").expect("ok"),
            "alice via spiffe://vigil/console (claimed \"root\")"
        );
        assert_eq!(by(&console, None, "").expect("ok"), CONSOLE_IDENTITY);
        let reader = caller(RESPONDER_CLI_IDENTITY, Role::Reader);
        assert_eq!(
            by(&reader, Some("alice"), "bob").expect("ok"),
            "spiffe://vigil/responder-cli (claimed \"bob\")"
        );
        assert_eq!(
            by(&Caller::Unauthenticated, None, "bob").expect("ok"),
            "bob"
        );
        let missing = by(&Caller::Unauthenticated, None, " ").expect_err("must say who");
        assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn the_strongest_known_identity_decides() {
        let roles = Roles::default();
        let cert = |names: &[&str]| -> Vec<Identity> {
            names
                .iter()
                .map(|n| Identity::Uri((*n).to_owned()))
                .collect()
        };
        assert_eq!(
            roles.role_of(&cert(&[RESPONDER_CLI_IDENTITY, CONSOLE_IDENTITY])),
            Some((Role::Operator, &Identity::Uri(CONSOLE_IDENTITY.to_owned())))
        );
        assert_eq!(
            roles
                .role_of(&cert(&[SCORER_CLI_IDENTITY]))
                .map(|(role, _)| role),
            Some(Role::Reader)
        );
        assert_eq!(roles.role_of(&cert(&["spiffe://vigil/collector"])), None);
        assert!(!Permission::Act.allows(Role::Reader));
        assert!(Permission::Read.allows(Role::Reader));
    }

    #[test]
    fn plaintext_must_be_chosen_off_loopback() {
        let roles = Roles::default();
        let mut problems = Problems::default();
        let lo = "127.0.0.1:1".parse().expect("addr");
        let any = "0.0.0.0:1".parse().expect("addr");
        assert!(matches!(
            Transport::from_config("grpc_", lo, None, false, &roles, &mut problems),
            Some(Transport::Plaintext)
        ));
        assert!(matches!(
            Transport::from_config("grpc_", any, None, true, &roles, &mut problems),
            Some(Transport::Plaintext)
        ));
        assert!(problems.is_empty());
        assert!(Transport::from_config("grpc_", any, None, false, &roles, &mut problems).is_none());
        let missing = TlsConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
        };
        Transport::from_config("grpc_", any, Some(&missing), false, &roles, &mut problems);
        let text = format!("{problems:?}");
        for key in ["grpc_tls:", "grpc_tls.cert", "grpc_tls.key", "grpc_tls.ca"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }
}
