//! Declarations: a provider's 323 (JW323 / WMO323) uploaded as XML, judged line by line against
//! the assignment, the contract and the lines declared before, the approved lines stored (euro
//! cents) and answered with a 325 (JW325 / WMO325).
//!
//! The declaration as a whole (the first that fails answers it, the codes in the 325's header):
//!
//! 1. Readable and valid (the hardened reader): otherwise `0001` (or the reader's code).
//! 2. The sender is the calling provider: otherwise PERMISSION_DENIED `upload.sender_is_caller`.
//! 3. TR378 `S300`: the receiver is a municipality of the region.
//! 4. TR135 `8848`: the Dagtekening is not after today.
//! 5. TR056 `9056`: the Identificatie was not used before by this provider for a 323.
//! 6. TR333 `9333`: the DeclaratieNummer was not used before by this provider (per law).
//!
//! Each line (Prestatie), in document order; a debit line (COD043 `D`):
//!
//! | rule | code | check |
//! |---|---|---|
//! | TR314 | 8021 | ReferentieNummer not delivered before (stored, or earlier in this file) |
//! | TR389 | 9389 | a VorigReferentieNummer names a debit that was credited |
//! | TR338 | 9338 | the ToewijzingNummer is an assignment of the receiving municipality to this provider |
//! | TR304 | 8187 | the assignment is the client's (the Bsn's client key) |
//! | TR384 | 9384 | the assignment was not removed (RedenWijziging 13) |
//! | TR340 | 9340 | taakgericht (lumpsum) assignment: no product code, not declared per client |
//! | TR339 / TR340 | 9339 / 9340 | ProductCategorie / ProductCode are the assignment's |
//! | TR307 / TR308 | 9307 / 9308 | begin / end of the ProductPeriode within the assignment (start .. last valid day) |
//! | TR319 | 9319 | the ProductPeriode within the DeclaratiePeriode and within one calendar month |
//! | TR341 | 9341 | inspanningsgericht: the Eenheid is the assignment's |
//! | TR321 | 9321 | inspanningsgericht: the volume fits what was granted for the ProductPeriode (per day x days, per week x days/7 rounded up, per month, total) |
//! | TR322 | 9322 | inspanningsgericht: the volumes approved for the assignment in the month (all months for frequency 6 total), this one included, fit what was granted |
//! | TR418 | 0611 | inspanningsgericht: the ProductTarief is the tariff of the provider's contract on the begin date for the product and unit (registration's GetContract; no tariff there refuses) |
//! | TR346 | 9346 | Eenheid not 83: IngediendBedrag = GeleverdVolume x tariff (the line's, else the contract's) |
//! | TR369 | 9369 | outputgericht: the amounts approved for the assignment, this one included, fit its budget |
//!
//! A credit line (`C`) undoes the debit line its VorigReferentieNummer names: TR314 (its own
//! reference not delivered before), TR323 `8017` (no such debit of this provider) and TR390 `9390`
//! (that debit was credited before). Approved lines are stored with the declaration in one
//! transaction; the debit a credit undoes gets `credited_by` and no longer counts towards volumes
//! and budgets.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use rz_domain::{AgbCode, ClientKey, Frequency, ReturnCode, Unit};
use rz_istandaarden as ist;
use rz_proto::assignment::v1 as pb;

use crate::assigner::Assigner;
use crate::domain::{Assignment, Extent};
use crate::error::{Error, Result};
use crate::store;

fn code(c: &str) -> ReturnCode {
    ReturnCode::parse(c).unwrap_or(ReturnCode::TECHNICAL_REJECTION)
}

/// A refusal of a line: the rule, its WJ001 code and what is wrong.
struct Refusal {
    rule: &'static str,
    code: &'static str,
    text: String,
}

fn refuse(rule: &'static str, code: &'static str, text: impl Into<String>) -> Refusal {
    Refusal {
        rule,
        code,
        text: text.into(),
    }
}

fn law_key(law: rz_domain::Law) -> &'static str {
    match law {
        rz_domain::Law::Jeugdwet => "JW",
        rz_domain::Law::Wmo => "WMO",
    }
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn month_end(d: NaiveDate) -> NaiveDate {
    let next = if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).unwrap_or(d)
}

