//! Tidy checks over the source tree, run with the tests: every Rust module opens with a `//!`
//! doc comment, and every `unsafe` block has a `SAFETY:` note in the lines just above it.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "storage/src",
        "storage/benches",
        "schema/src",
        "tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    files
}

#[test]
fn every_module_has_a_doc_header() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!") && !text.trim_start().starts_with("#![")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! header:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_unsafe_block_says_why() {
    let mut bad = Vec::new();
    // This file names the pattern it looks for.
    for p in sources()
        .into_iter()
        .filter(|p| !p.ends_with("tests/tidy.rs"))
    {
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !(code.contains("unsafe {") || code.contains("unsafe{")) {
                continue;
            }
            let above = &lines[i.saturating_sub(6)..i];
            if !above.iter().any(|l| l.contains("SAFETY:")) {
                bad.push(format!("{}:{}", p.display(), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe without a SAFETY: note:\n{}",
        bad.join("\n")
    );
}

/// The repository is self-contained: every file compiled in with `include_str!` or
/// `include_bytes!` lies inside it, and no source or script names the sibling `shared/` folder
/// of the development workspace (CI's clean clone may have none).
#[test]
fn nothing_reaches_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let mut bad = Vec::new();
    let mut files = sources();
    rust_files(&root.join("fuzz"), &mut files);
    for p in files.iter().filter(|p| !p.ends_with("tests/tidy.rs")) {
        let text = std::fs::read_to_string(p).unwrap();
        for (i, line) in text.lines().enumerate() {
            for mac in ["include_str!(\"", "include_bytes!(\""] {
                let Some(start) = line.find(mac) else {
                    continue;
                };
                let rest = &line[start + mac.len()..];
                let Some(end) = rest.find('"') else { continue };
                let target = p.parent().unwrap().join(&rest[..end]);
                match target.canonicalize() {
                    Ok(t) if t.starts_with(&root) => {}
                    _ => bad.push(format!("{}:{}: {}", p.display(), i + 1, &rest[..end])),
                }
            }
        }
    }
    for dir in [".ci", "benches", "tests/compat"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if !p.is_file() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if line.contains("../shared") && !line.trim_start().starts_with('#') {
                    bad.push(format!("{}:{}: names ../shared", p.display(), i + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files that reach outside the repository:\n{}",
        bad.join("\n")
    );
}
