//! Granted products (indications): the municipality's "what" for a resident, their size as the
//! execution variant of the subsegment's financing demands, and amendments (change, extend, end).
//!
//! A product's status is derived from its end date: it is `ended` once its end date lies before
//! today, `active` otherwise. Ending a product (END) therefore sets an earlier end date, and the
//! product stays `active` until that date has passed; an END whose new end lies before today (an
//! amendment decided with an earlier date) shows it `ended` at once.

use chrono::NaiveDate;
use rz_domain::{
    AgbCode, Cents, ClientKey, ExecutionVariant, FieldError, Frequency, Law, Period, ProductCode,
    Unit,
};
use uuid::Uuid;

use super::catalogue::{Catalogue, Subsegment};
use super::{AccessError, Fields};

/// Volume and budget in the standard are non-negative integers below 100,000,000.
pub const STANDARD_LIMIT: i64 = 100_000_000;

/// The region's six goals; a granted product names the one its result serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Goal {
    TimelyLastingResult,
    MeaningfulLife,
    Participation,
    FlexibleAmbulant,
    ResidentSatisfaction,
    ChainSatisfaction,
}

impl Goal {
    pub const ALL: [Goal; 6] = [
        Goal::TimelyLastingResult,
        Goal::MeaningfulLife,
        Goal::Participation,
        Goal::FlexibleAmbulant,
        Goal::ResidentSatisfaction,
        Goal::ChainSatisfaction,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::TimelyLastingResult => "timely_lasting_result",
            Self::MeaningfulLife => "meaningful_life",
            Self::Participation => "participation",
            Self::FlexibleAmbulant => "flexible_ambulant",
            Self::ResidentSatisfaction => "resident_satisfaction",
            Self::ChainSatisfaction => "chain_satisfaction",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.code() == s)
    }
}

/// The size of a product, following its execution variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// taakgericht: only the product category is assigned.
    Task,
    /// outputgericht: a budget.
    Budget(Cents),
    /// inspanningsgericht: volume + unit + frequency.
    Effort {
        volume: u32,
        unit: Unit,
        frequency: Frequency,
    },
}

impl Size {
    pub fn budget_cents(&self) -> i64 {
        match self {
            Self::Budget(c) => c.as_i64(),
            _ => 0,
        }
    }
}

/// The size fields of a request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawSize<'a> {
    pub budget_cents: i64,
    pub volume: u32,
    pub unit: &'a str,
    pub frequency: &'a str,
}

impl RawSize<'_> {
    pub fn is_empty(&self) -> bool {
        self.budget_cents == 0
            && self.volume == 0
            && self.unit.trim().is_empty()
            && self.frequency.trim().is_empty()
    }
}

/// Checks the size fields against `variant`; field names are prefixed with `prefix`
/// (`grant[0].` or empty).
pub fn size_for(
    variant: ExecutionVariant,
    raw: RawSize<'_>,
    prefix: &str,
    f: &mut Fields,
) -> Option<Size> {
    let name = variant.code();
    let a = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let field = |n: &str| format!("{prefix}{n}");
    let empty = format!("must be empty for {a} {name} product");
    let must_be_empty = |f: &mut Fields, budget: bool, volume: bool, unit: bool, freq: bool| {
        if budget && raw.budget_cents != 0 {
            f.push(field("budget_cents"), &empty);
        }
        if volume && raw.volume != 0 {
            f.push(field("volume"), &empty);
        }
        if unit && !raw.unit.trim().is_empty() {
            f.push(field("unit"), &empty);
        }
        if freq && !raw.frequency.trim().is_empty() {
            f.push(field("frequency"), &empty);
        }
    };
    match variant {
        ExecutionVariant::Taakgericht => {
            must_be_empty(f, true, true, true, true);
            Some(Size::Task)
        }
        ExecutionVariant::Outputgericht => {
            must_be_empty(f, false, true, true, true);
            if raw.budget_cents <= 0 {
                f.push(
                    field("budget_cents"),
                    format!("must be more than 0 for {a} {name} product"),
                );
                None
            } else if raw.budget_cents >= STANDARD_LIMIT {
                f.push(field("budget_cents"), "must be below 100000000");
                None
            } else {
                f.check(Cents::new(raw.budget_cents).map_err(|e| e.at(field("budget_cents"))))
                    .map(Size::Budget)
            }
        }
        ExecutionVariant::Inspanningsgericht => {
            must_be_empty(f, true, false, false, false);
            let volume = if raw.volume == 0 {
                f.push(
                    field("volume"),
                    format!("must be more than 0 for {a} {name} product"),
                );
                None
            } else if i64::from(raw.volume) >= STANDARD_LIMIT {
                f.push(field("volume"), "must be below 100000000");
                None
            } else {
                Some(raw.volume)
            };
            let unit = f.check(Unit::from_code(raw.unit.trim()).map_err(|e| e.at(field("unit"))));
            let frequency = f.check(
                Frequency::from_code(raw.frequency.trim()).map_err(|e| e.at(field("frequency"))),
            );
            match (volume, unit, frequency) {
                (Some(volume), Some(unit), Some(frequency)) => Some(Size::Effort {
                    volume,
                    unit,
                    frequency,
                }),
                _ => None,
            }
        }
    }
}

