//! Routes by host (SPEC §10) against the real binary: one process, a central and a gateway
//! serving `chat.example.test` and `git.example.test` (each its own app and allow list) and
//! `*.apps.example.test`, behind one certificate naming them all. Each host is its own origin:
//! its own session cookie and login round trip; SNI and `Host` must agree (421); a host
//! without routes gets 404, never another host's app.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::client::{connect_as, parse, tls_config, RawResponse};
use common::flow::Browser;
use common::{free_port, param, Backend, Gateway};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::cookie::Jar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

const NAMES: [&str; 5] = [
    "chat.example.test",
    "git.example.test",
    "a.apps.example.test",
    "other.example.test",
    "localhost",
];

struct Hosts {
    gw: Gateway,
    chat: Backend,
    git: Backend,
    apps: Backend,
    cert_pem: String,
    port: u16,
}

impl Hosts {
    async fn start() -> Hosts {
        let (chat, git, apps) = (
            Backend::start().await,
            Backend::start().await,
            Backend::start().await,
        );
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "*.example.test".to_owned(),
            "*.apps.example.test".to_owned(),
        ])
        .expect("cert");
        std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
        let config = format!(
            "listen: 127.0.0.1:{port}\npublic_url: https://localhost:{port}\ndata_dir: data\n\
             tls: {{cert: tls.crt, key: tls.key, hsts: 365d}}\n\
             central:\n  providers:\n    dev: {{kind: dev}}\n\
             gateway:\n  routes:\n\
             \x20   - {{host: chat.example.test, prefix: /, upstream: \"{}\", allow: {{logins: [alice]}}}}\n\
             \x20   - {{host: Git.Example.Test, prefix: /, upstream: \"{}\", allow: {{logins: [bob]}}}}\n\
             \x20   - {{host: \"*.apps.example.test\", prefix: /, upstream: \"{}\", login: none}}\n",
            chat.url(),
            git.url(),
            apps.url()
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let gw = Gateway::spawn(dir.path().to_owned(), Some(dir), &path);
        Hosts {
            gw,
            chat,
            git,
            apps,
            cert_pem: cert.cert.pem(),
            port,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    /// A browser-like client: one cookie jar (host-only cookies stay on their host), every
    /// test name resolved to the gateway.
    fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap())
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30));
        for name in NAMES {
            b = b.resolve(name, self.gw.addr);
        }
        Browser {
            client: b.build().unwrap(),
            jar,
        }
    }

    /// One HTTP/1.1 request on a connection whose SNI is `sni`.
    async fn h1(&self, sni: &str, head: &str) -> RawResponse {
        let config = tls_config(self.cert_pem.as_bytes(), &[b"http/1.1"]);
        let mut tls = connect_as(self.gw.addr, config, sni)
            .await
            .expect("connect");
        let request = format!("{head}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tls.read_to_end(&mut buf),
        )
        .await
        .expect("an answer in time");
        parse(&buf)
    }

    /// The status of an HTTP/2 GET of `uri` (its authority is `:authority`) on a connection
    /// whose SNI is `sni`.
    async fn h2(&self, sni: &str, uri: &str) -> u16 {
        let config = tls_config(self.cert_pem.as_bytes(), &[b"h2"]);
        let tls = connect_as(self.gw.addr, config, sni)
            .await
            .expect("connect");
        let (mut send, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        let req = http::Request::get(uri).body(Empty::new()).unwrap();
        let res = send.send_request(req).await.expect("h2 response");
        let status = res.status().as_u16();
        let _ = res.into_body().collect().await;
        status
    }
}

