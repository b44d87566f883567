//! The tender (aanbesteding): registrations (inschrijvingen), a selection step that admits a fixed
//! number, award scores on the minimum demands and the criteria (cooperation, lead time, scaling
//! down), a ranking, and the award of the top N.

use chrono::NaiveDate;
use rz_domain::{AgbCode, GemeenteCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RegistrationError;

pub const MAX_SELECTION_SCORE: u32 = 100;
pub const MAX_CRITERION_SCORE: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenderStatus {
    Open,
    Selected,
    Awarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationStatus {
    Submitted,
    Admitted,
    NotAdmitted,
    Awarded,
    NotAwarded,
    /// Failed the minimum demands.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidScore {
    pub meets_minimum_demands: bool,
    pub cooperation: u32,
    pub lead_time: u32,
    pub scaling_down: u32,
}

impl BidScore {
    pub fn new(
        meets_minimum_demands: bool,
        cooperation: u32,
        lead_time: u32,
        scaling_down: u32,
    ) -> Result<Self, RegistrationError> {
        let errors: Vec<_> = [
            ("cooperation", cooperation),
            ("lead_time", lead_time),
            ("scaling_down", scaling_down),
        ]
        .into_iter()
        .filter(|(_, v)| *v > MAX_CRITERION_SCORE)
        .map(|(f, _)| {
            rz_domain::FieldError::new(f, format!("must be between 0 and {MAX_CRITERION_SCORE}"))
        })
        .collect();
        if !errors.is_empty() {
            return Err(RegistrationError::Invalid(errors));
        }
        Ok(Self {
            meets_minimum_demands,
            cooperation,
            lead_time,
            scaling_down,
        })
    }

    pub fn total(&self) -> u32 {
        self.cooperation + self.lead_time + self.scaling_down
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub agb_code: AgbCode,
    pub subsegments: Vec<String>,
    pub municipalities: Vec<GemeenteCode>,
    pub selection_score: u32,
    pub status: RegistrationStatus,
    pub score: Option<BidScore>,
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tender {
    pub id: Uuid,
    pub name: String,
    pub segment_code: String,
    pub selection_quota: u32,
    pub award_quota: u32,
    pub contract_start: NaiveDate,
    pub status: TenderStatus,
    pub registrations: Vec<Registration>,
}

impl Tender {
    pub fn open(
        id: Uuid,
        name: String,
        segment_code: String,
        selection_quota: u32,
        award_quota: u32,
        contract_start: NaiveDate,
        today: NaiveDate,
    ) -> Result<Self, RegistrationError> {
        let mut errors = Vec::new();
        if name.trim().is_empty() {
            errors.push(rz_domain::FieldError::new("name", "must not be empty"));
        }
        if award_quota == 0 {
            errors.push(rz_domain::FieldError::new(
                "award_quota",
                "must be at least 1",
            ));
        }
        if selection_quota < award_quota {
            errors.push(rz_domain::FieldError::new(
                "selection_quota",
                "must be at least the award quota",
            ));
        }
        if !errors.is_empty() {
            return Err(RegistrationError::Invalid(errors));
        }
        if contract_start < super::history_floor(today) {
            return Err(RegistrationError::rule(
                "tender.contract_start_recent",
                "contract_start",
                format!(
                    "the tender's contracts would start on {contract_start}, more than {} days \
                     before today ({today})",
                    super::HISTORY_WINDOW_DAYS
                ),
            ));
        }
        Ok(Self {
            id,
            name,
            segment_code,
            selection_quota,
            award_quota,
            contract_start,
            status: TenderStatus::Open,
            registrations: Vec::new(),
        })
    }

    fn require(&self, status: TenderStatus, action: &str) -> Result<(), RegistrationError> {
        if self.status == status {
            Ok(())
        } else {
            Err(RegistrationError::rule(
                "tender.phase",
                "tender_id",
                format!(
                    "{action} is only possible while the tender is {status:?}; it is {:?}",
                    self.status
                ),
            ))
        }
    }

    pub fn submit(&mut self, registration: Registration) -> Result<(), RegistrationError> {
        self.require(TenderStatus::Open, "submitting a registration")?;
        if registration.selection_score > MAX_SELECTION_SCORE {
            return Err(RegistrationError::field(
                "selection_score",
                format!("must be between 0 and {MAX_SELECTION_SCORE}"),
            ));
        }
        if self
            .registrations
            .iter()
            .any(|r| r.agb_code == registration.agb_code)
        {
            return Err(RegistrationError::AlreadyExists(format!(
                "provider {} has registered for this tender already",
                registration.agb_code
            )));
        }
        self.registrations.push(Registration {
            status: RegistrationStatus::Submitted,
            score: None,
            rank: None,
            ..registration
        });
        Ok(())
    }

    /// The selection phase: the `selection_quota` best selection scores are admitted to the award
    /// phase (ties go to the earlier registration).
    pub fn select(&mut self) -> Result<(), RegistrationError> {
        self.require(TenderStatus::Open, "selection")?;
        if self.registrations.is_empty() {
            return Err(RegistrationError::rule(
                "tender.no_registrations",
                "tender_id",
                "no provider has registered",
            ));
        }
        let mut order: Vec<usize> = (0..self.registrations.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.registrations[i].selection_score)); // stable
        for (place, i) in order.into_iter().enumerate() {
            self.registrations[i].status = if (place as u32) < self.selection_quota {
                RegistrationStatus::Admitted
            } else {
                RegistrationStatus::NotAdmitted
            };
        }
        self.status = TenderStatus::Selected;
        Ok(())
    }

    pub fn score(&mut self, agb: &AgbCode, score: BidScore) -> Result<(), RegistrationError> {
        self.require(TenderStatus::Selected, "scoring")?;
        let r = self
            .registrations
            .iter_mut()
            .find(|r| &r.agb_code == agb)
            .ok_or_else(|| {
                RegistrationError::NotFound(format!(
                    "provider {agb} has not registered for this tender"
                ))
            })?;
        if r.status != RegistrationStatus::Admitted {
            return Err(RegistrationError::rule(
                "tender.admitted_only",
                "agb_code",
                format!("provider {agb} was not admitted to the award phase"),
            ));
        }
        r.score = Some(score);
        Ok(())
    }

    /// Ranks the admitted bids that meet the minimum demands by total score (then selection score,
    /// then earlier registration) and awards the top `award_quota`. Returns the awarded registrations.
    pub fn award(&mut self) -> Result<Vec<Registration>, RegistrationError> {
        self.require(TenderStatus::Selected, "the award")?;
        let unscored: Vec<String> = self
            .registrations
            .iter()
            .filter(|r| r.status == RegistrationStatus::Admitted && r.score.is_none())
            .map(|r| r.agb_code.to_string())
            .collect();
        if !unscored.is_empty() {
            return Err(RegistrationError::rule(
                "tender.all_scored",
                "tender_id",
                format!(
                    "every admitted bid must be scored before the award; not scored: {}",
                    unscored.join(", ")
                ),
            ));
        }
        let mut ranked: Vec<usize> = Vec::new();
        for (i, r) in self.registrations.iter_mut().enumerate() {
            if r.status != RegistrationStatus::Admitted {
                continue;
            }
            match r.score {
                Some(s) if s.meets_minimum_demands => ranked.push(i),
                _ => r.status = RegistrationStatus::Rejected,
            }
        }
        let key = |r: &Registration| {
            (
                std::cmp::Reverse(r.score.map(|s| s.total()).unwrap_or(0)),
                std::cmp::Reverse(r.selection_score),
            )
        };
        ranked.sort_by_key(|&i| key(&self.registrations[i]));
        let mut awarded = Vec::new();
        for (place, i) in ranked.into_iter().enumerate() {
            let r = &mut self.registrations[i];
            r.rank = Some(place as u32 + 1);
            if (place as u32) < self.award_quota {
                r.status = RegistrationStatus::Awarded;
                awarded.push(r.clone());
            } else {
                r.status = RegistrationStatus::NotAwarded;
            }
        }
        self.status = TenderStatus::Awarded;
        Ok(awarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(agb: &str, selection: u32) -> Registration {
        Registration {
            agb_code: AgbCode::parse(agb).unwrap(),
            subsegments: vec!["IAJ-ON".into()],
            municipalities: vec![],
            selection_score: selection,
            status: RegistrationStatus::Submitted,
            score: None,
            rank: None,
        }
    }

    #[test]
    fn a_tenders_contracts_start_at_most_a_year_before_today() {
        let d = |s| rz_domain::parse_date("d", s).unwrap();
        let open = |start, today| {
            Tender::open(Uuid::nil(), "IAJ".into(), "IAJ".into(), 3, 2, start, today)
        };
        // 2022-07-01 minus 365 days is 2021-07-01: the first start still accepted.
        assert!(open(d("2021-07-01"), d("2022-07-01")).is_ok());
        assert!(open(d("2030-01-01"), d("2022-07-01")).is_ok());
        let err = open(d("2021-06-30"), d("2022-07-01")).unwrap_err();
        assert!(
            matches!(
                &err,
                RegistrationError::Rule {
                    rule: "tender.contract_start_recent",
                    subject,
                    ..
                } if subject == "contract_start"
            ),
            "{err:?}"
        );
    }

    #[test]
    fn selection_admits_a_fixed_number_and_award_takes_the_top_n_meeting_minimum_demands() {
        let start = NaiveDate::from_ymd_opt(2022, 7, 1).unwrap();
        let mut t =
            Tender::open(Uuid::nil(), "IAJ".into(), "IAJ".into(), 3, 2, start, start).unwrap();
        for (agb, s) in [
            ("10000001", 50),
            ("10000002", 90),
            ("10000003", 70),
            ("10000004", 80),
        ] {
            t.submit(reg(agb, s)).unwrap();
        }
        assert!(matches!(
            t.submit(reg("10000001", 1)),
            Err(RegistrationError::AlreadyExists(_))
        ));
        assert!(matches!(
            t.award(),
            Err(RegistrationError::Rule {
                rule: "tender.phase",
                ..
            })
        ));
        t.select().unwrap();
        let status = |t: &Tender, agb: &str| {
            t.registrations
                .iter()
                .find(|r| r.agb_code.as_str() == agb)
                .unwrap()
                .status
        };
        assert_eq!(status(&t, "10000001"), RegistrationStatus::NotAdmitted);
        let a = |s: &str| AgbCode::parse(s).unwrap();
        assert!(matches!(
            t.score(&a("10000001"), BidScore::new(true, 1, 1, 1).unwrap()),
            Err(RegistrationError::Rule {
                rule: "tender.admitted_only",
                ..
            })
        ));
        t.score(&a("10000002"), BidScore::new(false, 10, 10, 10).unwrap())
            .unwrap();
        t.score(&a("10000003"), BidScore::new(true, 5, 5, 5).unwrap())
            .unwrap();
        assert!(matches!(
            t.award(),
            Err(RegistrationError::Rule {
                rule: "tender.all_scored",
                ..
            })
        ));
        t.score(&a("10000004"), BidScore::new(true, 7, 6, 5).unwrap())
            .unwrap();
        let awarded = t.award().unwrap();
        let codes: Vec<_> = awarded.iter().map(|r| r.agb_code.as_str()).collect();
        assert_eq!(codes, ["10000004", "10000003"]);
        assert_eq!(status(&t, "10000002"), RegistrationStatus::Rejected);
        assert!(BidScore::new(true, 11, 0, 0).is_err());
    }
}
