//! The sign-in form: showing it for a pending authorization request, and
//! `POST {issuer}/v1/sign-in`, which checks the password, starts the
//! session and answers the authorization request.
//!
//! The authorization request waits server-side under a random id that the
//! form echoes back. Cross-site form posts (login CSRF) are refused twice
//! over: the pending request is bound to a random `SameSite=Strict` cookie
//! set with the page, which a cross-site post does not carry, and a post
//! whose `Sec-Fetch-Site` or `Origin` shows another origin is refused.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::answer::answer_request;
use super::html::{self, DemoUser, SignInView};
use super::params::Params;
use super::password::dummy_hash;
use super::request::{AuthorizeRequest, ErrorCode, ErrorResponse};
use super::session::{self, Session};
use super::{tokens, DevIdpEvent, DevIdpState, ISSUER_PATH};

/// Where the form posts, under the issuer.
pub const SIGN_IN_PATH: &str = "/v1/sign-in";

/// Deliberately the same for a wrong username and a wrong password.
pub const WRONG_CREDENTIALS: &str = "The username or password is incorrect.";

/// An authorization request waiting for the user to sign in.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    request: AuthorizeRequest,
    /// The value of the browser's binding cookie when the page was shown.
    binding: String,
}

/// Shows the sign-in page for `request`.
pub fn begin(state: &DevIdpState, headers: &HeaderMap, request: AuthorizeRequest) -> Response {
    // Reuse the browser's binding cookie so that two tabs signing in at
    // once do not invalidate each other.
    let existing = session::read_cookie(headers, &state.inner.binding_cookie)
        .filter(|v| session::is_well_formed_id(v))
        .map(str::to_owned);
    let (binding, new_binding) = match existing {
        Some(binding) => (binding, false),
        None => match session::random_id() {
            Some(binding) => (binding, true),
            None => return random_failure(state),
        },
    };
    let username = request.login_hint.clone().unwrap_or_default();
    let pending = PendingSignIn {
        request,
        binding: binding.clone(),
    };
    let Some(request_id) = state.inner.pending.insert(pending.clone()) else {
        return random_failure(state);
    };
    let mut response = render(state, &request_id, &pending.request, &username, None);
    if new_binding {
        let cookie =
            session::set_cookie(&state.inner.binding_cookie, &binding, "Strict", ISSUER_PATH);
        append_cookie(&mut response, &cookie);
    }
    response
}

fn render(
    state: &DevIdpState,
    request_id: &str,
    request: &AuthorizeRequest,
    username: &str,
    error: Option<&str>,
) -> Response {
    let config = state.config();
    let client_name = config
        .client(&request.client_id)
        .map_or(request.client_id.as_str(), |c| c.name.as_str());
    let action = format!("{ISSUER_PATH}{SIGN_IN_PATH}");
    let demo_users = config
        .users
        .iter()
        .filter_map(|u| {
            u.demo_password.as_deref().map(|password| DemoUser {
                login: &u.login,
                password,
                scopes: u.scopes.join(" "),
            })
        })
        .collect();
    html::sign_in_page(&SignInView {
        action: &action,
        request_id,
        client_name,
        username,
        error,
        demo_users,
        redirect_origin: html::csp_source(&request.redirect_uri),
    })
}

