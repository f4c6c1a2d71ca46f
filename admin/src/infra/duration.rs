//! Durations in query parameters: a number and one unit (`30s`, `30d`).
//! Imports nothing else of this crate.

// Deliberately narrow, so that the OpenAPI pattern and what the server
// accepts are the same set of strings.

use std::time::Duration;

/// Parses `<1-6 digits><unit>` with a unit among `units` (`ms`, `s`, `m`, `h`, `d`, `w`).
pub fn parse(text: &str, units: &[&str]) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 6 || !units.contains(&unit) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    Some(Duration::from_millis(n * ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_and_one_allowed_unit() {
        let units = ["s", "m"];
        assert_eq!(parse("30s", &units), Some(Duration::from_secs(30)));
        assert_eq!(parse("2m", &units), Some(Duration::from_secs(120)));
        for bad in ["0", "s", "30", "30h", "1m30s", " 3s", "-3s", "1234567s", ""] {
            assert_eq!(parse(bad, &units), None, "{bad:?}");
        }
        assert_eq!(parse("30d", &["d"]), Some(Duration::from_secs(30 * 86_400)));
    }
}
