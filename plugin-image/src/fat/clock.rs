//! The one timestamp every entry of an image gets: `SOURCE_DATE_EPOCH` if set, else the DOS
//! epoch, so that images do not depend on when they were built.

use std::sync::Mutex;

use fatfs::{Date, DateTime, Time, TimeProvider};
use image_runner_core::Error;

/// A time provider for fatfs that always answers the same instant.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }

    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

const DOS_EPOCH: DateTime = DateTime {
    date: Date {
        year: 1980,
        month: 1,
        day: 1,
    },
    time: Time {
        hour: 0,
        min: 0,
        sec: 0,
        millis: 0,
    },
};

/// The last instant a DOS timestamp can hold (2-second resolution).
const DOS_END: DateTime = DateTime {
    date: Date {
        year: 2107,
        month: 12,
        day: 31,
    },
    time: Time {
        hour: 23,
        min: 59,
        sec: 58,
        millis: 0,
    },
};

static DOS_EPOCH_PROVIDER: FixedTime = FixedTime(DOS_EPOCH);

/// fatfs wants a `&'static` provider. Providers for other instants are leaked, once per distinct
/// instant, which bounds the leak to a few bytes per `SOURCE_DATE_EPOCH` value seen.
static LEAKED: Mutex<Vec<&'static FixedTime>> = Mutex::new(Vec::new());

/// The provider for the current environment (`SOURCE_DATE_EPOCH`).
pub(super) fn from_env() -> Result<&'static FixedTime, Error> {
    instant_provider(crate::timestamp::epoch_from_env("fat")?)
}

/// The provider for a `SOURCE_DATE_EPOCH` value (`None` or empty: unset).
#[cfg(test)]
pub(super) fn provider(source_date_epoch: Option<&str>) -> Result<&'static FixedTime, Error> {
    instant_provider(crate::timestamp::parse_epoch(source_date_epoch, "fat")?)
}

fn instant_provider(seconds: Option<i64>) -> Result<&'static FixedTime, Error> {
    let Some(seconds) = seconds else {
        return Ok(&DOS_EPOCH_PROVIDER);
    };
    let instant = dos_date_time(seconds);
    if instant == DOS_EPOCH {
        return Ok(&DOS_EPOCH_PROVIDER);
    }
    let mut leaked = LEAKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = leaked.iter().find(|p| p.0 == instant) {
        return Ok(found);
    }
    let new: &'static FixedTime = Box::leak(Box::new(FixedTime(instant)));
    leaked.push(new);
    Ok(new)
}

/// Converts Unix seconds (UTC) to a DOS date and time, clamped to the range DOS can hold.
pub(super) fn dos_date_time(unix_seconds: i64) -> DateTime {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = crate::timestamp::civil_from_days(days);
    if year < 1980 {
        return DOS_EPOCH;
    }
    if year > 2107 {
        return DOS_END;
    }
    // Every value below is within its field's range, so the casts cannot truncate.
    DateTime {
        date: Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: Time {
            hour: (second_of_day / 3600) as u16,
            min: (second_of_day / 60 % 60) as u16,
            sec: (second_of_day % 60) as u16,
            millis: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd_hms(t: DateTime) -> (u16, u16, u16, u16, u16, u16) {
        (
            t.date.year,
            t.date.month,
            t.date.day,
            t.time.hour,
            t.time.min,
            t.time.sec,
        )
    }

    #[test]
    fn unix_seconds_convert_to_dos_time() {
        assert_eq!(ymd_hms(dos_date_time(315_532_800)), (1980, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 UTC: a leap day in a century year divisible by 400.
        assert_eq!(
            ymd_hms(dos_date_time(951_827_696)),
            (2000, 2, 29, 12, 34, 56)
        );
        // 2024-12-31 23:59:59 UTC.
        assert_eq!(
            ymd_hms(dos_date_time(1_735_689_599)),
            (2024, 12, 31, 23, 59, 59)
        );
        // 2100-03-01 00:00:00 UTC: 2100 is not a leap year.
        assert_eq!(ymd_hms(dos_date_time(4_107_542_400)), (2100, 3, 1, 0, 0, 0));
    }

    #[test]
    fn out_of_range_instants_are_clamped() {
        assert_eq!(dos_date_time(0), DOS_EPOCH);
        assert_eq!(dos_date_time(-86_400 * 365), DOS_EPOCH);
        assert_eq!(dos_date_time(i64::from(u32::MAX) * 2), DOS_END);
    }

    #[test]
    fn providers_are_shared_and_bad_values_refused() {
        assert!(std::ptr::eq(provider(None).unwrap(), &DOS_EPOCH_PROVIDER));
        assert!(std::ptr::eq(
            provider(Some("")).unwrap(),
            &DOS_EPOCH_PROVIDER
        ));
        let a = provider(Some("1700000000")).unwrap();
        let b = provider(Some(" 1700000000 ")).unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(
            ymd_hms(a.get_current_date_time()),
            (2023, 11, 14, 22, 13, 20)
        );
        let err = provider(Some("yesterday")).unwrap_err().to_string();
        assert!(
            err.contains("SOURCE_DATE_EPOCH") && err.contains("yesterday"),
            "{err}"
        );
    }
}
