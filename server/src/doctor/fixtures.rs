//! What the unit tests of several checks share: an Okta issuer, its
//! discovery document, and settings against it.

use serde_json::json;

use crate::config::Config;

use super::discovery::Metadata;
use super::report::{Check, Status};

pub const ISS: &str = "https://integrator-1234567.okta.com/oauth2/default";

/// The settings read from `vars`, over `ISSUER` and `CLIENT_ID` of [`ISS`].
pub fn config(vars: &[(&str, &str)]) -> Config {
    let mut all = vec![("ISSUER", ISS), ("CLIENT_ID", "0oa1b2c3d4e5f6g7h8i9")];
    all.extend_from_slice(vars);
    Config::from_lookup(
        |name| {
            all.iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        },
        "127.0.0.1:3000".parse().unwrap(),
    )
    .unwrap()
}

/// The discovery document of an Okta custom authorization server.
pub fn okta_doc() -> Metadata {
    Metadata::parse(
        json!({
            "issuer": ISS,
            "authorization_endpoint": format!("{ISS}/v1/authorize"),
            "jwks_uri": format!("{ISS}/v1/keys"),
            "end_session_endpoint": format!("{ISS}/v1/logout"),
            "token_endpoint": format!("{ISS}/v1/token"),
            "revocation_endpoint": format!("{ISS}/v1/revoke"),
            "response_types_supported": ["code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post", "okta_post_message"],
            "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

pub fn statuses(checks: &[Check]) -> Vec<Status> {
    checks.iter().map(|c| c.status).collect()
}
