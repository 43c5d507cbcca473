//! `gateway.session`: the secret and the old secrets still accepted during a rotation, the
//! absolute lifetime and the idle timeout, each checked with an error naming its key path.

use std::time::Duration;

use super::super::central::Secret;
use super::super::raw::{OneOrMany, RawSession};
use super::super::{duration, ConfigError};

/// What a secret must be at least (`openssl rand -hex 32` gives 64 characters).
const MIN_SECRET: usize = 32;

/// The validated `gateway.session` values (the cookie name is checked in `values`).
pub(super) struct SessionValues {
    pub secret: Option<Secret>,
    pub previous_secrets: Vec<Secret>,
    pub ttl: Duration,
    pub idle_timeout: Option<Duration>,
}

pub(super) fn session_values(raw: &mut RawSession) -> Result<SessionValues, ConfigError> {
    let secret = raw
        .secret
        .take()
        .map(|s| checked_secret("gateway.session.secret", s))
        .transpose()?;
    // One secret or a list; a single value (`previous_secrets: ${OLD}`) is a list of one.
    let previous_secrets = match raw.previous_secrets.take() {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![checked_secret("gateway.session.previous_secrets", s)?],
        Some(OneOrMany::Many(list)) => list
            .into_iter()
            .enumerate()
            .map(|(i, s)| checked_secret(&format!("gateway.session.previous_secrets[{i}]"), s))
            .collect::<Result<_, _>>()?,
    };
    let ttl = whole_seconds("gateway.session.ttl", raw.ttl.as_deref(), 12 * 3600)?;
    let idle_timeout = match raw.idle_timeout.as_deref() {
        None => None,
        Some(text) => {
            let idle = whole_seconds("gateway.session.idle_timeout", Some(text), 0)?;
            if idle > ttl {
                return Err(ConfigError::at(
                    "gateway.session.idle_timeout",
                    format!(
                        "`{text}` is longer than gateway.session.ttl ({}): a session ends at \
                         its ttl whatever its use, so the idle timeout can only be shorter",
                        humantime::format_duration(ttl)
                    ),
                ));
            }
            Some(idle)
        }
    };
    Ok(SessionValues {
        secret,
        previous_secrets,
        ttl,
        idle_timeout,
    })
}

/// A session secret at `path`: at least [`MIN_SECRET`] characters. The message never quotes
/// the value, which may be most of a real secret.
fn checked_secret(path: &str, text: String) -> Result<Secret, ConfigError> {
    if text.len() < MIN_SECRET {
        return Err(ConfigError::at(
            path,
            "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(Secret(text))
}

/// A duration at `path` in whole seconds (`default_secs` when absent). Sessions expire, and
/// their cookies' `Max-Age` counts, in whole seconds: `500ms` used to pass and end every
/// session at once, and a fraction of a second cannot be honoured. A few seconds are valid
/// (tests use them) but live up to a second less than they say; a minute or more is exact
/// to 2 %.
fn whole_seconds(
    path: &str,
    text: Option<&str>,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    let value = duration(path, text, Duration::from_secs(default_secs))?;
    if value < Duration::from_secs(1) || value.subsec_nanos() != 0 {
        return Err(ConfigError::at(
            path,
            format!(
                "`{}` is not a whole number of seconds: sessions expire in whole seconds \
                 (use at least 1m in production)",
                text.unwrap_or_default()
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const SECRET_A: &str = "a-secret-of-at-least-32-characters-0001";
    const SECRET_B: &str = "b-secret-of-at-least-32-characters-0002";

    fn parse(session: &str) -> Result<Config, String> {
        let text = format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost:8443\ntls: {{self_signed: true}}\n\
             gateway:\n  session: {session}\n  routes:\n    - {{prefix: /, upstream: \"http://a\"}}\n"
        );
        Config::parse(&text, &|name| match name {
            "OLD_SESSION_SECRET" => Some(SECRET_A.to_owned()),
            "SHORT" => Some("short".to_owned()),
            _ => None,
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn idle_timeout_and_previous_secrets_are_optional() {
        let g = parse("{}").unwrap().gateway.unwrap();
        assert_eq!(g.session_idle_timeout, None);
        assert!(g.session_previous_secrets.is_empty());
        assert_eq!(g.session_ttl.as_secs(), 12 * 3600);
    }

    #[test]
    fn idle_timeout_and_previous_secrets_are_read() {
        let g = parse(&format!(
            "{{secret: {SECRET_B}, ttl: 12h, idle_timeout: 2h, \
             previous_secrets: [\"${{OLD_SESSION_SECRET}}\", {SECRET_B}x]}}"
        ))
        .unwrap()
        .gateway
        .unwrap();
        assert_eq!(g.session_idle_timeout.map(|d| d.as_secs()), Some(7200));
        let old: Vec<&str> = g
            .session_previous_secrets
            .iter()
            .map(|s| s.0.as_str())
            .collect();
        assert_eq!(old, [SECRET_A, &format!("{SECRET_B}x")]);
        // Equal to the ttl is allowed (the idle timeout then never ends a session first).
        let g = parse("{ttl: 1h, idle_timeout: 60m}")
            .unwrap()
            .gateway
            .unwrap();
        assert_eq!(g.session_idle_timeout.map(|d| d.as_secs()), Some(3600));
    }

    #[test]
    fn bad_values_name_their_key_path() {
        let cases = [
            (
                "{idle_timeout: 0s}",
                "gateway.session.idle_timeout: must be longer than zero",
            ),
            (
                "{idle_timeout: soon}",
                "gateway.session.idle_timeout: `soon` is not a duration",
            ),
            (
                "{idle_timeout: 1500ms}",
                "gateway.session.idle_timeout: `1500ms` is not a whole",
            ),
            (
                "{ttl: 1h, idle_timeout: 2h}",
                "gateway.session.idle_timeout: `2h` is longer than gateway.session.ttl (1h)",
            ),
            (
                "{idle_timeout: 13h}",
                "gateway.session.idle_timeout: `13h` is longer",
            ),
            (
                "{previous_secrets: [short]}",
                "gateway.session.previous_secrets[0]: must be at least 32",
            ),
            (
                "{previous_secrets: [\"${SHORT}\"]}",
                "gateway.session.previous_secrets[0]: must be at least 32",
            ),
            (
                "{previous_secrets: [\"${NOT_SET_ANYWHERE}\"]}",
                "gateway.session.previous_secrets[0]: environment variable NOT_SET_ANYWHERE",
            ),
            (
                "{previous_secrets: [$OLD_SESSION_SECRET]}",
                "gateway.session.previous_secrets[0]: the value is a `$NAME` without braces",
            ),
            (
                "{previous_secrets: oldsecret}",
                "gateway.session.previous_secrets: must be at least 32",
            ),
            ("{previous_secrets: [{a: oldsecret}]}", "gateway.session"),
            (
                "{secret: short}",
                "gateway.session.secret: must be at least 32",
            ),
            (
                "{ttl: 500ms}",
                "gateway.session.ttl: `500ms` is not a whole",
            ),
        ];
        for (session, want) in cases {
            let got = parse(session).unwrap_err();
            assert!(
                got.starts_with(want),
                "{session}\n  got:  {got}\n  want: {want}…"
            );
            assert!(
                !got.contains("oldsecret"),
                "a secret is never quoted: {got}"
            );
        }
    }
}
