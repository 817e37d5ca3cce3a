//! Prints how long decrypting and verifying WeChat's official vector takes.
//!
//! Run with `cargo bench -p wxauth-wechat --bench decrypt`. A plain loop, not a timed test:
//! the figure is for the README, not an assertion.

use std::{hint::black_box, time::Instant};

use wxauth_wechat::{AppId, SessionKey, crypto};

const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

fn main() {
    let key = SessionKey::new(KEY.into());
    let appid = AppId::parse("appid", "wx4f4bc4dec97d474b").expect("vector appid is valid");
    let freshness = crypto::Freshness {
        now: 1_477_314_200,
        max_age_secs: None,
        max_future_secs: 300,
    };
    let rounds = 200_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        let info = crypto::decrypt_user_info(
            black_box(&key),
            black_box(DATA),
            black_box(IV),
            &appid,
            "oGZUI0egBJY1zhBYw2KhdUfwVJJE",
            freshness,
        );
        black_box(info.expect("the official vector decrypts"));
    }
    let per_op = start.elapsed() / rounds;
    println!("decrypt_user_info (official vector, 512 B): {per_op:?} per call over {rounds} calls");

    let bad = DATA.replace('C', "D");
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(crypto::decrypt(black_box(&key), black_box(&bad), black_box(IV)).ok());
    }
    let per_op = start.elapsed() / rounds;
    println!("decrypt refusing tampered data: {per_op:?} per call over {rounds} calls");
}
