//! oauthgate: a login gateway for self-hosted web platforms.
//!
//! This file only wires the modules together; `main.rs` is the command line.
#![forbid(unsafe_code)]

pub mod app;
pub mod assertion;
pub mod central;
pub mod config;
pub mod cookies;
pub mod error;
mod fsutil;
pub mod gateway;
pub mod pages;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod util;

pub use config::Config;
pub use server::Server;
