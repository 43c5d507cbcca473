//! The responses oauthgate writes itself: the body type, and the small error pages (HTML for
//! browser navigations, JSON for API calls), the one place a [`RequestError`] becomes a response.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::error::RequestError;

/// Every response body: an upstream's streamed body, or one of ours.
pub type Body = Either<crate::upstream::UpstreamBody, Full<Bytes>>;

/// Whether a request is a browser navigation (SPEC §4): `Sec-Fetch-Mode: navigate`, or, where
/// that header is absent (older clients, curl), an `Accept` naming `text/html`.
pub fn is_navigation(headers: &HeaderMap) -> bool {
    let mut navigation = Navigation::default();
    for (name, value) in headers {
        navigation.see(name, value);
    }
    navigation.is()
}

/// [`is_navigation`] worked out from the headers one by one, in the map's order (a pass the
/// caller makes anyway, which costs less than two lookups).
#[derive(Debug, Default)]
pub struct Navigation {
    /// The first `Sec-Fetch-Mode`'s verdict.
    mode: Option<bool>,
    /// An `Accept` lists `text/html`.
    html: bool,
}

impl Navigation {
    pub fn see(&mut self, name: &HeaderName, value: &HeaderValue) {
        // A static name: a `&str` key is parsed as a header name on every call.
        static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
        if *name == header::ACCEPT {
            self.html = self.html || value.to_str().is_ok_and(|v| v.contains("text/html"));
        } else if self.mode.is_none() && *name == SEC_FETCH_MODE {
            self.mode = Some(value.as_bytes() == b"navigate");
        }
    }

    pub fn is(&self) -> bool {
        self.mode.unwrap_or(self.html)
    }
}

/// A complete response of ours with the headers every such page carries.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(body.into())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// A JSON response (`value` serialised compactly).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

/// The response for a failed request: a small page for navigations, JSON otherwise. A login
/// that is needed is a redirect for navigations that may be redirected, else 401 JSON with
/// the login URL (scripts never follow a redirect into a login page). Every page and JSON
/// body names the request id, so that a screenshot of an error finds its log lines.
pub fn error_response(err: &RequestError, html: bool, request_id: &HeaderValue) -> Response<Body> {
    let mut res = error_body(err, html, request_id);
    if let RequestError::MethodNotListed { allow } = err {
        res.headers_mut().insert(header::ALLOW, allow.clone());
    }
    res
}

fn error_body(err: &RequestError, html: bool, request_id: &HeaderValue) -> Response<Body> {
    let status = err.status();
    // Ours, or a trusted proxy's: visible ASCII either way.
    let id = request_id.to_str().unwrap_or("-");
    match err {
        RequestError::LoginRequired {
            login_url,
            redirect: may_redirect,
        } => {
            if *may_redirect && html {
                if let Ok(res) = redirect(StatusCode::FOUND, login_url) {
                    return res;
                }
            }
            let mut res = json(
                status,
                &serde_json::json!({ "error": "login_required", "login_url": login_url, "request_id": id }),
            );
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Cookie realm=\"oauthgate\""),
            );
            return res;
        }
        RequestError::BadBearer | RequestError::BearerRequired => {
            // RFC 6750 §3: an error code only when a token was sent.
            let (error, challenge) = match err {
                RequestError::BadBearer => ("invalid_token", "Bearer error=\"invalid_token\""),
                _ => ("token_required", "Bearer realm=\"oauthgate\""),
            };
            let mut res = json(
                status,
                &serde_json::json!({ "error": error, "request_id": id }),
            );
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            return res;
        }
        RequestError::Forbidden { reason, page } => {
            return match (html, page) {
                (true, Some(page)) => html_page(status, &with_request_id(page, id)),
                _ => json(
                    status,
                    &serde_json::json!({ "error": reason, "request_id": id }),
                ),
            }
        }
        _ => {}
    }
    if !html {
        let code = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_");
        let mut body =
            serde_json::json!({ "error": code, "message": err.public_message(), "request_id": id });
        if let Some(retry) = err.retry() {
            body["retry_url"] = retry.into();
        }
        return json(status, &body);
    }
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut body = format!("<p>{}</p>", escape(&err.public_message()));
    if let Some(retry) = err.retry() {
        body.push_str(&format!(
            "<p><a class=\"button\" href=\"{}\">Try again</a></p>",
            escape(retry)
        ));
    }
    body.push_str(&request_id_html(id));
    html_page(status, &page(&title, &body))
}

/// The policy of every page of ours: nothing loads, forms post only to this origin.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The request id as a line of a page.
fn request_id_html(id: &str) -> String {
    format!(
        "<p class=\"request-id\">Request ID: <code>{}</code></p>",
        escape(id)
    )
}

/// A complete page of ours (see [`page`]) with the request id added at the end of its main
/// part.
fn with_request_id(page: &str, id: &str) -> String {
    match page.rfind("</main>") {
        Some(at) => format!("{}{}{}", &page[..at], request_id_html(id), &page[at..]),
        None => page.to_owned(),
    }
}

