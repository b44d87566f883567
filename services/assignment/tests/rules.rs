//! The iJw/iWmo 3.2 technical rules on the providers' messages received as XML, each test named
//! after the rule it proves (see `docs/istandaarden-rules.md`): the prescribed WJ001 return code,
//! nothing applied by a refused message or record, and every return message valid against the
//! official XSD with its header the right way round.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../lib/istandaarden/tests/common/mod.rs"]
mod ist;

use common::*;
use rz_proto::assignment::v1 as pb;

/// A message's header and client, with what the rules look at as parameters.
struct Msg<'a> {
    sender: &'a str,
    id: &'a str,
    date: &'a str,
    bsn: &'a str,
}

fn header(code: &str, ns: &str, m: &Msg<'_>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Bericht xmlns="http://www.istandaarden.nl/ijw/3_2/{ns}/schema" xmlns:ijw="http://www.istandaarden.nl/ijw/3_2/basisschema/schema">
  <Header>
    <BerichtCode>{code}</BerichtCode>
    <BerichtVersie>3</BerichtVersie>
    <BerichtSubversie>2</BerichtSubversie>
    <Afzender>{}</Afzender>
    <Ontvanger>{M}</Ontvanger>
    <BerichtIdentificatie>
      <ijw:Identificatie>{}</ijw:Identificatie>
      <ijw:Dagtekening>{}</ijw:Dagtekening>
    </BerichtIdentificatie>
    <XsdVersie>
      <ijw:BasisschemaXsdVersie>0.1.0</ijw:BasisschemaXsdVersie>
      <ijw:BerichtXsdVersie>0.1.0</ijw:BerichtXsdVersie>
    </XsdVersie>
  </Header>
  <Client>
    <Bsn>{}</Bsn>"#,
        m.sender, m.id, m.date, m.bsn
    )
}

const PERSON: &str = r#"
    <Geboortedatum>
      <ijw:Datum>2012-05-01</ijw:Datum>
    </Geboortedatum>
    <Geslacht>2</Geslacht>
    <Naam>
      <ijw:Geslachtsnaam>
        <ijw:Achternaam>Vries</ijw:Achternaam>
      </ijw:Geslachtsnaam>
    </Naam>"#;

/// The assignment a start or stop names: number, product category, ToewijzingIngangsdatum.
struct Linked<'a> {
    number: u32,
    category: &'a str,
    assignment_start: &'a str,
}

fn jw305(m: &Msg<'_>, l: &Linked<'_>, begin: &str, status: &str) -> String {
    format!(
        r#"{}{PERSON}
    <StartProducten>
      <StartProduct>
        <ToewijzingNummer>{}</ToewijzingNummer>
        <Product>
          <ijw:Categorie>{}</ijw:Categorie>
        </Product>
        <ToewijzingIngangsdatum>{}</ToewijzingIngangsdatum>
        <Begindatum>{begin}</Begindatum>
        <StatusAanlevering>{status}</StatusAanlevering>
      </StartProduct>
    </StartProducten>
  </Client>
</Bericht>
"#,
        header("438", "jw305", m),
        l.number,
        l.category,
        l.assignment_start
    )
}

fn jw307(m: &Msg<'_>, l: &Linked<'_>, begin: &str, end: &str, status: &str) -> String {
    format!(
        r#"{}{PERSON}
    <StopProducten>
      <StopProduct>
        <ToewijzingNummer>{}</ToewijzingNummer>
        <Product>
          <ijw:Categorie>{}</ijw:Categorie>
        </Product>
        <ToewijzingIngangsdatum>{}</ToewijzingIngangsdatum>
        <Begindatum>{begin}</Begindatum>
        <RedenBeeindiging>31</RedenBeeindiging>
        <Einddatum>{end}</Einddatum>
        <StatusAanlevering>{status}</StatusAanlevering>
      </StopProduct>
    </StopProducten>
  </Client>
</Bericht>
"#,
        header("440", "jw307", m),
        l.number,
        l.category,
        l.assignment_start
    )
}

