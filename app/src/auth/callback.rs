//! Finishing a sign-in on `/login/callback`: every check of the fragment,
//! in the order the specs give, with nothing kept unless all pass.
//!
//! The browser glue (`browser.rs`) reads and wipes the fragment and takes
//! the pending sign-in out of storage before calling [`complete_sign_in`];
//! what is done outside this module (the RS256 signature check, SHA-256,
//! and asking the server whom an access token names) is passed in as a
//! [`Verifier`].

use super::config::PublicAuthConfig;
use super::fragment::{FragmentError, FragmentParams};
use super::id_token::{self, Expected, IdTokenError};
use super::request::{PendingSignIn, PENDING_MAX_AGE};
use super::session::{access_token_claims, Session};

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
    /// With no ID token, the server is asked whom the access token names
    /// (`whoami`); it could not say.
    #[error("the server could not say whom the access token is for: {0}")]
    Subject(String),
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

/// What the checks take from outside this module: the browser's WebCrypto
/// for the ID token's RS256 signature and the SHA-256 behind `at_hash`,
/// and the resource server for whom an access token names.
pub trait Verifier {
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

    /// The `sub` of `access_token` as the server reads it after checking
    /// the token (`whoami`): with no ID token, the only word on whom the
    /// tokens are for.
    fn access_token_subject(
        &self,
        access_token: &str,
    ) -> impl std::future::Future<Output = Result<String, CallbackError>>;
}

