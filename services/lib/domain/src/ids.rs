//! Identifiers: BSN, AGB code, municipality code, KvK number, product code, assignment number and
//! message identification. Each parses from text, keeps its canonical text form (leading zeros
//! included), and (de)serializes through the same validation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// True if `s` is exactly `n` ASCII digits.
fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A validated identifier kept as text. The check returns the broken rule.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, field = $field:literal, check = $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The default field name in a [`FieldError`].
            pub const FIELD: &'static str = $field;

            pub fn parse(s: &str) -> Result<Self, FieldError> {
                Self::check(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn check(s: &str) -> Result<(), FieldError> {
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(s).map_err(|rule| FieldError::new($field, rule))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Burgerservicenummer: 9 digits that pass the weighted 11-test (weights 9..2 and -1).
    /// `000000000` is rejected. `Debug` hides the number (`Bsn(***)`); `Display` and `as_str` show it.
    Bsn,
    field = "bsn",
    check = |s| {
        if !is_digits(s, 9) {
            return Err("must be 9 digits");
        }
        if s == "000000000" {
            return Err("must not be 000000000");
        }
        const WEIGHTS: [i32; 9] = [9, 8, 7, 6, 5, 4, 3, 2, -1];
        let sum: i32 = s.bytes().zip(WEIGHTS).map(|(b, w)| i32::from(b - b'0') * w).sum();
        if sum % 11 == 0 { Ok(()) } else { Err("fails the 11-test") }
    }
);

impl Bsn {
    /// A deterministic valid BSN for number `n`, for demos, tests, benchmarks and fault runs: the
    /// first valid one (11-test) from `20000000 + 10 n` on, so numbers 20,000,000 to 99,999,999
    /// (`n` wraps at 7,999,999). Never a real resident's on purpose, but a real BSN can have this
    /// form: use it only with synthetic data.
    pub fn synthetic(n: u32) -> Self {
        const W: [u32; 8] = [9, 8, 7, 6, 5, 4, 3, 2];
        let mut head = 20_000_000 + (n % 7_999_999) * 10;
        loop {
            let s = format!("{head:08}");
            let sum: u32 = s.bytes().zip(W).map(|(b, w)| u32::from(b - b'0') * w).sum();
            if sum % 11 < 10 {
                return Self(format!("{s}{}", sum % 11));
            }
            head += 1;
        }
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(***)")
    }
}

string_id!(
    /// AGB code: the national code of a care provider (Algemeen GegevensBeheer), exactly 8 digits.
    #[derive(Debug)]
    AgbCode,
    field = "agb_code",
    check = |s| if is_digits(s, 8) { Ok(()) } else { Err("must be 8 digits") }
);

string_id!(
    /// CBS municipality code (gemeentecode): exactly 4 digits, leading zero kept (`0222`).
    #[derive(Debug)]
    GemeenteCode,
    field = "municipality_code",
    check = |s| if is_digits(s, 4) { Ok(()) } else { Err("must be 4 digits") }
);

string_id!(
    /// KvK number: Chamber of Commerce registration number, exactly 8 digits.
    #[derive(Debug)]
    KvkNumber,
    field = "kvk_number",
    check = |s| if is_digits(s, 8) { Ok(()) } else { Err("must be 8 digits") }
);

string_id!(
    /// Product code within a product category: 1 to 5 ASCII letters or digits (e.g. `45A53`).
    #[derive(Debug)]
    ProductCode,
    field = "product_code",
    check = |s| {
        if (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err("must be 1 to 5 letters or digits")
        }
    }
);

string_id!(
    /// Message identification (IdentificatieBericht): 1 to 12 characters, no whitespace.
    #[derive(Debug)]
    MessageId,
    field = "message_id",
    check = |s| {
        let n = s.chars().count();
        if (1..=12).contains(&n) && !s.chars().any(char::is_whitespace) {
            Ok(())
        } else {
            Err("must be 1 to 12 characters without whitespace")
        }
    }
);

/// Assignment number (ToewijzingNummer): an integer in `0..=999_999_999`, unique per municipality.
///
/// Serializes as a JSON number (not a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct AssignmentNumber(u32);

impl AssignmentNumber {
    pub const FIELD: &'static str = "assignment_number";
    pub const MAX: u32 = 999_999_999;
    const RULE: &'static str = "must be a whole number from 0 to 999999999";

    /// Parses decimal digits only (leading zeros allowed, no sign or spaces).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(Self::FIELD, Self::RULE));
        }
        s.parse::<u32>()
            .ok()
            .filter(|&v| v <= Self::MAX)
            .map(Self)
            .ok_or_else(|| FieldError::new(Self::FIELD, Self::RULE))
    }

    pub fn from_i64(n: i64) -> Result<Self, FieldError> {
        u32::try_from(n)
            .ok()
            .filter(|&v| v <= Self::MAX)
            .map(Self)
            .ok_or_else(|| FieldError::new(Self::FIELD, Self::RULE))
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for AssignmentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AssignmentNumber {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::parse(s)
    }
}

impl TryFrom<i64> for AssignmentNumber {
    type Error = FieldError;
    fn try_from(n: i64) -> Result<Self, FieldError> {
        Self::from_i64(n)
    }
}

impl From<AssignmentNumber> for u32 {
    fn from(v: AssignmentNumber) -> u32 {
        v.0
    }
}

impl From<AssignmentNumber> for i64 {
    fn from(v: AssignmentNumber) -> i64 {
        i64::from(v.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule<T: fmt::Debug>(r: Result<T, FieldError>) -> String {
        r.unwrap_err().rule
    }

    #[test]
    fn bsn() {
        for ok in ["111222333", "123456782", "999990019"] {
            assert_eq!(Bsn::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(rule(Bsn::parse("123456789")), "fails the 11-test");
        for n in [0, 1, 99_999, 300_000, 7_999_998, u32::MAX] {
            let b = Bsn::synthetic(n);
            assert_eq!(Bsn::parse(b.as_str()).unwrap(), b, "{n}");
        }
        assert_ne!(Bsn::synthetic(1), Bsn::synthetic(2));
        assert_eq!(rule(Bsn::parse("000000000")), "must not be 000000000");
        for bad in [
            "",
            "11122233",
            "1112223330",
            "11122233a",
            " 11122233",
            "１11222333",
        ] {
            assert_eq!(rule(Bsn::parse(bad)), "must be 9 digits", "{bad:?}");
        }
        assert_eq!(Bsn::parse("x").unwrap_err().field, "bsn");
    }

    #[test]
    fn bsn_debug_hides_the_number() {
        let b = Bsn::parse("111222333").unwrap();
        assert_eq!(format!("{b:?}"), "Bsn(***)");
        assert_eq!(format!("{:?}", Some(&b)), "Some(Bsn(***))");
        assert_eq!(b.to_string(), "111222333");
    }

    #[test]
    fn agb_kvk_gemeente() {
        assert_eq!(AgbCode::parse("12345678").unwrap().as_str(), "12345678");
        assert_eq!(rule(AgbCode::parse("1234567")), "must be 8 digits");
        assert_eq!(rule(AgbCode::parse("1234567a")), "must be 8 digits");
        assert_eq!(rule(AgbCode::parse("123456789")), "must be 8 digits");
        assert!(KvkNumber::parse("01234567").is_ok());
        assert!(KvkNumber::parse("0123456").is_err());
        assert_eq!(GemeenteCode::parse("0222").unwrap().to_string(), "0222");
        assert!(GemeenteCode::parse("222").is_err());
        assert!(GemeenteCode::parse("02222").is_err());
        assert_eq!(
            GemeenteCode::parse("02a2").unwrap_err().field,
            "municipality_code"
        );
    }

    #[test]
    fn product_code_and_message_id() {
        for ok in ["1", "45A53", "abc"] {
            assert!(ProductCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "123456", "45 53", "45-53", "é"] {
            assert!(ProductCode::parse(bad).is_err(), "{bad}");
        }
        assert!(MessageId::parse("MSG-2024-001").is_ok());
        assert!(
            MessageId::parse("ééééééééééé1").is_ok(),
            "12 characters, more bytes"
        );
        for bad in ["", "MSG-2024-0001", "MSG 1", "a\tb"] {
            assert!(MessageId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assignment_number() {
        assert_eq!(AssignmentNumber::parse("0").unwrap().value(), 0);
        assert_eq!(AssignmentNumber::parse("000000042").unwrap().value(), 42);
        assert_eq!(
            AssignmentNumber::parse("999999999").unwrap().value(),
            999_999_999
        );
        for bad in [
            "",
            "1000000000",
            "-1",
            "+1",
            " 1",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(AssignmentNumber::parse(bad).is_err(), "{bad}");
        }
        assert!(AssignmentNumber::from_i64(-1).is_err());
        assert!(AssignmentNumber::from_i64(1_000_000_000).is_err());
        assert_eq!(AssignmentNumber::from_i64(7).unwrap().to_string(), "7");
    }

    #[test]
    fn serde_validates() {
        let agb: AgbCode = serde_json::from_str("\"12345678\"").unwrap();
        assert_eq!(serde_json::to_string(&agb).unwrap(), "\"12345678\"");
        assert!(serde_json::from_str::<AgbCode>("\"1234\"").is_err());
        assert!(serde_json::from_str::<Bsn>("\"123456789\"").is_err());
        let n: AssignmentNumber = serde_json::from_str("12").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "12");
        assert!(serde_json::from_str::<AssignmentNumber>("1000000000").is_err());
    }
}
