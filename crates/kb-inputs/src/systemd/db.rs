//! The `DB` file: the journal cursor in SQLite, in Fluent Bit's `in_systemd_cursor` table
//! (`cursor TEXT NOT NULL, updated INTEGER`, one row), so a database written by Fluent Bit
//! resumes here and the other way round.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// An open cursor database.
pub struct CursorDb {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> String {
    e.to_string()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `DB.Sync` as the number of `PRAGMA synchronous` (`None`: SQLite's default, FULL).
pub fn sync_level(word: &str) -> Option<u8> {
    match word.trim().to_ascii_lowercase().as_str() {
        "extra" => Some(3),
        "full" => Some(2),
        "normal" => Some(1),
        "off" => Some(0),
        _ => None,
    }
}

impl CursorDb {
    /// Open (or create) the database at `path`; `sync` is `DB.Sync`'s level when set.
    pub fn open(path: &Path, sync: Option<u8>) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS in_systemd_cursor (  cursor  TEXT NOT NULL,  updated INTEGER);",
        )
        .map_err(err)?;
        if let Some(level) = sync {
            conn.execute_batch(&format!("PRAGMA synchronous={level};"))
                .map_err(err)?;
        }
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM in_systemd_cursor;", [], |r| r.get(0))
            .map_err(err)?;
        if rows > 1 {
            tracing::warn!(
                "db: table in_systemd_cursor looks corrupted, it has more than one entry (rows={rows}), the table content will be fixed"
            );
            conn.execute_batch(
                "DELETE FROM in_systemd_cursor WHERE ROWID < (SELECT MAX(ROWID) FROM in_systemd_cursor);",
            )
            .map_err(err)?;
        }
        Ok(CursorDb { conn })
    }

    /// The stored cursor. Fluent Bit's first row holds `(null)` until it has read an entry;
    /// that, and an empty value, is no cursor.
    pub fn cursor(&self) -> Result<Option<String>, String> {
        let c: Option<Option<String>> = self
            .conn
            .query_row("SELECT cursor FROM in_systemd_cursor LIMIT 1;", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        Ok(c.flatten().filter(|c| !c.is_empty() && c != "(null)"))
    }

    /// Store `cursor` (Fluent Bit's `UPDATE`, or the first row).
    pub fn save(&self, cursor: &str) -> Result<(), String> {
        let now = now_secs();
        let n = self
            .conn
            .execute(
                "UPDATE in_systemd_cursor SET cursor=?1, updated=?2;",
                params![cursor, now],
            )
            .map_err(err)?;
        if n == 0 {
            self.conn
                .execute(
                    "INSERT INTO in_systemd_cursor (cursor, updated) VALUES (?1, ?2);",
                    params![cursor, now],
                )
                .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_fluent_bit_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemd.db");
        let db = CursorDb::open(&path, Some(1)).unwrap();
        assert_eq!(db.cursor().unwrap(), None);
        db.save("s=1;i=2").unwrap();
        db.save("s=1;i=3").unwrap();
        drop(db);
        let db = CursorDb::open(&path, None).unwrap();
        assert_eq!(db.cursor().unwrap().as_deref(), Some("s=1;i=3"));
        let rows: i64 = db
            .conn
            .query_row("SELECT COUNT(*) FROM in_systemd_cursor", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn fluent_bit_placeholder_row_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fb.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE in_systemd_cursor (cursor TEXT NOT NULL, updated INTEGER);
             INSERT INTO in_systemd_cursor VALUES ('(null)', 1);",
        )
        .unwrap();
        drop(conn);
        let db = CursorDb::open(&path, None).unwrap();
        assert_eq!(db.cursor().unwrap(), None);
        drop(db);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("INSERT INTO in_systemd_cursor VALUES ('s=x;i=9', 2);")
            .unwrap();
        drop(conn);
        let db = CursorDb::open(&path, None).unwrap();
        assert_eq!(db.cursor().unwrap().as_deref(), Some("s=x;i=9"));
        assert_eq!(sync_level("Normal"), Some(1));
        assert_eq!(sync_level("bogus"), None);
    }
}
