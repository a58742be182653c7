//! What never reaches a person or a log as it came: signatures, tokens, secrets and URL
//! credentials are masked ([`secrets`], [`url`], [`public_url`], [`url_text`]), and text from
//! outside (server answers, file names) loses its terminal control characters
//! ([`for_terminal`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use url::Url;

/// What stands where a secret was.
pub const MASK: &str = "***";

/// A URL fit for logs: scheme, host, port and path only. Pre-signed URLs carry their signature
/// (and sometimes credentials) in the query, so the query and user info are always dropped.
pub fn url(u: &Url) -> String {
    let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(u.path());
    if u.query().is_some() {
        s.push_str("?…");
    }
    s
}

/// A URL for the audit record and for people: as given, unless it carries credentials (user
/// info, or a query parameter that looks like a signature, token, key or password), which are
/// dropped, the whole query with them (the record must never hold a usable signature).
pub fn public_url(u: &Url) -> String {
    let signed = u.query_pairs().any(|(k, _)| credential_param(&k));
    if signed || !u.username().is_empty() || u.password().is_some() {
        let mut c = u.clone();
        if signed {
            c.set_query(None);
        }
        let _ = c.set_username("");
        let _ = c.set_password(None);
        c.to_string()
    } else {
        u.to_string()
    }
}

/// A URL given as text (a setting), for people: [`public_url`] when it parses, otherwise the
/// text with whatever looks like a credential masked.
pub fn url_text(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) => public_url(&u),
        Err(_) => secrets(s).into_owned(),
    }
}

/// Whether a URL query parameter carries a credential. Broad on purpose: dropping a harmless
/// query from what is shown costs little.
fn credential_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("x-amz-")
        || [
            "sig",
            "token",
            "secret",
            "pass",
            "pwd",
            "credential",
            "auth",
            "key",
            "session",
            "code",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// Whether a `key=value` or `key: value` in free text holds a secret. Narrower than
/// [`credential_param`]: log fields such as `key` (an object key) must stay readable.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "sig"
        || [
            "signature",
            "token",
            "secret",
            "password",
            "passwd",
            "credential",
            "credentials",
            "authorization",
            "cookie",
            "apikey",
            "api_key",
            "api-key",
        ]
        .iter()
        .any(|w| k.ends_with(w))
}

/// Keys whose value runs to the end of the line when it is not quoted: an `Authorization`
/// header value has spaces and commas in it (`AWS4-HMAC-SHA256 Credential=…, Signature=…`).
fn whole_line_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("authorization") || k.ends_with("cookie")
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Ends an unquoted value. Not `%`: a token in a query is percent-encoded (`%2F`, `%3D`).
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace() || b"&\"',;)]}<>\x1b".contains(&b)
}

/// `text` with every secret value masked: query or field values of signature, token, secret,
/// password, credential and authorization keys (`X-Amz-Signature=…`, `"access_token": "…"`,
/// `Authorization: …`), `Bearer …` and `Basic …` credentials, and user info in URLs. Used on
/// every log line and on URLs shown to people; borrows when there is nothing to mask.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        match secret_at(text, i) {
            Some(Found::Mask(start, end)) => {
                out.push_str(&text[copied..start]);
                out.push_str(MASK);
                copied = end;
                i = end;
            }
            Some(Found::Skip(to)) => i = to,
            None => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

enum Found {
    /// A secret at `start..end`.
    Mask(usize, usize),
    /// Nothing to mask up to this index (the end of a word).
    Skip(usize),
}

/// What starts at byte `i`: a secret to mask, or a word to step over. Only ASCII is matched,
/// so every index returned is a character boundary.
fn secret_at(text: &str, i: usize) -> Option<Found> {
    let b = text.as_bytes();
    if b[i..].starts_with(b"://") {
        return userinfo(text, i + 3).map(|end| Found::Mask(i + 3, end));
    }
    if !is_word(b[i]) || (i > 0 && is_word(b[i - 1])) {
        return None;
    }
    let end = (i..b.len()).find(|&j| !is_word(b[j])).unwrap_or(b.len());
    let word = &text[i..end];
    let scheme = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic");
    let found = if scheme {
        scheme_credential(text, end)
    } else if secret_key(word) {
        value_after(text, end, whole_line_key(word)).map(|(start, stop)| Found::Mask(start, stop))
    } else {
        None
    };
    Some(found.unwrap_or(Found::Skip(end)))
}

/// `Bearer <token68>` / `Basic <token68>`: the credential after the scheme.
fn scheme_credential(text: &str, scheme_end: usize) -> Option<Found> {
    let b = text.as_bytes();
    let start = skip(b, scheme_end, |c| c == b' ' || c == b'\t');
    if start == scheme_end {
        return None;
    }
    let token68 = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c);
    let end = skip(b, start, token68);
    (end > start && &text[start..end] != MASK).then_some(Found::Mask(start, end))
}

