//! Arbitrary bytes through the forward input's frame scanner and decoder, the way the input
//! reads a connection: scan for a complete frame, decode it, try it as a PING.
#![no_main]

use kb_inputs::forward::proto::{decode_frame, parse_ping, FrameScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whole buffer as one frame.
    let mut out = Vec::new();
    let _ = decode_frame(data, 1 << 16, &mut out);
    let _ = parse_ping(data);

    // Streamed: the first byte picks the read size, the scanner finds frame boundaries.
    let (step, bytes) = match data.split_first() {
        Some((s, rest)) => ((*s as usize % 64) + 1, rest),
        None => return,
    };
    let mut scanner = FrameScanner::new();
    let (mut start, mut end) = (0, 0);
    while end < bytes.len() {
        end = (end + step).min(bytes.len());
        loop {
            match scanner.scan(&bytes[start..end]) {
                Ok(Some(len)) => {
                    assert!(len > 0 && start + len <= end, "scan returned a bad length");
                    let frame = &bytes[start..start + len];
                    out.clear();
                    let _ = decode_frame(frame, 1 << 16, &mut out);
                    let _ = parse_ping(frame);
                    start += len;
                    scanner = FrameScanner::new();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