/// `POST {issuer}/v1/sign-in`.
pub async fn submit(State(state): State<DevIdpState>, headers: HeaderMap, body: Bytes) -> Response {
    let bad = |message: &str| {
        state.record(DevIdpEvent::InvalidRequest);
        html::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is not valid",
            message,
        )
    };
    let refused = |message: &str| {
        state.record(DevIdpEvent::Refused);
        tracing::debug!(message, "sign-in form post refused");
        html::error_page(StatusCode::FORBIDDEN, "Sign-in refused", message)
    };

    if let Some(problem) = cross_origin_problem(&state, &headers) {
        return refused(problem);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return bad("The sign-in form must be posted as application/x-www-form-urlencoded.");
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad("The sign-in form is not valid UTF-8.");
    };
    let params = match Params::parse(text) {
        Ok(params) => params,
        Err(err) => return bad(&format!("{err}.")),
    };
    if params.first_repeated().is_some() {
        return bad("A field of the sign-in form was sent more than once.");
    }
    let get = |name: &str| params.get(name).ok().flatten();

    let Some(request_id) = get("request") else {
        return bad("The sign-in form has no request id.");
    };
    let Some(pending) = state.inner.pending.get(request_id) else {
        return bad("This sign-in page has expired or was already used. \
             Go back to the application and sign in again.");
    };
    let binding = session::read_cookie(&headers, &state.inner.binding_cookie).unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        binding.as_bytes(),
        pending.binding.as_bytes(),
    )
    .is_err()
    {
        return refused("This sign-in form was not opened in this browser.");
    }
    // The request was checked when it arrived; check again that the client
    // still has this redirect URI before anything is sent to it.
    let request = pending.request;
    let registered = state
        .config()
        .client(&request.client_id)
        .is_some_and(|c| c.has_redirect_uri(&request.redirect_uri));
    if !registered {
        return bad("The redirect_uri is not registered for this client.");
    }

    match get("action") {
        Some("cancel") => {
            state.inner.pending.remove(request_id);
            ErrorResponse::new(
                &request,
                ErrorCode::AccessDenied,
                "The user cancelled the sign-in.",
            )
            .into_response()
        }
        // Pressing Enter submits the first button, but be lenient with
        // clients that send no button at all.
        Some("sign-in") | None => {
            let username = get("username").unwrap_or("").trim().to_owned();
            let password = get("password").unwrap_or("").to_owned();
            let Some(login) = check_password(&state, username.clone(), password).await else {
                state.record(DevIdpEvent::WrongCredentials);
                tracing::info!("sign-in failed: wrong username or password");
                return render(
                    &state,
                    request_id,
                    &request,
                    &username,
                    Some(WRONG_CREDENTIALS),
                );
            };
            // Single use: a second post of the same form finds nothing.
            if state.inner.pending.take(request_id).is_none() {
                return bad("This sign-in page was already used.");
            }
            // A new sign-in (prompt=login) replaces the browser's session.
            if let Some(old) = session::read_cookie(&headers, &state.inner.session_cookie) {
                state.inner.sessions.remove(old);
            }
            let session = Session {
                login,
                auth_time: tokens::now(),
            };
            let Some(session_id) = state.inner.sessions.insert(session.clone()) else {
                return random_failure(&state);
            };
            state.record(DevIdpEvent::SignedIn);
            tracing::info!(login = %session.login, "signed in");
            let mut response = answer_request(&state, &request, &session_id, &session);
            let cookie = session::set_cookie(
                &state.inner.session_cookie,
                &session_id,
                state.inner.session_same_site,
                "/",
            );
            append_cookie(&mut response, &cookie);
            response
        }
        Some(_) => bad("The sign-in form sent an unknown action."),
    }
}

/// Why the post looks cross-origin, if it does.
///
/// `Sec-Fetch-Site` is the best signal. `Origin` is checked when present,
/// except `null`, which browsers send for the form of a `no-referrer` page
/// such as this one; the binding cookie covers that case.
fn cross_origin_problem(state: &DevIdpState, headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Some("The sign-in form was posted from another site.");
        }
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    if origin == "null" || state.is_own_origin(origin, headers) {
        return None;
    }
    Some("The sign-in form was posted from another origin.")
}

/// The canonical login if `username` and `password` match a user. PBKDF2
/// is CPU work, so it runs off the executor; an unknown username is checked
/// against a dummy hash so it takes as long as a wrong password.
async fn check_password(state: &DevIdpState, username: String, password: String) -> Option<String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let user = state.config().user_by_login(&username);
        let hash = match user {
            Some(user) => &user.password,
            None => dummy_hash(),
        };
        let matches = hash.verify(&password);
        user.filter(|_| matches).map(|u| u.login.clone())
    })
    .await
    .ok()
    .flatten()
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn random_failure(state: &DevIdpState) -> Response {
    state.record(DevIdpEvent::ServerError);
    tracing::error!("the system random generator failed");
    html::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Server error",
        "The server could not start a sign-in. Try again.",
    )
}
