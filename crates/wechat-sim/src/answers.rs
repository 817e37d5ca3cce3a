//! How the simulator answers: WeChat's error JSON, its own refusals of a test's mistakes,
//! and the faults a test queued.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{crypto, state::Sim};

/// The fault queued for `endpoint`, if any, played out: after its delay, its garbage or
/// its errcode (`None` when there is none, or it only delays).
pub(crate) async fn injected(sim: &Sim, endpoint: &str) -> Option<Response> {
    let fault = sim.lock().take_fault(endpoint)?;
    tokio::time::sleep(fault.delay).await;
    if let Some(garbage) = fault.garbage {
        let status = StatusCode::from_u16(garbage.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut answer = (status, garbage.body).into_response();
        if let Some(location) = garbage
            .location
            .and_then(|location| HeaderValue::from_str(&location).ok())
        {
            answer.headers_mut().insert(header::LOCATION, location);
        }
        return Some(answer);
    }
    fault
        .errcode
        .map(|errcode| wechat_error(errcode, "simulated error"))
}

/// WeChat answers every API error with HTTP 200 and this body.
pub(crate) fn wechat_error(errcode: i64, errmsg: &str) -> Response {
    let rid = hex::encode(crypto::random_bytes::<4>());
    Json(json!({ "errcode": errcode, "errmsg": format!("{errmsg}, rid: {rid}") })).into_response()
}

/// A refusal of a `/sim/` control call; these are the test's mistakes, not WeChat's answers.
pub(crate) fn sim_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A mini-program of an app WeChat does not know cannot get a code from it.
pub(crate) fn unknown_app(appid: &str) -> Response {
    sim_error(
        StatusCode::NOT_FOUND,
        &format!("this simulator does not serve appid {appid}: add it to WECHAT_SIM_APPS"),
    )
}
