//! The simulator's HTTP surface: WeChat's own path, then the `/sim/` test controls.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    answers::{injected, sim_error, unknown_app, wechat_error},
    crypto,
    miniprogram::{self, MiniProgramError, Watermark},
    security,
    state::{CODE_TTL, Fault, Garbage, Sim},
    wxa,
};

/// The simulator's routes over shared state.
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/sns/jscode2session", get(jscode2session))
        .route("/cgi-bin/stable_token", post(wxa::stable_token))
        .route("/wxa/business/getuserphonenumber", post(wxa::phone_number))
        .route("/wxa/checksession", get(wxa::check_session))
        .route("/wxa/resetusersessionkey", get(wxa::reset_session_key))
        .route("/wxa/msg_sec_check", post(security::msg_sec_check))
        .route("/sim/seen", post(security::set_seen))
        .route("/sim/phone_code", post(wxa::mint_phone_code))
        .route("/sim/access_token", post(wxa::control_tokens))
        .route("/sim/login", post(mint_code))
        .route("/sim/userinfo", post(user_info))
        .route("/sim/phone", post(phone))
        .route("/sim/faults", post(queue_fault).delete(clear_faults))
        .route("/sim/session_key", get(session_key))
        .route("/sim/stats", get(stats))
        .with_state(sim)
}

// === WeChat's API ===

async fn jscode2session(
    State(sim): State<Sim>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let (appid, secret, code) = (param("appid"), param("secret"), param("js_code"));
    if appid.is_empty() {
        return wechat_error(41002, "appid missing");
    }
    if secret.is_empty() {
        return wechat_error(41004, "appsecret missing");
    }
    if code.is_empty() {
        return wechat_error(41008, "missing code");
    }
    if param("grant_type") != "authorization_code" {
        return wechat_error(40002, "invalid grant_type");
    }
    if params.contains_key("access_token") {
        // WeChat ignores it, but no caller should send one (WxJava #2810); make it visible.
        return wechat_error(40097, "invalid args: jscode2session takes no access_token");
    }

    sim.lock().exchanges += 1;
    if let Some(answer) = injected(&sim, "jscode2session").await {
        return answer;
    }

    let mut state = sim.lock();
    match state.apps.get(appid) {
        None => return wechat_error(40013, "invalid appid"),
        Some(expected) if expected != secret => return wechat_error(40125, "invalid appsecret"),
        Some(_) => {}
    }
    let Some(entry) = state.codes.get(code).cloned() else {
        return wechat_error(40029, "invalid code");
    };
    if entry.appid != appid || entry.minted.elapsed() > CODE_TTL {
        return wechat_error(40029, "invalid code");
    }
    if entry.used {
        return wechat_error(40163, "code been used");
    }
    if let Some(stored) = state.codes.get_mut(code) {
        stored.used = true;
    }
    if entry.high_risk {
        return wechat_error(40226, "invalid login, the user is at high risk");
    }
    if !state.within_rate_limit(appid, &entry.openid) {
        return wechat_error(45011, "api minute-quota reach limit");
    }
    let session_key = state.rotate_session_key(appid, &entry.openid);
    state
        .last_seen
        .insert((appid.to_owned(), entry.openid.clone()), Instant::now());
    let mut body = json!({ "session_key": session_key, "openid": entry.openid });
    if let Some(unionid) = entry.unionid {
        body["unionid"] = Value::String(unionid);
    }
    Json(body).into_response()
}

// === the mini-program side, for tests ===

#[derive(Deserialize)]
struct MintCode {
    appid: String,
    /// The user's openid, as the test chooses it (with `unionid`), or
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    /// a person: then the openid is theirs in this app and the unionid is theirs across the
    /// apps of the app's Open Platform account, as WeChat gives them.
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    high_risk: bool,
}

/// `wx.login()`: a fresh code for a user of `appid`; answers the code and the openid (and
/// unionid) WeChat will give for it.
async fn mint_code(State(sim): State<Sim>, Json(req): Json<MintCode>) -> Response {
    let mut state = sim.lock();
    if !state.apps.contains_key(&req.appid) {
        return unknown_app(&req.appid);
    }
    let (openid, unionid) = match (req.openid, req.person) {
        (Some(openid), None) => (openid, req.unionid),
        (None, Some(person)) => state.person(&req.appid, &person),
        _ => {
            return sim_error(
                StatusCode::BAD_REQUEST,
                "give either openid (and unionid) or person",
            );
        }
    };
    let code = state.mint_code(&req.appid, &openid, unionid.clone(), req.high_risk);
    Json(json!({ "code": code, "openid": openid, "unionid": unionid })).into_response()
}

