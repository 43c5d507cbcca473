//! Writing generated secrets: keys and certificates go to files only their owner can read.

use std::io::Write;
use std::path::Path;

use crate::error::StartError;

/// Writes `bytes` to `path` (mode 0600 on Unix), creating parent folders, replacing atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    let io = |what: &'static str| {
        move |source| StartError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("cannot create the folder for"))?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io("cannot create"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("cannot write"))?;
    std::fs::rename(&tmp, path).map_err(io("cannot write"))?;
    Ok(())
}
