//! The one instant every format stamps into its image: `SOURCE_DATE_EPOCH` when set, so images
//! never depend on when they were built; and the calendar arithmetic the formats share.

use image_runner_core::Error;

/// Reads `SOURCE_DATE_EPOCH` from the environment: `None` when unset or empty.
pub(crate) fn epoch_from_env(format: &str) -> Result<Option<i64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => parse_epoch(Some(&value), format),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(bad_epoch("<not UTF-8>", format)),
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value (`None` or empty: unset); `format` names the writer in
/// errors.
pub(crate) fn parse_epoch(value: Option<&str>, format: &str) -> Result<Option<i64>, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| bad_epoch(value, format)),
    }
}

fn bad_epoch(value: &str, format: &str) -> Error {
    Error::plugin(
        format,
        format!(
            "SOURCE_DATE_EPOCH is `{value}`, which is not a whole number of seconds since \
             1970-01-01 UTC; fix or unset it"
        ),
    )
}

/// The proleptic Gregorian date (year, month, day) of a day counted from 1970-01-01. Works in
/// 400-year eras whose years start on March 1st, so that the leap day is the last day of a year.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    const DAYS_PER_ERA: i64 = 146_097;
    // Days from 0000-03-01 to 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March … 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(3652), (1980, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn epochs_parse_or_say_what_is_wrong() {
        assert_eq!(parse_epoch(None, "iso").unwrap(), None);
        assert_eq!(parse_epoch(Some(" "), "iso").unwrap(), None);
        assert_eq!(
            parse_epoch(Some("1700000000"), "iso").unwrap(),
            Some(1_700_000_000)
        );
        let err = parse_epoch(Some("yesterday"), "fat")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SOURCE_DATE_EPOCH")
                && err.contains("yesterday")
                && err.starts_with("fat"),
            "{err}"
        );
    }
}
