//! Secrets kept in the data directory when the configuration gives none: the master key and the admin
//! token. Each is generated once, written with mode 0600, and never logged.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::keys::MasterKey;

use crate::StartupError;

/// File name of the generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";
/// File name of the generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Creates the data directory (mode 0700) if needed.
pub(crate) fn ensure_data_dir(dir: &Path) -> Result<(), StartupError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartupError::Io { path: dir.to_path_buf(), source })
}

/// The master key from the configuration, or from (or newly into) `data_dir/master.key`.
pub(crate) fn master_key(configured: &str, data_dir: &Path) -> Result<MasterKey, StartupError> {
    if !configured.is_empty() {
        return MasterKey::from_base64(configured)
            .map_err(|e| StartupError::Config(crate::config::ConfigError(format!("`master_key`: {e}"))));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    let text = read_or_create(&path, || MasterKey::generate().map(|(_, text)| text).map_err(io::Error::other))?;
    MasterKey::from_base64(&text).map_err(|e| StartupError::Secret { path, reason: e.to_string() })
}

/// The admin token from the configuration, or from (or newly into) `data_dir/admin.token`.
pub(crate) fn admin_token(configured: &str, data_dir: &Path) -> Result<(String, Option<PathBuf>), StartupError> {
    if !configured.is_empty() {
        return Ok((configured.to_owned(), None));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let token = read_or_create(&path, || {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| io::Error::other("the system random source failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    })?;
    Ok((token, Some(path)))
}

fn read_or_create(path: &Path, make: impl FnOnce() -> io::Result<String>) -> Result<String, StartupError> {
    let io_error = |source| StartupError::Io { path: path.to_path_buf(), source };
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path).map_err(io_error)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "secret file is readable by others; run chmod 600 on it");
            }
            Ok(text.trim().to_owned())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let text = make().map_err(io_error)?;
            // create_new: two processes starting together must not overwrite each other's secret.
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(mut file) => {
                    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error)?;
                    Ok(text)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::read_to_string(path).map(|t| t.trim().to_owned()).map_err(io_error)
                }
                Err(e) => Err(io_error(e)),
            }
        }
        Err(e) => Err(io_error(e)),
    }
}
