//! The readers: hand-written valid messages (checked with xmllint against the official XSDs)
//! parse to the expected structs; invalid and hostile ones are rejected with the expected error
//! and return code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::NaiveDate;
use common::{data, xmllint, xsd};
use rz_domain::{
    Frequency, Law, Referrer, RequestReason, ReturnCode, Unit, WmoEndReason, WmoProductCategory,
    YouthEndReason, YouthProductCategory,
};
use rz_istandaarden::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const VALID: [(&str, &str); 8] = [
    ("jw305_valid.xml", "JW305"),
    ("jw307_valid.xml", "JW307"),
    ("jw315_valid.xml", "JW315"),
    ("jw317_valid.xml", "JW317"),
    ("wmo305_valid.xml", "WMO305"),
    ("wmo307_valid.xml", "WMO307"),
    ("wmo315_valid.xml", "WMO315"),
    ("wmo317_valid.xml", "WMO317"),
];

#[test]
fn the_valid_test_messages_are_valid_against_the_official_xsds() {
    for (file, schema) in VALID {
        if let Err(e) = xmllint(&xsd(schema), &data(file)) {
            panic!("{file} is not a valid {schema}:\n{e}");
        }
    }
}

fn cat(law: Law, code: &str) -> ProductCategory {
    ProductCategory::parse(law, code).unwrap()
}

fn check_header(h: &ReceivedHeader, law: Law, t: MessageType, id: &str) {
    assert_eq!(h.law, law);
    assert_eq!(h.message_type, t);
    assert_eq!(h.sender_agb.as_str(), "12345678");
    assert_eq!(h.receiver_municipality.as_str(), "0222");
    assert_eq!(h.message_id.as_str(), id);
    assert_eq!(h.message_date, d("2026-11-20"));
    let v = xsd_versions(law).0;
    assert_eq!(h.basisschema_xsd_version, v);
    assert_eq!(h.message_xsd_version, v);
}

fn check_client(c: &ReceivedClient) {
    assert_eq!(c.bsn.as_str(), "111222333");
    assert_eq!(c.birth_date, d("2012-03-04"));
    assert_eq!(c.gender, Gender::Female);
    assert_eq!(
        c.name,
        Name {
            family_name: "Jansen".into(),
            prefix: Some("van".into()),
            given_names: None,
            initials: Some("AM".into()),
        }
    );
}

#[test]
fn parse_305_both_laws() {
    for (law, file, c1, c2) in [
        (Law::Jeugdwet, "jw305_valid.xml", "45", "54"),
        (Law::Wmo, "wmo305_valid.xml", "02", "07"),
    ] {
        let m = parse_305(&data(file)).unwrap();
        check_header(&m.header, law, MessageType::Start305, "START-0001");
        check_client(&m.client);
        assert_eq!(
            m.products,
            vec![
                StartedProduct {
                    record: "/Bericht/Client/StartProducten/StartProduct[1]".into(),
                    assignment_number: Some(rz_domain::AssignmentNumber::parse("4711").unwrap()),
                    product: Some(Product {
                        category: cat(law, c1),
                        code: Some(rz_domain::ProductCode::parse("45A53").unwrap()),
                    }),
                    assignment_start: Some(d("2026-11-01")),
                    start: d("2026-11-16"),
                    status: DeliveryStatus::First,
                },
                StartedProduct {
                    record: "/Bericht/Client/StartProducten/StartProduct[2]".into(),
                    assignment_number: Some(rz_domain::AssignmentNumber::parse("4712").unwrap()),
                    product: Some(Product {
                        category: cat(law, c2),
                        code: None,
                    }),
                    assignment_start: Some(d("2026-11-01")),
                    start: d("2026-11-18"),
                    status: DeliveryStatus::First,
                },
            ]
        );
        assert_eq!(
            m.body.records(),
            vec![
                "/Bericht/Client".to_owned(),
                m.products[0].record.clone(),
                m.products[1].record.clone()
            ]
        );
    }
}

