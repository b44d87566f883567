//! `rzctl landscape`: the region's contract landscape as plain-text tables: segments, providers per
//! segment and municipality, lumpsum budgets, contract terms, the contracts that ended before the
//! tender's contracts started, and totals. Dates and the joint segments come from the seed file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rz_proto::registration::v1 as pb;
use rz_proto::types::v1::Financing;

use crate::client::{Client, Party, connect, failed};
use crate::seed::Seed;

/// Renders a plain-text table. Header cells may hold a `\n` for a second line; columns listed in
/// `left` are left-aligned, the others right-aligned.
fn table(head: &[&str], rows: &[Vec<String>], left: &[usize]) -> String {
    let cols = head.len();
    let head_lines: Vec<Vec<&str>> = head.iter().map(|h| h.split('\n').collect()).collect();
    let depth = head_lines.iter().map(Vec::len).max().unwrap_or(1);
    let mut width: Vec<usize> = head_lines
        .iter()
        .map(|l| l.iter().map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, w) in width.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if i > 0 {
                out.push_str("  ");
            }
            if left.contains(&i) {
                out.push_str(cell);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(cell);
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = String::new();
    for d in 0..depth {
        // Multi-line headers are bottom-aligned.
        let cells: Vec<String> = head_lines
            .iter()
            .map(|l| {
                let skip = depth - l.len();
                if d < skip {
                    String::new()
                } else {
                    l[d - skip].to_owned()
                }
            })
            .collect();
        out.push_str(&line(&cells));
    }
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Whole euros with dots between thousands: `€ 1.234.567`.
fn euros(cents: i64) -> String {
    let e = ((cents + 50) / 100).to_string();
    let mut s = String::new();
    for (i, ch) in e.chars().enumerate() {
        if i > 0 && (e.len() - i).is_multiple_of(3) {
            s.push('.');
        }
        s.push(ch);
    }
    format!("€ {s}")
}

fn financing_label(s: &pb::Segment) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for ss in &s.subsegments {
        let l = match Financing::try_from(ss.financing) {
            Ok(Financing::Lumpsum) => "lumpsum",
            Ok(Financing::PopulationBased) => "populatiebekostiging",
            Ok(Financing::Pxq) => "PxQ",
            Ok(Financing::SeparateContract) => "apart contract",
            _ => "?",
        };
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels.join(" + ")
}

/// Prints the landscape of the register at `endpoint`; `seed` says which dates and segments.
pub async fn print(endpoint: &str, party: &Party, seed: &Seed) -> Result<(), String> {
    let new_start = seed.tender.contract_start.to_string();
    let old_end = seed.old_contracts.end.to_string();
    let mut c = connect(endpoint, party).await?;
    let cat = c
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .map_err(failed("GetCatalogue"))?
        .into_inner();
    let providers: HashMap<String, pb::Provider> = c
        .list_providers(pb::ListProvidersRequest {})
        .await
        .map_err(failed("ListProviders"))?
        .into_inner()
        .providers
        .into_iter()
        .map(|p| (p.agb_code.clone(), p))
        .collect();
    let list = async |c: &mut Client, date: &str| -> Result<Vec<pb::Contract>, String> {
        Ok(c.list_contracts(pb::ListContractsRequest {
            active_on: date.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(failed(format!("ListContracts active on {date}")))?
        .into_inner()
        .contracts)
    };
    let active = list(&mut c, &new_start).await?;
    let ended: Vec<pb::Contract> = list(&mut c, &old_end)
        .await?
        .into_iter()
        .filter(|k| k.period.as_ref().is_some_and(|p| p.end == old_end))
        .collect();

    let segments: Vec<(&pb::Lot, &pb::Segment)> = cat
        .lots
        .iter()
        .flat_map(|l| l.segments.iter().map(move |s| (l, s)))
        .collect();
    let munis = &cat.municipalities;
    let of = |seg: &str| -> Vec<&pb::Contract> {
        active.iter().filter(|k| k.segment_code == seg).collect()
    };
    let name_of = |agb: &str| {
        providers
            .get(agb)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    // "Oude IJsselstreek" -> "Oude\nIJsselstreek": two-line headers keep the matrix narrow.
    let muni_heads: Vec<String> = munis
        .iter()
        .map(|m| m.name.replacen(' ', "\n", 1))
        .collect();

    println!(
        "Contract landscape of the region {} (contracts active on {new_start})\n",
        cat.region
    );
    let rows: Vec<Vec<String>> = segments
        .iter()
        .map(|(l, s)| {
            let excluded: Vec<&str> = munis
                .iter()
                .filter(|m| !s.municipalities.contains(&m.code))
                .map(|m| m.name.as_str())
                .collect();
            vec![
                s.code.clone(),
                l.name.clone(),
                s.name.clone(),
                financing_label(s),
                if excluded.is_empty() {
                    format!("all {}", munis.len())
                } else {
                    format!("all but {}", excluded.join(", "))
                },
            ]
        })
        .collect();
    println!("Segments");
    print!(
        "{}",
        table(
            &["Code", "Lot", "Segment", "Financing", "Municipalities"],
            &rows,
            &[0, 1, 2, 3, 4]
        )
    );

    // 1. Providers per segment and municipality.
    println!("\n1. Contracted providers per segment and municipality on {new_start}");
    println!("   ('-' = the municipality does not buy the segment through the joint contracts)\n");
    let mut head: Vec<&str> = vec!["Segment"];
    head.extend(muni_heads.iter().map(String::as_str));
    head.extend(["Distinct\nproviders", "Name"]);
    let mut rows = Vec::new();
    for (_, s) in &segments {
        let mut row = vec![s.code.clone()];
        for m in munis {
            if !s.municipalities.contains(&m.code) {
                row.push("-".into());
                continue;
            }
            let n: BTreeSet<&str> = of(&s.code)
                .into_iter()
                .filter(|k| k.municipalities.contains(&m.code))
                .map(|k| k.agb_code.as_str())
                .collect();
            row.push(n.len().to_string());
        }
        let all: BTreeSet<&str> = of(&s.code)
            .into_iter()
            .map(|k| k.agb_code.as_str())
            .collect();
        row.push(all.len().to_string());
        row.push(s.name.clone());
        rows.push(row);
    }
    let mut row = vec!["All".to_owned()];
    for m in munis {
        let n: BTreeSet<&str> = active
            .iter()
            .filter(|k| k.municipalities.contains(&m.code))
            .map(|k| k.agb_code.as_str())
            .collect();
        row.push(n.len().to_string());
    }
    let all: BTreeSet<&str> = active.iter().map(|k| k.agb_code.as_str()).collect();
    row.push(all.len().to_string());
    row.push("(distinct providers over all segments)".into());
    rows.push(row);
    print!("{}", table(&head, &rows, &[0, 10]));

    // 2. Lumpsum budgets of one year.
    let (year, period) = (seed.landscape.budget_year, &seed.landscape.budget_period);
    println!("\n2. Lumpsum budgets {year} ({period}) per segment and municipality\n");
    let mut head: Vec<&str> = vec!["Segment"];
    head.extend(muni_heads.iter().map(String::as_str));
    head.push("Total");
    let budget = |k: &pb::Contract, m: Option<&str>| -> i64 {
        k.budgets
            .iter()
            .filter(|b| b.year == year && m.is_none_or(|m| b.municipality == m))
            .map(|b| b.amount_cents)
            .sum()
    };
    let mut rows = Vec::new();
    let mut column_totals = vec![0i64; munis.len() + 1];
    for (_, s) in &segments {
        let total: i64 = of(&s.code).into_iter().map(|k| budget(k, None)).sum();
        if total == 0 {
            continue;
        }
        let mut row = vec![s.code.clone()];
        for (i, m) in munis.iter().enumerate() {
            if !s.municipalities.contains(&m.code) {
                row.push("-".into());
                continue;
            }
            let v: i64 = of(&s.code)
                .into_iter()
                .map(|k| budget(k, Some(&m.code)))
                .sum();
            column_totals[i] += v;
            row.push(euros(v));
        }
        column_totals[munis.len()] += total;
        row.push(euros(total));
        rows.push(row);
    }
    let mut row = vec!["Total".to_owned()];
    row.extend(column_totals.iter().map(|v| euros(*v)));
    rows.push(row);
    print!("{}", table(&head, &rows, &[0]));

    // 3. End dates and extension options.
    println!("\n3. Contract terms and extension options (contracts active on {new_start})\n");
    let mut groups: BTreeMap<(usize, String, String, String, u32, String), usize> = BTreeMap::new();
    for k in &active {
        let pos = segments
            .iter()
            .position(|(_, s)| s.code == k.segment_code)
            .unwrap_or(usize::MAX);
        let (start, end) = k
            .period
            .as_ref()
            .map(|p| (p.start.clone(), p.end.clone()))
            .unwrap_or_default();
        let latest = if k.latest_possible_end.is_empty() {
            "-".to_owned()
        } else {
            k.latest_possible_end.clone()
        };
        *groups
            .entry((
                pos,
                start,
                k.initial_end.clone(),
                end,
                k.extensions_left,
                latest,
            ))
            .or_default() += 1;
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|((pos, start, initial, end, left, latest), count)| {
            let s = segments.get(pos).map(|(_, s)| *s);
            vec![
                s.map(|s| s.code.clone()).unwrap_or_default(),
                count.to_string(),
                start,
                initial,
                end,
                left.to_string(),
                latest,
                s.map(|s| s.name.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "Segment",
                "Contracts",
                "Start",
                "Initial end",
                "Current end",
                "Extensions\nleft",
                "Latest\npossible end",
                "Name"
            ],
            &rows,
            &[0, 2, 3, 4, 6, 7]
        )
    );

    // 4. Contracts that ended before the tender's contracts started.
    println!("\n4. Contracts that ended on {old_end}: clients to hand over\n");
    let continues = |k: &pb::Contract| {
        active
            .iter()
            .any(|a| a.agb_code == k.agb_code && a.segment_code == k.segment_code)
    };
    let mut rows = Vec::new();
    for (_, s) in &segments {
        let here: Vec<&pb::Contract> = ended.iter().filter(|k| k.segment_code == s.code).collect();
        if here.is_empty() {
            continue;
        }
        let providers: BTreeSet<&str> = here.iter().map(|k| k.agb_code.as_str()).collect();
        let hand_over = here.iter().filter(|k| !continues(k)).count();
        rows.push(vec![
            s.code.clone(),
            here.len().to_string(),
            providers.len().to_string(),
            hand_over.to_string(),
            (here.len() - hand_over).to_string(),
            s.name.clone(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "Segment",
                "Ended\ncontracts",
                "Providers",
                "Hand over\n(no new contract)",
                "Continue\n(new contract)",
                "Name"
            ],
            &rows,
            &[0, 5]
        )
    );
    println!();
    let mut rows: Vec<Vec<String>> = ended
        .iter()
        .map(|k| {
            vec![
                k.segment_code.clone(),
                k.agb_code.clone(),
                name_of(&k.agb_code),
                if continues(k) {
                    "continues under a new contract".into()
                } else {
                    "clients to hand over".into()
                },
            ]
        })
        .collect();
    rows.sort_by(|a, b| (&a[3], &a[0], &a[2]).cmp(&(&b[3], &b[0], &b[2])));
    print!(
        "{}",
        table(
            &["Segment", "AGB", "Provider", "Status"],
            &rows,
            &[0, 1, 2, 3]
        )
    );

    // 5. Totals.
    println!("\n5. Totals\n");
    let distinct = |segs: &[&str]| -> BTreeSet<&str> {
        active
            .iter()
            .filter(|k| segs.contains(&k.segment_code.as_str()))
            .map(|k| k.agb_code.as_str())
            .collect()
    };
    let tender_segments: Vec<&str> = seed.tender.segments.iter().map(String::as_str).collect();
    let joint = distinct(&tender_segments);
    let mut with_extra = tender_segments.clone();
    with_extra.push(&seed.landscape.extra_segment);
    let with_extra = distinct(&with_extra);
    let consortia = joint
        .iter()
        .filter(|a| {
            providers
                .get(**a)
                .is_some_and(|p| p.kind() == pb::ProviderKind::Consortium)
        })
        .count();
    let now: BTreeSet<&str> = active.iter().map(|k| k.agb_code.as_str()).collect();
    let former: BTreeSet<&str> = ended
        .iter()
        .map(|k| k.agb_code.as_str())
        .filter(|a| !now.contains(a))
        .collect();
    let rows = vec![
        vec![
            format!(
                "Contracted providers, joint lots ({})",
                tender_segments.join(", ")
            ),
            joint.len().to_string(),
        ],
        vec!["  of which consortia".to_owned(), consortia.to_string()],
        vec![
            format!(
                "Contracted providers, joint lots + {}",
                seed.landscape.extra_label
            ),
            with_extra.len().to_string(),
        ],
        vec![
            "Contracted providers, all segments (incl. hospital care, household help)".to_owned(),
            now.len().to_string(),
        ],
        vec![
            format!("Providers whose contracts ended on {old_end}"),
            ended
                .iter()
                .map(|k| k.agb_code.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                .to_string(),
        ],
        vec![
            "  formerly contracted (no contract any more)".to_owned(),
            former.len().to_string(),
        ],
    ];
    print!("{}", table(&["", "Providers"], &rows, &[0]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_and_tables_format() {
        assert_eq!(euros(123_456_789), "€ 1.234.568");
        assert_eq!(euros(0), "€ 0");
        let t = table(&["A", "B\nC"], &[vec!["x".into(), "10".into()]], &[0]);
        assert_eq!(t, "    B\nA   C\n-  --\nx  10\n");
    }
}
