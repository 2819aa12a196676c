//! The embedded development authorization server, driven over real HTTP
//! the way a browser and the app would, one redirect at a time.
//!
//! Run: `cargo test -p server --test dev_idp`.

#[path = "common/dev_idp.rs"]
mod support;

use std::collections::BTreeSet;

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
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["issuer"], idp.issuer.as_str(), "{path}");
        assert_eq!(doc["authorization_endpoint"], idp.url("/v1/authorize"));
        assert_eq!(doc["jwks_uri"], idp.url("/v1/keys"));
        assert_eq!(doc["end_session_endpoint"], idp.url("/v1/logout"));
        assert_eq!(
            doc["response_types_supported"],
            json!(["id_token", "token", "id_token token"])
        );
        assert_eq!(doc["response_modes_supported"], json!(["fragment"]));
        assert_eq!(
            doc["scopes_supported"],
            json!(["openid", "profile", "email", "reports:read"])
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256"])
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
            base.clone().set("response_type", "code"),
            "unsupported_response_type",
        ),
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
            "invalid_request",
        ),
        (
            base.clone().set("response_mode", "form_post"),
            "invalid_request",
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
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
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
        "/oauth2/default/v1/token",
        "/oauth2/other/v1/keys",
    ] {
        let reply = Browser::new().get(&format!("{}{path}", idp.origin())).await;
        reply.assert_error_page(StatusCode::NOT_FOUND);
    }
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