#[test]
fn parse_307_both_laws() {
    let m = parse_307(&data("jw307_valid.xml")).unwrap();
    check_header(&m.header, Law::Jeugdwet, MessageType::Stop307, "STOP-0001");
    check_client(&m.client);
    assert_eq!(m.products.len(), 1);
    let p = &m.products[0];
    assert_eq!(
        p.end_reason,
        EndReason::Youth(YouthEndReason::EndedAsPlanned)
    );
    assert_eq!(p.start, d("2026-11-16"));
    assert_eq!(p.end, d("2027-05-31"));
    assert_eq!(
        p.product.as_ref().unwrap().category,
        ProductCategory::Youth(YouthProductCategory::parse("45").unwrap())
    );

    let m = parse_307(&data("wmo307_valid.xml")).unwrap();
    check_header(&m.header, Law::Wmo, MessageType::Stop307, "STOP-0001");
    let p = &m.products[0];
    assert_eq!(p.end_reason, EndReason::Wmo(WmoEndReason::EndedAsPlanned));
    assert_eq!(p.assignment_number.unwrap().value(), 4711);
    assert_eq!(
        p.product.as_ref().unwrap().category,
        ProductCategory::Wmo(WmoProductCategory::parse("02").unwrap())
    );
}

#[test]
fn parse_315_both_laws() {
    for (law, file, c1) in [
        (Law::Jeugdwet, "jw315_valid.xml", "45"),
        (Law::Wmo, "wmo315_valid.xml", "02"),
    ] {
        let m = parse_315(&data(file)).unwrap();
        check_header(
            &m.header,
            law,
            MessageType::AssignmentRequest315,
            "VOT-0001",
        );
        check_client(&m.client);
        assert_eq!(
            m.guardian_known,
            if law == Law::Jeugdwet {
                Some(true)
            } else {
                None
            }
        );
        assert_eq!(m.products.len(), 2);
        let a = &m.products[0];
        assert_eq!(a.provider_reference, "REF-2026-0042");
        assert_eq!(a.product.as_ref().unwrap().category, cat(law, c1));
        assert_eq!(a.start, d("2026-12-01"));
        assert_eq!(a.end, Some(d("2027-11-30")));
        assert_eq!(
            a.size,
            Some(Size {
                volume: 4,
                unit: Unit::Hour,
                frequency: Frequency::PerWeek
            })
        );
        assert_eq!(a.budget, None);
        assert_eq!(
            a.referrer,
            ReferrerInfo {
                kind: Referrer::GeneralPractitioner,
                name: Some("Huisartsenpraktijk De Linde".into()),
                agb: Some(rz_domain::AgbCode::parse("01234567").unwrap()),
            }
        );
        let b = &m.products[1];
        assert_eq!(b.budget.unwrap().as_i64(), 250_000);
        assert_eq!(b.size, None);
        assert_eq!(b.end, None);
        assert_eq!(b.referrer.kind, Referrer::SelfReferral);
        assert_eq!(b.comment.as_deref(), Some("Met spoed & in overleg"));
    }
}

#[test]
fn parse_317_both_laws() {
    for (law, file, c2) in [
        (Law::Jeugdwet, "jw317_valid.xml", "54"),
        (Law::Wmo, "wmo317_valid.xml", "07"),
    ] {
        let m = parse_317(&data(file)).unwrap();
        check_header(&m.header, law, MessageType::ChangeRequest317, "VOW-0001");
        assert_eq!(m.bsn.as_str(), "111222333");
        let r = &m.request;
        assert_eq!(r.record, "/Bericht/Client/Verzoek");
        assert_eq!(r.provider_reference, "VOW-2026-0007");
        assert_eq!(r.reason, RequestReason::CarePlanChanged);
        assert_eq!(r.unchanged.len(), 1);
        assert_eq!(r.unchanged[0].assignment_number.value(), 4712);
        assert_eq!(
            r.to_change,
            vec![ProductChange {
                record: "/Bericht/Client/Verzoek/TeWijzigenProducten/TeWijzigenProduct[1]".into(),
                assignment_number: rz_domain::AssignmentNumber::parse("4711").unwrap(),
                desired_start: d("2026-12-01"),
                end: Some(d("2027-06-30")),
                size: Some(Size {
                    volume: 6,
                    unit: Unit::Hour,
                    frequency: Frequency::PerWeek
                }),
                budget: None,
            }]
        );
        assert_eq!(r.new.len(), 1);
        assert_eq!(r.new[0].product.as_ref().unwrap().category, cat(law, c2));
        assert_eq!(r.new[0].budget.unwrap().as_i64(), 120_000);
    }
}

