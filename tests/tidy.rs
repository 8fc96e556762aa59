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
    // Spelled in pieces, so that this file does not name it itself.
    const SIBLING: &str = concat!("..", "/", "shared");
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
                if line.contains(SIBLING) && !line.trim_start().starts_with('#') {
                    bad.push(format!("{}:{}: names {SIBLING}", p.display(), i + 1));
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

/// The top-level modules of `src/` that `text` refers to with `crate::name` (in `use` lines,
/// `use crate::{...}` groups over several lines, inline paths, and comments).
fn crate_refs(text: &str) -> std::collections::BTreeSet<String> {
    let mut refs = std::collections::BTreeSet::new();
    let mut group: Option<String> = None;
    for line in text.lines() {
        // Comments count too: a doc that points at `crate::x` leans on x as much as code does
        // (and the shared `modcycles.py` counts them).
        let code = line;
        if let Some(g) = group.as_mut() {
            g.push_str(code);
            if code.contains(';') {
                refs.extend(group_heads(&group.take().unwrap_or_default()));
            }
            continue;
        }
        if let Some(i) = code.find("crate::{") {
            let g = code[i + "crate::{".len()..].to_owned();
            if g.contains(';') {
                refs.extend(group_heads(&g));
            } else {
                group = Some(g);
            }
            continue;
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name = ident(rest);
            if !name.is_empty() {
                refs.insert(name);
            }
        }
    }
    refs
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segments of the items of a `crate::{...}` group (its text after the `{`):
/// the items at the group's own level, whatever is nested in them.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item = true,
            c if at_item && !c.is_whitespace() => {
                at_item = false;
                let head = ident(&group[i..]);
                if !head.is_empty() && head != "self" {
                    heads.push(head);
                }
            }
            _ => {}
        }
    }
    heads
}

/// The modules of `src/` a top-level module (a file `src/name.rs` or folder `src/name/`)
/// refers to, tests included.
fn imports_of(module: &str) -> std::collections::BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let dir = src.join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no module {module} in src/");
    let mut refs = std::collections::BTreeSet::new();
    for f in files {
        refs.extend(crate_refs(&std::fs::read_to_string(f).unwrap()));
    }
    refs.remove(module);
    refs
}

/// The layering ARCHITECTURE.md writes down, as far as it holds today: the domain model
/// (`model`) imports nothing of hookd, and the config imports only the model.
#[test]
fn the_model_and_the_config_import_no_upper_layer() {
    assert_eq!(
        imports_of("model"),
        Default::default(),
        "src/model/ must import nothing of hookd"
    );
    let config: Vec<String> = imports_of("config")
        .into_iter()
        .filter(|m| m != "model")
        .collect();
    assert!(
        config.is_empty(),
        "src/config/ may import only the model, and imports {config:?}"
    );
}

#[test]
fn crate_references_are_found_in_every_form() {
    let text = "use crate::{\n    api::x,\n    model::{ids, url::Url},\n};\n\
                use crate::http::Limits; // crate::commented\nlet a = crate::deliver::sign::f();\n\
                pub use crate::{config::Config, status};";
    let found: Vec<String> = crate_refs(text).into_iter().collect();
    assert_eq!(
        found,
        [
            "api",
            "commented",
            "config",
            "deliver",
            "http",
            "model",
            "status"
        ]
    );
}

/// The text of ARCHITECTURE.md between its `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn architecture_block(name: &str) -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let start = doc
        .find(&format!("<!-- {name}:begin -->"))
        .unwrap_or_else(|| panic!("the {name}:begin marker"));
    let end = doc
        .find(&format!("<!-- {name}:end -->"))
        .unwrap_or_else(|| panic!("the {name}:end marker"));
    doc[start..end].to_owned()
}

