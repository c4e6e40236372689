//! `DB.locking` and `DB.journal_mode` do what Fluent Bit's do: `PRAGMA locking_mode=EXCLUSIVE`
//! (other processes cannot read the DB while the agent holds it) and the journal mode asked.

use kb_inputs::tail::OffsetDb;
use rusqlite::Connection;

fn other_reader(path: &std::path::Path) -> Result<i64, rusqlite::Error> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::ZERO)?;
    c.query_row("SELECT count(*) FROM in_tail_files", [], |r| r.get(0))
}

#[test]
fn locking_keeps_other_processes_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.db");
    let db = OffsetDb::open(&path, "normal", "WAL", true).unwrap();
    db.insert("/var/log/a.log", 42, 0).unwrap();
    let e = other_reader(&path).unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
    drop(db);
    assert_eq!(other_reader(&path).unwrap(), 1);

    // Without locking, another process reads the offsets while the agent runs.
    let path = dir.path().join("shared.db");
    let db = OffsetDb::open(&path, "normal", "WAL", false).unwrap();
    db.insert("/var/log/a.log", 42, 0).unwrap();
    assert_eq!(other_reader(&path).unwrap(), 1);
}

#[test]
fn journal_modes() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, want) in [
        ("WAL", "wal"),
        ("delete", "delete"),
        ("TRUNCATE", "truncate"),
        ("off", "off"),
    ] {
        let path = dir.path().join(format!("{mode}.db"));
        let db = OffsetDb::open(&path, "normal", mode, false).unwrap();
        db.insert("/var/log/a.log", 7, 0).unwrap();
        let c = Connection::open(&path).unwrap();
        let got: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        // WAL persists in the file; the others are per connection: the file is not in WAL.
        if want == "wal" {
            assert_eq!(got, "wal");
            assert!(dir.path().join(format!("{mode}.db-wal")).exists());
        } else {
            assert_eq!(got, "delete", "{mode}");
            assert!(
                !dir.path().join(format!("{mode}.db-wal")).exists(),
                "{mode}"
            );
        }
        drop(db);
    }
}
