//! Prints how long signing and verifying an access token take: the work behind every
//! `ValidateToken` call and every offline check in wxauth-client.
//!
//! Run with `cargo bench -p wxauth-token --bench verify`.

use std::{hint::black_box, time::Instant};

use wxauth_token::{Claims, Jwks, KeyPair, LEGACY_ISSUER, Verifier};

fn main() {
    let key = KeyPair::from_seed("k1", &[7; 32]);
    let verifier = Verifier::from_jwks(&Jwks {
        keys: vec![key.jwk()],
    });
    let claims = Claims {
        iss: LEGACY_ISSUER.into(),
        sub: "123456".into(),
        aud: "wx4f4bc4dec97d474b".into(),
        openid: "oGZUI0egBJY1zhBYw2KhdUfwVJJE".into(),
        unionid: Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA".into()),
        acc: None,
        sid: "42".into(),
        jti: "0123456789abcdef0123456789abcdef".into(),
        iat: 1_800_000_000,
        exp: 1_800_000_900,
        client_id: Some("wx4f4bc4dec97d474b".into()),
        scope: Some("openid profile phone".into()),
    };
    let rounds = 50_000u32;

    let start = Instant::now();
    for _ in 0..rounds {
        black_box(key.sign(black_box(&claims)));
    }
    println!(
        "sign: {:?} per token over {rounds}",
        start.elapsed() / rounds
    );

    let token = key.sign(&claims);
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(
            verifier
                .verify(black_box(&token), 1_800_000_100, Some("wx4f4bc4dec97d474b"))
                .ok(),
        );
    }
    println!(
        "verify: {:?} per token over {rounds} ({} bytes)",
        start.elapsed() / rounds,
        token.len()
    );
}
