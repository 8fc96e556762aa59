// Drives hookd through the official `svix` JavaScript/TypeScript SDK (npm, pinned in
// package.json), unchanged, route family by route family, checking what each call returns.
// A receiver in this process takes the deliveries and verifies them with the SDK's own
// `Webhook` class.
//
// Usage: node sdk.mjs SERVER_URL ADMIN_TOKEN
// Prints "svix JS SDK compatibility: ok" at the end; exits non-zero on the first failure.

import assert from "node:assert/strict";
import http from "node:http";
import { Svix, Webhook, MessageStatus } from "svix";

const [serverUrl, token] = process.argv.slice(2);
const svix = new Svix(token, { serverUrl });

// A receiver: answers 200 and keeps each delivery it could verify with the endpoint secret.
const received = [];
let verifier = null;
const receiver = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    try {
      verifier.verify(body, req.headers); // throws unless signed with the endpoint's secret
      received.push(JSON.parse(body));
      res.writeHead(200).end("ok");
    } catch (e) {
      res.writeHead(400).end(String(e));
    }
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

async function eventually(what, check) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// health
await svix.health.get();

// applications: create, get by id and uid, patch, upsert, list with paging both ways.
const app = await svix.application.create({ name: "JS app", uid: "js-app", metadata: { tier: "gold" } });
assert.match(app.id, /^app_/);
assert.equal((await svix.application.get("js-app")).id, app.id);
assert.deepEqual((await svix.application.get(app.id)).metadata, { tier: "gold" });
assert.equal((await svix.application.patch(app.id, { name: "JS app 2" })).name, "JS app 2");
for (let i = 0; i < 3; i++) {
  await svix.application.create({ name: `extra ${i}`, uid: `js-extra-${i}` });
}
const page1 = await svix.application.list({ limit: 2 });
assert.equal(page1.data.length, 2);
assert.equal(page1.done, false);
const page2 = await svix.application.list({ limit: 2, iterator: page1.iterator });
assert.ok(page2.data.length >= 1);
assert.ok(!page2.data.some((a) => page1.data.some((b) => b.id === a.id)), "pages overlap");
const back = await svix.application.list({ limit: 2, iterator: page2.prevIterator });
assert.deepEqual(back.data.map((a) => a.id), page1.data.map((a) => a.id), "back to the first page");
const upserted = await svix.application.upsert("js-upserted", { name: "upserted" });
assert.equal((await svix.application.get("js-upserted")).id, upserted.id);
await svix.application.delete("js-extra-0");
await assert.rejects(svix.application.get("js-extra-0"), (e) => e.code === 404);

// event types: create, get, patch, list, archive.
const et = await svix.eventType.create({ name: "invoice.paid", description: "An invoice was paid" });
assert.equal(et.name, "invoice.paid");
await svix.eventType.create({ name: "invoice.voided", description: "voided" });
assert.equal((await svix.eventType.patch("invoice.voided", { description: "void" })).description, "void");
assert.equal((await svix.eventType.get("invoice.paid")).description, "An invoice was paid");
const types = await svix.eventType.list();
assert.deepEqual(types.data.map((t) => t.name).sort(), ["invoice.paid", "invoice.voided"]);
await svix.eventType.delete("invoice.voided");
assert.equal((await svix.eventType.get("invoice.voided")).archived, true);

// endpoints: create, get, patch, list, secret, headers, stats.
const ep = await svix.endpoint.create(app.id, {
  url: receiverUrl,
  uid: "js-ep",
  eventTypes: ["invoice.paid"],
  description: "js",
});
assert.match(ep.id, /^ep_/);
assert.deepEqual(ep.eventTypes, ["invoice.paid"]);
assert.equal((await svix.endpoint.get(app.id, "js-ep")).id, ep.id);
assert.equal((await svix.endpoint.patch(app.id, ep.id, { description: "patched" })).description, "patched");
assert.deepEqual((await svix.endpoint.list(app.id)).data.map((e) => e.id), [ep.id]);
const secret = await svix.endpoint.getSecret(app.id, ep.id);
assert.match(secret.key, /^whsec_/);
verifier = new Webhook(secret.key);
await svix.endpoint.setHeaders(app.id, ep.id, { headers: { "X-Tenant": "acme" } });
await svix.endpoint.patchHeaders(app.id, ep.id, { headers: { "X-Region": "eu" } });
const headers = await svix.endpoint.getHeaders(app.id, ep.id);
assert.deepEqual(headers.headers, { "X-Tenant": "acme", "X-Region": "eu" });

// messages: create, get with content, list with a filter and paging.
const msgs = [];
for (let i = 0; i < 3; i++) {
  msgs.push(await svix.message.create(app.id, {
    eventType: "invoice.paid",
    eventId: `inv-${i}`,
    payload: { invoice: i },
  }));
}
await svix.message.create(app.id, { eventType: "invoice.voided", payload: { invoice: 9 } });
const got = await svix.message.get(app.id, msgs[0].id, { withContent: true });
assert.deepEqual(got.payload, { invoice: 0 });
assert.equal(got.eventId, "inv-0");
await assert.rejects(
  svix.message.create(app.id, { eventType: "invoice.paid", eventId: "inv-0", payload: {} }),
  (e) => e.code === 409,
);
const paid = await svix.message.list(app.id, { eventTypes: ["invoice.paid"], limit: 2 });
assert.deepEqual(paid.data.map((m) => m.id), [msgs[2].id, msgs[1].id], "newest first");
const rest = await svix.message.list(app.id, { eventTypes: ["invoice.paid"], iterator: paid.iterator });
assert.deepEqual(rest.data.map((m) => m.id), [msgs[0].id]);

