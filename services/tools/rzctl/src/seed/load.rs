//! Loading a seed through the gRPC API, printing one line per part.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indicatif::{ProgressBar, ProgressStyle};
use rz_proto::registration::v1 as pb;
use rz_proto::types::v1::Financing;

use super::file::{Bid, Seed};
use super::plan::{budget_factor, planned_bids, scores};
use crate::client::{Client, Party, connect, failed};

#[derive(Default)]
struct Counts {
    budgets_set: usize,
    budgets_unchanged: usize,
    tariffs_set: usize,
    tariffs_unchanged: usize,
    changes: usize,
}

/// "extended once", "extended twice", "extended 3 times".
fn extended_times(n: u32) -> String {
    match n {
        0 => "not extended".into(),
        1 => "extended once".into(),
        2 => "extended twice".into(),
        n => format!("extended {n} times"),
    }
}

/// A progress bar on stderr for `len` steps of `what`. indicatif draws it only on a terminal: a
/// script or a log sees only the summary lines. Cleared before a part's summary line.
fn progress(len: usize, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// Loads `seed` into the registration service at `endpoint`, as `party` (an operator).
pub async fn load(endpoint: &str, party: &Party, seed: &Seed) -> Result<(), String> {
    let mut c = connect(endpoint, party).await?;
    let catalogue = c
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .map_err(failed("GetCatalogue"))?
        .into_inner();
    let financing: HashMap<String, i32> = catalogue
        .lots
        .iter()
        .flat_map(|l| &l.segments)
        .flat_map(|s| &s.subsegments)
        .map(|ss| (ss.code.clone(), ss.financing))
        .collect();
    let segment_name = |code: &str| {
        catalogue
            .lots
            .iter()
            .flat_map(|l| &l.segments)
            .find(|s| s.code == code)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| code.to_owned())
    };
    let mut n = Counts::default();

    // Providers.
    let mut registered = 0;
    let bar = progress(seed.organisations().count(), "providers");
    for (agb, name, form, kvk) in seed.organisations() {
        bar.inc(1);
        c.register_provider(pb::RegisterProviderRequest {
            idempotency_key: format!("seed-provider-{agb}"),
            agb_code: agb.to_owned(),
            name: name.to_owned(),
            legal_form: form.to_owned(),
            kvk_number: kvk.to_owned(),
        })
        .await
        .map_err(failed(format!("RegisterProvider {agb}")))?;
        registered += 1;
    }
    for k in &seed.providers.consortia {
        c.form_consortium(pb::FormConsortiumRequest {
            idempotency_key: format!("seed-consortium-{}", k.agb),
            agb_code: k.agb.clone(),
            name: k.name.clone(),
            kvk_number: k.kvk.clone(),
            lead_agb_code: k.lead.clone(),
            member_agb_codes: k.members.clone(),
        })
        .await
        .map_err(failed(format!("FormConsortium {}", k.agb)))?;
    }
    for s in &seed.providers.subcontractors {
        let (main, sub) = (&s.main, &s.sub);
        let detail = c
            .get_provider(pb::GetProviderRequest {
                agb_code: main.clone(),
            })
            .await
            .map_err(failed(format!("GetProvider {main}")))?
            .into_inner();
        let has = detail
            .provider
            .is_some_and(|p| p.subcontractor_agb_codes.iter().any(|s| s == sub));
        if !has {
            c.add_subcontractor(pb::AddSubcontractorRequest {
                main_agb_code: main.clone(),
                subcontractor_agb_code: sub.clone(),
                meets_minimum_demands: true,
            })
            .await
            .map_err(failed(format!("AddSubcontractor {main} <- {sub}")))?;
            n.changes += 1;
        }
    }
    bar.finish_and_clear();
    let old = &seed.old_contracts;
    println!(
        "providers: {registered} organisations ({} formerly contracted), {} consortia, {} subcontractor links",
        old.former.len(),
        seed.providers.consortia.len(),
        seed.providers.subcontractors.len()
    );

    // Old contracts: extended to bridge the gap, then ended.
    let old_contracts = old
        .former
        .iter()
        .map(|o| (&o.agb, &o.segment))
        .chain(old.continuing.iter().map(|k| (&k.agb, &k.segment)));
    let mut ended = 0;
    let bar = progress(old.former.len() + old.continuing.len(), "old contracts");
    for (agb, segment) in old_contracts {
        bar.inc(1);
        let mut k = c
            .conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("seed-contract-old-{agb}-{segment}"),
                agb_code: agb.clone(),
                segment_code: segment.clone(),
                subsegment_codes: vec![],
                municipalities: vec![],
                start: old.start.to_string(),
            })
            .await
            .map_err(failed(format!("ConcludeContract old {agb} {segment}")))?
            .into_inner();
        while k.terminated_on.is_empty() && k.extensions < old.extensions {
            k = c
                .extend_contract(pb::ExtendContractRequest {
                    contract_id: k.id.clone(),
                })
                .await
                .map_err(failed(format!("ExtendContract {}", k.id)))?
                .into_inner();
            n.changes += 1;
        }
        if k.terminated_on.is_empty() {
            c.terminate_contract(pb::TerminateContractRequest {
                contract_id: k.id.clone(),
                end_date: old.end.to_string(),
                reason: old.reason.clone(),
            })
            .await
            .map_err(failed(format!("TerminateContract {}", k.id)))?;
            n.changes += 1;
        }
        ended += 1;
    }
    bar.finish_and_clear();
    println!(
        "old contracts: {ended} from {}, {}, ended on {}",
        old.start,
        extended_times(old.extensions),
        old.end
    );

    // The tender, per joint segment.
    let mut contracts: Vec<pb::Contract> = Vec::new();
    for segment in &seed.tender.segments {
        let (tender, awarded) =
            run_tender(&mut c, seed, segment, &segment_name(segment), &mut n).await?;
        let count = |st: pb::RegistrationStatus| {
            tender
                .registrations
                .iter()
                .filter(|r| r.status() == st)
                .count()
        };
        println!(
            "tender {segment:<5} {:>2} registrations, {:>2} not admitted, {:>2} rejected (minimum demands), {:>2} not awarded, {:>2} awarded -> {} contracts",
            tender.registrations.len(),
            count(pb::RegistrationStatus::NotAdmitted),
            count(pb::RegistrationStatus::Rejected),
            count(pb::RegistrationStatus::NotAwarded),
            count(pb::RegistrationStatus::Awarded),
            awarded.len()
        );
        contracts.extend(awarded);
    }
    let distinct: BTreeSet<&str> = contracts.iter().map(|k| k.agb_code.as_str()).collect();
    println!(
        "tender contracts: {} for {} distinct providers",
        contracts.len(),
        distinct.len()
    );

    // Contracts outside the joint tender.
    let mut direct: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &seed.direct.contracts {
        let (segment, agb) = (&d.segment, &d.agb);
        let k = c
            .conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("seed-contract-{}-{agb}", segment.to_lowercase()),
                agb_code: agb.clone(),
                segment_code: segment.clone(),
                subsegment_codes: vec![],
                municipalities: d.municipalities.clone(),
                start: d.start.to_string(),
            })
            .await
            .map_err(failed(format!("ConcludeContract {agb} {segment}")))?
            .into_inner();
        *direct.entry(segment).or_default() += 1;
        contracts.push(k);
    }
    let direct: Vec<String> = direct.iter().map(|(s, k)| format!("{s} {k}")).collect();
    println!("direct contracts: {}", direct.join(", "));

    // Budgets and tariffs.
    set_budgets(&mut c, seed, &contracts, &financing, &mut n).await?;
    set_tariffs(&mut c, seed, &contracts, &mut n).await?;
    println!(
        "lumpsum budgets: {} set, {} unchanged; tariffs: {} set, {} unchanged",
        n.budgets_set, n.budgets_unchanged, n.tariffs_set, n.tariffs_unchanged
    );
    // The extensions in force today.
    let mut extended = 0;
    let bar = progress(contracts.len(), "extensions");
    for k in &contracts {
        bar.inc(1);
        let target = seed.extensions.for_segment(&k.segment_code);
        let mut current = c
            .get_contract(pb::GetContractRequest {
                contract_id: k.id.clone(),
            })
            .await
            .map_err(failed(format!("GetContract {}", k.id)))?
            .into_inner();
        while current.extensions < target && current.terminated_on.is_empty() {
            current = c
                .extend_contract(pb::ExtendContractRequest {
                    contract_id: k.id.clone(),
                })
                .await
                .map_err(failed(format!("ExtendContract {}", k.id)))?
                .into_inner();
            extended += 1;
            n.changes += 1;
        }
    }
    bar.finish_and_clear();
    println!(
        "extensions: {extended} made in this run ({})",
        seed.extensions.note
    );
    println!(
        "seed loaded ({} state changes without idempotency key in this run)",
        n.changes + n.budgets_set + n.tariffs_set
    );
    Ok(())
}

