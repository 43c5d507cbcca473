//! Ed25519 signing keys in files (the central's `signing_key`, the gateway's `gateway.key`):
//! 64 hex digits (the 32-byte seed), generated with mode 0600 on first start when missing.

use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rand::RngCore;
use tracing::info;

use crate::assertion::hex;
use crate::error::StartError;

/// A fresh random key.
pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// The file's text for a key: its seed in hex and a newline.
pub fn to_file_text(key: &SigningKey) -> String {
    format!("{}\n", hex(key.as_bytes()))
}

/// Loads the key at `path`, or generates and writes one when the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<SigningKey, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).ok_or_else(|| {
            StartError::Key(format!(
                "{} does not hold an Ed25519 key (64 hex digits)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate();
            crate::fsutil::write_private(path, to_file_text(&key).as_bytes())?;
            info!(path = %path.display(), "generated a new signing key");
            Ok(key)
        }
        Err(source) => Err(StartError::Io {
            what: "cannot read the signing key",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Checks the key at `path` without generating one: a missing file is fine (`serve` creates
/// it), an unreadable or malformed one is what `serve` would refuse.
pub fn load(path: &Path) -> Result<(), String> {
    match std::fs::read_to_string(path) {
        Ok(text) if parse(&text).is_some() => Ok(()),
        Ok(_) => Err(format!(
            "{} does not hold an Ed25519 key (64 hex digits)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a new key to `path`; refuses to replace an existing file.
pub fn write_new(path: &Path, key: &SigningKey) -> Result<(), StartError> {
    if path.exists() {
        return Err(StartError::Key(format!(
            "{} already exists; remove it first to replace the key",
            path.display()
        )));
    }
    crate::fsutil::write_private(path, to_file_text(key).as_bytes())
}

fn parse(text: &str) -> Option<SigningKey> {
    crate::assertion::parse_hex32(text).map(|seed| SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_file_and_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/signing.key");
        let first = load_or_generate(&path).unwrap();
        let again = load_or_generate(&path).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(load_or_generate(&path).is_err());
    }
}