type Parser = fn(&[u8]) -> Result<(), ParseError>;

fn p305(b: &[u8]) -> Result<(), ParseError> {
    parse_305(b).map(drop)
}
fn p307(b: &[u8]) -> Result<(), ParseError> {
    parse_307(b).map(drop)
}
fn p315(b: &[u8]) -> Result<(), ParseError> {
    parse_315(b).map(drop)
}
fn p317(b: &[u8]) -> Result<(), ParseError> {
    parse_317(b).map(drop)
}

fn rejected(parse: Parser, input: &[u8]) -> ParseError {
    parse(input).expect_err("must be rejected")
}

const T: &str = "0001";

#[test]
fn invalid_messages_are_rejected_with_element_rule_and_return_code() {
    use ParseErrorKind as K;
    let cases: [(&str, Parser, K, &str, &str); 18] = [
        (
            "jw305_bsn_fails_11_test.xml",
            p305,
            K::InvalidValue,
            "/Bericht/Client/Bsn",
            T,
        ),
        (
            "wmo307_date_with_time_zone.xml",
            p307,
            K::InvalidDate,
            "/Bericht/Client/StopProducten/StopProduct[1]/Begindatum",
            T,
        ),
        (
            "jw307_end_before_start.xml",
            p307,
            K::EndBeforeStart,
            "/Bericht/Client/StopProducten/StopProduct[1]/Einddatum",
            T,
        ),
        (
            "wmo315_end_before_start.xml",
            p315,
            K::EndBeforeStart,
            "/Bericht/Client/AangevraagdeProducten/AangevraagdProduct[1]/ToewijzingEinddatum",
            T,
        ),
        (
            "jw315_empty_element.xml",
            p315,
            K::Empty,
            "/Bericht/Client/Naam/Voornamen",
            T,
        ),
        (
            "jw305_empty_element.xml",
            p305,
            K::Empty,
            "/Bericht/Client/Naam/Voorletters",
            T,
        ),
        (
            "jw305_wrong_namespace.xml",
            p305,
            K::WrongNamespace,
            "/Bericht",
            T,
        ),
        (
            "wmo305_namespace_of_wmo307.xml",
            p305,
            K::WrongNamespace,
            "/Bericht",
            T,
        ),
        (
            "jw305_basisschema_element_in_message_namespace.xml",
            p305,
            K::WrongNamespace,
            "/Bericht/Client/StartProducten/StartProduct[1]/Product/Categorie",
            T,
        ),
        (
            "jw317_not_well_formed.xml",
            p317,
            K::NotWellFormed,
            "/Bericht/Client/Verzoek",
            T,
        ),
        (
            "jw305_message_id_too_long.xml",
            p305,
            K::InvalidValue,
            "/Bericht/Header/BerichtIdentificatie/Identificatie",
            T,
        ),
        (
            "wmo317_municipality_3_digits.xml",
            p317,
            K::InvalidValue,
            "/Bericht/Header/Ontvanger",
            "S300",
        ),
        (
            "wmo315_element_only_in_ijw.xml",
            p315,
            K::Unexpected,
            "/Bericht/Client/GezagsdragerBekend",
            T,
        ),
        (
            "jw305_product_code_invalid.xml",
            p305,
            K::InvalidValue,
            "/Bericht/Client/StartProducten/StartProduct[1]/Product/Code",
            "S329",
        ),
        (
            "jw305_wrong_message_code.xml",
            p305,
            K::WrongHeader,
            "/Bericht/Header/BerichtCode",
            T,
        ),
        ("jw305_billion_laughs.xml", p305, K::Doctype, "/", T),
        (
            "jw305_undeclared_entity.xml",
            p305,
            K::Entity,
            "/Bericht",
            T,
        ),
        ("jw305_wrong_root.xml", p305, K::WrongRoot, "/Message", T),
    ];
    for (file, parse, kind, path, code) in cases {
        let e = rejected(parse, &data(&format!("invalid/{file}")));
        assert_eq!(e.kind, kind, "{file}: {e}");
        assert_eq!(e.path, path, "{file}: {e}");
        assert_eq!(
            e.return_code,
            ReturnCode::parse(code).unwrap(),
            "{file}: {e}"
        );
        assert!(!e.rule.is_empty());
    }
}

