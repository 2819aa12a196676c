//! Finishing a sign-in on `/login/callback`: every check of the fragment,
//! in the order the specs give, with nothing kept unless all pass.
//!
//! The browser glue (`browser.rs`) reads and wipes the fragment and takes
//! the pending sign-in out of storage before calling [`complete_sign_in`];
//! the one thing done outside this module is the RS256 signature check,
//! passed in as a [`SignatureCheck`].

use super::config::PublicAuthConfig;
use super::fragment::{FragmentError, FragmentParams};
use super::id_token::{self, Expected, IdClaims, IdTokenError};
use super::request::{PendingSignIn, PENDING_MAX_AGE};
use serde::{Deserialize, Serialize};

/// A signed-in session: what a tab keeps (in memory or `localStorage`,
/// per `TOKEN_STORAGE`) and hands to the app's other tabs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    /// Unix seconds when these tokens arrived (the browser's clock).
    pub issued_at: i64,
    /// Unix seconds after which the session is over: the earlier expiry of
    /// the tokens it holds.
    pub expires_at: i64,
    /// Scopes granted, as the authorization server reported them.
    pub scopes: Vec<String>,
    /// The checked ID token claims, when an ID token came back.
    pub claims: Option<IdClaims>,
}

impl Session {
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// When to renew: `renew_before` seconds before expiry, or half-way
    /// through the tokens' life when that is shorter, so short-lived
    /// tokens are not renewed the moment they arrive.
    pub fn renew_at(&self, renew_before: i64) -> i64 {
        let lifetime = (self.expires_at - self.issued_at).max(0);
        self.expires_at - renew_before.clamp(0, lifetime / 2)
    }

    /// The person signed in, when an ID token says who it is.
    pub fn sub(&self) -> Option<&str> {
        self.claims.as_ref().map(|c| c.sub.as_str())
    }

