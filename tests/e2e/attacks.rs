//! Hostile clients against the gateway's sockets: connections that send nothing or only the
//! HTTP/2 preface, a host opening connections by the thousand, bodies sent a byte at a time.
//! Each is bounded, and another client is served meanwhile.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    time::Instant,
};
use wxauth_e2e::{
    eventually,
    stack::{APP, Options, Stack},
};

/// Another client than the test's own: a second loopback address.
const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// File descriptors the process holds open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the peer closes; false if it is still open at `deadline`.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame, and nothing after.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A login through the gateway from another client address.
async fn login_from_another_client(stack: &Stack) -> StatusCode {
    let code = stack.mint_code(APP, "o-bystander", None).await;
    reqwest::Client::builder()
        .local_address(IpAddr::V4(OTHER_CLIENT))
        .build()
        .unwrap()
        .post(format!("{}/v1/login", stack.gateway.url()))
        .json(&json!({"appid": APP, "code": code}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn silent_sockets_and_bare_http2_prefaces_are_closed_within_the_header_timeout() {
    const SILENT: usize = 2_000;
    const PREFACES: usize = 300;
    let timeout = Duration::from_millis(1_500);
    let stack = Stack::start_with(Options {
        gateway_env: vec![
            (
                "GATEWAY_HEADER_READ_TIMEOUT_MS",
                timeout.as_millis().to_string(),
            ),
            // This test is about time, not about how many one host may open.
            ("GATEWAY_MAX_CONNECTIONS_PER_CLIENT", "0".into()),
        ],
        // The gateway's file descriptors are counted: it runs as a process of its own.
        processes: true,
        ..Options::default()
    })
    .await;
    let mut stack = stack;
    let pid = stack.gateway.process().pid();
    let baseline = open_fds(pid);
    let mut sockets = Vec::new();
    for _ in 0..SILENT {
        sockets.push(TcpStream::connect(stack.gateway.addr()).await.unwrap());
    }
    for _ in 0..PREFACES {
        let mut socket = TcpStream::connect(stack.gateway.addr()).await.unwrap();
        socket.write_all(H2C_PREFACE).await.unwrap();
        sockets.push(socket);
    }
    let opened = Instant::now();
    // The gateway still answers meanwhile.
    let health = stack
        .http
        .get(format!("{}/healthz", stack.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Closed by the gateway within the timeout, and a little for the scheduler.
    let deadline = opened + timeout + Duration::from_secs(2);
    let mut still_open = 0;
    for socket in &mut sockets {
        if !closed_by(socket, deadline).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "of {} sockets", sockets.len());
    drop(sockets);
    eventually(
        "the gateway's descriptors are back to their baseline",
        Duration::from_secs(5),
        || async { open_fds(pid) <= baseline + 2 },
    )
    .await;
    let metrics = stack.scrape(&stack.gateway).await;
    let timed_out = metrics
        .lines()
        .find_map(|line| line.strip_prefix("wxauth_gateway_connections_timed_out_total "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(timed_out >= (SILENT + PREFACES) as f64, "{timed_out}");
}

#[tokio::test]
async fn one_host_holds_at_most_its_share_of_connections() {
    const CAP: usize = 40;
    let stack = Stack::start_with(Options {
        gateway_env: vec![("GATEWAY_MAX_CONNECTIONS_PER_CLIENT", CAP.to_string())],
        ..Options::default()
    })
    .await;
    let mut sockets = Vec::new();
    for _ in 0..CAP + 10 {
        sockets.push(TcpStream::connect(stack.gateway.addr()).await.unwrap());
    }
    let mut answered = 0;
    for socket in &mut sockets {
        let asked = socket
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
            .await;
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut head)).await;
        if asked.is_ok() && matches!(read, Ok(Ok(_))) && head.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    assert_eq!(answered, CAP, "the connections over the cap were closed");
    // Another client is served, even while this one holds its whole share.
    assert_eq!(login_from_another_client(&stack).await, StatusCode::OK);
}

/// Sends the head of a `POST /v1/me/profile` announcing 100 bytes of body, and one byte.
async fn slow_profile_update(from: Ipv4Addr, to: SocketAddr, token: &str) -> TcpStream {
    let mut stream = connect_from(from, to).await;
    let head = format!(
        "POST /v1/me/profile HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The status of the answer on `stream`, read within `within`.
async fn status_of(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut head = [0u8; 12];
    tokio::time::timeout(within, stream.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test]
async fn slow_bodies_from_one_host_leave_everyone_else_their_share() {
    let body_timeout = Duration::from_millis(2_000);
    let stack = Stack::start_with(Options {
        gateway_env: vec![(
            "GATEWAY_BODY_TIMEOUT_MS",
            body_timeout.as_millis().to_string(),
        )],
        ..Options::default()
    })
    .await;
    let local = Ipv4Addr::LOCALHOST;

    // As found: 1,100 connections bearing `abc`, each announcing a body it never sends. The
    // bearer is refused before any body is read, and the host's connections past its share
    // are closed at once.
    let mut forged = Vec::new();
    for _ in 0..1_100 {
        forged.push(slow_profile_update(local, stack.gateway.addr(), "abc").await);
    }
    assert_eq!(login_from_another_client(&stack).await, StatusCode::OK);
    // None waits for its body: each is answered 401 at once, or 429 past the host's share
    // of requests in flight, or (past its share of connections) closed unanswered.
    let mut answers = std::collections::BTreeMap::new();
    for stream in &mut forged {
        *answers
            .entry(status_of(stream, Duration::from_secs(5)).await)
            .or_insert(0) += 1;
    }
    assert!(
        answers.contains_key(&Some(401))
            && answers
                .keys()
                .all(|status| matches!(status, None | Some(401 | 429))),
        "{answers:?}"
    );
    drop(forged);

    // With a real token: the host's share of requests in flight (64) waits for bodies that
    // never come, until the body deadline answers 408; more are refused at once with 429;
    // another client logs in meanwhile.
    let token = stack.v1_login(APP, "o-slow").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(slow_profile_update(local, stack.gateway.addr(), &token).await);
    }
    assert_eq!(login_from_another_client(&stack).await, StatusCode::OK);
    let mut statuses = std::collections::BTreeMap::new();
    for stream in &mut slow {
        let status = status_of(stream, body_timeout + Duration::from_secs(5)).await;
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        statuses,
        [(Some(408), 64), (Some(429), 36)].into_iter().collect(),
        "64 wait out the body deadline (408, not the request timeout's 503), the rest are \
         refused at once"
    );
}
