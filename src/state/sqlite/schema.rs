//! The store's schema, versioned with SQLite's `user_version`: each migration runs once, in
//! order, inside a transaction. Readable with the `sqlite3` shell (`.schema`).

use std::path::Path;

use rusqlite::Connection;

use super::super::error::{Result, StateError};

/// Migration n (1-based) brings the schema from version n-1 to n.
const MIGRATIONS: &[&str] = &[
    // 1: the journal of uploads and the webhook outbox.
    "CREATE TABLE uploads (
        id           INTEGER PRIMARY KEY,
        route        TEXT NOT NULL,
        target       TEXT NOT NULL,
        file_name    TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        path         TEXT NOT NULL,
        step         TEXT NOT NULL,
        file_id      TEXT,
        confirm_url  TEXT,
        confirmation TEXT,
        record       TEXT,
        event_id     TEXT,
        error        TEXT,
        webhook      TEXT,
        lease_pid    INTEGER,
        lease_host   TEXT,
        lease_until  INTEGER,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX uploads_key ON uploads (route, target, file_name, sha256);
    CREATE INDEX uploads_updated ON uploads (updated_at);
    CREATE TABLE outbox (
        event_id   TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        queued_at  TEXT NOT NULL,
        last_error TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE quarantine (
        id        INTEGER PRIMARY KEY,
        source    TEXT NOT NULL,
        content   BLOB NOT NULL,
        reason    TEXT NOT NULL,
        kept_at   TEXT NOT NULL
    );",
    // 2: what gcupload itself wrote is tagged with the webhook secret (HMAC), so an entry
    // written into the database by anyone else is never signed and sent.
    "ALTER TABLE outbox ADD COLUMN mac TEXT;
    ALTER TABLE uploads ADD COLUMN record_mac TEXT;",
    // 3: the file's stat stamp when it was read (device, inode, size, modification and change
    // times), so a re-run can skip an unchanged file without reading it again. The index on
    // `updated_at` goes: nothing looks rows up by it (`history --since` reads them all), and
    // every journal write changes it, so it cost a page written per step.
    "ALTER TABLE uploads ADD COLUMN stamp TEXT;
    CREATE INDEX uploads_stamp ON uploads (stamp);
    DROP INDEX uploads_updated;",
];

pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let sql = |source| StateError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        // IMMEDIATE: two runs starting at once must not both migrate.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let current: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        let applied = if current > i as i64 {
            Ok(())
        } else {
            conn.execute_batch(migration)
                .and_then(|()| conn.pragma_update(None, "user_version", i as i64 + 1))
        };
        match applied {
            Ok(()) => conn.execute_batch("COMMIT").map_err(sql)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(sql(e));
            }
        }
    }
    Ok(())
}
