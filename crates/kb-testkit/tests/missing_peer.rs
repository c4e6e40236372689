//! A missing peer makes the test fail with the install hint (never a skip). This file is its
//! own test binary, so pointing KB_PEERS at an empty directory affects no other test.

use kb_testkit::peers::{Ferrokinesis, KinesisLocal, Moto};

fn empty_peers_dir() {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    std::env::set_var("KB_PEERS", dir.path());
}

#[test]
#[should_panic(expected = "run `bash scripts/install-peers.sh` (see docs/test-peers.md)")]
fn missing_ferrokinesis_fails() {
    empty_peers_dir();
    let _ = Ferrokinesis::start();
}

#[test]
#[should_panic(expected = "kinesis-local not found at")]
fn missing_kinesis_local_fails() {
    empty_peers_dir();
    let _ = KinesisLocal::start();
}

#[test]
#[should_panic(expected = "moto not found at")]
fn missing_moto_fails() {
    empty_peers_dir();
    let _ = Moto::start();
}
