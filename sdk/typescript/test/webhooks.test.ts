// The webhook verifier against the Standard Webhooks reference vector (no server needed).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { WebhookVerificationError, signWebhook, verifyWebhook } from "../src/index.js";

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const timestamp = 1614265330;
const body = '{"test": 2432232314}';
const signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const headers = (overrides: Record<string, string | undefined> = {}) => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": signature,
  ...overrides,
});

const refusal = (fn: () => void): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WebhookVerificationError, String(e));
    return e.reason;
  }
  assert.fail("expected the webhook to be refused");
};

describe("webhook verification", () => {
  test("signs the reference vector, with or without the whsec_ prefix", () => {
    assert.equal(signWebhook(secret, id, timestamp, body), signature);
    assert.equal(signWebhook(secret.slice(6), id, timestamp, body), signature);
    assert.equal(signWebhook(secret, id, timestamp, new TextEncoder().encode(body)), signature);
  });

  test("accepts the reference vector, alone or among other signatures, as a record or Headers", () => {
    verifyWebhook(secret, headers(), body, { now: timestamp });
    const several = `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,${signature.slice(3)} ${signature}`;
    verifyWebhook(secret, headers({ "webhook-signature": several }), body, { now: timestamp + 299 });
    verifyWebhook(secret, new Headers(headers()), body, { now: timestamp });
    const now = Math.floor(Date.now() / 1000);
    verifyWebhook(secret, headers({
      "webhook-timestamp": String(now),
      "webhook-signature": signWebhook(secret, id, now, body),
    }), body);
  });

  test("refuses tampering, stale or future timestamps and missing headers", () => {
    const at = { now: timestamp };
    assert.equal(refusal(() => verifyWebhook(secret, headers(), '{"test": 2432232315}', at)), "no_matching_signature");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-id": "msg_other" }), body, at)), "no_matching_signature");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-signature": signature.replace("v1,", "v2,") }), body, at)), "no_matching_signature");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-signature": signature.slice(0, 8) }), body, at)), "no_matching_signature");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-signature": "v1," }), body, at)), "no_matching_signature");
    assert.equal(refusal(() => verifyWebhook(secret, headers(), body, { now: timestamp + 301 })), "too_old");
    assert.equal(refusal(() => verifyWebhook(secret, headers(), body, { now: timestamp - 301 })), "too_new");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-timestamp": "hello" }), body, at)), "invalid_timestamp");
    assert.equal(refusal(() => verifyWebhook(secret, headers({ "webhook-id": undefined }), body, at)), "missing_header");
    assert.equal(refusal(() => verifyWebhook("whsec_!!", headers(), body, at)), "invalid_secret");
  });
});
