/**
 * Verifying webhooks signed per the Standard Webhooks specification
 * (https://www.standardwebhooks.com): each request carries `webhook-id`, `webhook-timestamp`
 * (seconds since the epoch) and `webhook-signature`, a space-separated list of `v1,<base64>`
 * signatures, one of which must be the base64 of HMAC-SHA256(key, `${id}.${timestamp}.${body}`),
 * where the key is the base64 after the `whsec_` of the endpoint's secret. Timestamps more than
 * five minutes away from now are refused, so that a captured request cannot be replayed later.
 *
 * Uses node's `crypto` only.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** How far a webhook's timestamp may be from now, in seconds (either way). */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

/** What the secret of an endpoint starts with. */
export const WEBHOOK_SECRET_PREFIX = "whsec_";

/** Why a webhook is refused. */
export type WebhookErrorReason =
  | "invalid_secret"
  | "missing_header"
  | "invalid_timestamp"
  | "too_old"
  | "too_new"
  | "no_matching_signature";

/** A webhook that did not verify. */
export class WebhookVerificationError extends Error {
  constructor(
    public readonly reason: WebhookErrorReason,
    message: string,
  ) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** The headers of a webhook request: a `Headers` object or a plain record (any case). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() === name) {
      return Array.isArray(value) ? value[0] : value;
    }
  }
  return undefined;
}

function decodeSecret(secret: string): Buffer {
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX)
    ? secret.slice(WEBHOOK_SECRET_PREFIX.length)
    : secret;
  if (encoded.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
    throw new WebhookVerificationError("invalid_secret", "the webhook secret is not `whsec_` + base64");
  }
  return Buffer.from(encoded, "base64");
}

function tag(key: Buffer, id: string, timestamp: string, body: string | Uint8Array): Buffer {
  const mac = createHmac("sha256", key);
  mac.update(`${id}.${timestamp}.`);
  mac.update(body);
  return mac.digest();
}

/** The `webhook-signature` value (`v1,<base64>`) of a message: what a sender sends. */
export function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string | Uint8Array,
): string {
  return `v1,${tag(decodeSecret(secret), id, String(timestamp), body).toString("base64")}`;
}

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** The current time in seconds since the epoch (default: now). */
  now?: number;
}

/**
 * Verifies a webhook: its headers and its raw body (the exact bytes or text received, before
 * any JSON parsing). Returns normally when one `v1` signature matches (compared in constant
 * time) and the timestamp is within five minutes of now.
 *
 * ```ts
 * verifyWebhook(process.env.WEBHOOK_SECRET!, request.headers, rawBody);
 * ```
 *
 * @throws WebhookVerificationError otherwise.
 */
export function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array,
  options: VerifyWebhookOptions = {},
): void {
  const key = decodeSecret(secret);
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  for (const [name, value] of [
    ["webhook-id", id],
    ["webhook-timestamp", timestamp],
    ["webhook-signature", signatures],
  ] as const) {
    if (value === undefined) {
      throw new WebhookVerificationError("missing_header", `the \`${name}\` header is missing`);
    }
  }
  const sent = timestamp!.trim();
  if (!/^\d+$/.test(sent)) {
    throw new WebhookVerificationError("invalid_timestamp", "`webhook-timestamp` is not a number");
  }
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const at = Number(sent);
  if (at < now - WEBHOOK_TOLERANCE_SECONDS) {
    throw new WebhookVerificationError("too_old", "the webhook's timestamp is too old");
  }
  if (at > now + WEBHOOK_TOLERANCE_SECONDS) {
    throw new WebhookVerificationError("too_new", "the webhook's timestamp is too far in the future");
  }
  const expected = tag(key, id!, sent, body);
  const matches = signatures!.split(" ").some((candidate) => {
    if (!candidate.startsWith("v1,")) {
      return false;
    }
    const given = Buffer.from(candidate.slice(3), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) {
    throw new WebhookVerificationError("no_matching_signature", "no signature matches");
  }
}
