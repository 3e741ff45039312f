//! Who is asking: users from the config with argon2 password hashes (log in
//! for a session cookie) or bearer tokens (their SHA-256 in the config);
//! roles; sessions; and the CSRF token every state-changing cookie request
//! must echo in `X-CSRF-Token`.

use std::time::Duration;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use axum::http::{HeaderMap, header};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::UserConfig;

pub const SESSION_COOKIE: &str = "vigil_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sees everything, changes nothing.
    #[default]
    ReadOnly,
    /// May also run every workflow step, quarantine included.
    Responder,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Responder => "responder",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; `None` for bearer tokens, which a browser
    /// never sends on its own, so they need none.
    pub csrf: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("not logged in: send the session cookie or an Authorization: Bearer token")]
    Missing,
    #[error("the session has expired or was logged out; log in again")]
    UnknownSession,
    #[error("the session store cannot be read; try again")]
    SessionStore,
    #[error("the bearer token is not one of the configured users'")]
    BadToken,
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("missing or wrong X-CSRF-Token header for this session")]
    Csrf,
    #[error("{user} has role {role}; this needs role responder")]
    Forbidden { user: String, role: &'static str },
}

/// Hashes a password for the config (argon2id, default cost, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Checks that `hash` is a PHC string argon2 can verify against.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string: {e}"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "algorithm {} is not argon2",
            parsed.algorithm.as_str()
        ));
    }
    Ok(())
}

pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Working memory for one argon2 check (its `m` cost in KiB blocks), kept
/// and reused so that the memory checks use is what the bound on them
/// says, whatever the allocator would keep of freed blocks per thread.
pub type CheckMemory = Vec<Block>;

/// Whether `password` is the one `hash` was made from, computed in `memory`.
fn verify(password: &str, hash: &PasswordHash<'_>, memory: &mut CheckMemory) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    memory.resize(params.block_count(), Block::new());
    let mut output = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut output, &mut memory[..])
        .is_ok()
        && same_bytes(&output, expected.as_bytes())
}

/// A hash at the default cost, for logins of unknown users.
fn dummy_hash() -> Option<PasswordHash<'static>> {
    static HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| hash_password("vigil-unknown-user").ok());
    hash.as_deref().and_then(|h| PasswordHash::new(h).ok())
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The configured users: who may log in, with which role.
pub struct Auth {
    users: Vec<UserConfig>,
}

/// A user whose password was right.
pub struct Verified {
    pub user: String,
    pub role: Role,
}

impl Auth {
    pub fn new(users: Vec<UserConfig>) -> Self {
        Self { users }
    }

    /// Checks a password, computing in `memory`.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        memory: &mut CheckMemory,
    ) -> Result<Verified, AuthError> {
        let Some(user) = self
            .users
            .iter()
            .find(|u| u.name == name && !u.password_hash.is_empty())
        else {
            // Spend the time a real check takes, so the answer's timing does
            // not tell which user names exist.
            if let Some(hash) = dummy_hash() {
                verify(password, &hash, memory);
            }
            return Err(AuthError::BadCredentials);
        };
        let hash = PasswordHash::new(&user.password_hash).map_err(|_| AuthError::BadCredentials)?;
        if !verify(password, &hash, memory) {
            return Err(AuthError::BadCredentials);
        }
        Ok(Verified {
            user: user.name.clone(),
            role: user.role,
        })
    }

    /// The caller named by an `Authorization: Bearer` token, if one is sent.
    pub fn bearer(&self, headers: &HeaderMap) -> Option<Result<Principal, AuthError>> {
        let digest = sha256_hex(bearer(headers)?);
        let user = self.users.iter().find(|u| {
            !u.token_sha256.is_empty() && same(&u.token_sha256.to_ascii_lowercase(), &digest)
        });
        Some(
            user.map(|user| Principal {
                user: user.name.clone(),
                role: user.role,
                csrf: None,
            })
            .ok_or(AuthError::BadToken),
        )
    }

    /// A configured user's current role: a session carries only the name,
    /// so removing a user or lowering a role applies to open sessions too.
    pub fn role_of(&self, name: &str) -> Option<Role> {
        self.users.iter().find(|u| u.name == name).map(|u| u.role)
    }
}

