//! Test helpers: an emulator with an app and a signed-in user, and a Graph client whose every
//! response body is validated against graph-subset.yaml (errors against the error schema).

use crate::schema;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use graph_emulator::{App, AppSpec, Emulator, MailboxUser, UserSpec};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const REDIRECT: &str = "http://localhost:8080/callback";
pub const SCOPES: &str =
    "openid profile offline_access User.Read Calendars.ReadWrite Tasks.ReadWrite";
pub const VERIFIER: &str = "a-long-enough-code-verifier-0123456789-abcdefghijklmnop";

/// A client that does not follow redirects (the authorize endpoint answers with them).
pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

pub struct TestCtx {
    pub emu: Emulator,
    pub http: Client,
    pub app: App,
    pub user: MailboxUser,
    pub token: String,
    pub refresh_token: String,
}

/// Percent-encodes an ID for a path segment.
pub fn enc(id: &str) -> String {
    id.replace('%', "%25")
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D")
}

impl TestCtx {
    /// An emulator, an app, a user "adele" and tokens from a full authorization code flow.
    pub async fn new() -> Self {
        let emu = Emulator::start().await;
        let app = emu.create_app(AppSpec {
            redirect_uris: vec![REDIRECT.into()],
            ..Default::default()
        });
        let user = emu
            .create_user(UserSpec {
                user_principal_name: "adele@contoso.com".into(),
                display_name: "Adele Vance".into(),
                mail: Some("AdeleV@contoso.com".into()),
                ..Default::default()
            })
            .expect("user is created");
        let http = client();
        let mut ctx = Self {
            emu,
            http,
            app,
            user,
            token: String::new(),
            refresh_token: String::new(),
        };
        let code = ctx.authorize_code(&[]).await;
        let tokens = ctx.redeem(&code, VERIFIER).await;
        assert_eq!(tokens.status, 200, "{}", tokens.body);
        ctx.token = tokens.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        ctx.refresh_token = tokens.body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned();
        ctx
    }

    /// Another mailbox user, signed in with the same app: the user and an access token.
    pub async fn other_user(
        &self,
        upn: &str,
        mail: Option<&str>,
        name: &str,
    ) -> (MailboxUser, String) {
        let user = self
            .emu
            .create_user(UserSpec {
                user_principal_name: upn.into(),
                display_name: name.into(),
                mail: mail.map(str::to_owned),
                ..Default::default()
            })
            .expect("user is created");
        let code = self.authorize_code(&[("login_hint", upn)]).await;
        let tokens = self.redeem(&code, VERIFIER).await;
        assert_eq!(tokens.status, 200, "{}", tokens.body);
        let token = tokens.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        (user, token)
    }

    pub fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("client_id", self.app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", SCOPES),
            ("state", "xyz"),
            ("login_hint", "adele@contoso.com"),
            ("code_challenge_method", "S256"),
        ];
        let ch = challenge(VERIFIER);
        params.push(("code_challenge", ch.as_str()));
        for (k, v) in extra {
            params.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let qs: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        format!(
            "{}/{}/oauth2/v2.0/authorize?{}",
            self.emu.url(),
            self.app.tenant_id,
            qs.join("&")
        )
    }

    /// Runs authorize and returns the code from the redirect.
    pub async fn authorize_code(&self, extra: &[(&str, &str)]) -> String {
        let resp = self
            .http
            .get(self.authorize_url(extra))
            .send()
            .await
            .expect("authorize answers");
        assert_eq!(resp.status(), 302);
        let location = resp.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let url = reqwest::Url::parse(&location).expect("redirect parses");
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code in redirect")
    }

    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.emu.url(),
            self.app.tenant_id
        )
    }

    pub async fn token_request(&self, form: &[(&str, &str)]) -> Resp {
        let resp = self
            .http
            .post(self.token_url())
            .form(form)
            .send()
            .await
            .expect("token answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.expect("token body is JSON");
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn redeem(&self, code: &str, verifier: &str) -> Resp {
        self.token_request(&[
            ("client_id", &self.app.client_id),
            ("client_secret", &self.app.client_secret),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("scope", SCOPES),
        ])
        .await
    }

    /// A Graph call with the test user's token; the body is validated against the schema.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.call_with(&self.token, method, path, body, headers)
            .await
    }

    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.emu.url())
        };
        let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("graph answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body reads");
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("body is JSON")
        };
        let parsed = reqwest::Url::parse(&url).expect("url parses");
        let segments = graph_segments(parsed.path());
        check_body(method.as_str(), &segments, status.as_u16(), &body);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None, &[]).await
    }

    /// Creates an event through Graph and returns it.
    pub async fn create_event(&self, subject: &str, start: &str, end: &str) -> Value {
        let resp = self
            .post(
                "/me/events",
                serde_json::json!({
                    "subject": subject,
                    "start": {"dateTime": start, "timeZone": "UTC"},
                    "end": {"dateTime": end, "timeZone": "UTC"},
                }),
            )
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        resp.body
    }
}

/// Decoded path segments after `/v1.0`.
pub fn graph_segments(path: &str) -> Vec<String> {
    path.trim_start_matches("/v1.0")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_encoding_decode)
        .collect()
}

fn percent_encoding_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Validates a Graph body (and each `$batch` item's body) against its schema.
pub fn check_body(method: &str, segments: &[String], status: u16, body: &Value) {
    if segments.len() == 1 && segments[0] == "$batch" && status == 200 {
        return;
    }
    let Some(schema) = schema::for_response(method, segments, status) else {
        return;
    };
    let errs = schema::validate(&schema, body);
    assert!(
        errs.is_empty(),
        "{method} /{} ({status}) violates the schema: {errs:#?}\n{body:#}",
        segments.join("/")
    );
    if !(200..300).contains(&status) {
        let inner = &body["error"]["innerError"];
        for k in ["date", "request-id", "client-request-id"] {
            assert!(inner[k].is_string(), "error innerError lacks {k}: {body}");
        }
    }
}

/// Validates every item of a `$batch` response against the schema of its own request.
pub fn check_batch(requests: &Value, response: &Value) {
    for item in response["responses"].as_array().expect("responses array") {
        let id = item["id"].as_str().expect("item id");
        let req = requests["requests"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == id))
            .expect("item matches a request");
        let url = req["url"].as_str().expect("url");
        let path = url.split('?').next().unwrap_or(url);
        let status = item["status"].as_u64().expect("status") as u16;
        if status == 204 || status == 202 {
            continue;
        }
        check_body(
            req["method"].as_str().expect("method"),
            &graph_segments(path),
            status,
            &item["body"],
        );
    }
}
