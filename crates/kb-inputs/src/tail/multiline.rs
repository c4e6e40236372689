//! The built-in multiline parsers `docker` and `cri` of `multiline.parser`.
//!
//! * `docker`: each line is a JSON object `{"log": "...", "stream": "...", "time": "..."}`;
//!   a `log` not ending with `\n` is the start of a message that goes on in the next lines
//!   of the same `stream`, up to one whose `log` ends with `\n`. The record is the first
//!   line's object with `log` replaced by the whole message; its time is the first line's
//!   `time` (`%Y-%m-%dT%H:%M:%S.%L`, kept in the record).
//! * `cri`: each line is `<time> <stdout|stderr> <P|F> <log>`; `P` lines are parts of a
//!   message that ends with the next `F` line of the same stream. The record is
//!   `{"time", "stream", "_p", "log"}` of the first line with `log` holding the whole
//!   message; its time is `time` (`%Y-%m-%dT%H:%M:%S.%L%z`).
//!
//! With both listed, a line starting with `{` is tried as `docker`, others as `cri`. A line
//! that neither parses is delivered as `{Key: line}`. A message still open after
//! [`FLUSH_TIMEOUT`] (or when the input stops) is delivered as it is.

use std::time::Duration;

use kb_core::event::{EventTime, EventWriter};
use tokio::time::Instant;

use crate::parsers::TimeFormat;

/// How long an unfinished message waits for its next part.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(4);

const DOCKER_TIME: &str = "%Y-%m-%dT%H:%M:%S.%L";
const CRI_TIME: &str = "%Y-%m-%dT%H:%M:%S.%L%z";

/// The parsers of `multiline.parser`.
#[derive(Debug, Clone)]
pub struct MlConfig {
    docker: bool,
    cri: bool,
    docker_time: TimeFormat,
    cri_time: TimeFormat,
}

impl MlConfig {
    /// Parse the comma-separated list of `multiline.parser`.
    pub fn parse(list: &str) -> Result<Option<Self>, String> {
        let mut docker = false;
        let mut cri = false;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "docker" => docker = true,
                "cri" => cri = true,
                other => {
                    return Err(format!(
                        "multiline parser '{other}' is not supported (only 'docker' and 'cri')"
                    ))
                }
            }
        }
        if !docker && !cri {
            return Ok(None);
        }
        Ok(Some(MlConfig {
            docker,
            cri,
            docker_time: TimeFormat::new(DOCKER_TIME, 0, false)?,
            cri_time: TimeFormat::new(CRI_TIME, 0, false)?,
        }))
    }
}

/// What precedes the parsed fields of a record: the event header, the map length and the
/// `Path_Key`/`Offset_Key` entries.
pub trait RecordStart {
    /// Start a record of `entries` own entries at `time`; `line_start` is its first line's
    /// offset.
    fn start(&self, w: &mut EventWriter, time: EventTime, entries: u32, line_start: u64);
    /// Write a whole `{Key: line}` record.
    fn raw(&self, w: &mut EventWriter, time: EventTime, line: &[u8], line_start: u64);
}

/// The first line of a message: everything but its content.
#[derive(Debug)]
enum Head {
    Docker {
        fields: serde_json::Map<String, serde_json::Value>,
    },
    Cri {
        time: Vec<u8>,
        stream: &'static str,
        p: u8,
    },
}

#[derive(Debug)]
struct Open {
    stream: String,
    head: Head,
    content: Vec<u8>,
    time: EventTime,
    line_start: u64,
    since: Instant,
}

/// The open messages of one file.
#[derive(Debug, Default)]
pub struct MlState {
    open: Vec<Open>,
}

fn str_entry(buf: &mut Vec<u8>, k: &str, v: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(buf, k);
    let _ = rmp::encode::write_str_len(buf, v.len() as u32);
    buf.extend_from_slice(v);
}

fn emit(o: Open, w: &mut EventWriter, rs: &dyn RecordStart) {
    match o.head {
        Head::Docker { fields } => {
            rs.start(w, o.time, fields.len() as u32, o.line_start);
            for (k, v) in &fields {
                if k == "log" {
                    str_entry(&mut w.buf, k, &o.content);
                } else {
                    let _ = rmp::encode::write_str(&mut w.buf, k);
                    kb_core::event::write_json_value(&mut w.buf, v);
                }
            }
        }
        Head::Cri { time, stream, p } => {
            rs.start(w, o.time, 4, o.line_start);
            str_entry(&mut w.buf, "time", &time);
            str_entry(&mut w.buf, "stream", stream.as_bytes());
            str_entry(&mut w.buf, "_p", &[p]);
            str_entry(&mut w.buf, "log", &o.content);
        }
    }
}

