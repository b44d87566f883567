//! Shared test data: the contract landscape loaded through registration's gRPC API, synthetic
//! residents and the small helpers every crate's tests used to write for themselves.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use rz_domain::{Bsn, ClientKey};
use rz_proto::access::v1 as acc;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use tonic::transport::Channel;

/// Doetinchem, the municipality most tests run access for.
pub const M: &str = "0222";
/// The region's secret for client keys in tests.
pub const SECRET: &str = "test-region-secret";

/// In [`Landscape::standard`]: contracted for IAJ-ON in every participating municipality from
/// 2022-07-01, with lumpsum budgets in 0222 of 50 / 30 / 20 % of the sum.
pub const P1: &str = "03010001";
pub const P2: &str = "03010002";
pub const P3: &str = "03010003";
/// Contracted for all of IAJ from 2019-07-01; the contract ended on 2022-06-30.
pub const OLD: &str = "03019999";
/// Contracted for WIO-PV (PxQ) from 2022-07-01.
pub const PV1: &str = "03020001";
pub const PV2: &str = "03020002";
/// Contracted for ZHZ (a separate contract, outputgericht) from 2022-07-01.
pub const ZH: &str = "03030001";
/// Registered, never contracted.
pub const NONE: &str = "03040001";

/// A date from `YYYY-MM-DD`.
pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A valid synthetic BSN for `n` ([`Bsn::synthetic`]); distinct `n` give distinct numbers.
pub fn bsn(n: u32) -> String {
    Bsn::synthetic(n).to_string()
}

/// The client key of `bsn` under [`SECRET`].
pub fn key_of(bsn: &str) -> String {
    key_with(SECRET, bsn)
}

/// The client key of `bsn` under `secret`.
pub fn key_with(secret: &str, bsn: &str) -> String {
    ClientKey::derive(secret.as_bytes(), &Bsn::parse(bsn).unwrap()).to_string()
}

pub fn period(start: &str, end: &str) -> Option<types::Period> {
    Some(types::Period {
        start: start.into(),
        end: end.into(),
    })
}

/// A resident of Doetinchem (Sanne de Vries, Raadhuisstraat 1, with a parent as legal
/// representative) born on `birth_date`; tests change what they need with `..`.
pub fn resident_request(bsn: &str, birth_date: &str) -> acc::RegisterResidentRequest {
    acc::RegisterResidentRequest {
        idempotency_key: format!("res-{bsn}"),
        bsn: bsn.into(),
        given_names: "Sanne".into(),
        family_name: "de Vries".into(),
        birth_date: birth_date.into(),
        address: Some(acc::Address {
            street: "Raadhuisstraat".into(),
            house_number: "1".into(),
            postal_code: "7001EW".into(),
            city: "Doetinchem".into(),
            municipality: M.into(),
        }),
        legal_representative: Some(acc::LegalRepresentative {
            name: "J. de Vries".into(),
            relation: "ouder".into(),
        }),
        gender: "2".into(),
    }
}

/// A test file's path under `tests/stack/fixtures` (TLS material for the https webhook tests).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

struct Contract {
    agb: String,
    segment: String,
    subsegments: Vec<String>,
    municipalities: Vec<String>,
    start: String,
    /// (municipality, year, cents)
    budgets: Vec<(String, i32, i64)>,
}

/// Providers and their contracts, loaded through registration's gRPC API when the stack starts.
#[derive(Default)]
pub struct Landscape {
    providers: Vec<(String, String)>,
    contracts: Vec<Contract>,
}

impl Landscape {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tests' landscape (see the constants [`P1`] ... [`NONE`]).
    pub fn standard() -> Self {
        let mut l = Self::new()
            .provider(P1, "Jeugdhulp Een")
            .provider(P2, "Jeugdhulp Twee")
            .provider(P3, "Jeugdhulp Drie")
            .provider(OLD, "Oude Zorg")
            .provider(PV1, "Verzorging Een")
            .provider(PV2, "Verzorging Twee")
            .provider(ZH, "Ziekenhuis Achterhoek")
            .provider(NONE, "Zonder Contract");
        for (agb, budget) in [(P1, 50_000_000), (P2, 30_000_000), (P3, 20_000_000)] {
            l = l.contract(agb, "IAJ", &["IAJ-ON"], "2022-07-01");
            for year in 2022..=2025 {
                l = l.budget(M, year, budget);
            }
        }
        l.contract(OLD, "IAJ", &[], "2019-07-01")
            .contract(PV1, "WIO", &["WIO-PV"], "2022-07-01")
            .contract(PV2, "WIO", &["WIO-PV"], "2022-07-01")
            .contract(ZH, "ZHZ", &[], "2022-07-01")
    }

