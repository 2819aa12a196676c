//! The JSON error answers of the endpoints a client calls directly (token,
//! revoke, introspect): RFC 6749 §5.2's `{"error", "error_description"}`,
//! never cached, as Okta sends them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::params::FormError;

/// `status` with `{"error": code, "error_description": description}`.
/// `description` is this server's own text, never request data.
pub fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    no_store(&mut response);
    response
}

/// `400 invalid_request` for a body that is not a readable form.
pub fn bad_form(err: &FormError) -> Response {
    let description = match err {
        FormError::NotAForm => {
            "The request body must be application/x-www-form-urlencoded.".to_owned()
        }
        // Parameter names that are repeated are the client's text: only
        // plain ones are quoted.
        FormError::Repeated(repeated) if is_plain(&repeated.0) => {
            format!("The '{}' parameter was sent more than once.", repeated.0)
        }
        FormError::Repeated(_) => "A parameter was sent more than once.".to_owned(),
        FormError::Params(err) => format!("The {}.", err.to_string().trim_start_matches("the ")),
    };
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, which RFC 6749 asks
/// of every answer that carries tokens or token information.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn is_plain(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::super::params::{ParamError, Repeated};
    use super::*;

    #[test]
    fn errors_are_json_and_never_cached() {
        let response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "No.");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        assert_eq!(response.headers()["content-type"], "application/json");
    }

    #[test]
    fn bad_forms_are_invalid_requests() {
        for err in [
            FormError::NotAForm,
            FormError::Repeated(Repeated("token".into())),
            FormError::Repeated(Repeated("<script>".into())),
            FormError::Params(ParamError::BadEncoding),
        ] {
            assert_eq!(bad_form(&err).status(), StatusCode::BAD_REQUEST, "{err:?}");
        }
    }
}
