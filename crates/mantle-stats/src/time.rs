//! Times as Unix seconds, and their ISO 8601 form for the HTML report.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `2024-05-01T12:00:00.250Z` for Unix seconds (UTC, millisecond precision).
#[allow(clippy::cast_possible_truncation)] // Checked range; times far out are shown as numbers.
pub(crate) fn iso8601(unix: f64) -> String {
    // Roughly ±10,000 years; beyond that, or NaN, show the number.
    if !unix.is_finite() || unix.abs() > 3.0e11 {
        return format!("{unix}");
    }
    let millis_total = (unix * 1000.0).round() as i64;
    let secs = millis_total.div_euclid(1000);
    let millis = millis_total.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (y, m, d).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_714_564_800.25), "2024-05-01T12:00:00.250Z");
        assert_eq!(iso8601(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(-1.0), "1969-12-31T23:59:59.000Z");
        assert_eq!(iso8601(f64::NAN), "NaN");
    }

    #[test]
    fn unix_seconds_before_and_after_epoch() {
        assert!((unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)) - 1.5).abs() < 1e-9);
        assert!((unix_seconds(UNIX_EPOCH - Duration::from_secs(2)) + 2.0).abs() < 1e-9);
    }
}