#[test]
fn error_messages_name_the_element_and_the_rule() {
    let e = rejected(p305, &data("invalid/jw305_bsn_fails_11_test.xml"));
    assert_eq!(
        e.to_string(),
        "/Bericht/Client/Bsn: fails the 11-test (return code 0001)"
    );
    assert!(e.received.is_some(), "the header was read before the error");
    let e = rejected(p307, &data("invalid/wmo307_date_with_time_zone.xml"));
    assert_eq!(e.rule, "must be a date YYYY-MM-DD without time zone");
    let e = rejected(p305, &data("invalid/jw305_billion_laughs.xml"));
    assert!(e.received.is_none());
}

#[test]
fn the_schema_invalid_test_messages_are_also_rejected_by_xmllint() {
    // Cross-check: where the XSD covers the rule, the official schema agrees.
    for (file, schema) in [
        ("wmo307_date_with_time_zone.xml", "WMO307"),
        ("jw315_empty_element.xml", "JW315"),
        ("jw305_empty_element.xml", "JW305"),
        ("jw305_wrong_namespace.xml", "JW305"),
        (
            "jw305_basisschema_element_in_message_namespace.xml",
            "JW305",
        ),
        ("jw305_message_id_too_long.xml", "JW305"),
        ("wmo317_municipality_3_digits.xml", "WMO317"),
        ("wmo315_element_only_in_ijw.xml", "WMO315"),
        ("jw305_wrong_message_code.xml", "JW305"),
    ] {
        assert!(
            xmllint(&xsd(schema), &data(&format!("invalid/{file}"))).is_err(),
            "xmllint accepts {file}"
        );
    }
}

fn valid_305() -> String {
    String::from_utf8(data("jw305_valid.xml")).unwrap()
}

#[test]
fn deep_nesting_is_rejected() {
    let deep = format!(
        "{}{}",
        "<Commentaar>".repeat(100),
        "</Commentaar>".repeat(100)
    );
    let xml = valid_305().replace("<Bsn>", &format!("{deep}<Bsn>"));
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::TooDeep, "{e}");
    assert!(
        e.path.starts_with("/Bericht/Client/Commentaar/Commentaar"),
        "{e}"
    );
}

#[test]
fn element_count_bomb_is_rejected() {
    let many = "<X>1</X>".repeat(MAX_ELEMENTS + 1);
    let xml = valid_305().replace("<Bsn>", &format!("{many}<Bsn>"));
    assert!(xml.len() < MAX_MESSAGE_BYTES);
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::TooManyElements, "{e}");
}

#[test]
fn attribute_bombs_and_foreign_attributes_are_rejected() {
    let attrs: String = (0..10_000).map(|i| format!(" xsi:a{i}=\"1\"")).collect();
    let xml = valid_305().replace(
        "<Client>",
        &format!("<Client xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"{attrs}>"),
    );
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::TooManyAttributes, "{e}");
    assert_eq!(e.path, "/Bericht/Client");

    // Namespace declarations are bounded by quick-xml's resolver as well (128 in scope).
    let decls: String = (0..1000)
        .map(|i| format!(" xmlns:p{i}=\"urn:x\""))
        .collect();
    let xml = valid_305().replace("<Client>", &format!("<Client{decls}>"));
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::NotWellFormed, "{e}");
    assert_eq!(e.return_code, ReturnCode::TECHNICAL_REJECTION);

    let xml = valid_305().replace("<Client>", "<Client id=\"1\">");
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::Attribute, "{e}");
    assert_eq!(e.path, "/Bericht/Client/@id");
}

