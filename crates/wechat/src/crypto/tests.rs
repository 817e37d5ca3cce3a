//! The official vector, every refusal, and properties over arbitrary input.

use cbc::cipher::BlockEncryptMut;
use proptest::prelude::*;

use super::*;

// WeChat's official decryption demo (docs/wechat.md).
const APPID: &str = "wx4f4bc4dec97d474b";
const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
const PLAINTEXT: &str = r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#;
const OPENID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";
/// The vector's watermark is from 2016: this clock says so explicitly.
const VECTOR_TIME: Freshness = Freshness {
    now: 1_477_314_200,
    max_age_secs: Some(3600),
    max_future_secs: 300,
};

fn key() -> SessionKey {
    SessionKey::new(KEY.into())
}

fn appid() -> AppId {
    AppId::parse("appid", APPID).unwrap()
}

fn encrypt(key: &[u8; 16], iv: &[u8; 16], plaintext: &[u8]) -> String {
    let ct = cbc::Encryptor::<Aes128>::new(key.into(), iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    STANDARD.encode(ct)
}

#[test]
fn the_official_vector_decrypts_byte_for_byte() {
    let plaintext = decrypt(&key(), DATA, IV).unwrap();
    assert_eq!(std::str::from_utf8(&plaintext).unwrap(), PLAINTEXT);
}

#[test]
fn the_official_vector_verifies_as_user_info() {
    let info = decrypt_user_info(&key(), DATA, IV, &appid(), OPENID, VECTOR_TIME).unwrap();
    assert_eq!(info.nick_name.as_deref(), Some("Band"));
    assert_eq!(
        info.union_id.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    assert_eq!(info.watermark.timestamp, 1_477_314_187);
}

#[test]
fn the_official_vector_is_refused_when_too_old_for_todays_clock() {
    let today = Freshness {
        now: 1_795_000_000,
        ..VECTOR_TIME
    };
    let err = decrypt_user_info(&key(), DATA, IV, &appid(), OPENID, today).unwrap_err();
    assert_eq!(err, DecryptError::Undecryptable);
}

#[test]
fn the_negative_vector_key_is_rejected_not_turned_into_garbage() {
    let wrong = SessionKey::new("7MG7jbTToVVRWRXVA885rg==".into());
    assert_eq!(decrypt(&wrong, DATA, IV), Err(DecryptError::Undecryptable));
}

#[test]
fn each_malformed_field_gets_its_own_error() {
    let cases: [(&str, SessionKey, &str, &str, DecryptError); 9] = [
        (
            "bad base64 data",
            key(),
            "@@@@",
            IV,
            DecryptError::InvalidBase64 {
                field: "encryptedData",
                space: false,
            },
        ),
        (
            "space in data",
            key(),
            &DATA.replace('+', " "),
            IV,
            DecryptError::InvalidBase64 {
                field: "encryptedData",
                space: true,
            },
        ),
        (
            "bad base64 iv",
            key(),
            DATA,
            "r7BXXKkLb8qrSNn05n0qiA=",
            DecryptError::InvalidBase64 {
                field: "iv",
                space: false,
            },
        ),
        (
            "short iv",
            key(),
            DATA,
            "r7BXXKkLb8qr",
            DecryptError::InvalidIvLength,
        ),
        (
            "long iv",
            key(),
            DATA,
            "r7BXXKkLb8qrSNn05n0qiAAA",
            DecryptError::InvalidIvLength,
        ),
        ("empty iv", key(), DATA, "", DecryptError::InvalidIvLength),
        (
            "short key",
            SessionKey::new("tiihtNczf5v6".into()),
            DATA,
            IV,
            DecryptError::InvalidKeyLength,
        ),
        (
            "empty data",
            key(),
            "",
            IV,
            DecryptError::InvalidCiphertextLength,
        ),
        (
            "data not a block multiple",
            key(),
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            IV,
            DecryptError::InvalidCiphertextLength,
        ),
    ];
    for (case, key, data, iv, expected) in cases {
        assert_eq!(decrypt(&key, data, iv), Err(expected), "case: {case}");
    }
}

#[test]
fn oversized_data_is_refused_before_decoding() {
    let huge = "A".repeat(MAX_ENCRYPTED_DATA_LEN + 4);
    assert_eq!(
        decrypt(&key(), &huge, IV),
        Err(DecryptError::InvalidCiphertextLength)
    );
}

#[test]
fn bad_padding_is_the_uniform_error() {
    let raw_key: [u8; 16] = STANDARD.decode(KEY).unwrap().try_into().unwrap();
    let iv = [7u8; 16];
    // A final block whose padding bytes disagree (…, 3, 2) is not PKCS#7.
    let mut block = [b'x'; 16];
    block[14] = 3;
    block[15] = 2;
    let mut ct = cbc::Encryptor::<Aes128>::new(&raw_key.into(), &iv.into())
        .encrypt_padded_vec_mut::<cbc::cipher::block_padding::NoPadding>(&block);
    let data = STANDARD.encode(&mut ct);
    assert_eq!(
        decrypt(&key(), &data, &STANDARD.encode(iv)),
        Err(DecryptError::Undecryptable)
    );
}

#[test]
fn tampered_ciphertext_is_the_uniform_error() {
    let mut bytes = STANDARD.decode(DATA).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = STANDARD.encode(&bytes);
    let result = decrypt_user_info(&key(), &tampered, IV, &appid(), OPENID, VECTOR_TIME);
    assert_eq!(result, Err(DecryptError::Undecryptable));
}

#[test]
fn a_foreign_watermark_or_openid_is_the_uniform_error() {
    let other_app = AppId::parse("appid", "wx0000000000000001").unwrap();
    let foreign = decrypt_user_info(&key(), DATA, IV, &other_app, OPENID, VECTOR_TIME);
    assert_eq!(foreign, Err(DecryptError::Undecryptable));
    let other_user = decrypt_user_info(&key(), DATA, IV, &appid(), "someone-else", VECTOR_TIME);
    assert_eq!(other_user, Err(DecryptError::Undecryptable));
}

#[test]
fn a_union_id_that_cannot_be_an_id_is_the_uniform_error() {
    let raw_key: [u8; 16] = STANDARD.decode(KEY).unwrap().try_into().unwrap();
    let decrypt_with = |union_id: &str| {
        let plaintext = PLAINTEXT.replace("ocMvos6NjeKLIBqg5Mr9QjxrP1FA", union_id);
        let data = encrypt(&raw_key, &[1; 16], plaintext.as_bytes());
        let iv = STANDARD.encode([1u8; 16]);
        decrypt_user_info(&key(), &data, &iv, &appid(), OPENID, VECTOR_TIME)
    };
    for bad in ["oc\\u0000Mvos", "oc\\nMvos", &"u".repeat(129)] {
        assert_eq!(decrypt_with(bad), Err(DecryptError::Undecryptable), "{bad}");
    }
    let fine = decrypt_with("ocMvos6NjeKLIBqg5Mr9QjxrP1FA").unwrap();
    assert_eq!(
        fine.union_id.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    let none = decrypt_with("").unwrap();
    assert_eq!(
        none.union_id.as_deref(),
        Some(""),
        "an empty one is no unionid, not an error"
    );
}

#[test]
fn valid_padding_over_non_json_is_the_uniform_error() {
    let raw_key: [u8; 16] = STANDARD.decode(KEY).unwrap().try_into().unwrap();
    let data = encrypt(&raw_key, &[1; 16], b"not json at all");
    let result = decrypt_phone(
        &key(),
        &data,
        &STANDARD.encode([1u8; 16]),
        &appid(),
        VECTOR_TIME,
    );
    assert_eq!(result, Err(DecryptError::Undecryptable));
}

#[test]
fn a_phone_payload_keeps_its_country_code() {
    let raw_key: [u8; 16] = STANDARD.decode(KEY).unwrap().try_into().unwrap();
    let body = format!(
        r#"{{"phoneNumber":"+852 61234567","purePhoneNumber":"61234567","countryCode":"852","watermark":{{"appid":"{APPID}","timestamp":1477314190}}}}"#
    );
    let data = encrypt(&raw_key, &[9; 16], body.as_bytes());
    let phone = decrypt_phone(
        &key(),
        &data,
        &STANDARD.encode([9u8; 16]),
        &appid(),
        VECTOR_TIME,
    )
    .unwrap();
    assert_eq!(phone.country_code, "852");
    assert_eq!(phone.pure_phone_number, "61234567");
}

#[test]
fn signatures_are_checked_exactly() {
    let raw = r#"{"nickName":"Band","gender":1}"#;
    let good = hex::encode(signature_of(&key(), raw));
    assert_eq!(verify_signature(&key(), raw, &good), Ok(()));
    assert_eq!(verify_signature(&key(), raw, &good.to_uppercase()), Ok(()));
    let cases = [
        (
            "other rawData",
            r#"{"nickName":"Band","gender":2}"#,
            good.as_str(),
        ),
        (
            "url-encoded rawData",
            "%7B%22nickName%22%3A%22Band%22%2C%22gender%22%3A1%7D",
            good.as_str(),
        ),
        ("truncated signature", raw, &good[..38]),
        ("not hex", raw, "zz"),
        ("empty", raw, ""),
    ];
    for (case, raw_data, signature) in cases {
        assert_eq!(
            verify_signature(&key(), raw_data, signature),
            Err(DecryptError::SignatureMismatch),
            "case: {case}"
        );
    }
}

#[test]
fn freshness_bounds_both_ways() {
    let f = Freshness {
        now: 1000,
        max_age_secs: Some(100),
        max_future_secs: 10,
    };
    assert!(f.accepts(1000) && f.accepts(900) && f.accepts(1010));
    assert!(!f.accepts(899) && !f.accepts(1011));
    let any_age = Freshness {
        max_age_secs: None,
        ..f
    };
    assert!(any_age.accepts(i64::MIN));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No input can panic the decrypt path, whatever it is.
    #[test]
    fn arbitrary_inputs_never_panic(data in ".{0,200}", iv in ".{0,40}", key in ".{0,40}") {
        let _ = decrypt_user_info(&SessionKey::new(key), &data, &iv, &appid(), OPENID, VECTOR_TIME);
    }

    /// Flipping any bit of the official ciphertext or iv never yields an accepted payload.
    #[test]
    fn any_bit_flip_is_refused(byte in 0usize..384, bit in 0u8..8, in_iv in any::<bool>()) {
        let mut data = STANDARD.decode(DATA).unwrap();
        let mut iv = STANDARD.decode(IV).unwrap();
        if in_iv {
            iv[byte % 16] ^= 1 << bit;
        } else {
            let at = byte % data.len();
            data[at] ^= 1 << bit;
        }
        let result = decrypt_user_info(&key(), &STANDARD.encode(&data), &STANDARD.encode(&iv), &appid(), OPENID, VECTOR_TIME);
        // A flip that lands in a JSON string can still parse; it must then not be the
        // original user, and most flips must fail outright.
        if let Ok(info) = result {
            prop_assert!(info != decrypt_user_info(&key(), DATA, IV, &appid(), OPENID, VECTOR_TIME).unwrap());
        }
    }
}
