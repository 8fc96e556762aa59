"""A W3C WebDriver client over plain HTTP (the standard library only, no selenium) for
Debian's headless Chromium through chromedriver, shared by the browser tests
(status_page.py, portal.py): start chromedriver, open a session, find, click, type, wait for
a JavaScript condition, screenshots, and the browser console.
"""

import base64
import contextlib
import json
import re
import shutil
import subprocess
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

    def js_async(self, script, *args):
        """Runs `script`, which calls `arguments[arguments.length - 1](result)` when done."""
        return self.call("POST", "/execute/async", {"script": script, "args": list(args)})

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.call("POST", "/element/%s/click" % self.find(css), {})

    def type(self, css, text):
        self.call("POST", "/element/%s/value" % self.find(css), {"text": text})

    # What a timed-out wait reports of the page; a script may set its own.
    diagnose = "return document.body.innerText.slice(0, 3000)"

    def wait(self, what, script, *args):
        """Polls a JavaScript expression until it returns something truthy."""
        deadline = time.monotonic() + WAIT_S
        while True:
            got = self.js(script, *args)
            if got:
                return got
            if time.monotonic() > deadline:
                state = self.js(self.diagnose)
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


@contextlib.contextmanager
def session():
    """A browser session in a fresh profile; everything is stopped and removed afterwards."""
    driver_proc, port = start_chromedriver()
    wd = WebDriver(port)
    profile = tempfile.mkdtemp(prefix="hookd-chromium-")
    try:
        wd.start(profile)
        yield wd
    finally:
        try:
            wd.quit()
        finally:
            driver_proc.kill()
            driver_proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
