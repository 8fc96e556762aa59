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

import os
import sys

from webdriver import session


def main():
    base, read_token, admin_token, app, failing, disabled, msg_id, out_dir = sys.argv[1:9]
    os.makedirs(out_dir, exist_ok=True)
    with session() as wd:
        wd.diagnose = (
            "return {updated: document.getElementById('updated').textContent,"
            " login: document.getElementById('login-error').textContent,"
            " body: document.body.innerText.slice(0, 3000)}"
        )
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


if __name__ == "__main__":
    main()
