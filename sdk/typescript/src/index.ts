/**
 * Client of the m365-sync REST API.
 *
 * The types in `schema.d.ts` are generated from `openapi/openapi.json` by openapi-typescript
 * (`sdk/generate`); requests go through openapi-fetch, so every path, parameter, body and
 * response is checked against the document at compile time.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export {
  WEBHOOK_SECRET_PREFIX,
  WEBHOOK_TOLERANCE_SECONDS,
  WebhookVerificationError,
  signWebhook,
  verifyWebhook,
  type VerifyWebhookOptions,
  type WebhookErrorReason,
  type WebhookHeaders,
} from "./webhooks.js";

/** An RFC 9457 problem, the body of every error response. */
export type Problem = components["schemas"]["Problem"];

/** A typed client of every operation of the API. */
export type M365SyncClient = Client<paths>;

/** Options of {@link createM365SyncClient}. */
export interface M365SyncClientOptions {
  /** Where the service listens, for example `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An access token from `POST /api/v1/auth/token`, sent as `Authorization: Bearer`. */
  token?: string;
  /**
   * An API key (`m365s_…`, from `POST /api/v1/api-keys`), sent as `Authorization: Bearer`:
   * for back ends, which keep a key rather than a person's password. Give `token` or `apiKey`.
   */
  apiKey?: string;
  /** A `fetch` implementation (default: the global one). */
  fetch?: (input: Request) => Promise<Response>;
}

/** What every API key starts with. */
export const API_KEY_PREFIX = "m365s_";

/** Content type of every `PATCH` body: a JSON merge patch (RFC 7396). */
export const MERGE_PATCH = "application/merge-patch+json";

/**
 * Creates a client. `PATCH` requests are sent as JSON merge patches.
 *
 * ```ts
 * const api = createM365SyncClient({ baseUrl: "http://127.0.0.1:8080", token });
 * const { data, error } = await api.GET("/api/v1/users/{id}/settings/microsoft", {
 *   params: { path: { id: userId } },
 * });
 * ```
 */
export function createM365SyncClient(options: M365SyncClientOptions): M365SyncClient {
  if (options.token !== undefined && options.apiKey !== undefined) {
    throw new Error("give either `token` or `apiKey`, not both");
  }
  if (options.apiKey !== undefined && !options.apiKey.startsWith(API_KEY_PREFIX)) {
    throw new Error(`an API key starts with \`${API_KEY_PREFIX}\``);
  }
  const bearer = options.token ?? options.apiKey;
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const middleware: Middleware = {
    onRequest({ request }) {
      if (bearer !== undefined && !request.headers.has("authorization")) {
        request.headers.set("authorization", `Bearer ${bearer}`);
      }
      if (request.method === "PATCH") {
        request.headers.set("content-type", MERGE_PATCH);
      }
      return request;
    },
  };
  client.use(middleware);
  return client;
}

/**
 * Signs in with an e-mail and password and returns a client that sends the access token.
 *
 * @throws Error carrying the problem's `code` when the credentials are refused.
 */
export async function signIn(
  baseUrl: string,
  email: string,
  password: string,
): Promise<M365SyncClient> {
  const anonymous = createM365SyncClient({ baseUrl });
  const { data, error } = await anonymous.POST("/api/v1/auth/token", {
    body: { email, password },
  });
  if (data === undefined) {
    throw new Error(`sign-in refused: ${error?.code ?? "unknown"}`);
  }
  return createM365SyncClient({ baseUrl, token: data.access_token });
}