/// An HTML response of ours, with a strict content security policy.
pub fn html_page(status: StatusCode, html: &str) -> Response<Body> {
    with_csp(status, html, HeaderValue::from_static(CSP))
}

/// Like [`html_page`] for a form whose answer redirects to `origin` (`https://host[:port]`).
/// Chromium applies `form-action` to every redirect that follows a form's submission, so the
/// central's own login form, which answers with a 303 to the client gateway's callback on
/// another origin, must name exactly that origin, or the browser stops at the redirect.
pub fn html_page_posting_to(status: StatusCode, html: &str, origin: &str) -> Response<Body> {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {origin}; frame-ancestors 'none'"
    );
    // An origin with a character a header cannot carry (it was checked as a URL, so none)
    // falls back to the strict policy rather than failing the page.
    let value = HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP));
    with_csp(status, html, value)
}

fn with_csp(status: StatusCode, html: &str, csp: HeaderValue) -> Response<Body> {
    let mut res = response(status, "text/html; charset=utf-8", html.to_owned());
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp);
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A redirect to `location` (already a valid URL or path).
pub fn redirect(status: StatusCode, location: &str) -> Result<Response<Body>, RequestError> {
    let value = HeaderValue::from_str(location)
        .map_err(|_| RequestError::Invalid("The redirect address is not valid.".into()))?;
    let mut res = response(status, "text/plain; charset=utf-8", Bytes::new());
    res.headers_mut().insert(header::LOCATION, value);
    Ok(res)
}

/// A complete HTML document around `body_html`, with the product's small inline style.
pub fn page(title: &str, body_html: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · oauthgate</title><style>{STYLE}</style></head>\
<body><main><h1>{title}</h1>{body_html}</main>\
<footer>oauthgate</footer></body></html>\n",
        title = escape(title),
    )
}

const STYLE: &str =
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}\
main{max-width:32rem;margin:12vh auto 0;padding:2rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 3px #0002}h1{font-size:1.4rem;margin-top:0}\
footer{text-align:center;color:#4a5360;font-size:.85rem;margin:1rem}\
.request-id{color:#4a5360;font-size:.85rem}\
a.button,button{display:inline-block;font:inherit;padding:.5rem 1rem;border-radius:6px;border:0;\
background:#1f5fbf;color:#fff;text-decoration:none;cursor:pointer}\
a.button:focus,button:focus,input:focus{outline:3px solid #f5a623;outline-offset:2px}\
label{display:block;margin:.75rem 0 .25rem}input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}\
ul.providers{list-style:none;padding:0}ul.providers li{margin:.5rem 0}\
ul.providers a.button{display:block;text-align:center}\
@media (max-width:36rem){main{margin:0;border-radius:0;box-shadow:none}}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    /// The definition by lookups (as it stood before the one-pass form).
    fn navigation_by_lookups(headers: &HeaderMap) -> bool {
        match headers.get("sec-fetch-mode") {
            Some(mode) => mode.as_bytes() == b"navigate",
            None => headers
                .get_all(header::ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html"))),
        }
    }

    proptest::proptest! {
        #[test]
        fn navigation_in_one_pass_is_navigation_by_lookups(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["sec-fetch-mode", "accept", "x-a"]),
                    proptest::sample::select(vec![
                        &b"navigate"[..], b"cors", b"text/html", b"application/json",
                        b"text/html;q=0.9, */*", b"\xfftext/html", b"",
                    ]),
                ),
                0..6,
            )
        ) {
            let mut h = HeaderMap::new();
            for (name, value) in lines {
                h.append(name, HeaderValue::from_bytes(value).unwrap());
            }
            proptest::prop_assert_eq!(is_navigation(&h), navigation_by_lookups(&h));
        }
    }

    #[test]
    fn navigation_detection_follows_fetch_metadata_first() {
        assert!(is_navigation(&headers(&[("sec-fetch-mode", "navigate")])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-mode", "cors"),
            ("accept", "text/html")
        ])));
        assert!(is_navigation(&headers(&[("accept", "text/html,*/*")])));
        assert!(!is_navigation(&headers(&[("accept", "application/json")])));
        assert!(!is_navigation(&headers(&[])));
    }

    #[test]
    fn errors_are_json_for_api_calls_and_pages_for_browsers() {
        let id = HeaderValue::from_static("req-1");
        let api = error_response(&RequestError::UpstreamTimeout, false, &id);
        assert_eq!(api.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
        let html = error_response(&RequestError::NoRoute, true, &id);
        assert_eq!(html.status(), StatusCode::NOT_FOUND);
        assert!(html.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }

    #[test]
    fn a_form_redirecting_elsewhere_names_exactly_that_origin() {
        let csp = |res: &Response<Body>| {
            res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let strict = csp(&html_page(StatusCode::OK, "x"));
        assert!(strict.contains("form-action 'self';"), "{strict}");
        let res = html_page_posting_to(StatusCode::OK, "x", "https://app.example:8443");
        let open = csp(&res);
        assert!(
            open.contains("form-action 'self' https://app.example:8443;"),
            "{open}"
        );
        assert!(open.starts_with("default-src 'none'"), "{open}");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
