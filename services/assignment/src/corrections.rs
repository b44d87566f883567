//! Changed and deleted start and stop records (StatusAanlevering `2` and `3`, list COD467) of
//! the providers' 305 and 307 received as XML.
//!
//! The key of a start or stop record is the client (BSN), the assignment (ToewijzingNummer) and
//! the Begindatum. Rules (WJ001):
//!
//! - `3` deletes the record with that key: TR063 (9063) when none was received; a start cannot
//!   be deleted once its care was stopped, TR071 (9071). Deleting a start puts the assignment back
//!   to issued; deleting a stop puts the care back to started (the assignment valid to its end).
//! - `2` (gewijzigde aanlevering): the iJw code list COD467 says codes `2` and `9` are not used
//!   (CS058): refused `0001` naming CS058, the record is corrected by deleting it (`3`) and sending
//!   it anew (`1`). The iWmo list carries no such note: a changed stop corrects the Einddatum and
//!   RedenBeeindiging of the stop with that key (the domain's rules of a stop apply again), a
//!   changed start has nothing to change besides its key and is accepted when the key exists;
//!   both TR063 when no record with the key was received.
//! - `9`: not used for a record of these messages (CS058 for iJw): `0001`.
//!
//! The rule texts of CS058, TR063 and TR071 are not in the shared folder; their meaning here is
//! that of the WJ001 codes and the COD467 note.

use chrono::NaiveDate;
use rz_domain::{AgbCode, GemeenteCode, Law};
use rz_istandaarden as ist;

use crate::assigner::Assigner;
use crate::domain::{Assignment, Status};
use crate::error::{Error, Result};
use crate::provider::lock_assignment;
use crate::store;

fn broken(rule: ist::Rule, subject: &str, description: impl Into<String>) -> Error {
    Error::rule(rule.id(), subject, description)
}

/// CS058: StatusAanlevering `2` or `9` in an iJw message, or `9` in any.
pub(crate) fn status_not_used(law: Law, status: ist::DeliveryStatus) -> Option<Error> {
    let refused = match status {
        ist::DeliveryStatus::First | ist::DeliveryStatus::Delete => false,
        ist::DeliveryStatus::Changed => law == Law::Jeugdwet,
        ist::DeliveryStatus::Unchanged => true,
    };
    refused.then(|| {
        Error::rule(
            "CS058",
            "StatusAanlevering",
            format!(
                "StatusAanlevering {} is not used for this record (COD467, CS058); correct a record by deleting it (3) and sending it anew (1)",
                status.code()
            ),
        )
    })
}

fn not_received(a: &Assignment, what: &str, start: NaiveDate) -> Error {
    broken(
        ist::Rule::TR063,
        "Begindatum",
        format!(
            "no {what} with Begindatum {start} was received for assignment {}/{}; {}",
            a.municipality,
            a.number,
            ist::Rule::TR063.text()
        ),
    )
}

fn owned(a: &Assignment, agb: &AgbCode) -> Result<()> {
    if a.agb_code == *agb {
        Ok(())
    } else {
        Err(broken(
            ist::Rule::TR019,
            "ToewijzingNummer",
            format!(
                "assignment {}/{} is not assigned to provider {agb}",
                a.municipality, a.number
            ),
        ))
    }
}

/// The reported stop undone: care started again, the assignment valid to its end when the stop
/// had ended it.
fn undo_stop(a: &mut Assignment) {
    if a.status == Status::Stopped {
        a.status = Status::Started;
        a.valid_until = a.period.end();
    }
    a.stopped_on = None;
    a.end_reason = String::new();
}

impl Assigner {
    async fn corrected(
        &self,
        m: &GemeenteCode,
        number: u32,
        change: &str,
        f: impl FnOnce(&mut Assignment) -> Result<()>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut a = lock_assignment(&mut tx, m, number).await?;
        f(&mut a)?;
        store::update_assignment(&mut tx, &a).await?;
        self.emit_lifecycle(&mut tx, &a, change).await?;
        tx.commit().await?;
        tracing::info!(municipality = %m, number, agb_code = %a.agb_code, change, "care report corrected");
        Ok(())
    }

    /// A StartProduct with StatusAanlevering `2` or `3`.
    pub(crate) async fn correct_start(
        &self,
        m: &GemeenteCode,
        agb: &AgbCode,
        number: u32,
        start: NaiveDate,
        status: ist::DeliveryStatus,
    ) -> Result<()> {
        if status == ist::DeliveryStatus::Changed {
            // Nothing but the key is in a start record: accepted when the key exists.
            let a = self.load(m, number).await?;
            owned(&a, agb)?;
            return match a.started_on {
                Some(s) if s == start => Ok(()),
                _ => Err(not_received(&a, "start of care", start)),
            };
        }
        self.corrected(m, number, "start_deleted", |a| {
            owned(a, agb)?;
            if a.started_on != Some(start) {
                return Err(not_received(a, "start of care", start));
            }
            if let Some(end) = a.stopped_on {
                return Err(broken(
                    ist::Rule::TR071,
                    "StartProduct",
                    format!(
                        "the care that started on {start} on assignment {}/{} was stopped on {end}; {}",
                        a.municipality,
                        a.number,
                        ist::Rule::TR071.text()
                    ),
                ));
            }
            if a.replaces_number.is_some() {
                return Err(Error::rule(
                    "start.delete_replacement",
                    "StartProduct",
                    format!(
                        "the start of care on assignment {}/{} ended the assignment it replaces (handover); it cannot be deleted",
                        a.municipality, a.number
                    ),
                ));
            }
            if a.status == Status::Started {
                a.status = Status::Issued;
            }
            a.started_on = None;
            Ok(())
        })
        .await
    }

    /// A StopProduct with StatusAanlevering `2` (iWmo: new end and reason) or `3`.
    pub(crate) async fn correct_stop(
        &self,
        m: &GemeenteCode,
        agb: &AgbCode,
        number: u32,
        p: &ist::StoppedProduct,
    ) -> Result<()> {
        let change = match p.status {
            ist::DeliveryStatus::Delete => "stop_deleted",
            _ => "stopped",
        };
        self.corrected(m, number, change, |a| {
            owned(a, agb)?;
            if a.started_on != Some(p.start) || a.stopped_on.is_none() {
                return Err(not_received(a, "stop of care", p.start));
            }
            undo_stop(a);
            if p.status == ist::DeliveryStatus::Changed {
                a.stop_care(agb, p.end, p.end_reason.code())?;
            }
            Ok(())
        })
        .await
    }
}
