//! The forward frame decoder never panics, whatever the bytes.

use kb_inputs::forward::proto::{decode_frame, parse_ping, FrameScanner};
use proptest::prelude::*;

/// Feed `bytes` in pieces of `step`; returns the events of the valid frames decoded.
fn feed(bytes: &[u8], step: usize) -> usize {
    let mut scanner = FrameScanner::new();
    let mut start = 0;
    let mut end = 0;
    let mut out = Vec::new();
    let mut events = 0;
    while end < bytes.len() {
        end = (end + step.max(1)).min(bytes.len());
        loop {
            match scanner.scan(&bytes[start..end]) {
                Ok(Some(len)) => {
                    let frame = &bytes[start..start + len];
                    out.clear();
                    if let Ok(d) = decode_frame(frame, 1 << 16, &mut out) {
                        events += d.events;
                    }
                    let _ = parse_ping(frame);
                    start += len;
                }
                Ok(None) => break,
                Err(_) => return events,
            }
        }
    }
    events
}

/// A valid PackedForward frame to mutate.
fn seed() -> Vec<u8> {
    let mut entries = Vec::new();
    for i in 0..3u8 {
        entries.extend_from_slice(&[
            0x92, 0xd7, 0x00, 0, 0, 0, i, 0, 0, 0, 1, 0x81, 0xa1, b'k', i,
        ]);
    }
    let mut f = vec![0x93, 0xa1, b't', 0xc4, entries.len() as u8];
    f.extend(entries);
    f.extend_from_slice(&[0x81, 0xa5]);
    f.extend_from_slice(b"chunk");
    f.extend_from_slice(&[0xa1, b'c']);
    f
}

#[test]
fn seed_is_valid() {
    let f = seed();
    let mut out = Vec::new();
    let d = decode_frame(&f, 1024, &mut out).unwrap();
    assert_eq!(d.events, 3);
    assert_eq!(d.chunk, Some(&b"c"[..]));
    assert_eq!(FrameScanner::new().scan(&f), Ok(Some(f.len())));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), step in 1usize..64) {
        feed(&bytes, step);
        let mut out = Vec::new();
        let _ = decode_frame(&bytes, 1 << 16, &mut out);
        let _ = parse_ping(&bytes);
    }

    #[test]
    fn split_points_do_not_change_the_result(step in 1usize..100) {
        let mut bytes = seed();
        bytes.extend(seed());
        bytes.extend(seed());
        prop_assert_eq!(feed(&bytes, step), 9);
    }

    #[test]
    fn mutated_frames_never_panic(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..80, step in 1usize..16) {
        let mut f = seed();
        let p = pos % f.len();
        f[p] = byte;
        f.truncate(cut.max(1).min(f.len()));
        feed(&f, step);
        let mut out = Vec::new();
        let _ = decode_frame(&f, 1 << 16, &mut out);
    }
}
