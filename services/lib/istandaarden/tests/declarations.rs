//! The 323 reader and the 325 writer: sample declarations of both laws valid against the official
//! JW323/WMO323 XSDs are read field by field; every 325 written (refused whole, partly refused,
//! fully approved) validates against JW325 and the WMO325 derived from it (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::NaiveDate;
use rz_domain::{Law, MessageId, ReturnCode};
use rz_istandaarden::{
    DebitCredit, DeclarationContent, MessageType, ParseErrorKind, ReturnHeader, approved_total,
    message_type_of, parse_323, parse_provider_message, render_325, xsd_versions,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A Prestatie: reference, previous reference, assignment number, volume, tariff, amount, D/C.
struct Line<'a> {
    reference: &'a str,
    previous: Option<&'a str>,
    number: u32,
    volume: u32,
    tariff: Option<u32>,
    amount: u32,
    dc: &'a str,
}

fn m323(law: Law, id: &str, clients: &[(&str, Vec<Line<'_>>)]) -> String {
    let (std, ns, code, category, product, v) = match law {
        Law::Jeugdwet => ("ijw", "jw323", "490", "45", "45A01", "0.1.0"),
        Law::Wmo => ("iwmo", "wmo323", "484", "03", "PV01", "1.0.0"),
    };
    let mut total = 0i64;
    let mut body = String::new();
    for (bsn, lines) in clients {
        body.push_str(&format!(
            "      <Client>\n        <Bsn>{bsn}</Bsn>\n        <Prestaties>\n"
        ));
        for l in lines {
            total += if l.dc == "C" {
                -i64::from(l.amount)
            } else {
                i64::from(l.amount)
            };
            let prev = l
                .previous
                .map(|p| format!("<{std}:VorigReferentieNummer>{p}</{std}:VorigReferentieNummer>"))
                .unwrap_or_default();
            let tariff = l
                .tariff
                .map(|t| format!("<ProductTarief>{t}</ProductTarief>"))
                .unwrap_or_default();
            body.push_str(&format!(
                r#"          <Prestatie>
            <ProductReferentie><{std}:ReferentieNummer>{}</{std}:ReferentieNummer>{prev}</ProductReferentie>
            <ToewijzingNummer>{}</ToewijzingNummer>
            <ProductCategorie>{category}</ProductCategorie>
            <ProductCode>{product}</ProductCode>
            <ProductPeriode><{std}:Begindatum>2022-08-01</{std}:Begindatum><{std}:Einddatum>2022-08-31</{std}:Einddatum></ProductPeriode>
            <GeleverdVolume>{}</GeleverdVolume>
            <Eenheid>04</Eenheid>
            {tariff}
            <IngediendBedrag><{std}:Bedrag>{}</{std}:Bedrag><{std}:DebetCredit>{}</{std}:DebetCredit></IngediendBedrag>
          </Prestatie>
"#,
                l.reference, l.number, l.volume, l.amount, l.dc
            ));
        }
        body.push_str("        </Prestaties>\n      </Client>\n");
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Bericht xmlns="http://www.istandaarden.nl/{std}/3_2/{ns}/schema" xmlns:{std}="http://www.istandaarden.nl/{std}/3_2/basisschema/schema">
  <Header>
    <BerichtCode>{code}</BerichtCode>
    <BerichtVersie>3</BerichtVersie>
    <BerichtSubversie>2</BerichtSubversie>
    <Afzender>03020001</Afzender>
    <Ontvanger>0222</Ontvanger>
    <BerichtIdentificatie><{std}:Identificatie>{id}</{std}:Identificatie><{std}:Dagtekening>2022-09-02</{std}:Dagtekening></BerichtIdentificatie>
    <XsdVersie><{std}:BasisschemaXsdVersie>{v}</{std}:BasisschemaXsdVersie><{std}:BerichtXsdVersie>{v}</{std}:BerichtXsdVersie></XsdVersie>
  </Header>
  <Declaratie>
    <DeclaratieNummer>DEC2022008</DeclaratieNummer>
    <DeclaratiePeriode><{std}:Begindatum>2022-08-01</{std}:Begindatum><{std}:Einddatum>2022-08-31</{std}:Einddatum></DeclaratiePeriode>
    <DeclaratieDagtekening>2022-09-02</DeclaratieDagtekening>
    <TotaalIngediendBedrag><{std}:TotaalBedrag>{}</{std}:TotaalBedrag><{std}:DebetCredit>{}</{std}:DebetCredit></TotaalIngediendBedrag>
    <Clienten>
{body}    </Clienten>
  </Declaratie>
</Bericht>
"#,
        total.unsigned_abs(),
        if total < 0 { "C" } else { "D" }
    )
}

fn debit(reference: &str, number: u32, volume: u32, tariff: u32) -> Line<'_> {
    Line {
        reference,
        previous: None,
        number,
        volume,
        tariff: Some(tariff),
        amount: volume * tariff,
        dc: "D",
    }
}

const LAWS: [Law; 2] = [Law::Jeugdwet, Law::Wmo];

fn sample(law: Law) -> String {
    m323(
        law,
        "DECL-1",
        &[
            (
                Box::leak(rz_domain::Bsn::synthetic(19).to_string().into_boxed_str()),
                vec![
                    debit("R1", 1001, 12, 5_250),
                    Line {
                        reference: "R0-CR",
                        previous: Some("R0"),
                        number: 1001,
                        volume: 2,
                        tariff: None,
                        amount: 10_500,
                        dc: "C",
                    },
                ],
            ),
            (
                &*Box::leak(rz_domain::Bsn::synthetic(20).to_string().into_boxed_str()),
                vec![debit("R2", 1002, 4, 5_250)],
            ),
        ],
    )
}

fn own() -> ReturnHeader {
    ReturnHeader {
        message_id: MessageId::parse("900001").unwrap(),
        message_date: d("2022-09-05"),
    }
}

#[test]
fn samples_of_both_laws_are_valid_323s_and_read_field_by_field() {
    for law in LAWS {
        let xml = sample(law);
        let name = MessageType::Declaration323.name(law);
        common::assert_valid(&name, &xml);
        let m = parse_323(xml.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.header.law, law);
        assert_eq!(m.header.message_type, MessageType::Declaration323);
        assert_eq!(m.header.message_id.as_str(), "DECL-1");
        assert_eq!(m.number, "DEC2022008");
        assert_eq!(
            (m.period_begin, m.period_end),
            (d("2022-08-01"), d("2022-08-31"))
        );
        assert_eq!(m.total_cents, 12 * 5_250 - 10_500 + 4 * 5_250);
        assert_eq!(m.clients.len(), 2);
        assert_eq!(m.line_count(), 3);
        let l = &m.clients[0].lines[0];
        assert_eq!(l.reference, "R1");
        assert_eq!(l.assignment_number.value(), 1001);
        assert_eq!(l.volume, 12);
        assert_eq!(l.unit.code(), "04");
        assert_eq!(l.tariff_cents, Some(5_250));
        assert_eq!(l.amount_cents, 63_000);
        assert_eq!(l.debit_credit, DebitCredit::Debit);
        assert_eq!((l.begin, l.end), (d("2022-08-01"), d("2022-08-31")));
        let c = &m.clients[0].lines[1];
        assert_eq!(c.debit_credit, DebitCredit::Credit);
        assert_eq!(c.previous_reference.as_deref(), Some("R0"));
        assert_eq!(c.tariff_cents, None);
        assert_eq!(
            message_type_of(xml.as_bytes()),
            Some((law, MessageType::Declaration323))
        );
    }
}

#[test]
fn a_323_is_not_read_as_another_provider_message_and_hostile_xml_is_refused() {
    let xml = sample(Law::Jeugdwet);
    let e = parse_provider_message(xml.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::WrongNamespace);
    let doctype = xml.replacen(
        "<Bericht",
        "<!DOCTYPE Bericht [<!ENTITY x \"boom\">]>\n<Bericht",
        1,
    );
    assert_eq!(
        parse_323(doctype.as_bytes()).unwrap_err().kind,
        ParseErrorKind::Doctype
    );
    let bad_dc = xml.replacen(
        "<ijw:DebetCredit>D</ijw:DebetCredit></IngediendBedrag>",
        "<ijw:DebetCredit>X</ijw:DebetCredit></IngediendBedrag>",
        1,
    );
    let e = parse_323(bad_dc.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::InvalidValue, "{e}");
    assert!(e.received.is_some(), "the header travels with the error");
    let end_before = xml.replacen(
        "<ijw:Einddatum>2022-08-31</ijw:Einddatum></ProductPeriode>",
        "<ijw:Einddatum>2022-07-31</ijw:Einddatum></ProductPeriode>",
        1,
    );
    assert_eq!(
        parse_323(end_before.as_bytes()).unwrap_err().kind,
        ParseErrorKind::EndBeforeStart
    );
}

#[test]
fn answers_325_refused_whole_partly_refused_and_fully_approved_are_valid_for_both_laws() {
    for law in LAWS {
        let m = parse_323(sample(law).as_bytes()).unwrap();
        let name = MessageType::DeclarationAnswer325.name(law);

        let whole = render_325(
            &own(),
            &m.header,
            DeclarationContent::Whole(&[ReturnCode::parse("9056").unwrap()]),
        )
        .unwrap();
        common::assert_valid(&name, &whole);
        assert!(whole.contains("<RetourCode>9056</RetourCode>"));
        assert!(!whole.contains("DeclaratieAntwoord"));

        let refused = vec![
            vec![vec![ReturnCode::parse("0611").unwrap()], vec![]],
            vec![vec![]],
        ];
        let partly = render_325(
            &own(),
            &m.header,
            DeclarationContent::Judged {
                declaration: &m,
                codes: &refused,
            },
        )
        .unwrap();
        common::assert_valid(&name, &partly);
        assert!(partly.contains("<RetourCode>0611</RetourCode>"), "{partly}");
        assert_eq!(
            partly.matches("<Prestatie>").count(),
            1,
            "only the refused line: {partly}"
        );
        assert_eq!(approved_total(&m, &refused), -10_500 + 4 * 5_250);

        let none = vec![vec![vec![], vec![]], vec![vec![]]];
        let all = render_325(
            &own(),
            &m.header,
            DeclarationContent::Judged {
                declaration: &m,
                codes: &none,
            },
        )
        .unwrap();
        common::assert_valid(&name, &all);
        assert!(all.contains("<RetourCode>8001</RetourCode>"), "{all}");
        assert!(!all.contains("<Clienten>"));

        // The header: the 325's own identification, the 323's as DeclaratieIdentificatie.
        let (basis, bericht) = xsd_versions(law);
        assert!(all.contains("900001"));
        assert!(all.contains(&format!("BerichtXsdVersie>{bericht}<")));
        assert!(all.contains(&format!("BasisschemaXsdVersie>{basis}<")));
        let decl = &all[all.find("<DeclaratieIdentificatie>").unwrap()..];
        assert!(decl.contains("DECL-1"), "{all}");

        let wrong_shape = render_325(
            &own(),
            &m.header,
            DeclarationContent::Judged {
                declaration: &m,
                codes: &[vec![]],
            },
        );
        assert!(wrong_shape.is_err());
    }
}

#[test]
fn message_codes_of_323_and_325_match_the_official_schemas() {
    for law in LAWS {
        for t in [
            MessageType::Declaration323,
            MessageType::DeclarationAnswer325,
        ] {
            let xsd = std::fs::read_to_string(common::xsd(&t.name(law))).unwrap();
            assert!(
                xsd.contains(&format!("<xs:pattern value=\"{}\"/>", t.code(law))),
                "{}",
                t.name(law)
            );
            assert!(xsd.contains(&format!("targetNamespace=\"{}\"", t.namespace(law))));
        }
    }
}

/// A monthly file near the size limit is read in well under a second per 10,000 lines (printed,
/// not asserted).
#[test]
fn a_declaration_near_the_size_limit_is_read() {
    let n = 28_000usize;
    let refs: Vec<String> = (0..n).map(|i| format!("REF{i:08}")).collect();
    let clients: Vec<(String, Vec<Line<'_>>)> = refs
        .chunks(2)
        .enumerate()
        .map(|(i, r)| {
            let bsn = rz_domain::Bsn::synthetic(u32::try_from(i).unwrap() + 1).to_string();
            (bsn, r.iter().map(|x| debit(x, 1001, 12, 5_250)).collect())
        })
        .collect();
    let borrowed: Vec<(&str, Vec<Line<'_>>)> = clients
        .into_iter()
        .map(|(b, l)| (&*Box::leak(b.into_boxed_str()), l))
        .collect();
    let xml = m323(Law::Wmo, "BIG-1", &borrowed);
    assert!(
        xml.len() <= rz_istandaarden::MAX_MESSAGE_BYTES,
        "{} bytes",
        xml.len()
    );
    let t = std::time::Instant::now();
    let m = parse_323(xml.as_bytes()).unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(m.line_count(), n);
    println!(
        "323 of {} bytes, {n} lines read in {s:.2} s ({:.0} lines/s)",
        xml.len(),
        n as f64 / s
    );
}