/// A product granted by a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedProduct {
    pub id: Uuid,
    pub case_id: Uuid,
    pub client_key: ClientKey,
    pub law: Law,
    pub segment_code: String,
    pub subsegment_code: String,
    pub product_category: String,
    pub product_code: Option<ProductCode>,
    pub result: String,
    pub goal: Goal,
    pub period: Period,
    pub variant: ExecutionVariant,
    pub size: Size,
    pub preferred_provider: Option<AgbCode>,
    /// The date of the decision that granted it.
    pub granted_on: NaiveDate,
    pub version: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductStatus {
    Active,
    Ended,
}

impl ProductStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
        }
    }
}

impl GrantedProduct {
    /// `ended` once the end date lies before `today`, `active` otherwise.
    pub fn status(&self, today: NaiveDate) -> ProductStatus {
        match self.period.end() {
            Some(end) if end < today => ProductStatus::Ended,
            _ => ProductStatus::Active,
        }
    }
}

/// One product of a decision, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductInput<'a> {
    pub subsegment_code: &'a str,
    pub product_code: &'a str,
    pub result: &'a str,
    pub goal: Option<Goal>,
    pub period_start: &'a str,
    pub period_end: &'a str,
    pub has_period: bool,
    pub size: RawSize<'a>,
    pub preferred_provider_agb: &'a str,
}

/// A checked product, before the decision gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPlan {
    pub subsegment: Subsegment,
    pub product_code: Option<ProductCode>,
    pub result: String,
    pub goal: Goal,
    pub period: Period,
    pub size: Size,
    pub preferred_provider: Option<AgbCode>,
}

/// Checks the fields of product `i` of a decision (every error named as `grant[i].<field>`).
pub fn plan(
    i: usize,
    p: &ProductInput<'_>,
    catalogue: &Catalogue,
    f: &mut Fields,
) -> Option<ProductPlan> {
    let field = |n: &str| format!("grant[{i}].{n}");
    let subsegment = if p.subsegment_code.trim().is_empty() {
        f.push(field("subsegment_code"), "must not be empty");
        None
    } else {
        let s = catalogue.subsegment(p.subsegment_code.trim());
        if s.is_none() {
            f.push(
                field("subsegment_code"),
                "must be a subsegment of the region's catalogue",
            );
        }
        s
    };
    let product_code = match subsegment {
        Some(s) => f
            .check(s.execution_variant().product_code(
                &s.product_codes,
                p.product_code,
                &field("product_code"),
            ))
            .flatten(),
        None if p.product_code.trim().is_empty() => None,
        None => f.check(
            ProductCode::parse(p.product_code.trim()).map_err(|e| e.at(field("product_code"))),
        ),
    };
    let result = f.required(&field("result"), p.result);
    if p.goal.is_none() {
        f.push(field("goal"), "must be one of the region's six goals");
    }
    let period = if !p.has_period {
        f.push(field("period"), "must be given");
        None
    } else {
        let start = f.check(super::date(&field("period.start"), p.period_start.trim()));
        let end = if p.period_end.trim().is_empty() {
            Some(None)
        } else {
            f.check(super::date(&field("period.end"), p.period_end.trim()))
                .map(Some)
        };
        match (start, end) {
            (Some(s), Some(e)) => f.check(Period::new(s, e).map_err(|e| e.at(field("period.end")))),
            _ => None,
        }
    };
    let size = subsegment.and_then(|s| size_for(s.execution_variant(), p.size, &field(""), f));
    let preferred_provider = if p.preferred_provider_agb.trim().is_empty() {
        None
    } else {
        f.check(
            AgbCode::parse(p.preferred_provider_agb.trim())
                .map_err(|e| e.at(field("preferred_provider_agb"))),
        )
    };
    Some(ProductPlan {
        subsegment: subsegment?.clone(),
        product_code,
        result,
        goal: p.goal?,
        period: period?,
        size: size?,
        preferred_provider,
    })
}

/// What an amendment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendmentKind {
    Change,
    Extend,
    End,
}

impl AmendmentKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Change => "change",
            Self::Extend => "extend",
            Self::End => "end",
        }
    }
}

/// An amendment as received (fields parsed, not yet checked against the product).
#[derive(Debug, Clone, Copy)]
pub struct AmendmentInput<'a> {
    pub kind: AmendmentKind,
    pub date: NaiveDate,
    pub new_end: Option<NaiveDate>,
    pub size: RawSize<'a>,
}

