//! The seed file: a region's register as data (`regions/<region>-seed.toml` beside the region's
//! catalogue). See the header of `achterhoek-seed.toml` for what each section holds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rz_domain::{AgbCode, KvkNumber};
use serde::Deserialize;

/// The Achterhoek seed, built in so that the binary works anywhere.
pub const ACHTERHOEK: &str = include_str!("../../../../registration/regions/achterhoek-seed.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub providers: Providers,
    pub old_contracts: OldContracts,
    pub tender: TenderPlan,
    pub direct: Direct,
    pub extensions: Extensions,
    pub budgets: Budgets,
    pub tariffs: Tariffs,
    pub landscape: Landscape,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    pub organisations: Vec<Organisation>,
    pub consortia: Vec<Consortium>,
    pub subcontractors: Vec<Subcontractor>,
}

/// An organisation registered in its own name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub agb: String,
    pub kvk: String,
    pub legal_form: String,
    pub name: String,
}

/// A consortium (samenwerkingsverband): its own AGB code, a lead and the other members.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consortium {
    pub agb: String,
    pub kvk: String,
    pub name: String,
    pub lead: String,
    pub members: Vec<String>,
}

/// A subcontractor (onderaannemer) of a main contractor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subcontractor {
    pub main: String,
    pub sub: String,
}

/// The contracts before the tender: started on `start`, extended `extensions` times and
/// terminated on `end` for `reason`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldContracts {
    pub start: NaiveDate,
    pub extensions: u32,
    pub end: NaiveDate,
    pub reason: String,
    pub former: Vec<FormerProvider>,
    pub continuing: Vec<Continuing>,
}

/// A formerly contracted provider: registered, one old contract in `segment`, and how its bid in
/// the tender fared (none: it did not register).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormerProvider {
    pub segment: String,
    pub agb: String,
    pub kvk: String,
    pub legal_form: String,
    pub name: String,
    #[serde(default)]
    pub bid: Option<Bid>,
}

/// A provider with a new contract that also had an old one in the segment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Continuing {
    pub agb: String,
    pub segment: String,
}

/// How a bid fares in the tender; the scores are generated to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bid {
    Win,
    /// Admitted, meets the minimum demands, ranked below the award quota.
    Lose,
    /// Admitted, fails the minimum demands.
    Reject,
    NotAdmitted,
}

/// The joint tender: one per segment, in this order, named `<name> - <segment name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenderPlan {
    pub name: String,
    pub contract_start: NaiveDate,
    pub segments: Vec<String>,
    pub winners: Vec<Winner>,
}

/// A winning bid; empty lists mean every subsegment / every municipality of the segment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Winner {
    pub segment: String,
    pub agb: String,
    #[serde(default)]
    pub subsegments: Vec<String>,
    #[serde(default)]
    pub municipalities: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    pub contracts: Vec<DirectContract>,
}

/// A contract concluded outside the joint tender (every subsegment of the segment).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectContract {
    pub segment: String,
    pub agb: String,
    pub start: NaiveDate,
    #[serde(default)]
    pub municipalities: Vec<String>,
}

/// How often the tender's and the direct contracts have been extended by now.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extensions {
    pub default: u32,
    #[serde(default)]
    pub segments: BTreeMap<String, u32>,
    /// Printed with the number of extensions made.
    pub note: String,
}

impl Extensions {
    pub fn for_segment(&self, segment: &str) -> u32 {
        self.segments.get(segment).copied().unwrap_or(self.default)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// The per-provider factor is generated between these two percentages.
    pub provider_factor_percent: [u32; 2],
    pub round_euros: i64,
    pub years: Vec<BudgetYear>,
    pub per_inhabitant_euros: BTreeMap<String, i64>,
    pub inhabitants: BTreeMap<String, i64>,
}

/// A budget year: `percent` of the yearly amount.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetYear {
    pub year: i32,
    pub percent: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariffs {
    pub per_subsegment: Vec<Tariff>,
}

/// A PxQ tariff for every contract covering `subsegment` (unit: WJ756 code).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    pub subsegment: String,
    pub product: String,
    pub unit: String,
    pub price_cents: i64,
}

/// What the landscape shows beside the contracts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Landscape {
    pub budget_year: i32,
    pub budget_period: String,
    /// The segment added to the joint lots in the totals, and what to call it.
    pub extra_segment: String,
    pub extra_label: String,
}