/// The layers ARCHITECTURE.md writes down between its `layers` markers, lowest first: one
/// numbered line per layer, naming its modules in backquotes.
fn layers() -> Vec<Vec<String>> {
    architecture_block("layers")
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let line = l.split(':').next().unwrap_or(l);
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The top-level modules of `src/`: its files and folders, but the crate roots.
fn top_level_modules() -> std::collections::BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            if path.is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".rs").map(str::to_owned)
            }
        })
        .filter(|m| m != "lib" && m != "main")
        .collect()
}

/// Every top-level module is on one layer of ARCHITECTURE.md and imports only modules on
/// lower layers: so the modules form no cycle, and the order written down is the code's.
#[test]
fn modules_import_only_lower_layers() {
    let layers = layers();
    let mut rank = std::collections::BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for m in layer {
            assert!(rank.insert(m.clone(), i).is_none(), "{m} is on two layers");
        }
    }
    let modules = top_level_modules();
    let listed: std::collections::BTreeSet<String> = rank.keys().cloned().collect();
    assert_eq!(
        listed, modules,
        "ARCHITECTURE.md's layers must list every module of src/ once"
    );
    let mut bad = Vec::new();
    for m in &modules {
        for import in imports_of(m).into_iter().filter(|i| modules.contains(i)) {
            if rank[&import] >= rank[m] {
                bad.push(format!(
                    "{m} (layer {}) imports {import} (layer {})",
                    rank[m] + 1,
                    rank[&import] + 1
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that do not point down:\n{}",
        bad.join("\n")
    );
}

/// Non-test functions longer than [`FN_LINES_MAX`] lines, as `(file, name, lines)`: a
/// function starts at a line with `fn name(` and ends at the first line that closes it at
/// its own indentation. Code after a file's `#[cfg(test)]` is test code, and so are the
/// files under `src/*/tests.rs`.
fn long_functions() -> Vec<(String, String, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in sources()
        .into_iter()
        .filter(|p| p.starts_with(root.join("src")))
    {
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = line.len() - code.len();
            let Some(at) = code.find("fn ") else { continue };
            let before = &code[..at];
            let is_item = before.split_whitespace().all(|w| {
                [
                    "pub",
                    "pub(crate)",
                    "pub(super)",
                    "async",
                    "const",
                    "unsafe",
                ]
                .contains(&w)
            });
            let name = ident(&code[at + 3..]);
            if !is_item || name.is_empty() {
                continue;
            }
            let close = " ".repeat(indent) + "}";
            // A declaration without a body (in a trait) ends with `;` before any `{`.
            let Some(open) = lines[i..]
                .iter()
                .position(|l| l.trim_end().ends_with('{') || l.trim_end().ends_with(';'))
            else {
                continue;
            };
            if lines[i + open].trim_end().ends_with(';') {
                continue;
            }
            if let Some(end) = lines[i..].iter().position(|l| *l == close) {
                if end + 1 > FN_LINES_MAX {
                    let file = path.strip_prefix(root).unwrap().display().to_string();
                    found.push((file, name, end + 1));
                }
            }
        }
    }
    found
}

/// The most lines of a non-test function, but those ARCHITECTURE.md names as table-like.
const FN_LINES_MAX: usize = 100;

/// No non-test function is longer than [`FN_LINES_MAX`] lines, but the table-like ones that
/// ARCHITECTURE.md lists between its `long-functions` markers (as `path::name`).
#[test]
fn functions_are_short_but_the_documented_tables() {
    let block = architecture_block("long-functions");
    let allowed: Vec<&str> = block.split('`').skip(1).step_by(2).collect();
    let too_long: Vec<String> = long_functions()
        .into_iter()
        .filter(|(file, name, _)| !allowed.contains(&format!("{file}::{name}").as_str()))
        .map(|(file, name, n)| format!("{file}::{name}: {n} lines"))
        .collect();
    assert!(
        too_long.is_empty(),
        "functions over {FN_LINES_MAX} lines (split them, or list a table-like one in \
         ARCHITECTURE.md):\n{}",
        too_long.join("\n")
    );
}
