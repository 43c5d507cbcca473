//! What ACME leaves in `data_dir/acme/`: the account's credentials (one file per ACME
//! directory) and one certificate chain and key per host, each written 0600 and atomically
//! (`fsutil`), read again at start-up so that a restart serves them without the ACME server.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use url::Url;

use super::{load_certified_key, provider, safe_name, CertFiles};
use crate::error::StartError;

/// `data_dir/acme`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}

/// Where the certificate of `host` lives: `data_dir/acme/<host>.crt` and `.key`.
pub fn cert_files(data_dir: &Path, host: &str) -> CertFiles {
    let safe = safe_name(host);
    CertFiles {
        cert: dir(data_dir).join(format!("{safe}.crt")),
        key: dir(data_dir).join(format!("{safe}.key")),
    }
}

/// The account file for `directory`: an account belongs to one ACME server, so a config that
/// moves from a staging server to production gets a new account instead of a refused one.
pub fn account_path(data_dir: &Path, directory: &Url) -> PathBuf {
    let digest = Sha256::digest(directory.as_str().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir(data_dir).join(format!("account-{hex}.json"))
}

/// A stored certificate, ready to serve, and when it should be renewed.
pub struct Stored {
    pub key: CertifiedKey,
    pub renew_at: SystemTime,
    /// Its whole validity (notBefore to notAfter), to space out renewals.
    pub life: Duration,
}

/// The stored certificate of `host`, if there is one that loads; a broken pair is logged by
/// the caller and obtained again.
pub fn load(data_dir: &Path, host: &str) -> Result<Option<Stored>, StartError> {
    let files = cert_files(data_dir, host);
    if !files.cert.exists() && !files.key.exists() {
        return Ok(None);
    }
    let key = load_certified_key(&files, &provider())?;
    let (renew_at, life) = key
        .cert
        .first()
        .and_then(|c| renewal(c.as_ref()))
        .ok_or_else(|| StartError::Tls {
            what: format!("{}: cannot read its validity", files.cert.display()),
            source: None,
        })?;
    Ok(Some(Stored {
        key,
        renew_at,
        life,
    }))
}

/// Writes a new chain and key for `host`: the key first, so that a crash in between leaves a
/// pair that does not load (and is obtained again), never an old key served with a new chain.
pub fn save(data_dir: &Path, host: &str, chain_pem: &str, key_pem: &str) -> Result<(), StartError> {
    let files = cert_files(data_dir, host);
    crate::fsutil::write_private(&files.key, key_pem.as_bytes())?;
    crate::fsutil::write_private(&files.cert, chain_pem.as_bytes())
}

/// When a certificate (DER) is due for renewal, at two thirds of its life (as certbot and
/// Caddy do: a third of the life is left to retry in), and that life.
pub fn renewal(der: &[u8]) -> Option<(SystemTime, Duration)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let from = u64::try_from(cert.validity().not_before.timestamp()).ok()?;
    let to = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    let life = to.checked_sub(from)?;
    let at = UNIX_EPOCH + Duration::from_secs(from + life * 2 / 3);
    Some((at, Duration::from_secs(life)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_of_the_life() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1); // 90 days
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (at, life) = renewal(cert.der()).unwrap();
        assert_eq!(life, Duration::from_secs(90 * 86_400));
        let start = UNIX_EPOCH + Duration::from_secs(1_893_456_000); // 2030-01-01
        assert_eq!(at, start + Duration::from_secs(60 * 86_400));
    }

    #[test]
    fn saved_pairs_load_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "a.example").unwrap().is_none());
        let (cert, key) = super::super::generate("a.example", vec!["a.example".into()]).unwrap();
        save(dir.path(), "a.example", &cert, &key).unwrap();
        let stored = load(dir.path(), "a.example").unwrap().unwrap();
        assert!(stored.life > Duration::ZERO);
        use std::os::unix::fs::PermissionsExt;
        let files = cert_files(dir.path(), "a.example");
        for p in [files.cert, files.key] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let other: Url = "https://other.example/dir".parse().unwrap();
        let one: Url = "https://ca.example/dir".parse().unwrap();
        assert_ne!(
            account_path(dir.path(), &one),
            account_path(dir.path(), &other)
        );
    }
}
