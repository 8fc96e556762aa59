//! The fuzz targets on stable Rust, without libFuzzer: every file of `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` runs through its target's body, the same code the
//! cargo-fuzz binaries run (`fuzz/src/`, included below). A crash found by fuzzing is kept as
//! a file under `fuzz/regressions/<target>/` and stays fixed through this test.
//!
//! Fuzzing itself needs nightly and runs by hand: see `fuzz/README.md`.

#[path = "../fuzz/src/lib.rs"]
mod bodies;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The names of the subdirectories of `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Where the inputs of `target` are.
fn input_dirs(target: &str) -> [PathBuf; 2] {
    ["corpus", "regressions"].map(|kind| fuzz_dir().join(kind).join(target))
}

/// Runs every file of `dirs` through `body`: how many there were, and those that panicked.
fn replay(dirs: &[PathBuf], body: bodies::Body) -> (usize, Vec<String>) {
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| inputs(d)).collect();
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("read an input");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failures.push(file.display().to_string());
        }
    }
    (files.len(), failures)
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut failures = Vec::new();
    for &(target, body) in bodies::TARGETS {
        let (count, failed) = replay(&input_dirs(target), body);
        println!("{target}: {count} inputs, {} failed", failed.len());
        assert!(
            count > 0,
            "target {target} has no corpus in fuzz/corpus/{target}/"
        );
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_binary_and_every_input_directory_a_target() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let names: Vec<&str> = bodies::TARGETS.iter().map(|t| t.0).collect();
    for name in &names {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("hookd_fuzz::{name}::run")),
            "{} does not call its body",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
    for kind in ["corpus", "regressions"] {
        for dir in subdirs(&fuzz_dir().join(kind)) {
            assert!(
                names.contains(&dir.as_str()),
                "fuzz/{kind}/{dir} belongs to no target"
            );
        }
    }
}

/// The replay runs every file and names exactly those whose body panics.
#[test]
fn replay_names_each_input_that_panics() {
    fn only_empty(data: &[u8]) {
        assert!(data.is_empty(), "this body takes only empty inputs");
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    std::fs::write(dirs[0].path().join("empty"), b"").unwrap();
    std::fs::write(dirs[0].path().join("full"), b"x").unwrap();
    std::fs::write(dirs[1].path().join("also-full"), b"y").unwrap();
    let paths = dirs.each_ref().map(|d| d.path().to_path_buf());
    let (count, failed) = replay(&paths, only_empty);
    assert_eq!(count, 3);
    let want = [
        dirs[0].path().join("full").display().to_string(),
        dirs[1].path().join("also-full").display().to_string(),
    ];
    assert_eq!(failed, want);
}