/// What was granted for `begin ..= end` of a volume `v` per `frequency`.
fn granted(v: u32, frequency: Frequency, begin: NaiveDate, end: NaiveDate) -> i64 {
    let v = i64::from(v);
    let days = (end - begin).num_days() + 1;
    match frequency {
        Frequency::PerDay => v * days,
        Frequency::PerWeek => (v * days + 6) / 7,
        Frequency::PerMonth | Frequency::Total => v,
    }
}

/// A line counted towards an assignment's volume and budget.
struct Counted {
    reference: String,
    month: NaiveDate,
    volume: i64,
    amount: i64,
}

/// What the judging of one declaration keeps: assignments, contracts and the lines that count.
#[derive(Default)]
struct Ledger {
    assignments: HashMap<u32, Option<Assignment>>,
    /// Debit lines that count, per assignment number (stored and approved in this file).
    counted: HashMap<u32, Vec<Counted>>,
    /// Debit references credited (stored `credited_by`, or by a credit approved in this file).
    credited: HashSet<String>,
    /// This provider's stored lines by reference.
    stored: HashMap<String, store::StoredLine>,
    /// References approved earlier in this file, with D/C.
    in_file: HashMap<String, ist::DebitCredit>,
    contracts: HashMap<(String, NaiveDate), Option<String>>,
    tariffs: HashMap<String, Vec<(String, String, i64)>>,
}

impl Ledger {
    fn used(&self, a: u32, month: Option<NaiveDate>) -> (i64, i64) {
        self.counted.get(&a).map_or((0, 0), |v| {
            v.iter()
                .filter(|c| !self.credited.contains(&c.reference))
                .filter(|c| month.is_none_or(|m| c.month == m))
                .fold((0, 0), |(vol, amt), c| (vol + c.volume, amt + c.amount))
        })
    }
}

impl Assigner {
    async fn own_header(
        &self,
        municipality: &rz_domain::GemeenteCode,
    ) -> Result<ist::ReturnHeader> {
        let mut conn = self.pool.acquire().await?;
        let n = store::next_message_number(&mut conn, municipality.as_str()).await?;
        Ok(ist::ReturnHeader {
            message_id: rz_domain::MessageId::parse(&n.to_string())?,
            message_date: self.today(),
        })
    }

    async fn declaration_refused(
        &self,
        h: &ist::ReceivedHeader,
        path: &str,
        rule: &str,
        c: ReturnCode,
    ) -> Result<pb::UploadResult> {
        tracing::info!(agb_code = %h.sender_agb, %rule, return_code = c.code(), "declaration refused");
        let own = self.own_header(&h.receiver_municipality).await?;
        Ok(pb::UploadResult {
            accepted: false,
            return_message_xml: ist::render_325(&own, h, ist::DeclarationContent::Whole(&[c]))
                .unwrap_or_default(),
            errors: vec![pb::UploadError {
                path: path.to_owned(),
                rule: rule.to_owned(),
                return_code: c.code().to_owned(),
            }],
            kind: h.message_type.name(h.law),
        })
    }

