//! The shared store's schema, versioned in `gcupload_migrations` (one row per migration, with
//! when it ran): each runs once, in order, in a transaction, while the migrating host holds an
//! advisory lock, so hosts starting together take turns instead of racing. Readable with
//! `psql` (`\d uploads`).

use postgres::Client;

use super::super::error::{Result, StateError};
use super::connect::why;

/// The advisory lock migrations hold (an arbitrary constant: "gcupload" in ASCII, shortened).
const MIGRATION_LOCK: i64 = 0x6763_7570_6c64;

/// The schema version this gcupload knows.
pub(super) const KNOWN: i64 = MIGRATIONS.len() as i64;

/// Migration n (1-based) brings the schema from version n-1 to n.
const MIGRATIONS: &[&str] = &[
    // 1: the journal of uploads, the webhook outbox and damaged entries kept aside. Times are
    // the server's (`now()`); at most one unfinished row per upload key (the claim's guard
    // across hosts: a second host's insert meets this index).
    "CREATE TABLE uploads (
        id           BIGSERIAL PRIMARY KEY,
        route        TEXT NOT NULL,
        target       TEXT NOT NULL,
        file_name    TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        size         BIGINT NOT NULL,
        path         TEXT NOT NULL,
        step         TEXT NOT NULL,
        file_id      TEXT,
        confirm_url  TEXT,
        confirmation TEXT,
        record       TEXT,
        record_mac   TEXT,
        event_id     TEXT,
        error        TEXT,
        webhook      TEXT,
        stamp        TEXT,
        lease_pid    BIGINT,
        lease_host   TEXT,
        lease_until  TIMESTAMPTZ,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        completed_at TIMESTAMPTZ
    );
    CREATE INDEX uploads_key ON uploads (route, target, file_name, sha256);
    CREATE INDEX uploads_stamp ON uploads (stamp);
    CREATE UNIQUE INDEX uploads_unfinished ON uploads (route, target, file_name, sha256)
        WHERE step NOT IN ('completed', 'failed');
    CREATE TABLE outbox (
        seq        BIGSERIAL,
        event_id   TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        queued_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_error TEXT NOT NULL,
        attempts   BIGINT NOT NULL DEFAULT 0,
        mac        TEXT
    );
    CREATE TABLE quarantine (
        id      BIGSERIAL PRIMARY KEY,
        source  TEXT NOT NULL,
        content BYTEA NOT NULL,
        reason  TEXT NOT NULL,
        kept_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );",
    // 2: a journal write that does not finish its row changes no indexed column, so the
    // server can update the row in place (a HOT update: no index entries added): the unique
    // index on unfinished rows is on a generated `finished` column instead of on `step`,
    // and pages keep room for new versions of their rows.
    "ALTER TABLE uploads ADD COLUMN finished BOOLEAN NOT NULL
        GENERATED ALWAYS AS (step IN ('completed', 'failed')) STORED;
    CREATE UNIQUE INDEX uploads_open ON uploads (route, target, file_name, sha256)
        WHERE NOT finished;
    DROP INDEX uploads_unfinished;
    ALTER TABLE uploads SET (fillfactor = 50);",
    // 3: the claim of a key no row has yet, in one statement (one round trip instead of a
    // five-statement transaction): under the key's advisory lock (the same one the full claim
    // takes, so the two take turns), and only while there is still no row of the key. Each
    // statement of a PL/pgSQL function reads with a fresh snapshot, so the check sees a row a
    // claim that held the lock just before committed. NULL: a row exists (the full claim
    // decides), or another host's unfinished row won the unique index.
    "CREATE FUNCTION gcupload_claim_new(p_route TEXT, p_target TEXT, p_file_name TEXT,
        p_sha256 TEXT, p_size BIGINT, p_path TEXT, p_pid BIGINT, p_host TEXT, p_stamp TEXT,
        p_event_id TEXT, p_lease_ms BIGINT) RETURNS BIGINT
    LANGUAGE plpgsql AS $$
    DECLARE
        new_id BIGINT;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended(
            p_route || '/' || p_target || '/' || p_file_name || '/' || p_sha256, 0));
        IF EXISTS (SELECT 1 FROM uploads WHERE route = p_route AND target = p_target
                   AND file_name = p_file_name AND sha256 = p_sha256) THEN
            RETURN NULL;
        END IF;
        INSERT INTO uploads (route, target, file_name, sha256, size, path, step,
                             lease_pid, lease_host, lease_until, stamp, event_id)
        VALUES (p_route, p_target, p_file_name, p_sha256, p_size, p_path, 'claimed',
                p_pid, p_host, now() + p_lease_ms * interval '1 millisecond', p_stamp,
                p_event_id)
        ON CONFLICT (route, target, file_name, sha256) WHERE NOT finished DO NOTHING
        RETURNING id INTO new_id;
        RETURN new_id;
    END
    $$;",
];

/// Brings the schema up to date (or refuses one newer than this gcupload knows).
pub(super) fn migrate(client: &mut Client, shown: &str) -> Result<()> {
    let err = |e: postgres::Error| StateError::Server {
        url: shown.to_string(),
        why: why(&e),
    };
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS gcupload_migrations (
                version    INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .or_else(|e| {
            // Two hosts creating it at once: one wins, the other finds it there.
            if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(err)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err)?;
    let result = apply(client).map_err(|e| match e {
        Applied::Sql(e) => err(e),
        Applied::TooNew(found) => StateError::TooNew {
            path: shown.into(),
            found,
            known: MIGRATIONS.len() as i64,
        },
    });
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result?;
    unlocked.map_err(err).map(drop)
}

enum Applied {
    Sql(postgres::Error),
    TooNew(i64),
}

/// The migrations not applied yet, each in its own transaction (under the migration lock).
fn apply(client: &mut Client) -> std::result::Result<(), Applied> {
    let version = version(client).map_err(Applied::Sql)?;
    if version > MIGRATIONS.len() as i64 {
        return Err(Applied::TooNew(version));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = client.transaction().map_err(Applied::Sql)?;
        tx.batch_execute(sql).map_err(Applied::Sql)?;
        tx.execute(
            "INSERT INTO gcupload_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .map_err(Applied::Sql)?;
        tx.commit().map_err(Applied::Sql)?;
    }
    Ok(())
}

/// The schema version: the newest migration applied (0 for none).
pub(super) fn version(client: &mut Client) -> std::result::Result<i64, postgres::Error> {
    let row = client.query_one(
        "SELECT COALESCE(max(version), 0)::BIGINT FROM gcupload_migrations",
        &[],
    )?;
    Ok(row.get(0))
}