impl Seed {
    /// Reads a seed file and checks that it holds together (see [`Seed::problems`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let seed: Seed = toml::from_str(text).map_err(|e| e.to_string())?;
        let problems = seed.problems();
        if problems.is_empty() {
            Ok(seed)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The built-in Achterhoek seed.
    pub fn achterhoek() -> Result<Self, String> {
        Self::parse(ACHTERHOEK)
    }

    /// Every organisation registered in its own name: the current ones, then the former ones.
    pub fn organisations(&self) -> impl Iterator<Item = (&str, &str, &str, &str)> {
        let current = self
            .providers
            .organisations
            .iter()
            .map(|o| (&*o.agb, &*o.name, &*o.legal_form, &*o.kvk));
        let former = self
            .old_contracts
            .former
            .iter()
            .map(|o| (&*o.agb, &*o.name, &*o.legal_form, &*o.kvk));
        current.chain(former)
    }

    /// What is wrong with the file, the server aside: malformed or duplicate AGB and KvK codes,
    /// duplicate names, and references to providers the file does not register.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut codes = BTreeSet::new();
        let mut kvks = BTreeSet::new();
        let mut names = BTreeSet::new();
        let own = self.organisations().map(|(a, n, _, k)| (a, n, k));
        let consortia = self
            .providers
            .consortia
            .iter()
            .map(|c| (&*c.agb, &*c.name, &*c.kvk));
        for (agb, name, kvk) in own.chain(consortia) {
            if AgbCode::parse(agb).is_err() {
                out.push(format!("{agb}: not an AGB code"));
            }
            if KvkNumber::parse(kvk).is_err() {
                out.push(format!("{agb}: `{kvk}` is not a KvK number"));
            }
            if !codes.insert(agb) {
                out.push(format!("{agb}: registered twice"));
            }
            if !kvks.insert(kvk) {
                out.push(format!("{agb}: KvK number {kvk} used twice"));
            }
            if !names.insert(name) {
                out.push(format!("{agb}: name `{name}` used twice"));
            }
        }
        let mut known = |what: &str, agb: &str| {
            if !codes.contains(agb) {
                out.push(format!("{what} {agb} is not registered in the file"));
            }
        };
        for c in &self.providers.consortia {
            known("consortium lead", &c.lead);
            for m in &c.members {
                known("consortium member", m);
            }
        }
        for s in &self.providers.subcontractors {
            known("main contractor", &s.main);
            known("subcontractor", &s.sub);
        }
        for w in &self.tender.winners {
            known("winner", &w.agb);
        }
        for d in &self.direct.contracts {
            known("direct contract of", &d.agb);
        }
        for c in &self.old_contracts.continuing {
            known("continuing", &c.agb);
        }
        let [lo, hi] = self.budgets.provider_factor_percent;
        if lo > hi {
            out.push(
                "budgets.provider_factor_percent: the first must not exceed the second".into(),
            );
        }
        if self.budgets.round_euros < 1 {
            out.push("budgets.round_euros: must be at least 1".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_achterhoek_seed_parses_and_holds_together() {
        let seed = Seed::achterhoek().unwrap();
        assert_eq!(seed.providers.organisations.len(), 83);
        assert_eq!(seed.old_contracts.former.len(), 40);
        assert_eq!(seed.providers.consortia.len(), 3);
        assert_eq!(seed.tender.winners.len(), 64);
        assert_eq!(seed.direct.contracts.len(), 15);
        assert_eq!(seed.extensions.for_segment("DYS"), 2);
        assert_eq!(seed.extensions.for_segment("IAJ"), 1);
        assert_eq!(
            seed.tender.contract_start,
            NaiveDate::from_ymd_opt(2022, 7, 1).unwrap()
        );
    }

    #[test]
    fn the_seed_names_only_what_the_achterhoek_catalogue_has() {
        use registration::domain::catalogue::Catalogue;
        let cat = Catalogue::achterhoek().unwrap();
        let seed = Seed::achterhoek().unwrap();
        let segment = |code: &str| cat.segment("segment", code).expect(code).clone();
        for w in &seed.tender.winners {
            let s = segment(&w.segment);
            assert!(seed.tender.segments.contains(&w.segment), "{}", w.segment);
            s.resolve_subsegments("subsegments", &w.subsegments)
                .expect(&w.agb);
            s.resolve_municipalities(&cat, "municipalities", &w.municipalities)
                .expect(&w.agb);
        }
        for d in &seed.direct.contracts {
            segment(&d.segment)
                .resolve_municipalities(&cat, "municipalities", &d.municipalities)
                .expect(&d.agb);
        }
        for o in &seed.old_contracts.former {
            segment(&o.segment);
        }
        for t in &seed.tariffs.per_subsegment {
            cat.subsegment("subsegment", &t.subsegment)
                .expect(&t.subsegment);
        }
        for m in seed.budgets.inhabitants.keys() {
            cat.municipality("municipality", m).expect(m);
        }
        assert!(
            cat.segment("segment", &seed.landscape.extra_segment)
                .is_ok()
        );
    }

    #[test]
    fn broken_files_are_refused_with_every_problem() {
        let broken = ACHTERHOEK
            .replacen("agb = \"03010028\"", "agb = \"03010011\"", 1)
            .replacen("lead = \"03010108\"", "lead = \"99999999\"", 1);
        let e = Seed::parse(&broken).unwrap_err();
        assert!(e.contains("03010011: registered twice"), "{e}");
        assert!(e.contains("consortium lead 99999999"), "{e}");
        assert!(Seed::parse("[providers]\norganisations = []\n").is_err());
    }
}
