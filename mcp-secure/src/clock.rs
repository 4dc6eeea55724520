//! One clock for every time-dependent guard (rate limits, approval expiry, audit timestamps),
//! so tests can move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// A monotonic clock that can be the real one or a manual one that only moves when told.
///
/// Cloning shares the clock: advancing one clone advances all.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    base_utc: OffsetDateTime,
    manual: bool,
    offset_nanos: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self::with(false)
    }

    /// A clock that stands still until [`Clock::advance`] moves it. For tests.
    pub fn manual() -> Self {
        Self::with(true)
    }

    fn with(manual: bool) -> Self {
        Clock {
            inner: Arc::new(Inner {
                base: Instant::now(),
                base_utc: OffsetDateTime::now_utc(),
                manual,
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves a manual clock forward (a real clock moves too: the offset adds to real time).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        let offset = Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst));
        if self.inner.manual {
            offset
        } else {
            self.inner.base.elapsed() + offset
        }
    }

    /// Wall-clock time (UTC) on this clock.
    pub fn now_utc(&self) -> OffsetDateTime {
        self.inner.base_utc + self.elapsed()
    }

    /// Wall-clock time on this clock as audit records show it: RFC 3339 in UTC, the fraction
    /// of a second as short as it can be (`2026-11-25T17:20:01.5Z`), the same text as the
    /// `time` crate's `Rfc3339` format of [`Clock::now_utc`].
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.now_utc())
    }
}

/// RFC 3339 in UTC with the fraction of a second as short as it can be (`2026-11-25T17:20:01Z`,
/// `2026-11-25T17:20:01.5Z`, `…01.123456789Z`): the same text as `time`'s `Rfc3339` format,
/// written straight into one buffer (every call's audit record has a timestamp). Years before
/// 0000 (or past 9999), which RFC 3339 cannot show, give an empty string, as `time` refuses them.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = match u32::try_from(t.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return String::new(),
    };
    let mut out = String::with_capacity(30);
    digits(&mut out, year, 4);
    out.push('-');
    digits(&mut out, u32::from(u8::from(t.month())), 2);
    out.push('-');
    digits(&mut out, u32::from(t.day()), 2);
    out.push('T');
    digits(&mut out, u32::from(t.hour()), 2);
    out.push(':');
    digits(&mut out, u32::from(t.minute()), 2);
    out.push(':');
    digits(&mut out, u32::from(t.second()), 2);
    let mut nanos = t.nanosecond();
    if nanos != 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        out.push('.');
        digits(&mut out, nanos, width);
    }
    out.push('Z');
    out
}

/// Appends `value` as exactly `width` decimal digits (zero-padded; `value < 10^width`).
fn digits(out: &mut String, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + (value / div % 10) as u8));
        div /= 10;
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual();
        assert_eq!(c.elapsed(), Duration::ZERO);
        c.clone().advance(Duration::from_secs(5));
        assert_eq!(c.elapsed(), Duration::from_secs(5));
        assert_eq!(c.now_utc() - c.inner.base_utc, time::Duration::seconds(5));
    }

    fn time_crate(t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    #[test]
    fn rfc3339_edges_match_the_time_crate() {
        use time::macros::datetime;
        for t in [
            datetime!(2026-11-25 17:20:01 UTC),
            datetime!(2026-11-25 17:20:01.5 UTC),
            datetime!(2026-11-25 17:20:01.000000001 UTC),
            datetime!(2026-11-25 17:20:01.123456789 UTC),
            datetime!(2026-11-25 17:20:01.1200 UTC),
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
            datetime!(2024-02-29 12:00:00 +05:30),
            datetime!(1969-12-31 23:59:59.9 -01:00),
        ] {
            assert_eq!(rfc3339(t), time_crate(t), "{t}");
        }
        assert_eq!(
            rfc3339(datetime!(2026-11-25 17:20:01.5 UTC)),
            "2026-11-25T17:20:01.5Z"
        );
        // RFC 3339 has no negative years; `time` refuses them too.
        let before_year_zero = datetime!(-0001-12-31 00:00:00 UTC);
        assert_eq!(rfc3339(before_year_zero), "");
        assert_eq!(time_crate(before_year_zero), "");
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_matches_the_time_crate(
            secs in -62_135_596_800i64..253_402_300_799i64,
            nanos in 0u32..1_000_000_000,
            offset_minutes in -1439i32..1439,
            round in 0u32..9,
        ) {
            // `round` makes trailing zeros in the fraction common.
            let nanos = nanos / 10u32.pow(round) * 10u32.pow(round);
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let t = t.to_offset(offset);
            proptest::prop_assert_eq!(rfc3339(t), time_crate(t));
        }
    }
}
