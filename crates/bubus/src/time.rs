//! Canonical timestamps: UTC, nanosecond precision, strictly increasing within a process.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as the bubus runtimes write it: nanoseconds since the Unix epoch, UTC.
///
/// [`Timestamp::now`] never returns the same value twice in one process and never goes backwards
/// (it is a wall-clock anchor plus a monotonic clock), so ordering by timestamp is ordering by
/// creation, as in the Python and TypeScript runtimes. The text form is always the canonical
/// 30-character `YYYY-MM-DDTHH:MM:SS.fffffffffZ`, so comparing two such strings compares the times.
///
/// # Examples
///
/// ```
/// use bubus::time::Timestamp;
///
/// let a = Timestamp::now();
/// let b = Timestamp::now();
/// assert!(b > a);
///
/// let parsed: Timestamp = "2025-07-10T20:39:56.462+00:00".parse().unwrap();
/// assert_eq!(parsed.to_string(), "2025-07-10T20:39:56.462000000Z");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// An optional [`Timestamp`] in one word (`None` is zero, the Unix epoch itself: no timestamp
/// the process makes, or reads, is that early: the wire rejects years before 1991).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp(Option<std::num::NonZeroU64>);

impl Stamp {
    /// No time.
    pub(crate) const NONE: Stamp = Stamp(None);

    #[inline(always)]
    pub(crate) fn new(at: Option<Timestamp>) -> Self {
        Stamp(at.and_then(|at| std::num::NonZeroU64::new(at.as_unix_nanos())))
    }

    #[inline(always)]
    pub(crate) fn get(self) -> Option<Timestamp> {
        self.0.map(|nanos| Timestamp::from_unix_nanos(nanos.get()))
    }

    #[inline(always)]
    pub(crate) fn is_none(self) -> bool {
        self.0.is_none()
    }
}

/// Earliest and latest years the reference runtimes accept (exclusive bounds).
const MIN_YEAR: i32 = 1990;
const MAX_YEAR: i32 = 2500;

/// The wall clock read once, and a monotonic clock to advance it: the TSC-based `quanta` clock
/// (a few nanoseconds per read; it falls back to the OS clock where the TSC is not reliable).
/// The clock is held here rather than read through `quanta::Instant::now`, which looks up a
/// thread-local override and a global clock on every read (about half of a read's instructions
/// under callgrind; four reads per event).
struct Anchor {
    wall_ns: u64,
    clock: quanta::Clock,
    /// The clock's raw reading at `wall_ns`.
    start: u64,
}

#[inline]
fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let clock = quanta::Clock::new();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Anchor {
            wall_ns: u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX / 2),
            start: clock.raw(),
            clock,
        }
    })
}

static LAST: AtomicU64 = AtomicU64::new(0);

impl Timestamp {
    /// The current time, strictly greater than every timestamp this process produced before.
    pub fn now() -> Self {
        Self::now_inline()
    }

    /// [`now`](Self::now), inlined where an event is built (once per event; the call is a tenth
    /// of its cost). Everywhere else the call is kept: inlined there, it made the callers'
    /// code larger and slower.
    #[inline(always)]
    pub(crate) fn now_inline() -> Self {
        let candidate = Self::clock();
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = if candidate > last {
                candidate
            } else {
                last + 1
            };
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Timestamp(next),
                Err(actual) => last = actual,
            }
        }
    }

    /// The current time for a stamp that is not an identity (when a handler started or
    /// finished): never earlier than a timestamp [`now`](Self::now) produced before, but without
    /// claiming a value of its own, so it may equal one produced at the same moment. One plain
    /// load where `now` needs a compare-and-swap.
    pub(crate) fn now_shared() -> Self {
        Timestamp(Self::clock().max(LAST.load(Ordering::Relaxed)))
    }

    /// The wall-clock anchor advanced by the monotonic clock.
    #[inline]
    fn clock() -> u64 {
        let a = anchor();
        // Zero if the reading is not past the start (a TSC read on another core).
        a.wall_ns
            .saturating_add(a.clock.delta_as_nanos(a.start, a.clock.raw()))
    }

    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time elapsed since this timestamp, by the same clock as [`Timestamp::now`].
    pub fn elapsed(self) -> Duration {
        Timestamp::now().duration_since(self)
    }

    /// Parses any ISO-8601 / RFC 3339 date-time the reference runtimes write: `Z` or a `±HH:MM`
    /// offset, 0 to 9 fraction digits. A missing offset is read as UTC.
    ///
    /// # Errors
    ///
    /// Returns [`TimestampError`] if the text is not such a date-time, or if its year is outside
    /// 1991–2499 (the range both reference runtimes accept).
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        use time::format_description::well_known::Rfc3339;
        let err = || TimestampError {
            input: text.to_owned(),
        };
        let trimmed = text.trim();
        let parsed = time::OffsetDateTime::parse(trimmed, &Rfc3339)
            .or_else(|_| time::OffsetDateTime::parse(&format!("{trimmed}Z"), &Rfc3339))
            .map_err(|_| err())?;
        let year = parsed.year();
        if year <= MIN_YEAR || year >= MAX_YEAR {
            return Err(err());
        }
        let nanos = parsed.unix_timestamp_nanos();
        u64::try_from(nanos).map(Timestamp).map_err(|_| err())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.0 / 1_000_000_000) as i64;
        let nanos = (self.0 % 1_000_000_000) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Seconds as the wire and the reference runtimes give them, as a [`Duration`]: negative is
