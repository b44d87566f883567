//! What the seed generates rather than lists: the tender's bid scores, the order in which bids
//! come in, and each provider's share of a lumpsum budget. All of it is deterministic (a small
//! fixed-seed generator seeded from names), so every load plans the same register.

use super::file::{Bid, Seed};

/// A tiny fixed-seed LCG, seeded from a string (FNV-1a).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
}

/// Selection score, whether the bid meets the minimum demands, and award scores (cooperation,
/// lead time, scaling down) that make a bid fare as planned: winners outscore losers on both.
pub fn scores(segment: &str, agb: &str, bid: Bid) -> (u32, bool, [u32; 3]) {
    let mut r = Lcg::new(&format!("{segment}/{agb}"));
    let (sel, ok, lo, hi) = match bid {
        Bid::Win => (r.between(70, 95), true, 6, 10),
        Bid::Lose => (r.between(60, 68), true, 3, 5),
        Bid::Reject => (r.between(70, 90), false, 4, 8),
        Bid::NotAdmitted => (r.between(35, 55), true, 2, 5),
    };
    (
        sel,
        ok,
        [r.between(lo, hi), r.between(lo, hi), r.between(lo, hi)],
    )
}

/// A planned registration in a tender.
#[derive(Debug, Clone)]
pub struct PlannedBid {
    pub agb: String,
    pub subsegments: Vec<String>,
    pub municipalities: Vec<String>,
    pub bid: Bid,
}

/// The registrations in `segment`'s tender, in the order they come in: the winners and the
/// former providers that registered.
pub fn planned_bids(seed: &Seed, segment: &str) -> Vec<PlannedBid> {
    let winners = seed
        .tender
        .winners
        .iter()
        .filter(|w| w.segment == segment)
        .map(|w| PlannedBid {
            agb: w.agb.clone(),
            subsegments: w.subsegments.clone(),
            municipalities: w.municipalities.clone(),
            bid: Bid::Win,
        });
    let others = seed
        .old_contracts
        .former
        .iter()
        .filter(|o| o.segment == segment)
        .filter_map(|o| {
            o.bid.map(|bid| PlannedBid {
                agb: o.agb.clone(),
                subsegments: vec![],
                municipalities: vec![],
                bid,
            })
        });
    // Interleave deterministically so that losers do not all register last.
    let mut all: Vec<PlannedBid> = winners.chain(others).collect();
    all.sort_by_key(|b| Lcg::new(&format!("order/{segment}/{}", b.agb)).next());
    all
}

/// A provider's fixed factor (in percent) in its share of a lumpsum budget.
pub fn budget_factor(seed: &Seed, agb: &str) -> i64 {
    let [lo, hi] = seed.budgets.provider_factor_percent;
    i64::from(Lcg::new(&format!("budget/{agb}")).between(lo, hi))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeSet;

    use registration::domain::tender::{BidScore, Registration, RegistrationStatus, Tender};
    use rz_domain::AgbCode;

    use super::*;

    #[test]
    fn the_planned_tenders_award_the_planned_winners() {
        let seed = Seed::achterhoek().unwrap();
        let start = seed.tender.contract_start;
        let mut contracted = BTreeSet::new();
        for segment in &seed.tender.segments {
            let segment = segment.as_str();
            let bids = planned_bids(&seed, segment);
            let award = bids.iter().filter(|b| b.bid == Bid::Win).count() as u32;
            let select = bids.iter().filter(|b| b.bid != Bid::NotAdmitted).count() as u32;
            assert!(select > award, "{segment}");
            assert!(bids.iter().any(|b| b.bid == Bid::NotAdmitted), "{segment}");
            let mut t = Tender::open(
                uuid::Uuid::nil(),
                segment.into(),
                segment.into(),
                select,
                award,
                start,
                start,
            )
            .unwrap();
            for b in &bids {
                t.submit(Registration {
                    agb_code: AgbCode::parse(&b.agb).unwrap(),
                    subsegments: vec![],
                    municipalities: vec![],
                    selection_score: scores(segment, &b.agb, b.bid).0,
                    status: RegistrationStatus::Submitted,
                    score: None,
                    rank: None,
                })
                .unwrap();
            }
            t.select().unwrap();
            for b in &bids {
                let admitted = t.registrations.iter().any(|r| {
                    r.agb_code.as_str() == b.agb && r.status == RegistrationStatus::Admitted
                });
                assert_eq!(admitted, b.bid != Bid::NotAdmitted, "{segment} {}", b.agb);
                if admitted {
                    let (_, ok, [c, l, s]) = scores(segment, &b.agb, b.bid);
                    let code = AgbCode::parse(&b.agb).unwrap();
                    t.score(&code, BidScore::new(ok, c, l, s).unwrap()).unwrap();
                }
            }
            let awarded: BTreeSet<String> = t
                .award()
                .unwrap()
                .iter()
                .map(|r| r.agb_code.to_string())
                .collect();
            let planned: BTreeSet<String> = bids
                .iter()
                .filter(|b| b.bid == Bid::Win)
                .map(|b| b.agb.clone())
                .collect();
            assert_eq!(awarded, planned, "{segment}");
            contracted.extend(awarded);
        }
        assert_eq!(contracted.len(), 60);
    }

    #[test]
    fn the_generator_is_fixed() {
        // The register of earlier runs follows from these numbers: another generator, another
        // register (and a second load that no longer matches the first).
        assert_eq!(scores("IAJ", "03010011", Bid::Win), (88, true, [10, 7, 9]));
        assert_eq!(scores("WIO", "41091278", Bid::Lose), (61, true, [4, 5, 4]));
        let seed = Seed::achterhoek().unwrap();
        assert_eq!(budget_factor(&seed, "03010011"), 111);
    }
}