impl GrantedProduct {
    /// Applies an amendment decided on `a.date`, checked on `today`; the version goes up by one.
    pub fn amend(&mut self, a: &AmendmentInput<'_>, today: NaiveDate) -> Result<(), AccessError> {
        let id = self.id.to_string();
        if self.status(today) == ProductStatus::Ended {
            return Err(AccessError::rule(
                "product.active",
                &id,
                format!(
                    "the product ended on {}; only an active product can be amended",
                    self.period.end().map(|d| d.to_string()).unwrap_or_default()
                ),
            ));
        }
        let mut f = Fields::default();
        match a.kind {
            AmendmentKind::Change => {
                if a.new_end.is_some() {
                    f.push("new_end", "must be empty for a CHANGE");
                }
            }
            AmendmentKind::Extend | AmendmentKind::End => {
                if a.new_end.is_none() {
                    f.push(
                        "new_end",
                        format!("must be given for {}", a.kind.code().to_uppercase()),
                    );
                }
                let must_be_empty = format!("must be empty for {}", a.kind.code().to_uppercase());
                if a.size.budget_cents != 0 {
                    f.push("budget_cents", &must_be_empty);
                }
                if a.size.volume != 0 {
                    f.push("volume", &must_be_empty);
                }
                if !a.size.unit.trim().is_empty() {
                    f.push("unit", &must_be_empty);
                }
                if !a.size.frequency.trim().is_empty() {
                    f.push("frequency", &must_be_empty);
                }
            }
        }
        let size = match a.kind {
            AmendmentKind::Change if self.variant != ExecutionVariant::Taakgericht => {
                size_for(self.variant, a.size, "", &mut f)
            }
            _ => None,
        };
        f.finish()?;
        if a.date > today {
            return Err(AccessError::rule(
                "amendment.not_in_future",
                &id,
                format!(
                    "the amendment date {} lies after today ({today}); an amendment is recorded once it is decided",
                    a.date
                ),
            ));
        }
        if a.date < self.granted_on {
            return Err(AccessError::rule(
                "amendment.not_before_grant",
                &id,
                format!(
                    "the amendment date {} lies before the decision that granted the product ({})",
                    a.date, self.granted_on
                ),
            ));
        }
        match (a.kind, a.new_end) {
            (AmendmentKind::Change, _) => {
                let Some(size) = size else {
                    return Err(AccessError::rule(
                        "amendment.change_needs_size",
                        &id,
                        "a taakgericht product has no size or budget to change",
                    ));
                };
                self.size = size;
            }
            (AmendmentKind::Extend, Some(new_end)) => match self.period.end() {
                Some(end) if new_end > end => {
                    self.period = self.period.with_end(Some(new_end))?;
                }
                Some(end) => {
                    return Err(AccessError::rule(
                        "amendment.extend_later_end",
                        &id,
                        format!("new_end {new_end} must lie after the current end {end}"),
                    ));
                }
                None => {
                    return Err(AccessError::rule(
                        "amendment.extend_later_end",
                        &id,
                        "the product is open-ended; there is no end to extend",
                    ));
                }
            },
            (AmendmentKind::End, Some(new_end)) => {
                if new_end < today {
                    return Err(AccessError::rule(
                        "amendment.end_not_retroactive",
                        &id,
                        format!(
                            "new_end {new_end} lies before today ({today}); a product (and the care assigned for it) is never ended with retroactive effect"
                        ),
                    ));
                }
                if new_end < a.date {
                    return Err(AccessError::rule(
                        "amendment.end_not_retroactive",
                        &id,
                        format!(
                            "new_end {new_end} lies before the amendment date {}; a product is never ended with retroactive effect",
                            a.date
                        ),
                    ));
                }
                if let Some(end) = self.period.end()
                    && new_end >= end
                {
                    return Err(AccessError::rule(
                        "amendment.end_before_current_end",
                        &id,
                        format!(
                            "new_end {new_end} must lie before the current end {end}; use EXTEND for a later end"
                        ),
                    ));
                }
                if new_end < self.period.start() {
                    return Err(AccessError::rule(
                        "amendment.end_not_before_start",
                        &id,
                        format!(
                            "new_end {new_end} lies before the product's start {}",
                            self.period.start()
                        ),
                    ));
                }
                self.period = self.period.with_end(Some(new_end))?;
            }
            // new_end was checked above.
            (_, None) => return Err(FieldError::new("new_end", "must be given").into()),
        }
        self.version += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        rz_domain::parse_date("t", s).unwrap()
    }

