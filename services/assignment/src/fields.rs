//! Parsing request fields, collecting every malformed one so a single reply names them all.

use chrono::NaiveDate;
use rz_domain::{AgbCode, FieldError, GemeenteCode, Period, ProductCode, parse_date};
use rz_proto::types::v1 as types;

use crate::domain::MAX_NUMBER;
use crate::error::Error;
use crate::upstream::SubsegmentInfo;

pub(crate) use rz_domain::Fields;

/// The request's `product_code` for subsegment `sub` (see
/// [`rz_domain::ExecutionVariant::product_code`]); without a known subsegment, only its form is
/// checked. Empty when the assignment names no product.
pub(crate) fn product_code(f: &mut Fields, sub: Option<&SubsegmentInfo>, given: &str) -> String {
    const FIELD: &str = "product_code";
    match sub {
        Some(s) => f
            .check(s.variant.product_code(&s.product_codes, given, FIELD))
            .flatten(),
        None if given.is_empty() => None,
        None => f.check(ProductCode::parse(given).map_err(|e| e.at(FIELD))),
    }
    .map(|c| c.as_str().to_owned())
    .unwrap_or_default()
}

pub(crate) fn agb(field: &str, v: &str) -> Result<AgbCode, FieldError> {
    AgbCode::parse(v).map_err(|e| e.at(field))
}

pub(crate) fn municipality(field: &str, v: &str) -> Result<GemeenteCode, FieldError> {
    GemeenteCode::parse(v).map_err(|e| e.at(field))
}

/// An optional municipality: `None` when the field is empty.
pub(crate) fn optional_municipality(f: &mut Fields, field: &str, v: &str) -> Option<GemeenteCode> {
    if v.is_empty() {
        None
    } else {
        f.check(municipality(field, v))
    }
}

/// A request without a value that [`Fields::finish`] would have named as malformed (does not
/// happen: for the `let ... else` after `finish`).
pub(crate) fn incomplete() -> Error {
    Error::field("request", "incomplete")
}

/// The provider, municipality and assignment number a provider's message names (fields
/// `agb_code`, `municipality`, `assignment_number`); `None` when one is malformed.
pub(crate) fn provider_assignment(
    f: &mut Fields,
    agb_code: &str,
    municipality_code: &str,
    assignment_number: u32,
) -> Option<(AgbCode, GemeenteCode, u32)> {
    let agb = f.check(agb("agb_code", agb_code));
    let m = f.check(municipality("municipality", municipality_code));
    let n = f.check(number("assignment_number", assignment_number));
    Some((agb?, m?, n?))
}

/// The municipality and assignment number a request names (fields `municipality`,
/// `assignment_number`); `None` when one is malformed.
pub(crate) fn assignment_id(
    f: &mut Fields,
    municipality_code: &str,
    assignment_number: u32,
) -> Option<(GemeenteCode, u32)> {
    let m = f.check(municipality("municipality", municipality_code));
    let n = f.check(number("assignment_number", assignment_number));
    Some((m?, n?))
}

pub(crate) fn number(field: &str, v: u32) -> Result<u32, FieldError> {
    if (1..=MAX_NUMBER).contains(&v) {
        Ok(v)
    } else {
        Err(FieldError::new(field, "must be 1 to 999999999"))
    }
}

pub(crate) fn date(field: &str, v: &str) -> Result<NaiveDate, FieldError> {
    parse_date(field, v)
}

pub(crate) fn optional_date(field: &str, v: &str) -> Result<Option<NaiveDate>, FieldError> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse_date(field, v).map(Some)
    }
}

/// A required period (`period.start`, optional `period.end` not before the start).
pub(crate) fn period(p: Option<&types::Period>) -> Result<Period, Vec<FieldError>> {
    let Some(p) = p else {
        return Err(vec![FieldError::new("period.start", "must not be empty")]);
    };
    let start = parse_date("period.start", &p.start);
    let end = optional_date("period.end", &p.end);
    match (start, end) {
        (Ok(s), Ok(e)) => Period::new(s, e).map_err(|e| vec![e.at("period.end")]),
        (s, e) => Err([s.err(), e.err()].into_iter().flatten().collect()),
    }
}
