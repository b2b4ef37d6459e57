//! Item bodies (`microsoft.graph.itemBody`) in the format a client asks for. A body is stored as
//! the client wrote it (`contentType` and content, byte for byte); reads convert it:
//! `Prefer: outlook.body-content-type="text"` turns HTML into text, `="html"` (and no
//! preference, Graph's default for events) turns text into HTML, and an HTML fragment is shown
//! inside the document wrapper Exchange puts around event bodies.

use crate::time::BodyType;
use serde_json::{Value, json};

/// The head Exchange writes before an HTML event body (user-post-events.md example).
const HTML_HEAD: &str = "<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n";
/// What follows the body.
const HTML_TAIL: &str = "\r\n</body>\r\n</html>\r\n";

/// Elements whose content is not text.
const SKIPPED: &[&str] = &["head", "script", "style", "title"];
/// Elements that start and end a line of text.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "dd",
    "div",
    "dl",
    "dt",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// A stored body as a read with `want` returns it.
pub(crate) fn shown_as(body: &Value, want: BodyType) -> Value {
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    let stored = body.get("contentType").and_then(Value::as_str);
    let is_html = stored.is_none_or(|t| t.eq_ignore_ascii_case("html"));
    let content = match (is_html, want) {
        (true, BodyType::Html) => html_document(content),
        (true, BodyType::Text) => html_to_text(content),
        (false, BodyType::Html) => text_to_html(content),
        (false, BodyType::Text) => content.to_owned(),
    };
    json!({"contentType": want.name(), "content": content})
}

/// `bodyPreview`: the first 255 characters of the body's text, white space collapsed.
pub(crate) fn preview(body: &Value) -> String {
    let text = shown_as(body, BodyType::Text);
    let words: Vec<&str> = text["content"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    words.join(" ").chars().take(255).collect()
}

/// An HTML body as Exchange returns it: a fragment inside its document wrapper, a whole
/// document (or an empty body) unchanged.
pub(crate) fn html_document(content: &str) -> String {
    let head = content.trim_start();
    if content.is_empty()
        || head
            .get(..5)
            .is_some_and(|h| h.eq_ignore_ascii_case("<html"))
    {
        content.to_owned()
    } else {
        format!("{HTML_HEAD}{content}{HTML_TAIL}")
    }
}

/// A text body as HTML: escaped, each line break a `<br>`, inside the document wrapper.
pub(crate) fn text_to_html(content: &str) -> String {
    if content.is_empty() {
        return String::new();
    }
    let mut escaped = String::with_capacity(content.len() + 16);
    for c in content.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(c),
        }
    }
    let lines: Vec<&str> = escaped
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    format!("{HTML_HEAD}{}{HTML_TAIL}", lines.join("<br>\r\n"))
}

/// The text of an HTML body, as a browser would lay it out in plain text: tags dropped (with
/// `head`, `script` and `style` contents), runs of white space in the source one space,
/// `<br>` and block elements line breaks, character references decoded (`&nbsp;` a space).
pub(crate) fn html_to_text(content: &str) -> String {
    let mut out = Text::default();
    let lower = content.to_ascii_lowercase();
    let mut i = 0;
    let mut pre = 0usize;
    while i < content.len() {
        let rest = &content[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with('<') {
            // A tag the content ends inside is dropped, as a browser drops it.
            let Some(end) = rest.find('>').map(|e| e + 1) else {
                break;
            };
            let tag = &lower[i + 1..i + end - 1];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            i += end;
            if SKIPPED.contains(&name.as_str()) && !closing {
                let close = format!("</{name}");
                i = lower[i..].find(&close).map_or(content.len(), |p| i + p);
                continue;
            }
            if name == "br" {
                out.newline(true);
            } else if BLOCKS.contains(&name.as_str()) {
                out.newline(false);
                if name == "pre" {
                    pre = if closing {
                        pre.saturating_sub(1)
                    } else {
                        pre + 1
                    };
                }
            }
            continue;
        }
        if rest.starts_with('&')
            && let Some((decoded, used)) = entity(rest)
        {
            out.push_literal(decoded);
            i += used;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if pre > 0 && c == '\n' {
            out.newline(true);
        } else if c.is_ascii_whitespace() && pre == 0 {
            out.space();
        } else if c != '\r' {
            out.push_literal(c);
        }
        i += c.len_utf8();
    }
    out.finish()
}

/// Text being laid out.
#[derive(Default)]
struct Text {
    out: String,
    /// A space is due before the next character (collapsed white space).
    space: bool,
}

impl Text {
    fn push_literal(&mut self, c: char) {
        if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push(c);
    }

    fn space(&mut self) {
        self.space = true;
    }

    /// A line break; a block boundary (`forced` false) adds none at the start of a line.
    fn newline(&mut self, forced: bool) {
        self.space = false;
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if forced || (!self.out.is_empty() && !self.out.ends_with('\n')) {
            self.out.push('\n');
        }
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        lines.join("\n").trim().to_owned()
    }
}

/// Decodes the character reference at the start of `s`: the character and the bytes used.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s
        .char_indices()
        .take(12)
        .find(|(_, c)| *c == ';')
        .map(|(i, _)| i)?;
    let name = &s[1..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            match char::from_u32(code)? {
                '\u{a0}' => ' ',
                c => c,
            }
        }
    };
    Some((c, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text_with_line_breaks_and_decoded_entities() {
        let cases = [
            ("<b>Bold</b> text", "Bold text"),
            (
                "Fish &amp; chips&nbsp;&nbsp;for&#160;two &lt;3 &#x41;",
                "Fish & chips  for two <3 A",
            ),
            (
                "line one<br>line two<br/>line three",
                "line one\nline two\nline three",
            ),
            (
                "<p>First</p><p>Second</p><div>Third</div>",
                "First\nSecond\nThird",
            ),
            (
                "<html><head><style>p{}</style><title>T</title></head><body>\r\n<p>Hi\r\n  there</p>\r\n</body></html>",
                "Hi there",
            ),
            ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
            ("keep &unknown; as is", "keep &unknown; as is"),
            ("<!-- note --> after", "after"),
            ("<pre>a  b\nc</pre>", "a  b\nc"),
        ];
        for (html, text) in cases {
            assert_eq!(html_to_text(html), text, "{html}");
        }
    }

    #[test]
    fn text_becomes_escaped_html_and_back() {
        let text = "Fish & chips <tonight>\n\"Bring\" a friend";
        let html = text_to_html(text);
        assert!(html.starts_with("<html>"), "{html}");
        assert!(
            html.contains("Fish &amp; chips &lt;tonight&gt;<br>\r\n&quot;Bring&quot; a friend"),
            "{html}"
        );
        assert_eq!(html_to_text(&html), text);
    }

    #[test]
    fn fragments_get_the_exchange_wrapper_and_documents_stay_as_they_are() {
        let wrapped = html_document("<p>Hi</p>");
        assert!(
            wrapped.starts_with("<html>") && wrapped.contains("<body>\r\n<p>Hi</p>\r\n</body>")
        );
        let doc = "  <HTML><body>x</body></HTML>";
        assert_eq!(html_document(doc), doc);
        assert_eq!(html_document(""), "");
    }
}
