//! `GET /api/v1/openapi.json`, hookd's own OpenAPI document, checked against the running
//! binary: every documented operation is served and every other method on a documented path
//! answers 405; then `schemathesis` (pinned in `tests/compat/requirements.txt`, installed by
//! `.ci/run`) drives every operation with generated requests, valid and invalid, in a bounded
//! number of examples, and must find no 5xx and no answer the document does not describe
//! (status, content type, body schema, headers, `Allow` on 405s).

#[path = "support/hookd.rs"]
mod hookd;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn document(h: &hookd::Hookd) -> Value {
    // Public: no token.
    let r = h.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_document_lists_exactly_the_operations_served() {
    let h = hookd::Hookd::start("");
    let doc = document(&h);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 28, "only {} paths", paths.len());
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("path item");
        for method in METHODS {
            let documented = item.get(&method.to_ascii_lowercase());
            let r = h.admin(method, &concrete(path), Some("{}"));
            match documented {
                Some(op) => {
                    let id = op["operationId"].as_str().expect("operationId");
                    assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                    assert!(
                        op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                        "{method} {path}: no responses"
                    );
                    assert_ne!(r.status, 405, "{method} {path} is documented, not served");
                    assert!(
                        !(r.status == 404 && r.body.contains("no route")),
                        "{method} {path} is documented, not routed: {}",
                        r.body
                    );
                    // Every parameter of the path is declared.
                    let declared: BTreeSet<&str> = op["parameters"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .filter(|p| p["in"] == "path")
                                .filter_map(|p| p["name"].as_str())
                                .collect()
                        })
                        .unwrap_or_default();
                    let in_path: BTreeSet<&str> = path
                        .split('/')
                        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                        .collect();
                    assert_eq!(declared, in_path, "{method} {path}");
                }
                None => assert_eq!(
                    r.status, 405,
                    "{method} {path} is served ({}) but not documented: {}",
                    r.status, r.body
                ),
            }
        }
    }
    // Every schema the operations refer to exists.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| *c != '"').collect();
        assert!(
            schemas.contains_key(&name),
            "{name} is referred to, not defined"
        );
    }
    // A path that is not in the document is not served.
    assert_eq!(h.admin("GET", "/api/v1/nope", None).status, 404);
}

/// The answers hookd gives are what the document says, for requests generated from it.
#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let probe = Command::new("python3")
        .args(["-c", "import schemathesis.cli"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis is missing: pip install -r tests/compat/requirements.txt (as .ci/run does)"
    );
    let h = hookd::Hookd::start("[delivery]\nallow_private_networks = true\n");
    // Something to find, so that reads answer 200 as well as 404.
    h.create(
        "/api/v1/event-type",
        serde_json::json!({"name": "order.paid"}),
    );
    h.create(
        "/api/v1/app",
        serde_json::json!({"name": "Shop", "uid": "shop"}),
    );
    h.create(
        "/api/v1/app/shop/endpoint",
        serde_json::json!({"url": "http://127.0.0.1:9/hook", "uid": "main"}),
    );
    let m = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"order.paid","payload":{"n":1}}"#),
    );
    assert_eq!(m.status, 202, "{}", m.body);
    let report = tempfile::tempdir().expect("tempdir");
    // Run from the report's directory: schemathesis keeps a cache of the failures it found in
    // `.schemathesis/` under its working directory and replays them, and neither that state
    // nor its churn belongs in the repository.
    let out = Command::new("python3")
        .current_dir(report.path())
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
            "run",
        ])
        .arg(format!("http://{}/api/v1/openapi.json", h.addr))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", hookd::ADMIN),
        ])
        // What the document promises about answers. Left out: the checks that the document
        // describes every input hookd accepts or refuses exactly (`positive_data_acceptance`,
        // `negative_data_rejection`: hookd's rules, e.g. an iterator must come from the list,
        // go beyond a schema), and `use_after_free` (deleting an event type archives it, as
        // in Svix, and it stays readable).
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance,unsupported_method,\
             allow_header_conformance,missing_required_header,ignored_auth",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args([
            "--max-examples",
            "30",
            "--workers",
            "1",
            "--seed",
            "20261205",
        ])
        .args(["--request-timeout", "20", "--no-color"])
        .arg("--report-dir")
        .arg(report.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    // It did test every operation of the document.
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in the summary:\n{stdout}"))
            .trim()
            .to_owned()
    };
    let selected = field("Selected: ");
    let (_, total) = selected.split_once('/').expect("Selected: n/m");
    assert_eq!(field("Tested: "), total, "{stdout}");
    let operations: usize = document(&h)["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    // All but `GET /api/v1/openapi.json` itself, which schemathesis leaves out.
    assert_eq!(total, (operations - 1).to_string(), "{stdout}");
    eprintln!("{stdout}");
}
