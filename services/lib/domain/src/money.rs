//! Money as whole euro cents.

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// An amount of money in euro cents, never negative (amounts in the standard, `LDT_Bedrag`, are
/// non-negative integers in cents; debit/credit is a separate indicator).
///
/// `Display` uses Dutch notation: `€ 1.234,56`. Addition saturates at `i64::MAX` instead of
/// overflowing. Serializes as a JSON integer (cents).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Cents(i64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// Fails with field `amount`, rule "must not be negative" for a negative value.
    pub fn new(cents: i64) -> Result<Self, FieldError> {
        if cents < 0 {
            Err(FieldError::new("amount", "must not be negative"))
        } else {
            Ok(Self(cents))
        }
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    /// Price times quantity (PxQ); `None` on overflow.
    pub fn checked_mul(self, quantity: u32) -> Option<Cents> {
        self.0.checked_mul(i64::from(quantity)).map(Cents)
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Cents) -> Option<Cents> {
        self.0.checked_sub(other.0).filter(|v| *v >= 0).map(Cents)
    }
}

impl Add for Cents {
    type Output = Cents;
    fn add(self, other: Cents) -> Cents {
        Cents(self.0.saturating_add(other.0))
    }
}

impl Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Cents> for Cents {
    fn sum<I: Iterator<Item = &'a Cents>>(iter: I) -> Cents {
        iter.copied().sum()
    }
}

impl TryFrom<i64> for Cents {
    type Error = FieldError;
    fn try_from(v: i64) -> Result<Self, FieldError> {
        Self::new(v)
    }
}

impl From<Cents> for i64 {
    fn from(c: Cents) -> i64 {
        c.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let euros = (self.0 / 100).to_string();
        let mut grouped = String::with_capacity(euros.len() + euros.len() / 3);
        for (i, ch) in euros.chars().enumerate() {
            if i > 0 && (euros.len() - i).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(ch);
        }
        write!(f, "€ {grouped},{:02}", self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: i64) -> Cents {
        Cents::new(v).unwrap()
    }

    #[test]
    fn new_rejects_negative() {
        assert_eq!(c(0).as_i64(), 0);
        assert_eq!(
            Cents::new(-1).unwrap_err(),
            FieldError::new("amount", "must not be negative")
        );
    }

    #[test]
    fn dutch_display() {
        assert_eq!(c(0).to_string(), "€ 0,00");
        assert_eq!(c(5).to_string(), "€ 0,05");
        assert_eq!(c(100).to_string(), "€ 1,00");
        assert_eq!(c(99_999).to_string(), "€ 999,99");
        assert_eq!(c(123_456).to_string(), "€ 1.234,56");
        assert_eq!(c(100_000_000).to_string(), "€ 1.000.000,00");
        assert_eq!(
            Cents::new(i64::MAX).unwrap().to_string(),
            "€ 92.233.720.368.547.758,07"
        );
    }

    #[test]
    fn arithmetic() {
        assert_eq!(c(150) + c(250), c(400));
        assert_eq!([c(1), c(2), c(3)].iter().sum::<Cents>(), c(6));
        assert_eq!(vec![c(1), c(2)].into_iter().sum::<Cents>(), c(3));
        assert_eq!(
            Cents::new(i64::MAX).unwrap() + c(1),
            Cents::new(i64::MAX).unwrap()
        );
        assert_eq!(c(2_500).checked_mul(4), Some(c(10_000)));
        assert_eq!(c(i64::MAX).checked_mul(2), None);
        assert_eq!(c(5).checked_sub(c(3)), Some(c(2)));
        assert_eq!(c(3).checked_sub(c(5)), None);
    }

    #[test]
    fn serde() {
        assert_eq!(serde_json::to_string(&c(1234)).unwrap(), "1234");
        assert_eq!(serde_json::from_str::<Cents>("1234").unwrap(), c(1234));
        assert!(serde_json::from_str::<Cents>("-1").is_err());
    }
}
