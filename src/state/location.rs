//! Where the store is: a directory of this host (SQLite), or a PostgreSQL server several hosts
//! share. The URL carries a password: it is shown only without it.

use std::path::PathBuf;

/// Where the store is.
#[derive(Clone)]
pub enum Location {
    /// The state directory (`--state-dir`): `state.db` in it.
    Dir(PathBuf),
    /// `--state-url postgres://user:password@host:port/db?sslmode=…`.
    Url(String),
}

impl Location {
    /// The location for people: the directory, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Location::Dir(d) => d.display().to_string(),
            Location::Url(u) => shown(u),
        }
    }

    /// The state directory, when the store is one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Location::Dir(d) => Some(d),
            Location::Url(_) => None,
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// `url` without its password (in the user info or a `password=` parameter). Text that is not a
/// URL is not shown at all: it may be a password typed in the wrong place.
pub fn shown(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "(a state URL that is not a URL)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(None);
    }
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let s = shown("postgres://gc:s3cret@db.example:5433/jobs?sslmode=require&password=s3cret");
        assert_eq!(s, "postgres://gc@db.example:5433/jobs?sslmode=require");
        assert!(!shown("s3cret").contains("s3cret"));
        let d = format!("{:?}", Location::Url("postgres://a:s3cret@h/d".into()));
        assert!(!d.contains("s3cret"), "{d}");
    }
}