/// `<time> <stdout|stderr> <P|F> <log>`, the time being the shortest prefix that fits.
fn split_cri(line: &[u8]) -> Option<(&[u8], &'static str, u8, &[u8])> {
    for (i, _) in line.iter().enumerate().filter(|(_, b)| **b == b' ') {
        if i == 0 {
            continue;
        }
        let rest = &line[i + 1..];
        let stream = if rest.starts_with(b"stdout ") {
            "stdout"
        } else if rest.starts_with(b"stderr ") {
            "stderr"
        } else {
            continue;
        };
        let rest = &rest[7..];
        if rest.len() >= 2 && (rest[0] == b'F' || rest[0] == b'P') && rest[1] == b' ' {
            return Some((&line[..i], stream, rest[0], &rest[2..]));
        }
    }
    None
}

impl MlState {
    /// Feed one line (without its line ending).
    pub fn feed(
        &mut self,
        cfg: &MlConfig,
        line: &[u8],
        line_start: u64,
        now: EventTime,
        w: &mut EventWriter,
        rs: &dyn RecordStart,
    ) {
        let docker_first = cfg.docker && line.first() == Some(&b'{');
        if docker_first && self.docker(cfg, line, line_start, now, w, rs) {
            return;
        }
        if cfg.cri && self.cri(cfg, line, line_start, now, w, rs) {
            return;
        }
        rs.raw(w, now, line, line_start);
    }

    fn docker(
        &mut self,
        cfg: &MlConfig,
        line: &[u8],
        line_start: u64,
        now: EventTime,
        w: &mut EventWriter,
        rs: &dyn RecordStart,
    ) -> bool {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(line) else {
            return false;
        };
        let Some(serde_json::Value::String(log)) = fields.get("log") else {
            return false;
        };
        let log = log.clone().into_bytes();
        let stream = match fields.get("stream") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let complete = log.ends_with(b"\n");
        let time = match fields.get("time") {
            Some(serde_json::Value::String(t)) => {
                cfg.docker_time.parse(t.as_bytes(), now).unwrap_or(now)
            }
            _ => now,
        };
        self.part(
            stream,
            Head::Docker { fields },
            log,
            complete,
            time,
            line_start,
            w,
            rs,
        );
        true
    }

    fn cri(
        &mut self,
        cfg: &MlConfig,
        line: &[u8],
        line_start: u64,
        now: EventTime,
        w: &mut EventWriter,
        rs: &dyn RecordStart,
    ) -> bool {
        let Some((time_text, stream, p, log)) = split_cri(line) else {
            return false;
        };
        let time = cfg.cri_time.parse(time_text, now).unwrap_or(now);
        self.part(
            stream.to_string(),
            Head::Cri {
                time: time_text.to_vec(),
                stream,
                p,
            },
            log.to_vec(),
            p == b'F',
            time,
            line_start,
            w,
            rs,
        );
        true
    }

    /// Add one part of a message of `stream`; deliver the message when `complete`.
    #[allow(clippy::too_many_arguments)]
    fn part(
        &mut self,
        stream: String,
        head: Head,
        content: Vec<u8>,
        complete: bool,
        time: EventTime,
        line_start: u64,
        w: &mut EventWriter,
        rs: &dyn RecordStart,
    ) {
        if let Some(i) = self.open.iter().position(|o| o.stream == stream) {
            let kind_matches = matches!(
                (&self.open[i].head, &head),
                (Head::Docker { .. }, Head::Docker { .. }) | (Head::Cri { .. }, Head::Cri { .. })
            );
            if kind_matches {
                self.open[i].content.extend_from_slice(&content);
                if complete {
                    let o = self.open.swap_remove(i);
                    emit(o, w, rs);
                }
                return;
            }
            // A line of the other format: the open message ends as it is.
            let o = self.open.swap_remove(i);
            emit(o, w, rs);
        }
        let o = Open {
            stream,
            head,
            content,
            time,
            line_start,
            since: Instant::now(),
        };
        if complete {
            emit(o, w, rs);
        } else {
            self.open.push(o);
        }
    }

    /// Deliver messages open for [`FLUSH_TIMEOUT`] (all of them when `all`).
    pub fn flush(&mut self, all: bool, w: &mut EventWriter, rs: &dyn RecordStart) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.open.len() {
            if all || now.saturating_duration_since(self.open[i].since) >= FLUSH_TIMEOUT {
                let o = self.open.remove(i);
                emit(o, w, rs);
            } else {
                i += 1;
            }
        }
    }

    /// Whether a message is open.
    pub fn is_open(&self) -> bool {
        !self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_split() {
        let (t, s, p, l) =
            split_cri(b"2019-05-07T18:57:50.904275087+00:00 stdout P part one").unwrap();
        assert_eq!(t, b"2019-05-07T18:57:50.904275087+00:00");
        assert_eq!((s, p, l), ("stdout", b'P', &b"part one"[..]));
        let (_, s, p, l) = split_cri(b"t stderr F ").unwrap();
        assert_eq!((s, p, l), ("stderr", b'F', &b""[..]));
        assert!(split_cri(b"plain text line").is_none());
        assert!(split_cri(b"t stdout X y").is_none());
    }

    #[test]
    fn names() {
        assert!(MlConfig::parse("docker, cri").unwrap().is_some());
        assert!(MlConfig::parse("").unwrap().is_none());
        assert!(MlConfig::parse("java").is_err());
    }
}
