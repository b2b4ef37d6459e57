//! Event bodies: stored as written, shown in the format `Prefer: outlook.body-content-type`
//! asks for (HTML by default), with `Preference-Applied` and a `bodyPreview` from the text.

use crate::helpers::{TestCtx, enc};
use reqwest::Method;
use serde_json::{Value, json};

const TEXT: &str = "  Fish & chips <tonight>\r\n\n\tBring \"friends\"  ";
const HTML: &str = "<p>Fish &amp; chips</p>\n<p>for&nbsp;two<br>at  <b>eight</b></p>";

async fn create(ctx: &TestCtx, content_type: &str, content: &str) -> String {
    let resp = ctx
        .post(
            "/me/events",
            json!({
                "subject": "Dinner",
                "body": {"contentType": content_type, "content": content},
                "start": {"dateTime": "2026-03-02T18:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-03-02T20:00:00", "timeZone": "UTC"},
            }),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    format!("/me/events/{}", enc(resp.body["id"].as_str().expect("id")))
}

async fn read(ctx: &TestCtx, path: &str, wanted: Option<&str>) -> (Value, Option<String>) {
    let pref = wanted.map(|w| format!("outlook.body-content-type=\"{w}\""));
    let headers: Vec<(&str, &str)> = pref.iter().map(|p| ("Prefer", p.as_str())).collect();
    let resp = ctx.call(Method::GET, path, None, &headers).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let applied = resp.header("preference-applied");
    (resp.body, applied)
}

#[tokio::test]
async fn a_text_body_comes_back_byte_for_byte_as_text_and_escaped_as_html() {
    let ctx = TestCtx::new().await;
    let path = create(&ctx, "text", TEXT).await;
    let (text, applied) = read(&ctx, &path, Some("text")).await;
    assert_eq!(
        text["body"],
        json!({"contentType": "text", "content": TEXT})
    );
    assert_eq!(
        applied.as_deref(),
        Some("outlook.body-content-type=\"text\"")
    );
    assert_eq!(
        text["bodyPreview"],
        "Fish & chips <tonight> Bring \"friends\""
    );

    for wanted in [None, Some("html")] {
        let (html, applied) = read(&ctx, &path, wanted).await;
        assert_eq!(html["body"]["contentType"], "html", "{wanted:?}");
        let content = html["body"]["content"].as_str().expect("content");
        assert!(
            content.starts_with("<html>") && content.ends_with("</html>\r\n"),
            "{content}"
        );
        assert!(
            content.contains(
                "Fish &amp; chips &lt;tonight&gt;<br>\r\n<br>\r\n\tBring &quot;friends&quot;"
            ),
            "{content}"
        );
        assert_eq!(
            applied.as_deref(),
            wanted.map(|_| "outlook.body-content-type=\"html\""),
            "Preference-Applied only when asked"
        );
    }
    let stored = ctx.emu.outlook().list_events(&ctx.user.id).expect("listed");
    assert_eq!(
        stored[0]["body"],
        json!({"contentType": "text", "content": TEXT}),
        "the control API shows the body as stored"
    );
}

#[tokio::test]
async fn an_html_body_is_kept_and_converted_to_text_on_request() {
    let ctx = TestCtx::new().await;
    let path = create(&ctx, "HTML", HTML).await;
    let (text, _) = read(&ctx, &path, Some("text")).await;
    assert_eq!(
        text["body"],
        json!({"contentType": "text", "content": "Fish & chips\nfor two\nat eight"})
    );
    assert_eq!(text["bodyPreview"], "Fish & chips for two at eight");
    let (html, _) = read(&ctx, &path, None).await;
    let content = html["body"]["content"].as_str().expect("content");
    assert!(
        content.contains(&format!("<body>\r\n{HTML}\r\n</body>")),
        "the fragment, byte for byte, in Exchange's wrapper: {content}"
    );
    let stored = ctx.emu.outlook().list_events(&ctx.user.id).expect("listed");
    assert_eq!(
        stored[0]["body"],
        json!({"contentType": "html", "content": HTML})
    );

    let document = "<html><head><style>p{color:red}</style></head><body><div>a</div><div>b</div></body></html>";
    let doc_path = create(&ctx, "html", document).await;
    let (html, _) = read(&ctx, &doc_path, Some("html")).await;
    assert_eq!(
        html["body"]["content"], document,
        "a whole document stays as it is"
    );
    let (text, _) = read(&ctx, &doc_path, Some("text")).await;
    assert_eq!(text["body"]["content"], "a\nb");
}

#[tokio::test]
async fn views_and_delta_show_bodies_in_the_asked_format() {
    let ctx = TestCtx::new().await;
    create(&ctx, "html", HTML).await;
    let window = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";
    for path in [
        format!("/me/calendarView?{window}"),
        format!("/me/calendarView/delta?{window}"),
        "/me/events".to_owned(),
    ] {
        let resp = ctx
            .call(
                Method::GET,
                &path,
                None,
                &[("Prefer", "outlook.body-content-type=\"text\"")],
            )
            .await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(
            resp.body["value"][0]["body"]["content"], "Fish & chips\nfor two\nat eight",
            "{path}"
        );
        assert!(
            resp.header("preference-applied")
                .is_some_and(|h| h.contains("outlook.body-content-type=\"text\"")),
            "{path}"
        );
    }
}
