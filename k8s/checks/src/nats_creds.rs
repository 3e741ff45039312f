//! NATS credentials for a deployment: one nkey per service and per node,
//! and the server's `authorization` block granting each only what it does
//! (`vigil_bus::access`). `scripts/nats-creds` runs it; the tests start a
//! real nats-server with what it writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use vigil_bus::access::{self, Login, Role, User};

/// One credential written: the user name, its role and its seed file.
#[derive(Clone, Debug)]
pub struct Credential {
    pub user: String,
    pub role: Role,
    pub seed_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate an nkey: {0}")]
    Nkey(String),
}

/// Writes `dir/auth.conf` (the server's block, nkey logins) and one seed
/// per user in `dir/seeds/<user>.nk` (mode 0600), for `nodes` and the
/// forwarder's `outputs`.
pub fn generate(
    dir: &Path,
    nodes: &[String],
    outputs: &[String],
) -> Result<Vec<Credential>, CredsError> {
    let seeds_dir = dir.join("seeds");
    std::fs::create_dir_all(&seeds_dir).map_err(|source| CredsError::Write {
        path: seeds_dir.clone(),
        source,
    })?;
    let mut users = Vec::new();
    let mut credentials = Vec::new();
    for role in access::nkey_roles(nodes, outputs) {
        let pair = nkeys::KeyPair::new_user();
        let seed = pair.seed().map_err(|e| CredsError::Nkey(e.to_string()))?;
        let user = role.user_name();
        let seed_file = seeds_dir.join(format!("{user}.nk"));
        write_private(&seed_file, &format!("{seed}\n"))?;
        credentials.push(Credential {
            user,
            role: role.clone(),
            seed_file,
        });
        users.push(User {
            login: Login::Nkey {
                public_key: pair.public_key(),
            },
            role,
        });
    }
    let conf = dir.join("auth.conf");
    write_private(&conf, &access::authorization(&users, nodes, outputs))?;
    Ok(credentials)
}

/// The dev overlay's block (`k8s/base/nats/auth.conf`): password logins
/// from the server's environment, one collector and responder for all nodes.
pub fn password_authorization(outputs: &[String]) -> String {
    access::authorization(&access::password_users(outputs), &[], outputs)
}

fn write_private(path: &Path, text: &str) -> Result<(), CredsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |source| CredsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}
