//! Who is asking: users from the config with argon2 password hashes (log in
//! for a session cookie) or bearer tokens (their SHA-256 in the config);
//! roles; sessions; and the CSRF token every state-changing cookie request
//! must echo in `X-CSRF-Token`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

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

fn sha256_hex(value: &str) -> String {
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

fn random_token() -> String {
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

struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// Users and live sessions.
pub struct Auth {
    users: Vec<UserConfig>,
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
}

/// A new session: the cookie value and its CSRF token.
pub struct NewSession {
    pub token: String,
    pub principal: Principal,
}

impl Auth {
    pub fn new(users: Vec<UserConfig>, ttl: Duration) -> Self {
        Self {
            users,
            ttl,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a password (in `memory`) and opens a session.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        memory: &mut CheckMemory,
    ) -> Result<NewSession, AuthError> {
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
        let token = random_token();
        let csrf = random_token();
        let session = Session {
            user: user.name.clone(),
            role: user.role,
            csrf: csrf.clone(),
            expires: Instant::now() + self.ttl,
        };
        self.lock().insert(token.clone(), session);
        Ok(NewSession {
            token,
            principal: Principal {
                user: user.name.clone(),
                role: user.role,
                csrf: Some(csrf),
            },
        })
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(token) = session_cookie(headers) {
            self.lock().remove(token);
        }
    }

    /// The caller, from a bearer token or a session cookie.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if let Some(token) = bearer(headers) {
            let digest = sha256_hex(token);
            let user = self
                .users
                .iter()
                .find(|u| {
                    !u.token_sha256.is_empty()
                        && same(&u.token_sha256.to_ascii_lowercase(), &digest)
                })
                .ok_or(AuthError::BadToken)?;
            return Ok(Principal {
                user: user.name.clone(),
                role: user.role,
                csrf: None,
            });
        }
        let token = session_cookie(headers).ok_or(AuthError::Missing)?;
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        let session = sessions.get(token).ok_or(AuthError::UnknownSession)?;
        Ok(Principal {
            user: session.user.clone(),
            role: session.role,
            csrf: Some(session.csrf.clone()),
        })
    }

    /// The caller, allowed to change state: a responder, with the session's
    /// CSRF token echoed when authenticated by cookie.
    pub fn authorize_change(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let principal = self.authenticate(headers)?;
        check_csrf(&principal, headers)?;
        if principal.role != Role::Responder {
            return Err(AuthError::Forbidden {
                user: principal.user,
                role: principal.role.label(),
            });
        }
        Ok(principal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave a session half-written.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
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

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
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
    fn a_session_needs_its_csrf_token_to_change_state() {
        let auth = Auth::new(users(), Duration::from_secs(60));
        assert_eq!(
            auth.login("ann", "wrong", &mut Vec::new()).err(),
            Some(AuthError::BadCredentials)
        );
        let session = auth.login("ann", "secret", &mut Vec::new()).expect("login");
        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {SESSION_COOKIE}={}", session.token);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("ascii"),
        );
        assert_eq!(auth.authenticate(&headers).expect("session").user, "ann");
        assert_eq!(auth.authorize_change(&headers).err(), Some(AuthError::Csrf));
        let csrf = session.principal.csrf.expect("csrf");
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).expect("ascii"));
        assert_eq!(
            auth.authorize_change(&headers).expect("allowed").role,
            Role::Responder
        );
        auth.logout(&headers);
        assert_eq!(
            auth.authenticate(&headers).err(),
            Some(AuthError::UnknownSession)
        );
    }

    #[test]
    fn bearer_tokens_carry_their_users_role() {
        let auth = Auth::new(users(), Duration::from_secs(60));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rob-token"),
        );
        assert_eq!(auth.authenticate(&headers).expect("token").user, "rob");
        assert!(matches!(
            auth.authorize_change(&headers),
            Err(AuthError::Forbidden { .. })
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer guess"),
        );
        assert_eq!(auth.authenticate(&headers).err(), Some(AuthError::BadToken));
        assert_eq!(
            auth.authenticate(&HeaderMap::new()).err(),
            Some(AuthError::Missing)
        );
    }

    #[test]
    fn expired_sessions_are_gone() {
        let auth = Auth::new(users(), Duration::ZERO);
        let session = auth.login("ann", "secret", &mut Vec::new()).expect("login");
        let mut headers = HeaderMap::new();
        let cookie = format!("{SESSION_COOKIE}={}", session.token);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("ascii"),
        );
        assert_eq!(
            auth.authenticate(&headers).err(),
            Some(AuthError::UnknownSession)
        );
    }
}