    /// The best name to greet the user with.
    pub fn display_name(&self) -> String {
        self.claims
            .as_ref()
            .and_then(|c| {
                c.name
                    .clone()
                    .or_else(|| c.preferred_username.clone())
                    .or_else(|| c.email.clone())
            })
            .unwrap_or_else(|| "signed-in user".to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    Fragment(#[from] FragmentError),
    #[error("the sign-in response has no state parameter")]
    MissingState,
    #[error("this sign-in response was not started here or was already used (state)")]
    UnknownState,
    #[error("this sign-in response does not match the sign-in that was started (state)")]
    StateMismatch,
    #[error("the sign-in took too long; please start again")]
    Stale,
    #[error("{}", denied_message(.error, .description.as_deref()))]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("the token type is '{0}', not Bearer")]
    TokenType(String),
    #[error("the sign-in response has no {0}")]
    Missing(&'static str),
    #[error("the sign-in response has an invalid expires_in")]
    ExpiresIn,
    #[error("{0}")]
    IdToken(#[from] IdTokenError),
    #[error("the issuer's signing key could not be had: {0}")]
    KeyUnavailable(String),
    #[error("the renewed tokens are for another person")]
    DifferentUser,
    /// No answer from the sign-in service in the hidden iframe: within the
    /// timeout (seconds), or at all (0: something else loaded there).
    #[error("{}", no_answer_message(*.0))]
    NoAnswer(u32),
    #[error("this browser cannot sign in: {0}")]
    Browser(String),
}

impl CallbackError {
    /// Whether a silent renewal that failed this way may be tried again:
    /// not when the issuer says the person must sign in again (their
    /// session there ended, or it needs an answer from them), nor when the
    /// tokens are someone else's.
    pub fn renewal_may_retry(&self) -> bool {
        match self {
            CallbackError::Denied { error, .. } => !matches!(
                error.as_str(),
                "login_required"
                    | "interaction_required"
                    | "consent_required"
                    | "account_selection_required"
            ),
            CallbackError::DifferentUser => false,
            _ => true,
        }
    }
}

fn denied_message(error: &str, description: Option<&str>) -> String {
    match description {
        Some(d) => format!("the authorization server refused the sign-in: {error} ({d})"),
        None => format!("the authorization server refused the sign-in: {error}"),
    }
}

fn no_answer_message(timeout_secs: u32) -> String {
    match timeout_secs {
        0 => {
            "the sign-in service did not answer (it could not be reached, or showed a page)".into()
        }
        secs => format!("the sign-in service did not answer within {secs} s"),
    }
}

/// The crypto the checks take from the platform (WebCrypto in the
/// browser): the ID token's RS256 signature and the SHA-256 behind
/// `at_hash`.
pub trait SignatureCheck {
    fn verify(
        &self,
        kid: &str,
        signing_input: &str,
        signature: &[u8],
    ) -> impl std::future::Future<Output = Result<(), CallbackError>>;

    /// SHA-256 of `data`.
    fn sha256(
        &self,
        data: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, CallbackError>>;
}

/// Runs every check on a callback and returns the session to keep and the
/// path to go back to. `pending` must already be out of storage, so it is
/// used at most once whatever happens here.
pub async fn complete_sign_in(
    params: FragmentParams,
    pending: Option<PendingSignIn>,
    cfg: &PublicAuthConfig,
    now: i64,
    signatures: &impl SignatureCheck,
) -> Result<(Session, String), CallbackError> {
    // 1. state: present, started here, the same, not stale.
    let state = params.state.as_deref().ok_or(CallbackError::MissingState)?;
    let pending = pending.ok_or(CallbackError::UnknownState)?;
    if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
        return Err(CallbackError::StateMismatch);
    }
    if now - pending.created_at > PENDING_MAX_AGE {
        return Err(CallbackError::Stale);
    }

    // 2. An error answer from the authorization server.
    if let Some(error) = params.error {
        return Err(CallbackError::Denied {
            error: printable(&error),
            description: params.error_description.as_deref().map(printable),
        });
    }

    // 3. The access token and its type.
    let access_token = if cfg.wants_access_token() {
        let token_type = params
            .token_type
            .as_deref()
            .ok_or(CallbackError::Missing("token_type"))?;
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(CallbackError::TokenType(printable(token_type)));
        }
        Some(
            params
                .access_token
                .ok_or(CallbackError::Missing("access_token"))?,
        )
    } else {
        None
    };
    let expires_in = match params.expires_in.as_deref() {
        Some(s) => Some(s.parse::<u32>().map_err(|_| CallbackError::ExpiresIn)? as i64),
        None if access_token.is_some() => return Err(CallbackError::Missing("expires_in")),
        None => None,
    };

    // 4. The ID token: signature, claims, nonce, at_hash.
    let claims = if cfg.wants_id_token() {
        let raw = params
            .id_token
            .as_deref()
            .ok_or(CallbackError::Missing("id_token"))?;
        let jwt = id_token::decode(raw)?;
        signatures
            .verify(jwt.kid(), &jwt.signing_input, &jwt.signature)
            .await?;
        let expected = Expected {
            issuer: &cfg.issuer,
            client_id: &cfg.client_id,
            nonce: &pending.nonce,
            now,
        };
        id_token::check_claims(&jwt.claims, &expected)?;
        let access_token_sha256 = match access_token.as_deref() {
            Some(token) => Some(signatures.sha256(token.as_bytes()).await?),
            None => None,
        };
        id_token::check_at_hash(&jwt.claims, access_token_sha256.as_deref())?;
        Some(jwt.claims)
    } else {
        None
    };

    // The session lasts as long as its shortest-lived token.
    let expires_at = match (expires_in, &claims) {
        (Some(secs), Some(c)) => now.saturating_add(secs).min(c.exp),
        (Some(secs), None) => now.saturating_add(secs),
        (None, Some(c)) => c.exp,
        (None, None) => return Err(CallbackError::Missing("expires_in")),
    };
    let scopes = params.scope.as_deref().unwrap_or(&cfg.scopes);
    let session = Session {
        access_token,
        id_token: params.id_token.filter(|_| claims.is_some()),
        issued_at: now,
        expires_at,
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        claims,
    };
    Ok((session, pending.return_to))
}

/// A silent renewal's answer: every check of [`complete_sign_in`], and the
/// new tokens must be for the person of the `current` session.
pub async fn complete_renewal(
    params: FragmentParams,
    pending: PendingSignIn,
    cfg: &PublicAuthConfig,
    now: i64,
    signatures: &impl SignatureCheck,
    current: &Session,
) -> Result<Session, CallbackError> {
    let (session, _) = complete_sign_in(params, Some(pending), cfg, now, signatures).await?;
    match (current.sub(), session.sub()) {
        (Some(before), Some(after)) if before != after => Err(CallbackError::DifferentUser),
        _ => Ok(session),
    }
}

/// Keeps what an attacker-controlled fragment can put on screen short and plain.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::fragment::parse_fragment;
    use crate::auth::id_token::{at_hash, tests::token};
    use crate::auth::request::tests::cfg;
    use std::cell::Cell;

    const NOW: i64 = 1_800_000_000;

    /// Accepts or refuses every signature, and counts the calls.
    struct FakeSignatures {
        valid: bool,
        calls: Cell<u32>,
    }

    impl SignatureCheck for FakeSignatures {
        async fn verify(&self, kid: &str, _: &str, _: &[u8]) -> Result<(), CallbackError> {
            self.calls.set(self.calls.get() + 1);
            assert_eq!(kid, "k1");
            if self.valid {
                Ok(())
            } else {
                Err(IdTokenError::BadSignature.into())
            }
        }

        async fn sha256(&self, data: &[u8]) -> Result<Vec<u8>, CallbackError> {
            use sha2::{Digest, Sha256};
            Ok(Sha256::digest(data).to_vec())
        }
    }

    fn ok_sigs() -> FakeSignatures {
        FakeSignatures {
            valid: true,
            calls: Cell::new(0),
        }
    }

    fn pending() -> PendingSignIn {
        PendingSignIn {
            state: "state-1".into(),
            nonce: "nonce-1".into(),
            return_to: "/messages".into(),
            created_at: NOW - 10,
        }
    }

    fn id_token_for(access_token: &str, nonce: &str) -> String {
        let claims = serde_json::json!({
            "iss": "http://localhost:3100/oauth2/default", "sub": "00u1", "aud": "0oa-dev-spa",
            "exp": NOW + 3600, "iat": NOW, "nonce": nonce, "at_hash": at_hash(access_token),
            "name": "Alice Example"
        });
        token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string())
    }

    fn fragment(access_token: &str, id_token: &str, state: &str) -> FragmentParams {
        parse_fragment(&format!(
            "access_token={access_token}&token_type=Bearer&expires_in=3600&scope=openid+profile&id_token={id_token}&state={state}"
        ))
        .unwrap()
    }

    fn run(
        params: FragmentParams,
        pending: Option<PendingSignIn>,
        sigs: &FakeSignatures,
    ) -> Result<(Session, String), CallbackError> {
        futures::executor::block_on(complete_sign_in(params, pending, &cfg(), NOW, sigs))
    }

    #[test]
    fn accepts_a_good_response() {
        let sigs = ok_sigs();
        let (session, back) = run(
            fragment("AT", &id_token_for("AT", "nonce-1"), "state-1"),
            Some(pending()),
            &sigs,
        )
        .unwrap();
        assert_eq!(back, "/messages");
        assert_eq!(session.access_token.as_deref(), Some("AT"));
        assert_eq!(session.expires_at, NOW + 3600);
        assert_eq!(session.scopes, vec!["openid", "profile"]);
        assert_eq!(session.display_name(), "Alice Example");
        assert_eq!(sigs.calls.get(), 1);
    }

    #[test]
    fn state_is_checked_first() {
        let sigs = ok_sigs();
        let good = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        let mut no_state = good.clone();
        no_state.state = None;
        assert_eq!(
            run(no_state, Some(pending()), &sigs).unwrap_err(),
            CallbackError::MissingState
        );
        assert_eq!(
            run(good.clone(), None, &sigs).unwrap_err(),
            CallbackError::UnknownState
        );
        let other = fragment("AT", &id_token_for("AT", "nonce-1"), "state-2");
        assert_eq!(
            run(other, Some(pending()), &sigs).unwrap_err(),
            CallbackError::StateMismatch
        );
        let mut old = pending();
        old.created_at = NOW - PENDING_MAX_AGE - 1;
        assert_eq!(
            run(good, Some(old), &sigs).unwrap_err(),
            CallbackError::Stale
        );
        // An error answer with a wrong state is a state error, not shown as the issuer's.
        let forged = parse_fragment("error=access_denied&state=evil").unwrap();
        assert_eq!(
            run(forged, Some(pending()), &sigs).unwrap_err(),
            CallbackError::StateMismatch
        );
        assert_eq!(sigs.calls.get(), 0);
    }

    #[test]
    fn error_answers_are_reported_with_or_without_description() {
        let sigs = ok_sigs();
        let p =
            parse_fragment("error=access_denied&error_description=User+cancelled&state=state-1")
                .unwrap();
        let err = run(p, Some(pending()), &sigs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the authorization server refused the sign-in: access_denied (User cancelled)"
        );
        let p = parse_fragment("error=login_required&state=state-1").unwrap();
        assert!(matches!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            CallbackError::Denied {
                description: None,
                ..
            }
        ));
    }

    #[test]
    fn token_type_must_be_bearer_in_any_case() {
        let sigs = ok_sigs();
        let mut p = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        p.token_type = Some("bEaReR".into());
        assert!(run(p.clone(), Some(pending()), &sigs).is_ok());
        p.token_type = Some("mac".into());
        assert_eq!(
            run(p.clone(), Some(pending()), &sigs).unwrap_err(),
            CallbackError::TokenType("mac".into())
        );
        p.token_type = None;
        assert_eq!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            CallbackError::Missing("token_type")
        );
    }

