//! Test support: starts the Kinesis-compatible peers of `docs/test-peers.md` on free
//! loopback ports, talks to them (create streams, read records back), and provides a
//! Kinesis-compatible sink of our own with deterministic fault injection.

pub mod firehose;
pub mod kds;
pub mod meta_server;
pub mod peers;
pub mod sink;

pub use kds::{Kds, ReadRecord};
pub use peers::{
    free_port, peers_dir, self_signed_cert, CapturedRecord, FerroOptions, Ferrokinesis,
    KinesisLocal, Moto,
};
pub use sink::{Fault, FaultKind, FaultPlan, Sink, SinkConfig, SinkRecord, SinkStats};