#[tokio::test]
async fn each_host_serves_its_own_app_and_logs_in_on_its_own_origin() {
    let h = Hosts::start().await;
    let alice = h.browser();
    let (url, res) = alice
        .log_in(
            &h.url("chat.example.test", "/hello?x=1"),
            "alice",
            "alice@example.com",
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(url.as_str(), h.url("chat.example.test", "/hello?x=1"));
    let seen = h.chat.last();
    assert_eq!(seen.target, "/hello?x=1");
    assert!(seen.headers["x-user-info"]
        .to_str()
        .unwrap()
        .contains("\"login\":\"alice\""));
    assert_eq!(
        seen.headers["host"],
        format!("chat.example.test:{}", h.port).as_str()
    );

    // The session cookie is chat's alone: a browser sends it to no other host.
    assert!(alice
        .cookies(&h.url("chat.example.test", "/"))
        .contains("__Host-oauthgate-session="));
    for other in ["git.example.test", "a.apps.example.test", "localhost"] {
        let cookies = alice.cookies(&h.url(other, "/"));
        assert!(!cookies.contains("oauthgate-session"), "{other}: {cookies}");
    }

    // Even copied by hand, chat's cookie is no session on git: sessions are bound to their host.
    let copied = alice.cookies(&h.url("chat.example.test", "/"));
    let fresh = h.browser().client;
    for (host, want) in [("chat.example.test", 200), ("git.example.test", 401)] {
        let res = fresh
            .get(h.url(host, "/_auth/userinfo"))
            .header("cookie", &copied)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{host}");
    }

    // On git, alice is not logged in: git's own login, which comes back to git's callback.
    let res = alice
        .client
        .get(h.url("git.example.test", "/repo"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/_auth/login?"));
    let res = alice
        .client
        .get(h.url("git.example.test", "/_auth/login?next=/repo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let authorize = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(authorize.host_str(), Some("localhost"));
    assert_eq!(
        param(&authorize, "redirect_url").as_deref(),
        Some(h.url("git.example.test", "/_auth/callback").as_str())
    );
    // Through the central again; git's allow list is git's: alice is refused there.
    let (_, res) = alice
        .log_in(
            &h.url("git.example.test", "/repo"),
            "alice",
            "alice@example.com",
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(h.git.count(), 0);

    let bob = h.browser();
    let (url, res) = bob
        .log_in(
            &h.url("git.example.test", "/repo"),
            "bob",
            "bob@example.com",
        )
        .await;
    assert_eq!(
        (url.host_str(), res.status().as_u16()),
        (Some("git.example.test"), 200)
    );
    assert!(h.git.last().headers["x-user-info"]
        .to_str()
        .unwrap()
        .contains("\"login\":\"bob\""));
    let res = bob
        .client
        .get(h.url("chat.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "bob's git session is no session on chat");
    assert_eq!(h.chat.count(), 1);
}

#[tokio::test]
async fn an_assertion_made_for_one_host_is_refused_by_another() {
    let h = Hosts::start().await;
    let victim = h.browser();
    // The victim starts a login on git: git's pending-login cookie holds its state.
    let res = victim
        .client
        .get(h.url("git.example.test", "/_auth/login?next=/"))
        .send()
        .await
        .unwrap();
    let authorize = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let state = param(&authorize, "state").unwrap();
    // The same state, but the central told to send the assertion to chat's callback.
    let mut to_chat = authorize.clone();
    to_chat
        .query_pairs_mut()
        .clear()
        .append_pair("provider", "dev")
        .append_pair("state", &state)
        .append_pair(
            "redirect_url",
            &h.url("chat.example.test", "/_auth/callback"),
        );
    let attacker = h.browser();
    let (form, _) = attacker.navigate(to_chat.as_str()).await;
    let res = attacker
        .client
        .post(form.join("/oauth/dev").unwrap())
        .form(&[
            ("state", param(&form, "state").unwrap().as_str()),
            ("login", "bob"),
            ("email", "bob@example.com"),
            ("groups", ""),
        ])
        .send()
        .await
        .unwrap();
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.host_str(), Some("chat.example.test"));
    // Replayed at git's callback with the victim's git state: the audience is chat's.
    let mut at_git = Url::parse(&h.url("git.example.test", "/_auth/callback")).unwrap();
    at_git.set_query(back.query());
    let res = victim.client.get(at_git).send().await.unwrap();
    assert_eq!(res.status(), 400);
    h.gw.log_when("the refusal", |log| {
        log.iter().any(|l| l.contains("assertion refused"))
    });
    assert!(!victim
        .cookies(&h.url("git.example.test", "/"))
        .contains("oauthgate-session"));
}

#[tokio::test]
async fn sni_and_host_must_agree_and_unknown_hosts_get_404() {
    let h = Hosts::start().await;
    let port = h.port;
    // HTTP/1.1: the Host header against the SNI.
    let misdirected = h
        .h1(
            "chat.example.test",
            &format!("GET / HTTP/1.1\r\nHost: git.example.test:{port}"),
        )
        .await;
    assert_eq!(misdirected.status, 421);
    // `tls.hsts` on every response, refusals included.
    assert_eq!(
        misdirected.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let own = h
        .h1(
            "chat.example.test",
            &format!("GET / HTTP/1.1\r\nHost: CHAT.example.test:{port}"),
        )
        .await;
    assert_eq!(own.status, 401, "chat's own route, not logged in");
    let auth = h
        .h1(
            "chat.example.test",
            &format!("GET /_auth/login HTTP/1.1\r\nHost: git.example.test:{port}"),
        )
        .await;
    assert_eq!(auth.status, 421, "the gateway's own endpoints too");
    // HTTP/2: `:authority` against the SNI.
    assert_eq!(
        h.h2("chat.example.test", &h.url("git.example.test", "/"))
            .await,
        421
    );
    assert_eq!(
        h.h2("chat.example.test", &h.url("chat.example.test", "/"))
            .await,
        401
    );
    assert_eq!(
        h.h2("a.apps.example.test", &h.url("a.apps.example.test", "/x"))
            .await,
        200
    );

    // No route for these hosts, and no route without a host: 404, never another app.
    let client = h.browser().client;
    for host in ["other.example.test", "localhost"] {
        let res = client.get(h.url(host, "/")).send().await.unwrap();
        assert_eq!(res.status(), 404, "{host}");
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000"
        );
    }
    let res = client
        .get(h.url("a.apps.example.test", "/y"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h.apps.last().target, "/y");
    assert_eq!((h.chat.count(), h.git.count()), (0, 0));
}

#[tokio::test]
async fn forward_auth_judges_the_host_a_trusted_proxy_names() {
    let h = Hosts::start().await;
    let client = h.browser().client;
    let check = |host: &'static str| {
        client
            .get(h.url("localhost", "/_auth/check"))
            .header("x-forwarded-uri", "/x")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-host", host)
            .send()
    };
    assert_eq!(check("a.apps.example.test").await.unwrap().status(), 200);
    assert_eq!(check("chat.example.test").await.unwrap().status(), 401);
    assert_eq!(check("nowhere.example.test").await.unwrap().status(), 403);
    assert_eq!(check("bad host").await.unwrap().status(), 400);
}

#[tokio::test]
async fn hsts_is_off_unless_set() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    let res = gw.client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("strict-transport-security").is_none());
}
