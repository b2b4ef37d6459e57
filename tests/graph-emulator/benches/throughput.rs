//! Throughput of simple authenticated GETs (`GET /v1.0/me`) against an in-process emulator on
//! loopback, so that it is known never to be the bottleneck of the service's benchmarks.
//!
//! `cargo bench -p graph-emulator --bench throughput [-- SECONDS CONNECTIONS]` (defaults: 5 s,
//! 64 connections). The client is a minimal HTTP/1.1 keep-alive loop over raw TCP so that it
//! costs less CPU than the server it measures.

#![expect(clippy::expect_used, reason = "a benchmark stops at the first failure")]

use graph_emulator::{AppSpec, Emulator, Options, UserSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REDIRECT: &str = "http://localhost/callback";

/// Signs the user in through authorize and token, and returns the access token.
async fn access_token(emu: &Emulator) -> String {
    let app = emu.create_app(AppSpec {
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    });
    emu.create_user(UserSpec {
        user_principal_name: "bench@contoso.com".into(),
        display_name: "Bench".into(),
        ..Default::default()
    })
    .expect("user");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let authorize = format!(
        "{}/{}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={REDIRECT}&scope=User.Read&login_hint=bench@contoso.com",
        emu.url(),
        app.tenant_id,
        app.client_id
    );
    let resp = http.get(authorize).send().await.expect("authorize");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let code = reqwest::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let token: serde_json::Value = http
        .post(format!("{}/{}/oauth2/v2.0/token", emu.url(), app.tenant_id))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// One keep-alive connection sending GETs until `stop`; counts 200 responses.
async fn connection(
    addr: String,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
) {
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(&request).await.expect("write");
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "server closed the connection");
            filled += n;
            let Some(head_end) = find(&buf[..filled], b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&buf[..head_end]).expect("ascii head");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().expect("length"))
                })
                .expect("content-length");
            if filled >= head_end + 4 + length {
                if head.starts_with("HTTP/1.1 200") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let emu = Emulator::start_with(Options { workers, ..Options::default() }).await.expect("emulator");
        emu.update_config(|c| {
            c.throttle_requests = u64::MAX;
            c.throttle_concurrent = u32::MAX;
        });
        let token = access_token(&emu).await;
        let addr = emu.url().trim_start_matches("http://").to_owned();
        let request = Arc::new(format!("GET /v1.0/me HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes());
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(addr.clone(), Arc::clone(&request), Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&bad))))
            .collect();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let done = ok.load(Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        println!(
            "GET /v1.0/me: {done} OK, {} non-200 in {elapsed:.1} s over {connections} connections, {workers} server workers: {:.0} requests/s",
            bad.load(Ordering::Relaxed),
            done as f64 / elapsed
        );
    });
}