fn jw315(m: &Msg<'_>, reference: &str) -> String {
    format!(
        r#"{}{PERSON}
    <GezagsdragerBekend>1</GezagsdragerBekend>
    <AangevraagdeProducten>
      <AangevraagdProduct>
        <ReferentieAanbieder>{reference}</ReferentieAanbieder>
        <Product>
          <ijw:Categorie>45</ijw:Categorie>
        </Product>
        <ToewijzingIngangsdatum>2022-08-01</ToewijzingIngangsdatum>
        <ToewijzingEinddatum>2022-12-31</ToewijzingEinddatum>
        <Verwijzer>
          <ijw:Type>02</ijw:Type>
          <ijw:Naam>Huisartsenpraktijk De Linde</ijw:Naam>
          <ijw:ZorgverlenerCode>01234567</ijw:ZorgverlenerCode>
        </Verwijzer>
      </AangevraagdProduct>
    </AangevraagdeProducten>
  </Client>
</Bericht>
"#,
        header("446", "jw315", m)
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

fn codes(r: &pb::UploadResult) -> Vec<String> {
    r.errors.iter().map(|e| e.return_code.clone()).collect()
}

/// The text of the first `<tag>` (with or without the basisschema prefix) inside the first
/// `<within>` of `xml`.
fn text_in(xml: &str, within: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{within}>"))
        .unwrap_or_else(|| panic!("no <{within}> in {xml}"));
    let rest = &xml[start..];
    let open = [format!("<{tag}>"), format!("<ijw:{tag}>")]
        .into_iter()
        .find_map(|o| rest.find(&o).map(|i| i + o.len()))
        .unwrap_or_else(|| panic!("no <{tag}> in <{within}> of {xml}"));
    rest[open..].split('<').next().unwrap().to_owned()
}

async fn outbox_drained(app: &TestApp) {
    for _ in 0..200 {
        if rz_stack::unpublished(&app.a.pool).await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the outbox was not drained in 10 s");
}

/// A youth assignment (IAJ-ON, category 45) for client `n` with P1 from 2022-07-01.
async fn assigned(app: &mut TestApp, n: u32) -> (String, pb::Assignment) {
    let b = bsn(n);
    app.decide_youth(
        &b,
        START,
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b), 1).await.remove(0);
    assert_eq!(a.agb_code, P1);
    assert_eq!(a.product_category, "45");
    (b, a)
}

fn linked(a: &pb::Assignment) -> Linked<'static> {
    Linked {
        number: a.number,
        category: "45",
        assignment_start: "2022-07-01",
    }
}

/// The XSD documentation of the 306/308/316 header: BerichtIdentificatie and XsdVersie are the
/// provider's message's, IdentificatieRetour, DagtekeningRetour and XsdVersieRetour the return
/// message's own (its number from the municipality's counter, the service's date).
#[tokio::test]
async fn return_message_headers_carry_the_providers_identification_and_their_own_as_retour() {
    let mut app = spawn_app().await;
    let (b, a) = assigned(&mut app, 11).await;
    let msg = |id| Msg {
        sender: P1,
        id,
        date: "2022-06-20",
        bsn: &b,
    };
    let accepted = upload(
        &app,
        P1,
        &jw305(&msg("HDR-1"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert!(accepted.accepted, "{accepted:?}");
    let refused = upload(
        &app,
        P1,
        &jw305(&msg("HDR-2"), &linked(&a), "2022-07-05", "1"),
    )
    .await;
    assert_eq!(codes(&refused), ["9326"], "TR326: {refused:?}");
    let unreadable = upload(
        &app,
        P1,
        &jw305(&msg("HDR-3"), &linked(&a), "2022-07-05", "1").replace("<Geslacht>2", "<Geslacht>7"),
    )
    .await;
    assert_eq!(codes(&unreadable), ["0001"], "{unreadable:?}");
    for (r, id) in [
        (&accepted, "HDR-1"),
        (&refused, "HDR-2"),
        (&unreadable, "HDR-3"),
    ] {
        let xml = &r.return_message_xml;
        ist::assert_valid("JW306", xml);
        assert_eq!(
            text_in(xml, "BerichtIdentificatie", "Identificatie"),
            id,
            "BerichtIdentificatie is the provider's message's: {xml}"
        );
        assert_eq!(
            text_in(xml, "BerichtIdentificatie", "Dagtekening"),
            "2022-06-20"
        );
        let own = text_in(xml, "Header", "IdentificatieRetour");
        assert!(
            own.parse::<u64>().is_ok(),
            "IdentificatieRetour is the return message's own number: {xml}"
        );
        assert_eq!(
            text_in(xml, "Header", "DagtekeningRetour"),
            START,
            "DagtekeningRetour is the return message's own date (the service's clock): {xml}"
        );
        assert_eq!(text_in(xml, "XsdVersie", "BerichtXsdVersie"), "0.1.0");
        assert_eq!(text_in(xml, "XsdVersieRetour", "BerichtXsdVersie"), "0.1.0");
    }
    let own: Vec<String> = [&accepted, &refused, &unreadable]
        .iter()
        .map(|r| text_in(&r.return_message_xml, "Header", "IdentificatieRetour"))
        .collect();
    assert!(
        own[0] != own[1] && own[1] != own[2] && own[0] != own[2],
        "each return message its own identification: {own:?}"
    );
}

/// TR056 (9056): an Identificatie the same provider used before for the same message is refused
/// as a whole and nothing is applied; per sender and per message (a 307 may carry a 305's
/// Identificatie, another provider may use it too).
#[tokio::test]
async fn tr056_an_identification_the_provider_used_before_for_that_message_is_refused_9056() {
    let mut app = spawn_app().await;
    let (b1, a1) = assigned(&mut app, 21).await;
    let (b2, a2) = assigned(&mut app, 22).await;
    let msg = |id, bsn| Msg {
        sender: P1,
        id,
        date: START,
        bsn,
    };
    let r = upload(
        &app,
        P1,
        &jw305(&msg("ID-1", &b1), &linked(&a1), "2022-07-04", "1"),
    )
    .await;
    assert!(r.accepted, "{r:?}");

    // Another start (another client and assignment) under the same Identificatie: refused whole.
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let r = upload(
        &app,
        P1,
        &jw305(&msg("ID-1", &b2), &linked(&a2), "2022-07-04", "1"),
    )
    .await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["9056"], "TR056: {r:?}");
    assert!(r.errors[0].rule.starts_with("TR056: "), "{r:?}");
    assert_eq!(
        r.errors[0].path,
        "/Bericht/Header/BerichtIdentificatie/Identificatie"
    );
    ist::assert_valid("JW306", &r.return_message_xml);
    assert!(
        r.return_message_xml
            .contains("<RetourCode>9056</RetourCode>"),
        "{}",
        r.return_message_xml
    );
    assert!(
        !r.return_message_xml.contains("<Client>"),
        "refused as a whole, no record judged"
    );
    assert_eq!(
        app.a.get(a2.number).await.status(),
        pb::AssignmentStatus::Issued,
        "TR056: not applied"
    );
    assert_eq!(app.a.snapshot().await, before, "TR056: nothing changed");

    // The same message again, byte for byte: refused the same way, not applied twice.
    let r = upload(
        &app,
        P1,
        &jw305(&msg("ID-1", &b1), &linked(&a1), "2022-07-04", "1"),
    )
    .await;
    assert_eq!(codes(&r), ["9056"], "TR056: an identical 305 again: {r:?}");

    // A 307 may carry the Identificatie of a 305 (per message): judged and applied.
    let r = upload(
        &app,
        P1,
        &jw307(
            &msg("ID-1", &b1),
            &linked(&a1),
            "2022-07-04",
            "2022-09-30",
            "1",
        ),
    )
    .await;
    assert!(r.accepted, "TR056 is per message type: {r:?}");
    // A 307 reusing that 307's Identificatie: refused.
    let r = upload(
        &app,
        P1,
        &jw307(
            &msg("ID-1", &b1),
            &linked(&a1),
            "2022-07-04",
            "2022-09-30",
            "1",
        ),
    )
    .await;
    assert_eq!(codes(&r), ["9056"], "TR056: {r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);

    // An identical 315 sent again is answered 9056, not as accepted; one request stored.
    let b3 = bsn(23);
    let r = upload(&app, P1, &jw315(&msg("VOT-1", &b3), "REF-1")).await;
    assert!(r.accepted, "{r:?}");
    let requests = app.a.count("provider_requests").await;
    let r = upload(&app, P1, &jw315(&msg("VOT-1", &b3), "REF-1")).await;
    assert!(!r.accepted, "TR056: an identical 315 again is not accepted");
    assert_eq!(codes(&r), ["9056"], "TR056: {r:?}");
    ist::assert_valid("JW316", &r.return_message_xml);
    assert_eq!(app.a.count("provider_requests").await, requests);
    // Another sender may use the same Identificatie (unique per sender).
    let r = upload(
        &app,
        P2,
        &jw315(
            &Msg {
                sender: P2,
                ..msg("VOT-1", &bsn(24))
            },
            "REF-1",
        ),
    )
    .await;
    assert!(r.accepted, "TR056 is per sender: {r:?}");
}

/// TR135 (8848): a Dagtekening after today (the service's configured clock) is refused as a
/// whole; on that day it is accepted.
#[tokio::test]
async fn tr135_a_dagtekening_after_the_services_today_is_refused_8848() {
    let mut app = spawn_app().await;
    let (b, a) = assigned(&mut app, 31).await;
    let msg = |id, date| Msg {
        sender: P1,
        id,
        date,
        bsn: &b,
    };
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let r = upload(
        &app,
        P1,
        &jw305(&msg("D-1", "2022-06-28"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["8848"], "TR135: {r:?}");
    assert!(r.errors[0].rule.starts_with("TR135: "), "{r:?}");
    assert!(r.errors[0].path.ends_with("/Dagtekening"), "{r:?}");
    ist::assert_valid("JW306", &r.return_message_xml);
    assert!(
        r.return_message_xml
            .contains("<RetourCode>8848</RetourCode>")
    );
    assert_eq!(app.a.snapshot().await, before, "TR135: nothing changed");
    // Its Identificatie was not taken by the refused message: once the service's date has come,
    // the same message is judged and applied.
    app.a.clock.set(d("2022-06-28"));
    let r = upload(
        &app,
        P1,
        &jw305(&msg("D-1", "2022-06-28"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert!(r.accepted, "TR135: today is allowed: {r:?}");
}

/// 305: TR019 (9019) when the product category or the ToewijzingIngangsdatum is not the
/// assignment's; TR074 (9074) for a start with the same key again; TR326 (9326) for another start
/// while the delivery was not stopped.
#[tokio::test]
async fn tr019_tr074_tr326_start_of_care_must_match_the_assignment_and_come_once() {
    let mut app = spawn_app().await;
    let (b, a) = assigned(&mut app, 41).await;
    let msg = |id| Msg {
        sender: P1,
        id,
        date: START,
        bsn: &b,
    };
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let other_category = Linked {
        category: "40",
        ..linked(&a)
    };
    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-1"), &other_category, "2022-07-04", "1"),
    )
    .await;
    assert_eq!(codes(&r), ["9019"], "TR019: product category: {r:?}");
    assert!(r.errors[0].rule.starts_with("TR019: "), "{r:?}");
    let other_start = Linked {
        assignment_start: "2022-07-02",
        ..linked(&a)
    };
    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-2"), &other_start, "2022-07-04", "1"),
    )
    .await;
    assert_eq!(codes(&r), ["9019"], "TR019: ToewijzingIngangsdatum: {r:?}");
    ist::assert_valid("JW306", &r.return_message_xml);
    assert_eq!(app.a.snapshot().await, before, "TR019: nothing changed");

    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-3"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-4"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert_eq!(codes(&r), ["9074"], "TR074: the same start again: {r:?}");
    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-5"), &linked(&a), "2022-07-11", "1"),
    )
    .await;
    assert_eq!(
        codes(&r),
        ["9326"],
        "TR326: another start, not stopped: {r:?}"
    );
    ist::assert_valid("JW306", &r.return_message_xml);
    assert_eq!(app.a.get(a.number).await.started_on, "2022-07-04");
}

/// 307: TR069 (9069) when the Begindatum matches no reported start; TR019 (9019) when the
/// product category or the ToewijzingIngangsdatum is not the assignment's; TR074 (9074) for a
/// second stop of the same care (not 0001). None of them stops care.
#[tokio::test]
async fn tr069_tr019_tr074_stop_of_care_must_match_a_reported_start_and_come_once() {
    let mut app = spawn_app().await;
    let (b, a) = assigned(&mut app, 51).await;
    let msg = |id| Msg {
        sender: P1,
        id,
        date: START,
        bsn: &b,
    };
    let r = upload(
        &app,
        P1,
        &jw305(&msg("S-1"), &linked(&a), "2022-07-04", "1"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;

    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-1"), &linked(&a), "2022-07-05", "2022-09-30", "1"),
    )
    .await;
    assert_eq!(
        codes(&r),
        ["9069"],
        "TR069: Begindatum of no reported start: {r:?}"
    );
    assert!(r.errors[0].rule.starts_with("TR069: "), "{r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);
    let other_category = Linked {
        category: "40",
        ..linked(&a)
    };
    let r = upload(
        &app,
        P1,
        &jw307(
            &msg("E-2"),
            &other_category,
            "2022-07-04",
            "2022-09-30",
            "1",
        ),
    )
    .await;
    assert_eq!(codes(&r), ["9019"], "TR019: product category: {r:?}");
    let other_start = Linked {
        assignment_start: "2022-08-01",
        ..linked(&a)
    };
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-3"), &other_start, "2022-07-04", "2022-09-30", "1"),
    )
    .await;
    assert_eq!(codes(&r), ["9019"], "TR019: ToewijzingIngangsdatum: {r:?}");
    assert_eq!(
        app.a.get(a.number).await.status(),
        pb::AssignmentStatus::Started,
        "no refused stop stops care"
    );
    assert_eq!(app.a.snapshot().await, before, "nothing changed");

    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-4"), &linked(&a), "2022-07-04", "2022-09-30", "1"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    let stopped = app.a.get(a.number).await;
    assert_eq!(stopped.status(), pb::AssignmentStatus::Stopped);
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-5"), &linked(&a), "2022-07-04", "2022-10-31", "1"),
    )
    .await;
    assert_eq!(
        codes(&r),
        ["9074"],
        "TR074: a second stop of the same care: {r:?}"
    );
    assert!(r.errors[0].rule.starts_with("TR074: "), "{r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);
    assert_eq!(app.a.get(a.number).await.stopped_on, "2022-09-30");
    assert_eq!(app.a.snapshot().await, before, "TR074: nothing changed");
}

/// A 315 for a product the provider has no contract for: accepted technically (0200 in the 316)
/// and refused in content by a 319 with WJ759 `3` (geen contract) quoting its ReferentieAanbieder.
#[tokio::test]
async fn wj759_a_315_without_a_contract_is_accepted_and_refused_by_a_319_with_reason_3() {
    let app = spawn_app().await;
    let b = bsn(61);
    let r = upload(
        &app,
        NONE,
        &jw315(
            &Msg {
                sender: NONE,
                id: "VOT-9",
                date: START,
                bsn: &b,
            },
            "REF-NOCONTRACT",
        ),
    )
    .await;
    assert!(r.accepted, "accepted technically: {r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    ist::assert_valid("JW316", &r.return_message_xml);
    assert!(
        r.return_message_xml
            .contains("<RetourCode>0200</RetourCode>")
    );
    assert!(
        !r.return_message_xml
            .contains("<RetourCode>0001</RetourCode>")
    );
    let (status, reason): (String, String) = sqlx::query_as(
        "SELECT status, refusal_reason FROM provider_requests WHERE client_key = $1",
    )
    .bind(key_of(&b))
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("refused", "3"));
    let fetched = app
        .a
        .provider(NONE)
        .fetch_provider_messages(pb::FetchProviderMessagesRequest {
            agb_code: NONE.into(),
            municipality: M.into(),
            since: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let answers: Vec<_> = fetched
        .messages
        .iter()
        .filter(|m| m.kind == "JW319")
        .collect();
    assert_eq!(answers.len(), 1, "{fetched:?}");
    let xml = &answers[0].xml;
    ist::assert_valid("JW319", xml);
    assert!(
        xml.contains("<ReferentieAanbieder>REF-NOCONTRACT</ReferentieAanbieder>"),
        "{xml}"
    );
    assert!(
        xml.contains("<VerzoekAntwoord>1</VerzoekAntwoord>"),
        "{xml}"
    );
    assert!(
        xml.contains("<RedenAfwijzingVerzoek>3</RedenAfwijzingVerzoek>"),
        "WJ759 3 geen contract: {xml}"
    );
}

/// TR347 (9347): a ReferentieAanbieder the provider used in an earlier request is refused.
#[tokio::test]
async fn tr347_a_reference_the_provider_used_before_is_refused_9347() {
    let app = spawn_app().await;
    let (b1, b2) = (bsn(71), bsn(72));
    let msg = |id, bsn| Msg {
        sender: P1,
        id,
        date: START,
        bsn,
    };
    let r = upload(&app, P1, &jw315(&msg("VOT-1", &b1), "REF-SAME")).await;
    assert!(r.accepted, "{r:?}");
    let requests = app.a.count("provider_requests").await;
    let r = upload(&app, P1, &jw315(&msg("VOT-2", &b2), "REF-SAME")).await;
    assert_eq!(codes(&r), ["9347"], "TR347: {r:?}");
    assert!(r.errors[0].rule.starts_with("TR347: "), "{r:?}");
    ist::assert_valid("JW316", &r.return_message_xml);
    assert_eq!(app.a.count("provider_requests").await, requests);
}

/// A document that is no provider message: the error names what was found and what was expected.
#[tokio::test]
async fn an_unexpected_root_or_namespace_names_what_was_found_and_what_was_expected() {
    let app = spawn_app().await;
    let b = bsn(81);
    let xml = jw315(
        &Msg {
            sender: P1,
            id: "X-1",
            date: START,
            bsn: &b,
        },
        "REF-X",
    )
    .replace("/jw315/schema", "/jw301/schema");
    let r = upload(&app, P1, &xml).await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["0001"]);
    let rule = &r.errors[0].rule;
    assert!(
        rule.contains("JW305, JW307, JW315, JW317, WMO305, WMO307, WMO315 or WMO317"),
        "names what was expected: {rule}"
    );
    assert!(
        rule.ends_with("that of JW301"),
        "names what was found: {rule}"
    );
    assert!(!rule.contains("is not that of"), "{rule}");
}

/// An iJw message of these builders as the iWmo one (namespace, prefix, message code, XSD
/// versions, an end reason of WMO588).
fn to_wmo(xml: &str) -> String {
    xml.replace("/ijw/3_2/jw305/", "/iwmo/3_2/wmo305/")
        .replace("/ijw/3_2/jw307/", "/iwmo/3_2/wmo307/")
        .replace("/ijw/3_2/basisschema/", "/iwmo/3_2/basisschema/")
        .replace("xmlns:ijw=", "xmlns:iwmo=")
        .replace("<ijw:", "<iwmo:")
        .replace("</ijw:", "</iwmo:")
        .replace("<BerichtCode>438<", "<BerichtCode>418<")
        .replace("<BerichtCode>440<", "<BerichtCode>420<")
        .replace(">0.1.0<", ">1.0.0<")
        .replace("<RedenBeeindiging>31<", "<RedenBeeindiging>19<")
}

/// StatusAanlevering `3` deletes a start or stop record (TR063 9063 when none with that key was
/// received, TR071 9071 for a start whose care was stopped); `2` is not used in iJw (COD467,
/// CS058: 0001).
#[tokio::test]
async fn tr063_tr071_cs058_deleting_start_and_stop_records_of_ijw() {
    let mut app = spawn_app().await;
    let (b, a) = assigned(&mut app, 91).await;
    let msg = |id| Msg {
        sender: P1,
        id,
        date: START,
        bsn: &b,
    };
    let l = linked(&a);
    let r = upload(&app, P1, &jw305(&msg("S-1"), &l, "2022-07-04", "1")).await;
    assert!(r.accepted, "{r:?}");
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let r = upload(&app, P1, &jw305(&msg("S-2"), &l, "2022-07-05", "3")).await;
    assert_eq!(codes(&r), ["9063"], "TR063: no start with this key: {r:?}");
    assert!(r.errors[0].rule.starts_with("TR063: "), "{r:?}");
    let r = upload(&app, P1, &jw305(&msg("S-3"), &l, "2022-07-04", "2")).await;
    assert_eq!(codes(&r), ["0001"], "CS058: {r:?}");
    assert!(r.errors[0].rule.starts_with("CS058: "), "{r:?}");
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-1"), &l, "2022-07-04", "2022-09-30", "3"),
    )
    .await;
    assert_eq!(codes(&r), ["9063"], "TR063: no stop received: {r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused corrections change nothing"
    );

    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-2"), &l, "2022-07-04", "2022-09-30", "1"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    let r = upload(&app, P1, &jw305(&msg("S-4"), &l, "2022-07-04", "3")).await;
    assert_eq!(codes(&r), ["9071"], "TR071: care already stopped: {r:?}");
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-3"), &l, "2022-07-04", "2022-10-31", "2"),
    )
    .await;
    assert_eq!(codes(&r), ["0001"], "CS058: {r:?}");

    // Deleting the stop: care continues; deleting the start: the assignment is issued again.
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-4"), &l, "2022-07-04", "2022-09-30", "3"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);
    let x = app.a.get(a.number).await;
    assert_eq!(x.status(), pb::AssignmentStatus::Started);
    assert_eq!((x.stopped_on.as_str(), x.end_reason.as_str()), ("", ""));
    let valid_until: Option<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT valid_until FROM assignments WHERE number = $1")
            .bind(i64::from(a.number))
            .fetch_one(&app.a.pool)
            .await
            .unwrap();
    assert_eq!(valid_until, Some(d("2022-12-31")), "valid to its end again");
    let r = upload(
        &app,
        P1,
        &jw307(&msg("E-5"), &l, "2022-07-04", "2022-09-30", "3"),
    )
    .await;
    assert_eq!(codes(&r), ["9063"], "TR063: the stop was deleted: {r:?}");
    let r = upload(&app, P1, &jw305(&msg("S-5"), &l, "2022-07-04", "3")).await;
    assert!(r.accepted, "{r:?}");
    let x = app.a.get(a.number).await;
    assert_eq!(x.status(), pb::AssignmentStatus::Issued);
    assert_eq!(x.started_on, "");
    // And sent anew (1): a corrected start.
    let r = upload(&app, P1, &jw305(&msg("S-6"), &l, "2022-07-11", "1")).await;
    assert!(r.accepted, "{r:?}");
    assert_eq!(app.a.get(a.number).await.started_on, "2022-07-11");
}

/// iWmo: StatusAanlevering `2` of a stop corrects its Einddatum and RedenBeeindiging (TR063
/// without a stop with that key); `3` deletes, as in iJw.
#[tokio::test]
async fn tr063_changed_and_deleted_stop_records_of_iwmo() {
    let mut app = spawn_app().await;
    let b = bsn(95);
    app.decide_wmo(
        &b,
        START,
        vec![pxq_product("2022-07-01", "2022-12-31", PV1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b), 1).await.remove(0);
    assert_eq!(a.agb_code, PV1);
    let msg = |id| Msg {
        sender: PV1,
        id,
        date: START,
        bsn: &b,
    };
    let l = Linked {
        number: a.number,
        category: &a.product_category,
        assignment_start: "2022-07-01",
    };
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw305(&msg("S-1"), &l, "2022-07-04", "1")),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    assert_eq!(r.kind, "WMO305");
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw307(&msg("E-1"), &l, "2022-07-04", "2022-09-30", "2")),
    )
    .await;
    assert_eq!(codes(&r), ["9063"], "TR063: no stop to change: {r:?}");
    ist::assert_valid("WMO308", &r.return_message_xml);
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw307(&msg("E-2"), &l, "2022-07-04", "2022-09-30", "1")),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw307(&msg("E-3"), &l, "2022-07-04", "2022-10-31", "2")),
    )
    .await;
    assert!(r.accepted, "a changed stop: {r:?}");
    ist::assert_valid("WMO308", &r.return_message_xml);
    let x = app.a.get(a.number).await;
    assert_eq!(x.status(), pb::AssignmentStatus::Stopped);
    assert_eq!(x.stopped_on, "2022-10-31");
    // A changed start only confirms its key.
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw305(&msg("S-2"), &l, "2022-07-05", "2")),
    )
    .await;
    assert_eq!(codes(&r), ["9063"], "TR063: {r:?}");
    let r = upload(
        &app,
        PV1,
        &to_wmo(&jw307(&msg("E-4"), &l, "2022-07-04", "2022-10-31", "3")),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    assert_eq!(
        app.a.get(a.number).await.status(),
        pb::AssignmentStatus::Started
    );
}
