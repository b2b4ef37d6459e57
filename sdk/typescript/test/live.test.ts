// The SDK against a live server: M365_SYNC_URL, M365_SYNC_TEST_EMAIL and
// M365_SYNC_TEST_PASSWORD (an admin) name it; .ci/contract starts one.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, test } from "node:test";

import { type M365SyncClient, createM365SyncClient, signIn } from "../src/index.js";

const baseUrl = process.env["M365_SYNC_URL"];
const email = process.env["M365_SYNC_TEST_EMAIL"] ?? "admin@example.com";
const password = process.env["M365_SYNC_TEST_PASSWORD"] ?? "";

describe("m365-sync SDK against a live server", { skip: baseUrl ? false : "M365_SYNC_URL is not set" }, () => {
  let api: M365SyncClient;

  before(async () => {
    api = await signIn(baseUrl ?? "", email, password);
  });

  test("signs in and reads the caller", async () => {
    const { data, error } = await api.GET("/api/v1/me");
    assert.equal(error, undefined);
    assert.equal(data?.email, email);
    assert.equal(data?.role, "admin");
  });

  test("refuses wrong credentials with a problem", async () => {
    const anonymous = createM365SyncClient({ baseUrl: baseUrl ?? "" });
    const { data, error, response } = await anonymous.POST("/api/v1/auth/token", {
      body: { email, password: "not the password" },
    });
    assert.equal(data, undefined);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    assert.equal(error?.code, "invalid_credentials");
  });

  test("settings set on an organization are inherited by its users", async () => {
    const created = await api.POST("/api/v1/organizations", {
      body: { name: `SDK test ${randomUUID()}` },
    });
    assert.equal(created.response.status, 201);
    const org = created.data;
    assert.ok(org);
    assert.equal(created.response.headers.get("etag"), `"${org.version}"`);

    const user = await api.POST("/api/v1/organizations/{id}/users", {
      params: { path: { id: org.id } },
      body: { email: `sdk-${randomUUID()}@example.com`, password: "sdk test password" },
    });
    assert.equal(user.response.status, 201);
    assert.ok(user.data);
    assert.equal(user.data.role, "user");
    assert.equal(user.data.organization_id, org.id);

    const patched = await api.PATCH("/api/v1/organizations/{id}/settings/microsoft", {
      params: { path: { id: org.id } },
      body: { sync_interval_minutes: 30, calendar: { enabled: true, direction: "to_microsoft" } },
    });
    assert.equal(patched.error, undefined);
    assert.equal(patched.data?.sync_interval_minutes.value, 30);

    const seen = await api.GET("/api/v1/users/{id}/settings/microsoft", {
      params: { path: { id: user.data.id } },
    });
    assert.ok(seen.data);
    assert.equal(seen.data.scope, "user");
    assert.deepEqual(seen.data.sync_interval_minutes, {
      value: 30,
      source: "organization",
      overridden: false,
    });
    assert.equal(seen.data.calendar.direction.value, "to_microsoft");

    const removed = await api.DELETE("/api/v1/users/{id}", {
      params: { path: { id: user.data.id } },
    });
    assert.equal(removed.response.status, 204);
    const gone = await api.DELETE("/api/v1/organizations/{id}", {
      params: { path: { id: org.id } },
    });
    assert.equal(gone.response.status, 204);
  });

  test("a stale If-Match is refused with 412", async () => {
    const created = await api.POST("/api/v1/organizations", {
      body: { name: `SDK etag ${randomUUID()}` },
    });
    assert.ok(created.data);
    const id = created.data.id;
    const renamed = await api.PATCH("/api/v1/organizations/{id}", {
      params: { path: { id }, header: { "If-Match": `"${created.data.version}"` } },
      body: { name: `SDK renamed ${randomUUID()}` },
    });
    assert.equal(renamed.response.status, 200);
    const stale = await api.PATCH("/api/v1/organizations/{id}", {
      params: { path: { id }, header: { "If-Match": `"${created.data.version}"` } },
      body: { name: `SDK stale ${randomUUID()}` },
    });
    assert.equal(stale.response.status, 412);
    assert.equal(stale.error?.code, "precondition_failed");
    await api.DELETE("/api/v1/organizations/{id}", { params: { path: { id } } });
  });

  test("lists organizations a page at a time", async () => {
    const names = [randomUUID(), randomUUID()].map((n) => `SDK page ${n}`);
    const ids: string[] = [];
    for (const name of names) {
      const { data } = await api.POST("/api/v1/organizations", { body: { name } });
      assert.ok(data);
      ids.push(data.id);
    }
    const first = await api.GET("/api/v1/organizations", { params: { query: { limit: 1 } } });
    assert.ok(first.data);
    assert.equal(first.data.items.length, 1);
    assert.ok(first.data.next_cursor);
    const second = await api.GET("/api/v1/organizations", {
      params: { query: { limit: 1, cursor: first.data.next_cursor } },
    });
    assert.ok(second.data);
    assert.notEqual(second.data.items[0]?.id, first.data.items[0]?.id);
    for (const id of ids) {
      await api.DELETE("/api/v1/organizations/{id}", { params: { path: { id } } });
    }
  });

  test("an unknown id answers 404 not_found", async () => {
    const { data, error, response } = await api.GET("/api/v1/organizations/{id}", {
      params: { path: { id: "01890000-0000-7000-8000-000000000000" } },
    });
    assert.equal(data, undefined);
    assert.equal(response.status, 404);
    assert.equal(error?.code, "not_found");
  });

  test("an API key works until it is revoked, and a retried create is replayed", async () => {
    const key = `sdk-${randomUUID()}`;
    const body = { name: `SDK key ${randomUUID()}` };
    const created = await api.POST("/api/v1/api-keys", {
      params: { header: { "Idempotency-Key": key } },
      body,
    });
    assert.equal(created.response.status, 201);
    assert.ok(created.data);
    assert.ok(created.data.secret.startsWith("m365s_"));
    const again = await api.POST("/api/v1/api-keys", {
      params: { header: { "Idempotency-Key": key } },
      body,
    });
    assert.equal(again.response.headers.get("idempotent-replayed"), "true");
    assert.equal(again.data?.id, created.data.id);

    const withKey = createM365SyncClient({ baseUrl: baseUrl ?? "", apiKey: created.data.secret });
    const listed = await withKey.GET("/api/v1/organizations");
    assert.equal(listed.response.status, 200);

    const revoked = await api.DELETE("/api/v1/api-keys/{id}", {
      params: { path: { id: created.data.id } },
    });
    assert.equal(revoked.response.status, 204);
    const refused = await withKey.GET("/api/v1/organizations");
    assert.equal(refused.response.status, 401);
    assert.equal(refused.error?.code, "invalid_token");
  });
});