/// Runs every check on a callback and returns the session to keep and the
/// path to go back to. `pending` must already be out of storage, so it is
/// used at most once whatever happens here. `now_ms` is the browser's clock
/// in milliseconds.
pub async fn complete_sign_in(
    params: FragmentParams,
    pending: Option<PendingSignIn>,
    cfg: &PublicAuthConfig,
    now_ms: i64,
    verifier: &impl Verifier,
) -> Result<(Session, String), CallbackError> {
    let now = now_ms.div_euclid(1000);
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
        verifier
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
            Some(token) => Some(verifier.sha256(token.as_bytes()).await?),
            None => None,
        };
        id_token::check_at_hash(&jwt.claims, access_token_sha256.as_deref())?;
        Some(jwt.claims)
    } else {
        None
    };

    // 5. Whom the tokens are for: the ID token says; without one, the
    // server, which checks the access token, says.
    let sub = match (&claims, access_token.as_deref()) {
        (Some(c), _) => c.sub.clone(),
        (None, Some(token)) => verifier.access_token_subject(token).await?,
        (None, None) => return Err(CallbackError::Missing("access_token")),
    };

    // The session lasts as long as its shortest-lived token: `expires_in`
    // on this browser's clock, and what the tokens themselves say (the
    // same bound a tab applies to a session it takes from another).
    let token_exps = [
        claims.as_ref().map(|c| c.exp),
        access_token
            .as_deref()
            .and_then(access_token_claims)
            .and_then(|c| c.exp),
    ];
    let expires_at = expires_in
        .map(|secs| now.saturating_add(secs))
        .into_iter()
        .chain(token_exps.into_iter().flatten())
        .min()
        .ok_or(CallbackError::Missing("expires_in"))?;
    let scopes = params.scope.as_deref().unwrap_or(&cfg.scopes);
    let session = Session {
        issuer: cfg.issuer.clone(),
        client_id: cfg.client_id.clone(),
        response_type: cfg.response_type.clone(),
        sub,
        access_token,
        id_token: params.id_token.filter(|_| claims.is_some()),
        issued_at_ms: now_ms,
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
/// new tokens must be for the person of the `current` session (with no ID
/// token, as the server reads the new access token).
pub async fn complete_renewal(
    params: FragmentParams,
    pending: PendingSignIn,
    cfg: &PublicAuthConfig,
    now_ms: i64,
    verifier: &impl Verifier,
    current: &Session,
) -> Result<Session, CallbackError> {
    let (session, _) = complete_sign_in(params, Some(pending), cfg, now_ms, verifier).await?;
    if session.sub != current.sub {
        return Err(CallbackError::DifferentUser);
    }
    Ok(session)
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
    use crate::auth::session::tests::access_token_of;
    use std::cell::Cell;

    const NOW: i64 = 1_800_000_000;

    /// Accepts or refuses every signature, and counts the calls; says an
    /// access token is for `subject` (as the server's whoami would).
    struct FakeSignatures {
        valid: bool,
        calls: Cell<u32>,
        subject: Result<String, CallbackError>,
        subject_calls: Cell<u32>,
    }

    impl Verifier for FakeSignatures {
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

        async fn access_token_subject(&self, _: &str) -> Result<String, CallbackError> {
            self.subject_calls.set(self.subject_calls.get() + 1);
            self.subject.clone()
        }
    }

    fn ok_sigs() -> FakeSignatures {
        FakeSignatures {
            valid: true,
            calls: Cell::new(0),
            subject: Ok("alice@example.com".into()),
            subject_calls: Cell::new(0),
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
        futures::executor::block_on(complete_sign_in(params, pending, &cfg(), NOW * 1000, sigs))
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
            ..ok_sigs()
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
            NOW * 1000,
            &sigs,
        ))
        .unwrap();
        assert_eq!(
            (s.access_token.as_deref(), s.claims.is_none(), s.expires_at),
            (Some("AT"), true, NOW + 60)
        );
        // With no ID token, the person is whom the server says the access
        // token names, asked once.
        assert_eq!(
            (s.sub.as_str(), sigs.subject_calls.get()),
            ("alice@example.com", 1)
        );
        assert_eq!(
            (
                s.issuer.as_str(),
                s.client_id.as_str(),
                s.response_type.as_str()
            ),
            (
                "http://localhost:3100/oauth2/default",
                "0oa-dev-spa",
                "token"
            )
        );

        let mut id_only = cfg();
        id_only.response_type = "id_token".into();
        let claims = serde_json::json!({"iss": "http://localhost:3100/oauth2/default", "sub": "00u1",
            "aud": "0oa-dev-spa", "exp": NOW + 100, "iat": NOW, "nonce": "nonce-1"});
        let idt = token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string());
        let p = parse_fragment(&format!("id_token={idt}&state=state-1")).unwrap();
        let (s, _) = futures::executor::block_on(complete_sign_in(
            p,
            Some(pending()),
            &id_only,
            NOW * 1000,
            &sigs,
        ))
        .unwrap();
        assert_eq!((s.access_token, s.expires_at), (None, NOW + 100));
        assert_eq!((s.sub.as_str(), sigs.subject_calls.get()), ("00u1", 1));
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
        assert_eq!((s.issued_at_ms, s.expires_at), (NOW * 1000, NOW + 60));
        // ... and a JWT access token's own exp when that is earlier still.
        let at = access_token_of("alice@example.com", NOW + 30);
        let (s, _) = run(
            fragment(&at, &id_token_for(&at, "nonce-1"), "state-1"),
            Some(pending()),
            &sigs,
        )
        .unwrap();
        assert_eq!(s.expires_at, NOW + 30);
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
                NOW * 1000,
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
    fn without_an_id_token_a_renewal_is_checked_against_the_servers_word() {
        let mut token_only = cfg();
        token_only.response_type = "token".into();
        let answer = || {
            parse_fragment("access_token=AT2&token_type=Bearer&expires_in=60&state=state-1")
                .unwrap()
        };
        let renew = |sigs: &FakeSignatures, current: &Session| {
            futures::executor::block_on(complete_renewal(
                answer(),
                pending(),
                &token_only,
                NOW * 1000,
                sigs,
                current,
            ))
        };
        let alice = ok_sigs();
        let (current, _) = futures::executor::block_on(complete_sign_in(
            answer(),
            Some(pending()),
            &token_only,
            NOW * 1000,
            &alice,
        ))
        .unwrap();
        assert_eq!(renew(&alice, &current).unwrap().sub, "alice@example.com");

        // Someone else signed in at the issuer: the new token is theirs.
        let mallory = FakeSignatures {
            subject: Ok("mallory@example.com".into()),
            ..ok_sigs()
        };
        assert_eq!(
            renew(&mallory, &current).unwrap_err(),
            CallbackError::DifferentUser
        );
        // The server cannot say: nothing is adopted, and it may be retried.
        let down = FakeSignatures {
            subject: Err(CallbackError::Subject("the server is unavailable".into())),
            ..ok_sigs()
        };
        let err = renew(&down, &current).unwrap_err();
        assert!(matches!(err, CallbackError::Subject(_)) && err.renewal_may_retry());
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
