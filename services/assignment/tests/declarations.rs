//! Declarations (323 in, 325 out) over the wire as the provider: each test names the rules it
//! proves (see `src/declarations.rs` and `docs/istandaarden-rules.md`) with the WJ001 code per
//! line, what is stored (approved lines only, amounts in cents) and every 325 valid against the
//! official JW325 or the WMO325 derived from it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../lib/istandaarden/tests/common/mod.rs"]
mod ist;

use common::*;
use rz_proto::assignment::v1 as pb;
use rz_proto::registration::v1 as reg;

/// A Prestatie as the provider writes it.
#[derive(Clone)]
struct Line {
    reference: String,
    previous: Option<String>,
    number: u32,
    category: String,
    code: String,
    begin: String,
    end: String,
    volume: u32,
    unit: String,
    tariff: Option<u32>,
    amount: u32,
    dc: &'static str,
}

/// A PxQ line for August 2022 on assignment `number` (WIO-PV, PV01, hours) at EUR 52.50.
fn pxq(reference: &str, number: u32, volume: u32) -> Line {
    Line {
        reference: reference.into(),
        previous: None,
        number,
        category: "03".into(),
        code: "PV01".into(),
        begin: "2022-08-01".into(),
        end: "2022-08-31".into(),
        volume,
        unit: "04".into(),
        tariff: Some(TARIFF),
        amount: volume * TARIFF,
        dc: "D",
    }
}

const TARIFF: u32 = 5_250;

struct Decl<'a> {
    law: &'a str,
    id: &'a str,
    date: &'a str,
    number: &'a str,
    clients: Vec<(String, Vec<Line>)>,
}

fn m323(d: &Decl<'_>, sender: &str) -> String {
    let (std, ns, code, v) = match d.law {
        "JW" => ("ijw", "jw323", "490", "0.1.0"),
        _ => ("iwmo", "wmo323", "484", "1.0.0"),
    };
    let mut total = 0i64;
    let mut body = String::new();
    for (bsn, lines) in &d.clients {
        body.push_str(&format!("<Client><Bsn>{bsn}</Bsn><Prestaties>\n"));
        for l in lines {
            total += if l.dc == "C" {
                -i64::from(l.amount)
            } else {
                i64::from(l.amount)
            };
            let prev = l
                .previous
                .as_ref()
                .map(|p| format!("<{std}:VorigReferentieNummer>{p}</{std}:VorigReferentieNummer>"))
                .unwrap_or_default();
            let tariff = l
                .tariff
                .map(|t| format!("<ProductTarief>{t}</ProductTarief>"))
                .unwrap_or_default();
            body.push_str(&format!(
                "<Prestatie><ProductReferentie><{std}:ReferentieNummer>{}</{std}:ReferentieNummer>{prev}</ProductReferentie>\
<ToewijzingNummer>{}</ToewijzingNummer><ProductCategorie>{}</ProductCategorie><ProductCode>{}</ProductCode>\
<ProductPeriode><{std}:Begindatum>{}</{std}:Begindatum><{std}:Einddatum>{}</{std}:Einddatum></ProductPeriode>\
<GeleverdVolume>{}</GeleverdVolume><Eenheid>{}</Eenheid>{tariff}\
<IngediendBedrag><{std}:Bedrag>{}</{std}:Bedrag><{std}:DebetCredit>{}</{std}:DebetCredit></IngediendBedrag></Prestatie>\n",
                l.reference, l.number, l.category, l.code, l.begin, l.end, l.volume, l.unit, l.amount, l.dc
            ));
        }
        body.push_str("</Prestaties></Client>\n");
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Bericht xmlns="http://www.istandaarden.nl/{std}/3_2/{ns}/schema" xmlns:{std}="http://www.istandaarden.nl/{std}/3_2/basisschema/schema">
<Header><BerichtCode>{code}</BerichtCode><BerichtVersie>3</BerichtVersie><BerichtSubversie>2</BerichtSubversie>
<Afzender>{sender}</Afzender><Ontvanger>{M}</Ontvanger>
<BerichtIdentificatie><{std}:Identificatie>{}</{std}:Identificatie><{std}:Dagtekening>{}</{std}:Dagtekening></BerichtIdentificatie>
<XsdVersie><{std}:BasisschemaXsdVersie>{v}</{std}:BasisschemaXsdVersie><{std}:BerichtXsdVersie>{v}</{std}:BerichtXsdVersie></XsdVersie></Header>
<Declaratie><DeclaratieNummer>{}</DeclaratieNummer>
<DeclaratiePeriode><{std}:Begindatum>2022-08-01</{std}:Begindatum><{std}:Einddatum>2022-08-31</{std}:Einddatum></DeclaratiePeriode>
<DeclaratieDagtekening>{}</DeclaratieDagtekening>
<TotaalIngediendBedrag><{std}:TotaalBedrag>{}</{std}:TotaalBedrag><{std}:DebetCredit>{}</{std}:DebetCredit></TotaalIngediendBedrag>
<Clienten>
{body}</Clienten></Declaratie></Bericht>
"#,
        d.id,
        d.date,
        d.number,
        d.date,
        total.unsigned_abs(),
        if total < 0 { "C" } else { "D" }
    )
}

