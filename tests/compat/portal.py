"""Drives hookd's app portal in Debian's headless Chromium through chromedriver (webdriver.py).

Run by tests/portal.rs, which starts hookd, makes an app with a failing endpoint and a failed
message, asks the access route for two links (full and read-only), and checks the outcome
through the API afterwards. Usage:

    portal.py URL READ_ONLY_URL RECEIVER_URL FAILING_EP FAILED_MSG BUSY_EP BUSY_COUNT OUT_DIR

As the app's customer: opens the link (the token leaves the address bar), is refused an
invalid URL inline (the API's 422), creates an endpoint to RECEIVER_URL for one event type,
sends it a test event and sees the attempt, rotates its secret (printed as "rotated secret:
..." for the test to verify the next delivery with), opens the failing endpoint and sees its
attempts with the response snippet, resends the failed message and sees it succeed, reads the
catalogue's example, pages through BUSY_EP's BUSY_COUNT messages and attempts (50 a page).
The read-only link then signs out (its token revoked). Then the read-only link: no write control anywhere, and the API refuses a
write made with its token from the page. A made-up token is refused. Checks the console has no
errors (a CSP violation would be one) and nothing overflows a phone-sized screen; screenshots
go to OUT_DIR. Prints "portal: ok" at the end.
"""

import os
import sys
import time

from webdriver import WAIT_S, session

VISIBLE = "const n = document.querySelector(arguments[0]); return !!n && n.offsetParent !== null"
HIDDEN = "const n = document.querySelector(arguments[0]); return !n || n.offsetParent === null"


def visible(wd, css):
    return wd.js(VISIBLE, css)


