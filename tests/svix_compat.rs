//! The official `svix` SDKs against the real binary, through their own methods: the Python
//! SDK (from PyPI, `tests/compat/svix_sdk.py`) and the JavaScript/TypeScript SDK (from npm,
//! `tests/compat/js/sdk.mjs`, run with the machine's Node.js). Each goes through every route
//! family hookd serves, checks what each call returns, and verifies the deliveries it gets
//! with the SDK's own `Webhook`. `.ci/run` installs both at the versions the
//! repository pins; without them these tests fail and say how to install them.

#[path = "support/hookd.rs"]
mod hookd;

use std::process::Command;

/// Runs an SDK script (`program` with `script` in `dir`) against a fresh hookd that may deliver
/// to loopback, and checks that it ends with `done`.
fn drive(program: &str, dir: &str, script: &str, done: &str) {
    let h = hookd::Hookd::start("[delivery]\nallow_private_networks = true\n");
    let out = Command::new(program)
        .current_dir(dir)
        .arg(script)
        .arg(format!("http://{}", h.addr))
        .arg(hookd::ADMIN)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(done), "{stdout}");
}

#[test]
fn official_svix_python_sdk_works_unchanged() {
    let probe = Command::new("python3").args(["-c", "import svix"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the svix Python package is missing: pip install svix (as .ci/run does)"
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat");
    drive("python3", dir, "svix_sdk.py", "svix SDK compatibility: ok");
}

#[test]
fn official_svix_javascript_sdk_works_unchanged() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/js");
    let installed = std::path::Path::new(dir).join("node_modules/svix/package.json");
    assert!(
        installed.is_file(),
        "the svix npm package is missing: npm ci --prefix tests/compat/js (as .ci/run does)"
    );
    drive("node", dir, "sdk.mjs", "svix JS SDK compatibility: ok");
}

/// Deliveries verified by the `standardwebhooks` reference library (PyPI) in a Python receiver.
#[test]
fn deliveries_verify_with_the_standardwebhooks_reference_library() {
    use std::io::{BufRead, BufReader};
    let probe = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the standardwebhooks Python package is missing: pip install standardwebhooks"
    );
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/sw_receiver.py");
    let mut rx = Command::new("python3")
        .args([script, secret, "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut lines = BufReader::new(rx.stdout.take().unwrap()).lines();
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let h = hookd::Hookd::start("[delivery]\nallow_private_networks = true\n");
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"a","uid":"a"}"#))
            .status,
        201
    );
    let ep = format!(r#"{{"url":"http://127.0.0.1:{port}/hook","secret":"{secret}"}}"#);
    assert_eq!(
        h.admin("POST", "/api/v1/app/a/endpoint", Some(&ep)).status,
        201
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = format!(r#"{{"eventType":"t.x","payload":{{"i":{i},"s":"caf\u00e9 \"q\""}}}}"#);
        let r = h.admin("POST", "/api/v1/app/a/msg", Some(&body));
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let mut verified = Vec::new();
    for _ in 0..3 {
        let line = lines.next().expect("a line from the receiver").unwrap();
        let id = line
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("verification failed: {line}"));
        verified.push(id.to_owned());
    }
    let _ = rx.wait();
    verified.sort();
    ids.sort();
    assert_eq!(verified, ids);
}
