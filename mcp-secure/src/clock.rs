//! One clock for every time-dependent guard (rate limits, approval expiry, audit timestamps),
//! so tests can move time instead of sleeping.

use std::cell::Cell;
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
    /// `base_utc` as a Unix time: whole seconds and nanoseconds.
    base_secs: i64,
    base_nanos: u32,
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
        let base_utc = OffsetDateTime::now_utc();
        Clock {
            inner: Arc::new(Inner {
                base: Instant::now(),
                base_utc,
                base_secs: base_utc.unix_timestamp(),
                base_nanos: base_utc.nanosecond(),
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
        self.stamp().as_str().to_owned()
    }

    /// [`Clock::now_rfc3339`] without an allocation (every call's audit record has one),
    /// and without `time`'s calendar arithmetic while the second is the one this thread last
    /// stamped.
    pub fn stamp(&self) -> Stamp {
        self.stamp_at(self.elapsed())
    }

    /// The stamp of the moment `since` after the clock was made (a reading of
    /// [`Clock::elapsed`]), for callers that also need that reading: the time of a record and
    /// the duration it reports from one look at the clock.
    pub fn stamp_at(&self, since: Duration) -> Stamp {
        let nanos = self.inner.base_nanos + since.subsec_nanos();
        let secs = i64::try_from(since.as_secs())
            .ok()
            .and_then(|s| s.checked_add(self.inner.base_secs))
            .and_then(|s| s.checked_add(i64::from(nanos / NANOS_PER_SECOND)));
        match secs {
            Some(secs) => Stamp::at(secs, nanos % NANOS_PER_SECOND),
            None => Stamp::EMPTY,
        }
    }
}

/// RFC 3339 in UTC ([`Stamp`]), as a `String`.
#[cfg(test)]
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    Stamp::of(t).as_str().to_owned()
}

/// An RFC 3339 timestamp in UTC with the fraction of a second as short as it can be
/// (`2026-11-25T17:20:01Z`, `2026-11-25T17:20:01.5Z`, `…01.123456789Z`): the same text as
/// `time`'s `Rfc3339` format, written into a fixed buffer. Years before 0000 (or past 9999),
/// which RFC 3339 cannot show, give an empty stamp, as `time` refuses them.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Stamp {
    /// First, so that `bytes` starts on a word boundary (see [`Stamp::as_str`]).
    len: usize,
    /// The text, then zeros.
    bytes: [u8; Stamp::BUFFER],
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stamp").field(&self.as_str()).finish()
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const NANOS_PER_SECOND: u32 = 1_000_000_000;

impl Stamp {
    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
    const MAX: usize = 30;
    /// The longest text rounded up to whole 16-byte blocks (see [`Stamp::as_str`]).
    const BUFFER: usize = Stamp::MAX.next_multiple_of(16);
    /// `YYYY-MM-DDTHH:MM:SS`
    const SECOND: usize = 19;
    const EMPTY: Stamp = Stamp {
        bytes: [0; Stamp::BUFFER],
        len: 0,
    };

    /// The stamp of `t`.
    pub fn of(t: OffsetDateTime) -> Stamp {
        let mut stamp = Stamp::EMPTY;
        if stamp.second(t) {
            stamp.fraction(t.nanosecond());
        }
        stamp
    }

