//! The map cannot go stale: ARCHITECTURE.md's table "who may depend on whom" is the rule
//! for `tokenlife-core/src`, and this test reads the code's `crate::` paths and holds
//! them to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The table under "### Who may depend on whom": module → modules it may import.
fn allowed(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section = architecture
        .split("### Who may depend on whom")
        .nth(1)
        .expect("ARCHITECTURE.md has the section")
        .split("\n### ")
        .next()
        .unwrap_or_default();
    let mut table = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() != 2 {
            continue;
        }
        let module = cells[0].trim();
        let Some(module) = module.strip_prefix('`').and_then(|m| m.strip_suffix('`')) else {
            continue;
        };
        let may: BTreeSet<String> = cells[1]
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_owned())
            .filter(|m| !m.is_empty() && m != "—")
            .collect();
        assert!(
            table.insert(module.to_owned(), may).is_none(),
            "`{module}` twice in the table"
        );
    }
    assert!(!table.is_empty(), "no table found under the section");
    table
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file as the build without tests sees it: comment lines blanked, and
/// everything from its `#[cfg(test)]` module on (by convention the last item).
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod ")
        .map_or(text, |at| &text[..at]);
    // Comment lines become empty lines, so line numbers stay the file's.
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path in `code`, braces expanded
/// (`crate::{a::B, c}` → `a`, `c`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` and `tokenlife_core::crate` are not ours.
        if code[..at].ends_with('$')
            || code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    out.push(first.to_owned());
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !first.is_empty() {
                out.push(first);
            }
        }
    }
    out
}

/// The top-level module a file belongs to (`keys/remote.rs` → `keys`, `gate.rs` →
/// `gate`); `None` for `lib.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

#[test]
fn every_import_in_core_is_one_the_architecture_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture =
        std::fs::read_to_string(root.join("../ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = allowed(&architecture);
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();

    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        modules.insert(module.clone());
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        let Some(may) = table.get(&module) else {
            problems.push(format!("{shown}: module `{module}` is not in the table"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable");
        for target in crate_paths(&code(&text)) {
            if target == module {
                continue;
            }
            if target.starts_with(|c: char| c.is_uppercase()) {
                problems.push(format!(
                    "{shown}: imports `crate::{target}` through the crate root; import it from its module"
                ));
            } else if !may.contains(&target) {
                problems.push(format!(
                    "{shown}: `{module}` imports `{target}`, which the table does not allow"
                ));
            }
        }
    }
    for (module, may) in &table {
        if !modules.contains(module) {
            problems.push(format!(
                "the table lists `{module}`, which is no module of src"
            ));
        }
        for target in may {
            if !table.contains_key(target) {
                problems.push(format!(
                    "`{module}` may import `{target}`, which the table does not list"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md and the code disagree:\n{}",
        problems.join("\n")
    );
}

/// Every emission is an event: outside `observe`, the core never calls the `metrics` or
/// `tracing` facades (the domain emits `Event`s; the `Monitor` turns them into metrics,
/// audit lines and alerts).
#[test]
fn only_observe_emits_metrics_or_traces() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in &files {
        if module_of(&src, file).as_deref() == Some("observe") {
            continue;
        }
        let text = code(&std::fs::read_to_string(file).expect("readable"));
        for facade in ["metrics::", "tracing::"] {
            for (at, _) in text.match_indices(facade) {
                // `observe::metrics::NAME` (a name, not a call) is the observer's business.
                if text[..at].ends_with("observe::")
                    || text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                {
                    continue;
                }
                let line = text[..at].matches('\n').count() + 1;
                found.push(format!(
                    "{}:{line}: {facade}",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "emissions outside observe:\n{}",
        found.join("\n")
    );
}

/// The reader itself: braces, `$crate`, comments and test modules.
#[test]
fn the_reader_sees_what_the_build_sees() {
    let text = "use crate::{keys::Key, error};\n\
                // crate::admin in a comment\n\
                let x = crate::revoke::RevocationList::new();\n\
                macro_rules! m { () => { $crate::gate::Gate } }\n\
                #[cfg(test)]\nmod tests { use crate::admin; }\n";
    assert_eq!(crate_paths(&code(text)), ["keys", "error", "revoke"]);
    let table = allowed(
        "### Who may depend on whom\n| module | may import |\n| --- | --- |\n| `a` | `b`, `c` |\n| `b` | — |\n### next\n| `z` | `y` |\n",
    );
    assert_eq!(table.len(), 2);
    assert_eq!(table["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert!(table["b"].is_empty());
}
