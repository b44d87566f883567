//! Every message the crate writes is validated against the official XSD with xmllint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::NaiveDate;
use common::{assert_valid, data};
use rz_domain::{
    AgbCode, AssignmentNumber, Bsn, Cents, ExecutionVariant, Frequency, GemeenteCode, Law,
    MessageId, ProductCode, RefusalReason, ReturnCode, Unit, WmoChangeReason, WmoProductCategory,
    YouthChangeReason, YouthProductCategory,
};
use rz_istandaarden::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn header(law: Law) -> Header {
    Header {
        law,
        sender_municipality: GemeenteCode::parse("0222").unwrap(),
        receiver_agb: AgbCode::parse("12345678").unwrap(),
        message_id: MessageId::parse("TW-2026-0001").unwrap(),
        message_date: d("2026-11-20"),
    }
}

fn client() -> Client {
    Client {
        bsn: Bsn::parse("111222333").unwrap(),
        birth_date: d("2012-03-04"),
        gender: Gender::Female,
        name: Name {
            family_name: "Jansen".into(),
            prefix: Some("van".into()),
            given_names: Some("Anna Maria".into()),
            initials: Some("AM".into()),
        },
        address: Address {
            street: "Grutstraat".into(),
            house_number: 12,
            house_letter: Some('a'),
            house_number_addition: None,
            postal_code: "7001BX".into(),
            city: "Doetinchem".into(),
        },
    }
}

fn category(law: Law) -> ProductCategory {
    match law {
        Law::Jeugdwet => YouthProductCategory::parse("45").unwrap().into(),
        Law::Wmo => WmoProductCategory::parse("02").unwrap().into(),
    }
}

fn product(law: Law, number: u32, variant: ExecutionVariant) -> AssignedProduct {
    let code = Some(ProductCode::parse("45A53").unwrap());
    let (product_code, size, budget) = match variant {
        ExecutionVariant::Taakgericht => (None, None, None),
        ExecutionVariant::Outputgericht => (code, None, Some(Cents::new(250_000).unwrap())),
        ExecutionVariant::Inspanningsgericht => (
            code,
            Some(Size {
                volume: 4,
                unit: Unit::Hour,
                frequency: Frequency::PerWeek,
            }),
            None,
        ),
    };
    AssignedProduct {
        number: AssignmentNumber::from_i64(i64::from(number)).unwrap(),
        variant,
        provider_reference: None,
        category: category(law),
        product_code,
        assigned_at: d("2026-11-20").and_hms_opt(14, 30, 5).unwrap(),
        start: d("2026-12-01"),
        end: Some(d("2027-11-30")),
        change_reason: None,
        size,
        budget,
    }
}

const LAWS: [Law; 2] = [Law::Jeugdwet, Law::Wmo];
const VARIANTS: [ExecutionVariant; 3] = [
    ExecutionVariant::Taakgericht,
    ExecutionVariant::Outputgericht,
    ExecutionVariant::Inspanningsgericht,
];

fn name(law: Law, n: u16) -> String {
    match law {
        Law::Jeugdwet => format!("JW{n}"),
        Law::Wmo => format!("WMO{n}"),
    }
}

#[test]
fn m301_each_law_and_each_execution_variant_is_valid() {
    for law in LAWS {
        for variant in VARIANTS {
            let xml = render_301(&header(law), &client(), &[product(law, 4711, variant)]).unwrap();
            assert_valid(&name(law, 301), &xml);
            let code = MessageType::Assignment301.code(law);
            assert!(xml.contains(&format!("<BerichtCode>{code}</BerichtCode>")));
            assert!(!xml.contains("></"), "no empty elements");
            match variant {
                ExecutionVariant::Taakgericht => {
                    assert!(!xml.contains(":Code>") && !xml.contains("<Omvang>"));
                    assert!(!xml.contains("<Budget>"));
                }
                ExecutionVariant::Outputgericht => {
                    assert!(xml.contains("<Budget>250000</Budget>"), "{xml}");
                    assert!(!xml.contains("<Omvang>"));
                }
                ExecutionVariant::Inspanningsgericht => {
                    assert!(
                        xml.contains("<Omvang>") && !xml.contains("<Budget>"),
                        "{xml}"
                    );
                }
            }
        }
    }
}