    #[test]
    fn id_token_failures_keep_nothing() {
        let bad_sig = FakeSignatures {
            valid: false,
            calls: Cell::new(0),
        };
        let p = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        assert_eq!(
            run(p, Some(pending()), &bad_sig).unwrap_err(),
            IdTokenError::BadSignature.into()
        );

        let sigs = ok_sigs();
        let p = fragment("AT", &id_token_for("AT", "other-nonce"), "state-1");
        assert_eq!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            IdTokenError::Nonce.into()
        );

        // Access token swapped for another one: at_hash no longer matches.
        let p = fragment("OTHER", &id_token_for("AT", "nonce-1"), "state-1");
        assert_eq!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            IdTokenError::AtHash.into()
        );

        let mut p = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        p.id_token = None;
        assert_eq!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            CallbackError::Missing("id_token")
        );
    }

    #[test]
    fn token_only_and_id_token_only_flows() {
        let sigs = ok_sigs();
        let mut token_only = cfg();
        token_only.response_type = "token".into();
        let p = parse_fragment("access_token=AT&token_type=Bearer&expires_in=60&state=state-1")
            .unwrap();
        let (s, _) = futures::executor::block_on(complete_sign_in(
            p,
            Some(pending()),
            &token_only,
            NOW,
            &sigs,
        ))
        .unwrap();
        assert_eq!(
            (s.access_token.as_deref(), s.claims.is_none(), s.expires_at),
            (Some("AT"), true, NOW + 60)
        );

        let mut id_only = cfg();
        id_only.response_type = "id_token".into();
        let claims = serde_json::json!({"iss": "http://localhost:3100/oauth2/default", "sub": "00u1",
            "aud": "0oa-dev-spa", "exp": NOW + 100, "iat": NOW, "nonce": "nonce-1"});
        let idt = token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string());
        let p = parse_fragment(&format!("id_token={idt}&state=state-1")).unwrap();
        let (s, _) =
            futures::executor::block_on(complete_sign_in(p, Some(pending()), &id_only, NOW, &sigs))
                .unwrap();
        assert_eq!((s.access_token, s.expires_at), (None, NOW + 100));
    }

    #[test]
    fn bad_expires_in_is_refused() {
        let sigs = ok_sigs();
        let mut p = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        p.expires_in = Some("-5".into());
        assert_eq!(
            run(p, Some(pending()), &sigs).unwrap_err(),
            CallbackError::ExpiresIn
        );
    }

    #[test]
    fn the_session_ends_with_its_shortest_lived_token() {
        let sigs = ok_sigs();
        // The ID token expires 3600 s from now; the access token in 60 s.
        let mut p = fragment("AT", &id_token_for("AT", "nonce-1"), "state-1");
        p.expires_in = Some("60".into());
        let (s, _) = run(p, Some(pending()), &sigs).unwrap();
        assert_eq!((s.issued_at, s.expires_at), (NOW, NOW + 60));
    }

    #[test]
    fn renewal_is_due_before_expiry_but_not_at_once() {
        let (session, _) = run(
            fragment("AT", &id_token_for("AT", "nonce-1"), "state-1"),
            Some(pending()),
            &ok_sigs(),
        )
        .unwrap();
        // One hour: 60 s before the end.
        assert_eq!(session.renew_at(60), NOW + 3600 - 60);
        assert_eq!(session.renew_at(0), NOW + 3600);
        // Twenty seconds: half-way, not as soon as it arrives.
        let short = Session {
            expires_at: NOW + 20,
            ..session
        };
        assert_eq!(short.renew_at(60), NOW + 10);
    }

    #[test]
    fn a_renewal_must_be_for_the_same_person() {
        let sigs = ok_sigs();
        let (current, _) = run(
            fragment("AT", &id_token_for("AT", "nonce-1"), "state-1"),
            Some(pending()),
            &sigs,
        )
        .unwrap();
        let renew = |sub: &str| {
            let claims = serde_json::json!({
                "iss": "http://localhost:3100/oauth2/default", "sub": sub, "aud": "0oa-dev-spa",
                "exp": NOW + 3600, "iat": NOW, "nonce": "nonce-1", "at_hash": at_hash("AT2"),
            });
            let idt = token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string());
            futures::executor::block_on(complete_renewal(
                fragment("AT2", &idt, "state-1"),
                pending(),
                &cfg(),
                NOW,
                &sigs,
                &current,
            ))
        };
        assert_eq!(renew("00u1").unwrap().access_token.as_deref(), Some("AT2"));
        let other = renew("00u-bob").unwrap_err();
        assert_eq!(other, CallbackError::DifferentUser);
        assert!(!other.renewal_may_retry());
    }

    #[test]
    fn which_renewal_failures_are_final() {
        let denied = |error: &str| CallbackError::Denied {
            error: error.into(),
            description: None,
        };
        for error in ["login_required", "interaction_required", "consent_required"] {
            assert!(!denied(error).renewal_may_retry(), "{error}");
        }
        assert!(denied("server_error").renewal_may_retry());
        assert!(denied("temporarily_unavailable").renewal_may_retry());
        assert!(CallbackError::StateMismatch.renewal_may_retry());
        assert!(CallbackError::from(IdTokenError::Nonce).renewal_may_retry());
        assert!(CallbackError::KeyUnavailable("down".into()).renewal_may_retry());
    }
}
