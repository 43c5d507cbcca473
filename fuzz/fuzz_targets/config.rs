//! The config loader: never panics, and every error says where: `not valid YAML: …`, or a key
//! path (`gateway.routes[2].upstream: …`, `config: …` for the document as a whole).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `${S…}` variables are set (a 64-hex-digit secret), all others unset.
    let lookup = |name: &str| name.starts_with('S').then(|| "ab".repeat(32));
    let Err(e) = Config::parse(text, &lookup) else {
        return;
    };
    let shown = e.to_string();
    match &e {
        ConfigError::Syntax(_) => assert!(shown.starts_with("not valid YAML: ")),
        ConfigError::Invalid { path, .. } => {
            // A key path (keys may be any YAML string, even `:x`), never nothing.
            assert!(!path.is_empty(), "an error without a key path: {shown:?}");
            assert!(shown.starts_with(&format!("{path}: ")), "{shown:?}");
        }
        ConfigError::Read { .. } => panic!("parsing text read a file: {shown}"),
    }
});
