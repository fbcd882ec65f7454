//! The guide (`docs/`, mdBook) shows code through `{{#include file:anchor}}`: every such
//! include names a file of this repository that has that anchor, so a snippet in the
//! guide is always code the tests compile (the `guide_*` examples) — and every chapter the
//! summary lists exists.

use std::path::Path;

#[test]
fn every_include_of_the_guide_names_a_real_anchor_and_every_chapter_exists() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src");
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).unwrap();
    let chapters: Vec<&str> = summary
        .split("](")
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .collect();
    assert!(chapters.len() >= 8, "{chapters:?}");
    let mut includes = 0;
    for chapter in chapters {
        let text = std::fs::read_to_string(docs.join(chapter))
            .unwrap_or_else(|e| panic!("{chapter}: {e}"));
        for inc in text.split("{{#include ").skip(1) {
            let spec = inc.split("}}").next().unwrap().trim();
            let (file, anchor) = spec
                .split_once(':')
                .map_or((spec, None), |(f, a)| (f, Some(a)));
            let source = std::fs::read_to_string(docs.join(file))
                .unwrap_or_else(|e| panic!("{chapter}: {file}: {e}"));
            if let Some(a) = anchor {
                assert!(
                    source.contains(&format!("ANCHOR: {a}"))
                        && source.contains(&format!("ANCHOR_END: {a}")),
                    "{chapter}: {file} has no anchor {a}"
                );
            }
            includes += 1;
        }
    }
    assert!(includes >= 6, "{includes} includes");
}
