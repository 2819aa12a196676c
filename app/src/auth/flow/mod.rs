//! The two sign-in flows behind one small interface. What differs between
//! them is in two files side by side:
//!
//! | step | [`implicit`] (`RESPONSE_TYPE=id_token token`, `token`, `id_token`) | [`code`] (`RESPONSE_TYPE=code`) |
//! |---|---|---|
//! | authorize request | `response_mode=fragment` | `response_mode` query or fragment, PKCE `code_challenge` (S256) |
//! | where the answer is | the fragment | the query (or fragment) |
//! | the tokens | in the answer | from the token endpoint, for the code and its verifier |
//! | `at_hash` | required with both tokens | checked when present |
//! | renewal | a hidden `prompt=none` iframe | the refresh token if there is one, else the same iframe |
//!
//! Everything else is shared: the answer's `state` and `error`
//! ([`check_answer`]), the checks of the tokens ([`check_tokens`]), the
//! session, the tabs, sign-out, the server-function client.

pub mod code;
pub mod implicit;

use super::callback::{
    check_answer, check_tokens, AtHash, CallbackError, Expect, Platform, Tokens,
};
use super::config::PublicAuthConfig;
use super::fragment::{parse_fragment, FragmentParams};
use super::request::{authorize_url, PendingSignIn, Prompt};
use super::session::Session;

/// Which flow a configuration signs in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Implicit,
    Code,
}

impl Flow {
    pub fn of(cfg: &PublicAuthConfig) -> Flow {
        if cfg.is_code_flow() {
            Flow::Code
        } else {
            Flow::Implicit
        }
    }

    /// Where to send the browser (or the hidden iframe) for `pending`.
    pub async fn authorize_url(
        self,
        cfg: &PublicAuthConfig,
        pending: &PendingSignIn,
        prompt: Prompt,
        platform: &impl Platform,
    ) -> Result<String, CallbackError> {
        let challenge = match self {
            Flow::Implicit => None,
            Flow::Code => Some(code::challenge(pending, platform).await?),
        };
        Ok(authorize_url(cfg, pending, challenge.as_deref(), prompt))
    }

    /// The answer's parameters, from what followed the callback's path
    /// (`?query#fragment`).
    pub fn answer(
        self,
        cfg: &PublicAuthConfig,
        tail: &str,
    ) -> Result<FragmentParams, CallbackError> {
        let part = match self {
            Flow::Implicit => implicit::answer(tail),
            Flow::Code => code::answer(cfg, tail),
        };
        Ok(parse_fragment(part)?)
    }

    /// The tokens for an answer that passed [`check_answer`] (with DPoP,
    /// bound to the key `dpop_jkt` names, or a new one).
    async fn tokens(
        self,
        cfg: &PublicAuthConfig,
        answer: FragmentParams,
        pending: &PendingSignIn,
        dpop_jkt: Option<&str>,
        platform: &impl Platform,
    ) -> Result<Tokens, CallbackError> {
        match self {
            Flow::Implicit => implicit::tokens(answer),
            Flow::Code => code::tokens(cfg, answer, pending, dpop_jkt, platform).await,
        }
    }

    fn at_hash(self) -> AtHash {
        match self {
            Flow::Implicit => implicit::AT_HASH,
            Flow::Code => code::AT_HASH,
        }
    }
}

/// Finishes a sign-in: every check of the answer and its tokens, in the
/// order the specs give, and returns the session to keep and the path to
/// go back to. `pending` must already be out of storage, so it is used at
/// most once whatever happens here. `now_ms` is the browser's clock in
/// milliseconds.
pub async fn complete_sign_in(
    answer: FragmentParams,
    pending: Option<PendingSignIn>,
    cfg: &PublicAuthConfig,
    now_ms: i64,
    platform: &impl Platform,
) -> Result<(Session, String), CallbackError> {
    sign_in_with_key(answer, pending, cfg, now_ms, None, platform).await
}

/// [`complete_sign_in`], with DPoP binding the tokens to the key `dpop_jkt`
/// names (a renewal keeps its session's key) or to a new one.
async fn sign_in_with_key(
    answer: FragmentParams,
    pending: Option<PendingSignIn>,
    cfg: &PublicAuthConfig,
    now_ms: i64,
    dpop_jkt: Option<&str>,
    platform: &impl Platform,
) -> Result<(Session, String), CallbackError> {
    let pending = check_answer(&answer, pending, now_ms.div_euclid(1000))?;
    let flow = Flow::of(cfg);
    let tokens = flow
        .tokens(cfg, answer, &pending, dpop_jkt, platform)
        .await?;
    let expect = Expect {
        nonce: Some(&pending.nonce),
        at_hash: flow.at_hash(),
        carry_over: None,
    };
    let session = check_tokens(tokens, cfg, expect, now_ms, platform).await?;
    Ok((session, pending.return_to))
}

