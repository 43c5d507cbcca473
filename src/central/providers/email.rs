//! Which email address may stand for who logged in: only one the provider says it verified
//! (or one from a provider configured with `email_verified: true`). `allow.domains` and
//! `allow.emails` trust the address, so an unverified one would let anyone who types
//! `ceo@example.com` at a sloppy provider in.

use serde_json::{Map, Value};

/// Whether a document's `email_verified` says yes. A boolean per OIDC Core §5.1; the string
/// `"true"` too, as some providers (Amazon Cognito) send it.
fn says_verified(doc: &Map<String, Value>) -> bool {
    match doc.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

pub fn has_email(doc: &Map<String, Value>) -> bool {
    doc.get("email")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.is_empty())
}

/// Drops `email` from `info` unless this provider is trusted or `info` itself says the
/// address is verified.
pub fn keep_verified_email(info: &mut Map<String, Value>, trust: bool) {
    if !trust && !says_verified(info) {
        info.remove("email");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn only_verified_or_trusted_emails_are_kept() {
        let cases = [
            (serde_json::json!({"email": "a@x.org"}), false, false),
            (serde_json::json!({"email": "a@x.org"}), true, true),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": false}),
                false,
                false,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": true}),
                false,
                true,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": "true"}),
                false,
                true,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": "yes"}),
                false,
                false,
            ),
        ];
        for (input, trust, kept) in cases {
            let mut info = doc(input.clone());
            keep_verified_email(&mut info, trust);
            assert_eq!(info.contains_key("email"), kept, "{input} trust={trust}");
        }
    }
}