#[test]
fn m301_with_all_optional_elements_and_several_products_is_valid() {
    for law in LAWS {
        let mut p = product(law, 1, ExecutionVariant::Inspanningsgericht);
        p.budget = Some(Cents::new(99_999_999).unwrap());
        p.provider_reference = Some("REF-2026-0042 & <co>".into());
        p.change_reason = Some(match law {
            Law::Jeugdwet => YouthChangeReason::ReassessmentExtension.into(),
            Law::Wmo => WmoChangeReason::ReassessmentExtension.into(),
        });
        let mut open = product(law, 999_999_999, ExecutionVariant::Outputgericht);
        open.end = None;
        let mut c = client();
        c.name.prefix = None;
        c.name.given_names = None;
        c.address.house_letter = None;
        c.address.house_number_addition = Some("bis".into());
        c.gender = Gender::Unknown;
        let products = [p, open, product(law, 3, ExecutionVariant::Taakgericht)];
        let xml = render_301(&header(law), &c, &products).unwrap();
        assert_valid(&name(law, 301), &xml);
        assert!(xml.contains("REF-2026-0042 &amp; &lt;co&gt;"));
    }
}

#[test]
fn m301_rejects_inconsistent_input() {
    let law = Law::Jeugdwet;
    let mut p = product(law, 1, ExecutionVariant::Taakgericht);
    p.size = Some(Size {
        volume: 1,
        unit: Unit::Hour,
        frequency: Frequency::PerWeek,
    });
    assert!(matches!(
        render_301(&header(law), &client(), &[p]),
        Err(RenderError::Variant { .. })
    ));
    let p = product(law, 1, ExecutionVariant::Inspanningsgericht);
    assert!(matches!(
        render_301(&header(Law::Wmo), &client(), std::slice::from_ref(&p)),
        Err(RenderError::LawMismatch { .. })
    ));
    let mut bad_end = p.clone();
    bad_end.end = Some(d("2026-01-01"));
    let e = render_301(&header(law), &client(), &[bad_end]).unwrap_err();
    assert!(e.to_string().contains("Einddatum"), "{e}");
    assert!(render_301(&header(law), &client(), &[]).is_err());
    let mut c = client();
    c.name.family_name = " ".into();
    assert!(render_301(&header(law), &c, std::slice::from_ref(&p)).is_err());
    let mut c = client();
    c.address.street = "a".repeat(25);
    assert!(render_301(&header(law), &c, &[p]).is_err());
}

#[test]
fn m319_refused_and_under_investigation_are_valid() {
    for law in LAWS {
        for reason in RefusalReason::ALL {
            let answer = Answer {
                provider_reference: "REF-2026-0042".into(),
                outcome: RequestOutcome::Refused {
                    reason: *reason,
                    responsible_municipality: None,
                },
            };
            let xml = render_319(&header(law), &answer).unwrap();
            assert_valid(&name(law, 319), &xml);
            assert!(xml.contains(&format!(
                "<RedenAfwijzingVerzoek>{}</RedenAfwijzingVerzoek>",
                reason.code()
            )));
        }
        let answer = Answer {
            provider_reference: "REF-2026-0042".into(),
            outcome: RequestOutcome::UnderInvestigation,
        };
        let xml = render_319(&header(law), &answer).unwrap();
        assert_valid(&name(law, 319), &xml);
        assert!(!xml.contains("RedenAfwijzingVerzoek"));
    }
    let residence = Answer {
        provider_reference: "REF-1".into(),
        outcome: RequestOutcome::Refused {
            reason: RefusalReason::ResidencePrinciple,
            responsible_municipality: Some(GemeenteCode::parse("0197").unwrap()),
        },
    };
    let xml = render_319(&header(Law::Jeugdwet), &residence).unwrap();
    assert_valid("JW319", &xml);
    assert!(xml.contains("<Gemeente>0197</Gemeente>"));
    assert!(render_319(&header(Law::Wmo), &residence).is_err());
}

