//! Parsing request fields, collecting every malformed one so a single reply names them all.

use chrono::NaiveDate;
use rz_domain::{AgbCode, FieldError, GemeenteCode, Period, ProductCode, parse_date};
use rz_proto::types::v1 as types;

use crate::domain::MAX_NUMBER;
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

pub(crate) fn agb(field: &str, v: &str) -> Result<String, FieldError> {
    AgbCode::parse(v)
        .map(|a| a.to_string())
        .map_err(|e| e.at(field))
}

pub(crate) fn municipality(field: &str, v: &str) -> Result<String, FieldError> {
    GemeenteCode::parse(v)
        .map(|m| m.to_string())
        .map_err(|e| e.at(field))
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
