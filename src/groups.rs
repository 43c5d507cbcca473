//! Groups in claims: an OIDC groups claim (of an id_token at the central, of a bearer token at
//! the gateway) read by name or JSON pointer, and the bounds every source's groups are kept
//! within. Shared by both roles.

use serde_json::{Map, Value};

use crate::config::GroupsClaim;

/// The most groups kept for one user: the session cookie has to carry them.
pub const MAX_GROUPS: usize = 500;
/// The longest group name kept.
const MAX_GROUP_LEN: usize = 256;

/// The groups in `claims` at `claim`: a string is one group, a list its string members;
/// anything else (absent, a number, an object) is no groups.
pub fn from_claims(claims: &Map<String, Value>, claim: &GroupsClaim) -> Vec<String> {
    let value = match claim {
        GroupsClaim::Name(name) => claims.get(name),
        GroupsClaim::Pointer(pointer) => {
            // `Map` has no `pointer`; the first step picks the claim, the rest walk into it.
            let mut steps = pointer.splitn(3, '/').skip(1);
            let first = steps.next().map(unescape);
            let rest = steps.next().map(|r| format!("/{r}"));
            first
                .and_then(|f| claims.get(&f))
                .and_then(|v| match &rest {
                    Some(rest) => v.pointer(rest),
                    None => Some(v),
                })
        }
    };
    let names: Vec<String> = match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    bounded(names)
}

/// RFC 6901 §4: `~1` is `/`, `~0` is `~`.
fn unescape(step: &str) -> String {
    step.replace("~1", "/").replace("~0", "~")
}

/// `names` without empty ones, over-long ones or repeats, in their first order, at most
/// [`MAX_GROUPS`].
pub fn bounded(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if out.len() >= MAX_GROUPS {
            break;
        }
        let ok = !name.is_empty() && name.len() <= MAX_GROUP_LEN && !out.contains(&name);
        if ok {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_claim_by_name_or_pointer_as_string_or_list() {
        let c = claims(json!({
            "groups": ["admins", "ops", 3, "admins", ""],
            "team": "blue",
            "realm_access": {"roles": ["reader", "writer"]},
            "a/b": {"c~d": "odd"},
            "n": 7,
        }));
        let name = |n: &str| GroupsClaim::Name(n.into());
        let ptr = |p: &str| GroupsClaim::Pointer(p.into());
        assert_eq!(from_claims(&c, &name("groups")), ["admins", "ops"]);
        assert_eq!(from_claims(&c, &name("team")), ["blue"]);
        assert_eq!(
            from_claims(&c, &ptr("/realm_access/roles")),
            ["reader", "writer"]
        );
        assert_eq!(from_claims(&c, &ptr("/groups")), ["admins", "ops"]);
        assert_eq!(from_claims(&c, &ptr("/a~1b/c~0d")), ["odd"]);
        assert_eq!(from_claims(&c, &ptr("/realm_access/roles/1")), ["writer"]);
        for none in [
            name("missing"),
            name("n"),
            ptr("/realm_access"),
            ptr("/x/y"),
        ] {
            assert!(from_claims(&c, &none).is_empty(), "{none:?}");
        }
    }

    #[test]
    fn groups_are_bounded() {
        let many = (0..MAX_GROUPS + 10).map(|i| format!("g{i}"));
        assert_eq!(bounded(many).len(), MAX_GROUPS);
        assert!(bounded(["x".repeat(MAX_GROUP_LEN + 1)]).is_empty());
    }
}
