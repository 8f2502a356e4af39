//! The family's URL form: `postgresql://user:pass@host:5432/<db>[/<table>][?params]`.
//!
//! The first path segment is the database, the optional second one the table; the rest (user,
//! password, host, port, query parameters) is a libpq-style connection URL.

use std::str::FromStr;

use crate::error::PgError;

/// The family's default table, and the default `NOTIFY` channel (which is never derived from the
/// table name).
pub const DEFAULT_TABLE: &str = "abxbus_events";
/// The family's default `NOTIFY` channel.
pub const DEFAULT_CHANNEL: &str = "abxbus_events";

/// A parsed bridge URL: where to connect, and the table named by its second path segment.
#[derive(Clone, Debug)]
pub struct PgUrl {
    /// Connection settings (host, port, user, password, database, parameters).
    pub config: tokio_postgres::Config,
    /// The table segment, if the URL has one.
    pub table: Option<String>,
}

/// Whether `name` is a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`), the only names the
/// bridges put in SQL text.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

pub(crate) fn identifier(name: &str, what: &'static str) -> Result<String, PgError> {
    if is_identifier(name) {
        Ok(name.to_owned())
    } else {
        Err(PgError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

impl PgUrl {
    /// Parses `postgresql://…/<db>[/<table>]` (also `postgres://`).
    ///
    /// # Errors
    ///
    /// [`PgError::InvalidUrl`] when the scheme, the database segment or the connection part is
    /// wrong; [`PgError::InvalidName`] when the table is not a plain identifier.
    pub fn parse(url: &str) -> Result<PgUrl, PgError> {
        let bad = |why: &str| PgError::InvalidUrl(format!("{why}: {url:?}"));
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| bad("expected postgresql://user:pass@host:port/db[/table]"))?;
        let (before_query, query) = match rest.find(['?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (authority, path) = match before_query.find('/') {
            Some(at) => before_query.split_at(at),
            None => (before_query, ""),
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(db) = segments.first() else {
            return Err(bad(
                "the URL must name a database: postgresql://host/db[/table]",
            ));
        };
        if segments.len() > 2 {
            return Err(bad("expected at most /db/table in the path"));
        }
        let table = segments
            .get(1)
            .map(|t| identifier(t, "table name"))
            .transpose()?;
        let dsn = format!("postgresql://{authority}/{db}{query}");
        let config = tokio_postgres::Config::from_str(&dsn).map_err(|e| bad(&e.to_string()))?;
        Ok(PgUrl { config, table })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_forms() {
        let u = PgUrl::parse("postgresql://u:p@127.0.0.1:5432/test/my_table").unwrap();
        assert_eq!(u.table.as_deref(), Some("my_table"));
        assert_eq!(u.config.get_dbname(), Some("test"));
        assert_eq!(u.config.get_user(), Some("u"));
        let u = PgUrl::parse("postgres://127.0.0.1/test?application_name=x").unwrap();
        assert_eq!(u.table, None);
        assert_eq!(u.config.get_application_name(), Some("x"));
        assert!(PgUrl::parse("postgresql://127.0.0.1").is_err());
        assert!(PgUrl::parse("redis://127.0.0.1/0").is_err());
        assert!(PgUrl::parse("postgresql://h/db/bad-name").is_err());
        assert!(PgUrl::parse("postgresql://h/db/t/x").is_err());
    }
}
