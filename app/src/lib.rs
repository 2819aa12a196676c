//! The Leptos application shared by the server (ssr) and the browser (hydrate).

pub mod api;
pub mod auth;
pub mod error;
pub mod pages;
pub mod routes;
pub mod shell;

pub use shell::{shell, App};
