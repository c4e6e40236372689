//! Spec §2.6 (`compression`): each algorithm's output decompresses with an independent
//! decoder to the input, in the framing Fluent Bit uses; §1.1's error message for other values.

use std::io::Read;

use kb_kinesis::compress::{Compression, Compressor};

fn inputs() -> Vec<Vec<u8>> {
    let mut big = Vec::new();
    for i in 0..20_000u32 {
        big.extend_from_slice(
            format!("{{\"n\":{i},\"log\":\"line {}\"}}\n", i * 7919 % 1000).as_bytes(),
        );
    }
    let random: Vec<u8> = {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..300_000).map(|_| rng.u8(..)).collect()
    };
    vec![Vec::new(), b"{\"a\":1}\n".to_vec(), big, random]
}

#[test]
fn compress_names_parse_exactly() {
    assert_eq!("gzip".parse::<Compression>().unwrap(), Compression::Gzip);
    assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd);
    assert_eq!(
        "snappy".parse::<Compression>().unwrap(),
        Compression::Snappy
    );
    for bad in ["GZIP", "Gzip", "lz4", "", " gzip", "none"] {
        let e = bad.parse::<Compression>().unwrap_err();
        assert_eq!(e.to_string(), format!("unknown compression: {bad}"));
    }
    assert_eq!(Compression::Snappy.to_string(), "snappy");
}

#[test]
fn compress_gzip_is_one_complete_member() {
    let mut c = Compressor::new();
    for input in inputs() {
        let mut out = b"prefix".to_vec();
        c.compress(Compression::Gzip, &input, &mut out);
        assert_eq!(&out[..6], b"prefix", "appends");
        let gz = &out[6..];
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08], "gzip magic, deflate");
        // A single-member decoder must consume every byte and give the input back.
        let mut d = flate2::read::GzDecoder::new(gz);
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert_eq!(back, input);
        let mut rest = Vec::new();
        d.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "exactly one member, nothing after it");
    }
}

#[test]
fn compress_gzip_default_level_matches_gzencoder() {
    // Same deflate stream as flate2's GzEncoder at the default (zlib 6) level.
    let input = &inputs()[2];
    let mut ours = Vec::new();
    Compressor::new().compress(Compression::Gzip, input, &mut ours);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, input).unwrap();
    let theirs = enc.finish().unwrap();
    assert_eq!(
        ours[10..],
        theirs[10..],
        "identical after the 10-byte header"
    );
}

#[test]
fn compress_zstd_is_one_frame() {
    let mut c = Compressor::new();
    for input in inputs() {
        let mut out = Vec::new();
        c.compress(Compression::Zstd, &input, &mut out);
        assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        assert_eq!(
            zstd::zstd_safe::find_frame_compressed_size(&out).unwrap(),
            out.len()
        );
        assert_eq!(zstd::stream::decode_all(&out[..]).unwrap(), input);
    }
}

#[test]
fn compress_zstd_level_1() {
    let input = &inputs()[2];
    let mut out = Vec::new();
    Compressor::new().compress(Compression::Zstd, input, &mut out);
    assert_eq!(out, zstd::bulk::compress(input, 1).unwrap());
}

#[test]
fn compress_snappy_is_a_raw_block() {
    let mut c = Compressor::new();
    for input in inputs() {
        let mut out = Vec::new();
        c.compress(Compression::Snappy, &input, &mut out);
        // Raw block: no stream identifier (`\xff\x06\x00\x00sNaPpY`), decodable as raw.
        assert!(!out.starts_with(b"\xff\x06\x00\x00sNaPpY"));
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&out).unwrap(),
            input
        );
    }
    assert_eq!(c.failures(), 0);
}

#[test]
fn compress_reuse_gives_identical_output() {
    let mut c = Compressor::new();
    let input = &inputs()[2];
    for algo in [Compression::Gzip, Compression::Zstd, Compression::Snappy] {
        let mut a = Vec::new();
        let mut b = Vec::new();
        c.compress(algo, input, &mut a);
        c.compress(algo, b"something else in between", &mut Vec::new());
        c.compress(algo, input, &mut b);
        assert_eq!(a, b, "{algo}");
        assert_eq!(
            {
                let mut fresh = Vec::new();
                Compressor::new()
                    .try_compress(algo, input, &mut fresh)
                    .unwrap();
                fresh
            },
            a,
            "{algo}"
        );
    }
}
