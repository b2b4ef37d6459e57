// What an integrator's code meets, checked with their tools: webhooks received by a Node.js
// endpoint and verified with the Standard Webhooks reference library (`standardwebhooks`), and
// the API called from a page on another origin in a real browser (Debian's chromium, headless,
// driven by playwright-core): allowed for CORS_ORIGIN_PORT's origin, refused for
// CORS_REFUSED_PORT's. M365_SYNC_URL and M365_SYNC_TEST_EMAIL / M365_SYNC_TEST_PASSWORD name
// the server (started with webhook_allow_private_targets and that cors_allowed_origins).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";
import { Webhook } from "standardwebhooks";

const baseUrl = process.env.M365_SYNC_URL;
const email = process.env.M365_SYNC_TEST_EMAIL ?? "admin@example.com";
const password = process.env.M365_SYNC_TEST_PASSWORD ?? "";
const allowedPort = Number(process.env.CORS_ORIGIN_PORT);
const refusedPort = Number(process.env.CORS_REFUSED_PORT);
const skip = baseUrl && allowedPort && refusedPort ? false : "M365_SYNC_URL or CORS ports not set";

let token;
let browser;
const servers = [];

async function api(method, path, body, headers = {}) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

function listen(handler, port = 0) {
  return new Promise((resolve) => {
    const server = createServer(handler);
    servers.push(server);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
}

before(async () => {
  if (skip) return;
  const signIn = await fetch(`${baseUrl}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(signIn.status, 200);
  token = (await signIn.json()).access_token;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  for (const server of servers) server.close();
});

test("webhooks verify with the Standard Webhooks reference library", { skip }, async () => {
  const received = [];
  const port = await listen((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  const created = await api("POST", "/api/v1/webhooks", {
    url: `http://127.0.0.1:${port}/hooks`,
    events: ["calendar_event.*"],
    description: "contract",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const wh = new Webhook(created.body.secret);

  const ping = await api("POST", `/api/v1/webhooks/${created.body.id}/test`);
  assert.equal(ping.status, 202);
  const org = await api("POST", "/api/v1/organizations", { name: `Contract ${Date.now()}` });
  assert.equal(org.status, 201, JSON.stringify(org.body));
  const user = await api("POST", `/api/v1/organizations/${org.body.id}/users`, {
    email: `webhook-${Date.now()}@example.com`,
    password: "a long enough passphrase 42",
  });
  assert.equal(user.status, 201, JSON.stringify(user.body));
  const event = await api("POST", `/api/v1/users/${user.body.id}/calendar-events`, {
    title: "Contract",
    start: { date_time: "2026-12-10T09:00:00", time_zone: "UTC" },
    end: { date_time: "2026-12-10T10:00:00", time_zone: "UTC" },
  });
  assert.equal(event.status, 201, JSON.stringify(event.body));

  const deadline = Date.now() + 15_000;
  while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(received.length, 2, JSON.stringify(received));
  const types = [];
  for (const { headers, body } of received) {
    const payload = wh.verify(body, headers);
    types.push(payload.type);
    assert.ok(payload.timestamp && payload.data);
    assert.throws(() => wh.verify(`${body} `, headers), "a changed body does not verify");
  }
  assert.deepEqual(types.sort(), ["calendar_event.created", "webhook.ping"]);
  const delivered = received.map(({ body }) => JSON.parse(body)).find((p) => p.type === "calendar_event.created");
  assert.equal(delivered.data.id, event.body.id);
  assert.equal(delivered.data.origin, "api");

  // The feed holds the same event with the webhook's id.
  const feed = await api("GET", "/api/v1/changes?limit=1000");
  assert.equal(feed.status, 200);
  const ids = received.filter((r) => JSON.parse(r.body).type !== "webhook.ping").map((r) => r.headers["webhook-id"]);
  assert.ok(feed.body.items.some((e) => e.id === ids[0]), "the feed holds the delivered event");

  // Rotation: both secrets sign for a while.
  const rotated = await api("POST", `/api/v1/webhooks/${created.body.id}/rotate-secret`);
  assert.equal(rotated.status, 200);
  await api("POST", `/api/v1/webhooks/${created.body.id}/test`);
  const deadline2 = Date.now() + 15_000;
  while (received.length < 3 && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 50));
  const last = received[2];
  new Webhook(created.body.secret).verify(last.body, last.headers);
  new Webhook(rotated.body.secret).verify(last.body, last.headers);
  await api("DELETE", `/api/v1/webhooks/${created.body.id}`);
});

const page = (apiUrl, bearer) => `<!doctype html><meta charset="utf-8"><title>front end</title>
<script>
window.callApi = async () => {
  try {
    const r = await fetch(${JSON.stringify(apiUrl)} + "/api/v1/me", {
      headers: { Authorization: "Bearer " + ${JSON.stringify(bearer)}, "Idempotency-Key": "abc" },
    });
    return { status: r.status, etag: r.headers.get("etag"), body: await r.json() };
  } catch (e) {
    return { error: String(e) };
  }
};
</script>`;

test("a page on an allowed origin calls the API from a browser; another origin cannot", { skip }, async () => {
  const html = page(baseUrl, token);
  for (const port of [allowedPort, refusedPort]) {
    await listen((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(html), port);
  }
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${allowedPort}/`);
  const allowed = await tab.evaluate(() => window.callApi());
  assert.equal(allowed.status, 200, JSON.stringify(allowed));
  assert.equal(allowed.body.email, email);

  await tab.goto(`http://127.0.0.1:${refusedPort}/`);
  const refused = await tab.evaluate(() => window.callApi());
  assert.ok(refused.error, `the browser must refuse the answer: ${JSON.stringify(refused)}`);
  await tab.close();
});
