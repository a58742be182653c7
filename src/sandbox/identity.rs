//! Who the sandbox is: its OAuth client and the ids of what it serves. A fresh identity on every
//! start keeps runs apart; `gcupload sandbox --state DIR` keeps one across restarts (with the
//! store and the port) so skip and resume can be tried locally.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub client_id: String,
    pub client_secret: String,
    pub external_contact_id: String,
    pub deployment_id: String,
    pub conversation_id: String,
    pub communication_id: String,
    /// The API port last served from this state directory (0: none yet).
    #[serde(default)]
    pub port: u16,
}

impl Identity {
    pub fn fresh() -> Identity {
        let uuid = || uuid::Uuid::new_v4().to_string();
        let simple = || uuid::Uuid::new_v4().simple().to_string();
        Identity {
            client_id: format!("sandbox-{}", &simple()[..8]),
            client_secret: simple(),
            external_contact_id: uuid(),
            deployment_id: uuid(),
            conversation_id: uuid(),
            communication_id: uuid(),
            port: 0,
        }
    }

    /// The identity kept in `dir`, or a fresh one (written there) when there is none yet.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Identity> {
        create_private_dir(dir)?;
        let path = file(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is not a sandbox identity ({e}); remove it to start afresh",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = Identity::fresh();
                fresh.save(dir)?;
                Ok(fresh)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the identity (it holds the client secret: readable by the owner only), replacing
    /// the old one atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let path = file(dir);
        let temp = dir.join(".identity.json.tmp");
        let mut f = private_file(&temp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&temp, &path)
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join("identity.json")
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_kept_across_loads_and_fresh_ones_differ() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, Identity::fresh());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identity.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the secret is the owner's alone");
        }
    }
}