/// zero (the runtimes accept negative timeouts as "already expired"), too large is
/// [`Duration::MAX`], NaN is zero.
pub(crate) fn duration_from_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// A [`Duration`] as the wire's seconds.
pub(crate) fn secs_of(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// An optional [`Duration`] as the wire's seconds, `null` for `None`.
pub(crate) fn secs_value(duration: Option<Duration>) -> serde_json::Value {
    duration.map_or(serde_json::Value::Null, |d| {
        serde_json::Value::from(secs_of(d))
    })
}

/// Serde for `Option<Duration>` fields as the wire's seconds (`null` for `None`).
pub(crate) mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_some(&super::secs_of(*d)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(deserializer)?;
        Ok(secs.map(super::duration_from_secs))
    }
}

/// A string that is not a date-time the bubus runtimes accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {input:?}: expected an ISO-8601 date-time between 1991 and 2499, like \
     2026-01-02T03:04:05.123456789Z"
)]
pub struct TimestampError {
    input: String,
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_canonically() {
        let t = Timestamp::from_unix_nanos(1_752_179_996_462_000_001);
        assert_eq!(t.to_string(), "2025-07-10T20:39:56.462000001Z");
        assert_eq!(t.to_string().len(), 30);
        assert_eq!(
            Timestamp::from_unix_nanos(0).to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn parses_offsets_and_short_fractions() {
        let a = Timestamp::parse("2025-07-10T22:39:56.462+02:00").unwrap();
        let b = Timestamp::parse("2025-07-10T20:39:56.462000000Z").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse("2025-07-10T20:39:56Z").unwrap();
        assert_eq!(c.to_string(), "2025-07-10T20:39:56.000000000Z");
        let naive = Timestamp::parse("2025-07-10T20:39:56.5").unwrap();
        assert_eq!(naive.to_string(), "2025-07-10T20:39:56.500000000Z");
    }

    #[test]
    fn rejects_garbage_and_out_of_range_years() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("1980-01-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("2600-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn now_is_strictly_increasing() {
        let mut prev = Timestamp::now();
        for _ in 0..10_000 {
            let next = Timestamp::now();
            assert!(next > prev);
            prev = next;
        }
    }

    #[test]
    fn a_shared_stamp_is_never_earlier_than_an_earlier_timestamp() {
        for _ in 0..1_000 {
            let before = Timestamp::now();
            assert!(Timestamp::now_shared() >= before);
        }
        // Even while the last timestamp handed out is ahead of the clock (as when many were
        // produced within one clock tick): 1 µs ahead, which the clock takes longer to pass
        // than a few reads of it.
        let ahead = Timestamp::clock() + 1_000;
        LAST.fetch_max(ahead, Ordering::Relaxed);
        assert!(Timestamp::now_shared().as_unix_nanos() >= ahead);
        assert!(Timestamp::now().as_unix_nanos() > ahead);
    }

    #[test]
    fn round_trips_through_serde() {
        let t = Timestamp::now();
        let json = serde_json::to_string(&t).unwrap();
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
