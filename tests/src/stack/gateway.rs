//! The mini-program's side of a test: the gateway's REST routes, called as a client would.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Stack, envelope, save_body};

impl Stack {
    /// `GET /wxauth/getsessionkey` with raw query pairs; returns status and envelope.
    pub async fn get_session_key(&self, query: &[(&str, &str)]) -> (StatusCode, Value) {
        envelope(self.get_session_key_answer(query).await).await
    }

    /// `GET /wxauth/getsessionkey` with raw query pairs; returns the whole answer, headers
    /// included.
    pub async fn get_session_key_answer(&self, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}/wxauth/getsessionkey", self.gateway.url()))
            .query(query)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// `POST /wxauth/wxsmallusersave` with a JSON body.
    pub async fn save_user(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/wxauth/wxsmallusersave", self.gateway.url()))
            .json(body)
            .send()
            .await
            .expect("the gateway answers");
        envelope(response).await
    }

    /// The whole seed flow for (appid, openid): code, session, profile, token. Returns the
    /// `data` of the final envelope.
    pub async fn login(&self, appid: &str, openid: &str, profile: Value) -> Value {
        let code = self.mint_code(appid, openid, None).await;
        let (status, session) = self
            .get_session_key(&[("appid", appid), ("code", &code)])
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        let uuid = session["data"].as_str().expect("data is the session id");
        let data = self.user_info(appid, openid, profile).await;
        let (status, saved) = self
            .save_user(&save_body(appid, uuid, "userinfo", &data))
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        saved["data"].clone()
    }

    /// `POST path` with a JSON `body`, bearing `token` when there is one; returns status and
    /// envelope.
    pub async fn post_as(
        &self,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.gateway.url()))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        envelope(request.send().await.expect("the gateway answers")).await
    }

    /// `POST /v1/me/phone` with `body`, bearing `token` when there is one; returns status
    /// and envelope.
    pub async fn bind_phone(&self, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.post_as("/v1/me/phone", body, token).await
    }

    /// `GET /v1/me`, bearing `token` when there is one: the answer as it came, headers and
    /// all.
    pub async fn get_me(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/v1/me", self.gateway.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the gateway answers")
    }

    /// `POST /v1/token/refresh` with `refresh_token` (anything JSON: a string, or a value of
    /// a login's envelope); returns status and envelope.
    pub async fn v1_refresh(
        &self,
        refresh_token: &(impl serde::Serialize + ?Sized),
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/token/refresh", self.gateway.url()))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("the gateway answers");
        envelope(response).await
    }

    /// The silent login through `POST /v1/login`, the user bound to unionid `u-<openid>`;
    /// returns the envelope's `data`.
    pub async fn v1_login(&self, appid: &str, openid: &str) -> Value {
        let unionid = format!("u-{openid}");
        self.v1_login_with(appid, openid, Some(&unionid)).await
    }

    /// The silent login through `POST /v1/login` with (or without) a unionid; returns the
    /// envelope's `data`.
    pub async fn v1_login_with(&self, appid: &str, openid: &str, unionid: Option<&str>) -> Value {
        let (status, body) = self
            .try_v1_login(appid, openid, unionid)
            .await
            .expect("the gateway answers");
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// The silent login through `POST /v1/login`, whatever it answers: status and envelope,
    /// or the error of a request that got no answer (a drill's refusals are data).
    pub async fn try_v1_login(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let code = self.mint_code(appid, openid, unionid).await;
        let response = self
            .http
            .post(format!("{}/v1/login", self.gateway.url()))
            .json(&json!({"appid": appid, "code": code}))
            .send()
            .await?;
        Ok(envelope(response).await)
    }
}