    fn product(variant: ExecutionVariant, size: Size) -> GrantedProduct {
        GrantedProduct {
            id: Uuid::now_v7(),
            case_id: Uuid::now_v7(),
            client_key: ClientKey::parse(&"a".repeat(32)).unwrap(),
            law: Law::Wmo,
            segment_code: "WIO".into(),
            subsegment_code: "WIO-PV".into(),
            product_category: "03".into(),
            product_code: None,
            result: "zelfstandig wassen".into(),
            goal: Goal::Participation,
            period: Period::new(d("2026-01-01"), Some(d("2026-12-31"))).unwrap(),
            variant,
            size,
            preferred_provider: None,
            granted_on: d("2025-12-15"),
            version: 1,
        }
    }

    fn amend(kind: AmendmentKind, date: &str, new_end: Option<&str>) -> AmendmentInput<'static> {
        AmendmentInput {
            kind,
            date: d(date),
            new_end: new_end.map(d),
            size: RawSize::default(),
        }
    }

    fn fields(r: Result<(), AccessError>) -> Vec<String> {
        match r {
            Err(AccessError::Invalid(v)) => v.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn size_follows_the_variant() {
        let mut f = Fields::default();
        let raw = RawSize {
            budget_cents: 5,
            volume: 3,
            unit: "04",
            frequency: "2",
        };
        assert_eq!(
            size_for(ExecutionVariant::Taakgericht, raw, "g.", &mut f),
            Some(Size::Task)
        );
        assert_eq!(
            fields(f.finish().map_err(AccessError::from)),
            ["g.budget_cents", "g.volume", "g.unit", "g.frequency"]
        );
        let mut f = Fields::default();
        assert!(size_for(ExecutionVariant::Outputgericht, raw, "", &mut f).is_some());
        assert_eq!(
            fields(f.finish().map_err(AccessError::from)),
            ["volume", "unit", "frequency"]
        );
        let mut f = Fields::default();
        let s = size_for(
            ExecutionVariant::Inspanningsgericht,
            RawSize {
                budget_cents: 0,
                ..raw
            },
            "",
            &mut f,
        );
        assert!(f.is_empty());
        assert_eq!(
            s,
            Some(Size::Effort {
                volume: 3,
                unit: Unit::Hour,
                frequency: Frequency::PerWeek
            })
        );
        let mut f = Fields::default();
        size_for(
            ExecutionVariant::Inspanningsgericht,
            RawSize::default(),
            "",
            &mut f,
        );
        assert_eq!(
            fields(f.finish().map_err(AccessError::from)),
            ["volume", "unit", "frequency"]
        );
    }

    #[test]
    fn extend_and_end() {
        let today = d("2026-06-01");
        let mut p = product(ExecutionVariant::Taakgericht, Size::Task);
        p.amend(
            &amend(AmendmentKind::Extend, "2026-06-01", Some("2027-06-30")),
            today,
        )
        .unwrap();
        assert_eq!(p.period.end(), Some(d("2027-06-30")));
        assert_eq!(p.version, 2);
        let e = p
            .amend(
                &amend(AmendmentKind::Extend, "2026-06-01", Some("2027-06-30")),
                today,
            )
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("amendment.extend_later_end"));
        let e = p
            .amend(
                &amend(AmendmentKind::End, "2026-06-01", Some("2026-05-31")),
                today,
            )
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("amendment.end_not_retroactive"));
        let e = p
            .amend(
                &amend(AmendmentKind::End, "2026-06-01", Some("2027-06-30")),
                today,
            )
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("amendment.end_before_current_end"));
        p.amend(
            &amend(AmendmentKind::End, "2026-06-01", Some("2026-06-30")),
            today,
        )
        .unwrap();
        assert_eq!(p.status(today), ProductStatus::Active);
        assert_eq!(p.status(d("2026-07-01")), ProductStatus::Ended);
        let e = p
            .amend(
                &amend(AmendmentKind::Extend, "2026-07-01", Some("2026-12-31")),
                d("2026-07-01"),
            )
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("product.active"));
        let e = p
            .amend(&amend(AmendmentKind::Change, "2026-06-01", None), today)
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("amendment.change_needs_size"));
    }

    #[test]
    fn change_follows_the_variant() {
        let today = d("2026-06-01");
        let mut p = product(
            ExecutionVariant::Outputgericht,
            Size::Budget(Cents::new(100).unwrap()),
        );
        let mut a = amend(AmendmentKind::Change, "2026-06-01", None);
        a.size.budget_cents = 250_000;
        p.amend(&a, today).unwrap();
        assert_eq!(p.size, Size::Budget(Cents::new(250_000).unwrap()));
        a.size.volume = 4;
        assert_eq!(fields(p.amend(&a, today)), ["volume"]);
        let mut a = amend(AmendmentKind::Change, "2025-01-01", None);
        a.size.budget_cents = 1;
        assert_eq!(
            p.amend(&a, today).unwrap_err().rule_id(),
            Some("amendment.not_before_grant")
        );
    }
}
