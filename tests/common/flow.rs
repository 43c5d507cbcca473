//! Two real processes, a central server with the dev provider and a gateway in front of a
//! backend, and a cookie-keeping client that walks the login the way a browser does.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use url::Url;

use super::{browser, free_port, Backend, Gateway};

pub struct World {
    pub central: Gateway,
    pub gateway: Gateway,
    pub backend: Backend,
}

impl World {
    /// `routes` is the gateway's `routes:` list (its upstream written as BACKEND);
    /// `extra` more gateway keys (e.g. `session:`).
    pub async fn start(routes: &str, extra: &str) -> World {
        Self::start_full(
            free_port(),
            free_port(),
            "    dev: {kind: dev}\n",
            "[dev]",
            routes,
            extra,
        )
        .await
    }

    /// Like [`World::start`] on given ports, with the central's `providers:` entries and the
    /// gateway's `providers` list.
    pub async fn start_full(
        cport: u16,
        gport: u16,
        providers: &str,
        names: &str,
        routes: &str,
        extra: &str,
    ) -> World {
        Self::start_top(cport, gport, providers, names, routes, extra, "").await
    }

    /// Like [`World::start_full`], with top-level YAML (e.g. a `metrics:` section) in both
    /// processes' configs.
    pub async fn start_top(
        cport: u16,
        gport: u16,
        providers: &str,
        names: &str,
        routes: &str,
        extra: &str,
        top: &str,
    ) -> World {
        let backend = Backend::start().await;
        let central = Gateway::start_public(
            cport,
            &format!(
                "{top}\ncentral:\n  providers:\n{providers}  clients:\n    - redirect_url: https://localhost:{gport}/_auth/callback\n"
            ),
        );
        let key = central.text("/oauth/key").await;
        let gateway = Gateway::start_public(
            gport,
            &format!(
                "{top}\ngateway:\n  title: Test threebot\n  oauth_proxy:\n    url: https://localhost:{cport}/oauth\n    verify_key: {key}\n    providers: {names}\n{extra}  routes:\n{}",
                routes.replace("BACKEND", &backend.url())
            ),
        );
        World {
            central,
            gateway,
            backend,
        }
    }

    /// One more gateway on `port` with the same config (a replica: same session secret and
    /// store when `extra` named them), in front of the same backend.
    pub fn another_gateway(&self, port: u16) -> Gateway {
        Gateway::start_public(port, &self.gateway_body())
    }

    /// The gateway's config as `start_public` took it: below listen, public_url, data_dir
    /// and tls (its first four lines).
    pub fn gateway_body(&self) -> String {
        let config = std::fs::read_to_string(self.gateway.dir.join("config.yaml")).unwrap();
        config.lines().skip(4).collect::<Vec<_>>().join("\n")
    }

    /// A new browser (its own cookie jar) trusting both processes.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        Browser {
            client: browser(&[&self.central, &self.gateway], jar.clone()),
            jar,
        }
    }

    /// The central's signing key (to forge assertions a real central would sign).
    pub fn signing_key(&self) -> ed25519_dalek::SigningKey {
        let hex = std::fs::read_to_string(self.central.data_dir().join("signing.key")).unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        ed25519_dalek::SigningKey::from_bytes(&bytes.try_into().unwrap())
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Browser {
    /// GETs `url` as a navigation and follows redirects; returns the last URL and response.
    pub async fn navigate(&self, url: &str) -> (Url, reqwest::Response) {
        let mut url = Url::parse(url).unwrap();
        for _ in 0..10 {
            let res = self
                .client
                .get(url.clone())
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            match res.headers().get("location") {
                Some(loc) if res.status().is_redirection() => {
                    url = url.join(loc.to_str().unwrap()).unwrap();
                }
                _ => return (url, res),
            }
        }
        panic!("redirect loop at {url}");
    }

    /// Logs in through the dev provider starting from `start` (a gateway URL), as `login`;
    /// returns where the browser lands and what it shows.
    pub async fn log_in(&self, start: &str, login: &str, email: &str) -> (Url, reqwest::Response) {
        self.log_in_with_groups(start, login, email, "").await
    }

    /// Like [`Browser::log_in`], typing `groups` (comma-separated) into the dev form.
    pub async fn log_in_with_groups(
        &self,
        start: &str,
        login: &str,
        email: &str,
        groups: &str,
    ) -> (Url, reqwest::Response) {
        let (form_url, form) = self.navigate(start).await;
        assert_eq!(
            form_url.path(),
            "/oauth/dev",
            "expected the dev login form, got {form_url}"
        );
        assert_eq!(form.status(), 200);
        let state = super::param(&form_url, "state").expect("state");
        let res = self
            .client
            .post(form_url.join("/oauth/dev").unwrap())
            .form(&[
                ("state", state.as_str()),
                ("login", login),
                ("email", email),
                ("groups", groups),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        let next = form_url
            .join(res.headers()["location"].to_str().unwrap())
            .unwrap();
        self.navigate(next.as_str()).await
    }

    /// The status of this browser's `/_auth/userinfo` at `gateway`: 200 with a session.
    pub async fn userinfo_status(&self, gateway: &Gateway) -> u16 {
        let res = self
            .client
            .get(gateway.url("/_auth/userinfo"))
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    }

    /// Logs out at `gateway` the way the logout page does: its form, with its token.
    pub async fn log_out(&self, gateway: &Gateway) -> reqwest::Response {
        let page = self
            .client
            .get(gateway.url("/_auth/logout"))
            .send()
            .await
            .unwrap();
        let page = page.text().await.unwrap();
        self.post_logout(gateway, &logout_token(&page)).await
    }

    /// POSTs the logout form with `token`.
    pub async fn post_logout(&self, gateway: &Gateway, token: &str) -> reqwest::Response {
        let form = [("token", token)];
        let res = self.client.post(gateway.url("/_auth/logout")).form(&form);
        res.send().await.unwrap()
    }

    /// The `Cookie` header this browser would send to `url`.
    pub fn cookies(&self, url: &str) -> String {
        self.jar
            .cookies(&Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// The hidden token of a logout form.
pub fn logout_token(page: &str) -> String {
    let after = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .expect("a logout form");
    after.split('"').next().unwrap_or_default().to_owned()
}
