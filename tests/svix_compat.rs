//! The official `svix` Python SDK (from PyPI) against the real binary: create an application,
//! an event type and an endpoint, read the endpoint secret, create a message, get it back and
//! list messages, all through the SDK's own methods. `.ci/run` installs the SDK; without it
//! this test fails and says how to install it.

#[path = "support/hookd.rs"]
mod hookd;

use std::process::Command;

#[test]
fn official_svix_python_sdk_works_unchanged() {
    let probe = Command::new("python3").args(["-c", "import svix"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the svix Python package is missing: pip install svix (as .ci/run does)"
    );
    let h = hookd::Hookd::start("");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/svix_sdk.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", h.addr))
        .arg(hookd::ADMIN)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("svix SDK compatibility: ok"), "{stdout}");
}
