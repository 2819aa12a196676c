//! The embedded development authorization server, driven over real HTTP
//! the way a browser and the app would, one redirect at a time.
//!
//! Run: `cargo test -p server --test dev_idp`.

#[path = "common/dpop_proofs.rs"]
mod proofs;
#[path = "common/dev_idp.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

fn keys_of(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// at_hash computed here, independently of the server's code.
fn independent_at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn discovery_documents_describe_the_issuer() {
    let idp = shared();
    assert_eq!(idp.client_id, CLIENT_ID);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = reqwest::get(idp.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // CORS headers only for a trusted Origin (see the CORS tests).
        assert!(response
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["issuer"], idp.issuer.as_str(), "{path}");
        assert_eq!(doc["authorization_endpoint"], idp.url("/v1/authorize"));
        assert_eq!(doc["jwks_uri"], idp.url("/v1/keys"));
        assert_eq!(doc["end_session_endpoint"], idp.url("/v1/logout"));
        assert_eq!(doc["userinfo_endpoint"], idp.url("/v1/userinfo"));
        assert_eq!(doc["revocation_endpoint"], idp.url("/v1/revoke"));
        assert_eq!(doc["introspection_endpoint"], idp.url("/v1/introspect"));
        assert_eq!(
            doc["revocation_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(doc["token_endpoint"], idp.url("/v1/token"));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(
            doc["response_types_supported"],
            json!(["code", "id_token", "token", "id_token token"])
        );
        assert_eq!(
            doc["response_modes_supported"],
            json!(["query", "fragment", "okta_post_message"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", "implicit", "refresh_token"])
        );
        assert_eq!(
            doc["scopes_supported"],
            json!([
                "openid",
                "profile",
                "email",
                "reports:read",
                "offline_access"
            ])
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        // RFC 9449 §5.1: DPoP is offered, with the algorithms checked.
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            json!(["ES256", "RS256"])
        );
        let claims: Vec<&str> = doc["claims_supported"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for claim in ["sub", "iss", "aud", "nonce", "at_hash", "email", "name"] {
            assert!(claims.contains(&claim), "{claim}");
        }
    }
    assert!(idp.issuer.starts_with("http://127.0.0.1:"));
    assert!(idp.issuer.ends_with("/oauth2/default"));
}

#[tokio::test]
async fn jwks_publishes_rs256_keys_with_cache_control() {
    let idp = shared();
    let response = reqwest::get(idp.url("/v1/keys")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "max-age=300");
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(keys_of(key), set(&["kty", "alg", "use", "kid", "n", "e"]));
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "a 2048-bit modulus");
    assert!(!key["kid"].as_str().unwrap().is_empty());
}

// ------------------------------------------------------ authorization errors

#[tokio::test]
async fn unknown_client_or_redirect_uri_gets_an_error_page_never_a_redirect() {
    let idp = shared();
    let browser = Browser::new();
    let base = AuthRequest::new("s-page");
    for request in [
        base.clone().set("client_id", "0oa-unknown"),
        base.clone().without("client_id"),
        base.clone()
            .set("redirect_uri", "http://evil.test/login/callback"),
        base.clone()
            .set("redirect_uri", "http://app.test/login/callback/"),
        base.clone()
            .set("redirect_uri", "HTTP://app.test/login/callback"),
        base.clone().without("redirect_uri"),
        base.clone().add("client_id", CLIENT_ID),
        base.clone().add("redirect_uri", REDIRECT_URI),
    ] {
        let reply = browser.get(&request.url(&idp)).await;
        reply.assert_error_page(StatusCode::BAD_REQUEST);
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn request_errors_redirect_to_the_client_with_state() {
    let idp = shared();
    let browser = Browser::new();
    let base = AuthRequest::new("s-err");
    let cases = [
        (
            base.clone().set("response_type", "code id_token"),
            "unsupported_response_type",
        ),
        (base.clone().without("response_type"), "invalid_request"),
        (base.clone().set("scope", "profile email"), "invalid_scope"),
        (base.clone().set("scope", "openid admin"), "invalid_scope"),
        (base.clone().without("scope"), "invalid_request"),
        (base.clone().without("nonce"), "invalid_request"),
        (
            base.clone()
                .set("response_type", "id_token")
                .without("nonce"),
            "invalid_request",
        ),
        (
            base.clone().set("response_mode", "query"),
            "unsupported_response_mode",
        ),
        (
            base.clone().set("response_mode", "form_post"),
            "unsupported_response_mode",
        ),
        (
            base.clone().set("response_mode", "web_message"),
            "unsupported_response_mode",
        ),
        (base.clone().set("prompt", "consent"), "invalid_request"),
        (base.clone().add("scope", "openid"), "invalid_request"),
        (base.clone().add("nonce", "again"), "invalid_request"),
    ];
    for (request, error) in cases {
        let reply = browser.get(&request.url(&idp)).await;
        assert_eq!(
            reply.status,
            StatusCode::FOUND,
            "{request:?}: {}",
            reply.body
        );
        assert_eq!(reply.location_base(), REDIRECT_URI);
        let fragment = reply.fragment_map();
        assert_eq!(fragment["error"], error, "{request:?}");
        assert!(!fragment["error_description"].is_empty());
        assert_eq!(fragment["state"], "s-err");
        assert_eq!(
            keys_of(&json!(fragment)),
            set(&["error", "error_description", "state"])
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn missing_or_repeated_state_is_invalid_request_without_state() {
    let idp = shared();
    let browser = Browser::new();
    for request in [
        AuthRequest::new("x").without("state"),
        AuthRequest::new("x").add("state", "y"),
    ] {
        let reply = browser.get(&request.url(&idp)).await;
        assert_eq!(reply.status, StatusCode::FOUND);
        let fragment = reply.fragment_map();
        assert_eq!(fragment["error"], "invalid_request");
        assert!(!fragment.contains_key("state"));
    }
}

#[tokio::test]
async fn bad_input_gets_400_or_an_error_redirect_never_a_crash() {
    let idp = shared();
    let browser = Browser::new();
    let authorize = idp.url("/v1/authorize");
    let valid = AuthRequest::new("s-bad").url(&idp);
    let valid_query = valid.split_once('?').unwrap().1.to_owned();

    let big = format!("{valid}&login_hint={}", "x".repeat(9 * 1024));
    browser
        .get(&big)
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
    // Far past the limit: refused by the server or by hyper, never a 5xx.
    let huge = format!("{valid}&x={}", "y".repeat(60 * 1024));
    let status = browser.get(&huge).await.status;
    assert!(status.is_client_error(), "{status}");

    for query in [
        format!("{valid_query}&login_hint=%FF%FE"),
        format!("{valid_query}&login_hint=%C3"),
        format!("{valid_query}&login_hint=%zz"),
        "client_id=%E0%80%80".to_owned(),
        String::new(),
        "&&&=&=".to_owned(),
    ] {
        browser
            .get(&format!("{authorize}?{query}"))
            .await
            .assert_error_page(StatusCode::BAD_REQUEST);
    }
    browser
        .get(&authorize)
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);

    // Logout reads its query the same way.
    browser
        .get(&idp.url("/v1/logout?state=%FF"))
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
    browser
        .get(&idp.url("/v1/logout?state=a&state=b"))
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);

    // The sign-in form post, with bodies no form sends.
    let sign_in = idp.url("/v1/sign-in");
    let page = browser.get(&valid).await;
    let id = page.request_id();
    for body in [
        vec![0xFFu8, 0xFE],
        format!("request={id}&username=%FF").into_bytes(),
        format!("request={id}&request={id}").into_bytes(),
        b"username=alice%40example.com&password=alice-password".to_vec(),
        format!("request={id}&action=explode").into_bytes(),
    ] {
        let request = browser
            .request(reqwest::Method::POST, &sign_in)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        browser
            .send(request)
            .await
            .assert_error_page(StatusCode::BAD_REQUEST);
    }
    let too_big = browser
        .request(reqwest::Method::POST, &sign_in)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("request={id}&username={}", "a".repeat(64 * 1024)));
    assert!(browser.send(too_big).await.status.is_client_error());
    let not_a_form = browser
        .request(reqwest::Method::POST, &sign_in)
        .header("content-type", "application/json")
        .body("{}");
    assert_eq!(
        browser.send(not_a_form).await.status,
        StatusCode::BAD_REQUEST
    );

    // Still serving.
    assert_eq!(
        reqwest::get(idp.url("/v1/keys")).await.unwrap().status(),
        StatusCode::OK
    );
}

// ----------------------------------------------------------------- sign-in

#[tokio::test]
async fn sign_in_page_is_a_plain_form_listing_the_demo_users() {
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("s-form").set("login_hint", "bob@example.com");
    let page = browser.get(&request.url(&idp)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self' http://app.test"), "{csp}");

    for fragment in [
        "<label for=\"username\">Username</label>",
        "id=\"username\" name=\"username\" value=\"bob@example.com\"",
        "<label for=\"password\">Password</label>",
        "type=\"password\" id=\"password\" name=\"password\"",
        "<button type=\"submit\" id=\"sign-in\" name=\"action\" value=\"sign-in\">Sign in</button>",
        ">Cancel</button>",
        "alice@example.com",
        "alice-password",
        "bob-password",
        "carol@example.com",
        "carol-password",
        "development authorization server",
    ] {
        assert!(page.body.contains(fragment), "missing {fragment}");
    }
    assert!(!page.body.contains("role=\"alert\""));

    let binding = page.set_cookie("dev_idp_signin_").expect("binding cookie");
    assert!(binding.contains("HttpOnly"), "{binding}");
    assert!(binding.contains("SameSite=Strict"), "{binding}");
    // No session yet.
    assert!(page.set_cookie("dev_idp_session_").is_none());
}

#[tokio::test]
async fn id_token_token_gives_both_tokens_with_okta_claims() {
    let idp = shared();
    let browser = Browser::new();
    let before = now();
    let reply = browser
        .sign_in(
            &idp,
            &AuthRequest::new("s-both"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert_eq!(reply.location_base(), REDIRECT_URI);
    assert!(reply.header("x-frame-options").is_none());

    let session = reply
        .set_cookie("dev_idp_session_")
        .expect("session cookie");
    // As Okta's: sent with a hidden iframe's request from another site,
    // unless the browser blocks third-party cookies.
    for attribute in ["HttpOnly", "SameSite=None", "Secure", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    let id_len = session
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .len();
    assert!(id_len >= 22, "at least 128 bits of session id");

    let fragment = reply.fragment();
    let names: Vec<&str> = fragment.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "access_token",
            "token_type",
            "expires_in",
            "scope",
            "id_token",
            "state"
        ]
    );
    let f = reply.fragment_map();
    assert_eq!(f["token_type"], "Bearer");
    assert_eq!(f["expires_in"], "3600");
    assert_eq!(f["scope"], "openid profile email");
    assert_eq!(f["state"], "s-both");
    // Spaces are sent as %20, which every fragment reader decodes.
    assert!(reply.location().contains("scope=openid%20profile%20email"));

    let access_token = &f["access_token"];
    let id_token = &f["id_token"];

    // The ID token: signature against the published JWKS, then each claim.
    let id = verify(&idp, id_token, CLIENT_ID)
        .await
        .expect("valid ID token");
    assert_eq!(
        keys_of(&id),
        set(&[
            "ver",
            "sub",
            "iss",
            "aud",
            "iat",
            "exp",
            "jti",
            "amr",
            "idp",
            "auth_time",
            "nonce",
            "at_hash",
            "name",
            "email",
            "preferred_username"
        ])
    );
    assert_eq!(id["ver"], 1);
    assert_eq!(id["sub"], "00ualicedev000000001");
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["idp"], "00o-dev-idp");
    assert_eq!(id["nonce"], "nonce-s-both");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["preferred_username"], "alice@example.com");
    assert!(id["jti"].as_str().unwrap().starts_with("ID."));
    let iat = id["iat"].as_u64().unwrap();
    assert!(iat >= before && iat <= now());
    assert_eq!(id["exp"].as_u64().unwrap(), iat + 3600);
    let auth_time = id["auth_time"].as_u64().unwrap();
    assert!(auth_time >= before && auth_time <= iat);
    assert_eq!(id["at_hash"], independent_at_hash(access_token).as_str());

    let header = jwt_header(id_token);
    assert_eq!(header["alg"], "RS256");
    let kid = jwks(&idp).await["keys"][0]["kid"].clone();
    assert_eq!(header["kid"], kid);

    // The access token.
    let at = verify(&idp, access_token, "api://default")
        .await
        .expect("valid access token");
    assert_eq!(
        keys_of(&at),
        set(&["ver", "jti", "iss", "aud", "iat", "exp", "cid", "uid", "scp", "sub"])
    );
    assert_eq!(at["ver"], 1);
    assert!(at["jti"].as_str().unwrap().starts_with("AT."));
    assert_ne!(at["jti"], id["jti"]);
    assert_eq!(at["iss"], idp.issuer.as_str());
    assert_eq!(at["aud"], "api://default");
    assert_eq!(at["cid"], CLIENT_ID);
    assert_eq!(at["uid"], "00ualicedev000000001");
    assert_eq!(at["sub"], "alice@example.com");
    assert_eq!(at["scp"], json!(["openid", "profile", "email"]));
    assert_eq!(
        at["exp"].as_u64().unwrap(),
        at["iat"].as_u64().unwrap() + 3600
    );
    assert_eq!(jwt_header(access_token)["kid"], kid);
    // The ID token is not an access token, and the other way round.
    assert!(verify(&idp, id_token, "api://default").await.is_err());
    assert!(verify(&idp, access_token, CLIENT_ID).await.is_err());
}

#[tokio::test]
async fn token_alone_gives_only_an_access_token() {
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("s-token")
        .set("response_type", "token")
        .without("nonce");
    let reply = browser
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    let names: Vec<String> = reply.fragment().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        ["access_token", "token_type", "expires_in", "scope", "state"]
    );
    let f = reply.fragment_map();
    let at = verify(&idp, &f["access_token"], "api://default")
        .await
        .unwrap();
    assert_eq!(at["sub"], "bob@example.com");
    assert_eq!(at["uid"], "00ubobdev00000000002");
}

#[tokio::test]
async fn id_token_alone_gives_only_an_id_token() {
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("s-id")
        .set("response_type", "id_token")
        .set("scope", "openid");
    let reply = browser
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    let names: Vec<String> = reply.fragment().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["scope", "id_token", "state"]);
    let f = reply.fragment_map();
    assert_eq!(f["scope"], "openid");
    let id = verify(&idp, &f["id_token"], CLIENT_ID).await.unwrap();
    assert_eq!(id["sub"], "00ubobdev00000000002");
    assert_eq!(id["nonce"], "nonce-s-id");
    // No access token, so no at_hash; no profile or email scope, so no
    // profile or email claims.
    for absent in ["at_hash", "name", "email", "preferred_username"] {
        assert!(id.get(absent).is_none(), "{absent}");
    }
}

#[tokio::test]
async fn token_id_token_in_either_order() {
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("s-order").set("response_type", "token id_token");
    let reply = browser
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    let f = reply.fragment_map();
    assert!(f.contains_key("access_token") && f.contains_key("id_token"));
}

#[tokio::test]
async fn scopes_the_user_may_not_have_are_left_out() {
    let idp = shared();
    let request = AuthRequest::new("s-scope").set("scope", "openid email reports:read");

    let bob = Browser::new()
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    let f = bob.fragment_map();
    assert!(!f.contains_key("error"), "not an error: {f:?}");
    assert_eq!(f["scope"], "openid email");
    assert_eq!(
        payload(&f["access_token"])["scp"],
        json!(["openid", "email"])
    );

    let alice = Browser::new()
        .sign_in(&idp, &request, "alice@example.com", "alice-password")
        .await;
    let f = alice.fragment_map();
    assert_eq!(f["scope"], "openid email reports:read");
    assert_eq!(
        payload(&f["access_token"])["scp"],
        json!(["openid", "email", "reports:read"])
    );
}

#[tokio::test]
async fn wrong_username_or_password_gives_one_message_and_the_form_again() {
    let idp = shared();
    let browser = Browser::new();
    let page = browser.get(&AuthRequest::new("s-wrong").url(&idp)).await;
    let id = page.request_id();

    let mut bodies = Vec::new();
    for (login, password) in [
        ("alice@example.com", "bob-password"),
        ("nobody@example.com", "alice-password"),
        ("", ""),
    ] {
        let reply = browser.submit(&idp, &id, login, password).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.header("location").is_none());
        assert!(reply.set_cookie("dev_idp_session_").is_none());
        assert!(reply.body.contains(
            "<p id=\"error\" role=\"alert\" class=\"error\">\
             The username or password is incorrect.</p>"
        ));
        assert!(reply.body.contains(&format!("value=\"{id}\"")));
        bodies.push(reply.body.replace(&format!("value=\"{login}\""), ""));
    }
    // Nothing tells the unknown user from the wrong password.
    assert_eq!(bodies[0], bodies[1]);

    // The pending request survived the failures; logins ignore case.
    let reply = browser
        .submit(&idp, &id, " Alice@Example.COM ", "alice-password")
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.fragment_map()["state"], "s-wrong");
    assert_eq!(
        payload(&reply.fragment_map()["access_token"])["sub"],
        "alice@example.com"
    );
}

#[tokio::test]
async fn escapes_what_it_echoes() {
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("s-xss").set("login_hint", "\"><script>alert(1)</script>");
    let page = browser.get(&request.url(&idp)).await;
    assert!(!page.body.contains("<script>"));
    assert!(page.body.contains("&quot;&gt;&lt;script&gt;"));
}

#[tokio::test]
async fn cancel_sends_access_denied() {
    let idp = shared();
    let browser = Browser::new();
    let page = browser.get(&AuthRequest::new("s-cancel").url(&idp)).await;
    let id = page.request_id();
    let reply = browser
        .post_form(
            &idp.url("/v1/sign-in"),
            &[("request", &id), ("action", "cancel")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location_base(), REDIRECT_URI);
    let f = reply.fragment_map();
    assert_eq!(f["error"], "access_denied");
    assert_eq!(f["state"], "s-cancel");
    assert!(reply.set_cookie("dev_idp_session_").is_none());
    // The request is used up.
    browser
        .submit(&idp, &id, "alice@example.com", "alice-password")
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let idp = shared();
    let victim = Browser::new();
    let page = victim.get(&AuthRequest::new("s-csrf").url(&idp)).await;
    let id = page.request_id();
    let fields = [
        ("request", id.as_str()),
        ("username", "alice@example.com"),
        ("password", "alice-password"),
        ("action", "sign-in"),
    ];
    let sign_in = idp.url("/v1/sign-in");

    // Another browser (the attacker's page) does not hold the binding cookie.
    let attacker = Browser::new();
    attacker
        .post_form(&sign_in, &fields)
        .await
        .assert_error_page(StatusCode::FORBIDDEN);
    // Nor does a browser with its own binding cookie.
    attacker.get(&AuthRequest::new("other").url(&idp)).await;
    attacker
        .post_form(&sign_in, &fields)
        .await
        .assert_error_page(StatusCode::FORBIDDEN);

    // The right browser, but the post comes from another site.
    for headers in [
        [("origin", "http://evil.test")],
        [("sec-fetch-site", "cross-site")],
        [("sec-fetch-site", "same-site")],
    ] {
        victim
            .post_form_with(&sign_in, &fields, &headers)
            .await
            .assert_error_page(StatusCode::FORBIDDEN);
    }
    // An unknown request id.
    victim
        .submit(&idp, &"A".repeat(43), "alice@example.com", "alice-password")
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);

    // What a browser sends for the real form goes through.
    let origin = idp.origin();
    let reply = victim
        .post_form_with(
            &sign_in,
            &fields,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert!(reply.fragment_map().contains_key("access_token"));
    // Single use.
    victim
        .post_form(&sign_in, &fields)
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn origin_null_from_a_no_referrer_page_is_accepted() {
    let idp = shared();
    let browser = Browser::new();
    let page = browser.get(&AuthRequest::new("s-null").url(&idp)).await;
    let reply = browser
        .post_form_with(
            &idp.url("/v1/sign-in"),
            &[
                ("request", &page.request_id()),
                ("username", "bob@example.com"),
                ("password", "bob-password"),
            ],
            &[("origin", "null")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let idp = shared();
    let reply = Browser::new()
        .get(&AuthRequest::new("s-none").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let f = reply.fragment_map();
    assert_eq!(f["error"], "login_required");
    assert_eq!(f["state"], "s-none");
}

#[tokio::test]
async fn a_session_answers_at_once_and_prompt_none_works_in_a_frame() {
    let idp = shared();
    let browser = Browser::new();
    let first = browser
        .sign_in(
            &idp,
            &AuthRequest::new("s-1"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    let first_id = payload(&first.fragment_map()["id_token"]);

    // prompt=none: tokens at once, and nothing stops a hidden iframe.
    let silent = browser
        .get(&AuthRequest::new("s-2").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(silent.status, StatusCode::FOUND);
    assert!(silent.header("x-frame-options").is_none());
    assert!(silent.header("content-security-policy").is_none());
    let f = silent.fragment_map();
    assert_eq!(f["state"], "s-2");
    let id = verify(&idp, &f["id_token"], CLIENT_ID).await.unwrap();
    assert_eq!(id["nonce"], "nonce-s-2");
    assert_eq!(id["auth_time"], first_id["auth_time"]);
    assert_ne!(id["jti"], first_id["jti"]);

    // No prompt: also at once.
    let again = browser.get(&AuthRequest::new("s-3").url(&idp)).await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert_eq!(again.fragment_map()["state"], "s-3");

    // prompt=login: the form, despite the session.
    let old_session = browser.cookie("dev_idp_session_").unwrap();
    let forced = browser
        .get(&AuthRequest::new("s-4").set("prompt", "login").url(&idp))
        .await;
    assert_eq!(forced.status, StatusCode::OK);
    assert!(forced.body.contains("id=\"password\""));
    let as_bob = browser
        .submit(
            &idp,
            &forced.request_id(),
            "bob@example.com",
            "bob-password",
        )
        .await;
    assert_eq!(
        payload(&as_bob.fragment_map()["access_token"])["sub"],
        "bob@example.com"
    );
    // The new sign-in replaced the session.
    let silent = browser
        .get(&AuthRequest::new("s-5").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(
        payload(&silent.fragment_map()["access_token"])["sub"],
        "bob@example.com"
    );

    // The replaced session is gone server-side, not just from the cookie jar.
    let replay = Browser::new();
    let reply = replay
        .send(
            replay
                .request(
                    reqwest::Method::GET,
                    &AuthRequest::new("s-old").set("prompt", "none").url(&idp),
                )
                .header("cookie", format!("{}={old_session}", cookie_name(&idp))),
        )
        .await;
    assert_eq!(reply.fragment_map()["error"], "login_required");

    // A made-up session id is no session.
    let stranger = Browser::new();
    let reply = stranger
        .send(
            stranger
                .request(
                    reqwest::Method::GET,
                    &AuthRequest::new("s-6").set("prompt", "none").url(&idp),
                )
                .header(
                    "cookie",
                    format!("{}={}", cookie_name(&idp), "A".repeat(43)),
                ),
        )
        .await;
    assert_eq!(reply.fragment_map()["error"], "login_required");
}

fn cookie_name(idp: &Idp) -> String {
    let port = idp.origin().rsplit(':').next().unwrap().to_owned();
    format!("dev_idp_session_{port}")
}

// ------------------------------------------------------------------ logout

#[tokio::test]
async fn logout_with_a_good_hint_ends_the_session_and_redirects_with_state() {
    let idp = shared();
    let browser = Browser::new();
    let reply = browser
        .sign_in(
            &idp,
            &AuthRequest::new("s-out"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    let id_token = reply.fragment_map()["id_token"].clone();
    assert!(browser.cookie("dev_idp_session_").is_some());

    let logout = format!(
        "{}?{}",
        idp.url("/v1/logout"),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token_hint", &id_token)
            .append_pair("post_logout_redirect_uri", POST_LOGOUT_URI)
            .append_pair("state", "bye now")
            .finish()
    );
    let reply = browser.get(&logout).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert_eq!(reply.location(), "http://app.test/?state=bye%20now");
    let cleared = reply
        .set_cookie("dev_idp_session_")
        .expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"));
    assert!(browser.cookie("dev_idp_session_").is_none());

    let silent = browser
        .get(&AuthRequest::new("s-after").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(silent.fragment_map()["error"], "login_required");
}

#[tokio::test]
async fn logout_ends_the_session_server_side_too() {
    let idp = shared();
    let browser = Browser::new();
    browser
        .sign_in(
            &idp,
            &AuthRequest::new("s-srv"),
            "bob@example.com",
            "bob-password",
        )
        .await;
    let session = browser.cookie("dev_idp_session_").unwrap();
    let reply = browser.get(&idp.url("/v1/logout")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("signed out"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));

    // Replaying the old cookie does not bring the session back.
    let stranger = Browser::new();
    let replay = stranger
        .send(
            stranger
                .request(
                    reqwest::Method::GET,
                    &AuthRequest::new("s-replay").set("prompt", "none").url(&idp),
                )
                .header("cookie", format!("{}={session}", cookie_name(&idp))),
        )
        .await;
    assert_eq!(replay.fragment_map()["error"], "login_required");
}

#[tokio::test]
async fn logout_refuses_bad_hints_and_unregistered_uris() {
    let idp = shared();
    let browser = Browser::new();
    let reply = browser
        .sign_in(
            &idp,
            &AuthRequest::new("s-badout"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    let f = reply.fragment_map();
    let id_token = f["id_token"].clone();
    let access_token = f["access_token"].clone();
    let mut tampered = id_token.clone();
    tampered.pop();
    tampered.push(if id_token.ends_with('A') { 'B' } else { 'A' });

    let url = |hint: Option<&str>, uri: &str| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(hint) = hint {
            query.append_pair("id_token_hint", hint);
        }
        query.append_pair("post_logout_redirect_uri", uri);
        query.append_pair("state", "s");
        format!("{}?{}", idp.url("/v1/logout"), query.finish())
    };
    for bad in [
        url(Some("not.a.jwt"), POST_LOGOUT_URI),
        url(Some("garbage"), POST_LOGOUT_URI),
        url(Some(&tampered), POST_LOGOUT_URI),
        url(Some(&access_token), POST_LOGOUT_URI),
        url(Some(&id_token), "http://evil.test/"),
        url(Some(&id_token), "http://app.test"),
        url(None, POST_LOGOUT_URI),
    ] {
        browser
            .get(&bad)
            .await
            .assert_error_page(StatusCode::BAD_REQUEST);
    }
    // None of that ended the session.
    let silent = browser
        .get(&AuthRequest::new("s-still").set("prompt", "none").url(&idp))
        .await;
    assert!(silent.fragment_map().contains_key("access_token"));
}

// ---------------------------------------------------------------- controls

#[tokio::test]
async fn control_endpoints_are_404_when_off() {
    let idp = shared();
    let client = reqwest::Client::new();
    for path in [
        "/dev/rotate-keys",
        "/dev/drop-old-keys",
        "/dev/token-lifetime",
    ] {
        let response = client
            .post(idp.url(path))
            .header("content-type", "application/json")
            .body(r#"{"login":"carol@example.com","seconds":5}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(jwks(&idp).await["keys"].as_array().unwrap().len(), 1);
}

async fn control(idp: &Idp, path: &str) -> Value {
    let response = reqwest::Client::new()
        .post(idp.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

fn published(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn key_rotation_publishes_the_new_key_keeps_the_old_then_drops_it() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    let browser = Browser::new();
    let first = browser
        .sign_in(
            &idp,
            &AuthRequest::new("k-1"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    let old_token = first.fragment_map()["id_token"].clone();
    let kid_a = jwt_header(&old_token)["kid"].as_str().unwrap().to_owned();
    assert_eq!(published(&jwks(&idp).await), [kid_a.as_str()]);

    // Rotate: B signs, A is still published.
    let report = control(&idp, "/dev/rotate-keys").await;
    let kid_b = report["signing_kid"].as_str().unwrap().to_owned();
    assert_ne!(kid_b, kid_a);
    assert_eq!(report["published_kids"], json!([kid_b, kid_a]));
    assert_eq!(
        published(&jwks(&idp).await),
        [kid_b.as_str(), kid_a.as_str()]
    );

    let silent = browser
        .get(&AuthRequest::new("k-2").set("prompt", "none").url(&idp))
        .await;
    let f = silent.fragment_map();
    assert_eq!(jwt_header(&f["id_token"])["kid"], kid_b.as_str());
    assert_eq!(jwt_header(&f["access_token"])["kid"], kid_b.as_str());
    verify(&idp, &f["id_token"], CLIENT_ID).await.unwrap();
    verify(&idp, &f["access_token"], "api://default")
        .await
        .unwrap();
    // Tokens signed before the rotation still verify.
    verify(&idp, &old_token, CLIENT_ID).await.unwrap();

    // Rotate again: C signs, B stays, A is dropped.
    let report = control(&idp, "/dev/rotate-keys").await;
    let kid_c = report["signing_kid"].as_str().unwrap().to_owned();
    assert_eq!(
        published(&jwks(&idp).await),
        [kid_c.as_str(), kid_b.as_str()]
    );
    let err = verify(&idp, &old_token, CLIENT_ID).await.unwrap_err();
    assert!(err.contains("not published"), "{err}");

    // A logout hint signed by a dropped key is no longer accepted.
    let logout = format!(
        "{}?id_token_hint={old_token}&post_logout_redirect_uri={}",
        idp.url("/v1/logout"),
        url::form_urlencoded::byte_serialize(POST_LOGOUT_URI.as_bytes()).collect::<String>()
    );
    browser
        .get(&logout)
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);

    // Drop the old key without rotating.
    let report = control(&idp, "/dev/drop-old-keys").await;
    assert_eq!(report["published_kids"], json!([kid_c]));
    assert_eq!(published(&jwks(&idp).await), [kid_c.as_str()]);

    // Rotate and drop at once.
    let report = control(&idp, "/dev/rotate-keys?drop_old=true").await;
    let kid_d = report["signing_kid"].as_str().unwrap().to_owned();
    assert_eq!(published(&jwks(&idp).await), [kid_d]);

    let bad = reqwest::Client::new()
        .post(idp.url("/dev/rotate-keys?drop_old=maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let cross = reqwest::Client::new()
        .post(idp.url("/dev/rotate-keys"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    running.shutdown().await;
}

async fn set_lifetime(idp: &Idp, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(idp.url("/dev/token-lifetime"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn short_lived_tokens_for_one_user() {
    let (idp, running) = own("127.0.0.1:0", true).await;

    let response = set_lifetime(&idp, r#"{"login":"carol@example.com","seconds":20}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"login": "carol@example.com", "seconds": 20})
    );

    let carol = Browser::new();
    let reply = carol
        .sign_in(
            &idp,
            &AuthRequest::new("c-1"),
            "carol@example.com",
            "carol-password",
        )
        .await;
    let f = reply.fragment_map();
    assert_eq!(f["expires_in"], "20");
    for token in [&f["access_token"], &f["id_token"]] {
        let claims = payload(token);
        assert_eq!(
            claims["exp"].as_u64().unwrap(),
            claims["iat"].as_u64().unwrap() + 20
        );
    }

    // Other users keep the configured lifetimes.
    let alice = Browser::new()
        .sign_in(
            &idp,
            &AuthRequest::new("c-2"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    assert_eq!(alice.fragment_map()["expires_in"], "3600");

    // Reset.
    let response = set_lifetime(&idp, r#"{"login":"carol@example.com","seconds":null}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    let silent = carol
        .get(&AuthRequest::new("c-3").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(silent.fragment_map()["expires_in"], "3600");

    // Refused requests.
    for (body, status) in [
        (
            r#"{"login":"nobody@example.com","seconds":5}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            r#"{"login":"carol@example.com","seconds":0}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"login":"carol@example.com","seconds":-1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"seconds":5}"#, StatusCode::BAD_REQUEST),
        ("not json", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(set_lifetime(&idp, body).await.status(), status, "{body}");
    }
    let form = reqwest::Client::new()
        .post(idp.url("/dev/token-lifetime"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("login=carol%40example.com&seconds=5")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_id_token_is_still_a_good_logout_hint() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    set_lifetime(&idp, r#"{"login":"carol@example.com","seconds":1}"#).await;
    let browser = Browser::new();
    let reply = browser
        .sign_in(
            &idp,
            &AuthRequest::new("e-1"),
            "carol@example.com",
            "carol-password",
        )
        .await;
    let id_token = reply.fragment_map()["id_token"].clone();
    let exp = payload(&id_token)["exp"].as_u64().unwrap();
    // Wait until the token has expired (at most about two seconds).
    while now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logout = format!(
        "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=e",
        idp.url("/v1/logout"),
        url::form_urlencoded::byte_serialize(POST_LOGOUT_URI.as_bytes()).collect::<String>()
    );
    let reply = browser.get(&logout).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert_eq!(reply.location(), "http://app.test/?state=e");
    running.shutdown().await;
}

// ------------------------------------------------------------- the server

#[tokio::test]
async fn localhost_listens_on_a_free_port_and_shuts_down() {
    let (idp, running) = own("localhost:0", false).await;
    let port = running.local_addr.port();
    assert_ne!(port, 0);
    assert_eq!(
        idp.issuer,
        format!("http://localhost:{port}/oauth2/default")
    );
    assert!(running.local_addr.ip().is_loopback());
    let doc: Value = reqwest::get(idp.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], idp.issuer.as_str());

    running.shutdown().await;
    assert!(reqwest::get(idp.url("/v1/keys")).await.is_err());
}

#[tokio::test]
async fn unknown_paths_are_404_pages() {
    let idp = shared();
    for path in [
        "/",
        "/oauth2/default",
        "/oauth2/default/v1/tokens",
        "/oauth2/other/v1/keys",
    ] {
        let reply = Browser::new().get(&format!("{}{path}", idp.origin())).await;
        reply.assert_error_page(StatusCode::NOT_FOUND);
    }
    // The token endpoint takes POST only.
    let reply = Browser::new().get(&idp.url("/v1/token")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_router_can_be_driven_without_a_socket() {
    use axum::body::Body;
    use axum::http::Request;
    use server::dev_idp::{router, Config, DevIdpState};
    use tower::ServiceExt as _;

    let state = tokio::task::spawn_blocking(|| {
        let mut config = Config::demo().unwrap();
        config.register_app_origin(APP_ORIGIN).unwrap();
        DevIdpState::new("http://idp.test", config, false).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(state.issuer(), "http://idp.test/oauth2/default");
    let response = router(state)
        .oneshot(
            Request::get("/oauth2/default/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn ending_a_users_sessions_makes_prompt_none_login_required() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    let alice = Browser::new();
    let bob = Browser::new();
    alice
        .sign_in(
            &idp,
            &AuthRequest::new("a-1"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    bob.sign_in(
        &idp,
        &AuthRequest::new("b-1"),
        "bob@example.com",
        "bob-password",
    )
    .await;

    let end = |body: &'static str| {
        reqwest::Client::new()
            .post(idp.url("/dev/end-sessions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = end(r#"{"login":"alice@example.com"}"#).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"login": "alice@example.com", "ended": 1})
    );

    // Alice's silent renewal now fails as Okta's does; Bob's still works.
    let silent = alice
        .get(&AuthRequest::new("a-2").set("prompt", "none").url(&idp))
        .await;
    assert_eq!(silent.fragment_map()["error"], "login_required");
    assert_eq!(silent.fragment_map()["state"], "a-2");
    let silent = bob
        .get(&AuthRequest::new("b-2").set("prompt", "none").url(&idp))
        .await;
    assert!(silent.fragment_map().contains_key("access_token"));

    let unknown = end(r#"{"login":"nobody@example.com"}"#).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = end(r#"{"who":"alice@example.com"}"#).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    running.shutdown().await;
}

// ------------------------------------------------------------------- CORS

/// An `Origin` of a registered client: `APP_ORIGIN` is the app's, whose
/// redirect URIs the server registers.
const TRUSTED: &str = APP_ORIGIN;
const UNTRUSTED: &str = "http://evil.test";

/// What okta-auth-js asks for in its preflights.
const SDK_HEADERS: &str = "authorization,content-type,x-okta-user-agent-extended";

async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cors_preflights_from_trusted_origins_get_the_methods_and_headers_they_ask_for() {
    let idp = shared();
    for (path, method, allowed) in [
        ("/.well-known/openid-configuration", "GET", "GET"),
        ("/.well-known/oauth-authorization-server", "GET", "GET"),
        ("/v1/keys", "GET", "GET"),
        ("/v1/userinfo", "GET", "GET, POST"),
        ("/v1/userinfo", "POST", "GET, POST"),
        ("/v1/token", "POST", "POST"),
        ("/v1/revoke", "POST", "POST"),
        ("/v1/introspect", "POST", "POST"),
    ] {
        let response = preflight(&idp.url(path), TRUSTED, method, SDK_HEADERS).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path} {method}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(TRUSTED)
        );
        assert_eq!(
            header(&response, "access-control-allow-methods"),
            Some(allowed)
        );
        let allowed_headers = header(&response, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for name in SDK_HEADERS.split(',') {
            assert!(allowed_headers.contains(name), "{path}: {allowed_headers}");
        }
        assert_eq!(header(&response, "access-control-max-age"), Some("600"));
        assert!(header(&response, "access-control-allow-credentials").is_none());
        let vary: Vec<&str> = response
            .headers()
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(vary.iter().any(|v| v.contains("Origin")), "{vary:?}");
    }
}

#[tokio::test]
async fn cors_preflights_for_other_origins_methods_or_headers_are_refused() {
    let idp = shared();
    for (path, origin, method, headers) in [
        ("/v1/keys", UNTRUSTED, "GET", SDK_HEADERS),
        ("/v1/revoke", UNTRUSTED, "POST", SDK_HEADERS),
        ("/v1/token", UNTRUSTED, "POST", SDK_HEADERS),
        ("/v1/token", TRUSTED, "GET", "content-type"),
        // The origin of the post-logout URI is not a redirect URI's.
        ("/v1/userinfo", "http://app.test:8080", "GET", SDK_HEADERS),
        ("/v1/keys", "null", "GET", "content-type"),
        ("/v1/keys", TRUSTED, "POST", "content-type"),
        ("/v1/revoke", TRUSTED, "GET", "content-type"),
        ("/v1/revoke", TRUSTED, "DELETE", ""),
        ("/v1/revoke", TRUSTED, "POST", "content-type,x-custom"),
        ("/v1/userinfo", TRUSTED, "GET", "authorization, cookie"),
    ] {
        let response = preflight(&idp.url(path), origin, method, headers).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{path} {origin} {method} {headers}"
        );
        assert!(header(&response, "access-control-allow-origin").is_none());
        assert!(header(&response, "access-control-allow-methods").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "access_denied");
    }
}

#[tokio::test]
async fn cors_requests_are_answered_for_trusted_origins_and_refused_for_others() {
    let idp = shared();
    let client = reqwest::Client::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/v1/keys",
    ] {
        let trusted = client
            .get(idp.url(path))
            .header("origin", TRUSTED)
            .send()
            .await
            .unwrap();
        assert_eq!(trusted.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&trusted, "access-control-allow-origin"),
            Some(TRUSTED)
        );
        assert_eq!(
            header(&trusted, "access-control-expose-headers"),
            Some("WWW-Authenticate, DPoP-Nonce")
        );
        assert!(trusted
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin")));

        let untrusted = client
            .get(idp.url(path))
            .header("origin", UNTRUSTED)
            .send()
            .await
            .unwrap();
        assert_eq!(untrusted.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(header(&untrusted, "access-control-allow-origin").is_none());

        // Whatever the Origin, or none, the answer says it depends on it.
        let plain = client.get(idp.url(path)).send().await.unwrap();
        for response in [&plain, &untrusted] {
            assert!(response
                .headers()
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().unwrap().contains("Origin")));
        }

        // The server's own pages are same-origin: no CORS needed or sent.
        let own = client
            .get(idp.url(path))
            .header("origin", idp.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), StatusCode::OK, "{path}");
        assert!(header(&own, "access-control-allow-origin").is_none());
    }

    // Error answers of the CORS endpoints are readable too: okta-auth-js
    // reads userinfo's WWW-Authenticate.
    let refused = client
        .get(idp.url("/v1/userinfo"))
        .header("origin", TRUSTED)
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some(TRUSTED)
    );
    let revoke = client
        .post(idp.url("/v1/revoke"))
        .header("origin", UNTRUSTED)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id={CLIENT_ID}&token=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authorize_sign_in_and_logout_are_never_cors_readable() {
    let idp = shared();
    let browser = Browser::new();
    let authorize = AuthRequest::new("s-cors").url(&idp);
    let page = browser
        .send(
            browser
                .request(reqwest::Method::GET, &authorize)
                .header("origin", TRUSTED),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("access-control-allow-origin").is_none());
    let id = page.request_id();
    let posted = browser
        .post_form_with(
            &idp.url("/v1/sign-in"),
            &[
                ("request", &id),
                ("username", "bob@example.com"),
                ("password", "bob-password"),
            ],
            &[("origin", TRUSTED)],
        )
        .await;
    assert!(posted.header("access-control-allow-origin").is_none());
    for path in ["/v1/authorize", "/v1/sign-in", "/v1/logout"] {
        let response = preflight(&idp.url(path), TRUSTED, "GET", "content-type").await;
        assert!(
            header(&response, "access-control-allow-origin").is_none(),
            "{path}"
        );
        assert!(response.status().is_client_error(), "{path}");
    }
    let logout = browser
        .send(
            browser
                .request(reqwest::Method::GET, &idp.url("/v1/logout"))
                .header("origin", TRUSTED),
        )
        .await;
    assert!(logout.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn trusted_origins_in_the_config_are_trusted_too() {
    let (idp, running) = own_with_config(|config| {
        config["trusted_origins"] = json!(["http://spa.test:8080"]);
        config["clients"][0]["redirect_uris"] = json!(["https://other.test/callback"]);
    })
    .await;
    for origin in ["http://spa.test:8080", "https://other.test", APP_ORIGIN] {
        let response = preflight(&idp.url("/v1/userinfo"), origin, "GET", SDK_HEADERS).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(origin)
        );
    }
    for origin in [
        "http://spa.test",
        "https://spa.test:8080",
        "http://other.test",
    ] {
        let response = preflight(&idp.url("/v1/userinfo"), origin, "GET", SDK_HEADERS).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    running.shutdown().await;
}

// --------------------------------------------------------------- userinfo

/// Signs `login` in with `scope` and returns the fragment's parameters.
async fn tokens_for(
    idp: &Idp,
    scope: &str,
    login: &str,
    password: &str,
) -> BTreeMap<String, String> {
    let request = AuthRequest::new(&format!("s-{scope}")).set("scope", scope);
    let reply = Browser::new().sign_in(idp, &request, login, password).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    reply.fragment_map()
}

async fn userinfo(
    idp: &Idp,
    method: reqwest::Method,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, idp.url("/v1/userinfo"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    header(response, "www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_owned()
}

#[tokio::test]
async fn userinfo_releases_the_claims_of_the_tokens_scopes() {
    let idp = shared();
    for (scope, expected) in [
        (
            "openid profile email",
            json!({
                "sub": "00ubobdev00000000002",
                "name": "Bob Example",
                "preferred_username": "bob@example.com",
                "email": "bob@example.com",
                "email_verified": true
            }),
        ),
        ("openid", json!({ "sub": "00ubobdev00000000002" })),
        (
            "openid email",
            json!({
                "sub": "00ubobdev00000000002",
                "email": "bob@example.com",
                "email_verified": true
            }),
        ),
        (
            "openid profile",
            json!({
                "sub": "00ubobdev00000000002",
                "name": "Bob Example",
                "preferred_username": "bob@example.com"
            }),
        ),
    ] {
        let f = tokens_for(&idp, scope, "bob@example.com", "bob-password").await;
        let bearer = format!("Bearer {}", f["access_token"]);
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let response = userinfo(&idp, method.clone(), Some(&bearer)).await;
            assert_eq!(response.status(), StatusCode::OK, "{scope} {method}");
            assert_eq!(header(&response, "cache-control"), Some("no-store"));
            assert_eq!(header(&response, "content-type"), Some("application/json"));
            let claims: Value = response.json().await.unwrap();
            assert_eq!(claims, expected, "{scope} {method}");
        }
        // `sub` is the ID token's (OIDC Core §5.3.2).
        if let Some(id_token) = f.get("id_token") {
            assert_eq!(payload(id_token)["sub"], expected["sub"]);
        }
    }
}

#[tokio::test]
async fn userinfo_refuses_what_is_not_a_live_access_token() {
    let idp = shared();
    let f = tokens_for(
        &idp,
        "openid profile email",
        "alice@example.com",
        "alice-password",
    )
    .await;
    let access_token = &f["access_token"];
    let mut tampered = access_token.clone();
    let i = tampered.len() - 10;
    let c = if &tampered[i..=i] == "A" { "B" } else { "A" };
    tampered.replace_range(i..=i, c);
    let (other, running) = own("127.0.0.1:0", false).await;
    let foreign = tokens_for(&other, "openid", "alice@example.com", "alice-password").await;
    running.shutdown().await;

    // No credentials: a bare challenge (RFC 6750 §3.1).
    for authorization in [None, Some("Basic YWxpY2U6eA==")] {
        let response = userinfo(&idp, reqwest::Method::GET, authorization).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&response),
            format!("Bearer realm=\"{}\"", idp.issuer)
        );
    }
    // Not a live access token of this server.
    for token in [
        "not-a-jwt",
        "a.b.c",
        tampered.as_str(),
        f["id_token"].as_str(),
        foreign["access_token"].as_str(),
    ] {
        let response = userinfo(&idp, reqwest::Method::GET, Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let value = challenge(&response);
        assert!(
            value.starts_with(&format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"",
                idp.issuer
            )),
            "{value}"
        );
        // The token never comes back in the answer.
        let body = response.text().await.unwrap();
        assert!(!body.contains(token) && !value.contains(token));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    // Malformed requests.
    let bearer = format!("Bearer {access_token}");
    for request in [
        reqwest::Client::new()
            .get(idp.url(&format!("/v1/userinfo?access_token={access_token}")))
            .header("authorization", &bearer),
        reqwest::Client::new().get(idp.url(&format!("/v1/userinfo?access_token={access_token}"))),
        reqwest::Client::new()
            .post(idp.url("/v1/userinfo"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={access_token}")),
        reqwest::Client::new()
            .get(idp.url("/v1/userinfo"))
            .header("authorization", format!("Bearer {access_token} second")),
        reqwest::Client::new()
            .get(idp.url("/v1/userinfo"))
            .header("authorization", "Bearer "),
        reqwest::Client::new()
            .get(idp.url("/v1/userinfo"))
            .header("authorization", &bearer)
            .header("authorization", &bearer),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(challenge(&response).contains("error=\"invalid_request\""));
    }
    // The same token, sent properly, is fine.
    let response = userinfo(&idp, reqwest::Method::GET, Some(&bearer)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn userinfo_refuses_an_expired_access_token() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    set_lifetime(&idp, r#"{"login":"carol@example.com","seconds":1}"#).await;
    let f = tokens_for(&idp, "openid", "carol@example.com", "carol-password").await;
    let exp = payload(&f["access_token"])["exp"].as_u64().unwrap();
    while now() < exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let bearer = format!("Bearer {}", f["access_token"]);
    let response = userinfo(&idp, reqwest::Method::GET, Some(&bearer)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("error_description=\"The access token has expired.\""));
    running.shutdown().await;
}

// -------------------------------------------------------- okta_post_message

/// The parts of an `okta_post_message` page: its target origin, its
/// message, its inline script, and its CSP.
struct PostMessagePage {
    target_origin: String,
    message: Value,
    script: String,
    csp: String,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let to = from + text[from..].find(end).expect("the end marker");
    &text[from..to]
}

fn post_message_page(reply: &Reply) -> PostMessagePage {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.header("location").is_none());
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    let data: Value = serde_json::from_str(between(
        &reply.body,
        "<script type=\"application/json\" id=\"okta-response\">",
        "</script>",
    ))
    .expect("the data block is JSON");
    PostMessagePage {
        target_origin: data["targetOrigin"].as_str().unwrap().to_owned(),
        message: data["message"].clone(),
        script: between(&reply.body, "<script>", "</script>").to_owned(),
        csp: reply
            .header("content-security-policy")
            .expect("a CSP")
            .to_owned(),
    }
}

#[tokio::test]
async fn okta_post_message_posts_the_tokens_to_the_clients_origin_only() {
    let idp = shared();
    let browser = Browser::new();
    browser
        .sign_in(
            &idp,
            &AuthRequest::new("pm-0"),
            "alice@example.com",
            "alice-password",
        )
        .await;
    let request = AuthRequest::new("pm-1")
        .set("prompt", "none")
        .set("response_mode", "okta_post_message");
    let reply = browser.get(&request.url(&idp)).await;
    let page = post_message_page(&reply);

    assert_eq!(page.target_origin, APP_ORIGIN);
    let m = &page.message;
    assert_eq!(
        keys_of(m),
        set(&[
            "access_token",
            "token_type",
            "expires_in",
            "scope",
            "id_token",
            "state"
        ])
    );
    assert_eq!(m["token_type"], "Bearer");
    assert_eq!(m["expires_in"], 3600);
    assert_eq!(m["scope"], "openid profile email");
    assert_eq!(m["state"], "pm-1");
    let id = verify(&idp, m["id_token"].as_str().unwrap(), CLIENT_ID)
        .await
        .unwrap();
    assert_eq!(id["nonce"], "nonce-pm-1");
    assert_eq!(
        id["at_hash"],
        independent_at_hash(m["access_token"].as_str().unwrap()).as_str()
    );
    verify(&idp, m["access_token"].as_str().unwrap(), "api://default")
        .await
        .unwrap();

    // The script posts the message to the target origin, to the opener
    // (popup) or the parent (iframe).
    assert!(page
        .script
        .contains("postMessage(data.message,data.targetOrigin)"));
    assert!(page.script.contains("window.opener"));
    assert!(page.script.contains("window.parent"));
    // The CSP runs that script (by its hash) and nothing else, and lets
    // only the client's origin frame the page.
    let hash = format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&page.script))
    );
    let directives: Vec<&str> = page.csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'none'"), "{}", page.csp);
    assert!(
        directives.contains(&format!("script-src {hash}").as_str()),
        "{}",
        page.csp
    );
    assert!(
        directives.contains(&format!("frame-ancestors {APP_ORIGIN}").as_str()),
        "{}",
        page.csp
    );
    assert!(reply.header("x-frame-options").is_none());
    // Exactly two script elements: the data block and the posting script.
    assert_eq!(reply.body.matches("<script").count(), 2);
}

#[tokio::test]
async fn okta_post_message_errors_are_posted_the_same_way() {
    let idp = shared();
    let browser = Browser::new();
    // No session: login_required, posted.
    let request = AuthRequest::new("pm-err")
        .set("prompt", "none")
        .set("response_mode", "okta_post_message");
    let page = post_message_page(&browser.get(&request.url(&idp)).await);
    assert_eq!(page.target_origin, APP_ORIGIN);
    assert_eq!(
        keys_of(&page.message),
        set(&["error", "error_description", "state"])
    );
    assert_eq!(page.message["error"], "login_required");
    assert_eq!(page.message["state"], "pm-err");

    // A bad request after the redirect URI is known: posted too.
    let bad_scope = request.clone().set("scope", "openid admin");
    let page = post_message_page(&browser.get(&bad_scope.url(&idp)).await);
    assert_eq!(page.message["error"], "invalid_scope");

    // A state that tries to break out of the page stays data.
    let hostile = AuthRequest::new("</script><script>alert(1)</script>")
        .set("prompt", "none")
        .set("response_mode", "okta_post_message");
    let reply = browser.get(&hostile.url(&idp)).await;
    assert_eq!(reply.body.matches("<script").count(), 2);
    let page = post_message_page(&reply);
    assert_eq!(page.message["state"], "</script><script>alert(1)</script>");

    // An unknown client or redirect URI is still an error page, posted to
    // nobody.
    browser
        .get(&request.clone().set("client_id", "0oa-unknown").url(&idp))
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
    browser
        .get(
            &request
                .clone()
                .set("redirect_uri", "http://evil.test/login/callback")
                .url(&idp),
        )
        .await
        .assert_error_page(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn okta_post_message_after_the_sign_in_form() {
    // As in a popup: the sign-in page, then the posted answer.
    let idp = shared();
    let browser = Browser::new();
    let request = AuthRequest::new("pm-popup").set("response_mode", "okta_post_message");
    let reply = browser
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    assert!(reply.set_cookie("dev_idp_session_").is_some());
    let page = post_message_page(&reply);
    assert_eq!(page.message["state"], "pm-popup");
    assert!(page.message["access_token"].is_string());
    // Cancelling is posted as access_denied.
    let page = browser.get(&request.set("prompt", "login").url(&idp)).await;
    let id = page.request_id();
    let cancelled = browser
        .post_form(
            &idp.url("/v1/sign-in"),
            &[("request", &id), ("action", "cancel")],
        )
        .await;
    assert_eq!(
        post_message_page(&cancelled).message["error"],
        "access_denied"
    );
}

// ------------------------------------------------------- revoke, introspect

/// `Authorization: Basic` as okta-auth-js sends it: `btoa(clientId)`, with
/// no colon and no secret.
fn sdk_basic(client_id: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(client_id)
    )
}

async fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    authorization: Option<&str>,
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn introspect(idp: &Idp, token: &str, client_id: &str) -> Value {
    let response = post_form(
        &idp.url("/v1/introspect"),
        &[("token", token), ("client_id", client_id)],
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    response.json().await.unwrap()
}

/// Revokes `token` as okta-auth-js does.
async fn sdk_revoke(idp: &Idp, token: &str, client_id: &str) -> reqwest::Response {
    post_form(
        &idp.url("/v1/revoke"),
        &[("token_type_hint", "access_token"), ("token", token)],
        Some(&sdk_basic(client_id)),
    )
    .await
}

#[tokio::test]
async fn introspection_describes_a_live_access_token_as_okta_does() {
    let idp = shared();
    let f = tokens_for(&idp, "openid email", "alice@example.com", "alice-password").await;
    let access_token = &f["access_token"];
    let claims = payload(access_token);
    let described = introspect(&idp, access_token, CLIENT_ID).await;
    assert_eq!(
        described,
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": "openid email",
            "client_id": CLIENT_ID,
            "username": "alice@example.com",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": "alice@example.com",
            "aud": "api://default",
            "iss": idp.issuer,
            "jti": claims["jti"],
            "uid": "00ualicedev000000001"
        })
    );
    // The SDK's way of naming the client, and token_type_hint, change
    // nothing.
    let response = post_form(
        &idp.url("/v1/introspect"),
        &[
            ("token", access_token),
            ("token_type_hint", "refresh_token"),
        ],
        Some(&sdk_basic(CLIENT_ID)),
    )
    .await;
    assert_eq!(response.json::<Value>().await.unwrap(), described);

    // Anything else is inactive, and says nothing more.
    for token in ["garbage", "a.b.c", f["id_token"].as_str()] {
        assert_eq!(
            introspect(&idp, token, CLIENT_ID).await,
            json!({ "active": false }),
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_revoked_access_token_is_refused_by_introspection_and_userinfo() {
    let idp = shared();
    let f = tokens_for(&idp, "openid profile", "bob@example.com", "bob-password").await;
    let revoked = &f["access_token"];
    let other = tokens_for(&idp, "openid profile", "bob@example.com", "bob-password").await;
    let kept = &other["access_token"];
    assert_eq!(introspect(&idp, revoked, CLIENT_ID).await["active"], true);

    let response = sdk_revoke(&idp, revoked, CLIENT_ID).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert!(response.text().await.unwrap().is_empty());

    assert_eq!(
        introspect(&idp, revoked, CLIENT_ID).await,
        json!({ "active": false })
    );
    let response = userinfo(
        &idp,
        reqwest::Method::GET,
        Some(&format!("Bearer {revoked}")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("error=\"invalid_token\""));
    assert!(challenge(&response).contains("revoked"));

    // Revoking is per token: the user's other token still works.
    assert_eq!(introspect(&idp, kept, CLIENT_ID).await["active"], true);
    let response = userinfo(&idp, reqwest::Method::GET, Some(&format!("Bearer {kept}"))).await;
    assert_eq!(response.status(), StatusCode::OK);

    // RFC 7009 §2.2: again, or a token that is no token, is still 200.
    let long = "x".repeat(5000);
    for token in [revoked.as_str(), "garbage", "a.b.c", long.as_str()] {
        let response = sdk_revoke(&idp, token, CLIENT_ID).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // With client_id in the form instead, and no hint.
    let response = post_form(
        &idp.url("/v1/revoke"),
        &[("client_id", CLIENT_ID), ("token", kept)],
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&idp, kept, CLIENT_ID).await["active"], false);
}

#[tokio::test]
async fn revoke_and_introspect_refuse_bad_requests_with_oauth_errors() {
    let idp = shared();
    let f = tokens_for(&idp, "openid", "carol@example.com", "carol-password").await;
    let token = f["access_token"].as_str();
    for path in ["/v1/revoke", "/v1/introspect"] {
        let url = idp.url(path);
        let cases: Vec<(reqwest::Response, StatusCode, &str)> = vec![
            // No client.
            (
                post_form(&url, &[("token", token)], None).await,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            // Unknown client, either way.
            (
                post_form(&url, &[("token", token), ("client_id", "0oa-nope")], None).await,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                post_form(&url, &[("token", token)], Some(&sdk_basic("0oa-nope"))).await,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            // A secret, which public clients have none of.
            (
                post_form(
                    &url,
                    &[
                        ("token", token),
                        ("client_id", CLIENT_ID),
                        ("client_secret", "s"),
                    ],
                    None,
                )
                .await,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            // Both ways at once.
            (
                post_form(
                    &url,
                    &[("token", token), ("client_id", CLIENT_ID)],
                    Some(&sdk_basic(CLIENT_ID)),
                )
                .await,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            // No token; a repeated one.
            (
                post_form(&url, &[("client_id", CLIENT_ID)], None).await,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                post_form(
                    &url,
                    &[("client_id", CLIENT_ID), ("token", token), ("token", token)],
                    None,
                )
                .await,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            // Not a form.
            (
                reqwest::Client::new()
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"token":"{token}","client_id":"{CLIENT_ID}"}}"#
                    ))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                reqwest::Client::new()
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(vec![0xFF, 0xFE])
                    .send()
                    .await
                    .unwrap(),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
        ];
        for (i, (response, status, error)) in cases.into_iter().enumerate() {
            assert_eq!(response.status(), status, "{path} case {i}");
            assert_eq!(header(&response, "cache-control"), Some("no-store"));
            let basic_challenge = header(&response, "www-authenticate").map(str::to_owned);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], error, "{path} case {i}: {body}");
            assert!(!body.to_string().contains(token), "{path} case {i}");
            if i == 2 {
                assert!(basic_challenge.unwrap().starts_with("Basic "));
            }
        }
        // Only POST.
        let get = reqwest::get(format!("{url}?token=x&client_id={CLIENT_ID}"))
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        // Far too large a body: refused, never a crash.
        let huge = post_form(
            &url,
            &[("client_id", CLIENT_ID), ("token", &"x".repeat(64 * 1024))],
            None,
        )
        .await;
        assert!(huge.status().is_client_error(), "{path}");
    }
    // None of that revoked the token.
    assert_eq!(introspect(&idp, token, CLIENT_ID).await["active"], true);

    // An ID token cannot be revoked (RFC 7009 §2.2.1).
    let response = sdk_revoke(&idp, &f["id_token"], CLIENT_ID).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_token_type");
}

#[tokio::test]
async fn a_client_may_neither_introspect_nor_revoke_another_clients_token() {
    let (idp, running) = own_with_config(|config| {
        let clients = config["clients"].as_array_mut().unwrap();
        clients.push(json!({
            "client_id": "0oa-other",
            "redirect_uris": ["http://other.test/callback"]
        }));
    })
    .await;
    let request = AuthRequest::new("o-1")
        .set("client_id", "0oa-other")
        .set("redirect_uri", "http://other.test/callback");
    let reply = Browser::new()
        .sign_in(&idp, &request, "alice@example.com", "alice-password")
        .await;
    let token = reply.fragment_map()["access_token"].clone();
    assert_eq!(payload(&token)["cid"], "0oa-other");

    assert_eq!(
        introspect(&idp, &token, CLIENT_ID).await,
        json!({ "active": false })
    );
    let response = sdk_revoke(&idp, &token, CLIENT_ID).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // Still live for its own client, which can revoke it.
    assert_eq!(introspect(&idp, &token, "0oa-other").await["active"], true);
    assert_eq!(
        sdk_revoke(&idp, &token, "0oa-other").await.status(),
        StatusCode::OK
    );
    assert_eq!(introspect(&idp, &token, "0oa-other").await["active"], false);
    running.shutdown().await;
}

// ------------------------------------------ the code flow: PKCE, /v1/token

/// RFC 7636 Appendix B's example.
const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The S256 challenge (RFC 7636 §4.2) computed here with sha2 and base64,
/// independently of the server's code.
fn independent_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh verifier: 32 random bytes, base64url (43 characters).
fn new_verifier() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A code request with the S256 challenge of `verifier`, asking for a
/// refresh token too.
fn code_request(state: &str, verifier: &str) -> AuthRequest {
    AuthRequest::new(state)
        .set("response_type", "code")
        .set("scope", "openid profile email offline_access")
        .set("code_challenge", &independent_s256(verifier))
        .set("code_challenge_method", "S256")
}

/// Signs `login` in through `browser` for `request`; the code from the
/// redirect's query.
async fn code_for(
    idp: &Idp,
    browser: &Browser,
    request: &AuthRequest,
    login: &str,
    password: &str,
) -> String {
    let reply = browser.sign_in(idp, request, login, password).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert_eq!(reply.location().split('?').next(), Some(REDIRECT_URI));
    reply.query_map()["code"].clone()
}

/// A token request as a browser app sends it: a form naming the client.
async fn token_request(idp: &Idp, fields: &[(&str, &str)]) -> reqwest::Response {
    post_form(&idp.url("/v1/token"), fields, None).await
}

async fn exchange(idp: &Idp, code: &str, verifier: &str) -> reqwest::Response {
    token_request(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(idp: &Idp, refresh_token: &str) -> reqwest::Response {
    token_request(
        idp,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

fn assert_no_store(response: &reqwest::Response) {
    assert_eq!(header(response, "cache-control"), Some("no-store"));
    assert_eq!(header(response, "pragma"), Some("no-cache"));
}

/// A token answer: `200`, never cached, JSON.
async fn tokens_of(response: reqwest::Response) -> Value {
    assert_no_store(&response);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A refusal: `status`, never cached, RFC 6749 §5.2's JSON; its `error`
/// and `error_description`.
async fn refusal_of(response: reqwest::Response, status: StatusCode) -> (String, String) {
    assert_no_store(&response);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let actual = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    assert_eq!(keys_of(&body), set(&["error", "error_description"]));
    (
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap().to_owned(),
    )
}

const CODE_INVALID: &str = "The authorization code is invalid or has expired.";
const REFRESH_INVALID: &str = "The refresh token is invalid or expired.";

/// Signs `login` in with a code request and exchanges the code.
async fn code_flow(idp: &Idp, state: &str, login: &str, password: &str) -> Value {
    let verifier = new_verifier();
    let code = code_for(
        idp,
        &Browser::new(),
        &code_request(state, &verifier),
        login,
        password,
    )
    .await;
    tokens_of(exchange(idp, &code, &verifier).await).await
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

async fn is_active(idp: &Idp, token: &str) -> bool {
    introspect(idp, token, CLIENT_ID).await["active"] == true
}

#[test]
fn the_independent_s256_matches_rfc_7636_appendix_b() {
    assert_eq!(independent_s256(RFC_VERIFIER), RFC_CHALLENGE);
}

#[tokio::test]
async fn code_flow_with_pkce_gives_okta_shaped_tokens_and_a_refresh_token() {
    let idp = shared();
    let browser = Browser::new();
    // The RFC's own pair, so the server's S256 is checked against the RFC.
    let request = AuthRequest::new("c-happy")
        .set("response_type", "code")
        .set("scope", "openid profile email offline_access")
        .set("code_challenge", RFC_CHALLENGE)
        .set("code_challenge_method", "S256");
    let reply = browser
        .sign_in(&idp, &request, "alice@example.com", "alice-password")
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    // Okta's default for code: the query, with the code and state only.
    let query = reply.query_map();
    assert_eq!(keys_of(&json!(query)), set(&["code", "state"]));
    assert_eq!(query["state"], "c-happy");
    assert_eq!(reply.location().split('?').next(), Some(REDIRECT_URI));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    let code = &query["code"];
    let code_bytes = URL_SAFE_NO_PAD.decode(code).expect("a base64url code");
    assert!(code_bytes.len() * 8 >= 128, "{} bits", code_bytes.len() * 8);

    let response = exchange(&idp, code, RFC_VERIFIER).await;
    let tokens = tokens_of(response).await;
    assert_eq!(
        keys_of(&tokens),
        set(&[
            "token_type",
            "expires_in",
            "access_token",
            "scope",
            "id_token",
            "refresh_token"
        ])
    );
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "openid profile email offline_access");

    let access = verify(&idp, str_of(&tokens, "access_token"), "api://default")
        .await
        .unwrap();
    assert_eq!(access["cid"], CLIENT_ID);
    assert_eq!(access["sub"], "alice@example.com");
    assert_eq!(
        access["scp"],
        json!(["openid", "profile", "email", "offline_access"])
    );
    assert!(access["jti"].as_str().unwrap().starts_with("AT."));

    let id = verify(&idp, str_of(&tokens, "id_token"), CLIENT_ID)
        .await
        .unwrap();
    assert_eq!(id["sub"], "00ualicedev000000001");
    assert_eq!(id["nonce"], "nonce-c-happy", "the authorization request's");
    assert!(id.get("at_hash").is_none(), "optional in the code flow");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["email"], "alice@example.com");
    assert!(id["auth_time"].as_u64().unwrap() <= now());

    // The access token works; the refresh token is opaque and live.
    let bearer = format!("Bearer {}", str_of(&tokens, "access_token"));
    let response = userinfo(&idp, reqwest::Method::GET, Some(&bearer)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refresh_token = str_of(&tokens, "refresh_token");
    assert!(!refresh_token.contains('.'), "opaque, not a JWT");
    assert!(is_active(&idp, refresh_token).await);

    // Without offline_access, no refresh token.
    let verifier = new_verifier();
    let request = code_request("c-no-offline", &verifier).set("scope", "openid email");
    // The browser is signed in: the code comes at once.
    let code = browser.get(&request.url(&idp)).await.query_map()["code"].clone();
    let tokens = tokens_of(exchange(&idp, &code, &verifier).await).await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "openid email");
}

#[tokio::test]
async fn codes_come_in_the_fragment_or_a_posted_message_when_asked_and_silently_with_a_session() {
    let idp = shared();
    let browser = Browser::new();
    let verifier = new_verifier();
    let request = code_request("c-frag", &verifier).set("response_mode", "fragment");
    let reply = browser
        .sign_in(&idp, &request, "bob@example.com", "bob-password")
        .await;
    assert_eq!(reply.location_base(), REDIRECT_URI);
    let fragment = reply.fragment_map();
    assert_eq!(keys_of(&json!(fragment)), set(&["code", "state"]));
    tokens_of(exchange(&idp, &fragment["code"], &verifier).await).await;

    // prompt=none with the session: a code at once, as okta-auth-js's
    // getWithoutPrompt asks for it.
    let verifier = new_verifier();
    let silent = code_request("c-silent", &verifier)
        .set("prompt", "none")
        .set("response_mode", "okta_post_message");
    let page = post_message_page(&browser.get(&silent.url(&idp)).await);
    assert_eq!(page.target_origin, APP_ORIGIN);
    assert_eq!(keys_of(&page.message), set(&["code", "state"]));
    assert_eq!(page.message["state"], "c-silent");
    let code = page.message["code"].as_str().unwrap();
    tokens_of(exchange(&idp, code, &verifier).await).await;

    // prompt=none without a session: login_required, in the query.
    let reply = Browser::new()
        .get(
            &code_request("c-none", &new_verifier())
                .set("prompt", "none")
                .url(&idp),
        )
        .await;
    let query = reply.query_map();
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "c-none");

    // prompt=login with a session: the form again.
    let reply = browser
        .get(
            &code_request("c-login", &new_verifier())
                .set("prompt", "login")
                .url(&idp),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.request_id().is_empty());
}

#[tokio::test]
async fn a_code_request_without_an_s256_challenge_is_refused_as_okta_refuses_it() {
    let idp = shared();
    let browser = Browser::new();
    let base = code_request("c-pkce", &new_verifier());
    let cases = [
        (
            base.clone().without("code_challenge"),
            "PKCE code challenge is required when the token endpoint authentication method is 'NONE'.",
        ),
        (
            base.clone()
                .without("code_challenge")
                .without("code_challenge_method"),
            "PKCE code challenge is required when the token endpoint authentication method is 'NONE'.",
        ),
        (
            base.clone().set("code_challenge_method", "plain"),
            "The 'code_challenge_method' must be 'S256': 'plain' and other methods are not supported.",
        ),
        (
            // No method means plain (RFC 7636 §4.3).
            base.clone().without("code_challenge_method"),
            "The 'code_challenge_method' must be 'S256': 'plain' and other methods are not supported.",
        ),
        (
            base.clone()
                .set("code_challenge_method", "plain")
                .set("code_challenge", &new_verifier()[..43]),
            "The 'code_challenge_method' must be 'S256': 'plain' and other methods are not supported.",
        ),
    ];
    for (request, description) in cases {
        let reply = browser.get(&request.url(&idp)).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{request:?}");
        let query = reply.query_map();
        assert_eq!(query["error"], "invalid_request", "{request:?}");
        assert_eq!(query["error_description"], description, "{request:?}");
        assert_eq!(query["state"], "c-pkce");
    }
    // A challenge that is no S256 hash.
    let reply = browser
        .get(&base.clone().set("code_challenge", "too-short").url(&idp))
        .await;
    assert_eq!(reply.query_map()["error"], "invalid_request");
    // Asked for the fragment, the refusal comes in the fragment.
    let reply = browser
        .get(
            &base
                .clone()
                .without("code_challenge")
                .set("response_mode", "fragment")
                .url(&idp),
        )
        .await;
    assert_eq!(reply.fragment_map()["error"], "invalid_request");
    // Tokens never travel in a query.
    let reply = browser
        .get(
            &AuthRequest::new("c-q")
                .set("response_mode", "query")
                .url(&idp),
        )
        .await;
    assert_eq!(reply.fragment_map()["error"], "unsupported_response_mode");
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_what_its_exchange_gave_is_revoked() {
    let idp = shared();
    let verifier = new_verifier();
    let code = code_for(
        &idp,
        &Browser::new(),
        &code_request("c-replay", &verifier),
        "bob@example.com",
        "bob-password",
    )
    .await;
    let tokens = tokens_of(exchange(&idp, &code, &verifier).await).await;
    let access_token = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    assert!(is_active(&idp, access_token).await);
    assert!(is_active(&idp, refresh_token).await);

    let (error, description) = refusal_of(
        exchange(&idp, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", CODE_INVALID)
    );

    assert!(!is_active(&idp, access_token).await);
    assert!(!is_active(&idp, refresh_token).await);
    let bearer = format!("Bearer {access_token}");
    let response = userinfo(&idp, reqwest::Method::GET, Some(&bearer)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (error, _) = refusal_of(refresh(&idp, refresh_token).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
}

/// A server with the demo config and more clients, all registered for
/// `REDIRECT_URI`: `0oa-other-spa` (everything allowed),
/// `0oa-implicit-only` (no code) and `0oa-no-refresh` (no offline_access).
async fn with_more_clients() -> (Idp, server::dev_idp::RunningDevIdp) {
    own_with_config(|v| {
        let clients = v["clients"].as_array_mut().unwrap();
        clients.push(json!({"client_id": "0oa-other-spa", "redirect_uris": [REDIRECT_URI]}));
        clients.push(json!({
            "client_id": "0oa-implicit-only",
            "redirect_uris": [REDIRECT_URI],
            "response_types": ["id_token", "token"]
        }));
        clients.push(json!({
            "client_id": "0oa-no-refresh",
            "redirect_uris": [REDIRECT_URI],
            "scopes": ["openid", "profile", "email"]
        }));
    })
    .await
}

#[tokio::test]
async fn a_wrong_verifier_redirect_uri_or_client_is_refused_and_spends_the_code() {
    let (idp, running) = with_more_clients().await;
    let login = |state: &'static str, verifier: String| {
        let request = code_request(state, &verifier);
        let idp = &idp;
        async move {
            let browser = Browser::new();
            code_for(
                idp,
                &browser,
                &request,
                "alice@example.com",
                "alice-password",
            )
            .await
        }
    };
    let exchange_with = |code: String, fields: Vec<(&'static str, String)>| {
        let idp = &idp;
        async move {
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", "authorization_code".into()),
                ("client_id", CLIENT_ID.into()),
                ("code", code),
                ("redirect_uri", REDIRECT_URI.into()),
            ];
            for (name, value) in fields {
                form.retain(|(k, _)| *k != name);
                form.push((name, value));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(idp, &form).await
        }
    };

    // A well-formed verifier that is not the one: PKCE verification failed,
    // and the code is spent.
    let verifier = new_verifier();
    let code = login("c-v", verifier.clone()).await;
    let (error, description) = refusal_of(
        exchange_with(code.clone(), vec![("code_verifier", new_verifier())]).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "PKCE verification failed.")
    );
    let (error, description) = refusal_of(
        exchange(&idp, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", CODE_INVALID)
    );

    // The challenge itself as the verifier (a plain downgrade): refused.
    let verifier = new_verifier();
    let code = login("c-plain", verifier.clone()).await;
    let (_, description) = refusal_of(
        exchange_with(code, vec![("code_verifier", independent_s256(&verifier))]).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(description, "PKCE verification failed.");

    // Another redirect URI than the authorization request's.
    let verifier = new_verifier();
    let code = login("c-r", verifier.clone()).await;
    let (error, description) = refusal_of(
        exchange_with(
            code.clone(),
            vec![
                ("code_verifier", verifier.clone()),
                ("redirect_uri", format!("{REDIRECT_URI}/")),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error, "invalid_grant");
    assert!(description.contains("redirect_uri"), "{description}");
    let (_, description) = refusal_of(
        exchange(&idp, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(description, CODE_INVALID);

    // Another client: the code is not its to exchange.
    let verifier = new_verifier();
    let code = login("c-c", verifier.clone()).await;
    let (error, description) = refusal_of(
        exchange_with(
            code.clone(),
            vec![
                ("code_verifier", verifier.clone()),
                ("client_id", "0oa-other-spa".into()),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", CODE_INVALID)
    );
    let (_, description) = refusal_of(
        exchange(&idp, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(description, CODE_INVALID);

    // A malformed request does not spend the code.
    let verifier = new_verifier();
    let code = login("c-m", verifier.clone()).await;
    for (fields, description) in [
        (vec![], "The 'code_verifier' parameter is required."),
        (
            vec![("code_verifier", "a".repeat(42))],
            "The 'code_verifier' must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~' (RFC 7636).",
        ),
        (
            vec![("code_verifier", format!("{}+", "a".repeat(43)))],
            "The 'code_verifier' must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~' (RFC 7636).",
        ),
        (
            vec![("code_verifier", verifier.clone()), ("redirect_uri", String::new())],
            "The 'redirect_uri' parameter is required.",
        ),
    ] {
        let (error, actual) = refusal_of(
            exchange_with(code.clone(), fields).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!((error.as_str(), actual.as_str()), ("invalid_request", description));
    }
    tokens_of(exchange(&idp, &code, &verifier).await).await;

    // Codes that are no codes.
    let (error, _) = refusal_of(exchange(&idp, "", &verifier).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_request");
    for code in ["garbage", &"A".repeat(43), &"x".repeat(5000)] {
        let response = exchange(&idp, code, &verifier).await;
        let (error, description) = refusal_of(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            (error.as_str(), description.as_str()),
            ("invalid_grant", CODE_INVALID)
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let (idp, running) =
        own_with_config(|v| v["authorization_code_lifetime_secs"] = 1.into()).await;
    let verifier = new_verifier();
    let code = code_for(
        &idp,
        &Browser::new(),
        &code_request("c-exp", &verifier),
        "carol@example.com",
        "carol-password",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (error, description) = refusal_of(
        exchange(&idp, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", CODE_INVALID)
    );
    // A fresh one, exchanged at once, works.
    let verifier = new_verifier();
    let code = code_for(
        &idp,
        &Browser::new(),
        &code_request("c-exp2", &verifier),
        "carol@example.com",
        "carol-password",
    )
    .await;
    tokens_of(exchange(&idp, &code, &verifier).await).await;
    running.shutdown().await;
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_requests_with_oauth_errors_never_cached() {
    let (idp, running) = with_more_clients().await;
    let url = idp.url("/v1/token");
    let refresh_fields = |client: &'static str| {
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", "x"),
        ]
    };
    /// Form, `Authorization`, and the refusal expected.
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Option<String>,
        StatusCode,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (vec![("grant_type", "refresh_token")], None, StatusCode::UNAUTHORIZED, "invalid_client", "No client credentials found."),
        (refresh_fields("0oa-nope"), None, StatusCode::UNAUTHORIZED, "invalid_client", "The client_id is not registered with this server."),
        (
            vec![("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("client_secret", "s")],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "This client is a public client: it has no secret, and sends none.",
        ),
        (vec![("client_id", CLIENT_ID)], None, StatusCode::BAD_REQUEST, "invalid_request", "The 'grant_type' parameter is required."),
        (
            vec![("grant_type", "password"), ("client_id", CLIENT_ID)],
            None,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", CLIENT_ID)],
            None,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
        (
            vec![("grant_type", "authorization_code"), ("client_id", "0oa-implicit-only"), ("code", "x")],
            None,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The client is not authorized to use the provided grant type. Configured grant types: [implicit].",
        ),
        (
            refresh_fields("0oa-no-refresh"),
            None,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The client is not authorized to use the provided grant type. Configured grant types: [authorization_code, implicit].",
        ),
        (
            vec![("grant_type", "refresh_token"), ("client_id", CLIENT_ID)],
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The 'refresh_token' parameter is required.",
        ),
        (refresh_fields(CLIENT_ID), None, StatusCode::BAD_REQUEST, "invalid_grant", REFRESH_INVALID),
        (
            vec![("grant_type", "authorization_code"), ("client_id", CLIENT_ID)],
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The 'code' parameter is required.",
        ),
        (
            vec![("grant_type", "refresh_token")],
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("0oa-nope"))),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_id is not registered with this server.",
        ),
    ];
    for (fields, authorization, status, error, description) in cases {
        let response = post_form(&url, &fields, authorization.as_deref()).await;
        let (actual_error, actual_description) = refusal_of(response, status).await;
        assert_eq!(
            (actual_error.as_str(), actual_description.as_str()),
            (error, description),
            "{fields:?}"
        );
    }

    // Not a form; a repeated parameter.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"refresh_token"}"#)
        .send()
        .await
        .unwrap();
    let (error, _) = refusal_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_request");
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&client_id=0oa-dev-spa&refresh_token=a&refresh_token=b")
        .send()
        .await
        .unwrap();
    let (error, description) = refusal_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_request");
    assert!(description.contains("refresh_token"), "{description}");
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_renews_the_tokens() {
    let idp = shared();
    let first = code_flow(&idp, "r-rot", "alice@example.com", "alice-password").await;
    let first_id = payload(str_of(&first, "id_token"));
    let mut refresh_token = str_of(&first, "refresh_token").to_owned();
    let mut seen = BTreeSet::from([refresh_token.clone()]);
    let mut access_jtis =
        BTreeSet::from([payload(str_of(&first, "access_token"))["jti"].to_string()]);
    for round in 0..3 {
        let response = refresh(&idp, &refresh_token).await;
        let tokens = tokens_of(response).await;
        assert_eq!(tokens["token_type"], "Bearer", "{round}");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "openid profile email offline_access");
        let next = str_of(&tokens, "refresh_token").to_owned();
        assert!(seen.insert(next.clone()), "a new refresh token every time");
        let access = verify(&idp, str_of(&tokens, "access_token"), "api://default")
            .await
            .unwrap();
        assert!(access_jtis.insert(access["jti"].to_string()));
        let id = verify(&idp, str_of(&tokens, "id_token"), CLIENT_ID)
            .await
            .unwrap();
        // OIDC Core §12.2: the same person, client and authentication.
        for claim in ["iss", "sub", "aud", "auth_time"] {
            assert_eq!(id[claim], first_id[claim], "{claim}");
        }
        assert!(
            id.get("nonce").is_none(),
            "a refresh is no authentication request"
        );
        assert!(is_active(&idp, &next).await);
        refresh_token = next;
    }
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_not_widen_it() {
    let idp = shared();
    let tokens = code_flow(&idp, "r-scope", "alice@example.com", "alice-password").await;
    let refresh_token = str_of(&tokens, "refresh_token");
    let narrow = |token: String, scope: &'static str| {
        let idp = idp.clone();
        async move {
            token_request(
                &idp,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", CLIENT_ID),
                    ("refresh_token", &token),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    // Wider: refused, and the token stays as it was.
    for wider in ["openid reports:read", "openid admin"] {
        let (error, _) = refusal_of(
            narrow(refresh_token.to_owned(), wider).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(error, "invalid_scope", "{wider}");
    }
    let narrowed = tokens_of(narrow(refresh_token.to_owned(), "email").await).await;
    assert_eq!(narrowed["scope"], "email");
    assert_eq!(
        payload(str_of(&narrowed, "access_token"))["scp"],
        json!(["email"])
    );
    assert!(narrowed.get("id_token").is_none(), "no openid, no ID token");
    // The refresh token keeps what was granted.
    let next = str_of(&narrowed, "refresh_token");
    assert_eq!(
        introspect(&idp, next, CLIENT_ID).await["scope"],
        "openid profile email offline_access"
    );
    let again = tokens_of(refresh(&idp, next).await).await;
    assert_eq!(again["scope"], "openid profile email offline_access");
}

#[tokio::test]
async fn the_previous_refresh_token_within_the_grace_period_gets_the_current_one() {
    let idp = shared();
    let tokens = code_flow(&idp, "r-grace", "bob@example.com", "bob-password").await;
    let r0 = str_of(&tokens, "refresh_token");
    let r1 = str_of(&tokens_of(refresh(&idp, r0).await).await, "refresh_token").to_owned();
    // The answer to r0 was "lost": r0 again, within Okta's default 30 s.
    let again = tokens_of(refresh(&idp, r0).await).await;
    assert_eq!(str_of(&again, "refresh_token"), r1);
    assert!(again["access_token"].is_string());
    // The family is intact: r1 rotates on, and then r0 is two behind.
    let r2 = str_of(&tokens_of(refresh(&idp, &r1).await).await, "refresh_token").to_owned();
    assert_ne!(r2, r1);
    let (error, _) = refusal_of(refresh(&idp, r0).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
    // That was reuse: the family is gone.
    let (error, _) = refusal_of(refresh(&idp, &r2).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
}

async fn set_refresh_policy(idp: &Idp, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(idp.url("/dev/refresh-tokens"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_old_refresh_token_after_the_grace_period_revokes_the_whole_family() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    let response = set_refresh_policy(
        &idp,
        json!({"login": "carol@example.com", "rotation_grace_secs": 1}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"login": "carol@example.com", "rotation_grace_secs": 1, "idle_secs": null, "lifetime_secs": null})
    );

    let tokens = code_flow(&idp, "r-reuse", "carol@example.com", "carol-password").await;
    let a0 = str_of(&tokens, "access_token").to_owned();
    let r0 = str_of(&tokens, "refresh_token").to_owned();
    let renewed = tokens_of(refresh(&idp, &r0).await).await;
    let a1 = str_of(&renewed, "access_token").to_owned();
    let r1 = str_of(&renewed, "refresh_token").to_owned();
    // Another user's family, to see that only this one dies.
    let bob = code_flow(&idp, "r-bob", "bob@example.com", "bob-password").await;

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (error, description) = refusal_of(refresh(&idp, &r0).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", REFRESH_INVALID)
    );
    for token in [&r1, &a0, &a1] {
        assert!(!is_active(&idp, token).await);
    }
    let (error, _) = refusal_of(refresh(&idp, &r1).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
    let response = userinfo(&idp, reqwest::Method::GET, Some(&format!("Bearer {a1}"))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    tokens_of(refresh(&idp, str_of(&bob, "refresh_token")).await).await;

    // No grace at all: the used token is dead at once.
    set_refresh_policy(
        &idp,
        json!({"login": "carol@example.com", "rotation_grace_secs": 0}),
    )
    .await;
    let tokens = code_flow(&idp, "r-nograce", "carol@example.com", "carol-password").await;
    let r0 = str_of(&tokens, "refresh_token").to_owned();
    let r1 = str_of(&tokens_of(refresh(&idp, &r0).await).await, "refresh_token").to_owned();
    refusal_of(refresh(&idp, &r0).await, StatusCode::BAD_REQUEST).await;
    refusal_of(refresh(&idp, &r1).await, StatusCode::BAD_REQUEST).await;
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_die_when_idle_or_past_their_lifetime() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    set_refresh_policy(&idp, json!({"login": "alice@example.com", "idle_secs": 1})).await;
    let tokens = code_flow(&idp, "r-idle", "alice@example.com", "alice-password").await;
    let introspected = introspect(&idp, str_of(&tokens, "refresh_token"), CLIENT_ID).await;
    assert!(introspected["exp"].as_u64().unwrap() <= now() + 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (error, _) = refusal_of(
        refresh(&idp, str_of(&tokens, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error, "invalid_grant");

    // Used before it idles out, it still dies when its lifetime is over.
    set_refresh_policy(
        &idp,
        json!({"login": "alice@example.com", "idle_secs": 2, "lifetime_secs": 3}),
    )
    .await;
    let tokens = code_flow(&idp, "r-life", "alice@example.com", "alice-password").await;
    // The family began before this instant, so it ends before started + 3 s.
    let started = std::time::Instant::now();
    let mut token = str_of(&tokens, "refresh_token").to_owned();
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        token = str_of(
            &tokens_of(refresh(&idp, &token).await).await,
            "refresh_token",
        )
        .to_owned();
    }
    // The last use left it 2 s of idle time, past the lifetime's end.
    let end = std::time::Duration::from_millis(3200);
    tokio::time::sleep(end.saturating_sub(started.elapsed())).await;
    let (error, _) = refusal_of(refresh(&idp, &token).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");

    // Refused control requests.
    for (body, status) in [
        (
            json!({"login": "alice@example.com", "rotation_grace_secs": 61}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"login": "alice@example.com", "idle_secs": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"login": "nobody@example.com"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"login": "alice@example.com", "colour": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(
            set_refresh_policy(&idp, body.clone()).await.status(),
            status,
            "{body}"
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_outlive_short_access_tokens() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    set_lifetime(&idp, r#"{"login":"bob@example.com","seconds":1}"#).await;
    let tokens = code_flow(&idp, "r-short", "bob@example.com", "bob-password").await;
    assert_eq!(tokens["expires_in"], 1);
    let exp = payload(str_of(&tokens, "access_token"))["exp"]
        .as_u64()
        .unwrap();
    while now() < exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = format!("Bearer {}", str_of(&tokens, "access_token"));
    let response = userinfo(&idp, reqwest::Method::GET, Some(&expired)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let renewed = tokens_of(refresh(&idp, str_of(&tokens, "refresh_token")).await).await;
    assert_eq!(renewed["expires_in"], 1);
    let fresh = format!("Bearer {}", str_of(&renewed, "access_token"));
    let response = userinfo(&idp, reqwest::Method::GET, Some(&fresh)).await;
    assert_eq!(response.status(), StatusCode::OK);
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_are_introspected_and_revoked_with_their_family() {
    let (idp, running) = with_more_clients().await;
    let tokens = code_flow(&idp, "r-revoke", "alice@example.com", "alice-password").await;
    let access_token = str_of(&tokens, "access_token");
    let r0 = str_of(&tokens, "refresh_token");
    let renewed = tokens_of(refresh(&idp, r0).await).await;
    let r1 = str_of(&renewed, "refresh_token");
    let a1 = str_of(&renewed, "access_token");

    let described = introspect(&idp, r1, CLIENT_ID).await;
    let exp = described["exp"].as_u64().unwrap();
    let iat = described["iat"].as_u64().unwrap();
    assert_eq!(
        described,
        json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": "openid profile email offline_access",
            "client_id": CLIENT_ID,
            "username": "alice@example.com",
            "exp": exp,
            "iat": iat,
            "sub": "alice@example.com",
            "aud": "api://default",
            "iss": idp.issuer,
            "uid": "00ualicedev000000001"
        })
    );
    assert!(iat <= now() && now() <= iat + 1);
    // Idle for 7 days, unless the 90 days since sign-in end first.
    assert!(
        (iat + 7 * 86_400 - 1..=iat + 7 * 86_400).contains(&exp),
        "{exp}"
    );
    // Another client may neither introspect nor revoke it.
    assert_eq!(
        introspect(&idp, r1, "0oa-other-spa").await,
        json!({"active": false})
    );
    let response = post_form(
        &idp.url("/v1/revoke"),
        &[("client_id", "0oa-other-spa"), ("token", r1)],
        None,
    )
    .await;
    let (error, _) = refusal_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
    assert!(is_active(&idp, r1).await);

    // Revoking the previous generation, as okta-auth-js does it, ends the
    // family and its access tokens.
    let response = post_form(
        &idp.url("/v1/revoke"),
        &[("token_type_hint", "refresh_token"), ("token", r0)],
        Some(&sdk_basic(CLIENT_ID)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_no_store(&response);
    assert!(response.text().await.unwrap().is_empty());
    for token in [r0, r1, access_token, a1] {
        assert_eq!(
            introspect(&idp, token, CLIENT_ID).await,
            json!({"active": false})
        );
    }
    let (error, _) = refusal_of(refresh(&idp, r1).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");

    // RFC 7009 §2.2: a dead or unknown refresh token is still a 200.
    let unknown = URL_SAFE_NO_PAD.encode([7u8; 52]);
    for token in [r1, unknown.as_str()] {
        let response = post_form(
            &idp.url("/v1/revoke"),
            &[("client_id", CLIENT_ID), ("token", token)],
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn ending_a_session_revokes_its_refresh_tokens() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    // The control ends all of a user's sessions.
    let alice = code_flow(&idp, "s-alice", "alice@example.com", "alice-password").await;
    let bob = code_flow(&idp, "s-bob", "bob@example.com", "bob-password").await;
    let response = reqwest::Client::new()
        .post(idp.url("/dev/end-sessions"))
        .header("content-type", "application/json")
        .body(r#"{"login":"alice@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (error, _) = refusal_of(
        refresh(&idp, str_of(&alice, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error, "invalid_grant");
    tokens_of(refresh(&idp, str_of(&bob, "refresh_token")).await).await;

    // Signing out ends the browser's session and the refresh tokens it
    // gave, not another browser's.
    let carol = Browser::new();
    let verifier = new_verifier();
    let code = code_for(
        &idp,
        &carol,
        &code_request("s-carol", &verifier),
        "carol@example.com",
        "carol-password",
    )
    .await;
    let tokens = tokens_of(exchange(&idp, &code, &verifier).await).await;
    let elsewhere = code_flow(&idp, "s-carol2", "carol@example.com", "carol-password").await;
    // A code issued in the session but not yet exchanged dies with it too.
    let pending_verifier = new_verifier();
    let pending = carol
        .get(&code_request("s-pending", &pending_verifier).url(&idp))
        .await
        .query_map()["code"]
        .clone();
    let logout = format!(
        "{}?id_token_hint={}",
        idp.url("/v1/logout"),
        str_of(&tokens, "id_token")
    );
    carol.get(&logout).await;
    let (error, _) = refusal_of(
        refresh(&idp, str_of(&tokens, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(error, "invalid_grant");
    let (_, description) = refusal_of(
        exchange(&idp, &pending, &pending_verifier).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(description, CODE_INVALID);
    tokens_of(refresh(&idp, str_of(&elsewhere, "refresh_token")).await).await;
    running.shutdown().await;
}

#[tokio::test]
async fn the_token_endpoint_answers_trusted_origins_only() {
    let idp = shared();
    let verifier = new_verifier();
    let code = code_for(
        &idp,
        &Browser::new(),
        &code_request("cors", &verifier),
        "bob@example.com",
        "bob-password",
    )
    .await;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .finish();
    let post = |origin: &'static str| {
        reqwest::Client::new()
            .post(idp.url("/v1/token"))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
    };
    // Another origin: refused before the code is even looked at.
    let response = post(UNTRUSTED).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(header(&response, "access-control-allow-origin").is_none());
    // The app's origin: answered, readable.
    let response = post(TRUSTED).await.unwrap();
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(TRUSTED)
    );
    assert!(header(&response, "access-control-allow-credentials").is_none());
    tokens_of(response).await;
    // Errors are readable too, so the app can show them.
    let response = post(TRUSTED).await.unwrap();
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(TRUSTED)
    );
    let (error, _) = refusal_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "invalid_grant");
}

#[tokio::test]
async fn the_implicit_flow_never_grants_offline_access() {
    let idp = shared();
    let request = AuthRequest::new("i-offline").set("scope", "openid email offline_access");
    let reply = Browser::new()
        .sign_in(&idp, &request, "alice@example.com", "alice-password")
        .await;
    let fragment = reply.fragment_map();
    assert_eq!(fragment["scope"], "openid email");
    assert!(!fragment.contains_key("refresh_token"));
}

#[tokio::test]
async fn the_token_endpoint_refuses_odd_bodies_without_a_crash() {
    let idp = shared();
    let url = idp.url("/v1/token");
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (form, vec![0xFF, 0xFE]),
        (form, b"grant_type=%FF&client_id=0oa-dev-spa".to_vec()),
        (form, b"grant_type=%zz".to_vec()),
        (form, b"&&&=&=".to_vec()),
        (form, Vec::new()),
        (form, format!("grant_type=refresh_token&client_id={CLIENT_ID}&refresh_token=%E2%80%AE").into_bytes()),
        (form, format!("grant_type=authorization_code&client_id={CLIENT_ID}&code=%00&redirect_uri=x&code_verifier={}", "a".repeat(43)).into_bytes()),
        (form, format!("grant_type=refresh_token&client_id={CLIENT_ID}&refresh_token={}", "x".repeat(9 * 1024)).into_bytes()),
        ("text/plain", b"grant_type=refresh_token".to_vec()),
        ("multipart/form-data; boundary=x", b"--x--".to_vec()),
    ];
    for (content_type, body) in cases {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        assert_no_store(&response);
    }
    let huge = reqwest::Client::new()
        .post(&url)
        .header("content-type", form)
        .body(format!(
            "grant_type=refresh_token&x={}",
            "y".repeat(64 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (error, _) = refusal_of(huge, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(error, "invalid_request");
    // Still serving.
    let tokens = code_flow(&idp, "odd", "bob@example.com", "bob-password").await;
    tokens_of(refresh(&idp, str_of(&tokens, "refresh_token")).await).await;
}

/// Everything the server logs while `test` runs on this thread (the
/// `#[tokio::test]` runtime runs the server's tasks here too).
async fn logs_of<F: std::future::Future<Output = ()>>(test: F) -> String {
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    test.await;
    drop(guard);
    let logs = sink.0.lock().unwrap().clone();
    String::from_utf8(logs).unwrap()
}

#[tokio::test]
async fn reuse_and_replay_are_logged_as_warnings_without_any_token() {
    let (idp, running) = own("127.0.0.1:0", true).await;
    set_refresh_policy(
        &idp,
        json!({"login": "bob@example.com", "rotation_grace_secs": 0}),
    )
    .await;
    let secrets = std::sync::Mutex::new(Vec::<String>::new());
    let logs = logs_of(async {
        let verifier = new_verifier();
        let code = code_for(
            &idp,
            &Browser::new(),
            &code_request("log", &verifier),
            "bob@example.com",
            "bob-password",
        )
        .await;
        let tokens = tokens_of(exchange(&idp, &code, &verifier).await).await;
        let r0 = str_of(&tokens, "refresh_token").to_owned();
        let renewed = tokens_of(refresh(&idp, &r0).await).await;
        refusal_of(refresh(&idp, &r0).await, StatusCode::BAD_REQUEST).await;
        refusal_of(
            exchange(&idp, &code, &verifier).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        let mut secrets = secrets.lock().unwrap();
        secrets.extend([code, verifier, r0]);
        for body in [&tokens, &renewed] {
            for name in ["access_token", "refresh_token", "id_token"] {
                secrets.push(str_of(body, name).to_owned());
            }
        }
    })
    .await;
    assert!(
        logs.contains("WARN") && logs.contains("refresh token reuse"),
        "{logs}"
    );
    assert!(
        logs.contains("an authorization code was presented again"),
        "{logs}"
    );
    assert!(
        logs.contains("bob@example.com"),
        "who, for the operator: {logs}"
    );
    for secret in secrets.lock().unwrap().iter() {
        // The signature part alone is enough to recognise a JWT.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(tail), "a token or code in the logs: {logs}");
    }
    running.shutdown().await;
}

// ------------------------------------------- DPoP at the token endpoint

use proofs::{ath, proof_claims, ProofKey};

/// A proof by `key` for `POST {issuer}/v1/token` now, with `nonce`.
fn token_proof(idp: &Idp, key: &ProofKey, nonce: Option<&str>) -> String {
    let mut claims = proof_claims("POST", &idp.url("/v1/token"), now() as i64, None);
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    key.proof(&claims)
}

/// A token request with these `DPoP` header values.
async fn dpop_token_request(
    idp: &Idp,
    fields: &[(&str, &str)],
    dpop: &[&str],
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut request = reqwest::Client::new()
        .post(idp.url("/v1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for value in dpop {
        request = request.header("dpop", *value);
    }
    request.send().await.unwrap()
}

fn exchange_fields<'a>(code: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

fn refresh_fields(refresh_token: &str) -> [(&str, &str); 3] {
    [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("refresh_token", refresh_token),
    ]
}

/// A token request with a proof by `key`, doing the `use_dpop_nonce`
/// dance once if asked: the answer, and the nonce it used.
async fn with_dpop(
    idp: &Idp,
    key: &ProofKey,
    nonce: Option<&str>,
    fields: &[(&str, &str)],
) -> (reqwest::Response, String) {
    let first = dpop_token_request(idp, fields, &[&token_proof(idp, key, nonce)]).await;
    if first.status() != StatusCode::BAD_REQUEST || header(&first, "dpop-nonce").is_none() {
        return (first, nonce.unwrap_or_default().to_owned());
    }
    let nonce = header(&first, "dpop-nonce").unwrap().to_owned();
    let (error, _) = refusal_of(first, StatusCode::BAD_REQUEST).await;
    assert_eq!(error, "use_dpop_nonce");
    let second = dpop_token_request(idp, fields, &[&token_proof(idp, key, Some(&nonce))]).await;
    (second, nonce)
}

/// A code for alice, with a verifier, through a fresh browser.
async fn alice_code(idp: &Idp, state: &str) -> (String, String) {
    let verifier = new_verifier();
    let code = code_for(
        idp,
        &Browser::new(),
        &code_request(state, &verifier),
        "alice@example.com",
        "alice-password",
    )
    .await;
    (code, verifier)
}

const PROOF_MISSING: &str = "The DPoP proof JWT header is missing.";

#[tokio::test]
async fn a_code_exchanged_with_a_proof_gives_dpop_bound_tokens_after_the_nonce_dance() {
    let idp = shared();
    let key = ProofKey::es256();
    let (code, verifier) = alice_code(&idp, "dpop-1").await;
    let fields = exchange_fields(&code, &verifier);
    // No nonce: Okta's answer, with a nonce readable through CORS; the
    // code is not spent by it.
    let first = dpop_token_request(&idp, &fields, &[&token_proof(&idp, &key, None)]).await;
    let nonce = header(&first, "dpop-nonce")
        .expect("a DPoP-Nonce with use_dpop_nonce")
        .to_owned();
    let (error, description) = refusal_of(first, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        (
            "use_dpop_nonce",
            "Authorization server requires nonce in DPoP proof."
        )
    );
    let response =
        dpop_token_request(&idp, &fields, &[&token_proof(&idp, &key, Some(&nonce))]).await;
    let tokens = tokens_of(response).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let access = str_of(&tokens, "access_token");
    let claims = payload(access);
    assert_eq!(claims["cnf"], json!({"jkt": key.thumbprint()}));
    assert_eq!(claims["sub"], "alice@example.com");
    // The ID token is not bound; the refresh token is (see below).
    assert!(payload(str_of(&tokens, "id_token")).get("cnf").is_none());
    assert!(tokens["refresh_token"].is_string());
    // Introspection: RFC 9449 §6.2.
    let described = introspect(&idp, access, CLIENT_ID).await;
    assert_eq!(described["active"], true);
    assert_eq!(described["token_type"], "DPoP");
    assert_eq!(described["cnf"]["jkt"], key.thumbprint());
}

#[tokio::test]
async fn without_a_proof_the_token_endpoint_still_gives_bearer_tokens() {
    let idp = shared();
    let tokens = code_flow(&idp, "no-dpop", "bob@example.com", "bob-password").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(payload(str_of(&tokens, "access_token"))
        .get("cnf")
        .is_none());
    // And its refresh token needs no proof.
    let refreshed = tokens_of(refresh(&idp, str_of(&tokens, "refresh_token")).await).await;
    assert_eq!(refreshed["token_type"], "Bearer");
}

#[tokio::test]
async fn a_bound_refresh_token_refreshes_with_its_key_only() {
    let idp = shared();
    let key = ProofKey::rs256(0);
    let (code, verifier) = alice_code(&idp, "dpop-refresh").await;
    let (response, nonce) = with_dpop(&idp, &key, None, &exchange_fields(&code, &verifier)).await;
    let tokens = tokens_of(response).await;
    let refresh_token = str_of(&tokens, "refresh_token").to_owned();

    // Another key: refused, and nothing changes.
    let thief = ProofKey::es256();
    let (response, _) = with_dpop(&idp, &thief, None, &refresh_fields(&refresh_token)).await;
    let (error, description) = refusal_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        (
            "invalid_grant",
            "The refresh token is bound to another DPoP key."
        )
    );
    // No proof at all: refused as Okta refuses a missing proof.
    let (error, description) =
        refusal_of(refresh(&idp, &refresh_token).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_dpop_proof", PROOF_MISSING)
    );
    // Its own key: a new DPoP-bound access token and the next refresh
    // token, the first not revoked by the attempts above.
    let (response, _) = with_dpop(&idp, &key, Some(&nonce), &refresh_fields(&refresh_token)).await;
    let refreshed = tokens_of(response).await;
    assert_eq!(refreshed["token_type"], "DPoP");
    assert_eq!(
        payload(str_of(&refreshed, "access_token"))["cnf"]["jkt"],
        key.thumbprint()
    );
    assert_ne!(str_of(&refreshed, "refresh_token"), refresh_token);
    assert!(is_active(&idp, str_of(&tokens, "access_token")).await);
}

#[tokio::test]
async fn a_replayed_or_forged_proof_is_refused_at_the_token_endpoint() {
    let idp = shared();
    let key = ProofKey::es256();
    let (code, verifier) = alice_code(&idp, "dpop-replay").await;
    let (response, nonce) = with_dpop(&idp, &key, None, &exchange_fields(&code, &verifier)).await;
    let tokens = tokens_of(response).await;
    let refresh_token = str_of(&tokens, "refresh_token").to_owned();
    let fields = refresh_fields(&refresh_token);

    let proof = token_proof(&idp, &key, Some(&nonce));
    tokens_of(dpop_token_request(&idp, &fields, &[&proof]).await).await;
    let refusal = |response| refusal_of(response, StatusCode::BAD_REQUEST);
    let (error, description) = refusal(dpop_token_request(&idp, &fields, &[&proof]).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        (
            "invalid_dpop_proof",
            "The DPoP proof JWT has already been used."
        )
    );

    let forged = |change: &dyn Fn(&mut Value)| {
        let mut claims = proof_claims("POST", &idp.url("/v1/token"), now() as i64, None);
        claims["nonce"] = json!(nonce);
        change(&mut claims);
        key.proof(&claims)
    };
    for (proof, expected) in [
        (
            forged(&|c| c["htu"] = json!(idp.url("/v1/revoke"))),
            "'htu' claim in the DPoP proof JWT is invalid.",
        ),
        (
            forged(&|c| c["htm"] = json!("GET")),
            "'htm' claim in the DPoP proof JWT is invalid.",
        ),
        (
            forged(&|c| c["iat"] = json!(now() as i64 - 600)),
            "'iat' claim in the DPoP proof JWT is invalid.",
        ),
        (
            forged(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "'jti' claim in the DPoP proof JWT is missing.",
        ),
        (
            proofs::hs256_proof(&proof_claims(
                "POST",
                &idp.url("/v1/token"),
                now() as i64,
                None,
            )),
            "The DPoP proof JWT is invalid: the DPoP proof is not signed with one of ES256 RS256.",
        ),
    ] {
        let (error, description) =
            refusal(dpop_token_request(&idp, &fields, &[&proof]).await).await;
        assert_eq!(
            (error.as_str(), description.as_str()),
            ("invalid_dpop_proof", expected)
        );
    }
    // A nonce of another server, and two proofs at once.
    let mut claims = proof_claims("POST", &idp.url("/v1/token"), now() as i64, None);
    claims["nonce"] = json!("AQAAAABnAAAA");
    let response = dpop_token_request(&idp, &fields, &[&key.proof(&claims)]).await;
    assert!(header(&response, "dpop-nonce").is_some());
    let (error, _) = refusal(response).await;
    assert_eq!(error, "use_dpop_nonce");
    let (one, two) = (
        token_proof(&idp, &key, Some(&nonce)),
        token_proof(&idp, &key, Some(&nonce)),
    );
    let (error, description) =
        refusal(dpop_token_request(&idp, &fields, &[&one, &two]).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        (
            "invalid_dpop_proof",
            "The request has more than one DPoP header."
        )
    );
    // None of that spent or rotated the refresh token.
    tokens_of(dpop_token_request(&idp, &fields, &[&one]).await).await;
}

#[tokio::test]
async fn a_client_may_require_dpop_and_may_not_require_nonces() {
    let (idp, running) = own_with_config(|config| {
        config["clients"][0]["dpop_bound_access_tokens"] = json!(true);
        config["clients"][0]["dpop_nonce_required"] = json!(false);
    })
    .await;
    let (code, verifier) = alice_code(&idp, "dpop-required").await;
    let fields = exchange_fields(&code, &verifier);
    let (error, description) =
        refusal_of(token_request(&idp, &fields).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_dpop_proof", PROOF_MISSING)
    );
    // No nonce needed: the first proof goes through, and the code was not
    // spent by the refusal.
    let key = ProofKey::es256();
    let response = dpop_token_request(&idp, &fields, &[&token_proof(&idp, &key, None)]).await;
    assert!(header(&response, "dpop-nonce").is_none());
    let tokens = tokens_of(response).await;
    assert_eq!(tokens["token_type"], "DPoP");
    running.shutdown().await;
}

#[tokio::test]
async fn dpop_crosses_origins_as_a_browser_app_sends_it() {
    let idp = shared();
    let response = preflight(&idp.url("/v1/token"), TRUSTED, "POST", "content-type,dpop").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let allowed = header(&response, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("dpop"), "{allowed}");
    // The use_dpop_nonce answer's nonce is readable by the app.
    let key = ProofKey::es256();
    let response = reqwest::Client::new()
        .post(idp.url("/v1/token"))
        .header("origin", TRUSTED)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", token_proof(&idp, &key, None))
        .body("grant_type=refresh_token&client_id=0oa-dev-spa&refresh_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(header(&response, "dpop-nonce").is_some());
    let exposed = header(&response, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("DPoP-Nonce"), "{exposed}");
}

#[tokio::test]
async fn userinfo_takes_a_bound_token_with_its_proof_only() {
    let idp = shared();
    let key = ProofKey::es256();
    let (code, verifier) = alice_code(&idp, "dpop-userinfo").await;
    let (response, _) = with_dpop(&idp, &key, None, &exchange_fields(&code, &verifier)).await;
    let tokens = tokens_of(response).await;
    let access = str_of(&tokens, "access_token");
    let call = |authorization: String, proof: Option<String>| {
        let mut request = reqwest::Client::new()
            .get(idp.url("/v1/userinfo"))
            .header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    // As a Bearer token: refused (RFC 9449 §7.2).
    let response = call(format!("Bearer {access}"), None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&response, "www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    // With its proof: the claims.
    let proof = key.proof(&proof_claims(
        "GET",
        &idp.url("/v1/userinfo"),
        now() as i64,
        Some(access),
    ));
    let response = call(format!("DPoP {access}"), Some(proof.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["sub"], "00ualicedev000000001");
    // The same proof again, or a proof by another key.
    let response = call(format!("DPoP {access}"), Some(proof)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate").unwrap().to_owned();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    let mut claims = proof_claims("GET", &idp.url("/v1/userinfo"), now() as i64, None);
    claims["ath"] = json!(ath(access));
    let response = call(
        format!("DPoP {access}"),
        Some(ProofKey::es256().proof(&claims)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&response, "www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn its_dpop_tokens_pass_the_apps_bearer_layer_with_their_proof_only() {
    use server::bearer::{
        AuthError, DpopOptions, Policy, TokenError, Validator, ValidatorOptions, DEFAULT_LEEWAY,
    };
    let idp = shared();
    let key = ProofKey::es256();
    let (code, verifier) = alice_code(&idp, "dpop-app").await;
    let (response, _) = with_dpop(&idp, &key, None, &exchange_fields(&code, &verifier)).await;
    let tokens = tokens_of(response).await;
    let access = str_of(&tokens, "access_token");

    let policy = Policy::new(
        idp.issuer.clone(),
        "api://default",
        Some(CLIENT_ID.into()),
        DEFAULT_LEEWAY,
    )
    .unwrap();
    let options = ValidatorOptions {
        dpop: DpopOptions {
            public_origin: Some(APP_ORIGIN.into()),
            ..DpopOptions::default()
        },
        ..ValidatorOptions::default()
    };
    let (validator, _) = Validator::discover(policy, options).await.unwrap();
    let request = |scheme: &str, proof: Option<String>| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("{scheme} {access}").parse().unwrap(),
        );
        if let Some(proof) = proof {
            headers.insert("dpop", proof.parse().unwrap());
        }
        headers
    };
    let proof = || {
        key.proof(&proof_claims(
            "POST",
            &format!("{APP_ORIGIN}/api/whoami"),
            now() as i64,
            Some(access),
        ))
    };
    let caller = validator
        .authenticate("POST", "/api/whoami", &request("DPoP", Some(proof())), None)
        .await
        .unwrap();
    assert_eq!(caller.claims.sub, "alice@example.com");
    let refusal = validator
        .authenticate("POST", "/api/whoami", &request("Bearer", None), None)
        .await
        .unwrap_err();
    assert_eq!(
        refusal.error,
        AuthError::InvalidToken(TokenError::DpopBound)
    );
}
