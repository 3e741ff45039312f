//! Freezing a cgroup: every process in it stops at once and can be resumed.
//!
//! v2 writes `1` to `cgroup.freeze` and waits for `frozen 1` in
//! `cgroup.events`; v1 writes `FROZEN` to `freezer.state` and waits until it
//! reads back `FROZEN` (it passes through `FREEZING`).

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::Hierarchies;

const POLL: Duration = Duration::from_micros(200);

/// Which mechanism froze (or would freeze) the cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freezer {
    V2,
    V1,
}

/// What a freeze or thaw found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeOutcome {
    Changed(Freezer),
    AlreadyInState(Freezer),
}

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("cgroup {cgroup} does not exist in any freezable hierarchy")]
    NoSuchCgroup { cgroup: String },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {cgroup} did not reach the {state} state within {timeout:?}")]
    Timeout {
        cgroup: String,
        state: &'static str,
        timeout: Duration,
    },
}

impl Hierarchies {
    /// The mechanism that can freeze `cgroup`: v2 where the cgroup exists
    /// there, else the v1 freezer.
    pub fn freezer_for(&self, cgroup: &str) -> Result<(Freezer, PathBuf), FreezeError> {
        if let Some(dir) = self
            .unified_dir(cgroup)
            .filter(|d| d.join("cgroup.freeze").is_file())
        {
            return Ok((Freezer::V2, dir));
        }
        if let Some(dir) = self
            .freezer_dir(cgroup)
            .filter(|d| d.join("freezer.state").is_file())
        {
            return Ok((Freezer::V1, dir));
        }
        Err(FreezeError::NoSuchCgroup {
            cgroup: cgroup.to_owned(),
        })
    }

    /// Freezes `cgroup` and waits until every process in it has stopped.
    pub fn freeze(&self, cgroup: &str, timeout: Duration) -> Result<FreezeOutcome, FreezeError> {
        self.set_frozen(cgroup, true, timeout)
    }

    /// Resumes a frozen `cgroup`.
    pub fn thaw(&self, cgroup: &str, timeout: Duration) -> Result<FreezeOutcome, FreezeError> {
        self.set_frozen(cgroup, false, timeout)
    }

    /// Whether `cgroup` is completely frozen now.
    pub fn is_frozen(&self, cgroup: &str) -> Result<bool, FreezeError> {
        let (freezer, dir) = self.freezer_for(cgroup)?;
        is_frozen(freezer, &dir)
    }

    fn set_frozen(
        &self,
        cgroup: &str,
        frozen: bool,
        timeout: Duration,
    ) -> Result<FreezeOutcome, FreezeError> {
        let (freezer, dir) = self.freezer_for(cgroup)?;
        if is_frozen(freezer, &dir)? == frozen {
            return Ok(FreezeOutcome::AlreadyInState(freezer));
        }
        let (file, value) = match (freezer, frozen) {
            (Freezer::V2, true) => ("cgroup.freeze", "1"),
            (Freezer::V2, false) => ("cgroup.freeze", "0"),
            (Freezer::V1, true) => ("freezer.state", "FROZEN"),
            (Freezer::V1, false) => ("freezer.state", "THAWED"),
        };
        write(&dir.join(file), value)?;
        let deadline = Instant::now() + timeout;
        while is_frozen(freezer, &dir)? != frozen {
            if Instant::now() >= deadline {
                return Err(FreezeError::Timeout {
                    cgroup: cgroup.to_owned(),
                    state: if frozen { "frozen" } else { "thawed" },
                    timeout,
                });
            }
            std::thread::sleep(POLL);
        }
        Ok(FreezeOutcome::Changed(freezer))
    }
}

fn is_frozen(freezer: Freezer, dir: &Path) -> Result<bool, FreezeError> {
    match freezer {
        Freezer::V2 => Ok(read(&dir.join("cgroup.events"))?
            .lines()
            .any(|line| line.trim() == "frozen 1")),
        Freezer::V1 => Ok(read(&dir.join("freezer.state"))?.trim() == "FROZEN"),
    }
}

fn read(path: &Path) -> Result<String, FreezeError> {
    fs::read_to_string(path).map_err(|source| FreezeError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), FreezeError> {
    fs::write(path, value).map_err(|source| FreezeError::Io {
        path: path.to_owned(),
        source,
    })
}
