//! What validating a Bearer token costs next to the RSA verification it
//! cannot avoid.
//!
//! - `bare_verify/*`: one RSA-2048 PKCS#1 v1.5 SHA-256 verification with
//!   aws-lc-rs directly, of the same signature over the same bytes: with
//!   the key parsed on every call (`unparsed`, the ring-style API), built
//!   from (n, e) on every call (`components`, what jsonwebtoken does), and
//!   parsed once (`parsed`, the fastest the backend offers).
//! - `validate/cold`: the whole pipeline (header, JWS structure and
//!   header, key lookup, signature, claims) without the verified-token
//!   cache.
//! - `validate/cache_hit`: a repeated token answered from the cache.
//! - `reference/jsonwebtoken_verify`: the same signature through
//!   `jsonwebtoken::crypto::verify` with a `DecodingKey`, for comparison.
//!
//! After criterion, a paired run alternates cold validations with bare
//! verifications of the parsed key and prints the ratio of their medians:
//! on a shared machine that ratio is steadier than one of two separate
//! criterion runs.
//!
//! Run: `cargo bench -p server --bench validate`

#[path = "../tests/common/bearer_fixtures.rs"]
mod fixtures;
#[path = "common/paired.rs"]
mod paired;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, Criterion};
use fixtures::*;
use jsonwebtoken::{Algorithm, DecodingKey};
use paired::paired_medians;
use server::bearer::{Clock, ManualClock};

/// Runs a future that completes without waiting: a validation of a token
/// whose kid is known never suspends, so this measures the validator and
/// not an executor.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("validation of a known kid suspended"),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = &keys()[0];
    let server = runtime.block_on(JwksServer::start(jwks(&[key])));
    let clock = Arc::new(ManualClock::starting_now());
    let validator = runtime.block_on(validator_for(&server, clock.clone()));
    let token = key.token(&access_claims(&server.issuer(), clock.now_secs()));

    let (signing_input, signature_b64) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).unwrap();
    let n = URL_SAFE_NO_PAD.decode(&key.n).unwrap();
    let e = URL_SAFE_NO_PAD.decode(&key.e).unwrap();
    let message = signing_input.as_bytes();
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der).unwrap();

    // Everything must actually succeed, or the figures mean nothing.
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der)
        .verify(message, &signature)
        .unwrap();
    ready(validator.validate_uncached(&token)).unwrap();
    ready(validator.validate(&token)).unwrap();

    let mut group = c.benchmark_group("bare_verify");
    group.bench_function("unparsed", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der)
                .verify(message, &signature)
                .unwrap()
        })
    });
    group.bench_function("components", |b| {
        b.iter(|| {
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature)
                .unwrap()
        })
    });
    group.bench_function("parsed", |b| {
        b.iter(|| parsed.verify_sig(message, &signature).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("validate");
    group.bench_function("cold", |b| {
        b.iter(|| ready(validator.validate_uncached(&token)).unwrap())
    });
    group.bench_function("cache_hit", |b| {
        b.iter(|| ready(validator.validate(&token)).unwrap())
    });
    group.finish();

    let decoding_key = DecodingKey::from_rsa_components(&key.n, &key.e).unwrap();
    let mut group = c.benchmark_group("reference");
    group.bench_function("jsonwebtoken_verify", |b| {
        b.iter(|| {
            assert!(jsonwebtoken::crypto::verify(
                signature_b64,
                message,
                &decoding_key,
                Algorithm::RS256
            )
            .unwrap())
        })
    });
    group.finish();

    let (cold, bare) = paired_medians(
        20_000,
        || {
            ready(validator.validate_uncached(&token)).unwrap();
        },
        || {
            parsed.verify_sig(message, &signature).unwrap();
        },
    );
    println!(
        "paired medians over 20000 rounds: cold validation {:.2} µs, bare parsed-key verify {:.2} µs, ratio {:.3}",
        cold / 1000.0,
        bare / 1000.0,
        cold / bare
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
