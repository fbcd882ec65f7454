//! Audit answers (`GET /audit`: a page of rows or a named report) as plain-text tables.

use std::fmt::Write as _;

use serde_json::Value;

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
///
/// ```
/// assert_eq!(tokenlife_cli::table::utc(0), "1970-01-01T00:00:00Z");
/// assert_eq!(tokenlife_cli::table::utc(1_790_000_000), "2026-09-21T14:13:20Z");
/// ```
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn time(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), utc)
}

/// A fingerprint shortened for a table (the first 12 hex digits; the JSON has it whole).
fn fp(v: &Value) -> String {
    v.as_str()
        .map_or_else(|| "-".into(), |f| f.chars().take(12).collect())
}

/// Lays `rows` out in columns under `head`.
fn columns(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(&mut out, &mut head.iter().map(|h| (*h).to_owned()));
    for r in rows {
        line(&mut out, &mut r.iter().cloned());
    }
    out
}

fn usage(u: &Value) -> Vec<String> {
    let mut clients = u["clients"]
        .as_array()
        .map(|c| c.iter().map(s).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    if u["more_clients"] == true {
        clients.push_str(",…");
    }
    vec![
        s(&u["count"]),
        time(&u["first_seen"]),
        time(&u["last_seen"]),
        if clients.is_empty() {
            "-".into()
        } else {
            clients
        },
    ]
}

/// Audit rows as a table: time, action, outcome and reason, kind, fingerprint,
/// subject, client, the address it came from, keyset version, node.
pub fn rows(rows: &[Value]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let outcome = match r["reason"].as_str() {
                Some(reason) => format!("{} ({reason})", s(&r["outcome"])),
                None => s(&r["outcome"]),
            };
            let action = match r["alert"].as_str() {
                Some(alert) => format!("alert:{alert}"),
                None => s(&r["action"]),
            };
            vec![
                time(&r["at"]),
                action,
                outcome,
                s(&r["token_kind"]),
                fp(&r["fingerprint"]),
                s(&r["subject"]),
                s(&r["client"]),
                s(&r["address"]),
                s(&r["keyset_version"]),
                s(&r["node"]),
            ]
        })
        .collect();
    columns(
        &[
            "TIME", "ACTION", "OUTCOME", "KIND", "TOKEN", "SUBJECT", "CLIENT", "FROM", "VERSION",
            "NODE",
        ],
        &body,
    )
}

/// A subject report's tokens as a table.
pub fn subject_tokens(tokens: &[Value]) -> String {
    let body: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let mut row = vec![
                fp(&t["fingerprint"]),
                s(&t["token_kind"]),
                time(&t["issued_at"]),
                s(&t["client"]),
            ];
            row.extend(usage(&t["usage"]));
            row.push(s(&t["failures"]));
            row
        })
        .collect();
    columns(
        &[
            "TOKEN",
            "KIND",
            "ISSUED",
            "TO",
            "USES",
            "FIRST USE",
            "LAST USE",
            "FROM",
            "FAILURES",
        ],
        &body,
    )
}

/// Any answer of `GET /audit` as text: a page's rows and its cursor, or a named
/// report's sections.
pub fn render(answer: &Value) -> String {
    let mut out = String::new();
    if let Some(r) = answer["rows"].as_array() {
        out.push_str(&rows(r));
        if let Some(next) = answer["next"].as_str() {
            let _ = writeln!(out, "next page: --after {next}");
        }
    } else if let Some(tokens) = answer["tokens"].as_array() {
        let _ = writeln!(
            out,
            "subject {} from {} to {}: {} tokens, {} renewals ({} refused)",
            s(&answer["subject"]),
            time(&answer["since"]),
            time(&answer["until"]),
            tokens.len(),
            s(&answer["renewals"]),
            s(&answer["renewals_refused"]),
        );
        out.push_str(&subject_tokens(tokens));
        if let Some(r) = answer["revocations"].as_array().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "revocations:");
            out.push_str(&rows(r));
        }
    } else if let Some(events) = answer["events"].as_array() {
        let u = usage(&answer["usage"]);
        let _ = writeln!(
            out,
            "token {}: issued {} to {}; used {} times, {} to {}, from {}",
            s(&answer["fingerprint"]),
            time(&answer["issued"]["at"]),
            s(&answer["issued"]["subject"]),
            u[0],
            u[1],
            u[2],
            u[3]
        );
        out.push_str(&rows(events));
        if let Some(r) = answer["revocations"].as_array().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "revocations of its subject since:");
            out.push_str(&rows(r));
        }
    } else if let Some(by) = answer["by_reason"].as_object() {
        let _ = writeln!(
            out,
            "keyset version {} rejected {} validations of {} tokens from {} to {}",
            s(&answer["keyset_version"]),
            s(&answer["total"]),
            s(&answer["tokens"]),
            time(&answer["since"]),
            time(&answer["until"]),
        );
        let body: Vec<Vec<String>> = by.iter().map(|(k, v)| vec![k.clone(), s(v)]).collect();
        out.push_str(&columns(&["REASON", "COUNT"], &body));
        if let Some(r) = answer["newest"].as_array().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "newest:");
            out.push_str(&rows(r));
        }
    } else {
        let _ = writeln!(out, "{answer:#}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{render, utc};
    use serde_json::json;

    #[test]
    fn dates_and_tables_read_as_written() {
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
        let page = json!({"rows": [{"at": 0, "action": "validation_failed", "outcome": "failure",
            "reason": "revoked", "token_kind": "access", "fingerprint": "00112233445566778899aabbccddeeff",
            "subject": null, "client": null, "address": "10.0.0.1", "keyset_version": 3, "node": "gw"}], "next": "5.ab"});
        let text = render(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME "), "{text}");
        let cells: Vec<&str> = lines[1]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "1970-01-01T00:00:00Z",
                "validation_failed",
                "failure (revoked)",
                "access",
                "001122334455",
                "-",
                "-",
                "10.0.0.1",
                "3",
                "gw"
            ],
            "{text}"
        );
        // Columns line up under their heads.
        assert_eq!(lines[0].find("FROM"), lines[1].find("10.0.0.1"));
        assert_eq!(lines[2], "next page: --after 5.ab");
    }
}
