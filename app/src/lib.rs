//! The Leptos application shared by the server (ssr) and the browser (hydrate).

pub mod api;
pub mod auth;
pub mod pages;
pub mod shell;

pub use shell::{shell, App};