// Deliveries arrive signed and verify with the SDK; the voided one is filtered out.
await eventually("three verified deliveries", () => received.length >= 3);
assert.deepEqual(received.map((p) => p.invoice).sort(), [0, 1, 2]);

// attempts: by message, by endpoint, one attempt, attempted messages and destinations.
const byMsg = await eventually("an attempt of the first message", async () => {
  const l = await svix.messageAttempt.listByMsg(app.id, msgs[0].id);
  return l.data.length === 1 ? l : null;
});
const attempt = byMsg.data[0];
assert.equal(attempt.status, MessageStatus.Success);
assert.equal(attempt.responseStatusCode, 200);
assert.equal(attempt.endpointId, ep.id);
const one = await svix.messageAttempt.get(app.id, msgs[0].id, attempt.id);
assert.equal(one.response, "ok");
const byEp = await eventually("three attempts at the endpoint", async () => {
  const l = await svix.messageAttempt.listByEndpoint(app.id, ep.id);
  return l.data.length === 3 ? l : null;
});
assert.deepEqual(new Set(byEp.data.map((a) => a.msgId)), new Set(msgs.map((m) => m.id)));
const attempted = await svix.messageAttempt.listAttemptedMessages(app.id, ep.id);
assert.deepEqual(attempted.data.map((m) => m.id), msgs.map((m) => m.id).reverse());
assert.ok(attempted.data.every((m) => m.status === MessageStatus.Success));
const dests = await svix.messageAttempt.listAttemptedDestinations(app.id, msgs[0].id);
assert.deepEqual(dests.data.map((d) => d.id), [ep.id]);
await svix.messageAttempt.expungeContent(app.id, msgs[0].id, attempt.id);
assert.equal((await svix.messageAttempt.get(app.id, msgs[0].id, attempt.id)).response, "EXPUNGED");

// resend, then stats over the window up to now.
await svix.messageAttempt.resend(app.id, msgs[1].id, ep.id);
await eventually("the resend", () => received.length >= 4);
// (The recorder writes outcomes in batches: the stats follow the deliveries shortly.)
const since = new Date(Date.now() - 3600e3);
const stats = await eventually("three successes in the stats", async () => {
  const s = await svix.endpoint.getStats(app.id, ep.id, { since });
  return s.success === 3 ? s : null;
});
assert.equal(stats.fail, 0);

// recover and replay-missing answer as background tasks; rotation gives the new secret.
const recovered = await svix.endpoint.recover(app.id, ep.id, { since: new Date(Date.now() - 3600e3) });
assert.ok(recovered.id && recovered.status, JSON.stringify(recovered));
const replayed = await svix.endpoint.replayMissing(app.id, ep.id, { since: new Date(Date.now() - 3600e3) });
assert.ok(replayed.id && replayed.status, JSON.stringify(replayed));
await svix.endpoint.rotateSecret(app.id, ep.id, {});
const rotated = await svix.endpoint.getSecret(app.id, ep.id);
assert.notEqual(rotated.key, secret.key);

// an example to the endpoint alone: the ping, signed like any delivery.
const before = received.length;
const ping = await svix.endpoint.sendExample(app.id, ep.id, { eventType: "svix.ping" });
assert.match(ping.id, /^msg_/);
assert.deepEqual(ping.payload, { success: true });
await eventually("the example", () => received.length > before);
assert.deepEqual(received.at(-1), { success: true });

// a message's payload expunged: shown as expired from then on.
await svix.message.expungeContent(app.id, msgs[2].id);
const expunged = await svix.message.get(app.id, msgs[2].id, { withContent: true });
assert.deepEqual(expunged.payload, { expired: true });

// deletes
await svix.endpoint.delete(app.id, ep.id);
await assert.rejects(svix.endpoint.get(app.id, ep.id), (e) => e.code === 404);

// The app portal: a token for one app that works through the SDK itself, scoped to that app;
// logout revokes it, expire-all the others.
const access = await svix.authentication.appPortalAccess(app.id, { expiry: 3600, sessionId: "js" });
assert.ok(access.token.startsWith("hkp_") && access.url.endsWith("/portal#token=" + access.token));
const portal = new Svix(access.token, { serverUrl });
assert.equal((await portal.application.get(app.id)).id, app.id);
await assert.rejects(portal.application.list(), (e) => e.code === 403);
await portal.authentication.logout();
await assert.rejects(portal.application.get(app.id), (e) => e.code === 401);
const other = await svix.authentication.appPortalAccess(app.id, { readOnly: true, sessionId: "js" });
await svix.authentication.expireAll(app.id, { sessionIds: ["js"] });
await assert.rejects(new Svix(other.token, { serverUrl }).application.get(app.id), (e) => e.code === 401);

receiver.close();
console.log("svix JS SDK compatibility: ok");
