//! oauthgate: a login gateway for self-hosted web platforms.
//!
//! This file only wires the modules together; `main.rs` is the command line.
#![forbid(unsafe_code)]

pub mod accesslog;
mod app;
pub mod assertion;
pub mod central;
pub mod config;
mod context;
mod cookies;
pub mod error;
mod fsutil;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod pages;
mod path;
pub mod server;
pub mod shutdown;
mod step;
mod tls;
mod upstream;
pub mod util;

pub use config::Config;
pub use server::Server;
