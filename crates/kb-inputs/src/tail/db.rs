//! The `DB` offsets file: a SQLite database with Fluent Bit's `in_tail_files` table, one row
//! per followed file keyed by inode, holding the offset of the first byte not yet delivered
//! (the start of an unfinished line). A restart resumes every file found again at its stored
//! offset, so lines are neither read twice nor skipped.
//!
//! Beside Fluent Bit's table, `kb_tail_proof` keeps each row's [`Proof`] (the file's first
//! bytes and the bytes before the offset), so a file rewritten while the agent was down
//! (copy-truncate, or a new file on a reused inode) is read from its head instead of from a
//! stale offset. Fluent Bit's table is left as Fluent Bit writes it; a DB without proofs (one
//! Fluent Bit wrote) still resumes at its offsets.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::proof::Proof;

/// An open offsets database.
pub struct OffsetDb {
    conn: Connection,
}

/// A stored file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub offset: u64,
    /// The content at `offset` when it was stored; `None` in a DB Fluent Bit wrote.
    pub proof: Option<Proof>,
}

/// A position to store.
#[derive(Debug, Clone)]
pub struct Save {
    pub id: i64,
    pub offset: u64,
    pub proof: Proof,
}

fn err(e: rusqlite::Error) -> String {
    e.to_string()
}

impl OffsetDb {
    /// Open (or create) the database at `path` with `DB.sync` (`normal`, `full`, `off`,
    /// `extra`), `DB.journal_mode` and `DB.locking` (exclusive locking when true).
    pub fn open(
        path: &Path,
        sync: &str,
        journal_mode: &str,
        locking: bool,
    ) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let sync = match sync {
            "full" => "FULL",
            "off" => "OFF",
            "extra" => "EXTRA",
            _ => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
            .map_err(err)?;
        if locking {
            conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE;")
                .map_err(err)?;
        }
        let journal: String = journal_mode
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect();
        if !journal.is_empty() {
            // The pragma answers with the mode in force; a row must be read.
            let _: Option<String> = conn
                .query_row(&format!("PRAGMA journal_mode={journal};"), [], |r| r.get(0))
                .optional()
                .map_err(err)?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS in_tail_files (
                id      INTEGER PRIMARY KEY,
                name    TEXT NOT NULL,
                offset  INTEGER,
                inode   INTEGER,
                created INTEGER,
                rotated INTEGER DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS kb_tail_proof (
                id   INTEGER PRIMARY KEY,
                head BLOB NOT NULL,
                tail BLOB NOT NULL
            );",
        )
        .map_err(err)?;
        Ok(OffsetDb { conn })
    }

    /// The newest row of `inode`.
    pub fn lookup(&self, inode: u64) -> Result<Option<Stored>, String> {
        self.conn
            .query_row(
                "SELECT f.id, f.offset, p.head, p.tail FROM in_tail_files f
                 LEFT JOIN kb_tail_proof p ON p.id = f.id
                 WHERE f.inode = ?1 ORDER BY f.id DESC LIMIT 1",
                params![inode as i64],
                |r| {
                    let head: Option<Vec<u8>> = r.get(2)?;
                    let tail: Option<Vec<u8>> = r.get(3)?;
                    Ok(Stored {
                        id: r.get(0)?,
                        offset: r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64,
                        proof: head.zip(tail).map(|(head, tail)| Proof { head, tail }),
                    })
                },
            )
            .optional()
            .map_err(err)
    }

    /// Add a row for a newly followed file; returns its id.
    pub fn insert(&self, name: &str, inode: u64, offset: u64) -> Result<i64, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.conn
            .execute(
                "INSERT INTO in_tail_files (name, offset, inode, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, offset as i64, inode as i64, now],
            )
            .map_err(err)?;
        let id = self.conn.last_insert_rowid();
        // A row id can be reused after a delete; a proof left by another writer is not ours.
        self.conn
            .execute("DELETE FROM kb_tail_proof WHERE id = ?1", params![id])
            .map_err(err)?;
        Ok(id)
    }

    /// Record the name a file is found under now.
    pub fn rename(&self, id: i64, name: &str) -> Result<(), String> {
        self.conn
            .execute(
                "UPDATE in_tail_files SET name = ?1 WHERE id = ?2",
                params![name, id],
            )
            .map(|_| ())
            .map_err(err)
    }

    /// Store new offsets with their proofs, all in one transaction.
    pub fn update_offsets(&mut self, rows: &[Save]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut offset = tx
                .prepare_cached("UPDATE in_tail_files SET offset = ?1 WHERE id = ?2")
                .map_err(err)?;
            let mut proof = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO kb_tail_proof (id, head, tail) VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for row in rows {
                offset
                    .execute(params![row.offset as i64, row.id])
                    .map_err(err)?;
                proof
                    .execute(params![row.id, row.proof.head, row.proof.tail])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Mark a row as rotated (the file was renamed away from its path).
    pub fn mark_rotated(&self, id: i64) -> Result<(), String> {
        self.conn
            .execute(
                "UPDATE in_tail_files SET rotated = 1 WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
            .map_err(err)
    }

    /// Forget every file but those of `keep` (after the first scan: files gone meanwhile).
    pub fn delete_others(&mut self, keep: &[i64]) -> Result<usize, String> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM in_tail_files")
                .map_err(err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        let stale: Vec<i64> = ids.into_iter().filter(|id| !keep.contains(id)).collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction().map_err(err)?;
        for id in &stale {
            tx.execute("DELETE FROM in_tail_files WHERE id = ?1", params![id])
                .map_err(err)?;
            tx.execute("DELETE FROM kb_tail_proof WHERE id = ?1", params![id])
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(stale.len())
    }

    /// Forget a file that is no longer followed.
    pub fn delete(&self, id: i64) -> Result<(), String> {
        self.conn
            .execute("DELETE FROM in_tail_files WHERE id = ?1", params![id])
            .map_err(err)?;
        self.conn
            .execute("DELETE FROM kb_tail_proof WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut db = OffsetDb::open(&path, "normal", "WAL", false).unwrap();
        assert_eq!(db.lookup(7).unwrap(), None);
        let id = db.insert("/x.log", 7, 10).unwrap();
        assert_eq!(
            db.lookup(7).unwrap(),
            Some(Stored {
                id,
                offset: 10,
                proof: None
            })
        );
        let proof = Proof {
            head: b"first\n".to_vec(),
            tail: b"st\nsecond\n".to_vec(),
        };
        db.update_offsets(&[Save {
            id,
            offset: 42,
            proof: proof.clone(),
        }])
        .unwrap();
        drop(db);
        let db = OffsetDb::open(&path, "normal", "WAL", false).unwrap();
        assert_eq!(
            db.lookup(7).unwrap(),
            Some(Stored {
                id,
                offset: 42,
                proof: Some(proof)
            })
        );
        db.rename(id, "/y.log").unwrap();
        db.mark_rotated(id).unwrap();
        db.delete(id).unwrap();
        assert_eq!(db.lookup(7).unwrap(), None);
        let mut db = db;
        let a = db.insert("/a", 1, 0).unwrap();
        db.insert("/b", 2, 0).unwrap();
        assert_eq!(db.delete_others(&[a]).unwrap(), 1);
        assert!(db.lookup(1).unwrap().is_some());
        assert_eq!(db.lookup(2).unwrap(), None);
    }
}
