//! Which contracted provider gets a client when the resident has no (contracted) preference: the
//! one with the lowest caseload against its share of the lumpsum budget.
//!
//! caseload = its active assignments (issued or started) for the subsegment in the municipality;
//! share = its budget / the sum of the budgets of the contracted providers (equal shares when none
//! of them has a budget). The lowest caseload / share wins, ties go to the lowest AGB code. A
//! provider without a budget among providers with budgets has share 0: it comes last.

use std::cmp::Ordering;

use rz_domain::AgbCode;

/// A contracted provider, its lumpsum budget for the municipality and year, and its caseload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub agb_code: AgbCode,
    pub budget_cents: i64,
    pub caseload: u64,
}

/// The chosen provider with the figures that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub agb_code: AgbCode,
    pub caseload: u64,
    /// Its share of the budget in tenths of a percent (125 = 12.5 %).
    pub share_permille: u64,
    /// No candidate had a budget: every share is equal.
    pub equal_shares: bool,
    pub candidates: usize,
}

impl Chosen {
    /// The figures in words, e.g. "lowest caseload against lumpsum budget share among 3 contracted
    /// providers: 03010002 with 3 clients / 12.5 % of the budget".
    pub fn describe(&self) -> String {
        let share = format!(
            "{}.{} %",
            self.share_permille / 10,
            self.share_permille % 10
        );
        let clients = if self.caseload == 1 {
            "1 client".to_owned()
        } else {
            format!("{} clients", self.caseload)
        };
        if self.equal_shares {
            format!(
                "lowest caseload among {} contracted providers (no lumpsum budgets, equal shares): {} with {clients} / {share} share",
                self.candidates, self.agb_code
            )
        } else {
            format!(
                "lowest caseload against lumpsum budget share among {} contracted providers: {} with {clients} / {share} of the budget",
                self.candidates, self.agb_code
            )
        }
    }
}

/// caseload_a / share_a compared with caseload_b / share_b, exactly (cross-multiplied).
fn compare(a: &Candidate, b: &Candidate, equal_shares: bool) -> Ordering {
    let by_load = if equal_shares {
        a.caseload.cmp(&b.caseload)
    } else {
        match (a.budget_cents > 0, b.budget_cents > 0) {
            (true, true) => {
                let left = u128::from(a.caseload) * u128::from(b.budget_cents.unsigned_abs());
                let right = u128::from(b.caseload) * u128::from(a.budget_cents.unsigned_abs());
                left.cmp(&right)
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => a.caseload.cmp(&b.caseload),
        }
    };
    by_load.then_with(|| a.agb_code.cmp(&b.agb_code))
}

/// The provider with the lowest caseload against its budget share; `None` without candidates.
pub fn lowest_caseload(candidates: &[Candidate]) -> Option<Chosen> {
    let total: i64 = candidates
        .iter()
        .map(|c| c.budget_cents.max(0))
        .fold(0i64, i64::saturating_add);
    let equal_shares = total == 0;
    let best = candidates
        .iter()
        .min_by(|a, b| compare(a, b, equal_shares))?;
    let n = candidates.len() as u64;
    let share_permille = if equal_shares {
        (1000 + n / 2) / n
    } else {
        let b = u128::from(best.budget_cents.max(0).unsigned_abs());
        let t = u128::from(total.unsigned_abs());
        u64::try_from((b * 1000 + t / 2) / t).unwrap_or(1000)
    };
    Some(Chosen {
        agb_code: best.agb_code.clone(),
        caseload: best.caseload,
        share_permille,
        equal_shares,
        candidates: candidates.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(agb: &str, budget: i64, caseload: u64) -> Candidate {
        Candidate {
            agb_code: AgbCode::parse(agb).unwrap(),
            budget_cents: budget,
            caseload,
        }
    }

    #[test]
    fn lowest_caseload_against_budget_share_wins() {
        // shares 50 / 30 / 20 %; loads 10 / 5 / 5 -> 20, 16.7, 25 -> the second.
        let chosen = lowest_caseload(&[
            c("03000001", 500, 10),
            c("03000002", 300, 5),
            c("03000003", 200, 5),
        ])
        .unwrap();
        assert_eq!(chosen.agb_code.as_str(), "03000002");
        assert_eq!(chosen.share_permille, 300);
        assert_eq!(
            chosen.describe(),
            "lowest caseload against lumpsum budget share among 3 contracted providers: 03000002 with 5 clients / 30.0 % of the budget"
        );
    }

    #[test]
    fn ties_go_to_the_lowest_agb_code() {
        let chosen = lowest_caseload(&[c("03000009", 100, 0), c("03000002", 300, 0)]).unwrap();
        assert_eq!(chosen.agb_code.as_str(), "03000002");
        // 2 / 200 == 1 / 100
        let chosen = lowest_caseload(&[c("03000009", 100, 1), c("03000002", 200, 2)]).unwrap();
        assert_eq!(chosen.agb_code.as_str(), "03000002");
    }

    #[test]
    fn equal_shares_without_budgets() {
        let chosen = lowest_caseload(&[
            c("03000001", 0, 2),
            c("03000002", 0, 1),
            c("03000003", 0, 1),
        ])
        .unwrap();
        assert_eq!(chosen.agb_code.as_str(), "03000002");
        assert!(chosen.equal_shares);
        assert_eq!(chosen.share_permille, 333);
        assert!(chosen.describe().contains("1 client / 33.3 % share"));
    }

    #[test]
    fn a_provider_without_budget_among_budgets_comes_last() {
        let chosen = lowest_caseload(&[c("03000001", 0, 0), c("03000002", 100, 50)]).unwrap();
        assert_eq!(chosen.agb_code.as_str(), "03000002");
        assert_eq!(chosen.share_permille, 1000);
        assert!(lowest_caseload(&[]).is_none());
    }

    #[test]
    fn the_distribution_follows_the_budget_shares() {
        let mut cands = vec![
            c("03000001", 600, 0),
            c("03000002", 300, 0),
            c("03000003", 100, 0),
        ];
        for _ in 0..100 {
            let chosen = lowest_caseload(&cands).unwrap();
            let i = cands
                .iter()
                .position(|x| x.agb_code == chosen.agb_code)
                .unwrap();
            cands[i].caseload += 1;
        }
        let loads: Vec<u64> = cands.iter().map(|c| c.caseload).collect();
        assert_eq!(loads, [60, 30, 10]);
    }
}