    /// The stamp of Unix time `secs` + `nanos` (`nanos` < 10^9). The text up to the second is
    /// kept per thread, so stamps within the same second as the thread's last one only
    /// write the fraction.
    fn at(secs: i64, nanos: u32) -> Stamp {
        thread_local! {
            static LAST: Cell<Option<(i64, [u8; Stamp::SECOND])>> = const { Cell::new(None) };
        }
        let mut stamp = Stamp::EMPTY;
        match LAST.try_with(Cell::get) {
            Ok(Some((last, text))) if last == secs => {
                stamp.bytes[..Stamp::SECOND].copy_from_slice(&text);
                stamp.len = Stamp::SECOND;
            }
            _ => {
                let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
                    return stamp;
                };
                if !stamp.second(t) {
                    return stamp;
                }
                let mut text = [0; Stamp::SECOND];
                text.copy_from_slice(&stamp.bytes[..Stamp::SECOND]);
                // A thread being torn down has no cache; the stamp is right either way.
                let _ = LAST.try_with(|last| last.set(Some((secs, text))));
            }
        }
        stamp.fraction(nanos);
        stamp
    }

    /// Writes `t`, in UTC, up to the second; false (nothing written) for a year RFC 3339
    /// cannot show.
    fn second(&mut self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let year = match u32::try_from(t.year()) {
            Ok(year) if year <= 9999 => year,
            _ => return false,
        };
        let stamp = self;
        stamp.digits(year, 4);
        stamp.push(b'-');
        stamp.digits(u32::from(u8::from(t.month())), 2);
        stamp.push(b'-');
        stamp.digits(u32::from(t.day()), 2);
        stamp.push(b'T');
        stamp.digits(u32::from(t.hour()), 2);
        stamp.push(b':');
        stamp.digits(u32::from(t.minute()), 2);
        stamp.push(b':');
        stamp.digits(u32::from(t.second()), 2);
        true
    }

    /// Writes the fraction of a second, as short as it can be, and the `Z`.
    ///
    /// The first digit on its own, the other eight at once ([`eight_digits`]): its trailing
    /// zero digits are the high zero bytes of their word, counted without a loop, and masked
    /// off so that the buffer stays zero past the text.
    fn fraction(&mut self, nanos: u32) {
        debug_assert!(nanos < NANOS_PER_SECOND);
        if nanos != 0 {
            let at = self.len;
            let rest = eight_digits(nanos % 100_000_000);
            // Digits after the first that are not trailing zeros (none when all eight are).
            let kept = 8 - (rest.leading_zeros() / 8) as usize;
            let mask = if kept == 8 {
                u64::MAX
            } else {
                (1 << (8 * kept)) - 1
            };
            let text = (rest | 0x3030_3030_3030_3030) & mask;
            self.bytes[at] = b'.';
            self.bytes[at + 1] = b'0' + (nanos / 100_000_000) as u8;
            self.bytes[at + 2..at + 10].copy_from_slice(&text.to_le_bytes());
            self.len = at + 2 + kept;
        }
        self.push(b'Z');
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written, and zeros stay past the text. The
        // whole buffer is checked and the text sliced from it: UTF-8 validation takes a
        // word-aligned slice 16 bytes at a time and the bytes after the last whole block one
        // by one, so two blocks for the buffer, where the 30-byte text alone is one block and
        // 14 single bytes (callgrind: about 60 instructions fewer per stamp).
        std::str::from_utf8(&self.bytes)
            .ok()
            .and_then(|all| all.get(..self.len))
            .unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// Appends `value` as exactly `width` decimal digits (zero-padded; `value < 10^width`).
    /// Written from the last digit back: dividing by the constant 10 compiles to a multiply,
    /// where dividing by a power of ten held in a variable is a hardware division per digit.
    fn digits(&mut self, value: u32, width: u32) {
        let end = self.len + width as usize;
        let mut value = value;
        for at in (self.len..end).rev() {
            self.bytes[at] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len = end;
    }
}

/// The eight decimal digits of `value` (< 10^8), one per byte as numbers 0 to 9, the most
/// significant in the lowest byte (first in memory): halves of four digits, then pairs, then
/// digits, each split in every lane at once by a multiply-and-shift that divides by 100 or 10
/// exactly for the lane's range (below 10,000 and below 100).
fn eight_digits(value: u32) -> u64 {
    debug_assert!(value < 100_000_000);
    // Lanes of 32 bits: the first four digits, then the last four.
    let halves = u64::from(value / 10_000) | u64::from(value % 10_000) << 32;
    // x / 100 == x * 10486 >> 20 for x < 10,000 (and x * 10486 < 2^27: lanes stay apart).
    let hundreds = ((halves * 10_486) >> 20) & 0x0000_007f_0000_007f;
    // Lanes of 16 bits: pairs of digits.
    let pairs = hundreds | (halves - hundreds * 100) << 16;
    // x / 10 == x * 103 >> 10 for x < 100 (and x * 103 < 2^14).
    let tens = ((pairs * 103) >> 10) & 0x000f_000f_000f_000f;
    tens | (pairs - tens * 10) << 8
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

    fn eight_digits_text(value: u32) -> String {
        eight_digits(value)
            .to_le_bytes()
            .iter()
            .map(|&d| {
                assert!(d <= 9, "{value}: digit {d}");
                char::from(b'0' + d)
            })
            .collect()
    }

    #[test]
    fn eight_digits_are_the_decimal_digits() {
        // Every lane boundary and carry: powers of ten, their neighbours, and runs of nines.
        let mut values = vec![0, 1, 9, 99_999_999, 12_345_678, 87_654_321, 10_000_000];
        for p in 0..8 {
            let ten = 10u32.pow(p);
            values.extend([ten - 1, ten, ten + 1, 9 * ten, 99_999_999 - ten + 1]);
            values.extend((1..10).map(|d| d * ten));
        }
        // Every value of each four-digit lane, with the other lane's extremes.
        for x in 0..10_000 {
            values.extend([x, x * 10_000, x * 10_000 + 9_999, 9_999 * 10_000 + x]);
        }
        for value in values {
            assert_eq!(eight_digits_text(value), format!("{value:08}"));
        }
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
        /// The clock's own stamp (Unix-time arithmetic, the second kept per thread) is the
        /// stamp of its `now_utc`, within a second, across one, and after a long jump.
        #[test]
        fn clock_stamps_match_now_utc(
            jump in 0u64..100_000_000_000_000_000,
            steps in proptest::collection::vec(0u64..1_500_000_000, 1..6),
        ) {
            let clock = Clock::manual();
            clock.advance(Duration::from_nanos(jump));
            proptest::prop_assert_eq!(clock.stamp().to_string(), rfc3339(clock.now_utc()));
            for step in steps {
                clock.advance(Duration::from_nanos(step));
                proptest::prop_assert_eq!(clock.stamp().to_string(), rfc3339(clock.now_utc()));
            }
        }

        #[test]
        fn eight_digits_match_format(value in 0u32..100_000_000) {
            proptest::prop_assert_eq!(eight_digits_text(value), format!("{value:08}"));
        }

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
            // Nothing but zeros past the text (trailing zero digits included).
            let stamp = Stamp::of(t);
            proptest::prop_assert!(stamp.bytes[stamp.len..].iter().all(|&b| b == 0));
        }
    }
}
