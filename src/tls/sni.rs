//! The certificate of each host, chosen by SNI: a map swapped whole when a certificate is
//! obtained or renewed (one atomic load per handshake, no lock), a temporary self-signed
//! certificate for hosts still waiting for theirs, and the pending ACME challenges.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::provider;
use crate::error::StartError;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Serves each known host its certificate. A name we do not serve (or no SNI at all) gets the
/// first host's, as a one-certificate server would answer.
#[derive(Debug)]
pub struct SniResolver {
    /// The hosts certificates are obtained for; the first is `public_url`'s.
    hosts: Vec<String>,
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    /// Served while a host has no certificate yet; its requests get a 503 page.
    temporary: Arc<CertifiedKey>,
    pub challenges: Challenges,
    /// Where the hosts' certificates are stored (`store`), for the metrics' `file` label.
    data_dir: PathBuf,
}

impl SniResolver {
    /// A resolver for `hosts` (not empty) with no certificate yet.
    pub fn new(hosts: Vec<String>, data_dir: PathBuf) -> Result<Self, StartError> {
        let first = hosts.first().cloned().unwrap_or_else(|| "localhost".into());
        let (cert, key) = super::generate(&first, hosts.clone())
            .map_err(|e| StartError::tls("cannot generate a temporary certificate", e))?;
        let temporary = certified(&cert, &key)?;
        Ok(SniResolver {
            hosts,
            certs: ArcSwap::default(),
            temporary: Arc::new(temporary),
            challenges: Challenges::default(),
            data_dir,
        })
    }

    /// The file `host`'s certificate is stored in.
    pub fn file_of(&self, host: &str) -> String {
        super::store::cert_files(&self.data_dir, host)
            .cert
            .display()
            .to_string()
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The host a client named (or the first host), as one of ours.
    fn host_of<'a>(&'a self, sni: Option<&str>) -> &'a str {
        let named = sni.and_then(|n| self.hosts.iter().find(|h| h.eq_ignore_ascii_case(n)));
        named.or(self.hosts.first()).map_or("", String::as_str)
    }

    /// The real certificate served for `sni`; `None` while it is the temporary one.
    pub fn chosen(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.certs.load().get(self.host_of(sni)).cloned()
    }

    /// Serves `key` for `host` from the next handshake on (connections open keep theirs).
    pub fn install(&self, host: &str, key: Arc<CertifiedKey>) {
        self.certs.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(host.to_owned(), key.clone());
            map
        });
    }

    /// Each host's served end-entity certificate, for the expiry metric.
    pub fn served(&self) -> Vec<(String, CertificateDer<'static>)> {
        let map = self.certs.load();
        let mut out: Vec<_> = map
            .iter()
            .filter_map(|(h, k)| Some((h.clone(), k.cert.first()?.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        // RFC 8737 §3: a validation handshake offers `acme-tls/1` alone, and gets the challenge
        // certificate or nothing. A client that offers it among others is an ordinary one.
        let validation = hello.alpn().is_some_and(|mut protocols| {
            protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
        });
        if validation {
            return sni.and_then(|name| self.challenges.alpn_cert(name));
        }
        Some(self.chosen(sni).unwrap_or_else(|| self.temporary.clone()))
    }
}

/// The answers to challenges of orders in progress. Read only by the ACME server's validation
/// requests (the plain HTTP listener, `acme-tls/1` handshakes), never on the proxy path.
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: host → the challenge certificate.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The key authorization of a pending HTTP-01 `token`.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        lock(&self.http).get(token).cloned()
    }

    pub fn add_http(&self, token: &str, key_authorization: &str) {
        lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
    }

    pub fn remove_http(&self, token: &str) {
        lock(&self.http).remove(token);
    }

    fn alpn_cert(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let map = lock(&self.alpn);
        let found = map.iter().find(|(h, _)| h.eq_ignore_ascii_case(host));
        found.map(|(_, k)| k.clone())
    }

    /// Answers TLS-ALPN-01 for `host`: a self-signed certificate for it carrying the SHA-256
    /// digest of the key authorization in the critical `acmeIdentifier` extension.
    pub fn add_alpn(&self, host: &str, digest: &[u8]) -> Result<(), StartError> {
        let err = |e| StartError::tls("cannot make a TLS-ALPN-01 certificate", e);
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        // Not `CertifiedKey::from_der`: its pairing check parses the certificate with webpki,
        // which refuses the critical extension an ACME server requires here.
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| StartError::tls("cannot load a TLS-ALPN-01 key", e))?;
        let key = CertifiedKey::new(vec![cert.der().clone()], signer);
        lock(&self.alpn).insert(host.to_owned(), Arc::new(key));
        Ok(())
    }

    pub fn remove_alpn(&self, host: &str) {
        lock(&self.alpn).remove(host);
    }
}

/// A certificate and key from PEM text.
fn certified(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, StartError> {
    use rustls_pki_types::pem::PemObject;
    let err = |e| StartError::tls("a generated certificate does not load", e);
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(err)?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err)?;
    CertifiedKey::from_der(vec![cert], PrivateKeyDer::Pkcs8(key), &provider())
        .map_err(|e| StartError::tls("a generated certificate and key do not pair", e))
}

/// Every update is one insert or remove: a holder that panicked left the map usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> SniResolver {
        let hosts = vec!["a.example".to_owned(), "b.example".to_owned()];
        SniResolver::new(hosts, PathBuf::from("data")).unwrap()
    }

    #[test]
    fn each_host_its_certificate_and_others_the_first_hosts() {
        let r = resolver();
        assert!(
            r.chosen(Some("a.example")).is_none(),
            "nothing installed yet"
        );
        let (cert, key) = super::super::generate("a.example", vec!["a.example".into()]).unwrap();
        let a = Arc::new(certified(&cert, &key).unwrap());
        r.install("a.example", a.clone());
        let is_a = |k: Option<Arc<CertifiedKey>>| k.is_some_and(|k| Arc::ptr_eq(&k, &a));
        assert!(is_a(r.chosen(Some("A.Example"))));
        assert!(is_a(r.chosen(None)), "no SNI: the first host's");
        assert!(
            is_a(r.chosen(Some("other.example"))),
            "a name not ours: the first host's"
        );
        assert!(
            r.chosen(Some("b.example")).is_none(),
            "b waits on the temporary one"
        );
        assert_eq!(r.served().len(), 1);
        assert!(r.file_of("b.example").ends_with("acme/b.example.crt"));
    }

    #[test]
    fn challenge_answers_come_and_go() {
        let r = resolver();
        r.challenges.add_http("tok", "tok.thumb");
        assert_eq!(
            r.challenges.http_answer("tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(r.challenges.http_answer("other"), None);
        r.challenges.remove_http("tok");
        assert_eq!(r.challenges.http_answer("tok"), None);
        r.challenges.add_alpn("a.example", &[7; 32]).unwrap();
        assert!(r.challenges.alpn_cert("A.EXAMPLE").is_some());
        assert!(r.challenges.alpn_cert("b.example").is_none());
        r.challenges.remove_alpn("a.example");
        assert!(r.challenges.alpn_cert("a.example").is_none());
    }
}
