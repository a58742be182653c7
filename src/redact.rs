//! Keeping signatures and tokens out of logs and messages.

use url::Url;

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

/// A URL for the audit record: as given, unless its query carries a signature or credentials,
/// in which case the query is dropped (the record must never hold a usable signature).
pub fn public_url(u: &Url) -> String {
    let signed = u.query_pairs().any(|(k, _)| {
        let k = k.to_ascii_lowercase();
        k.starts_with("x-amz-") || k == "signature" || k.contains("token") || k == "sig"
    });
    if signed || !u.username().is_empty() || u.password().is_some() {
        let mut c = u.clone();
        c.set_query(None);
        let _ = c.set_username("");
        let _ = c.set_password(None);
        c.to_string()
    } else {
        u.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn drops_query_and_userinfo() {
        let u = url::Url::parse("https://user:pw@s3.example/b/k?X-Amz-Signature=abc").unwrap();
        let r = super::url(&u);
        assert_eq!(r, "https://s3.example/b/k?…");
        assert_eq!(super::public_url(&u), "https://s3.example/b/k");
        let plain = url::Url::parse("https://cdn.example/f.png?v=2").unwrap();
        assert_eq!(super::public_url(&plain), "https://cdn.example/f.png?v=2");
    }
}
