//! `${VAR}` substitution, before the shape is deserialised (so before values are typed).
//!
//! Substitution happens on parsed YAML scalars, never on the raw text, so a secret containing
//! `:` or `#` cannot change the document's structure. `$${` stands for a literal `${`. A value
//! that is exactly one `${NAME}` may stand for a number or a boolean (`max_connections:
//! ${MAXCONN}`): it stays a string unless the field it fills refuses a string (see
//! [`Substituted::typed`]). A `$NAME` without braces is not substituted: a secret field that is
//! only that is an error (the secret would be the public text `$NAME`); anywhere else, a
//! secret containing one included, it is a warning.

use serde_yaml::Value;

use super::ConfigError;

/// What substitution noticed besides the values it replaced.
#[derive(Debug, Default)]
pub(super) struct Substituted {
    /// Key paths whose whole value was one `${NAME}` that reads as a YAML number or boolean,
    /// with that typed value: used only when the field refuses the string.
    pub typed: Vec<(String, Value)>,
    /// Values that look like a variable without braces, outside secret fields.
    pub warnings: Vec<String>,
}

/// Replaces every `${NAME}` in the string scalars of `value`, looking names up with `lookup`.
/// Paths in `retype` get their typed value (see [`Substituted::typed`]) instead of the string.
pub(super) fn substitute(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    retype: &[String],
) -> Result<Substituted, ConfigError> {
    let mut found = Substituted::default();
    walk(value, &mut Vec::new(), lookup, retype, &mut found)?;
    Ok(found)
}

fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    retype: &[String],
    found: &mut Substituted,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            let at = key_path(path);
            if let Some(name) = bare_variable(s) {
                let whole = s.len() == name.len() + 1;
                bare(&at, name, whole, path, found)?;
            }
            let whole = whole_variable(s);
            *s = expand(s, lookup).map_err(|message| ConfigError::at(&at, message))?;
            if whole {
                if let Ok(typed @ (Value::Number(_) | Value::Bool(_))) =
                    serde_yaml::from_str::<Value>(s)
                {
                    if retype.contains(&at) {
                        *value = typed;
                    } else {
                        found.typed.push((at, typed));
                    }
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                walk(item, path, lookup, retype, found)?;
                path.pop();
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                path.push(name);
                walk(v, path, lookup, retype, found)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, lookup, retype, found)?,
        _ => {}
    }
    Ok(())
}

/// A `$NAME` left as is. A secret field whose whole value is one `$NAME` is refused: the
/// secret would be that public text. A secret that merely contains one (`pa$Sword`) was valid
/// before and stays valid, with a warning. Messages about a secret never quote its text, which
/// may be the secret itself; elsewhere the warning names the variable.
fn bare(
    at: &str,
    name: &str,
    whole: bool,
    path: &[String],
    found: &mut Substituted,
) -> Result<(), ConfigError> {
    let key = path
        .iter()
        .rev()
        .find(|p| !p.starts_with('['))
        .map_or("", String::as_str);
    if key.contains("secret") {
        if whole {
            // An environment variable's usual spelling is named in the fix; any other word
            // might be the secret itself, and is not repeated.
            let env_style = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let fix = if env_style {
                format!("`${{{name}}}`")
            } else {
                String::from("`${NAME}`")
            };
            return Err(ConfigError::at(
                at,
                format!(
                    "the value is a `$NAME` without braces, which is not substituted (only \
                     `${{NAME}}` is): write {fix}, or, if the secret really is that text, put it \
                     in an environment variable and write `${{VAR}}`"
                ),
            ));
        }
        found.warnings.push(format!(
            "{at}: contains a `$` followed by a name, taken literally; if part of it was meant \
             as an environment variable, write `${{NAME}}`"
        ));
        return Ok(());
    }
    found.warnings.push(format!(
        "{at}: `${name}` is taken literally; write `${{{name}}}` to use the environment variable"
    ));
    Ok(())
}

/// The name of the first `$NAME` (a `$` then a letter or `_`) outside `${…}` and `$${`.
fn bare_variable(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let rest = &text[i + 1..];
        if rest.starts_with("${") || rest.starts_with('{') {
            // Substituted (or escaped): skip to its end.
            i += rest.find('}').map_or(bytes.len(), |e| e + 2);
            continue;
        }
        if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            return Some(&rest[..end]);
        }
        i += 1;
    }
    None
}

