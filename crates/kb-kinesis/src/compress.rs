//! `compression` (spec §2.6): per Kinesis record (or per simple aggregate), the same algorithms,
//! levels and framing as Fluent Bit: gzip = one complete gzip member at zlib's default level,
//! zstd = one frame at level 1, snappy = one raw block (no framing). zlib (the Go `kinesis`
//! plugin's) = one zlib stream (RFC 1950) at the default level, as Go's `compress/zlib` writes.
//!
//! The [`Compressor`] keeps its encoder states between records (a fresh deflate state is a few
//! hundred KiB of allocation), and writes straight into the caller's buffer.

use std::fmt;
use std::str::FromStr;

use flate2::{Compress, Crc, FlushCompress, Status};

/// A `compression` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `gzip`
    Gzip,
    /// `zstd`
    Zstd,
    /// `snappy`
    Snappy,
    /// `zlib` (only the Go `kinesis` plugin has it)
    Zlib,
}

impl Compression {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Zlib => "zlib",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `compression` value that is not one of the three names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression: {0}")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    /// Exactly `gzip`, `zstd`, `snappy` or `zlib` (lower case, as Fluent Bit compares them);
    /// which of them a plugin takes is its configuration's business.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zlib" => Ok(Compression::Zlib),
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Ok(Compression::Snappy),
            _ => Err(UnknownCompression(s.to_owned())),
        }
    }
}

/// Compression failed (only possible for inputs far beyond any Kinesis limit).
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// zstd refused the input.
    #[error("zstd compression failed: {0}")]
    Zstd(std::io::Error),
    /// snappy refused the input (larger than 4 GiB).
    #[error("snappy compression failed: {0}")]
    Snappy(snap::Error),
    /// deflate reported an error.
    #[error("gzip compression failed: {0}")]
    Gzip(flate2::CompressError),
}

/// The gzip member header zlib writes for the default level on Unix (`deflateInit2` with
/// windowBits 31, as Fluent Bit uses): no name, no mtime, XFL 0, OS 3.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03];

/// zstd level used by Fluent Bit (`aws/flb_aws_compress.c`).
const ZSTD_LEVEL: i32 = 1;

/// Reusable compression state; create one per worker.
#[derive(Default)]
pub struct Compressor {
    deflate: Option<Compress>,
    zlib: Option<Compress>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    snappy: Option<snap::raw::Encoder>,
    failures: u64,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor; encoder state is created on first use of each algorithm.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compress `input` with `c`, appending the result to `out`.
    ///
    /// The encoders cannot fail on inputs below 4 GiB (far beyond any Kinesis limit); should
    /// one fail anyway, `out` is left unchanged and [`Compressor::failures`] counts it.
    pub fn compress(&mut self, c: Compression, input: &[u8], out: &mut Vec<u8>) {
        if self.try_compress(c, input, out).is_err() {
            self.failures += 1;
        }
    }

    /// Compressions that failed in [`Compressor::compress`].
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Compress `input` with `c`, appending the result to `out`; on error `out` is unchanged.
    pub fn try_compress(
        &mut self,
        c: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CompressError> {
        let start = out.len();
        let r = match c {
            Compression::Gzip => self.gzip(input, out),
            Compression::Zstd => self.zstd(input, out),
            Compression::Snappy => self.snappy(input, out),
            Compression::Zlib => self.zlib(input, out),
        };
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn gzip(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
        let deflate = self
            .deflate
            .get_or_insert_with(|| Compress::new(flate2::Compression::default(), false));
        deflate.reset();
        out.extend_from_slice(&GZIP_HEADER);
        // zlib's deflateBound for stored blocks plus slack; the loop grows it if ever needed.
        out.reserve(input.len() + input.len() / 1000 + 64);
        let in_before = deflate.total_in();
        loop {
            let consumed = (deflate.total_in() - in_before) as usize;
            let status = deflate
                .compress_vec(&input[consumed..], out, FlushCompress::Finish)
                .map_err(CompressError::Gzip)?;
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        let mut crc = Crc::new();
        crc.update(input);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }

    fn zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
        let z = self
            .zlib
            .get_or_insert_with(|| Compress::new(flate2::Compression::default(), true));
        z.reset();
        out.reserve(input.len() + input.len() / 1000 + 64);
        let in_before = z.total_in();
        loop {
            let consumed = (z.total_in() - in_before) as usize;
            let status = z
                .compress_vec(&input[consumed..], out, FlushCompress::Finish)
                .map_err(CompressError::Gzip)?;
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        Ok(())
    }

    fn zstd(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
        let z = match &mut self.zstd {
            Some(z) => z,
            slot => {
                slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(CompressError::Zstd)?)
            }
        };
        let start = out.len();
        let bound = zstd::zstd_safe::compress_bound(input.len());
        out.resize(start + bound, 0);
        let n = z
            .compress_to_buffer(input, &mut out[start..])
            .map_err(CompressError::Zstd)?;
        out.truncate(start + n);
        Ok(())
    }

    fn snappy(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
        let enc = self.snappy.get_or_insert_with(snap::raw::Encoder::new);
        let start = out.len();
        let bound = snap::raw::max_compress_len(input.len());
        if bound == 0 && !input.is_empty() {
            return Err(CompressError::Snappy(snap::Error::TooBig {
                given: input.len() as u64,
                max: u32::MAX as u64,
            }));
        }
        out.resize(start + bound, 0);
        let n = enc
            .compress(input, &mut out[start..])
            .map_err(CompressError::Snappy)?;
        out.truncate(start + n);
        Ok(())
    }
}
