//! Running a browser script of `tests/compat/` (Debian's headless Chromium through
//! chromedriver, `webdriver.py`) from a test: the check that both are installed (a test fails
//! and says so when they are not), where screenshots go, and the script run with a deadline.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The scripts' own waits are 20 s each; a whole script stops after this.
const DEADLINE: Duration = Duration::from_secs(120);

/// Fails the test unless `chromium` and `chromedriver` run (`.ci/run` installs both).
pub fn require() {
    for cmd in ["chromium", "chromedriver"] {
        let ok = Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`{cmd}` is missing: apt-get install chromium chromium-driver (as .ci/run does)"
        );
    }
}

/// `target/test-artifacts/`, where the screenshots go.
pub fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`: the artifacts go next to it.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("test-artifacts")
}

/// Runs `tests/compat/<script>` with `args`; fails unless it exits 0 and prints `ok_line`
/// within the deadline. Returns what it printed.
pub fn run(script: &str, args: &[&str], ok_line: &str) -> String {
    let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the browser script") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} ran past {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("browser script output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success() && stdout.contains(ok_line),
        "{script} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}
