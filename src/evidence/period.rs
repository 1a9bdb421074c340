//! The reporting period: which records an auditor's question covers.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// `[from, to)`: a record at `from` is in the period, one at `to` is in the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Which end of the period a date names: a bare date means the whole day, so `--to 2026-11-30`
/// includes the 30th (as an auditor reads "1 to 30 November").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    From,
    To,
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date in UTC (its start for `From`, the start of the
/// next day for `To`).
pub fn parse_bound(text: &str, end: End) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))?;
    let start = date.and_time(NaiveTime::MIN).and_utc();
    Ok(match end {
        End::From => start,
        End::To => start + Duration::days(1),
    })
}

impl Period {
    /// The period between two bounds; `None` for either end leaves it open (`report sample`
    /// without `--from`/`--to` draws from the whole log).
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Period, String> {
        let period =
            Period { from: from.unwrap_or(DateTime::<Utc>::MIN_UTC), to: to.unwrap_or(DateTime::<Utc>::MAX_UTC) };
        if period.from >= period.to {
            return Err(format!(
                "the period is empty: --from {} is not before --to {}",
                period.from.to_rfc3339(),
                period.to.to_rfc3339()
            ));
        }
        Ok(period)
    }

    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from <= time && time < self.to
    }

    /// The period as people read it: `2026-11-01T00:00:00Z – 2026-12-01T00:00:00Z`, with
    /// open ends said as such.
    pub fn label(&self) -> String {
        let from = match self.from {
            t if t == DateTime::<Utc>::MIN_UTC => "the first record".to_string(),
            t => super::time_label(t),
        };
        match self.to {
            t if t == DateTime::<Utc>::MAX_UTC => format!("{from} to the last record"),
            t => format!("{from} to {} (end excluded)", super::time_label(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn a_bare_date_covers_its_whole_day_at_either_end() {
        assert_eq!(parse_bound("2026-11-01", End::From), Ok(at("2026-11-01T00:00:00Z")));
        assert_eq!(parse_bound("2026-11-30", End::To), Ok(at("2026-12-01T00:00:00Z")));
        assert_eq!(parse_bound("2026-11-30T12:00:00+01:00", End::To), Ok(at("2026-11-30T11:00:00Z")));
        assert!(parse_bound("30/11/2026", End::From).expect_err("not a date").contains("30/11/2026"));
    }

    #[test]
    fn the_period_includes_its_start_and_excludes_its_end() {
        let november = Period::new(Some(at("2026-11-01T00:00:00Z")), Some(at("2026-12-01T00:00:00Z"))).expect("period");
        assert!(november.contains(at("2026-11-01T00:00:00Z")));
        assert!(november.contains(at("2026-11-30T23:59:59Z")));
        assert!(!november.contains(at("2026-12-01T00:00:00Z")));
        assert!(!november.contains(at("2026-10-31T23:59:59Z")));
        assert!(Period::new(Some(at("2026-12-01T00:00:00Z")), Some(at("2026-11-01T00:00:00Z"))).is_err());
        let open = Period::new(None, None).expect("open");
        assert!(open.contains(at("1970-01-01T00:00:00Z")) && open.contains(at("2999-01-01T00:00:00Z")));
        assert_eq!(open.label(), "the first record to the last record");
        assert_eq!(november.label(), "2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z (end excluded)");
    }
}