    /// A 323 uploaded by provider `agb` (see the module documentation).
    pub(crate) async fn upload_declaration(
        &self,
        agb: &AgbCode,
        bytes: &[u8],
    ) -> Result<pb::UploadResult> {
        let m = match ist::parse_323(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(agb_code = %agb, path = %e.path, rule = %e.rule, "declaration rejected");
                let Some(h) = e.received.as_deref() else {
                    return Ok(pb::UploadResult {
                        accepted: false,
                        errors: vec![pb::UploadError {
                            path: e.path.clone(),
                            rule: e.rule.clone(),
                            return_code: e.return_code.code().to_owned(),
                        }],
                        ..Default::default()
                    });
                };
                if h.sender_agb != *agb {
                    return Err(not_caller(h, agb));
                }
                return self
                    .declaration_refused(h, &e.path, &e.rule, e.return_code)
                    .await;
            }
        };
        let h = m.header.clone();
        if h.sender_agb != *agb {
            return Err(not_caller(&h, agb));
        }
        if !self
            .upstream
            .catalogue()
            .await?
            .municipalities
            .contains(h.receiver_municipality.as_str())
        {
            let rule = format!(
                "TR378: {} is not a municipality of the region",
                h.receiver_municipality
            );
            return self
                .declaration_refused(&h, "/Bericht/Header/Ontvanger", &rule, code("S300"))
                .await;
        }
        if let Err(v) = ist::check_dagtekening(&h, self.today()) {
            return self
                .declaration_refused(&h, &v.path, &v.rule_text(), v.rule.return_code())
                .await;
        }
        let claimed = {
            let mut conn = self.pool.acquire().await?;
            crate::received::claim_identification(&mut conn, &h, self.today()).await?
        };
        if !claimed {
            let rule = format!(
                "TR056: Identificatie {} was used before by {} for a {}",
                h.message_id,
                h.sender_agb,
                h.message_type.name(h.law)
            );
            return self
                .declaration_refused(
                    &h,
                    "/Bericht/Header/BerichtIdentificatie/Identificatie",
                    &rule,
                    code("9056"),
                )
                .await;
        }
        let out = self.judge_declaration(agb, &m).await;
        let release = match &out {
            Ok(r) => r.errors.iter().any(|e| e.return_code == "9333"),
            Err(_) => true,
        };
        if release
            && let Ok(mut conn) = self.pool.acquire().await
            && let Err(x) = crate::received::release_identification(&mut conn, &h).await
        {
            tracing::warn!(error = %x, "identification of an unprocessed declaration not released");
        }
        out
    }

    async fn judge_declaration(
        &self,
        agb: &AgbCode,
        m: &ist::Message323,
    ) -> Result<pb::UploadResult> {
        let h = &m.header;
        let law = law_key(h.law);
        let municipality = h.receiver_municipality.clone();
        {
            let mut conn = self.pool.acquire().await?;
            if store::declaration_known(&mut conn, agb.as_str(), law, &m.number).await? {
                let rule = format!(
                    "TR333: DeclaratieNummer {} was used before by this provider",
                    m.number
                );
                return self
                    .declaration_refused(
                        h,
                        "/Bericht/Declaratie/DeclaratieNummer",
                        &rule,
                        code("9333"),
                    )
                    .await;
            }
        }
        let mut ledger = Ledger::default();
        // What the rules need, loaded in a few statements: the provider's lines with the file's
        // references (own and previous), the assignments and their counted lines.
        let mut refs: Vec<String> = Vec::new();
        let mut numbers: Vec<u32> = Vec::new();
        for c in &m.clients {
            for l in &c.lines {
                refs.push(l.reference.clone());
                refs.extend(l.previous_reference.clone());
                numbers.push(l.assignment_number.value());
            }
        }
        numbers.sort_unstable();
        numbers.dedup();
        {
            let mut conn = self.pool.acquire().await?;
            for s in store::stored_lines(&mut conn, agb.as_str(), law, &refs).await? {
                ledger.stored.insert(s.reference.clone(), s);
            }
            for n in &numbers {
                let a = store::load_assignment(&mut conn, &municipality, *n, false).await?;
                ledger.assignments.insert(*n, a);
            }
            let wide: Vec<i64> = numbers.iter().map(|n| i64::from(*n)).collect();
            for s in
                store::stored_lines_of_assignments(&mut conn, municipality.as_str(), &wide).await?
            {
                if s.credited_by.is_some() {
                    ledger.credited.insert(s.reference.clone());
                }
                if s.debit_credit == "D" {
                    ledger
                        .counted
                        .entry(s.assignment_number)
                        .or_default()
                        .push(Counted {
                            reference: s.reference.clone(),
                            month: month_start(s.period_start),
                            volume: s.volume,
                            amount: s.amount_cents,
                        });
                }
            }
        }
        let mut codes: Vec<Vec<Vec<ReturnCode>>> = Vec::with_capacity(m.clients.len());
        let mut errors = Vec::new();
        let mut approved: Vec<store::NewLine> = Vec::new();
        let mut credits: Vec<(String, String)> = Vec::new();
        for (ci, c) in m.clients.iter().enumerate() {
            let key = ClientKey::derive(&self.secret, &c.bsn);
            let mut client_codes = Vec::with_capacity(c.lines.len());
            for (li, l) in c.lines.iter().enumerate() {
                let refusals = self
                    .judge_line(agb, m, &key, l, &mut ledger, &mut credits)
                    .await?;
                if refusals.is_empty() {
                    ledger.in_file.insert(l.reference.clone(), l.debit_credit);
                    approved.push(store::NewLine {
                        reference: l.reference.clone(),
                        assignment_number: i64::from(l.assignment_number.value()),
                        product_category: l.category.code().to_owned(),
                        product_code: l.product_code.as_str().to_owned(),
                        period_start: l.begin,
                        period_end: l.end,
                        volume: i64::from(l.volume),
                        unit: l.unit.code().to_owned(),
                        tariff_cents: l.tariff_cents.map(i64::from),
                        amount_cents: i64::from(l.amount_cents),
                        debit_credit: l.debit_credit.code(),
                        previous_reference: l.previous_reference.clone(),
                    });
                    client_codes.push(Vec::new());
                } else {
                    let path = format!(
                        "/Bericht/Declaratie/Clienten/Client[{}]/Prestaties/Prestatie[{}]",
                        ci + 1,
                        li + 1
                    );
                    let mut line_codes = Vec::new();
                    for r in refusals {
                        let rc = code(r.code);
                        if !line_codes.contains(&rc) {
                            line_codes.push(rc);
                        }
                        errors.push(pb::UploadError {
                            path: path.clone(),
                            rule: format!("{}: {}", r.rule, r.text),
                            return_code: r.code.to_owned(),
                        });
                    }
                    client_codes.push(line_codes);
                }
            }
            codes.push(client_codes);
        }
        let approved_cents = ist::approved_total(m, &codes);
        let lines = m.line_count();
        let refused = lines - approved.len();
        let record = store::DeclarationRecord {
            agb_code: agb.as_str().to_owned(),
            law,
            number: m.number.clone(),
            municipality: municipality.as_str().to_owned(),
            message_id: h.message_id.as_str().to_owned(),
            period_start: m.period_begin,
            period_end: m.period_end,
            received_on: self.today(),
            lines: i32::try_from(lines).unwrap_or(i32::MAX),
            refused_lines: i32::try_from(refused).unwrap_or(i32::MAX),
            declared_cents: m.total_cents,
            approved_cents,
        };
        {
            let mut tx = self.pool.begin().await?;
            match store::insert_declaration(&mut tx, &record, &approved, &credits).await {
                Ok(()) => {}
                // Another upload of this provider stored a line reference or the declaration
                // number at the same time: nothing of this one was stored; sent again, it is
                // judged against the other (8021 / 9333).
                Err(sqlx::Error::Database(d)) if d.code().is_some_and(|c| c == "23505") => {
                    return Err(Error::Api(rz_platform::ApiError::Aborted(
                        "another declaration of this provider stored the same declaration number \
                         or line reference at the same time; nothing was stored: send it again"
                            .into(),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
        }
        let own = self.own_header(&municipality).await?;
        let xml = ist::render_325(
            &own,
            h,
            ist::DeclarationContent::Judged {
                declaration: m,
                codes: &codes,
            },
        )
        .map_err(|e| Error::Upstream(format!("325: {e}")))?;
        tracing::info!(agb_code = %agb, municipality = %municipality, message_id = %h.message_id, lines, refused_lines = refused, approved_cents, "declaration judged");
        Ok(pb::UploadResult {
            accepted: errors.is_empty(),
            return_message_xml: xml,
            errors,
            kind: h.message_type.name(h.law),
        })
    }

    /// The refusals of one line (empty: approved); updates the ledger with what an approved line
    /// counts and credits.
    async fn judge_line(
        &self,
        agb: &AgbCode,
        m: &ist::Message323,
        key: &ClientKey,
        l: &ist::DeclaredLine,
        ledger: &mut Ledger,
        credits: &mut Vec<(String, String)>,
    ) -> Result<Vec<Refusal>> {
        let mut out = Vec::new();
        if ledger.stored.contains_key(&l.reference) || ledger.in_file.contains_key(&l.reference) {
            out.push(refuse(
                "TR314",
                "8021",
                format!("ReferentieNummer {} was delivered before", l.reference),
            ));
            return Ok(out);
        }
        if l.debit_credit == ist::DebitCredit::Credit {
            let Some(prev) = &l.previous_reference else {
                out.push(refuse(
                    "TR323",
                    "8017",
                    "a credit line names no VorigReferentieNummer of a debit line",
                ));
                return Ok(out);
            };
            let debit_known = ledger
                .stored
                .get(prev)
                .is_some_and(|s| s.debit_credit == "D")
                || ledger.in_file.get(prev) == Some(&ist::DebitCredit::Debit);
            if !debit_known {
                out.push(refuse(
                    "TR323",
                    "8017",
                    format!("no debit line {prev} of this provider is known"),
                ));
            } else if ledger.credited.contains(prev) {
                out.push(refuse(
                    "TR390",
                    "9390",
                    format!("debit line {prev} was credited before"),
                ));
            } else {
                ledger.credited.insert(prev.clone());
                credits.push((prev.clone(), l.reference.clone()));
            }
            return Ok(out);
        }
        if let Some(prev) = &l.previous_reference
            && !ledger.credited.contains(prev)
        {
            out.push(refuse(
                "TR389",
                "9389",
                format!("the earlier debit line {prev} this line replaces was not credited"),
            ));
            return Ok(out);
        }
        let n = l.assignment_number.value();
        let Some(a) = ledger.assignments.get(&n).cloned().flatten() else {
            out.push(refuse(
                "TR338",
                "9338",
                format!("{} has no assignment {n}", m.header.receiver_municipality),
            ));
            return Ok(out);
        };
        if a.agb_code != *agb {
            out.push(refuse(
                "TR338",
                "9338",
                format!("assignment {n} is not assigned to this provider"),
            ));
            return Ok(out);
        }
        if a.client_key != *key {
            out.push(refuse(
                "TR304",
                "8187",
                format!("assignment {n} is not an assignment of this client"),
            ));
            return Ok(out);
        }
        if a.change_reason == "13" {
            out.push(refuse(
                "TR384",
                "9384",
                format!("assignment {n} was removed (RedenWijziging 13)"),
            ));
        }
        if a.extent == Extent::Task {
            out.push(refuse(
                "TR340",
                "9340",
                format!(
                    "assignment {n} is taakgericht (lumpsum, paid through the contract's budget): it has no product code and is not declared per client"
                ),
            ));
            return Ok(out);
        }
        if l.category.code() != a.product_category {
            out.push(refuse(
                "TR339",
                "9339",
                format!(
                    "ProductCategorie {} is not that of assignment {n} ({})",
                    l.category.code(),
                    a.product_category
                ),
            ));
        }
        if !a.product_code.is_empty() && l.product_code.as_str() != a.product_code {
            out.push(refuse(
                "TR340",
                "9340",
                format!(
                    "ProductCode {} is not that of assignment {n} ({})",
                    l.product_code.as_str(),
                    a.product_code
                ),
            ));
        }
        let start = a.period.start();
        let last = match (a.period.end(), a.valid_until) {
            (Some(e), Some(v)) => Some(e.min(v)),
            (e, v) => e.or(v),
        };
        let within = |d: NaiveDate| d >= start && last.is_none_or(|e| d <= e);
        let shown_end = last.map_or_else(|| "open".to_owned(), |e| e.to_string());
        if !within(l.begin) {
            out.push(refuse(
                "TR307",
                "9307",
                format!(
                    "the line begins on {}, outside assignment {n} ({start} .. {shown_end})",
                    l.begin
                ),
            ));
        }
        if !within(l.end) {
            out.push(refuse(
                "TR308",
                "9308",
                format!(
                    "the line ends on {}, outside assignment {n} ({start} .. {shown_end})",
                    l.end
                ),
            ));
        }
        if l.begin < m.period_begin
            || l.end > m.period_end
            || month_start(l.begin) != month_start(l.end)
        {
            out.push(refuse(
                "TR319",
                "9319",
                format!(
                    "the ProductPeriode {} .. {} is not within the DeclaratiePeriode {} .. {} and one calendar month",
                    l.begin, l.end, m.period_begin, m.period_end
                ),
            ));
        }
        // The volume rules need a period within the assignment and one month.
        let period_ok = out
            .iter()
            .all(|r| !matches!(r.rule, "TR307" | "TR308" | "TR319"));
        let month = month_start(l.begin);
        let amount = i64::from(l.amount_cents);
        match a.extent {
            Extent::Task => {}
            Extent::Effort {
                volume,
                unit,
                frequency,
            } => {
                if l.unit != unit {
                    out.push(refuse(
                        "TR341",
                        "9341",
                        format!(
                            "Eenheid {} is not that of assignment {n} ({})",
                            l.unit.code(),
                            unit.code()
                        ),
                    ));
                }
                let line_volume = i64::from(l.volume);
                let may = granted(volume, frequency, l.begin, l.end);
                if period_ok && line_volume > may {
                    out.push(refuse(
                        "TR321",
                        "9321",
                        format!(
                            "volume {} exceeds the {may} granted for {} .. {} ({} per {})",
                            l.volume,
                            l.begin,
                            l.end,
                            volume,
                            frequency.code()
                        ),
                    ));
                } else if period_ok {
                    let (cap, scope) = if frequency == Frequency::Total {
                        (i64::from(volume), None)
                    } else {
                        let b = month.max(start);
                        let e = last.map_or(month_end(month), |x| x.min(month_end(month)));
                        (granted(volume, frequency, b, e.max(b)), Some(month))
                    };
                    let (used, _) = ledger.used(n, scope);
                    if used + line_volume > cap {
                        out.push(refuse(
                            "TR322",
                            "9322",
                            format!(
                                "with the {used} approved before, volume {} exceeds the {cap} granted{}",
                                l.volume,
                                if scope.is_some() { " in the month" } else { "" }
                            ),
                        ));
                    }
                }
                let tariff = self.tariff(agb, &a, l, ledger).await?;
                match (tariff, l.tariff_cents) {
                    (None, _) => out.push(refuse(
                        "TR418",
                        "0611",
                        format!(
                            "the provider's contract for {} on {} has no tariff for product {} in unit {}",
                            a.subsegment_code,
                            l.begin,
                            a.product_code,
                            l.unit.code()
                        ),
                    )),
                    (Some(t), Some(sent)) if i64::from(sent) != t => out.push(refuse(
                        "TR418",
                        "0611",
                        format!("ProductTarief {sent} is not the contract's tariff {t} (cents)"),
                    )),
                    _ => {}
                }
                let price = l.tariff_cents.map(i64::from).or(tariff);
                if l.unit != Unit::Euros
                    && let Some(p) = price
                    && amount != line_volume * p
                {
                    out.push(refuse(
                        "TR346",
                        "9346",
                        format!(
                            "IngediendBedrag {amount} is not GeleverdVolume {} x ProductTarief {p}",
                            l.volume
                        ),
                    ));
                }
            }
            Extent::Output { budget } => {
                if l.unit != Unit::Euros
                    && let Some(p) = l.tariff_cents
                    && amount != i64::from(l.volume) * i64::from(p)
                {
                    out.push(refuse(
                        "TR346",
                        "9346",
                        format!(
                            "IngediendBedrag {amount} is not GeleverdVolume {} x ProductTarief {p}",
                            l.volume
                        ),
                    ));
                }
                let (_, spent) = ledger.used(n, None);
                if spent + amount > budget.as_i64() {
                    out.push(refuse(
                        "TR369",
                        "9369",
                        format!(
                            "with the {spent} cents approved before, {amount} cents exceed the budget of {} cents",
                            budget.as_i64()
                        ),
                    ));
                }
            }
        }
        if out.is_empty() {
            ledger.counted.entry(n).or_default().push(Counted {
                reference: l.reference.clone(),
                month,
                volume: i64::from(l.volume),
                amount,
            });
        }
        Ok(out)
    }

    /// The contract tariff (cents) of the assignment's product in the line's unit, of the
    /// provider's contract for the assignment's subsegment on the line's begin date.
    async fn tariff(
        &self,
        agb: &AgbCode,
        a: &Assignment,
        l: &ist::DeclaredLine,
        ledger: &mut Ledger,
    ) -> Result<Option<i64>> {
        let key = (a.subsegment_code.clone(), l.begin);
        let contract = match ledger.contracts.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .upstream
                    .check_contracted(
                        agb.as_str(),
                        &a.subsegment_code,
                        a.municipality.as_str(),
                        l.begin,
                    )
                    .await?;
                ledger.contracts.insert(key, c.clone());
                c
            }
        };
        let Some(id) = contract else {
            return Ok(None);
        };
        if !ledger.tariffs.contains_key(&id) {
            let t = self.upstream.contract_tariffs(&id).await?;
            ledger.tariffs.insert(id.clone(), t);
        }
        let product = if a.product_code.is_empty() {
            l.product_code.as_str()
        } else {
            a.product_code.as_str()
        };
        Ok(ledger.tariffs.get(&id).and_then(|ts| {
            ts.iter()
                .find(|(p, u, _)| p == product && u == l.unit.code())
                .map(|(_, _, c)| *c)
        }))
    }
}

fn not_caller(h: &ist::ReceivedHeader, agb: &AgbCode) -> Error {
    Error::denied(
        "upload.sender_is_caller",
        format!(
            "the sender (Afzender) {} is not the calling provider {agb}",
            h.sender_agb
        ),
    )
}
