//! WeChat's endpoints that need an app's access_token, and the token itself:
//! `POST /cgi-bin/stable_token`, `POST /wxa/business/getuserphonenumber`,
//! `GET /wxa/checksession`, `GET /wxa/resetusersessionkey`; plus the `/sim/` controls for
//! them (phone codes as the `getPhoneNumber` button gives them, token expiry and
//! invalidation).

use std::{collections::HashMap, time::Instant};

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    answers::{injected, unknown_app, wechat_error},
    crypto, miniprogram,
    platform::PhoneCode,
    state::Sim,
};

#[derive(Deserialize)]
pub(crate) struct StableTokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

/// `POST /cgi-bin/stable_token`.
pub(crate) async fn stable_token(
    State(sim): State<Sim>,
    body: Result<Json<StableTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return wechat_error(47001, "data format error");
    };
    if let Some(answer) = injected(&sim, "stable_token").await {
        return answer;
    }
    if req.grant_type != "client_credential" {
        return wechat_error(40002, "invalid grant_type");
    }
    let mut state = sim.lock();
    match state.apps.get(&req.appid) {
        None => return wechat_error(40013, "invalid appid"),
        Some(secret) if *secret != req.secret => {
            return wechat_error(40125, "invalid appsecret");
        }
        Some(_) => {}
    }
    match state.platform.stable_token(&req.appid, req.force_refresh) {
        Ok((token, expires_in)) => {
            Json(json!({ "access_token": token, "expires_in": expires_in })).into_response()
        }
        Err((errcode, errmsg)) => wechat_error(errcode, errmsg),
    }
}

/// The `access_token` of a query, checked; the app it belongs to.
pub(crate) fn token_app(
    sim: &Sim,
    query: &HashMap<String, String>,
) -> Result<String, Box<Response>> {
    sim.lock()
        .platform
        .check_token(query.get("access_token").map(String::as_str))
        .map_err(|refusal| {
            let (errcode, errmsg) = refusal.errcode();
            Box::new(wechat_error(errcode, errmsg))
        })
}

#[derive(Deserialize)]
pub(crate) struct PhoneNumberRequest {
    #[serde(default)]
    code: String,
    #[serde(default)]
    openid: Option<String>,
}

/// `POST /wxa/business/getuserphonenumber?access_token=...` `{code, openid?}`.
pub(crate) async fn phone_number(
    State(sim): State<Sim>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<PhoneNumberRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let appid = match token_app(&sim, &query) {
        Ok(appid) => appid,
        Err(answer) => return *answer,
    };
    let Ok(Json(req)) = body else {
        return wechat_error(47001, "data format error");
    };
    if req.code.is_empty() {
        return wechat_error(40097, "invalid args: code is required");
    }
    sim.lock().phone_calls += 1;
    if let Some(answer) = injected(&sim, "getuserphonenumber").await {
        return answer;
    }
    let used = sim
        .lock()
        .platform
        .use_phone_code(&appid, &req.code, req.openid.as_deref());
    match used {
        Ok(phone) => Json(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone.phone_number,
                "purePhoneNumber": phone.pure_phone_number,
                "countryCode": phone.country_code,
                "watermark": { "timestamp": miniprogram::unix_now(), "appid": appid },
            },
        }))
        .into_response(),
        Err((errcode, errmsg)) => wechat_error(errcode, errmsg),
    }
}

/// Checks the session signature of a checksession or reset query against the user's
/// current session_key. `Ok((appid, openid))` when it matches.
async fn signed_user(
    sim: &Sim,
    query: &HashMap<String, String>,
    endpoint: &str,
) -> Result<(String, String), Box<Response>> {
    let appid = token_app(sim, query)?;
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    if param("sig_method") != "hmac_sha256" {
        return Err(Box::new(wechat_error(87008, "invalid sig_method")));
    }
    let openid = param("openid");
    if openid.is_empty() {
        return Err(Box::new(wechat_error(40003, "invalid openid")));
    }
    if let Some(answer) = injected(sim, endpoint).await {
        return Err(Box::new(answer));
    }
    let state = sim.lock();
    let matches = state
        .session_keys
        .get(&(appid.clone(), openid.to_owned()))
        .is_some_and(|key| crypto::session_signature(key, b"") == param("signature"));
    if matches {
        Ok((appid, openid.to_owned()))
    } else {
        Err(Box::new(wechat_error(87009, "invalid signature")))
    }
}

/// `GET /wxa/checksession?access_token&signature&openid&sig_method=hmac_sha256`.
pub(crate) async fn check_session(
    State(sim): State<Sim>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match signed_user(&sim, &query, "checksession").await {
        Ok(_) => Json(json!({ "errcode": 0, "errmsg": "ok" })).into_response(),
        Err(answer) => *answer,
    }
}

/// `GET /wxa/resetusersessionkey?access_token&openid&signature&sig_method=hmac_sha256`: a
/// new session_key; the old one stops working at once.
pub(crate) async fn reset_session_key(
    State(sim): State<Sim>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match signed_user(&sim, &query, "resetusersessionkey").await {
        Ok((appid, openid)) => {
            let session_key = sim.lock().rotate_session_key(&appid, &openid);
            Json(json!({
                "errcode": 0,
                "errmsg": "ok",
                "openid": openid,
                "session_key": session_key,
            }))
            .into_response()
        }
        Err(answer) => *answer,
    }
}

// === controls ===

#[derive(Deserialize)]
pub(crate) struct MintPhoneCode {
    appid: String,
    openid: String,
    phone_number: String,
    pure_phone_number: String,
    country_code: String,
    /// Send the country code as a JSON number, as WeChat's own example does.
    #[serde(default)]
    country_code_as_number: bool,
}

/// The `getPhoneNumber` button: a code for the user's number (single use, five minutes).
pub(crate) async fn mint_phone_code(
    State(sim): State<Sim>,
    Json(req): Json<MintPhoneCode>,
) -> Response {
    if !sim.lock().apps.contains_key(&req.appid) {
        return unknown_app(&req.appid);
    }
    let country_code = match req.country_code.parse::<u64>() {
        Ok(number) if req.country_code_as_number => Value::from(number),
        _ => Value::from(req.country_code),
    };
    let code = sim.lock().platform.mint_phone_code(PhoneCode {
        appid: req.appid,
        openid: req.openid,
        phone_number: req.phone_number,
        pure_phone_number: req.pure_phone_number,
        country_code,
        minted: Instant::now(),
        used: false,
    });
    Json(json!({ "code": code })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct TokenControl {
    appid: String,
    /// `expire` (42001 from now on) or `invalidate` (40001, as after someone else's forced
    /// refresh).
    action: String,
}

/// Ends an app's access_tokens, as time or another caller would.
pub(crate) async fn control_tokens(
    State(sim): State<Sim>,
    Json(req): Json<TokenControl>,
) -> Response {
    let mut state = sim.lock();
    match req.action.as_str() {
        "expire" => state.platform.expire_tokens(&req.appid),
        "invalidate" => state.platform.invalidate_tokens(&req.appid),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "action must be expire or invalidate" })),
            )
                .into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