/// Whether `text` is exactly one `${NAME}`.
fn whole_variable(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Joins path parts the way errors print them: `gateway.routes[2].upstream`.
pub(super) fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        if !out.is_empty() && !part.starts_with('[') {
            out.push('.');
        }
        out.push_str(part);
    }
    // A document that is a bare string or a list has no key of its own: its errors name
    // `config`, as other errors about the document as a whole do.
    if out.is_empty() || out.starts_with('[') {
        out.insert_str(0, "config");
    }
    out
}

fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_owned())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3:cr#t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_variables_and_keeps_other_dollars() {
        assert_eq!(expand("a-${SECRET}-b", &env).unwrap(), "a-s3:cr#t-b");
        assert_eq!(expand("${EMPTY}x", &env).unwrap(), "x");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("$${SECRET}", &env).unwrap(), "${SECRET}");
    }

    #[test]
    fn missing_or_malformed_variables_are_errors_naming_them() {
        let err = expand("${NOPE}", &env).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${OPEN", &env).is_err());
        assert!(expand("${bad name}", &env).is_err());
    }

    #[test]
    fn errors_carry_the_key_path() {
        let mut doc: Value =
            serde_yaml::from_str("gateway:\n  routes:\n    - upstream: ${NOPE}\n").unwrap();
        let err = substitute(&mut doc, &env, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gateway.routes[0].upstream: environment variable NOPE is not set"
        );
    }

    /// Found by `fuzz/fuzz_targets/config.rs`: a document that is only `${X` printed
    /// ": unterminated …", an error naming no key path.
    #[test]
    fn errors_outside_any_key_name_the_document() {
        for (text, want) in [
            ("${OPEN", "config: unterminated `${`"),
            (
                "- ${NOPE}",
                "config[0]: environment variable NOPE is not set",
            ),
            (
                "\"\": ${NOPE}",
                "config: environment variable NOPE is not set",
            ),
        ] {
            let mut doc: Value = serde_yaml::from_str(text).unwrap();
            let err = substitute(&mut doc, &env, &[]).unwrap_err();
            assert!(err.to_string().starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_bare_dollar_name_is_refused_in_secrets_and_a_warning_elsewhere() {
        let mut doc: Value =
            serde_yaml::from_str("gateway:\n  session:\n    secret: $SESSION_SECRET\n").unwrap();
        let err = substitute(&mut doc, &env, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("gateway.session.secret: the value is a `$NAME` without braces"),
            "{err}"
        );
        // The fix names an environment-style variable; any other word is never repeated.
        assert!(err.contains("write `${SESSION_SECRET}`"), "{err}");
        let mut doc: Value = serde_yaml::from_str("p:\n  client_secret: $Hunter2\n").unwrap();
        let err = substitute(&mut doc, &env, &[]).unwrap_err().to_string();
        assert!(!err.contains("Hunter2"), "{err}");
        // A secret that only contains one stays valid (it was before), with a warning that
        // does not quote it either.
        let mut doc: Value =
            serde_yaml::from_str("p:\n  client_secret: k9Zq7$Hunter2Staple\n").unwrap();
        let found = substitute(&mut doc, &env, &[]).unwrap();
        assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
        assert!(found.warnings[0].starts_with("p.client_secret: contains a `$`"));
        assert!(
            !found.warnings[0].contains("Hunter2"),
            "{:?}",
            found.warnings
        );
        let mut doc: Value =
            serde_yaml::from_str("b: [\"cost $5\", \"$${X}\", \"${SECRET}\"]\ntitle: hi $USER\n")
                .unwrap();
        let found = substitute(&mut doc, &env, &[]).unwrap();
        assert_eq!(
            found.warnings,
            ["title: `$USER` is taken literally; write `${USER}` to use the environment variable"]
        );
    }

    #[test]
    fn a_whole_variable_may_be_typed_on_request() {
        let lookup = |n: &str| (n == "N").then(|| "500".to_owned());
        let text = "limits: {max_connections: \"${N}\"}\nx: \"a${N}\"\n";
        let mut doc: Value = serde_yaml::from_str(text).unwrap();
        let found = substitute(&mut doc, &lookup, &[]).unwrap();
        assert_eq!(found.typed.len(), 1, "{found:?}");
        assert_eq!(found.typed[0].0, "limits.max_connections");
        assert_eq!(doc["limits"]["max_connections"], Value::from("500"));
        let mut doc: Value = serde_yaml::from_str(text).unwrap();
        substitute(&mut doc, &lookup, &["limits.max_connections".into()]).unwrap();
        assert_eq!(doc["limits"]["max_connections"], Value::from(500));
        assert_eq!(doc["x"], Value::from("a500"));
    }
}
