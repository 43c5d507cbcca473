//! Writing generated secrets: keys and certificates go to files only their owner can read.
//!
//! A file is written under a fresh random name beside its final place, created exclusively
//! (`O_CREAT|O_EXCL`: never an existing file, never through a symlink, mode 0600 from the first
//! byte), synced, then renamed over the final name, and the folder synced: a crash leaves the
//! old file or the new one, never half of one, and no one can plant a file or a link where the
//! secret is written first.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create the folder for"))?;
    let (tmp, mut file) = create_temp(path).map_err(io("cannot create a temporary file for"))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write")(e));
    }
    // The rename itself is durable once the folder is synced. Best effort: some file systems
    // refuse to sync a folder, and the file is in place either way.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new file beside `path`, under a name no one could have known in advance.
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    // A clash with 192 random bits means someone is guessing; a few tries, then give up.
    for _ in 0..4 {
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", crate::util::random_token()));
        let mut options = OpenOptions::new();
        // `create_new` is O_CREAT|O_EXCL: it fails on any existing entry, a symlink (even a
        // dangling one) included, instead of writing through it.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_symlink_planted_at_the_old_temp_name_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let key = dir.path().join("keys/signing.key");
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        // Where the temp file used to be written: `signing.tmp`.
        std::os::unix::fs::symlink(&victim, key.with_extension("tmp")).unwrap();
        write_private(&key, b"secret").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(mode(&victim), 0o644);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        assert_eq!(mode(&key), 0o600);
        assert!(!std::fs::symlink_metadata(&key).unwrap().is_symlink());
    }

    #[test]
    fn a_loose_pre_existing_temp_file_lends_neither_its_mode_nor_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls.key");
        let old_tmp = key.with_extension("tmp");
        std::fs::write(&old_tmp, "stale stale stale").unwrap();
        std::fs::set_permissions(&old_tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        // A world-readable file already at the final name is replaced, not reused.
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&key, b"new").unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        assert_eq!(mode(&key), 0o600);
        // Nothing of ours is left behind beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_symlink_at_the_final_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let key = dir.path().join("secret");
        std::os::unix::fs::symlink(&victim, &key).unwrap();
        write_private(&key, b"s").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read(&key).unwrap(), b"s");
        assert_eq!(mode(&key), 0o600);
    }
}
