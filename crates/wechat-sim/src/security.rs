//! `POST /wxa/msg_sec_check` (version 2): WeChat's content check, with a word list standing
//! in for its models. A text with a risky word answers `risky`, one with a review word
//! `review`, anything else `pass`, in WeChat's JSON (`result`, `detail` per strategy,
//! `trace_id`). The openid must be a user of the app (40003) who opened it within the last
//! two hours (61010); `/sim/seen` moves when a user was last seen, so a test need not wait.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    answers::{injected, sim_error, wechat_error},
    crypto,
    state::Sim,
    wxa::token_app,
};

/// How recently a user must have opened the mini-program for a check of their text.
pub(crate) const SEEN_WITHIN: Duration = Duration::from_secs(2 * 3600);
/// The longest text WeChat checks, in characters.
const MAX_CONTENT_CHARS: usize = 2500;

/// Words WeChat's models would call risky, with their label (20006 crime, 20008 fraud,
/// 20003 abuse, 10001 ads).
const RISKY: [(&str, i64); 4] = [
    ("赌博", 20006),
    ("代开发票", 20008),
    ("傻逼", 20003),
    ("risky-word", 21000),
];
/// Words a person should look at (10001 ads).
const REVIEW: [(&str, i64); 2] = [("加微信", 10001), ("review-word", 10001)];

#[derive(Deserialize)]
pub(crate) struct CheckRequest {
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    openid: String,
    #[serde(default)]
    scene: Option<i64>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

/// `POST /wxa/msg_sec_check?access_token=...`.
pub(crate) async fn msg_sec_check(
    State(sim): State<Sim>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<CheckRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let appid = match token_app(&sim, &query) {
        Ok(appid) => appid,
        Err(answer) => return *answer,
    };
    let Ok(Json(req)) = body else {
        return wechat_error(47001, "data format error");
    };
    sim.lock().content_checks += 1;
    if req.version != Some(2) {
        return wechat_error(40097, "invalid args: version must be 2");
    }
    if !matches!(req.scene, Some(1..=4)) {
        return wechat_error(40097, "invalid args: scene must be 1, 2, 3 or 4");
    }
    let Some(content) = req.content.filter(|content| !content.is_empty()) else {
        return wechat_error(40097, "invalid args: content is required");
    };
    if content.chars().count() > MAX_CONTENT_CHARS {
        return wechat_error(40097, "invalid args: content is too long");
    }
    if let Some(answer) = injected(&sim, "msg_sec_check").await {
        return answer;
    }
    {
        let state = sim.lock();
        let user = (appid.clone(), req.openid.clone());
        if req.openid.is_empty() || !state.session_keys.contains_key(&user) {
            return wechat_error(40003, "invalid openid");
        }
        let seen_recently = state
            .last_seen
            .get(&user)
            .is_some_and(|seen| seen.elapsed() <= SEEN_WITHIN);
        if !seen_recently {
            return wechat_error(61010, "user access expired");
        }
    }
    let text = format!("{content}\n{}", req.nickname.unwrap_or_default());
    let (suggest, label, keyword) = match (
        RISKY.iter().find(|(word, _)| text.contains(word)),
        REVIEW.iter().find(|(word, _)| text.contains(word)),
    ) {
        (Some((word, label)), _) => ("risky", *label, Some(*word)),
        (None, Some((word, label))) => ("review", *label, Some(*word)),
        (None, None) => ("pass", 100, None),
    };
    let mut detail = vec![json!({
        "strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label, "prob": 90,
    })];
    if let Some(keyword) = keyword {
        detail.push(json!({
            "strategy": "keyword", "errcode": 0, "suggest": suggest, "label": label,
            "level": 20, "keyword": keyword,
        }));
    }
    Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "result": { "suggest": suggest, "label": label },
        "detail": detail,
        "trace_id": hex::encode(crypto::random_bytes::<12>()),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct Seen {
    appid: String,
    openid: String,
    /// How long ago the user last opened the mini-program.
    seconds_ago: u64,
}

/// Sets when a user last opened the mini-program, as if that long ago.
pub(crate) async fn set_seen(State(sim): State<Sim>, Json(req): Json<Seen>) -> Response {
    let Some(at) = Instant::now().checked_sub(Duration::from_secs(req.seconds_ago)) else {
        return sim_error(StatusCode::BAD_REQUEST, "seconds_ago is too far back");
    };
    sim.lock().last_seen.insert((req.appid, req.openid), at);
    StatusCode::NO_CONTENT.into_response()
}