async fn upload(app: &TestApp, agb: &str, xml: &str) -> pb::UploadResult {
    app.a
        .provider(agb)
        .upload_provider_message(pb::UploadProviderMessageRequest {
            agb_code: agb.into(),
            xml: xml.as_bytes().to_vec(),
        })
        .await
        .expect("the upload is answered")
        .into_inner()
}

/// The return codes per line path (`Client[i]/.../Prestatie[j]` shortened to `i.j`).
fn line_codes(r: &pb::UploadResult) -> Vec<(String, String)> {
    r.errors
        .iter()
        .map(|e| {
            let p = e
                .path
                .trim_start_matches("/Bericht/Declaratie/Clienten/Client[")
                .replace("]/Prestaties/Prestatie[", ".")
                .trim_end_matches(']')
                .to_owned();
            (p, e.return_code.clone())
        })
        .collect()
}

async fn stored(app: &TestApp) -> Vec<(String, i64, String, Option<String>)> {
    sqlx::query_as(
        "SELECT reference, amount_cents, debit_credit, credited_by FROM declaration_lines ORDER BY reference",
    )
    .fetch_all(&app.a.pool)
    .await
    .unwrap()
}

/// A Wmo client with WIO-PV (PV01, 3 hours a week) at PV1 from 2022-07-01 to 2022-12-31, the
/// contract's tariff for PV01 in hours set to EUR 52.50, the clock on 2022-09-05.
async fn pxq_client(app: &mut TestApp, n: u32) -> (String, pb::Assignment) {
    let b = bsn(n);
    app.decide_wmo(
        &b,
        START,
        vec![pxq_product("2022-07-01", "2022-12-31", PV1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b), 1).await.remove(0);
    assert_eq!(
        (a.agb_code.as_str(), a.product_code.as_str()),
        (PV1, "PV01")
    );
    (b, a)
}

async fn set_tariff(app: &mut TestApp) {
    app.registration
        .set_tariff(reg::SetTariffRequest {
            contract_id: app.contracts[PV1].clone(),
            product_code: "PV01".into(),
            unit: "04".into(),
            price_cents: i64::from(TARIFF),
        })
        .await
        .expect("tariff set");
    app.a.clock.set(d("2022-09-05"));
}

/// Per line, each rule of the PxQ checks broken once beside lines that pass: TR338 (no such
/// assignment, another provider's), TR304 (another client's), TR339, TR340, TR307/TR308, TR319,
/// TR341, TR321, TR322, TR418 (0611), TR346; only the approved lines are stored, the 325 lists the
/// refused ones with their codes and validates against WMO325.
#[tokio::test]
async fn pxq_lines_tr338_tr304_tr339_tr340_tr307_tr308_tr319_tr341_tr321_tr322_tr418_tr346() {
    let mut app = spawn_app().await;
    let (b1, a1) = pxq_client(&mut app, 301).await;
    let (b2, a2) = pxq_client(&mut app, 302).await;
    // A third client whose assignment ends on 2022-08-15.
    let b3 = bsn(303);
    app.decide_wmo(
        &b3,
        START,
        vec![pxq_product("2022-07-01", "2022-08-15", PV1)],
    )
    .await;
    let a3 = app.a.wait_for(&key_of(&b3), 1).await.remove(0);
    set_tariff(&mut app).await;
    let n1 = a1.number;
    let l = |r: &str, f: &dyn Fn(&mut Line)| {
        let mut x = pxq(r, n1, 2);
        f(&mut x);
        x
    };
    let lines1 = vec![
        l("OK1", &|_| {}),                           // 1.1 approved
        l("NOASG", &|x| x.number = 999_999),         // 1.2 TR338
        l("OTHERCLIENT", &|x| x.number = a2.number), // 1.3 TR304
        l("CAT", &|x| x.category = "04".into()),     // 1.4 TR339
        l("CODE", &|x| x.code = "PV02".into()),      // 1.5 TR340
        l("BEFORE", &|x| {
            // 1.6 TR307 + TR319
            x.begin = "2022-06-30".into();
        }),
        l("MONTHS", &|x| x.end = "2022-09-02".into()), // 1.7 TR319 (one month)
        l("UNIT", &|x| x.unit = "01".into()),          // 1.8 TR341 (+ TR418: no tariff in minutes)
        l("TOOMUCH", &|x| {
            // 1.9 TR321
            x.volume = 20;
            x.amount = 20 * TARIFF;
        }),
        l("PRICE", &|x| {
            // 1.10 TR418
            x.tariff = Some(6_000);
            x.amount = 2 * 6_000;
        }),
        l("AMOUNT", &|x| x.amount = 99), // 1.11 TR346
        l("OK2", &|x| {
            // 1.12 approved (12 of 14 hours)
            x.volume = 10;
            x.amount = 10 * TARIFF;
        }),
        l("MONTHFULL", &|x| {
            // 1.13 TR322: 2 + 10 + 3 > 14
            x.volume = 3;
            x.amount = 3 * TARIFF;
        }),
    ];
    let lines2 = vec![pxq("OK3", a2.number, 4)];
    let decl = Decl {
        law: "WMO",
        id: "DEC-1",
        date: "2022-09-02",
        number: "AUG2022",
        clients: vec![
            (b1.clone(), lines1),
            (b2.clone(), lines2),
            (b3.clone(), vec![pxq("LATE", a3.number, 1)]), // 3.1 TR308
        ],
    };
    let xml = m323(&decl, PV1);
    ist::assert_valid("WMO323", &xml);
    let r = upload(&app, PV1, &xml).await;
    assert_eq!(r.kind, "WMO323");
    assert!(!r.accepted);
    let got = line_codes(&r);
    let want: Vec<(String, String)> = [
        ("1.2", "9338"),
        ("1.3", "8187"),
        ("1.4", "9339"),
        ("1.5", "9340"),
        ("1.6", "9307"),
        ("1.6", "9319"),
        ("1.6", "0611"), // no contract on 2022-06-30, so no tariff on that date
        ("1.7", "9319"),
        ("1.8", "9341"),
        ("1.8", "0611"),
        ("1.9", "9321"),
        ("1.10", "0611"),
        ("1.11", "9346"),
        ("1.13", "9322"),
        ("3.1", "9308"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{:#?}", r.errors);
    assert!(
        r.errors.iter().all(|e| e.rule.starts_with("TR")),
        "{:?}",
        r.errors
    );
    let xml = &r.return_message_xml;
    ist::assert_valid("WMO325", xml);
    assert_eq!(
        xml.matches("<Prestatie>").count(),
        12,
        "the refused lines: {xml}"
    );
    let approved = i64::from((2 + 10 + 4) * TARIFF);
    assert!(
        xml.contains(&format!(
            "<iwmo:TotaalBedrag>{approved}</iwmo:TotaalBedrag>"
        )),
        "approved total {approved}: {xml}"
    );
    let rows = stored(&app).await;
    let refs: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(refs, ["OK1", "OK2", "OK3"]);
    assert_eq!(rows[1].1, 10 * i64::from(TARIFF), "amounts in cents");
    let (declared, approved_db): (i64, i64) = sqlx::query_as(
        "SELECT declared_cents, approved_cents FROM declarations WHERE number = 'AUG2022'",
    )
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(approved_db, approved);
    assert!(declared > approved);
}

/// TR314 (8021) a reference declared before; a credit (COD043 C) undoes its debit (the volume is
/// free again), TR390 (9390) a second credit of it, TR323 (8017) a credit of an unknown debit,
/// TR389 (9389) a new debit replacing an uncredited one; TR333 (9333) a DeclaratieNummer used
/// before; TR056 (9056) an Identificatie used before; TR135 (8848) a Dagtekening after today;
/// unreadable: 0001. Every 325 validates.
#[tokio::test]
async fn tr314_tr323_tr389_tr390_credits_and_tr333_tr056_tr135_whole() {
    let mut app = spawn_app().await;
    let (b, a) = pxq_client(&mut app, 311).await;
    set_tariff(&mut app).await;
    let n = a.number;
    let decl = |id: &'static str, number: &'static str, lines: Vec<Line>| Decl {
        law: "WMO",
        id,
        date: "2022-09-02",
        number,
        clients: vec![(b.clone(), lines)],
    };
    let r = upload(
        &app,
        PV1,
        &m323(&decl("D1", "N1", vec![pxq("A1", n, 14)]), PV1),
    )
    .await;
    assert!(r.accepted, "{:?}", r.errors);
    ist::assert_valid("WMO325", &r.return_message_xml);
    assert!(
        r.return_message_xml
            .contains("<RetourCode>8001</RetourCode>")
    );

    // The same reference again (TR314); more volume in August than granted (TR322).
    let r = upload(
        &app,
        PV1,
        &m323(
            &decl("D2", "N2", vec![pxq("A1", n, 1), pxq("A2", n, 1)]),
            PV1,
        ),
    )
    .await;
    assert_eq!(
        line_codes(&r),
        [("1.1".into(), "8021".into()), ("1.2".into(), "9322".into())]
    );
    ist::assert_valid("WMO325", &r.return_message_xml);

    let credit = |r: &str, prev: &str| Line {
        previous: Some(prev.into()),
        dc: "C",
        ..pxq(r, n, 14)
    };
    let replace = |r: &str, prev: &str, v: u32| Line {
        previous: Some(prev.into()),
        ..pxq(r, n, v)
    };
    // TR389 before the credit; the credit of A1; then a replacing debit fits again; a second
    // credit of A1 (TR390); a credit of an unknown debit (TR323).
    let r = upload(
        &app,
        PV1,
        &m323(
            &decl(
                "D3",
                "N3",
                vec![
                    replace("B0", "A1", 14),
                    credit("C1", "A1"),
                    replace("B1", "A1", 12),
                    credit("C2", "A1"),
                    credit("C3", "NOSUCH"),
                ],
            ),
            PV1,
        ),
    )
    .await;
    assert_eq!(
        line_codes(&r),
        [
            ("1.1".into(), "9389".into()),
            ("1.4".into(), "9390".into()),
            ("1.5".into(), "8017".into())
        ],
        "{:#?}",
        r.errors
    );
    let xml = &r.return_message_xml;
    ist::assert_valid("WMO325", xml);
    // Approved in D3: the credit of 14 hours and the debit of 12: 2 hours credited net.
    assert!(
        xml.contains(&format!(
            "<TotaalToegekendBedrag>\n      <iwmo:TotaalBedrag>{}</iwmo:TotaalBedrag>\n      <iwmo:DebetCredit>C</iwmo:DebetCredit>",
            2 * TARIFF
        )),
        "{xml}"
    );
    let rows = stored(&app).await;
    let a1 = rows.iter().find(|r| r.0 == "A1").unwrap();
    assert_eq!(a1.3.as_deref(), Some("C1"), "A1 credited by C1");
    assert!(rows.iter().any(|r| r.0 == "B1"));

    // Whole: TR333, TR056, TR135, unreadable.
    let whole = [
        (m323(&decl("D4", "N1", vec![pxq("X1", n, 1)]), PV1), "9333"),
        (m323(&decl("D1", "N5", vec![pxq("X2", n, 1)]), PV1), "9056"),
        (
            m323(
                &Decl {
                    date: "2022-09-06",
                    ..decl("D6", "N6", vec![pxq("X3", n, 1)])
                },
                PV1,
            ),
            "8848",
        ),
        (
            m323(&decl("D7", "N7", vec![pxq("X4", n, 1)]), PV1)
                .replace("<Eenheid>04</Eenheid>", "<Eenheid>99</Eenheid>"),
            "0001",
        ),
    ];
    for (xml, want) in whole {
        let before = stored(&app).await.len();
        let r = upload(&app, PV1, &xml).await;
        assert!(!r.accepted);
        let codes: Vec<&str> = r.errors.iter().map(|e| e.return_code.as_str()).collect();
        assert_eq!(codes, [want], "{:?}", r.errors);
        ist::assert_valid("WMO325", &r.return_message_xml);
        assert!(
            r.return_message_xml
                .contains(&format!("<RetourCode>{want}</RetourCode>"))
        );
        assert!(!r.return_message_xml.contains("DeclaratieAntwoord"));
        assert_eq!(stored(&app).await.len(), before, "{want}: nothing stored");
    }
    // TR333 gave the identification back: D4 may be used for another declaration.
    let r = upload(
        &app,
        PV1,
        &m323(&decl("D4", "N8", vec![pxq("X5", n, 0)]), PV1),
    )
    .await;
    assert!(r.accepted, "{:?}", r.errors);
}

/// Taakgericht (lumpsum) care is not declared per client: a JW323 line on an IAJ-ON assignment is
/// refused (TR340, 9340: the assignment has no product code); outputgericht care within its budget
/// only (TR369, 9369); the sender must be the caller.
#[tokio::test]
async fn taakgericht_lumpsum_is_refused_tr340_output_budget_tr369_and_the_sender_must_be_the_caller()
 {
    let mut app = spawn_app().await;
    let b = bsn(321);
    app.decide_youth(
        &b,
        START,
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b), 1).await.remove(0);
    assert_eq!(a.agb_code, P1);
    app.a.clock.set(d("2022-09-05"));
    let line = Line {
        category: "45".into(),
        code: "45A01".into(),
        ..pxq("T1", a.number, 2)
    };
    let decl = Decl {
        law: "JW",
        id: "T-1",
        date: "2022-09-02",
        number: "T1",
        clients: vec![(b.clone(), vec![line])],
    };
    let xml = m323(&decl, P1);
    ist::assert_valid("JW323", &xml);
    let r = upload(&app, P1, &xml).await;
    assert_eq!(line_codes(&r), [("1.1".into(), "9340".into())]);
    assert!(r.errors[0].rule.contains("taakgericht"), "{:?}", r.errors);
    ist::assert_valid("JW325", &r.return_message_xml);
    assert!(stored(&app).await.is_empty());

    // Outputgericht (ZHZ, budget EUR 2,500): EUR 2,000 approved, another EUR 1,000 is over.
    let bz = bsn(322);
    app.decide_youth(&bz, START, vec![output_product("2022-07-01", "2022-12-31")])
        .await;
    let z = app.a.wait_for(&key_of(&bz), 1).await.remove(0);
    assert_eq!(z.agb_code, ZH);
    let euros = |r: &str, cents: u32| Line {
        category: z.product_category.clone(),
        code: if z.product_code.is_empty() {
            "ZH01".into()
        } else {
            z.product_code.clone()
        },
        volume: cents / 100,
        unit: "83".into(),
        tariff: None,
        amount: cents,
        ..pxq(r, z.number, 0)
    };
    let out = Decl {
        law: "JW",
        id: "Z-1",
        date: "2022-09-02",
        number: "Z1",
        clients: vec![(bz.clone(), vec![euros("Z1", 200_000), euros("Z2", 100_000)])],
    };
    let xml_z = m323(&out, ZH);
    ist::assert_valid("JW323", &xml_z);
    let r = upload(&app, ZH, &xml_z).await;
    assert_eq!(
        line_codes(&r),
        [("1.2".into(), "9369".into())],
        "{:?}",
        r.errors
    );
    ist::assert_valid("JW325", &r.return_message_xml);
    assert_eq!(stored(&app).await.len(), 1);

    let err = app
        .a
        .provider(P2)
        .upload_provider_message(pb::UploadProviderMessageRequest {
            agb_code: P2.into(),
            xml: xml.into_bytes(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
}

/// Throughput: one WMO323 with `DECL_LINES` (default 3,100) daily lines over 100 assignments,
/// uploaded and judged; prints lines per second (not asserted). Run with
/// `cargo test -p assignment --test declarations -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run on purpose"]
async fn throughput_of_a_large_declaration() {
    let lines: usize = std::env::var("DECL_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_100);
    let assignments = lines.div_ceil(31);
    let mut app = spawn_app().await;
    let mut clients = Vec::new();
    for i in 0..assignments {
        let b = bsn(5_000 + u32::try_from(i).unwrap());
        let mut p = pxq_product("2022-07-01", "2022-12-31", PV1);
        p.volume = 8;
        p.frequency = "1".into();
        app.decide_wmo(&b, START, vec![p]).await;
        let a = app.a.wait_for(&key_of(&b), 1).await.remove(0);
        let mut ls = Vec::new();
        for day in 1..=31u32 {
            if clients.len() * 31 + ls.len() >= lines {
                break;
            }
            let date = format!("2022-08-{day:02}");
            ls.push(Line {
                begin: date.clone(),
                end: date,
                ..pxq(&format!("R{i}D{day}"), a.number, 8)
            });
        }
        clients.push((b, ls));
    }
    set_tariff(&mut app).await;
    let decl = Decl {
        law: "WMO",
        id: "BIG-1",
        date: "2022-09-02",
        number: "BIG1",
        clients,
    };
    let xml = m323(&decl, PV1);
    let t = std::time::Instant::now();
    let r = upload(&app, PV1, &xml).await;
    let s = t.elapsed().as_secs_f64();
    assert!(r.accepted, "{:?}", &r.errors[..r.errors.len().min(5)]);
    assert_eq!(stored(&app).await.len(), lines);
    println!(
        "declaration of {lines} lines ({} bytes, {assignments} assignments) judged and stored in {s:.2} s: {:.0} lines/s",
        xml.len(),
        lines as f64 / s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_declarations_with_one_reference_store_it_once_and_never_answer_internal() {
    let mut app = spawn_app().await;
    let (b, a) = pxq_client(&mut app, 321).await;
    set_tariff(&mut app).await;
    // Eight declarations (own identification and number each) of the same line reference at once.
    let mut calls = Vec::new();
    for i in 0..8 {
        let xml = m323(
            &Decl {
                law: "WMO",
                id: &format!("C{i}"),
                date: "2022-09-02",
                number: &format!("CN{i}"),
                clients: vec![(b.clone(), vec![pxq("SAME", a.number, 1)])],
            },
            PV1,
        );
        let mut client = app.a.provider(PV1);
        calls.push(tokio::spawn(async move {
            client
                .upload_provider_message(pb::UploadProviderMessageRequest {
                    agb_code: PV1.into(),
                    xml: xml.into_bytes(),
                })
                .await
        }));
    }
    let (mut approved, mut refused, mut aborted) = (0, 0, 0);
    for c in calls {
        match c.await.unwrap() {
            Ok(r) => {
                let r = r.into_inner();
                if r.accepted {
                    approved += 1;
                } else {
                    assert_eq!(line_codes(&r), [("1.1".into(), "8021".into())], "{r:?}");
                    refused += 1;
                }
            }
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Aborted, "{s:?}");
                aborted += 1;
            }
        }
    }
    assert_eq!(
        approved, 1,
        "approved {approved}, refused {refused}, aborted {aborted}"
    );
    let lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM declaration_lines WHERE reference = 'SAME'")
            .fetch_one(&app.a.pool)
            .await
            .unwrap();
    assert_eq!(lines, 1);
}