/// Only a responder may change anything.
pub fn require_responder(principal: Principal) -> Result<Principal, AuthError> {
    if principal.role != Role::Responder {
        return Err(AuthError::Forbidden {
            user: principal.user,
            role: principal.role.label(),
        });
    }
    Ok(principal)
}

/// Cookie sessions must echo their CSRF token; bearer callers need none.
pub fn check_csrf(principal: &Principal, headers: &HeaderMap) -> Result<(), AuthError> {
    let Some(expected) = &principal.csrf else {
        return Ok(());
    };
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if same(sent, expected) {
        Ok(())
    } else {
        Err(AuthError::Csrf)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// The `Set-Cookie` value for a new session (HttpOnly, SameSite=Strict).
pub fn session_cookie_header(token: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ttl.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie_header() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn users() -> Vec<UserConfig> {
        vec![
            UserConfig {
                name: "ann".into(),
                role: Role::Responder,
                password_hash: hash_password("secret").expect("hash"),
                token_sha256: String::new(),
            },
            UserConfig {
                name: "rob".into(),
                role: Role::ReadOnly,
                password_hash: String::new(),
                token_sha256: sha256_hex("rob-token"),
            },
        ]
    }

    #[test]
    fn passwords_are_checked_whatever_the_user() {
        let auth = Auth::new(users());
        let mut memory = Vec::new();
        let wrong = auth.login("ann", "wrong", &mut memory).err();
        assert_eq!(wrong, Some(AuthError::BadCredentials));
        let unknown = auth.login("eve", "secret", &mut memory).err();
        assert_eq!(unknown, Some(AuthError::BadCredentials));
        // Nobody logs in with a password as a token-only user.
        let token_only = auth.login("rob", "", &mut memory).err();
        assert_eq!(token_only, Some(AuthError::BadCredentials));
        let ann = auth.login("ann", "secret", &mut memory).expect("login");
        assert_eq!((ann.user.as_str(), ann.role), ("ann", Role::Responder));
        assert_eq!(memory.len(), 19_456, "the default cost's blocks, kept");
    }

    #[test]
    fn a_session_needs_its_csrf_token_to_change_state() {
        let principal = Principal {
            user: "ann".into(),
            role: Role::Responder,
            csrf: Some("c5rf".into()),
        };
        let mut headers = HeaderMap::new();
        assert_eq!(check_csrf(&principal, &headers), Err(AuthError::Csrf));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("c5rg"));
        assert_eq!(check_csrf(&principal, &headers), Err(AuthError::Csrf));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("c5rf"));
        assert_eq!(check_csrf(&principal, &headers), Ok(()));
        let cookie = format!("other=1; {SESSION_COOKIE}=t0ken");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("ascii"),
        );
        assert_eq!(session_cookie(&headers), Some("t0ken"));
    }

    #[test]
    fn bearer_tokens_carry_their_users_role() {
        let auth = Auth::new(users());
        let mut headers = HeaderMap::new();
        assert!(auth.bearer(&headers).is_none());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rob-token"),
        );
        let rob = auth.bearer(&headers).expect("sent").expect("known");
        assert_eq!(rob.user, "rob");
        assert_eq!(check_csrf(&rob, &HeaderMap::new()), Ok(()));
        assert!(matches!(
            require_responder(rob),
            Err(AuthError::Forbidden { .. })
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer guess"),
        );
        assert_eq!(
            auth.bearer(&headers).expect("sent").err(),
            Some(AuthError::BadToken)
        );
        assert_eq!(auth.role_of("rob"), Some(Role::ReadOnly));
        assert_eq!(auth.role_of("eve"), None);
    }
}
