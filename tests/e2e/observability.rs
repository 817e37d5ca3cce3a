//! Operators see what the dashboard and the alerts name: every metric
//! `deploy/grafana/wxauth.json` and `deploy/prometheus/alerts.yml` use is exported by the
//! auth-service or the gateway, so a renamed metric cannot silently blank a panel or an
//! alert.

use std::collections::BTreeSet;

use serde_json::json;
use wxauth_e2e::stack::{APP, Stack};
use wxauth_proto::v1::ValidateTokenRequest;

/// The metric names a file mentions.
fn named_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("wxauth_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Whether an exposition has the metric: a sample of it, or its family's TYPE line (a
/// labelled counter no event has touched yet has no sample but is declared).
fn exported(exposition: &str, name: &str) -> bool {
    let family = ["_bucket", "_sum", "_count", "_total"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    exposition.lines().any(|line| {
        line.starts_with(&format!("{name}{{"))
            || line.starts_with(&format!("{name} "))
            || line.starts_with(&format!("# TYPE {family} "))
    })
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    let stack = Stack::start().await;
    let login = stack
        .login(APP, "o-observed", json!({"nickName": "O"}))
        .await;
    stack
        .grpc_as(Some(&stack.keys.service))
        .await
        .validate_token(ValidateTokenRequest {
            token: login["token"].as_str().unwrap().into(),
            appid: APP.into(),
        })
        .await
        .unwrap();
    let exposition = format!(
        "{}\n{}",
        stack.scrape(&stack.auth).await,
        stack.scrape(&stack.gateway).await
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut named = BTreeSet::new();
    for file in ["deploy/grafana/wxauth.json", "deploy/prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let found = named_in(&text);
        assert!(found.len() >= 5, "{file} names metrics: {found:?}");
        named.extend(found);
    }
    let missing: Vec<&String> = named
        .iter()
        .filter(|name| !exported(&exposition, name))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\n{exposition}"
    );
    // The probe works: a made-up name is not found.
    assert!(!exported(&exposition, "wxauth_no_such_metric_total"));
}

#[tokio::test]
async fn table_sizes_and_the_replicas_alive_are_exported() {
    let stack = Stack::start().await;
    stack.v1_login(APP, "o-sized").await;
    let value = |exposition: &str, series: &str| -> Option<f64> {
        exposition
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    };
    wxauth_e2e::eventually(
        "the tables are measured and the heartbeat counted",
        std::time::Duration::from_secs(10),
        || async {
            let exposition = stack.scrape(&stack.auth).await;
            value(&exposition, "wxauth_table_bytes{table=\"users\"}").is_some_and(|b| b > 0.0)
                && value(&exposition, "wxauth_table_bytes{table=\"webhook_events\"}").is_some()
                && value(&exposition, "wxauth_replicas_alive") == Some(1.0)
        },
    )
    .await;
}

#[test]
fn every_alert_links_to_its_own_runbook_section() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let runbooks = std::fs::read_to_string(root.join("docs/runbooks.md")).unwrap();
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(
            runbooks.contains(&format!("\n## {name}\n")),
            "docs/runbooks.md has no section for {name}"
        );
        assert!(
            alerts.contains(&format!(
                "runbook_url: \"docs/runbooks.md#{}\"",
                name.to_lowercase()
            )),
            "{name} does not link to its runbook"
        );
    }
    let sections = runbooks
        .lines()
        .filter(|line| line.starts_with("## "))
        .count();
    assert_eq!(
        sections,
        names.len(),
        "a runbook section for each alert, no more"
    );
}
