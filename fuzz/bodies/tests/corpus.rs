//! Every fuzz target body over every file of its corpus, `fuzz/corpus/<target>/`, as an
//! ordinary stable test: the corpus (seeds, minimised finds, fixed crashes) is checked on every
//! machine, with or without a nightly toolchain. `scripts/fuzz` does the fuzzing itself.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn corpus(target: &str) {
    let body = sipgw_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("a target");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{}: empty corpus (run `cargo run -p sipgw-fuzz --example seed`)",
        dir.display()
    );
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).expect("a corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus inputs fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    println!("{target}: {} corpus inputs pass", files.len());
}

#[test]
fn every_target_has_a_corpus_directory() {
    for (name, _) in sipgw_fuzz::TARGETS {
        let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(
            fuzz.join("corpus").join(name).is_dir(),
            "fuzz/corpus/{name}"
        );
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{name}.rs"
        );
    }
}

#[test]
fn sip_parse() {
    corpus("sip_parse");
}

#[test]
fn credentials_parse() {
    corpus("credentials_parse");
}

#[test]
fn engine() {
    corpus("engine");
}

#[test]
fn proxy() {
    corpus("proxy");
}

#[test]
fn xdp_frame() {
    corpus("xdp_frame");
}

#[test]
fn config_parse() {
    corpus("config_parse");
}

#[test]
fn stream_framing() {
    corpus("stream_framing");
}
