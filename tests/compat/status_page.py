"""Drives hookd's status page in Debian's headless Chromium through chromedriver (W3C WebDriver
over plain HTTP: the standard library only, no selenium).

Run by tests/status_page.rs, which starts hookd, makes the traffic and checks the outcome
through the API afterwards. Usage:

    status_page.py BASE_URL READ_TOKEN ADMIN_TOKEN APP FAILING_EP DISABLED_EP MSG_ID OUT_DIR

Signs in with the read token, waits for both charts to draw non-zero data, finds the failing
and the disabled endpoint in the unhealthy list, re-enables the disabled one and recovers the
failing one (typing the admin token when asked), looks a message up, checks the browser
console has no errors (a Content-Security-Policy violation would be one) and that nothing
overflows a phone-sized screen, and saves screenshots in OUT_DIR. Prints
"status page: ok" at the end; any failure raises with what the page showed.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WAIT_S = 20.0
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriver:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.sid = None

    def call(self, method, path, body=None):
        url = self.base + (("/session/" + self.sid) if self.sid else "") + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"null")["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, e.read()[:2000])) from None

    def start(self, user_data_dir):
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-dev-shm-usage",
                            "--disable-gpu",
                            "--no-first-run",
                            "--user-data-dir=" + user_data_dir,
                            "--window-size=1280,1000",
                        ],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.sid = self.call("POST", "/session", caps)["sessionId"]

    def quit(self):
        if self.sid:
            try:
                self.call("DELETE", "")
            finally:
                self.sid = None

    def get(self, url):
        self.call("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.call("POST", "/element/%s/click" % self.find(css), {})

    def type(self, css, text):
        self.call("POST", "/element/%s/value" % self.find(css), {"text": text})

    def wait(self, what, script, *args):
        """Polls a JavaScript expression until it returns something truthy."""
        deadline = time.monotonic() + WAIT_S
        while True:
            got = self.js(script, *args)
            if got:
                return got
            if time.monotonic() > deadline:
                state = self.js(
                    "return {updated: document.getElementById('updated').textContent,"
                    " login: document.getElementById('login-error').textContent,"
                    " body: document.body.innerText.slice(0, 3000)}"
                )
                raise AssertionError("timed out waiting for %s; the page shows %r" % (what, state))
            time.sleep(0.1)

    def window(self, width, height):
        self.call("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def full_page_screenshot(self, width, path):
        """Grows the window to the page's height (bounded), scrolls to the top, and shoots."""
        self.window(width, 1000)
        height = self.js("return document.documentElement.scrollHeight")
        self.window(width, min(max(height + 150, 800), 6000))
        self.js("window.scrollTo(0, 0)")
        self.screenshot(path)

    def console(self):
        """The browser console since the last call (reading empties it)."""
        return self.call("POST", "/se/log", {"type": "browser"})

    def no_console_errors(self, when):
        errors = [e for e in self.console() if e.get("level") == "SEVERE"]
        assert not errors, "browser console errors after %s: %r" % (when, errors)


