//! The central server's Ed25519 signing key, kept in a file as [`crate::keyfile`] says.

pub use crate::keyfile::{generate, load, load_or_generate, to_file_text, write_new};