fn return_header() -> ReturnHeader {
    ReturnHeader {
        message_id: MessageId::parse("RET-0001").unwrap(),
        message_date: d("2026-11-21"),
    }
}

/// (file prefix, received type, return type)
const RETURNS: [(u16, MessageType, MessageType); 4] = [
    (305, MessageType::Start305, MessageType::Return306),
    (307, MessageType::Stop307, MessageType::Return308),
    (
        315,
        MessageType::AssignmentRequest315,
        MessageType::Return316,
    ),
    (317, MessageType::ChangeRequest317, MessageType::Return318),
];

fn parse_any(n: u16, bytes: &[u8]) -> (ReceivedHeader, ReceivedBody) {
    match n {
        305 => parse_305(bytes).map(|m| (m.header, m.body)),
        307 => parse_307(bytes).map(|m| (m.header, m.body)),
        315 => parse_315(bytes).map(|m| (m.header, m.body)),
        _ => parse_317(bytes).map(|m| (m.header, m.body)),
    }
    .unwrap()
}

#[test]
fn return_messages_accepting_every_record_are_valid_for_both_laws() {
    for law in LAWS {
        for (n, _, kind) in RETURNS {
            let prefix = if law == Law::Jeugdwet { "jw" } else { "wmo" };
            let (received, body) = parse_any(n, &data(&format!("{prefix}{n}_valid.xml")));
            let codes = RecordCodes::new();
            let xml = render_return(
                kind,
                &return_header(),
                &received,
                ReturnContent::PerRecord {
                    body: &body,
                    codes: &codes,
                },
            )
            .unwrap();
            assert_valid(&name(law, n + 1), &xml);
            assert_eq!(
                xml.matches("<RetourCode>0200</RetourCode>").count(),
                body.records().len(),
                "{xml}"
            );
            assert!(xml.contains("<IdentificatieRetour>"));
        }
    }
}

#[test]
fn return_messages_with_codes_per_record_are_valid() {
    for law in LAWS {
        for (n, _, kind) in RETURNS {
            let prefix = if law == Law::Jeugdwet { "jw" } else { "wmo" };
            let (received, body) = parse_any(n, &data(&format!("{prefix}{n}_valid.xml")));
            let records = body.records();
            let mut codes = RecordCodes::new();
            let last = records.last().unwrap().clone();
            codes.set(
                last.clone(),
                vec![
                    ReturnCode::parse("9019").unwrap(),
                    ReturnCode::parse("S329").unwrap(),
                ],
            );
            let xml = render_return(
                kind,
                &return_header(),
                &received,
                ReturnContent::PerRecord {
                    body: &body,
                    codes: &codes,
                },
            )
            .unwrap();
            assert_valid(&name(law, n + 1), &xml);
            assert!(xml.contains("<RetourCode>9019</RetourCode>"), "{xml}");
            codes.set("/Bericht/Client/Nope", vec![]);
            assert!(matches!(
                render_return(
                    kind,
                    &return_header(),
                    &received,
                    ReturnContent::PerRecord {
                        body: &body,
                        codes: &codes,
                    },
                ),
                Err(RenderError::UnknownRecord(_))
            ));
        }
    }
}

#[test]
fn return_messages_rejecting_the_whole_message_are_valid() {
    for law in LAWS {
        for (n, _, kind) in RETURNS {
            let prefix = if law == Law::Jeugdwet { "jw" } else { "wmo" };
            let (received, _) = parse_any(n, &data(&format!("{prefix}{n}_valid.xml")));
            let codes = [ReturnCode::TECHNICAL_REJECTION];
            let xml = render_return(
                kind,
                &return_header(),
                &received,
                ReturnContent::Whole(&codes),
            )
            .unwrap();
            assert_valid(&name(law, n + 1), &xml);
            assert!(!xml.contains("<Client>"));
            assert!(xml.contains("<RetourCode>0001</RetourCode>"));
            assert!(
                render_return(kind, &return_header(), &received, ReturnContent::Whole(&[]))
                    .is_err()
            );
        }
    }
}

