//! An extent (execution variant with volume, unit and frequency, or budget) as columns and back;
//! assignments and provider requests store it alike.

use rz_domain::{Cents, ExecutionVariant, Frequency, Unit};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::domain::Extent;

use super::decode_err;

pub(super) fn extent_from_row(row: &PgRow) -> Result<Extent, sqlx::Error> {
    let variant: String = row.try_get("execution_variant")?;
    let variant = ExecutionVariant::from_code(&variant)
        .map_err(|_| decode_err("execution variant", &variant))?;
    extent_from_parts(
        variant,
        row.try_get("volume")?,
        row.try_get("unit")?,
        row.try_get("frequency")?,
        row.try_get("budget_cents")?,
    )
}

pub(super) fn extent_from_parts(
    variant: ExecutionVariant,
    volume: Option<i32>,
    unit: Option<String>,
    frequency: Option<String>,
    budget: Option<i64>,
) -> Result<Extent, sqlx::Error> {
    Ok(match variant {
        ExecutionVariant::Taakgericht => Extent::Task,
        ExecutionVariant::Inspanningsgericht => {
            let unit = unit.unwrap_or_default();
            let frequency = frequency.unwrap_or_default();
            Extent::Effort {
                volume: volume
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| decode_err("volume", "NULL"))?,
                unit: Unit::from_code(&unit).map_err(|_| decode_err("unit", &unit))?,
                frequency: Frequency::from_code(&frequency)
                    .map_err(|_| decode_err("frequency", &frequency))?,
            }
        }
        ExecutionVariant::Outputgericht => Extent::Output {
            budget: budget
                .and_then(|b| Cents::new(b).ok())
                .ok_or_else(|| decode_err("budget", "NULL"))?,
        },
    })
}

/// (variant, volume, unit, frequency, budget) columns of an extent.
type ExtentColumns = (
    &'static str,
    Option<i32>,
    Option<&'static str>,
    Option<&'static str>,
    Option<i64>,
);

pub(super) fn extent_columns(e: &Extent) -> ExtentColumns {
    match *e {
        Extent::Task => (e.variant().code(), None, None, None, None),
        Extent::Effort {
            volume,
            unit,
            frequency,
        } => (
            e.variant().code(),
            i32::try_from(volume).ok(),
            Some(unit.code()),
            Some(frequency.code()),
            None,
        ),
        Extent::Output { budget } => (e.variant().code(), None, None, None, Some(budget.as_i64())),
    }
}