/// The user info of a URL whose authority starts at `from`: up to its last `@`.
fn userinfo(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let end = skip(b, from, |c| {
        !(c.is_ascii_whitespace() || b"/?#\"'<>".contains(&c))
    });
    let at = text[from..end].rfind('@')? + from;
    (at > from && &text[from..at] != MASK).then_some(at)
}

/// The value after a key: past a closing quote, colour codes and spaces, a `=`, `:` or `%3D`,
/// then past a Debug wrapper (`Some(`), a quoted value (its inside), a whole line, or a run up
/// to a delimiter (`%26` too after `%3D`: a URL inside a URL).
fn value_after(text: &str, key_end: usize, whole_line: bool) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut k = key_end;
    if k < b.len() && (b[k] == b'"' || b[k] == b'\'') {
        k += 1;
    }
    k = skip_blank(text, k);
    let encoded = b[k..]
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"%3d"));
    match b.get(k) {
        Some(b'=') => k += 1,
        Some(b':') if !b[k..].starts_with(b"://") => k += 1,
        _ if encoded => k += 3,
        _ => return None,
    }
    k = skip_blank(text, k);
    let wrapper = skip(b, k, |c| c.is_ascii_alphabetic());
    if b.get(k).is_some_and(u8::is_ascii_uppercase) && b.get(wrapper) == Some(&b'(') {
        k = wrapper + 1;
    }
    let q = *b.get(k)?;
    let (start, end) = if q == b'"' || q == b'\'' {
        (k + 1, closing_quote(b, k + 1, q))
    } else if whole_line {
        (k, skip(b, k, |c| c != b'\n' && c != b'\r'))
    } else {
        let run = skip(b, k, |c| !ends_value(c));
        let nested = encoded.then(|| text[k..run].to_ascii_lowercase().find("%26"));
        (k, k + nested.flatten().unwrap_or(run - k))
    };
    let value = &text[start..end];
    // `token=Bearer x`: leave the scheme, so the credential after it is masked.
    let scheme = value.eq_ignore_ascii_case("bearer") || value.eq_ignore_ascii_case("basic");
    (end > start && value != MASK && !scheme).then_some((start, end))
}

/// The index of the quote that closes a quoted value (backslash escapes skipped), or the end.
fn closing_quote(b: &[u8], from: usize, quote: u8) -> usize {
    let mut j = from;
    while j < b.len() && b[j] != quote {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    j.min(b.len())
}

/// Past spaces and ANSI colour codes (`ESC [ … m`, which a coloured log puts around `=`).
fn skip_blank(text: &str, mut k: usize) -> usize {
    let b = text.as_bytes();
    loop {
        let before = k;
        k = skip(b, k, |c| c == b' ');
        if text[k..].starts_with("\x1b[") {
            let end = skip(b, k + 2, |c| c.is_ascii_digit() || c == b';');
            if b.get(end) == Some(&b'm') {
                k = end + 1;
            }
        }
        if k == before {
            return k;
        }
    }
}

fn skip(b: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    (from..b.len()).find(|&j| !keep(b[j])).unwrap_or(b.len())
}

/// Whether a character must not reach a terminal raw: C0 controls but tab (ESC, CR, BEL,
/// newline, backspace…), DEL, C1 controls (8-bit CSI and OSC), the bidi and line-separator
/// characters that reorder or split what a person reads, and the zero-width characters that
/// hide in it (two names that look the same but differ).
fn unsafe_for_terminal(c: char) -> bool {
    (c.is_control() && c != '\t')
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
        )
}