    /// Registers provider `agb` (a stichting).
    pub fn provider(mut self, agb: &str, name: &str) -> Self {
        self.providers.push((agb.to_owned(), name.to_owned()));
        self
    }

    /// A contract of `agb` for `subsegments` of `segment` (all of it when empty) in every
    /// participating municipality from `start`.
    pub fn contract(self, agb: &str, segment: &str, subsegments: &[&str], start: &str) -> Self {
        self.contract_in(agb, segment, subsegments, &[], start)
    }

    /// As [`Landscape::contract`], in `municipalities` only.
    pub fn contract_in(
        mut self,
        agb: &str,
        segment: &str,
        subsegments: &[&str],
        municipalities: &[&str],
        start: &str,
    ) -> Self {
        self.contracts.push(Contract {
            agb: agb.to_owned(),
            segment: segment.to_owned(),
            subsegments: subsegments.iter().map(|s| s.to_string()).collect(),
            municipalities: municipalities.iter().map(|s| s.to_string()).collect(),
            start: start.to_owned(),
            budgets: Vec::new(),
        });
        self
    }

    /// A lumpsum budget of the last contract for `municipality` in `year`.
    pub fn budget(mut self, municipality: &str, year: i32, cents: i64) -> Self {
        let last = self
            .contracts
            .last_mut()
            .expect("a budget belongs to a contract: add the contract first");
        last.budgets.push((municipality.to_owned(), year, cents));
        self
    }

    /// The AGB codes the landscape names (for the stack's certificates).
    pub(crate) fn agb_codes(&self) -> Vec<String> {
        self.providers
            .iter()
            .map(|(agb, _)| agb.clone())
            .chain(self.contracts.iter().map(|k| k.agb.clone()))
            .collect()
    }

    /// The CBS codes the landscape names (contracts and budgets).
    pub(crate) fn municipalities(&self) -> Vec<String> {
        self.contracts
            .iter()
            .flat_map(|k| {
                k.municipalities
                    .iter()
                    .cloned()
                    .chain(k.budgets.iter().map(|(m, _, _)| m.clone()))
            })
            .collect()
    }

    /// Registers the providers and concludes the contracts; the contract ids by AGB code (the
    /// last contract of each provider).
    pub async fn load(
        &self,
        c: &mut RegistrationServiceClient<Channel>,
    ) -> HashMap<String, String> {
        for (agb, name) in &self.providers {
            c.register_provider(reg::RegisterProviderRequest {
                idempotency_key: format!("reg-{agb}"),
                agb_code: agb.clone(),
                name: name.clone(),
                legal_form: "stichting".into(),
                kvk_number: format!("4{}", &agb[1..]),
            })
            .await
            .expect("provider registers");
        }
        let mut ids = HashMap::new();
        for k in &self.contracts {
            let id = c
                .conclude_contract(reg::ConcludeContractRequest {
                    idempotency_key: format!("c-{}-{}", k.agb, k.segment),
                    agb_code: k.agb.clone(),
                    segment_code: k.segment.clone(),
                    subsegment_codes: k.subsegments.clone(),
                    municipalities: k.municipalities.clone(),
                    start: k.start.clone(),
                })
                .await
                .expect("contract concluded")
                .into_inner()
                .id;
            for (municipality, year, cents) in &k.budgets {
                c.set_lumpsum_budget(reg::SetLumpsumBudgetRequest {
                    contract_id: id.clone(),
                    municipality: municipality.clone(),
                    year: *year,
                    amount_cents: *cents,
                })
                .await
                .expect("budget set");
            }
            ids.insert(k.agb.clone(), id);
        }
        ids
    }
}
