//! The operator kit (`ops/`) held to the code: every metric the Prometheus rules and the
//! Grafana dashboard query is one `tokenlife_core::observe::metrics` defines (read from
//! its source, so a renamed or removed metric fails here, not on a dashboard), every
//! alert carries a severity and a runbook, and the dashboard is a well-formed Grafana
//! dashboard: panels with positions and targets, every target on the `datasource`
//! variable, the variables it uses defined.

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names `observe::metrics` defines: its `pub const NAME: &str = "tokenlife_…";`.
fn defined() -> BTreeSet<String> {
    let src = read("src/observe/metrics.rs");
    let names: BTreeSet<String> = src
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const ") && l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();
    assert!(
        names.len() > 20,
        "metric names not found in observe/metrics.rs"
    );
    names
}

/// Every `tokenlife_…` identifier in `text`, with a histogram's `_bucket`, `_sum` and
/// `_count` series named by their metric.
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("tokenlife_").map(|p| p + i) {
        let before_ok =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let end = text[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |p| p + at);
        if before_ok {
            out.insert(text[at..end].to_owned());
        }
        i = end;
    }
    out
}

fn check_names(what: &str, text: &str) -> usize {
    let defined = defined();
    let used = used(text);
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !defined.contains(*n) && !defined.contains(base)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} queries metrics the code does not define: {unknown:?}"
    );
    used.len()
}

#[test]
fn the_alert_rules_query_only_defined_metrics_and_each_alert_has_a_severity_and_runbook() {
    let rules = read("../ops/prometheus/tokenlife.rules.yml");
    // Comments are prose (they may name the crate); the rules are the rest.
    let rules: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(check_names("ops/prometheus/tokenlife.rules.yml", &rules) >= 15);
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 15, "{alerts:?}");
    // Each rule block names a severity and a runbook.
    for block in rules.split("- alert: ").skip(1) {
        let name = block.lines().next().unwrap_or("");
        assert!(block.contains("severity: "), "{name}: no severity");
        assert!(block.contains("runbook: "), "{name}: no runbook");
        assert!(block.contains("summary: "), "{name}: no summary");
    }
    // Every runbook label is an entry of the runbook.
    let runbook = read("../ops/RUNBOOK.md");
    let entries: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    for label in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook: "))
    {
        assert!(
            entries.contains(label),
            "runbook entry `{label}` missing from ops/RUNBOOK.md"
        );
    }
    assert_eq!(entries.len(), alerts.len(), "one runbook entry per alert");
    // The unit tests exercise every alert.
    let tests = read("../ops/prometheus/tokenlife.rules.test.yml");
    for a in &alerts {
        assert!(
            tests.contains(&format!("alertname: {a}")),
            "{a} has no promtool test"
        );
    }
}

#[test]
fn the_dashboard_is_well_formed_and_queries_only_defined_metrics() {
    let text = read("../ops/grafana/tokenlife.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(check_names("ops/grafana/tokenlife.json", &text) >= 25);
    assert_eq!(dash["uid"], "tokenlife");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut targets = 0;
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        for k in ["x", "y", "w", "h"] {
            assert!(g[k].as_u64().is_some(), "{title}: gridPos.{k}");
        }
        assert!(
            g["x"].as_u64().unwrap_or(0) + g["w"].as_u64().unwrap_or(0) <= 24,
            "{title}: wider than the grid"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["timeseries", "stat"].contains(&p["type"].as_str().unwrap_or("")),
            "{title}: type"
        );
        let ts = p["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{title}: no targets"));
        for t in ts {
            targets += 1;
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{title}: target not on the datasource variable"
            );
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without expr"));
            assert!(expr.contains("tokenlife_"), "{title}: {expr}");
            // Every `$variable` it uses is defined (or one of Grafana's own).
            for var in expr.split('$').skip(1) {
                let name: String = var
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    names.contains(&name.as_str()) || name.starts_with("__"),
                    "{title}: undefined variable ${name}"
                );
            }
        }
    }
    assert!(targets >= 25, "{targets} targets");
    // The keyset timeline is annotated with rollbacks.
    let ann = dash["annotations"]["list"].as_array().expect("annotations");
    assert!(ann.iter().any(|a| {
        a["expr"]
            .as_str()
            .is_some_and(|e| e.contains("automatic_rollback"))
    }));
    // Every panel the issue asks for is there.
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "Lifecycle funnel",
        "Validations by outcome",
        "Validation latency",
        "Cache hit ratio",
        "Cache size",
        "Keyset version",
        "Fleet",
        "Remote key",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel {want}: {titles:?}"
        );
    }
}

#[test]
fn the_drift_check_sees_an_unknown_metric() {
    // The check itself can fail: a name the code does not define is reported.
    let text = "rate(tokenlife_validations_total[5m]) + tokenlife_no_such_metric";
    let used = used(text);
    assert!(used.contains("tokenlife_no_such_metric"));
    assert!(!defined().contains("tokenlife_no_such_metric"));
    assert!(std::panic::catch_unwind(|| check_names("probe", text)).is_err());
}
