//! Webhooks as a receiver sees them: a Python receiver that verifies every request with the
//! Standard Webhooks reference library (`standardwebhooks`), down while events are written
//! and then up; every event arrives, verified, each user's in order.

use std::{
    collections::{BTreeMap, HashSet},
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::{
    eventually, jwt_claims,
    stack::{APP, Options, Stack},
};

/// A secret as the specification's examples write them.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// The Python receiver, stopped (and its folder removed) when dropped.
struct Receiver {
    child: Child,
    said: BufReader<ChildStdout>,
    dir: PathBuf,
    events: PathBuf,
    /// The port it holds from its start, down or up.
    port: u16,
}

impl Receiver {
    /// Starts `tests/webhooks/receiver.py` on a port of its own, recording to a file of its
    /// own. It holds the port from the start: `down`, it refuses connections (bound, not
    /// listening) until [`Receiver::up`], and no other program can take the port meanwhile.
    fn start(fail: bool, down: bool) -> Self {
        let python = root().join("target/oidc-python/bin/python");
        assert!(
            python.exists(),
            "the stock Python libraries are missing: scripts/test installs them into target/oidc-python"
        );
        let dir =
            std::env::temp_dir().join(format!("wxauth-receiver-{}", wxauth_e2e::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("received.jsonl");
        let mut command = Command::new(python);
        command
            .arg(root().join("tests/webhooks/receiver.py"))
            .arg(&events)
            .arg("0")
            .arg(SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if fail {
            command.arg("--fail");
        }
        if down {
            command.arg("--down");
        }
        let mut child = command.spawn().expect("python runs");
        let mut said = BufReader::new(child.stdout.take().unwrap());
        let line = next_line(&mut said);
        let want = if down { "down on " } else { "listening on " };
        let port = line
            .strip_prefix(want)
            .and_then(|address| address.trim().rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Self {
            child,
            said,
            dir,
            events,
            port,
        }
    }

    /// Brings a receiver started down up: from now on it accepts.
    fn up(&mut self) {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("the receiver's input is open");
        stdin.write_all(b"up\n").unwrap();
        stdin.flush().unwrap();
        let line = next_line(&mut self.said);
        assert!(
            line.starts_with("listening on"),
            "the receiver said {line:?}"
        );
    }

    /// What it recorded, in the order it came.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// The receiver's next line on its standard output.
fn next_line(said: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    line
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Settings of a stack whose subscription `crm` takes every kind, posted to `port`, retried
/// quickly (a minute's outage in a second or two).
fn subscribed(port: u16) -> Options {
    let all = [
        "user.created",
        "user.login",
        "user.profile_updated",
        "user.phone_bound",
        "session.revoked",
        "session.reuse_detected",
        "user.suspended",
        "user.deleted",
    ];
    Options {
        auth_env: vec![
            (
                "WXAUTH_WEBHOOKS",
                json!([{
                    "name": "crm",
                    "appid": APP,
                    "url": format!("http://127.0.0.1:{port}/wxauth-events"),
                    "secret": SECRET,
                    "events": all,
                }])
                .to_string(),
            ),
            ("WXAUTH_WEBHOOK_FIRST_RETRY_MS", "100".into()),
            ("WXAUTH_WEBHOOK_LONGEST_RETRY_SECS", "1".into()),
            ("WXAUTH_WEBHOOK_POLL_MS", "50".into()),
        ],
        ..Options::default()
    }
}

/// The sum of `wxauth_webhook_deliveries_total` with `outcome`.
async fn deliveries(stack: &Stack, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    stack
        .scrape(&stack.auth)
        .await
        .lines()
        .filter(|line| line.starts_with("wxauth_webhook_deliveries_total") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Logs `openid` in, fills in a nickname, logs out: returns the user id.
async fn a_users_day(stack: &Stack, openid: &str) -> String {
    let login = stack.v1_login(APP, openid).await;
    let access = login["access_token"].as_str().unwrap();
    let (status, body) = stack
        .post_as(
            "/v1/me/profile",
            json!({"nickname": format!("n-{openid}")}),
            Some(access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = stack.post_as("/v1/logout", json!({}), Some(access)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    login["user"]["user_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_event_verified_in_each_users_order() {
    let mut receiver = Receiver::start(false, true);
    let stack = Stack::start_with(subscribed(receiver.port)).await;
    let mut users = Vec::new();
    for openid in ["o-hook-1", "o-hook-2", "o-hook-3"] {
        users.push(a_users_day(&stack, openid).await);
    }
    // The first user comes back: a login of a known user is not a creation.
    stack.v1_login(APP, "o-hook-1").await;

    // Down: the attempts fail and are retried, while logins went on unhindered.
    eventually(
        "attempts fail while the receiver is down",
        Duration::from_secs(20),
        || async { deliveries(&stack, "retry").await >= 12 },
    )
    .await;
    assert_eq!(deliveries(&stack, "delivered").await, 0);
    let written = stack.count("webhook_events").await;
    assert_eq!(written, 3 * 4 + 1, "four events per user, one more login");

    // Up: everything arrives.
    receiver.up();
    eventually(
        "every event is delivered",
        Duration::from_secs(30),
        || async {
            stack
                .count("webhook_events where state = 'delivered'")
                .await
                == written
        },
    )
    .await;
    let received = receiver.received();
    assert!(
        received.iter().all(|event| event["verified"] == true),
        "every signature verifies with the reference library: {received:?}"
    );
    let mut seen = HashSet::new();
    let mut per_user: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for event in &received {
        let id = event["id"].as_str().unwrap().to_owned();
        // At least once: a repeat carries the same webhook-id, and is dropped as a receiver
        // would.
        if !seen.insert(id.clone()) {
            continue;
        }
        let number: u64 = id.trim_start_matches("evt_").parse().unwrap();
        let user = event["data"]["user_id"].as_str().unwrap().to_owned();
        per_user
            .entry(user)
            .or_default()
            .push((number, event["type"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        seen.len() as i64,
        written,
        "every event, once each after dedup"
    );
    let day = [
        "user.created",
        "user.login",
        "user.profile_updated",
        "session.revoked",
    ];
    for (at, user) in users.iter().enumerate() {
        let events = &per_user[user];
        assert!(
            events.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "user {user}'s events came in the order they were written: {events:?}"
        );
        let kinds: Vec<&str> = events.iter().map(|(_, kind)| kind.as_str()).collect();
        let mut expected = day.to_vec();
        if at == 0 {
            expected.push("user.login");
        }
        assert_eq!(kinds, expected, "user {user}");
    }
    // Nothing secret rides along: no token, no key, no secret of the deployment.
    let raw = std::fs::read_to_string(&receiver.events).unwrap();
    for secret in &stack.secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "a secret reached a receiver"
        );
    }
    assert!(
        !raw.contains("wxrt_") && !raw.contains("eyJ"),
        "no token reaches a receiver"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_forever_fills_the_dead_letters_not_the_request_path() {
    let receiver = Receiver::start(true, false);
    let mut options = subscribed(receiver.port);
    options
        .auth_env
        .push(("WXAUTH_WEBHOOK_RETRY_WINDOW_SECS", "1".into()));
    let stack = Stack::start_with(options).await;
    stack.v1_login(APP, "o-dead-1").await;
    eventually("the events die", Duration::from_secs(20), || async {
        stack.count("webhook_events where state = 'dead'").await == 2
    })
    .await;
    assert!(deliveries(&stack, "dead").await >= 2);
    assert!(
        receiver
            .received()
            .iter()
            .all(|event| event["verified"] == true),
        "the receiver saw them, signed, and refused them"
    );
    // Logins go on, each writing its events, whatever the receiver does.
    for openid in ["o-dead-2", "o-dead-3"] {
        let login = stack.v1_login(APP, openid).await;
        assert!(login["access_token"].is_string());
    }
    assert_eq!(
        stack
            .count("webhook_events where kind in ('user.created', 'user.login')")
            .await,
        6
    );
}

#[tokio::test]
async fn without_a_subscription_the_login_path_writes_no_event() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-quiet").await;
    let access = login["access_token"].as_str().unwrap();
    let (status, _) = stack
        .post_as("/v1/me/profile", json!({"nickname": "quiet"}), Some(access))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stack.count("webhook_events").await, 0);
}

/// The outbox as written: (subscription, kind, payload) in order.
async fn outbox(stack: &Stack) -> Vec<(String, String, Value)> {
    let pool = stack.db.pool().await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("select subscription, kind, payload from webhook_events order by event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(sub, kind, payload)| (sub, kind, serde_json::from_str(&payload).unwrap()))
        .collect()
}

#[tokio::test]
async fn each_change_writes_its_events_with_nothing_a_subscription_may_not_read() {
    // Down all along: the port is held, and every delivery is refused.
    let receiver = Receiver::start(false, true);
    let mut options = subscribed(receiver.port);
    // A second subscription, allowed full phone numbers; nothing listens for either.
    let subscriptions: Value = serde_json::from_str(&options.auth_env[0].1).unwrap();
    let mut both = subscriptions.as_array().unwrap().clone();
    let mut risk = both[0].clone();
    risk["name"] = json!("risk");
    risk["pii"] = json!(true);
    risk["events"] = json!(["user.phone_bound", "user.deleted"]);
    both.push(risk);
    options.auth_env[0].1 = Value::Array(both).to_string();
    options
        .auth_env
        .push(("WXAUTH_REFRESH_GRACE_SECS", "0".into()));
    let stack = Stack::start_with(options).await;
    let mut ops = stack.grpc_as(Some(&stack.keys.ops)).await;

    let first = stack.v1_login(APP, "o-events").await;
    let user_id = first["user"]["user_id"].as_str().unwrap().to_owned();
    let access = first["access_token"].as_str().unwrap();
    let code = stack.mint_phone_code(APP, "o-events", "13800138000").await;
    let (status, body) = stack.bind_phone(Some(access), json!({"code": code})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The refresh token used twice: reuse.
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(stack.v1_refresh(refresh).await.0, StatusCode::OK);
    assert_eq!(stack.v1_refresh(refresh).await.0, StatusCode::UNAUTHORIZED);
    let second = stack.v1_login(APP, "o-events").await;
    ops.set_user_status(wxauth_proto::v1::SetUserStatusRequest {
        target: Some(wxauth_proto::v1::set_user_status_request::Target::UserId(
            user_id.clone(),
        )),
        status: wxauth_proto::v1::UserStatus::Suspended.into(),
        reason: "chargeback".into(),
        until: None,
    })
    .await
    .unwrap();

    let written = outbox(&stack).await;
    let of = |sub: &str| -> Vec<(String, Value)> {
        written
            .iter()
            .filter(|(name, ..)| name == sub)
            .map(|(_, kind, payload)| (kind.clone(), payload.clone()))
            .collect()
    };
    let crm = of("crm");
    let kinds: Vec<&str> = crm.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.created",
            "user.login",
            "user.phone_bound",
            "session.reuse_detected",
            "session.revoked",
            "user.login",
            "session.revoked",
            "user.suspended",
        ]
    );
    for (kind, payload) in &crm {
        assert_eq!(payload["type"], kind.as_str(), "the payload names its type");
        assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(payload["data"]["user_id"], user_id.as_str());
        assert_eq!(payload["data"]["appid"], APP);
        assert_eq!(payload["data"]["openid"], "o-events");
    }
    let family = |at: usize| crm[at].1["data"]["family_id"].clone();
    let sid = |login: &Value| jwt_claims(login["access_token"].as_str().unwrap())["sid"].clone();
    assert_eq!(family(1), sid(&first), "{:?}", crm[1]);
    assert_eq!(family(3), family(1), "the reused family");
    assert_eq!(crm[4].1["data"]["reason"], "refresh token reused");
    assert_eq!(family(5), sid(&second));
    assert_eq!(crm[6].1["data"]["reason"], "suspended");
    assert_eq!(crm[7].1["data"]["reason"], "chargeback");
    // A number is masked unless the subscription may read it.
    let masked = crm[2].1["data"]["phone_number"].as_str().unwrap();
    assert!(
        masked.contains("****") && !masked.contains("13800138000"),
        "{masked}"
    );
    let risk = of("risk");
    assert_eq!(risk.len(), 1);
    assert!(
        risk[0].1["data"]["phone_number"]
            .as_str()
            .unwrap()
            .contains("13800138000")
    );

    // A deletion takes the user's events with it and leaves one that names nothing personal.
    ops.delete_user(wxauth_proto::v1::DeleteUserRequest {
        target: Some(wxauth_proto::v1::delete_user_request::Target::UserId(
            user_id.clone(),
        )),
        reason: String::new(),
        immediately: true,
    })
    .await
    .unwrap();
    let left = outbox(&stack).await;
    let kinds: Vec<(&str, &str)> = left
        .iter()
        .map(|(sub, kind, _)| (sub.as_str(), kind.as_str()))
        .collect();
    assert_eq!(kinds, [("crm", "user.deleted"), ("risk", "user.deleted")]);
    let raw = serde_json::to_string(&left.iter().map(|(.., p)| p).collect::<Vec<_>>()).unwrap();
    for personal in ["o-events", "u-o-events", "13800138000", "8000"] {
        assert!(
            !raw.contains(personal),
            "{personal} outlived the deletion: {raw}"
        );
    }
    assert_eq!(left[0].2["data"]["user_id"], user_id.as_str());
}