def start_chromedriver():
    proc = subprocess.Popen(
        ["chromedriver", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found = {}

    def read():
        for line in proc.stdout:
            m = re.search(r"started successfully on port (\d+)", line)
            if m and "port" not in found:
                found["port"] = int(m.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + WAIT_S
    while "port" not in found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("chromedriver did not start")
        time.sleep(0.05)
    return proc, found["port"]


def main():
    base, read_token, admin_token, app, failing, disabled, msg_id, out_dir = sys.argv[1:9]
    os.makedirs(out_dir, exist_ok=True)
    driver_proc, port = start_chromedriver()
    wd = WebDriver(port)
    profile = tempfile.mkdtemp(prefix="hookd-chromium-")
    try:
        wd.start(profile)
        wd.get(base + "/")
        wd.wait("the sign-in form", "return !document.getElementById('login').hidden")
        wd.no_console_errors("loading the page")

        # A wrong token is refused and the form stays.
        wd.type("#token", "not-a-token")
        wd.click("#login-form button[type=submit]")
        wd.wait("the refusal", "return document.getElementById('login-error').textContent.includes('refused')")
        # Reading the console empties it: the refused request's 401 is expected there.
        wd.console()

        wd.type("#token", read_token)
        wd.click("#login-form button[type=submit]")
        wd.wait("the dashboard", "return !document.getElementById('dash').hidden")
        assert wd.js("return sessionStorage.getItem('hookd.readToken')") == read_token

        # Charts drawn from non-zero data: the SVG paths' sums and at least one point above
        # the baseline (y < 100 in the 0..100 view box).
        charts = wd.wait(
            "charts with non-zero data",
            """
            const sum = (id, s) => {
              const p = document.querySelector('#' + id + ' path[data-series=' + s + ']');
              if (!p) return 0;
              const ys = [...p.getAttribute('d').matchAll(/[ML][\\d.]+ ([\\d.]+)/g)].map(m => +m[1]);
              return ys.some(y => y < 100) ? Number(p.dataset.sum) : 0;
            };
            const r = {ingest: sum('chart-ingest', 'ingest'),
                       success: sum('chart-deliveries', 'success'),
                       failed: sum('chart-deliveries', 'failed')};
            return r.ingest > 0 && r.success > 0 && r.failed > 0 ? r : null;
            """,
        )
        print("charts:", charts)

        row = "tr[data-endpoint='%s']" % failing
        wd.wait(
            "the failing endpoint with its 500",
            "const r = document.querySelector(arguments[0]);"
            "return r && r.innerText.includes('failing') && r.innerText.includes('HTTP 500')",
            row,
        )
        off = "tr[data-endpoint='%s']" % disabled
        wd.wait(
            "the disabled endpoint",
            "const r = document.querySelector(arguments[0]); return r && r.innerText.includes('disabled')",
            off,
        )
        wd.full_page_screenshot(1280, os.path.join(out_dir, "status-page.png"))
        wd.window(1280, 1000)

        # Re-enable: the admin token is asked for once.
        wd.click(off + " button.enable")
        wd.wait("the admin dialog", "return document.getElementById('act').open")
        assert wd.js("return !document.getElementById('act-token-l').hidden"), "no token field"
        wd.type("#act-token", admin_token)
        wd.click("#act-go")
        wd.wait(
            "the re-enable to be done",
            "return !document.getElementById('act').open &&"
            " document.getElementById('log').innerText.includes(arguments[0] + ': re-enabled')",
            disabled,
        )
        wd.wait(
            "the re-enabled endpoint to leave the list",
            "return !document.querySelector(arguments[0])",
            off,
        )

        # Recover: the admin token is remembered for this page, so only the window is asked.
        wd.click(row + " button.recover")
        wd.wait("the recover dialog", "return document.getElementById('act').open")
        assert wd.js("return document.getElementById('act-token-l').hidden"), "token asked twice"
        wd.click("#act-go")
        wd.wait(
            "the recover task",
            "return !document.getElementById('act').open &&"
            " /recover started \\(qtask_/.test(document.getElementById('log').innerText)",
        )

        # Look a message up: its attempts with status codes and response snippets.
        wd.js("document.getElementById('lookup-app').value = ''")
        wd.type("#lookup-app", app)
        wd.type("#lookup-msg", msg_id)
        wd.click("#lookup-form button[type=submit]")
        wd.wait(
            "the message's attempts",
            "const t = document.getElementById('attempts');"
            "return t && t.innerText.includes('500') && t.innerText.includes('upstream exploded')",
        )

        wd.no_console_errors("using the page")

        # The page after the actions, then a phone-sized screen: nothing wider than it.
        wd.full_page_screenshot(1280, os.path.join(out_dir, "status-page-after.png"))
        wd.window(390, 844)
        wd.wait(
            "the phone layout",
            "return window.innerWidth <= 420 &&"
            " document.documentElement.scrollWidth <= window.innerWidth",
        )
        wd.full_page_screenshot(390, os.path.join(out_dir, "status-page-phone.png"))
        print("status page: ok")
    finally:
        try:
            wd.quit()
        finally:
            driver_proc.kill()
            driver_proc.wait()
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
