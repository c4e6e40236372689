//! Prometheus text exposition format 0.0.4: per family one `# HELP` and one `# TYPE` line,
//! then its samples. Label values and help texts are escaped as the format requires.

use std::fmt::Write;

use crate::families::{Family, Value};

/// `Content-Type` of the Prometheus endpoints.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escape a label value: backslash, double quote and line feed.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escape a help text: backslash and line feed (quotes stay as they are there).
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN` for the special floats).
pub fn format_value(v: Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f == f64::INFINITY => "+Inf".into(),
        Value::Float(f) if f == f64::NEG_INFINITY => "-Inf".into(),
        // `Display` never uses exponent notation, which the format accepts anyway.
        Value::Float(f) => f.to_string(),
    }
}

/// `{k="v",…}`, or nothing without labels.
pub fn format_labels(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The whole exposition.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.samples {
            let _ = writeln!(
                out,
                "{}{}{} {}",
                f.name,
                s.suffix,
                format_labels(&s.labels),
                format_value(s.value)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::{Kind, Sample};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            escape_label_value("a\\b\"c\nd"),
            "a\\\\b\\\"c\\nd".to_string()
        );
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn special_floats() {
        assert_eq!(format_value(Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(format_value(Value::Float(f64::NAN)), "NaN");
        assert_eq!(format_value(Value::Float(0.000_001)), "0.000001");
        assert_eq!(format_value(Value::Int(42)), "42");
    }

    #[test]
    fn one_help_and_type_per_family() {
        let f = Family {
            name: "fluentbit_output_errors_total".into(),
            help: "Number of output errors.".into(),
            kind: Kind::Counter,
            samples: vec![
                Sample {
                    suffix: "",
                    labels: vec![("name".into(), "a\"b".into())],
                    value: Value::Int(1),
                },
                Sample {
                    suffix: "",
                    labels: vec![("name".into(), "c".into())],
                    value: Value::Int(0),
                },
            ],
        };
        assert_eq!(
            render(&[f]),
            "# HELP fluentbit_output_errors_total Number of output errors.\n\
             # TYPE fluentbit_output_errors_total counter\n\
             fluentbit_output_errors_total{name=\"a\\\"b\"} 1\n\
             fluentbit_output_errors_total{name=\"c\"} 0\n"
        );
    }
}
