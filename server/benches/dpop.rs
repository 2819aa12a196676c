//! What checking a DPoP proof costs next to the P-256 verification it
//! cannot avoid, and what it adds to a protected request.
//!
//! - `p256/raw_verify`: one ECDSA P-256 SHA-256 verification with aws-lc-rs
//!   directly, of the proof's signature over its signing input (the point
//!   parsed on every call, as the proof check must: each proof brings its
//!   own key).
//! - `proof/es256`, `proof/rs256`: `server::bearer::dpop::verify` of one
//!   proof: base64url and JSON of header and claims, the key checked
//!   against `alg`, the signature, `htm`/`htu`/`iat`/`ath`, and the RFC
//!   7638 thumbprint.
//! - `authenticate/bearer_cached`, `authenticate/dpop_cached`: the
//!   validator's whole decision for a request whose token is in the
//!   verified-token cache, as Bearer and as DPoP with a fresh proof each
//!   time (the proofs are made outside the timing; the DPoP figure
//!   includes the replay cache and the nonce-free path).
//!
//! After criterion, a paired run alternates proof checks with raw
//! verifications and prints the ratio of their medians.
//!
//! Run: `cargo bench -p server --bench dpop`

#[path = "../tests/common/bearer_fixtures.rs"]
mod fixtures;
#[path = "common/paired.rs"]
mod paired;
#[path = "../tests/common/dpop_proofs.rs"]
mod proofs;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, BatchSize, Criterion};
use fixtures::*;
use http::HeaderMap;
use paired::paired_medians;
use proofs::{proof_claims, ProofKey};
use serde_json::json;
use server::bearer::dpop::{self, Expected, Htu};
use server::bearer::{Clock, DpopOptions, ManualClock, Validator};

const ORIGIN: &str = "https://app.example.test";
const PATH: &str = "/api/whoami";

/// Runs a future that completes without waiting (a cached token never
/// suspends).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a cached validation suspended"),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer_key = &keys()[0];
    let server = runtime.block_on(JwksServer::start(jwks(&[issuer_key])));
    let clock = Arc::new(ManualClock::starting_now());
    let mut options = options(clock.clone());
    options.dpop = DpopOptions {
        public_origin: Some(ORIGIN.into()),
        ..DpopOptions::default()
    };
    let validator = runtime
        .block_on(Validator::new(
            policy_for(&server, Some(CLIENT_ID)),
            server.jwks_uri(),
            options,
        ))
        .unwrap();
    let now = clock.now_secs();

    let ec = ProofKey::es256();
    let rsa = ProofKey::rs256(0);
    let mut bound = access_claims(&server.issuer(), now);
    bound["cnf"] = json!({"jkt": ec.thumbprint()});
    let token = issuer_key.token(&bound);
    let bearer = issuer_key.token(&access_claims(&server.issuer(), now));
    let token_hash = server::bearer::verified::token_hash(&token);
    let url = Htu::at(ORIGIN, PATH).unwrap();
    let expected = Expected {
        method: "POST",
        url: &url,
        token_hash: Some(&token_hash),
        now,
        iat_window_secs: 120,
    };
    let claims = proof_claims("POST", &format!("{ORIGIN}{PATH}"), now, Some(&token));
    let es256 = ec.proof(&claims);
    let rs256 = rsa.proof(&claims);

    // The raw verify: the same point, signature and signing input.
    let jwk = ec.jwk();
    let mut point = vec![0x04];
    for coordinate in ["x", "y"] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
                .unwrap(),
        );
    }
    let (signing_input, signature) = es256.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let raw = || {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(signing_input.as_bytes(), &signature)
            .unwrap()
    };

    // Everything must actually succeed, or the figures mean nothing.
    raw();
    assert_eq!(
        dpop::verify(&es256, &expected).unwrap().jkt,
        ec.thumbprint()
    );
    dpop::verify(&rs256, &expected).unwrap();
    let headers = |scheme: &str, token: &str, proof: Option<String>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        if let Some(proof) = proof {
            headers.insert("dpop", proof.parse().unwrap());
        }
        headers
    };
    // The clock moves a millisecond per proof, so proofs leave the replay
    // cache as they would at a thousand requests a second, and the cache
    // never fills however many iterations criterion runs.
    let fresh_dpop = || {
        clock.advance(Duration::from_millis(1));
        let claims = proof_claims(
            "POST",
            &format!("{ORIGIN}{PATH}"),
            clock.now_secs(),
            Some(&token),
        );
        headers("DPoP", &token, Some(ec.proof(&claims)))
    };
    let bearer_headers = headers("Bearer", &bearer, None);
    ready(validator.authenticate("POST", PATH, &bearer_headers, None)).unwrap();
    ready(validator.authenticate("POST", PATH, &fresh_dpop(), None)).unwrap();

    let mut group = c.benchmark_group("p256");
    group.bench_function("raw_verify", |b| b.iter(raw));
    group.finish();

    let mut group = c.benchmark_group("proof");
    group.bench_function("es256", |b| {
        b.iter(|| dpop::verify(&es256, &expected).unwrap())
    });
    group.bench_function("rs256", |b| {
        b.iter(|| dpop::verify(&rs256, &expected).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("authenticate");
    group.bench_function("bearer_cached", |b| {
        b.iter(|| ready(validator.authenticate("POST", PATH, &bearer_headers, None)).unwrap())
    });
    group.bench_function("dpop_cached", |b| {
        b.iter_batched(
            fresh_dpop,
            |headers| ready(validator.authenticate("POST", PATH, &headers, None)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let (proof, bare) = paired_medians(
        20_000,
        || {
            dpop::verify(&es256, &expected).unwrap();
        },
        raw,
    );
    println!(
        "paired medians over 20000 rounds: ES256 proof check {:.2} µs, raw P-256 verify {:.2} µs, ratio {:.3}",
        proof / 1000.0,
        bare / 1000.0,
        proof / bare
    );

    // The whole decision for a DPoP request with a cached token, against
    // the proof check alone, each round with a proof of its own made
    // beforehand.
    let rounds = 20_000;
    let made: Vec<(String, HeaderMap)> = (0..rounds)
        .map(|_| {
            let claims = proof_claims(
                "POST",
                &format!("{ORIGIN}{PATH}"),
                clock.now_secs(),
                Some(&token),
            );
            let proof = ec.proof(&claims);
            let headers = headers("DPoP", &token, Some(proof.clone()));
            (proof, headers)
        })
        .collect();
    let now = clock.now_secs();
    let expected = Expected { now, ..expected };
    let (mut a, mut b) = (made.iter(), made.iter());
    let (layer, check) = paired_medians(
        rounds,
        || {
            let (_, headers) = a.next().unwrap();
            ready(validator.authenticate("POST", PATH, headers, None)).unwrap();
        },
        || {
            let (proof, _) = b.next().unwrap();
            dpop::verify(proof, &expected).unwrap();
        },
    );
    println!(
        "paired medians over {rounds} rounds: DPoP request with a cached token {:.2} µs, its proof check alone {:.2} µs, ratio {:.3}",
        layer / 1000.0,
        check / 1000.0,
        layer / check
    );
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
