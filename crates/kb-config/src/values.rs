//! Fluent Bit's value syntaxes: booleans, sizes (decimal K/M/G), times (s/m/h/d), retry limits.

/// Parse a Fluent Bit boolean: `true`/`on`/`yes` or `false`/`off`/`no`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Parse a Fluent Bit size: integer bytes or a decimal `K`/`KB`, `M`/`MB`, `G`/`GB` suffix
/// (`1M` = 1,000,000), as `flb_utils_size_to_bytes` does.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    if num.is_empty() {
        return None;
    }
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        _ => return None,
    };
    if num.contains('.') {
        let f: f64 = num.parse().ok()?;
        if !f.is_finite() || f < 0.0 {
            return None;
        }
        let v = f * mult as f64;
        if v > u64::MAX as f64 {
            return None;
        }
        Some(v as u64)
    } else {
        num.parse::<u64>().ok()?.checked_mul(mult)
    }
}

/// Parse a Fluent Bit time: integer seconds with an optional `s`, `m`, `h` or `d` suffix.
pub fn parse_time_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' | 'S' => (&s[..s.len() - 1], 1),
        'm' | 'M' => (&s[..s.len() - 1], 60),
        'h' | 'H' => (&s[..s.len() - 1], 3_600),
        'd' | 'D' => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Parse a non-negative decimal number of seconds (as `Flush` takes).
pub fn parse_seconds_f64(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// How many times the engine retries a chunk (`retry_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryLimit {
    /// Retry at most this many times (`no_retries` = 0).
    Limited(u32),
    /// `no_limits`, `false` or `off`: retry forever.
    Unlimited,
}

/// `retry_limit` when it is not set or its value is invalid (Fluent Bit's default).
pub const DEFAULT_RETRY_LIMIT: u32 = 1;

/// The values [`parse_retry_limit`] accepts, for messages.
pub const RETRY_LIMIT_ACCEPTED: &str = "an integer >= 1, no_limits, false, off or no_retries";

/// Parse `retry_limit`; `None` means "invalid" (Fluent Bit then warns and uses
/// [`DEFAULT_RETRY_LIMIT`]).
pub fn parse_retry_limit(s: &str) -> Option<RetryLimit> {
    let l = s.trim().to_ascii_lowercase();
    match l.as_str() {
        "no_limits" | "false" | "off" => Some(RetryLimit::Unlimited),
        "no_retries" => Some(RetryLimit::Limited(0)),
        _ => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(RetryLimit::Limited(n.min(u32::MAX as i64) as u32)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(parse_size("1M"), Some(1_000_000));
        assert_eq!(parse_size("5mb"), Some(5_000_000));
        assert_eq!(parse_size("2k"), Some(2_000));
        assert_eq!(parse_size("1G"), Some(1_000_000_000));
        assert_eq!(parse_size("1.5M"), Some(1_500_000));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
    }

    #[test]
    fn times_take_suffixes() {
        assert_eq!(parse_time_secs("5"), Some(5));
        assert_eq!(parse_time_secs("2m"), Some(120));
        assert_eq!(parse_time_secs("1h"), Some(3600));
        assert_eq!(parse_time_secs("1d"), Some(86400));
        assert_eq!(parse_time_secs("x"), None);
    }

    #[test]
    fn booleans() {
        for t in ["true", "On", "YES"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "OFF", "no"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("1"), None);
    }

    #[test]
    fn retry_limits() {
        assert_eq!(parse_retry_limit("3"), Some(RetryLimit::Limited(3)));
        assert_eq!(parse_retry_limit("no_limits"), Some(RetryLimit::Unlimited));
        assert_eq!(parse_retry_limit("False"), Some(RetryLimit::Unlimited));
        assert_eq!(
            parse_retry_limit("no_retries"),
            Some(RetryLimit::Limited(0))
        );
        assert_eq!(parse_retry_limit("0"), None);
        assert_eq!(parse_retry_limit("abc"), None);
    }
}