def wait_refreshing(wd, what, script, *args):
    """Waits for `script`, pressing the page's Refresh button every second meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while not wd.js(script, *args):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; the page shows %r" % (what, wd.js(wd.diagnose)))
        wd.click("#a-refresh")
        time.sleep(1.0)


def phone_fits(wd, what):
    wd.window(390, 844)
    wd.wait(
        "%s to fit a phone" % what,
        "return window.innerWidth <= 420 && document.documentElement.scrollWidth <= window.innerWidth",
    )


def main():
    url, ro_url, receiver_url, failing, failed_msg, busy, busy_count, out_dir = sys.argv[1:9]
    busy_count = int(busy_count)
    os.makedirs(out_dir, exist_ok=True)
    base = url.split("/portal#", 1)[0]
    with session() as wd:
        wd.get(url)
        wd.wait("the endpoint list", "return document.querySelector('#eps li[data-id]') !== null")
        assert wd.js("return location.hash") == "", "the token stays in the address bar"
        assert "Acme Corp" in wd.js("return document.getElementById('who').textContent")
        wd.no_console_errors("loading the portal")
        wd.full_page_screenshot(1280, os.path.join(out_dir, "portal-endpoints.png"))
        wd.window(1280, 1000)

        # A new endpoint: the API's 422 shows under the field, then a valid one is made.
        wd.click("#a-new")
        wd.wait("the form", VISIBLE, "#ep-form")
        wd.type("#f-url", "not a url")
        wd.click("#f-save")
        wd.wait("the URL's error", "return document.getElementById('e-url').textContent.length > 0")
        print("inline error:", wd.js("return document.getElementById('e-url').textContent"))
        wd.console()  # the refused request's 422 is expected there
        wd.js("document.getElementById('f-url').value = ''")
        wd.type("#f-url", receiver_url)
        wd.type("#f-description", "made in the portal")
        wd.wait("the catalogue's event types", "return document.querySelector('#f-types input[value=\"invoice.paid\"]') !== null")
        wd.click("#f-types input[value='invoice.paid']")
        wd.click("#f-save")
        wd.wait(
            "the new endpoint",
            "return document.getElementById('ep-url').textContent === arguments[0] &&"
            " document.getElementById('v-endpoint').offsetParent !== null",
            receiver_url,
        )

        # A test event with the catalogue's example, and its attempt.
        wd.js("document.getElementById('t-type').value = 'invoice.paid'")
        wd.click("#a-send")
        wd.wait("the send notice", "return document.getElementById('ep-notice').textContent.includes('Test event sent')")
        wait_refreshing(
            wd,
            "the test event's attempt",
            "return [...document.querySelectorAll('#attempts tr.attempt td.code')].some(td => td.textContent === '200')",
        )

        # Rotate the secret; the page shows the new one.
        wd.click("#a-reveal")
        wd.wait("the secret", "return document.getElementById('secret').textContent.startsWith('whsec_')")
        old = wd.js("return document.getElementById('secret').textContent")
        wd.click("#a-rotate")
        wd.wait(
            "the rotated secret",
            "const t = document.getElementById('secret').textContent; return t.startsWith('whsec_') && t !== arguments[0]",
            old,
        )
        print("rotated secret: " + wd.js("return document.getElementById('secret').textContent"))

        # Edit it (description, a custom header), disable it, enable it again.
        wd.click("#a-edit")
        wd.wait("the edit form", "return document.getElementById('f-url').value === arguments[0]", receiver_url)
        wd.js("document.getElementById('f-description').value = ''")
        wd.type("#f-description", "edited in the portal")
        wd.type("#f-headers", "X-Customer: acme")
        wd.click("#f-save")
        wd.wait("the saved endpoint", "return document.getElementById('ep-notice').textContent === 'Saved.'")
        assert "X-Customer: acme" in wd.js("return document.getElementById('ep-facts').innerText")
        wd.click("#a-toggle")
        wd.wait("the disabled endpoint", "return document.getElementById('ep-facts').innerText.includes('disabled')")
        wd.click("#a-toggle")
        wd.wait("the enabled endpoint", "return document.getElementById('ep-facts').innerText.includes('enabled')")

        # The failing endpoint: its attempts with the receiver's answer.
        wd.click("#a-back")
        wd.wait("the list", VISIBLE, "#eps li[data-id='%s']" % failing)
        wd.click("#eps li[data-id='%s']" % failing)
        wd.wait(
            "the failing attempts",
            "const t = document.getElementById('attempts').innerText;"
            "return t.includes('503') && t.includes('receiver down for maintenance')",
        )
        wd.full_page_screenshot(1280, os.path.join(out_dir, "portal-endpoint.png"))
        wd.window(1280, 1000)

        # Recover what failed in the last hour (the receiver works again), then resend by hand.
        wd.js(
            "const d = new Date(Date.now() - 3600e3 - new Date().getTimezoneOffset() * 60e3);"
            "document.getElementById('r-since').value = d.toISOString().slice(0, 16)"
        )
        wd.click("#a-recover")
        wd.wait("the recover notice", "return document.getElementById('ep-notice').textContent.includes('Resending the failed')")
        wait_refreshing(
            wd,
            "the recovered message's success",
            "return [...document.querySelectorAll('#attempts tr.attempt')].some(r =>"
            " r.dataset.msg === arguments[0] && r.querySelector('td.code').textContent === '200')",
            failed_msg,
        )

        # Resend the message: it lands again.
        row = "#msgs tr.msg[data-id='%s']" % failed_msg
        wd.wait("the failed message", VISIBLE, row + " button.resend")
        wd.click(row + " button.resend")
        wd.wait("the resend notice", "return document.getElementById('ep-notice').textContent.includes('Resending')")
        wait_refreshing(
            wd,
            "the resent message's second success",
            "return [...document.querySelectorAll('#attempts tr.attempt')].filter(r =>"
            " r.dataset.msg === arguments[0] && r.querySelector('td.code').textContent === '200').length >= 2",
            failed_msg,
        )
        phone_fits(wd, "an endpoint's page")
        wd.full_page_screenshot(390, os.path.join(out_dir, "portal-phone.png"))
        wd.window(1280, 1000)

        # The catalogue, with the event type's example payload.
        wd.click("#tab-catalogue")
        wd.wait(
            "the example payload",
            "const p = document.querySelector(\".type[data-name='invoice.paid'] pre.example\");"
            "return p && p.textContent.includes('in_123')",
        )
        cards = wd.js("return document.querySelectorAll('#catalogue .type').length")
        assert cards > 250, "the catalogue shows %d event types, not all of them" % cards
        phone_fits(wd, "the catalogue")
        wd.window(1280, 1000)

        # An endpoint with more messages than a page: "Load more" brings the rest, then goes.
        wd.click("#tab-endpoints")
        wd.wait("the busy endpoint", VISIBLE, "#eps li[data-id='%s']" % busy)
        wd.click("#eps li[data-id='%s']" % busy)
        for table in ["msgs", "attempts"]:
            rows = "return document.querySelectorAll('#%s tbody tr').length" % table
            wd.wait("a first page of %s" % table, rows + " === 50")
            assert visible(wd, "#%s-more" % table), "no Load more under %s" % table
            wd.click("#%s-more" % table)
            wd.wait("all %d %s" % (busy_count, table), rows + " === arguments[0]", busy_count)
            wd.wait("Load more to go", HIDDEN, "#%s-more" % table)

        # A second endpoint, deleted again (the button asks twice).
        wd.click("#tab-endpoints")
        wd.wait("the list", VISIBLE, "#a-new")
        wd.click("#a-new")
        wd.type("#f-url", receiver_url + "-deleted")
        wd.click("#f-save")
        wd.wait("the second endpoint", "return document.getElementById('ep-url').textContent.endsWith('-deleted')")
        wd.click("#a-delete")
        wd.wait("the second ask", "return document.getElementById('a-delete').textContent === 'Really delete?'")
        wd.click("#a-delete")
        wd.wait(
            "the list without it",
            "return document.getElementById('v-endpoints').offsetParent !== null &&"
            " ![...document.querySelectorAll('#eps li .url')].some(u => u.textContent.endsWith('-deleted'))",
        )
        wd.no_console_errors("using the portal")

        # The read-only link, in the same tab: it replaces the token.
        wd.get(ro_url)
        wd.wait("the read-only list", "return document.getElementById('who').textContent.includes('read-only')")
        wd.wait("the endpoints", VISIBLE, "#eps li[data-id='%s']" % failing)
        assert not visible(wd, "#a-new"), "read-only: Add endpoint is shown"
        wd.click("#eps li[data-id='%s']" % failing)
        wd.wait("the endpoint", "return document.querySelector('#msgs tr.msg') !== null")
        for control in ["#a-edit", "#a-toggle", "#a-delete", "#a-rotate", "#a-send", "#a-recover", "#msgs button.resend"]:
            assert not visible(wd, control), "read-only: %s is shown" % control
        assert visible(wd, "#a-reveal"), "read-only: the secret cannot be seen"
        refused = wd.js_async(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/v1/app/acme/endpoint/' + arguments[0], {method: 'DELETE',"
            " headers: {authorization: 'Bearer ' + sessionStorage.getItem('hookd-portal-token')}})"
            ".then(r => done(r.status), e => done(String(e)))",
            failing,
        )
        assert refused == 403, "read-only DELETE answered %r" % refused
        wd.console()  # that 403 is expected there
        wd.full_page_screenshot(1280, os.path.join(out_dir, "portal-read-only.png"))

        # Sign out: the link's token is revoked (the test checks through the API) and forgotten.
        wd.window(1280, 1000)
        wd.click("#a-signout")
        wd.wait("the signed-out page", "return document.getElementById('fatal').textContent.startsWith('Signed out')")
        assert wd.js("return sessionStorage.getItem('hookd-portal-token')") is None

        # A made-up token: refused, and the page says so.
        wd.get("about:blank")
        wd.get(base + "/portal#token=hkp_" + "0" * 64)
        wd.wait(
            "the refusal",
            "return document.getElementById('fatal').textContent.includes('expired or was revoked')",
        )
        wd.console()  # its 401 is expected there
        print("portal: ok")


if __name__ == "__main__":
    main()
