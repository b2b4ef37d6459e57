//! Descriptions as plain text and as HTML, and the two conversions between them.
//!
//! Graph gives an event's body as HTML (its default, and Outlook's own format). The API shows
//! it as it is (`description_html`) and as the text a person reads in it (`description`,
//! [`html_to_text`]). Text given for an HTML body becomes HTML with [`text_to_html`], which
//! [`html_to_text`] reads back to the very same text: every line a paragraph, white space kept
//! (`&nbsp;` where HTML would collapse it).

use std::fmt::Write as _;

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
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// The document [`text_to_html`] writes a paragraph list into.
const HEAD: &str = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; \
                    charset=utf-8\"></head><body>";
const TAIL: &str = "</body></html>";

/// A description as kept: as given, white space included; `None` when blank.
pub fn given(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

/// Text as an HTML document: each line a paragraph (`<p>`, an empty line an empty one),
/// characters escaped, and every space HTML would collapse or drop written `&nbsp;`, so that
/// [`html_to_text`] gives the text back unchanged.
pub fn text_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + HEAD.len() + TAIL.len() + 16);
    out.push_str(HEAD);
    for line in text.split('\n') {
        out.push_str("<p>");
        let chars: Vec<char> = line.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                ' ' => {
                    // A space stays a space only between two characters that are not white
                    // space: elsewhere HTML would collapse or drop it.
                    let lone = i > 0
                        && i + 1 < chars.len()
                        && !chars[i - 1].is_whitespace()
                        && !chars[i + 1].is_whitespace();
                    out.push_str(if lone { " " } else { "&nbsp;" });
                }
                c if c.is_ascii_whitespace() || c.is_control() => {
                    let _ = write!(out, "&#{};", u32::from(*c));
                }
                c => out.push(*c),
            }
        }
        out.push_str("</p>");
    }
    out.push_str(TAIL);
    out
}

/// The text a person reads in an HTML body, laid out as a browser would in plain text: tags
/// dropped (with the contents of `head`, `script` and `style`), each run of white space in the
/// source one space, `<br>`, paragraphs and other blocks line breaks, character references
/// decoded (`&nbsp;` a space).
pub fn html_to_text(html: &str) -> String {
    let mut text = Layout::default();
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let mut pre = 0usize;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with('<')
            && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!')
        {
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
                i = lower[i..].find(&close).map_or(html.len(), |p| i + p);
                continue;
            }
            match name.as_str() {
                "br" => text.line_break(),
                "p" if closing => text.end_paragraph(),
                "p" => text.start_paragraph(),
                _ if BLOCKS.contains(&name.as_str()) => {
                    text.block_boundary();
                    if name == "pre" {
                        pre = if closing {
                            pre.saturating_sub(1)
                        } else {
                            pre + 1
                        };
                    }
                }
                _ => {}
            }
            continue;
        }
        if rest.starts_with('&')
            && let Some((decoded, used)) = entity(rest)
        {
            text.push(decoded);
            i += used;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if pre > 0 && c == '\n' {
            text.line_break();
        } else if c.is_ascii_whitespace() && pre == 0 {
            text.space();
        } else if c != '\r' {
            text.push(c);
        }
        i += c.len_utf8();
    }
    text.finish()
}

/// Text being laid out, line by line.
#[derive(Default)]
struct Layout {
    /// Finished lines.
    lines: Vec<String>,
    /// The line being written.
    line: String,
    /// A space is due before the next character (collapsed white space in the source).
    space: bool,
    /// A paragraph is open: its end finishes a line even when it holds nothing.
    paragraph: bool,
}

impl Layout {
    fn push(&mut self, c: char) {
        if self.space && !self.line.is_empty() {
            self.line.push(' ');
        }
        self.space = false;
        self.line.push(c);
    }

    fn space(&mut self) {
        self.space = true;
    }

    /// Ends the line being written.
    fn line_break(&mut self) {
        self.space = false;
        self.lines.push(std::mem::take(&mut self.line));
    }

    /// A block starts or ends: a line with text in it ends; an empty one goes on.
    fn block_boundary(&mut self) {
        self.space = false;
        self.paragraph = false;
        if !self.line.is_empty() {
            self.line_break();
        }
    }

    fn start_paragraph(&mut self) {
        self.block_boundary();
        self.paragraph = true;
    }

    fn end_paragraph(&mut self) {
        if self.paragraph || !self.line.is_empty() {
            self.line_break();
        }
        self.paragraph = false;
    }

    fn finish(mut self) -> String {
        if !self.line.is_empty() {
            self.lines.push(self.line);
        }
        self.lines.join("\n")
    }
}

/// The character a reference at the start of `text` stands for, and its length.
fn entity(text: &str) -> Option<(char, usize)> {
    let end = text.find(';').filter(|&e| e <= 12)?;
    let name = &text[1..end];
    let c = if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        // A no-break space reads as a space.
        if code == 0xa0 {
            ' '
        } else {
            char::from_u32(code)?
        }
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "copy" => '©',
            "reg" => '®',
            "euro" => '€',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            "lsquo" => '‘',
            "rsquo" => '’',
            "ldquo" => '“',
            "rdquo" => '”',
            "bull" => '•',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_back_from_its_html_unchanged() {
        for text in [
            "Agenda",
            "Line one\nLine two",
            "Trailing newline\n",
            "\nLeading newline",
            "Blank lines\n\n\nbetween",
            "  indented and  double  spaced  ",
            "Tabs\tand <tags> & \"quotes\"",
            "Windows\r\nline ends",
            "\n",
            " ",
            "Ünïcødé ✓ 日本語",
        ] {
            assert_eq!(html_to_text(&text_to_html(text)), text, "{text:?}");
        }
    }

    #[test]
    fn text_in_html_is_escaped_in_paragraphs() {
        let html = text_to_html("a < b & c\nnext");
        assert!(
            html.contains("<p>a &lt; b &amp; c</p><p>next</p>"),
            "{html}"
        );
    }

    #[test]
    fn outlook_html_reads_as_its_text() {
        let html = "<html><head><meta charset=\"utf-8\"><style>p {margin:0}</style></head>\
            <body><p><b>Agenda</b></p>\r\n<ol><li>Budget &amp; <i>forecast</i></li>\
            <li><a href=\"https://contoso.example/q3\">Q3 plan</a></li></ol>\
            <p><img src=\"cid:image001.png@01DA\" alt=\"chart\"></p>\r\n\r\n<div>Call&nbsp;&nbsp;me<br>\
            Bob</div><!-- a comment --></body></html>";
        assert_eq!(
            html_to_text(html),
            "Agenda\nBudget & forecast\nQ3 plan\n\nCall  me\nBob"
        );
    }

    #[test]
    fn source_white_space_collapses_and_references_decode() {
        assert_eq!(html_to_text("a \r\n  b&#9;c &#x41; &euro;"), "a b\tc A €");
        assert_eq!(html_to_text("x < y & z"), "x < y & z");
        assert_eq!(
            html_to_text("<pre>  kept\n  as is</pre>"),
            "  kept\n  as is"
        );
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn any_cut_of_html_reads_without_fail() {
        let html = "<p>Prix: 5 € — <b>été</b></p><div>日本<br/>語<!-- note é --></div><aé";
        for (at, _) in html.char_indices() {
            let _ = html_to_text(&html[..at]);
            let _ = html_to_text(&html[at..]);
        }
        assert_eq!(html_to_text("a<bé"), "a");
        assert_eq!(html_to_text("<é"), "<é", "no tag: text");
    }
}