/// A silent sign-in's answer while `current` is the session: every check
/// of [`complete_sign_in`], and the new tokens must be for the same person
/// (with no ID token, as the server reads the new access token).
pub async fn complete_renewal(
    answer: FragmentParams,
    pending: PendingSignIn,
    cfg: &PublicAuthConfig,
    now_ms: i64,
    platform: &impl Platform,
    current: &Session,
) -> Result<Session, CallbackError> {
    let key = current.dpop_jkt.as_deref();
    let (session, _) = sign_in_with_key(answer, Some(pending), cfg, now_ms, key, platform).await?;
    same_person(session, current)
}

/// `renewed`, if it is for the person of `current`.
pub fn same_person(renewed: Session, current: &Session) -> Result<Session, CallbackError> {
    if renewed.sub != current.sub {
        return Err(CallbackError::DifferentUser);
    }
    Ok(renewed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::callback::HttpAnswer;
    use crate::auth::fragment::parse_fragment;
    use crate::auth::id_token::IdTokenError;
    use crate::auth::id_token::{at_hash, tests::token};
    use crate::auth::request::tests::cfg;
    use crate::auth::request::PENDING_MAX_AGE;
    use crate::auth::session::tests::access_token_of;
    use std::cell::Cell;
    use std::cell::RefCell;

    const NOW: i64 = 1_800_000_000;

    /// Accepts or refuses every signature, and counts the calls; says an
    /// access token is for `subject` (as the server's whoami would); answers
    /// every post to the token endpoint with `token_answer`, and keeps the
    /// forms it was sent.
    struct FakeSignatures {
        valid: bool,
        calls: Cell<u32>,
        subject: Result<String, CallbackError>,
        subject_calls: Cell<u32>,
        token_answer: (u16, String),
        posted: RefCell<Vec<(String, String)>>,
        /// Answers given before `token_answer`, first one first.
        queued: RefCell<std::collections::VecDeque<HttpAnswer>>,
        /// The DPoP key's thumbprint proofs are made with, if any; and the
        /// proofs asked for (key, nonce seen).
        dpop_jkt: Option<String>,
        proofs: RefCell<Vec<Option<String>>>,
    }

    impl Platform for FakeSignatures {
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

        async fn post_form(
            &self,
            url: &str,
            form: &str,
            _dpop: Option<&str>,
        ) -> Result<HttpAnswer, CallbackError> {
            self.posted
                .borrow_mut()
                .push((url.to_string(), form.to_string()));
            if let Some(answer) = self.queued.borrow_mut().pop_front() {
                return Ok(answer);
            }
            Ok(HttpAnswer {
                status: self.token_answer.0,
                body: self.token_answer.1.clone(),
                dpop_nonce: None,
            })
        }

        async fn dpop_proof(
            &self,
            jkt: Option<&str>,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<(String, String), CallbackError> {
            self.proofs.borrow_mut().push(jkt.map(str::to_string));
            match &self.dpop_jkt {
                Some(key) => Ok(("a.proof.jws".into(), key.clone())),
                None => Err(CallbackError::Dpop("no key in this test".into())),
            }
        }
    }

    fn ok_sigs() -> FakeSignatures {
        FakeSignatures {
            valid: true,
            calls: Cell::new(0),
            subject: Ok("alice@example.com".into()),
            subject_calls: Cell::new(0),
            token_answer: (500, String::new()),
            posted: RefCell::new(Vec::new()),
            queued: RefCell::new(Default::default()),
            dpop_jkt: None,
            proofs: RefCell::new(Vec::new()),
        }
    }

    fn pending() -> PendingSignIn {
        PendingSignIn {
            state: "state-1".into(),
            nonce: "nonce-1".into(),
            return_to: "/messages".into(),
            created_at: NOW - 10,
            code_verifier: None,
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

    // The code flow.

    fn code_cfg(scopes: &str) -> PublicAuthConfig {
        let mut c = cfg();
        c.response_type = "code".into();
        c.response_mode = "query".into();
        c.scopes = scopes.into();
        c
    }

    fn code_pending() -> PendingSignIn {
        PendingSignIn {
            code_verifier: Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into()),
            ..pending()
        }
    }

    fn id_token_claims(sub: &str, nonce: Option<&str>, at_hash_of: Option<&str>) -> String {
        let mut claims = serde_json::json!({
            "iss": "http://localhost:3100/oauth2/default", "sub": sub, "aud": "0oa-dev-spa",
            "exp": NOW + 3600, "iat": NOW, "name": "Alice Example"
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if let Some(at) = at_hash_of {
            claims["at_hash"] = at_hash(at).into();
        }
        token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string())
    }

    fn token_json(
        access_token: &str,
        id_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> String {
        let mut json = serde_json::json!({
            "token_type": "Bearer", "expires_in": 300, "access_token": access_token,
            "scope": "openid profile offline_access",
        });
        if let Some(id) = id_token {
            json["id_token"] = id.into();
        }
        if let Some(r) = refresh_token {
            json["refresh_token"] = r.into();
        }
        json.to_string()
    }

    fn answering(status: u16, body: String) -> FakeSignatures {
        FakeSignatures {
            token_answer: (status, body),
            ..ok_sigs()
        }
    }

    #[test]
    fn pkce_is_computed_as_rfc_7636_appendix_b_says() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = code::verifier_of(&octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(verifier.len(), 43);
        use sha2::{Digest, Sha256};
        assert_eq!(
            code::challenge_of(&Sha256::digest(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_code_is_exchanged_with_its_verifier_and_the_tokens_checked() {
        let cfg = code_cfg("openid profile offline_access");
        let idt = id_token_claims("00u1", Some("nonce-1"), None);
        let sigs = answering(200, token_json("AT", Some(&idt), Some("RT1")));
        let answer = parse_fragment("code=c0de&state=state-1").unwrap();
        let (session, back) = futures::executor::block_on(complete_sign_in(
            answer,
            Some(code_pending()),
            &cfg,
            NOW * 1000,
            &sigs,
        ))
        .unwrap();
        assert_eq!(back, "/messages");
        assert_eq!(
            (
                session.access_token.as_deref(),
                session.refresh_token.as_deref(),
                session.sub.as_str()
            ),
            (Some("AT"), Some("RT1"), "00u1")
        );
        // The access token's life, not the ID token's, in the code flow.
        assert_eq!(session.expires_at, NOW + 300);
        let posted = sigs.posted.borrow();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].0, "http://localhost:3100/oauth2/default/v1/token");
        let form: Vec<(String, String)> = form_urlencoded::parse(posted[0].1.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            form,
            [
                ("grant_type", "authorization_code"),
                ("code", "c0de"),
                ("redirect_uri", "http://localhost:3000/login/callback"),
                ("client_id", "0oa-dev-spa"),
                (
                    "code_verifier",
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
                ),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn the_code_flows_refusals() {
        let cfg = code_cfg("openid profile");
        let run_code = |answer: &str, pending: PendingSignIn, sigs: &FakeSignatures| {
            futures::executor::block_on(complete_sign_in(
                parse_fragment(answer).unwrap(),
                Some(pending),
                &cfg,
                NOW * 1000,
                sigs,
            ))
            .map(|(s, _)| s)
        };
        let idt = id_token_claims("00u1", Some("nonce-1"), None);
        let good = || answering(200, token_json("AT", Some(&idt), None));
        // A changed state is refused before anything is sent.
        let sigs = good();
        assert_eq!(
            run_code("code=c&state=state-2", code_pending(), &sigs).unwrap_err(),
            CallbackError::StateMismatch
        );
        assert!(sigs.posted.borrow().is_empty());
        // No code; no verifier kept for the attempt.
        assert_eq!(
            run_code("state=state-1&scope=x", code_pending(), &good()).unwrap_err(),
            CallbackError::Missing("code")
        );
        assert_eq!(
            run_code("code=c&state=state-1", pending(), &good()).unwrap_err(),
            CallbackError::NoVerifier
        );
        // The issuer's error, in the answer or from the token endpoint.
        assert!(matches!(
            run_code("error=access_denied&state=state-1", code_pending(), &good()).unwrap_err(),
            CallbackError::Denied { .. }
        ));
        let replayed = answering(
            400,
            r#"{"error":"invalid_grant","error_description":"The authorization code is invalid or has expired."}"#.into(),
        );
        let err = run_code("code=c&state=state-1", code_pending(), &replayed).unwrap_err();
        assert!(
            err.to_string()
                .contains("The authorization code is invalid or has expired."),
            "{err}"
        );
        // The ID token keeps every check: the nonce...
        let other_nonce = id_token_claims("00u1", Some("other"), None);
        assert_eq!(
            run_code(
                "code=c&state=state-1",
                code_pending(),
                &answering(200, token_json("AT", Some(&other_nonce), None))
            )
            .unwrap_err(),
            IdTokenError::Nonce.into()
        );
        // ...and at_hash when present, though it may be left out.
        let wrong_hash = id_token_claims("00u1", Some("nonce-1"), Some("OTHER"));
        assert_eq!(
            run_code(
                "code=c&state=state-1",
                code_pending(),
                &answering(200, token_json("AT", Some(&wrong_hash), None))
            )
            .unwrap_err(),
            IdTokenError::AtHash.into()
        );
        let right_hash = id_token_claims("00u1", Some("nonce-1"), Some("AT"));
        assert!(run_code(
            "code=c&state=state-1",
            code_pending(),
            &answering(200, token_json("AT", Some(&right_hash), None))
        )
        .is_ok());
        // openid asked for: an ID token must come.
        assert_eq!(
            run_code(
                "code=c&state=state-1",
                code_pending(),
                &answering(200, token_json("AT", None, None))
            )
            .unwrap_err(),
            CallbackError::Missing("id_token")
        );
    }

    #[test]
    fn the_code_can_be_in_the_fragment() {
        let mut cfg = code_cfg("openid");
        assert_eq!(
            Flow::of(&cfg)
                .answer(&cfg, "?code=q&state=s#code=f")
                .unwrap()
                .code
                .as_deref(),
            Some("q")
        );
        cfg.response_mode = "fragment".into();
        assert_eq!(
            Flow::of(&cfg)
                .answer(&cfg, "?code=q&state=s#code=f")
                .unwrap()
                .code
                .as_deref(),
            Some("f")
        );
        let implicit = crate::auth::request::tests::cfg();
        assert_eq!(
            Flow::of(&implicit)
                .answer(&implicit, "?x=1#access_token=a")
                .unwrap()
                .access_token
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            Flow::of(&implicit)
                .answer(&implicit, "?access_token=a")
                .unwrap_err(),
            CallbackError::Fragment(crate::auth::fragment::FragmentError::Empty)
        );
    }

    #[test]
    fn a_refresh_rotates_the_refresh_token_and_keeps_the_person() {
        let cfg = code_cfg("openid profile offline_access");
        let idt = id_token_claims("00u1", Some("nonce-1"), None);
        let (current, _) = futures::executor::block_on(complete_sign_in(
            parse_fragment("code=c&state=state-1").unwrap(),
            Some(code_pending()),
            &cfg,
            NOW * 1000,
            &answering(200, token_json("AT1", Some(&idt), Some("RT1"))),
        ))
        .unwrap();
        let refresh = |sigs: &FakeSignatures| {
            futures::executor::block_on(code::refresh(&cfg, &current, (NOW + 200) * 1000, sigs))
        };

        // A new ID token (no nonce: it answers no authorize request) and a
        // new refresh token.
        let new_idt = id_token_claims("00u1", None, None);
        let sigs = answering(200, token_json("AT2", Some(&new_idt), Some("RT2")));
        let renewed = refresh(&sigs).unwrap();
        assert_eq!(
            (
                renewed.access_token.as_deref(),
                renewed.refresh_token.as_deref(),
                renewed.expires_at
            ),
            (Some("AT2"), Some("RT2"), NOW + 200 + 300)
        );
        let form: Vec<(String, String)> =
            form_urlencoded::parse(sigs.posted.borrow()[0].1.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            form,
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", "RT1"),
                ("client_id", "0oa-dev-spa")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );

        // Without an ID token or a refresh token in the answer, the
        // session's own go on.
        let renewed = refresh(&answering(200, token_json("AT3", None, None))).unwrap();
        assert_eq!(
            (
                renewed.id_token,
                renewed.refresh_token.as_deref(),
                renewed.sub.as_str()
            ),
            (current.id_token.clone(), Some("RT1"), "00u1")
        );
        assert_eq!(renewed.claims, current.claims);

        // Someone else's tokens are refused; so is a refused refresh token.
        let bob = id_token_claims("00u-bob", None, None);
        assert_eq!(
            refresh(&answering(200, token_json("AT4", Some(&bob), Some("RT4")))).unwrap_err(),
            CallbackError::DifferentUser
        );
        let refused = refresh(&answering(400, r#"{"error":"invalid_grant"}"#.into())).unwrap_err();
        assert!(refused.refresh_refused());
    }

    // DPoP.

    fn bound_token(sub: &str, jkt: &str) -> String {
        let claims = serde_json::json!({ "sub": sub, "exp": NOW + 300, "cnf": { "jkt": jkt } });
        token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string())
    }

    fn dpop_json(access_token: &str, token_type: &str, id_token: &str) -> String {
        serde_json::json!({
            "token_type": token_type, "expires_in": 300, "access_token": access_token,
            "id_token": id_token, "refresh_token": "RT1", "scope": "openid offline_access",
        })
        .to_string()
    }

    #[test]
    fn with_dpop_the_tokens_are_bound_to_the_proofs_key_after_one_nonce_round() {
        let mut cfg = code_cfg("openid offline_access");
        cfg.dpop = true;
        let idt = id_token_claims("00u1", Some("nonce-1"), None);
        let sign_in = |sigs: &FakeSignatures| {
            futures::executor::block_on(complete_sign_in(
                parse_fragment("code=c&state=state-1").unwrap(),
                Some(code_pending()),
                &cfg,
                NOW * 1000,
                sigs,
            ))
            .map(|(s, _)| s)
        };
        let with_key = |body: String| FakeSignatures {
            dpop_jkt: Some("jkt-1".into()),
            ..answering(200, body)
        };

        // The token endpoint wants a nonce first (as Okta's does): one more
        // try, with a new proof.
        let sigs = with_key(dpop_json(&bound_token("alice", "jkt-1"), "DPoP", &idt));
        sigs.queued.borrow_mut().push_back(HttpAnswer {
            status: 400,
            body: r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof."}"#.into(),
            dpop_nonce: Some("n1".into()),
        });
        let session = sign_in(&sigs).unwrap();
        assert_eq!(session.dpop_jkt.as_deref(), Some("jkt-1"));
        assert_eq!(sigs.posted.borrow().len(), 2);
        // A new key for a new sign-in, then the same key for the retry.
        assert_eq!(*sigs.proofs.borrow(), [None, Some("jkt-1".to_string())]);

        // A nonce asked for twice is not chased.
        let sigs = with_key(dpop_json(&bound_token("alice", "jkt-1"), "DPoP", &idt));
        for _ in 0..2 {
            sigs.queued.borrow_mut().push_back(HttpAnswer {
                status: 400,
                body: r#"{"error":"use_dpop_nonce"}"#.into(),
                dpop_nonce: Some("n".into()),
            });
        }
        assert!(
            matches!(sign_in(&sigs).unwrap_err(), CallbackError::TokenEndpoint { error, .. } if error == "use_dpop_nonce")
        );
        assert_eq!(sigs.posted.borrow().len(), 2);

        // A Bearer answer to a DPoP request is not kept (RFC 9449 §5)...
        let bearer = with_key(dpop_json(&bound_token("alice", "jkt-1"), "Bearer", &idt));
        assert_eq!(
            sign_in(&bearer).unwrap_err(),
            CallbackError::TokenType("Bearer".into())
        );
        // ...nor a token bound to another key, or to none.
        let other = with_key(dpop_json(&bound_token("alice", "jkt-2"), "DPoP", &idt));
        assert_eq!(sign_in(&other).unwrap_err(), CallbackError::DpopBinding);
        let unbound = with_key(dpop_json("AT", "DPoP", &idt));
        assert_eq!(sign_in(&unbound).unwrap_err(), CallbackError::DpopBinding);
        // No key, no sign-in.
        let keyless = answering(200, dpop_json(&bound_token("alice", "jkt-1"), "DPoP", &idt));
        assert!(matches!(
            sign_in(&keyless).unwrap_err(),
            CallbackError::Dpop(_)
        ));

        // A refresh proves the session's own key.
        let session = sign_in(&with_key(dpop_json(
            &bound_token("alice", "jkt-1"),
            "DPoP",
            &idt,
        )))
        .unwrap();
        let sigs = with_key(dpop_json(
            &bound_token("alice", "jkt-1"),
            "DPoP",
            &id_token_claims("00u1", None, None),
        ));
        let renewed =
            futures::executor::block_on(code::refresh(&cfg, &session, (NOW + 100) * 1000, &sigs))
                .unwrap();
        assert_eq!(*sigs.proofs.borrow(), [Some("jkt-1".to_string())]);
        assert_eq!(renewed.dpop_jkt.as_deref(), Some("jkt-1"));
    }
}
