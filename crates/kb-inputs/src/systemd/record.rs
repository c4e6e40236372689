//! One journal entry's fields (`FIELD=value` byte strings, as sd-journal hands them out) to
//! a record in Fluent Bit's layout. Pure and total: any bytes in, a well-formed msgpack map
//! out, never a panic (fields without `=`, binary values, empty keys, huge values).

use kb_core::event::EventWriter;

/// How field names are changed and how many fields a record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOptions {
    /// `Lowercase`: ASCII-lowercase the field names.
    pub lowercase: bool,
    /// `Strip_Underscores`: drop one leading `_` of a field name.
    pub strip_underscores: bool,
    /// `Max_Fields`: fields kept per record (repeated fields count each time).
    pub max_fields: usize,
}

impl Default for FieldOptions {
    fn default() -> Self {
        FieldOptions {
            lowercase: false,
            strip_underscores: false,
            max_fields: 8000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
}

/// The fields of one entry, gathered as Fluent Bit's `systemd_enumerate_data_store` gathers
/// them into its key/value list.
#[derive(Debug, Default)]
pub struct Fields {
    opts: FieldOptions,
    fields: Vec<(Vec<u8>, Value)>,
    stored: usize,
    broken: usize,
}

impl Fields {
    /// An empty record.
    pub fn new(opts: FieldOptions) -> Self {
        Fields {
            opts,
            ..Default::default()
        }
    }

    /// Whether another field may be added (`Max_Fields` not reached).
    pub fn wants_more(&self) -> bool {
        self.stored < self.opts.max_fields
    }

    /// Fields without `=` seen (Fluent Bit logs "Skip N broken entries").
    pub fn broken(&self) -> usize {
        self.broken
    }

    /// Add one `FIELD=value` item.
    ///
    /// A name met again (compared without regard to ASCII case, as Fluent Bit's list does)
    /// turns its value into an array of every value in order; the key then moves to where
    /// the second value was met, as in Fluent Bit, whose list removes the key and appends the
    /// array. Values are kept whole, binary included.
    pub fn add(&mut self, data: &[u8]) {
        let mut item = data;
        if self.opts.strip_underscores {
            if let Some(rest) = item.strip_prefix(b"_") {
                item = rest;
            }
        }
        let Some(eq) = memchr::memchr(b'=', item) else {
            self.broken += 1;
            return;
        };
        let mut key = item[..eq].to_vec();
        if self.opts.lowercase {
            key.make_ascii_lowercase();
        }
        let value = item[eq + 1..].to_vec();
        match self
            .fields
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(&key))
        {
            None => self.fields.push((key, Value::One(value))),
            Some(i) => {
                if let Value::Many(values) = &mut self.fields[i].1 {
                    values.push(value);
                } else {
                    let (_, old) = self.fields.remove(i);
                    let mut values = match old {
                        Value::One(first) => vec![first],
                        Value::Many(v) => v,
                    };
                    values.push(value);
                    self.fields.push((key, Value::Many(values)));
                }
            }
        }
        self.stored += 1;
    }

    /// Append the record body (the map) to `w`; the caller wrote the event header.
    pub fn write_body(&self, buf: &mut Vec<u8>) {
        let _ = rmp::encode::write_map_len(buf, len32(self.fields.len()));
        for (k, v) in &self.fields {
            write_bytes_str(buf, k);
            match v {
                Value::One(s) => write_bytes_str(buf, s),
                Value::Many(values) => {
                    let _ = rmp::encode::write_array_len(buf, len32(values.len()));
                    for s in values {
                        write_bytes_str(buf, s);
                    }
                }
            }
        }
    }

    /// Append one whole event stamped `time` to `w`.
    pub fn write_event(&self, w: &mut EventWriter, time: kb_core::event::EventTime) {
        w.begin(time);
        self.write_body(&mut w.buf);
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A msgpack str holding `b` as they are (Fluent Bit does not check journal data for UTF-8).
fn write_bytes_str(buf: &mut Vec<u8>, b: &[u8]) {
    // Journal data objects are far below 4 GiB; cut rather than write a lying length.
    let b = &b[..b.len().min(u32::MAX as usize)];
    let _ = rmp::encode::write_str_len(buf, len32(b.len()));
    buf.extend_from_slice(b);
}

/// Fluent Bit's `tag_compose`: the first `*` of `tag` replaced by `unit`.
pub fn compose_tag(tag: &str, unit: &[u8]) -> String {
    match tag.split_once('*') {
        None => tag.to_string(),
        Some((prefix, suffix)) => {
            let unit = String::from_utf8_lossy(unit);
            let mut t = String::with_capacity(prefix.len() + unit.len() + suffix.len());
            t.push_str(prefix);
            t.push_str(&unit);
            t.push_str(suffix);
            t
        }
    }
}

/// Whether `m` is a match sd-journal accepts (`FIELD=value`, the field of upper-case
/// letters, digits and `_`, not starting with `__`), so a bad `Systemd_Filter` is a
/// configuration error with its location instead of a failure at start.
pub fn valid_match(m: &[u8]) -> bool {
    if m.len() < 2 || m.starts_with(b"__") {
        return false;
    }
    for (i, b) in m.iter().enumerate() {
        match b {
            b'=' => return i > 0,
            b'_' | b'A'..=b'Z' | b'0'..=b'9' => {}
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(f: &Fields) -> rmpv::Value {
        let mut buf = Vec::new();
        f.write_body(&mut buf);
        let mut s = &buf[..];
        let v = rmpv::decode::read_value(&mut s).unwrap();
        assert!(s.is_empty());
        v
    }

    fn show(f: &Fields) -> String {
        decode(f).to_string()
    }

    #[test]
    fn repeated_fields_become_arrays_where_the_second_was_met() {
        let mut f = Fields::new(FieldOptions::default());
        for d in [&b"A=1"[..], b"B=2", b"A=3", b"C=4", b"A=5"] {
            f.add(d);
        }
        assert_eq!(show(&f), r#"{"B": "2", "A": ["1", "3", "5"], "C": "4"}"#);
    }

    #[test]
    fn strip_and_lowercase() {
        let opts = FieldOptions {
            lowercase: true,
            strip_underscores: true,
            max_fields: 10,
        };
        let mut f = Fields::new(opts);
        for d in [&b"_PID=1"[..], b"__X=2", b"MESSAGE=Hi=there", b"_=e"] {
            f.add(d);
        }
        assert_eq!(
            show(&f),
            r#"{"pid": "1", "_x": "2", "message": "Hi=there", "": "e"}"#
        );
    }

    #[test]
    fn broken_fields_and_max_fields() {
        let mut f = Fields::new(FieldOptions {
            max_fields: 2,
            ..Default::default()
        });
        f.add(b"NOEQUALS");
        assert!(f.wants_more());
        f.add(b"A=1");
        f.add(b"A=2");
        assert!(!f.wants_more());
        assert_eq!(f.broken(), 1);
        assert_eq!(show(&f), r#"{"A": ["1", "2"]}"#);
    }

    #[test]
    fn tags_and_matches() {
        assert_eq!(
            compose_tag("host.*", b"kubelet.service"),
            "host.kubelet.service"
        );
        assert_eq!(compose_tag("a.*.b.*", b"u"), "a.u.b.*");
        assert_eq!(compose_tag("plain", b"u"), "plain");
        assert!(valid_match(b"_SYSTEMD_UNIT=kubelet.service"));
        assert!(valid_match(b"PRIORITY="));
        assert!(!valid_match(b"=x"));
        assert!(!valid_match(b"_systemd_unit=x"));
        assert!(!valid_match(b"__CURSOR=x"));
        assert!(!valid_match(b"NOEQUALS"));
    }
}