#[derive(Deserialize)]
struct UserInfoRequest {
    appid: String,
    openid: String,
    /// The profile as `wx.getUserInfo()` would return it (nickName, avatarUrl, gender, ...).
    #[serde(default)]
    profile: serde_json::Map<String, Value>,
    /// Put another appid in the watermark, as data meant for another app would carry.
    #[serde(default)]
    watermark_appid: Option<String>,
    /// Override the watermark timestamp (Unix seconds).
    #[serde(default)]
    timestamp: Option<i64>,
}

/// `wx.getUserInfo()`: the profile encrypted under the user's current session_key, plus
/// rawData and its signature.
async fn user_info(State(sim): State<Sim>, Json(req): Json<UserInfoRequest>) -> Response {
    let watermark = Watermark {
        appid: req.watermark_appid,
        timestamp: req.timestamp,
    };
    match sim.user_info(&req.appid, &req.openid, req.profile, watermark) {
        Ok(signed) => Json(signed).into_response(),
        Err(err @ MiniProgramError::NoSession) => {
            sim_error(StatusCode::NOT_FOUND, &err.to_string())
        }
        Err(err @ MiniProgramError::BadKey) => {
            sim_error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneRequest {
    appid: String,
    openid: String,
    phone_number: String,
    pure_phone_number: String,
    country_code: String,
    #[serde(default)]
    watermark_appid: Option<String>,
}

/// The legacy `getPhoneNumber` button: the number encrypted under the current session_key.
async fn phone(State(sim): State<Sim>, Json(req): Json<PhoneRequest>) -> Response {
    let state = sim.lock();
    let Some(session_key) = state
        .session_keys
        .get(&(req.appid.clone(), req.openid.clone()))
    else {
        return sim_error(
            StatusCode::NOT_FOUND,
            "no session_key: exchange a code first",
        );
    };
    let plaintext = json!({
        "phoneNumber": req.phone_number,
        "purePhoneNumber": req.pure_phone_number,
        "countryCode": req.country_code,
        "watermark": { "timestamp": miniprogram::unix_now(), "appid": req.watermark_appid.unwrap_or(req.appid) },
    });
    let Some((encrypted_data, iv)) = crypto::encrypt(session_key, plaintext.to_string().as_bytes())
    else {
        return sim_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored session_key is not 16 bytes",
        );
    };
    Json(json!({ "encryptedData": encrypted_data, "iv": iv })).into_response()
}

// === controls ===

#[derive(Deserialize)]
struct FaultRequest {
    /// Answer with this errcode (for example -1, 45011, 40226).
    #[serde(default)]
    errcode: Option<i64>,
    /// Answer after this many milliseconds.
    #[serde(default)]
    delay_ms: u64,
    /// For how many of the next calls; 1 when absent.
    #[serde(default)]
    times: Option<u32>,
    /// Answer with this raw body instead of WeChat's JSON.
    #[serde(default)]
    body: Option<String>,
    /// With `body`: the HTTP status (200 when absent).
    #[serde(default)]
    status: Option<u16>,
    /// With `body`: a `location` header, as a proxy or portal redirecting the call would
    /// send (with a 3xx `status`).
    #[serde(default)]
    location: Option<String>,
    /// Which endpoint: `jscode2session` when absent, or `stable_token`,
    /// `getuserphonenumber`, `checksession`, `resetusersessionkey`, `msg_sec_check`.
    #[serde(default)]
    endpoint: Option<String>,
}

async fn queue_fault(State(sim): State<Sim>, Json(req): Json<FaultRequest>) -> Response {
    let fault = Fault {
        endpoint: req.endpoint.unwrap_or_else(|| "jscode2session".into()),
        errcode: req.errcode,
        delay: Duration::from_millis(req.delay_ms),
        garbage: req.body.map(|body| Garbage {
            status: req.status.unwrap_or(200),
            body,
            location: req.location,
        }),
    };
    let mut state = sim.lock();
    for _ in 0..req.times.unwrap_or(1) {
        state.faults.push_back(fault.clone());
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(sim): State<Sim>) -> Response {
    sim.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct UserQuery {
    appid: String,
    openid: String,
}

/// The user's current session_key: WeChat gives it to the server, so a test may know it to
/// prove that wxauth never lets it out.
async fn session_key(State(sim): State<Sim>, Query(query): Query<UserQuery>) -> Response {
    match sim.lock().session_keys.get(&(query.appid, query.openid)) {
        Some(key) => Json(json!({ "session_key": key })).into_response(),
        None => sim_error(StatusCode::NOT_FOUND, "no session_key for that user"),
    }
}

async fn stats(State(sim): State<Sim>) -> Response {
    let state = sim.lock();
    Json(json!({
        "exchanges": state.exchanges,
        "token_fetches": state.platform.token_fetches,
        "tokens_issued": state.platform.tokens_issued,
        "token_refusals": state.platform.token_refusals,
        "phone_calls": state.phone_calls,
        "content_checks": state.content_checks,
    }))
    .into_response()
}
