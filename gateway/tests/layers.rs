//! The module imports run one way (docs/architecture.md, "Layers"): sip → the rules (digest,
//! nonce, config, validate, event, credentials, policy, guard, shard) → the core (proxy, engine,
//! gateway) → runtime → the binary; and no child module imports its parent (a child imports
//! its siblings). Read from the sources, so a new import against the direction fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's rank: a module may import only modules of a lower rank.
const LAYERS: &[(&str, u8)] = &[
    ("sip", 0),
    ("md5x", 0),
    ("addr", 1),
    ("counters", 1),
    ("flow", 1),
    ("framing", 1),
    ("nonce", 1),
    ("table", 1),
    ("digest", 1),
    ("admission", 2),
    ("config", 2),
    ("validate", 2),
    ("event", 3),
    ("credentials", 3),
    ("policy", 4),
    ("guard", 4),
    ("shard", 5),
    ("proxy", 6),
    ("engine", 7),
    ("gateway", 8),
    ("runtime", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its in-file tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers following each `prefix` in `code` (`crate::engine::X` → `engine`).
fn after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(i, _)| {
            // A whole path segment: not `foo_crate::`.
            code[..*i]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn imports_run_one_way_and_no_child_imports_its_parent() {
    let ranks: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        let top = parts[0].as_str();
        if matches!(top, "lib" | "main") {
            continue;
        }
        let Some(&own) = ranks.get(top) else {
            wrong.push(format!(
                "{}: module `{top}` is not in the layer table of tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        let code = code(file);
        for dep in after(&code, "crate::") {
            if dep == top {
                continue;
            }
            match ranks.get(dep) {
                Some(&r) if r < own => {}
                Some(&r) => wrong.push(format!(
                    "{}: imports crate::{dep} (layer {r}) from layer {own}",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: imports crate::{dep}, which is not in the layer table",
                    rel.display()
                )),
            }
        }
        // A child (a file below its parent's directory, other than the parent's mod.rs)
        // reaches only its siblings through `super::`.
        let is_child = parts.len() > 1 && parts.last().is_some_and(|p| p != "mod");
        if is_child {
            let dir = file.parent().unwrap();
            for name in after(&code, "super::") {
                let sibling = dir.join(format!("{name}.rs")).exists()
                    || dir.join(name).join("mod.rs").exists();
                if !sibling {
                    wrong.push(format!(
                        "{}: imports super::{name}, an item of its parent (children import \
                         their siblings only)",
                        rel.display()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering violations:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_reads_path_segments() {
    // The scanner itself: what it reads from a line of code.
    let code = "use crate::engine::Engine;\nlet x = my_crate::sip::y;\nuse super::shared::X;";
    assert_eq!(after(code, "crate::"), ["engine"]);
    assert_eq!(after(code, "super::"), ["shared"]);
    // And the table covers every top-level module of the source tree.
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > LAYERS.len());
}