#[test]
fn more_than_25_mb_is_rejected_before_parsing() {
    let comment = format!("<!--{}-->", "x".repeat(MAX_MESSAGE_BYTES));
    let xml = valid_305().replace("<Client>", &format!("{comment}<Client>"));
    assert!(xml.len() > MAX_MESSAGE_BYTES);
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::TooLarge);
    assert_eq!(e.return_code, ReturnCode::TECHNICAL_REJECTION);
}

/// An endless source: counts what is read from it.
struct Endless {
    read: usize,
}

impl std::io::Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b' ');
        self.read += buf.len();
        Ok(buf.len())
    }
}

#[test]
fn read_limited_stops_at_the_limit() {
    let mut src = Endless { read: 0 };
    let e = read_limited(&mut src).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooLarge);
    assert_eq!(src.read, MAX_MESSAGE_BYTES + 1);
    let ok = read_limited(&data("jw305_valid.xml")[..]).unwrap();
    assert!(parse_305(&ok).is_ok());
}

#[test]
fn other_hostile_or_malformed_input_is_rejected() {
    use ParseErrorKind as K;
    let v = valid_305();
    let cases: [(String, K); 9] = [
        (
            v.replace("<Bsn>", "<?evil x?><Bsn>"),
            K::ProcessingInstruction,
        ),
        (
            v.replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""),
            K::Encoding,
        ),
        (format!("{v}<Bericht/>"), K::NotWellFormed),
        (format!("{v}trailing"), K::NotWellFormed),
        (v.replace("</Bericht>", ""), K::NotWellFormed),
        (
            v.replace(
                "<Bsn>111222333</Bsn>",
                "<Bsn>111222333</Bsn><Bsn>111222333</Bsn>",
            ),
            K::Unexpected,
        ),
        (v.replace("<Geslacht>2</Geslacht>", ""), K::Missing),
        (
            v.replace("<Bsn>111222333", "<Bsn>1112<X>2</X>2333"),
            K::Unexpected,
        ),
        (
            v.replace("<Begindatum>2026-11-16", "<Begindatum>2026-02-30"),
            K::InvalidDate,
        ),
    ];
    for (xml, kind) in cases {
        let e = rejected(p305, xml.as_bytes());
        assert_eq!(e.kind, kind, "{e}");
    }
    let xml = v.replace(
        "<Afzender>12345678</Afzender>",
        "<Afzender>1234567</Afzender>",
    );
    let e = rejected(p305, xml.as_bytes());
    assert_eq!(
        e.to_string(),
        "/Bericht/Header/Afzender: must be 8 digits (return code 0001)"
    );
    let e = rejected(p305, &[0xff, 0xfe, b'<']);
    assert_eq!(e.kind, K::Encoding);
    // Predefined entities and character references are fine.
    let xml = v.replace(
        "<ijw:Achternaam>Jansen",
        "<ijw:Achternaam>J&#97;nsen &amp; Zn",
    );
    let m = parse_305(xml.as_bytes()).unwrap();
    assert_eq!(m.client.name.family_name, "Jansen & Zn");
}

#[test]
fn a_message_of_the_wrong_type_is_rejected_by_namespace() {
    let e = rejected(p307, &data("jw305_valid.xml"));
    assert_eq!(e.kind, ParseErrorKind::WrongNamespace);
    assert!(e.rule.contains("JW307"), "{e}");
}

