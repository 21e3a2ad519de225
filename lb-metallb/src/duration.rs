//! Go duration strings (`90s`, `1m30s`, `500ms`, `1h`), the format of MetalLB's
//! `metav1.Duration` fields (`holdTime`, `keepaliveTime`, `connectTime`).

use std::time::Duration;

/// Why a duration was refused; each names the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration")]
    Empty,
    /// A minus sign.
    #[error("{text:?}: a duration cannot be negative")]
    Negative {
        /// The text.
        text: String,
    },
    /// A unit where a number should be.
    #[error("{text:?}: expected a number")]
    ExpectedNumber {
        /// The text.
        text: String,
    },
    /// A number without a unit.
    #[error("{text:?}: missing unit (ns, us, ms, s, m, h)")]
    MissingUnit {
        /// The text.
        text: String,
    },
    /// A unit Go does not know.
    #[error("{text:?}: unknown unit {unit:?}")]
    UnknownUnit {
        /// The text.
        text: String,
        /// The unit.
        unit: String,
    },
    /// A number that does not parse or overflows.
    #[error("{text:?}: {number:?} is not a number or is too large")]
    BadNumber {
        /// The text.
        text: String,
        /// The number.
        number: String,
    },
    /// The sum overflows.
    #[error("{text:?}: too large")]
    TooLarge {
        /// The text.
        text: String,
    },
    /// A BGP hold time of 1 or 2 seconds (RFC 4271 §4.2).
    #[error("{seconds}s: must be 0 or at least 3s")]
    HoldTime {
        /// The hold time in whole seconds.
        seconds: u64,
    },
    /// A BGP hold time that does not fit the OPEN's 16-bit field (RFC 4271 §4.2).
    #[error("{seconds}s: must be at most 65535s (the OPEN message's 16-bit field)")]
    HoldTimeTooLong {
        /// The hold time in whole seconds.
        seconds: u64,
    },
}

/// Parses a Go duration: an optional sign, then one or more `<number><unit>` with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is zero.
///
/// Fails with a reason on an empty string, a negative value, a missing or unknown unit, or a
/// value too large to represent.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let owned = || text.to_string();
    let s = text.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(DurationError::Negative { text: owned() });
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(DurationError::ExpectedNumber { text: owned() });
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::MissingUnit { text: owned() }),
            other => {
                return Err(DurationError::UnknownUnit {
                    text: owned(),
                    unit: other.to_string(),
                });
            }
        };
        let value = scale(number, nanos_per_unit).ok_or_else(|| DurationError::BadNumber {
            text: owned(),
            number: number.to_string(),
        })?;
        total = total
            .checked_add(value)
            .ok_or_else(|| DurationError::TooLarge { text: owned() })?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::TooLarge { text: owned() })?;
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// `number` (decimal, optional fraction) times `unit` nanoseconds, truncated.
fn scale(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int.checked_mul(unit)?;
    let mut place = unit;
    for digit in frac.chars() {
        place /= 10;
        value = value.checked_add(u128::from(digit.to_digit(10)?) * place)?;
    }
    Some(value)
}

/// Parses a Go duration and truncates it to whole seconds, as MetalLB does for BGP timers.
///
/// Fails like [`parse_go_duration`].
pub fn parse_whole_seconds(text: &str) -> Result<Duration, DurationError> {
    parse_go_duration(text).map(|d| Duration::from_secs(d.as_secs()))
}

/// Checks a BGP hold time: 0 (no keepalives), or 3 s to 65535 s (RFC 4271 §4.2).
///
/// Fails with a reason naming the value otherwise.
pub fn check_hold_time(hold: Duration) -> Result<(), DurationError> {
    if !hold.is_zero() && hold < Duration::from_secs(3) {
        return Err(DurationError::HoldTime {
            seconds: hold.as_secs(),
        });
    }
    if hold.as_secs() > u64::from(u16::MAX) {
        return Err(DurationError::HoldTimeTooLong {
            seconds: hold.as_secs(),
        });
    }
    Ok(())
}

/// Formats a whole-second duration the way Go prints it (`1m30s`, `90s` becomes `1m30s`).
pub fn format_go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("90").is_err());
        assert!(parse_go_duration("-3s").is_err());
        assert!(parse_go_duration("3d").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    #[test]
    fn go_durations_print_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
