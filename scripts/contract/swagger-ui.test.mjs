// Swagger UI in a real browser: Debian's chromium, driven headless by playwright-core (no
// browser download). Loads /swagger-ui/, checks that every tag and operation of the served
// document is listed, offers both schemes (access token and API key), authorizes with an access
// token and executes GET /api/v1/me.
// M365_SYNC_URL, M365_SYNC_TEST_EMAIL and M365_SYNC_TEST_PASSWORD name the server and an
// admin; CHROMIUM overrides /usr/bin/chromium; SCREENSHOT_DIR keeps screenshots.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const baseUrl = process.env.M365_SYNC_URL;
const email = process.env.M365_SYNC_TEST_EMAIL ?? "admin@example.com";
const password = process.env.M365_SYNC_TEST_PASSWORD ?? "";
const screenshots = process.env.SCREENSHOT_DIR;
const skip = baseUrl ? false : "M365_SYNC_URL is not set";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

let browser;
let page;

before(async () => {
  if (skip) return;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(15_000);
});

after(async () => {
  await browser?.close();
});

async function shot(name) {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

test("Swagger UI lists every tag and operation, authorizes and executes a call", { skip }, async () => {
  const document = await (await fetch(`${baseUrl}/api-docs/openapi.json`)).json();
  const operations = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      if (item[method]) operations.push({ path, method, tag: item[method].tags?.[0] ?? "default" });
    }
  }
  const tags = [...new Set([...(document.tags ?? []).map((t) => t.name), ...operations.map((o) => o.tag)])];
  assert.ok(operations.length > 0, "the document has operations");

  await page.goto(`${baseUrl}/swagger-ui/`);
  await page.locator(".information-container .title").waitFor();
  assert.match(await page.locator(".information-container .title").innerText(), /m365-sync/);
  await page.locator(".opblock").first().waitFor();
  await shot("1-loaded");

  const shownTags = await page.locator(".opblock-tag-section h3.opblock-tag").evaluateAll((nodes) =>
    nodes.map((n) => n.getAttribute("data-tag")),
  );
  assert.deepEqual([...shownTags].sort(), [...tags].sort(), "every tag is listed");

  const shownOperations = await page.locator(".opblock").evaluateAll((nodes) =>
    nodes.map((n) => {
      const method = n.querySelector(".opblock-summary-method")?.textContent?.trim().toLowerCase();
      const path = n.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  const expected = operations.map((o) => `${o.method} ${o.path}`);
  assert.deepEqual([...shownOperations].sort(), [...expected].sort(), "every operation is listed");

  const signIn = await fetch(`${baseUrl}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(signIn.status, 200, "the admin signs in");
  const { access_token: token } = await signIn.json();

  await page.locator(".auth-wrapper .btn.authorize").click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  // One form per scheme, each with its own Authorize button: both schemes are offered, and
  // the access token is the one used here (GET /api/v1/me is a person's).
  const form = (name) => dialog.locator("form").filter({ hasText: `${name} (http, Bearer)` });
  assert.equal(await form("api_key").count(), 1, "the API key scheme is offered");
  await form("bearer_auth").locator("input").first().fill(token);
  await form("bearer_auth").locator("button.modal-btn.auth.authorize").click();
  await form("bearer_auth").locator("button.modal-btn.auth", { hasText: "Logout" }).waitFor();
  await dialog.locator("button.btn-done").first().click();
  await shot("2-authorized");

  const me = page.locator(".opblock", {
    has: page.locator('.opblock-summary-path[data-path="/api/v1/me"]'),
  });
  await me.locator(".opblock-summary-control").click();
  await me.locator("button.try-out__btn").click();
  await me.locator("button.execute").click();
  const status = me.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor();
  await shot("3-executed");
  assert.equal((await status.innerText()).trim(), "200");
  const body = await me.locator(".live-responses-table .response-col_description pre.microlight").first().innerText();
  assert.equal(JSON.parse(body).email, email);
});