#[test]
fn parse_provider_message_reads_each_of_the_four_messages_of_both_laws() {
    for (file, name) in VALID {
        let m = parse_provider_message(&data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let h = m.header();
        assert_eq!(h.message_type.name(h.law), name, "{file}");
        let kind = match &m {
            ProviderMessage::Start(_) => "305",
            ProviderMessage::Stop(_) => "307",
            ProviderMessage::Request(_) => "315",
            ProviderMessage::Change(_) => "317",
        };
        assert!(name.ends_with(kind), "{file}: {kind}");
        assert!(!m.body().records().is_empty());
    }
}

/// The root of `xml` replaced: `<{root} xmlns="{ns}" …>` (the basisschema prefix kept).
fn with_root(xml: &str, root: &str, ns: &str) -> String {
    let xml = xml.replace(
        "xmlns=\"http://www.istandaarden.nl/ijw/3_2/jw305/schema\"",
        &format!("xmlns=\"{ns}\""),
    );
    xml.replace("<Bericht ", &format!("<{root} "))
        .replace("</Bericht>", &format!("</{root}>"))
}

#[test]
fn an_unexpected_root_element_or_namespace_is_named_with_what_was_expected() {
    let jw305 = valid_305();
    // A JW305 where a JW317 is expected.
    let e = rejected(p317, jw305.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::WrongNamespace);
    assert_eq!(e.path, "/Bericht");
    assert!(
        e.rule.starts_with(
            "expected the root element Bericht of JW317 or WMO317 (namespace \
             \"http://www.istandaarden.nl/ijw/3_2/jw317/schema\" or \
             \"http://www.istandaarden.nl/iwmo/3_2/wmo317/schema\")"
        ),
        "{e}"
    );
    assert!(
        e.rule.ends_with(
            "found element Bericht in namespace \
             \"http://www.istandaarden.nl/ijw/3_2/jw305/schema\", that of JW305"
        ),
        "{e}"
    );
    assert!(!e.rule.contains("is not that of"), "{e}");

    // Any provider message expected: all eight named; a JW301 found.
    let jw301 = with_root(
        &jw305,
        "Bericht",
        "http://www.istandaarden.nl/ijw/3_2/jw301/schema",
    );
    let e = parse_provider_message(jw301.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::WrongNamespace);
    assert!(
        e.rule
            .contains("JW305, JW307, JW315, JW317, WMO305, WMO307, WMO315 or WMO317"),
        "{e}"
    );
    assert!(e.rule.ends_with("that of JW301"), "{e}");

    // The right namespace, the wrong root element.
    let root = with_root(
        &jw305,
        "Toewijzing",
        "http://www.istandaarden.nl/ijw/3_2/jw305/schema",
    );
    let e = rejected(p305, root.as_bytes());
    assert_eq!(e.kind, ParseErrorKind::WrongRoot);
    assert_eq!(e.path, "/Toewijzing");
    assert_eq!(
        e.rule,
        "expected the root element Bericht, found element Toewijzing in namespace \
         \"http://www.istandaarden.nl/ijw/3_2/jw305/schema\", that of JW305"
    );

    // Another release of the standard, a foreign namespace, none at all.
    let old = with_root(
        &jw305,
        "Bericht",
        "http://www.istandaarden.nl/ijw/3_1/jw305/schema",
    );
    let e = parse_provider_message(old.as_bytes()).unwrap_err();
    assert!(e.rule.ends_with("that of JW305 of ijw release 3.1"), "{e}");
    let foreign = with_root(&jw305, "Invoice", "urn:example:invoice");
    let e = parse_provider_message(foreign.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::WrongNamespace);
    assert!(
        e.rule
            .ends_with("found element Invoice in namespace \"urn:example:invoice\""),
        "{e}"
    );
    let e = parse_provider_message(b"<Bericht><Header/></Bericht>").unwrap_err();
    assert!(
        e.rule.ends_with("found element Bericht in no namespace"),
        "{e}"
    );

    // A huge namespace is shown shortened, not echoed.
    let long = format!("urn:{}", "x".repeat(10_000));
    let e = parse_provider_message(with_root(&jw305, "Bericht", &long).as_bytes()).unwrap_err();
    assert!(e.rule.len() < 1_000, "{} characters", e.rule.len());
    assert!(e.rule.contains('…'), "{e}");
}