/// The Unicode bidirectional-control characters: embeddings and overrides (U+202A–U+202E),
/// isolates (U+2066–U+2069) and the marks (U+200E, U+200F, U+061C). In a file name they make
/// `report\u{202e}gnp.pdf` show as "reportfdp.png".
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Text from outside (a server's answer, a file name, a setting) made safe to show: each
/// control character becomes a visible `\u{1b}`, so it cannot move the cursor, clear the
/// screen, retitle the window, hide text or fake a line. A newline is escaped too: one value
/// stays on its line. JSON output does not need this (serde escapes controls).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_for_terminal(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_query_and_userinfo() {
        let u = url::Url::parse("https://user:pw@s3.example/b/k?X-Amz-Signature=abc").unwrap();
        let r = super::url(&u);
        assert_eq!(r, "https://s3.example/b/k?…");
        assert_eq!(super::public_url(&u), "https://s3.example/b/k");
        let plain = url::Url::parse("https://cdn.example/f.png?v=2").unwrap();
        assert_eq!(super::public_url(&plain), "https://cdn.example/f.png?v=2");
    }

    #[test]
    fn public_url_drops_credential_queries_and_userinfo_only() {
        for (given, shown) in [
            (
                "https://h.example/hook?token=abc&v=2",
                "https://h.example/hook",
            ),
            (
                "https://h.example/hook?api_key=abc",
                "https://h.example/hook",
            ),
            (
                "https://h.example/hook?Password=abc",
                "https://h.example/hook",
            ),
            ("https://u:p@h.example/x?v=2", "https://h.example/x?v=2"),
            ("https://h.example/x?page=2", "https://h.example/x?page=2"),
        ] {
            let u = Url::parse(given).unwrap();
            assert_eq!(public_url(&u), shown, "{given}");
        }
        assert_eq!(
            url_text("https://u:pw@h.example:99999x/"),
            "https://***@h.example:99999x/"
        );
    }

    fn masked(line: &str) -> String {
        secrets(line).into_owned()
    }

    #[test]
    fn masks_signed_query_values() {
        let line = "uri: /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026%2Fs3\
                    &X-Amz-Date=20261126T203205Z&X-Amz-Security-Token=FQoG/x+y=\
                    &X-Amz-SignedHeaders=host&X-Amz-Signature=31c5210f, version: HTTP/1.1";
        assert_eq!(
            masked(line),
            "uri: /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***\
             &X-Amz-Date=20261126T203205Z&X-Amz-Security-Token=***\
             &X-Amz-SignedHeaders=host&X-Amz-Signature=***, version: HTTP/1.1"
        );
        assert_eq!(
            masked("?Signature=abc&Expires=1"),
            "?Signature=***&Expires=1"
        );
        assert_eq!(
            masked("a%3FX-Amz-Signature%3Dabcdef%26x"),
            "a%3FX-Amz-Signature%3D***%26x"
        );
    }

    #[test]
    fn masks_tokens_in_json_and_fields() {
        assert_eq!(
            masked(r#"{"access_token":"0123abcd","token_type":"bearer","expires_in":60}"#),
            r#"{"access_token":"***","token_type":"bearer","expires_in":60}"#
        );
        assert_eq!(
            masked(r#"body: "access_token": "a\"b" x"#),
            r#"body: "access_token": "***" x"#
        );
        assert_eq!(
            masked("access_token=abc&scope=x"),
            "access_token=***&scope=x"
        );
        assert_eq!(
            masked("client_secret=s3cr3t grant"),
            "client_secret=*** grant"
        );
        assert_eq!(
            masked("x-gcupload-signature: sha256=ab12"),
            "x-gcupload-signature: ***"
        );
        // Colour codes around `=`, as tracing writes field names on a terminal.
        assert_eq!(
            masked("\x1b[3mtoken\x1b[0m\x1b[2m=\x1b[0mabc next"),
            "\x1b[3mtoken\x1b[0m\x1b[2m=\x1b[0m*** next"
        );
    }

    #[test]
    fn masks_authorization_bearer_and_basic() {
        assert_eq!(
            masked("Authorization: Bearer abc.def"),
            "Authorization: ***"
        );
        assert_eq!(
            masked(
                r#"headers: {"authorization": "AWS4-HMAC-SHA256 Credential=A/b, Signature=f0"}"#
            ),
            r#"headers: {"authorization": "***"}"#
        );
        assert_eq!(
            masked("sent Bearer eyJhbGciOi.x-y_z~ ok"),
            "sent Bearer *** ok"
        );
        assert_eq!(masked("basic dXNlcjpwYXNz=="), "basic ***");
        assert_eq!(masked("token=Bearer abc"), "token=Bearer ***");
        assert_eq!(
            masked(r#"token: Some("abc") ok"#),
            r#"token: Some("***") ok"#
        );
        assert_eq!(
            masked("AUTHORIZATION=Basic Zm9v status=200"),
            "AUTHORIZATION=***"
        );
    }

    #[test]
    fn masks_url_userinfo() {
        assert_eq!(
            masked("url=https://admin:pa55@h.example/x?y"),
            "url=https://***@h.example/x?y"
        );
        assert_eq!(
            masked("see https://h.example/a@b"),
            "see https://h.example/a@b"
        );
    }

    #[test]
    fn leaves_ordinary_lines_alone() {
        for line in [
            "access token obtained expires_in=86400",
            "INFO retrying: HTTP 503 stage=auth correlation_id=\"c-1\"",
            "requesting an access token url=http://127.0.0.1:1/oauth/token",
            "X-Amz-SignedHeaders=content-type%3Bhost key: \"external/a.pdf\"",
            "checked signature v4",
            "token_type=bearer",
            "Basic",
        ] {
            assert!(matches!(secrets(line), Cow::Borrowed(_)), "{line}");
        }
        // Masking is idempotent: a mask is never masked again.
        let once = masked("Bearer abc token=x https://u:p@h/ Authorization: y");
        assert_eq!(masked(&once), once);
    }

    #[test]
    fn terminal_text_shows_controls_escaped() {
        assert_eq!(
            for_terminal("\x1b[2J\x1b]0;pwned\x07 bad\r\n"),
            "\\u{1b}[2J\\u{1b}]0;pwned\\u{7} bad\\u{d}\\u{a}"
        );
        assert_eq!(
            for_terminal("a\u{9b}31m\u{202e}fdp.exe"),
            "a\\u{9b}31m\\u{202e}fdp.exe"
        );
        assert!(matches!(for_terminal("plain\ttext é ✓"), Cow::Borrowed(_)));
    }
}
