//! Domain values and store rows to their protobuf messages (the API's replies and the events'
//! payloads).

use chrono::NaiveDate;
use rz_domain::Financing;
use rz_proto::registration::v1 as pb;
use rz_proto::types::v1 as types;

use crate::domain::catalogue::Catalogue;
use crate::domain::contract::ContractStatus;
use crate::domain::tender::{BidScore, RegistrationStatus, Tender, TenderStatus};
use crate::store::{ContractRow, ProviderRow};

pub fn provider_pb(p: ProviderRow) -> pb::Provider {
    pb::Provider {
        kind: if p.kind == "consortium" {
            pb::ProviderKind::Consortium
        } else {
            pb::ProviderKind::Organisation
        } as i32,
        agb_code: p.agb_code,
        name: p.name,
        legal_form: p.legal_form,
        kvk_number: p.kvk_number,
        lead_agb_code: p.lead_agb_code.unwrap_or_default(),
        member_agb_codes: p.members,
        subcontractor_agb_codes: p.subcontractors,
    }
}

/// A contract as the API shows it; its status is the one on `today`.
pub fn contract_pb(c: ContractRow, today: NaiveDate) -> pb::Contract {
    let status = match c.term.status(today) {
        ContractStatus::Active => pb::ContractStatus::Active,
        ContractStatus::Ended => pb::ContractStatus::Ended,
        ContractStatus::Terminated => pb::ContractStatus::Terminated,
    };
    let left = c.term.extensions_left();
    pb::Contract {
        id: c.id.to_string(),
        agb_code: c.agb_code,
        segment_code: c.segment_code,
        subsegment_codes: c.subsegments,
        municipalities: c.municipalities,
        period: Some(types::Period {
            start: c.term.start.to_string(),
            end: c.term.end().to_string(),
        }),
        initial_end: c.term.initial_end().to_string(),
        extensions: c.term.extensions,
        extensions_left: left,
        latest_possible_end: if left > 0 {
            c.term.latest_possible_end().to_string()
        } else {
            String::new()
        },
        terminated_on: c
            .term
            .terminated_on
            .map(|d| d.to_string())
            .unwrap_or_default(),
        termination_reason: c.termination_reason,
        tender_id: c.tender_id.map(|t| t.to_string()).unwrap_or_default(),
        budgets: c
            .budgets
            .into_iter()
            .map(|(municipality, year, amount_cents)| pb::LumpsumBudget {
                municipality,
                year,
                amount_cents,
            })
            .collect(),
        tariffs: c
            .tariffs
            .into_iter()
            .map(|(product_code, unit, price_cents)| pb::Tariff {
                product_code,
                unit,
                price_cents,
            })
            .collect(),
        status: status as i32,
    }
}

pub fn tender_pb(t: &Tender) -> pb::Tender {
    use pb::RegistrationStatus as R;
    pb::Tender {
        id: t.id.to_string(),
        name: t.name.clone(),
        segment_code: t.segment_code.clone(),
        selection_quota: t.selection_quota,
        award_quota: t.award_quota,
        contract_start: t.contract_start.to_string(),
        status: match t.status {
            TenderStatus::Open => pb::TenderStatus::Open,
            TenderStatus::Selected => pb::TenderStatus::Selected,
            TenderStatus::Awarded => pb::TenderStatus::Awarded,
        } as i32,
        registrations: t
            .registrations
            .iter()
            .map(|r| {
                let s = r.score.unwrap_or(BidScore {
                    meets_minimum_demands: false,
                    cooperation: 0,
                    lead_time: 0,
                    scaling_down: 0,
                });
                pb::TenderRegistration {
                    agb_code: r.agb_code.to_string(),
                    subsegment_codes: r.subsegments.clone(),
                    municipalities: r.municipalities.iter().map(ToString::to_string).collect(),
                    selection_score: r.selection_score,
                    status: match r.status {
                        RegistrationStatus::Submitted => R::Submitted,
                        RegistrationStatus::Admitted => R::Admitted,
                        RegistrationStatus::NotAdmitted => R::NotAdmitted,
                        RegistrationStatus::Awarded => R::Awarded,
                        RegistrationStatus::NotAwarded => R::NotAwarded,
                        RegistrationStatus::Rejected => R::Rejected,
                    } as i32,
                    scored: r.score.is_some(),
                    meets_minimum_demands: s.meets_minimum_demands,
                    cooperation: s.cooperation,
                    lead_time: s.lead_time,
                    scaling_down: s.scaling_down,
                    total_score: s.total(),
                    rank: r.rank.unwrap_or(0),
                }
            })
            .collect(),
    }
}

pub fn catalogue_pb(c: &Catalogue) -> pb::Catalogue {
    let law = |l: rz_domain::Law| match l {
        rz_domain::Law::Jeugdwet => types::Law::Jeugdwet,
        rz_domain::Law::Wmo => types::Law::Wmo,
    } as i32;
    let fin = |f: Financing| match f {
        Financing::Lumpsum => types::Financing::Lumpsum,
        Financing::PopulationBased => types::Financing::PopulationBased,
        Financing::PxQ => types::Financing::Pxq,
        Financing::SeparateContract => types::Financing::SeparateContract,
    } as i32;
    let var = |f: Financing| match f.execution_variant() {
        rz_domain::ExecutionVariant::Taakgericht => types::ExecutionVariant::Taakgericht,
        rz_domain::ExecutionVariant::Outputgericht => types::ExecutionVariant::Outputgericht,
        rz_domain::ExecutionVariant::Inspanningsgericht => {
            types::ExecutionVariant::Inspanningsgericht
        }
    } as i32;
    pb::Catalogue {
        region: c.region.clone(),
        municipalities: c
            .municipalities
            .iter()
            .map(|m| pb::Municipality {
                code: m.code.to_string(),
                name: m.name.clone(),
            })
            .collect(),
        lots: c
            .lots
            .iter()
            .map(|l| pb::Lot {
                code: l.code.clone(),
                name: l.name.clone(),
                segments: l
                    .segments
                    .iter()
                    .map(|s| pb::Segment {
                        code: s.code.clone(),
                        name: s.name.clone(),
                        law: law(s.law),
                        municipalities: s.municipalities.iter().map(ToString::to_string).collect(),
                        note: s.note.clone(),
                        subsegments: s
                            .subsegments
                            .iter()
                            .map(|ss| pb::Subsegment {
                                code: ss.code.clone(),
                                name: ss.name.clone(),
                                financing: fin(ss.financing),
                                execution_variant: var(ss.financing),
                                product_categories: ss.product_categories.clone(),
                                product_codes: ss
                                    .product_codes
                                    .iter()
                                    .map(|c| c.as_str().to_owned())
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