/// Opens `segment`'s tender (or finds it again), registers the planned bids, selects, scores and
/// awards; returns the tender and the contracts it produced.
async fn run_tender(
    c: &mut Client,
    seed: &Seed,
    segment: &str,
    name: &str,
    n: &mut Counts,
) -> Result<(pb::Tender, Vec<pb::Contract>), String> {
    let bids = planned_bids(seed, segment);
    let award_quota = bids.iter().filter(|b| b.bid == Bid::Win).count() as u32;
    let selection_quota = bids.iter().filter(|b| b.bid != Bid::NotAdmitted).count() as u32;
    let mut t = c
        .open_tender(pb::OpenTenderRequest {
            idempotency_key: format!("seed-tender-{segment}"),
            name: format!("{} - {name}", seed.tender.name),
            segment_code: segment.to_owned(),
            selection_quota,
            award_quota,
            contract_start: seed.tender.contract_start.to_string(),
        })
        .await
        .map_err(failed(format!("OpenTender {segment}")))?
        .into_inner();
    let tender_id = t.id.clone();
    if t.status() == pb::TenderStatus::Open {
        for b in &bids {
            if t.registrations.iter().any(|r| r.agb_code == b.agb) {
                continue;
            }
            let (selection_score, _, _) = scores(segment, &b.agb, b.bid);
            t = c
                .submit_registration(pb::SubmitRegistrationRequest {
                    tender_id: tender_id.clone(),
                    agb_code: b.agb.clone(),
                    subsegment_codes: b.subsegments.clone(),
                    municipalities: b.municipalities.clone(),
                    selection_score,
                })
                .await
                .map_err(failed(format!("SubmitRegistration {segment} {}", b.agb)))?
                .into_inner();
            n.changes += 1;
        }
        t = c
            .select_registrations(pb::SelectRegistrationsRequest {
                tender_id: tender_id.clone(),
            })
            .await
            .map_err(failed(format!("SelectRegistrations {segment}")))?
            .into_inner();
        n.changes += 1;
    }
    if t.status() == pb::TenderStatus::Selected {
        let to_score: Vec<String> = t
            .registrations
            .iter()
            .filter(|r| r.status() == pb::RegistrationStatus::Admitted && !r.scored)
            .map(|r| r.agb_code.clone())
            .collect();
        for agb in to_score {
            let bid = bids
                .iter()
                .find(|b| b.agb == agb)
                .map_or(Bid::Lose, |b| b.bid);
            let (_, ok, [cooperation, lead_time, scaling_down]) = scores(segment, &agb, bid);
            c.score_bid(pb::ScoreBidRequest {
                tender_id: tender_id.clone(),
                agb_code: agb.clone(),
                meets_minimum_demands: ok,
                cooperation,
                lead_time,
                scaling_down,
            })
            .await
            .map_err(failed(format!("ScoreBid {segment} {agb}")))?;
            n.changes += 1;
        }
        let r = c
            .award_tender(pb::AwardTenderRequest {
                tender_id: tender_id.clone(),
            })
            .await
            .map_err(failed(format!("AwardTender {segment}")))?
            .into_inner();
        n.changes += 1;
        if let Some(awarded) = r.tender {
            t = awarded;
        }
    }
    let contracts = c
        .list_contracts(pb::ListContractsRequest {
            segment_code: segment.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(failed(format!("ListContracts {segment}")))?
        .into_inner()
        .contracts
        .into_iter()
        .filter(|k| k.tender_id == tender_id)
        .collect();
    Ok((t, contracts))
}

/// Lumpsum budgets per budget year: the segment's yearly amount per inhabitant times the
/// municipality's size, shared by the contracts covering it in proportion to the number of lumpsum
/// subsegments they cover and a fixed per-provider factor; the year's percentage of it, rounded.
async fn set_budgets(
    c: &mut Client,
    seed: &Seed,
    contracts: &[pb::Contract],
    financing: &HashMap<String, i32>,
    n: &mut Counts,
) -> Result<(), String> {
    let b = &seed.budgets;
    let lumpsum = Financing::Lumpsum as i32;
    let weight = |k: &pb::Contract| -> i64 {
        let subs = k
            .subsegment_codes
            .iter()
            .filter(|s| financing.get(*s) == Some(&lumpsum))
            .count() as i64;
        subs * budget_factor(seed, &k.agb_code)
    };
    let mut total_weight: HashMap<(&str, &str), i64> = HashMap::new();
    for k in contracts {
        for m in &k.municipalities {
            *total_weight
                .entry((k.segment_code.as_str(), m.as_str()))
                .or_default() += weight(k);
        }
    }
    let unit = b.round_euros * 100;
    let round = |cents: i64| (cents + unit / 2) / unit * unit;
    let bar = progress(contracts.len(), "budgets");
    for k in contracts {
        bar.inc(1);
        let w = weight(k);
        let rate = b
            .per_inhabitant_euros
            .get(&k.segment_code)
            .copied()
            .unwrap_or(0);
        if w == 0 || rate == 0 {
            continue;
        }
        for m in &k.municipalities {
            let total = total_weight
                .get(&(k.segment_code.as_str(), m.as_str()))
                .copied()
                .unwrap_or(w)
                .max(1);
            let inhabitants = b.inhabitants.get(m).copied().unwrap_or(0);
            let yearly = rate * inhabitants * 100 * w / total;
            for y in &b.years {
                let (year, amount) = (y.year, round(yearly * y.percent / 100));
                let same = k
                    .budgets
                    .iter()
                    .any(|b| &b.municipality == m && b.year == year && b.amount_cents == amount);
                if same {
                    n.budgets_unchanged += 1;
                    continue;
                }
                c.set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
                    contract_id: k.id.clone(),
                    municipality: m.clone(),
                    year,
                    amount_cents: amount,
                })
                .await
                .map_err(failed(format!(
                    "SetLumpsumBudget {} {} {m} {year}",
                    k.agb_code, k.segment_code
                )))?;
                n.budgets_set += 1;
            }
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// The file's tariffs on every contract covering their subsegment.
async fn set_tariffs(
    c: &mut Client,
    seed: &Seed,
    contracts: &[pb::Contract],
    n: &mut Counts,
) -> Result<(), String> {
    for k in contracts {
        for t in &seed.tariffs.per_subsegment {
            if !k.subsegment_codes.contains(&t.subsegment) {
                continue;
            }
            let same = k.tariffs.iter().any(|x| {
                x.product_code == t.product && x.unit == t.unit && x.price_cents == t.price_cents
            });
            if same {
                n.tariffs_unchanged += 1;
                continue;
            }
            c.set_tariff(pb::SetTariffRequest {
                contract_id: k.id.clone(),
                product_code: t.product.clone(),
                unit: t.unit.clone(),
                price_cents: t.price_cents,
            })
            .await
            .map_err(failed(format!(
                "SetTariff {} {} {}",
                k.agb_code, k.segment_code, t.product
            )))?;
            n.tariffs_set += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::extended_times;

    #[test]
    fn extensions_in_words() {
        assert_eq!(extended_times(1), "extended once");
        assert_eq!(extended_times(2), "extended twice");
        assert_eq!(extended_times(3), "extended 3 times");
    }
}
