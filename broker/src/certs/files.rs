//! The folder layout of the lab PKI and the only code that writes files.
//!
//! Every write goes to a temporary file in the destination folder, created
//! with its final mode (0600 for private keys, so a key is never readable by
//! others, not even for a moment), and is then renamed into place: a crash
//! leaves either the old file or the new one, never half a key.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CertError;

/// Mode of private keys.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of certificates, CRLs and the index: nothing secret in them.
const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of folders this module creates; they hold private keys.
const PRIVATE_DIR_MODE: u32 = 0o700;

/// Whether a file holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// Mode 0600 from creation.
    Private,
    /// Mode 0644.
    Public,
}

/// Paths inside one PKI folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The PKI folder.
    pub(crate) dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub(crate) fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub(crate) fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub(crate) fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub(crate) fn index(&self) -> PathBuf {
        self.dir.join("index.toml")
    }
    pub(crate) fn server_cert(&self, name: &str) -> PathBuf {
        self.dir.join("server").join(format!("{name}.crt"))
    }
    pub(crate) fn server_key(&self, name: &str) -> PathBuf {
        self.dir.join("server").join(format!("{name}.key"))
    }
    pub(crate) fn device_cert(&self, id: &str) -> PathBuf {
        self.dir.join("devices").join(id).join(format!("{id}.crt"))
    }
    pub(crate) fn device_key(&self, id: &str) -> PathBuf {
        self.dir.join("devices").join(id).join(format!("{id}.key"))
    }
    pub(crate) fn device_ca(&self, id: &str) -> PathBuf {
        self.dir.join("devices").join(id).join("ca.crt")
    }
    /// `path` relative to the PKI folder, for the index.
    pub(crate) fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.dir).unwrap_or(path).to_path_buf()
    }
}

/// Fails with [`CertError::AlreadyExists`] for the first path that exists,
/// unless `overwrite`. Called before generating anything, so a refusal
/// leaves no partial output.
pub(crate) fn refuse_existing<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
    overwrite: bool,
) -> Result<(), CertError> {
    if overwrite {
        return Ok(());
    }
    for path in paths {
        if path.exists() {
            return Err(CertError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parents with mode 0700. Existing folders
/// are left as they are.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(CertError::io(dir, "create folder"))
}

/// Writes `contents` to `path` atomically, creating the parent folder
/// (0700) if needed. The caller has already checked for an existing file.
pub(crate) fn write_file(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), CertError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&parent)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    // A leftover from a crashed run of this same pid would make create_new fail.
    let _ = std::fs::remove_file(&temp);
    let mode = match secrecy {
        Secrecy::Private => PRIVATE_FILE_MODE,
        Secrecy::Public => PUBLIC_FILE_MODE,
    };
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(CertError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        });
    }
    std::fs::rename(&temp, path).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        CertError::Io {
            path: path.to_path_buf(),
            action: "replace",
            source,
        }
    })
}

/// Reads a text file.
pub(crate) fn read_text(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(CertError::io(path, "read"))
}

/// Refuses a private key that group or others may read, like ssh does.
pub(crate) fn check_private_mode(path: &Path) -> Result<(), CertError> {
    let mode = std::fs::metadata(path)
        .map_err(CertError::io(path, "read"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(CertError::KeyTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_and_new_folders_0700() {
        let temp = tempfile::tempdir().unwrap();
        let key = temp.path().join("a/b/secret.key");
        write_file(&key, b"secret", Secrecy::Private).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&temp.path().join("a")), 0o700);
        assert_eq!(mode(&temp.path().join("a/b")), 0o700);
        let cert = temp.path().join("a/b/public.crt");
        write_file(&cert, b"public", Secrecy::Public).unwrap();
        assert_eq!(mode(&cert) & 0o600, 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
    }

    #[test]
    fn rewriting_keeps_private_mode_and_leaves_no_temp_file() {
        let temp = tempfile::tempdir().unwrap();
        let key = temp.path().join("k.key");
        write_file(&key, b"one", Secrecy::Private).unwrap();
        write_file(&key, b"two", Secrecy::Private).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_existing_unless_overwrite() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("x.crt");
        std::fs::write(&file, "x").unwrap();
        let error = refuse_existing([file.as_path()], false).unwrap_err();
        assert!(error.to_string().contains("--force"), "{error}");
        refuse_existing([file.as_path()], true).unwrap();
    }

    #[test]
    fn open_keys_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let key = temp.path().join("ca.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = check_private_mode(&key).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private_mode(&key).unwrap();
    }
}
