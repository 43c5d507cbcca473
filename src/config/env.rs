//! `${VAR}` substitution in string values, before the shape is deserialised.
//!
//! Substitution happens on parsed YAML scalars, never on the raw text, so a secret containing
//! `:` or `#` cannot change the document's structure. `$${` stands for a literal `${`.

use serde_yaml::Value;

use super::ConfigError;

/// Replaces every `${NAME}` in the string scalars of `value`, looking names up with `lookup`.
pub(super) fn substitute(
    value: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s, lookup).map_err(|message| ConfigError::at(&key_path(path), message))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                substitute(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                path.push(name);
                substitute(v, path, lookup)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, path, lookup)?,
        _ => {}
    }
    Ok(())
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
        let err = substitute(&mut doc, &mut Vec::new(), &env).unwrap_err();
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
            let err = substitute(&mut doc, &mut Vec::new(), &env).unwrap_err();
            assert!(err.to_string().starts_with(want), "{text}: {err}");
        }
    }
}
