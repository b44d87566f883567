//! The Dutch working-day calendar used for the chain's deadlines ("within 3 or 5 working days").

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Dutch working days: Monday to Friday, except public holidays.
///
/// Public holidays, with today's rules applied to every year: New Year's Day (1 Jan), Easter
/// Monday, King's Day (27 April, or 26 April when the 27th is a Sunday), Liberation Day (5 May) in
/// lustrum years only (`year % 5 == 0`), Ascension Day (Easter + 39 days), Whit Monday (Easter +
/// 50 days), Christmas Day (25 Dec) and Boxing Day (26 Dec). Easter is computed with the
/// anonymous Gregorian (Meeus/Jones/Butcher) algorithm. Good Friday is not a holiday here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkingDays;

impl WorkingDays {
    /// Easter Sunday of `year` (Gregorian); `None` only outside chrono's date range.
    pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
        let a = year.rem_euclid(19);
        let b = year.div_euclid(100);
        let c = year.rem_euclid(100);
        let (d, e) = (b / 4, b % 4);
        let f = (b + 8) / 25;
        let g = (b - f + 1) / 3;
        let h = (19 * a + b - d - g + 15).rem_euclid(30);
        let (i, k) = (c / 4, c % 4);
        let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
        let m = (a + 11 * h + 22 * l) / 451;
        let n = h + l - 7 * m + 114;
        NaiveDate::from_ymd_opt(
            year,
            u32::try_from(n / 31).ok()?,
            u32::try_from(n % 31 + 1).ok()?,
        )
    }

    /// All public holidays of `year`, sorted, without duplicates (Ascension Day can fall on 5 May).
    /// Includes holidays that fall on a weekend.
    pub fn public_holidays(year: i32) -> Vec<NaiveDate> {
        let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
        let kings_day = ymd(4, 27).map(|d| {
            if d.weekday() == Weekday::Sun {
                d - Days::new(1)
            } else {
                d
            }
        });
        let liberation = if year.rem_euclid(5) == 0 {
            ymd(5, 5)
        } else {
            None
        };
        let easter = Self::easter_sunday(year);
        let after_easter = |n| easter.and_then(|e| e.checked_add_days(Days::new(n)));
        let mut days: Vec<NaiveDate> = [
            ymd(1, 1),
            after_easter(1),
            kings_day,
            liberation,
            after_easter(39),
            after_easter(50),
            ymd(12, 25),
            ymd(12, 26),
        ]
        .into_iter()
        .flatten()
        .collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    pub fn is_public_holiday(d: NaiveDate) -> bool {
        let (month, day, year) = (d.month(), d.day(), d.year());
        let fixed = matches!((month, day), (1, 1) | (12, 25) | (12, 26))
            || (month, day) == (5, 5) && year.rem_euclid(5) == 0
            || (month, day) == (4, 27) && d.weekday() != Weekday::Sun
            || (month, day) == (4, 26) && d.weekday() == Weekday::Sat;
        fixed
            || Self::easter_sunday(year).is_some_and(|e| matches!((d - e).num_days(), 1 | 39 | 50))
    }

    pub fn is_working_day(d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !Self::is_public_holiday(d)
    }

    /// The date `n` working days after `d`: the `n`-th working day strictly after `d`.
    ///
    /// `n == 0` returns `d` itself when it is a working day, else the next working day (so a
    /// deadline of "0 working days" that starts on a Sunday lands on Monday). At the very end of
    /// chrono's date range the result saturates.
    pub fn add_working_days(d: NaiveDate, n: u32) -> NaiveDate {
        let mut date = d;
        let mut left = n;
        if left == 0 {
            while !Self::is_working_day(date) {
                match date.succ_opt() {
                    Some(next) => date = next,
                    None => break,
                }
            }
            return date;
        }
        while left > 0 {
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
            if Self::is_working_day(date) {
                left -= 1;
            }
        }
        date
    }

    /// The number of working days in `(from, to]`: `from` excluded, `to` included. So
    /// `working_days_between(d, add_working_days(d, n)) == n` for `n > 0`. Negative when
    /// `to < from` (minus the count in `(to, from]`), 0 when equal. Runs in time linear in the
    /// number of years, not days.
    pub fn working_days_between(from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -Self::working_days_between(to, from);
        }
        // Weekdays in days 1..=n counted from 0001-01-01 (a Monday, day 1 of the common era).
        let weekdays_upto = |d: NaiveDate| {
            let n = i64::from(d.num_days_from_ce());
            n.div_euclid(7) * 5 + n.rem_euclid(7).min(5)
        };
        let weekdays = weekdays_upto(to) - weekdays_upto(from);
        let holidays_on_weekdays = (from.year()..=to.year())
            .flat_map(Self::public_holidays)
            .filter(|h| {
                from < *h && *h <= to && !matches!(h.weekday(), Weekday::Sat | Weekday::Sun)
            })
            .count();
        weekdays - i64::try_from(holidays_on_weekdays).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type W = WorkingDays;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter() {
        assert_eq!(W::easter_sunday(2022), Some(d(2022, 4, 17)));
        assert_eq!(W::easter_sunday(2023), Some(d(2023, 4, 9)));
        assert_eq!(W::easter_sunday(2024), Some(d(2024, 3, 31)));
        assert_eq!(W::easter_sunday(2025), Some(d(2025, 4, 20)));
        assert_eq!(W::easter_sunday(2026), Some(d(2026, 4, 5)));
        assert_eq!(
            W::easter_sunday(2285),
            Some(d(2285, 3, 22)),
            "earliest possible"
        );
        assert_eq!(
            W::easter_sunday(2038),
            Some(d(2038, 4, 25)),
            "latest possible"
        );
        for y in 1600..2500 {
            assert_eq!(W::easter_sunday(y).unwrap().weekday(), Weekday::Sun, "{y}");
        }
    }

    #[test]
    fn holidays() {
        let holiday = |y, m, day| W::is_public_holiday(d(y, m, day));
        assert!(holiday(2025, 1, 1));
        assert!(holiday(2025, 4, 21), "Easter Monday");
        assert!(!holiday(2025, 4, 18), "Good Friday is not a holiday");
        assert!(
            holiday(2025, 4, 26),
            "King's Day moves to Saturday when the 27th is a Sunday"
        );
        assert!(!holiday(2025, 4, 27));
        assert!(holiday(2024, 4, 27));
        assert!(!holiday(2024, 4, 26));
        assert!(holiday(2025, 5, 5), "Liberation Day in a lustrum year");
        assert!(!holiday(2024, 5, 5), "not in other years");
        assert!(holiday(2025, 5, 29), "Ascension Day");
        assert!(holiday(2025, 6, 9), "Whit Monday");
        assert!(holiday(2024, 5, 9) && holiday(2024, 5, 20) && holiday(2024, 4, 1));
        assert!(holiday(2025, 12, 25) && holiday(2025, 12, 26));
        assert!(!holiday(2025, 12, 24) && !holiday(2025, 12, 31));
    }

    #[test]
    fn holiday_list_matches_predicate() {
        assert_eq!(
            W::public_holidays(2025),
            vec![
                d(2025, 1, 1),
                d(2025, 4, 21),
                d(2025, 4, 26),
                d(2025, 5, 5),
                d(2025, 5, 29),
                d(2025, 6, 9),
                d(2025, 12, 25),
                d(2025, 12, 26),
            ]
        );
        // 2005: Ascension Day fell on 5 May, a lustrum year: one date, not two
        assert_eq!(W::public_holidays(2005).len(), 7);
        for y in 1990..2060 {
            let mut day = d(y, 1, 1);
            let mut listed = Vec::new();
            while day.year() == y {
                if W::is_public_holiday(day) {
                    listed.push(day);
                }
                day = day.succ_opt().unwrap();
            }
            assert_eq!(listed, W::public_holidays(y), "{y}");
        }
    }

    #[test]
    fn add_working_days() {
        // Friday before Christmas + 1 = Tuesday after Boxing Day
        assert_eq!(W::add_working_days(d(2022, 12, 23), 1), d(2022, 12, 27));
        assert_eq!(W::add_working_days(d(2024, 1, 8), 5), d(2024, 1, 15));
        // Thu + 3: Good Friday counts, Easter Monday does not
        assert_eq!(W::add_working_days(d(2025, 4, 17), 3), d(2025, 4, 23));
        assert_eq!(W::add_working_days(d(2024, 1, 10), 0), d(2024, 1, 10));
        assert_eq!(
            W::add_working_days(d(2024, 1, 13), 0),
            d(2024, 1, 15),
            "Saturday -> Monday"
        );
        assert_eq!(W::add_working_days(d(2024, 1, 13), 1), d(2024, 1, 15));
        assert_eq!(W::add_working_days(NaiveDate::MAX, 3), NaiveDate::MAX);
    }

    #[test]
    fn working_days_between() {
        assert_eq!(W::working_days_between(d(2022, 12, 23), d(2022, 12, 27)), 1);
        assert_eq!(W::working_days_between(d(2024, 1, 8), d(2024, 1, 8)), 0);
        assert_eq!(W::working_days_between(d(2024, 1, 15), d(2024, 1, 8)), -5);
        // 2024: 262 weekdays; holidays on weekdays: 1 Jan, Easter Monday, Ascension, Whit Monday,
        // Christmas, Boxing Day (King's Day is a Saturday, no Liberation Day)
        assert_eq!(
            W::working_days_between(d(2023, 12, 31), d(2024, 12, 31)),
            256
        );
    }

    #[test]
    fn fast_count_matches_day_by_day() {
        let slow = |from: NaiveDate, to: NaiveDate| {
            from.iter_days()
                .skip(1)
                .take_while(|x| *x <= to)
                .filter(|x| W::is_working_day(*x))
                .count()
        };
        let start = d(2019, 12, 20);
        for a in 0..40u64 {
            for len in [0u64, 1, 2, 3, 6, 7, 8, 13, 30, 100, 400, 800] {
                let from = start + Days::new(a * 17);
                let to = from + Days::new(len);
                assert_eq!(
                    W::working_days_between(from, to),
                    slow(from, to) as i64,
                    "{from} {to}"
                );
            }
        }
        for n in 0..30 {
            let from = d(2025, 4, 15);
            let to = W::add_working_days(from, n);
            assert_eq!(W::working_days_between(from, to), i64::from(n));
        }
    }
}