#[test]
fn a_rejected_message_is_answered_from_the_header_in_the_error() {
    let bad = data("invalid/jw305_bsn_fails_11_test.xml");
    let err = parse_305(&bad).unwrap_err();
    let received = err.received.expect("header was readable");
    let xml = render_return(
        MessageType::Return306,
        &return_header(),
        &received,
        ReturnContent::Whole(&[err.return_code]),
    )
    .unwrap();
    assert_valid("JW306", &xml);
}

#[test]
fn return_type_must_answer_the_received_message() {
    let (received, body) = parse_any(305, &data("jw305_valid.xml"));
    let codes = RecordCodes::new();
    let e = render_return(
        MessageType::Return308,
        &return_header(),
        &received,
        ReturnContent::PerRecord {
            body: &body,
            codes: &codes,
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "a JW308 cannot answer a JW305");
}

#[test]
fn derived_wmo_return_schemas_reject_the_ijw_namespace() {
    // Guard against a derivation that validates anything: a JW306 is not a valid WMO306.
    let (received, body) = parse_any(305, &data("jw305_valid.xml"));
    let codes = RecordCodes::new();
    let xml = render_return(
        MessageType::Return306,
        &return_header(),
        &received,
        ReturnContent::PerRecord {
            body: &body,
            codes: &codes,
        },
    )
    .unwrap();
    assert!(common::xmllint(&common::xsd("WMO306"), xml.as_bytes()).is_err());
}

#[test]
fn message_codes_and_xsd_versions_match_the_official_schemas() {
    let all = [
        MessageType::Assignment301,
        MessageType::Start305,
        MessageType::Return306,
        MessageType::Stop307,
        MessageType::Return308,
        MessageType::AssignmentRequest315,
        MessageType::Return316,
        MessageType::ChangeRequest317,
        MessageType::Return318,
        MessageType::Answer319,
    ];
    for law in LAWS {
        for t in all {
            let xsd = std::fs::read_to_string(common::xsd(&t.name(law))).unwrap();
            let (basis, bericht) = xsd_versions(law);
            assert!(
                xsd.contains(&format!("<xs:pattern value=\"{}\"/>", t.code(law))),
                "{}",
                t.name(law)
            );
            assert!(xsd.contains(&format!("targetNamespace=\"{}\"", t.namespace(law))));
            assert!(xsd.contains(&format!("BasisschemaXsdVersie>{basis}<")));
            assert!(xsd.contains(&format!("BerichtXsdVersie>{bericht}<")));
        }
    }
}

/// The text of the first `<tag>` (with or without the basisschema prefix) inside the first
/// `<within>` of `xml`.
fn text_in(xml: &str, within: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{within}>"))
        .unwrap_or_else(|| panic!("no <{within}> in {xml}"));
    let rest = &xml[start..];
    let open = [
        format!("<{tag}>"),
        format!("<ijw:{tag}>"),
        format!("<iwmo:{tag}>"),
    ]
    .into_iter()
    .find_map(|o| rest.find(&o).map(|i| i + o.len()))
    .unwrap_or_else(|| panic!("no <{tag}> in <{within}> of {xml}"));
    rest[open..].split('<').next().unwrap().to_owned()
}

/// The XSD documentation of the return messages' header: BerichtIdentificatie ("identificatie van
/// een totale aanlevering") and XsdVersie ("ingezet voor het opstellen van het heenbericht") are
/// the provider's message's; IdentificatieRetour ("ter identificatie van een retourbericht"),
/// DagtekeningRetour ("dagtekening van het retourbericht") and XsdVersieRetour ("ingezet voor het
/// opstellen van het retourbericht") are the return message's own.
#[test]
fn return_headers_carry_the_received_identification_and_their_own_as_retour_per_the_xsd_documentation()
 {
    for law in LAWS {
        let prefix = if law == Law::Jeugdwet { "jw" } else { "wmo" };
        let (ours_basis, ours_message) = xsd_versions(law);
        for (n, _, kind) in RETURNS {
            let (mut received, body) = parse_any(n, &data(&format!("{prefix}{n}_valid.xml")));
            // A provider writing with other (still valid) XSD versions than ours, so that a swap
            // shows.
            received.basisschema_xsd_version = "7.8.9".into();
            received.message_xsd_version = "4.5.6".into();
            let codes = RecordCodes::new();
            for content in [
                ReturnContent::PerRecord {
                    body: &body,
                    codes: &codes,
                },
                ReturnContent::Whole(&[ReturnCode::TECHNICAL_REJECTION]),
            ] {
                let xml = render_return(kind, &return_header(), &received, content).unwrap();
                assert_valid(&name(law, n + 1), &xml);
                let what = format!("{}: {xml}", name(law, n + 1));
                assert_eq!(
                    text_in(&xml, "BerichtIdentificatie", "Identificatie"),
                    received.message_id.as_str(),
                    "BerichtIdentificatie/Identificatie is the provider's message's, {what}"
                );
                assert_eq!(
                    text_in(&xml, "BerichtIdentificatie", "Dagtekening"),
                    received.message_date.to_string(),
                    "BerichtIdentificatie/Dagtekening is the provider's message's, {what}"
                );
                assert_eq!(
                    text_in(&xml, "XsdVersie", "BasisschemaXsdVersie"),
                    "7.8.9",
                    "XsdVersie is the provider's message's, {what}"
                );
                assert_eq!(text_in(&xml, "XsdVersie", "BerichtXsdVersie"), "4.5.6");
                assert_eq!(
                    text_in(&xml, "Header", "IdentificatieRetour"),
                    "RET-0001",
                    "IdentificatieRetour is the return message's own, {what}"
                );
                assert_eq!(
                    text_in(&xml, "Header", "DagtekeningRetour"),
                    "2026-11-21",
                    "DagtekeningRetour is the return message's own, {what}"
                );
                assert_eq!(
                    text_in(&xml, "XsdVersieRetour", "BasisschemaXsdVersie"),
                    ours_basis,
                    "XsdVersieRetour is the return message's own, {what}"
                );
                assert_eq!(
                    text_in(&xml, "XsdVersieRetour", "BerichtXsdVersie"),
                    ours_message
                );
                // Afzender and Ontvanger stay those of the received message (the schema types
                // them: an AGB code and a municipality code).
                assert_eq!(
                    text_in(&xml, "Header", "Afzender"),
                    received.sender_agb.as_str()
                );
                assert_eq!(
                    text_in(&xml, "Header", "Ontvanger"),
                    received.receiver_municipality.as_str()
                );
            }
        }
    }
}

#[test]
fn every_rule_has_its_wj001_code_and_tr135_refuses_a_dagtekening_after_today() {
    for rule in Rule::ALL {
        let code = rule.return_code();
        assert_ne!(
            code,
            ReturnCode::TECHNICAL_REJECTION,
            "{rule}: a code of its own in WJ001"
        );
        assert!(!rule.text().is_empty(), "{rule}");
    }
    assert_eq!(Rule::TR056.return_code().code(), "9056");
    assert_eq!(Rule::TR135.return_code().code(), "8848");
    assert_eq!(Rule::TR074.return_code().code(), "9074");
    let (received, _) = parse_any(305, &data("jw305_valid.xml"));
    assert_eq!(received.message_date, d("2026-11-20"));
    assert!(
        check_dagtekening(&received, d("2026-11-20")).is_ok(),
        "TR135: today is allowed"
    );
    assert!(
        check_dagtekening(&received, d("2026-12-01")).is_ok(),
        "TR135: the past is allowed"
    );
    let v = check_dagtekening(&received, d("2026-11-19")).unwrap_err();
    assert_eq!(v.rule, Rule::TR135);
    assert_eq!(v.rule.return_code().code(), "8848");
    assert!(v.path.ends_with("/Dagtekening"), "{v:?}");
    assert!(v.rule_text().starts_with("TR135: "), "{v:?}");
}
