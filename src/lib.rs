//! oauthgate: a login gateway for self-hosted web platforms.
//!
//! This file only wires the modules together; `main.rs` is the command line.
#![forbid(unsafe_code)]

pub mod app;
pub mod assertion;
pub mod central;
pub mod config;
mod context;
pub mod cookies;
pub mod error;
mod fsutil;
pub mod gateway;
pub mod pages;
pub mod path;
pub mod server;
pub mod shutdown;
mod step;
pub mod tls;
mod upstream;
pub mod util;

pub use config::Config;
pub use server::Server;
