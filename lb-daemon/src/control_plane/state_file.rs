//! The state file: the replica set, written on every membership change so a daemon
//! that dies (even by SIGKILL) comes back with the same replicas.
//!
//! Format (JSON): `{"version":1,"replicas":[{"name":"server1","pid":4242,
//! "address":"127.0.0.1:40123"}, ...]}`, in the order replicas were added. `pid` is set
//! for child processes (a restarted daemon stops a stale child that still runs before
//! it respawns the replica), `address` for every runtime (the static runtime needs it).
//!
//! Writes are atomic: a temporary file in the same directory, `fsync`, `rename` over
//! the old file, `fsync` of the directory. A file that cannot be parsed is never
//! overwritten: it is moved aside to `<path>.corrupt-<unix seconds>` and the daemon
//! refuses to start, saying so.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format version written and accepted.
pub const VERSION: u32 = 1;

/// The saved replica set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Replicas in the order they were added.
    pub replicas: Vec<SavedReplica>,
}

/// One saved replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedReplica {
    /// Hostname.
    pub name: String,
    /// Process id of a child-process replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where it listened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// Its weight on the ring (files written before weights existed: 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid state file; it was moved aside.
    #[error(
        "state file {path} is corrupt ({reason}); it was moved to {moved_to} and nothing was overwritten. \
         Start again to boot from the config alone, or put a good copy back at {path}"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
        /// Where it is now.
        moved_to: PathBuf,
    },
}

/// A state file at a path.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the saved state; `None` when there is no file yet.
    ///
    /// # Errors
    /// [`StateError::Io`] when it cannot be read; [`StateError::Corrupt`] (after moving
    /// the file aside) when it is truncated, not JSON, or of another version.
    pub fn load(&self) -> Result<Option<SavedState>, StateError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        let parsed = serde_json::from_slice::<SavedState>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                if s.version == VERSION {
                    Ok(s)
                } else {
                    Err(format!("version {} is not {VERSION}", s.version))
                }
            });
        match parsed {
            Ok(state) => Ok(Some(state)),
            Err(reason) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut moved = self.path.clone().into_os_string();
                moved.push(format!(".corrupt-{stamp}"));
                let moved_to = PathBuf::from(moved);
                std::fs::rename(&self.path, &moved_to).map_err(|e| self.io(e))?;
                Err(StateError::Corrupt {
                    path: self.path.clone(),
                    reason,
                    moved_to,
                })
            }
        }
    }

    /// Writes `state` atomically (temp file, fsync, rename, fsync of the directory).
    ///
    /// # Errors
    /// [`StateError::Io`]; the previous file is intact then.
    pub fn save(&self, state: &SavedState) -> Result<(), StateError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let json =
            serde_json::to_vec_pretty(state).map_err(|e| self.io(std::io::Error::other(e)))?;
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lb-state-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.json")
    }

    #[test]
    fn saves_and_loads_atomically() {
        let file = StateFile::new(temp("roundtrip"));
        assert_eq!(file.load().unwrap(), None);
        let state = SavedState {
            version: VERSION,
            replicas: vec![SavedReplica {
                name: "server1".into(),
                pid: Some(42),
                address: Some("127.0.0.1:9".parse().unwrap()),
                weight: 3,
            }],
        };
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), Some(state));
    }

    #[test]
    fn a_truncated_file_is_moved_aside_not_overwritten() {
        let path = temp("truncated");
        std::fs::write(&path, b"{\"version\":1,\"replicas\":[{\"name\":\"ser").unwrap();
        let err = StateFile::new(&path).load().unwrap_err();
        let StateError::Corrupt { moved_to, .. } = &err else {
            panic!("{err}")
        };
        assert!(!path.exists());
        assert!(
            std::fs::read(moved_to)
                .unwrap()
                .starts_with(b"{\"version\":1")
        );
        assert!(err.to_string().contains("moved to"), "{err}");
    }
}
