//! oauthgate: a login gateway for self-hosted web platforms.
//!
//! This file only wires the modules together; `main.rs` is the command line.
#![forbid(unsafe_code)]

pub mod accesslog;
mod app;
pub mod assertion;
mod body;
pub mod central;
pub mod check;
pub mod config;
mod context;
mod cookies;
pub mod error;
mod fdlimit;
mod fsutil;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod groups;
pub mod health;
mod keyfile;
mod maps;
mod metrics;
mod pages;
mod path;
mod reload;
pub mod server;
pub mod shutdown;
mod step;
mod tls;
mod upstream;
pub mod util;
mod warnlimit;

pub use config::Config;
pub use gateway::bearer::mint_token;
pub use gateway::session::admin as sessions;
pub use server::Server;
