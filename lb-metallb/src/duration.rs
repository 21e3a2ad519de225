//! Go duration strings (`90s`, `1m30s`, `500ms`, `1h`), the format of MetalLB's
//! `metav1.Duration` fields (`holdTime`, `keepaliveTime`, `connectTime`).

use std::time::Duration;

/// Parses a Go duration: an optional sign, then one or more `<number><unit>` with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is zero.
///
/// Fails with a reason on an empty string, a negative value, a missing or unknown unit, or a
/// value too large to represent.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(format!("{text:?}: expected a number"));
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
            "" => return Err(format!("{text:?}: missing unit (ns, us, ms, s, m, h)")),
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        total =
            total
                .checked_add(scale(number, nanos_per_unit).ok_or_else(|| {
                    format!("{text:?}: {number:?} is not a number or is too large")
                })?)
                .ok_or_else(|| format!("{text:?}: too large"))?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| format!("{text:?}: too large"))?;
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
pub fn parse_whole_seconds(text: &str) -> Result<Duration, String> {
    parse_go_duration(text).map(|d| Duration::from_secs(d.as_secs()))
}

/// Checks a BGP hold time: 0 (no keepalives) or at least 3 s (RFC 4271 §4.2).
///
/// Fails with a reason naming the value otherwise.
pub fn check_hold_time(hold: Duration) -> Result<(), String> {
    if !hold.is_zero() && hold < Duration::from_secs(3) {
        return Err(format!("{}s: must be 0 or at least 3s", hold.as_secs()));
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
