//! The standard's messages as XML: every message FetchProviderMessages returns validates against
//! the official XSD; uploaded 305/307/315/317 apply exactly like the gRPC calls and are answered
//! with a valid return message; invalid and hostile ones are rejected with the expected return
//! code and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../lib/istandaarden/tests/common/mod.rs"]
mod ist;

use std::collections::HashSet;

use common::*;
use rz_proto::assignment::v1 as pb;

fn header(code: &str, ns: &str, sender: &str, id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Bericht xmlns="http://www.istandaarden.nl/ijw/3_2/{ns}/schema" xmlns:ijw="http://www.istandaarden.nl/ijw/3_2/basisschema/schema">
  <Header>
    <BerichtCode>{code}</BerichtCode>
    <BerichtVersie>3</BerichtVersie>
    <BerichtSubversie>2</BerichtSubversie>
    <Afzender>{sender}</Afzender>
    <Ontvanger>{M}</Ontvanger>
    <BerichtIdentificatie>
      <ijw:Identificatie>{id}</ijw:Identificatie>
      <ijw:Dagtekening>2022-06-27</ijw:Dagtekening>
    </BerichtIdentificatie>
    <XsdVersie>
      <ijw:BasisschemaXsdVersie>0.1.0</ijw:BasisschemaXsdVersie>
      <ijw:BerichtXsdVersie>0.1.0</ijw:BerichtXsdVersie>
    </XsdVersie>
  </Header>"#
    )
}

fn client(bsn: &str) -> String {
    format!(
        r#"
  <Client>
    <Bsn>{bsn}</Bsn>
    <Geboortedatum>
      <ijw:Datum>2012-05-01</ijw:Datum>
    </Geboortedatum>
    <Geslacht>2</Geslacht>
    <Naam>
      <ijw:Geslachtsnaam>
        <ijw:Achternaam>Vries</ijw:Achternaam>
        <ijw:Voorvoegsel>de</ijw:Voorvoegsel>
      </ijw:Geslachtsnaam>
      <ijw:Voorletters>S</ijw:Voorletters>
    </Naam>"#
    )
}

fn jw305(sender: &str, id: &str, bsn: &str, number: u32, begin: &str) -> String {
    format!(
        r#"{}{}
    <StartProducten>
      <StartProduct>
        <ToewijzingNummer>{number}</ToewijzingNummer>
        <Product>
          <ijw:Categorie>45</ijw:Categorie>
        </Product>
        <ToewijzingIngangsdatum>2022-07-01</ToewijzingIngangsdatum>
        <Begindatum>{begin}</Begindatum>
        <StatusAanlevering>1</StatusAanlevering>
      </StartProduct>
    </StartProducten>
  </Client>
</Bericht>
"#,
        header("438", "jw305", sender, id),
        client(bsn)
    )
}

fn jw307(sender: &str, id: &str, bsn: &str, number: u32, begin: &str, end: &str) -> String {
    format!(
        r#"{}{}
    <StopProducten>
      <StopProduct>
        <ToewijzingNummer>{number}</ToewijzingNummer>
        <Product>
          <ijw:Categorie>45</ijw:Categorie>
        </Product>
        <ToewijzingIngangsdatum>2022-07-01</ToewijzingIngangsdatum>
        <Begindatum>{begin}</Begindatum>
        <RedenBeeindiging>31</RedenBeeindiging>
        <Einddatum>{end}</Einddatum>
        <StatusAanlevering>1</StatusAanlevering>
      </StopProduct>
    </StopProducten>
  </Client>
</Bericht>
"#,
        header("440", "jw307", sender, id),
        client(bsn)
    )
}

fn jw315(sender: &str, id: &str, bsn: &str, reference: &str) -> String {
    format!(
        r#"{}{}
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
        header("446", "jw315", sender, id),
        client(bsn)
    )
}

fn jw317(sender: &str, id: &str, bsn: &str, number: u32, start: &str, end: &str) -> String {
    format!(
        r#"{}
  <Client>
    <Bsn>{bsn}</Bsn>
    <Verzoek>
      <ReferentieAanbieder>VOW-0007</ReferentieAanbieder>
      <RedenVerzoek>2</RedenVerzoek>
      <TeWijzigenProducten>
        <TeWijzigenProduct>
          <ToewijzingNummer>{number}</ToewijzingNummer>
          <GewensteIngangsdatum>{start}</GewensteIngangsdatum>
          <Einddatum>{end}</Einddatum>
        </TeWijzigenProduct>
      </TeWijzigenProducten>
    </Verzoek>
  </Client>
</Bericht>
"#,
        header("486", "jw317", sender, id)
    )
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Bericht xmlns="http://www.istandaarden.nl/ijw/3_2/jw305/schema">&lol3;</Bericht>
"#;

/// Waits until the relay has published every event of the outbox (the snapshots count its rows).
async fn outbox_drained(app: &TestApp) {
    for _ in 0..200 {
        if rz_stack::unpublished(&app.a.pool).await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the outbox was not drained in 10 s");
}

/// Uploads `xml` as provider `agb` (its certificate, its AGB code in the request).
async fn upload(app: &mut TestApp, agb: &str, xml: &str) -> pb::UploadResult {
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

/// The messages for provider `agb`, as it fetches them.
async fn fetch(app: &mut TestApp, agb: &str) -> pb::FetchProviderMessagesResponse {
    app.a
        .provider(agb)
        .fetch_provider_messages(pb::FetchProviderMessagesRequest {
            agb_code: agb.into(),
            municipality: M.into(),
            since: String::new(),
        })
        .await
        .expect("messages fetched")
        .into_inner()
}

/// Each message is valid against its XSD; identifications are at most 12 characters and unique.
fn assert_all_valid(r: &pb::FetchProviderMessagesResponse) {
    let mut ids = HashSet::new();
    for m in &r.messages {
        assert!(m.message_id.len() <= 12, "{}", m.message_id);
        assert!(ids.insert(m.message_id.clone()), "unique {}", m.message_id);
        ist::assert_valid(&m.kind, &m.xml);
    }
}

fn codes(r: &pb::UploadResult) -> Vec<String> {
    r.errors.iter().map(|e| e.return_code.clone()).collect()
}

#[tokio::test]
async fn xml_messages_round_trip_through_the_same_domain() {
    let mut app = spawn_app().await;
    let (b1, b2, b3, b4) = (bsn(1), bsn(2), bsn(3), bsn(4));
    app.decide_youth(
        &b1,
        "2022-06-27",
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b1), 1).await.remove(0);
    assert_eq!(a.agb_code, P1);
    // A client known only by BSN (an import): its 301 cannot be written validly.
    let imported = app
        .import(&b2, P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();

    let fetched = fetch(&mut app, P1).await;
    assert_eq!(fetched.messages.len(), 1, "{:?}", fetched.skipped);
    assert_eq!(fetched.messages[0].kind, "JW301");
    assert!(fetched.messages[0].xml.contains("<Geslacht>2</Geslacht>"));
    assert!(fetched.messages[0].xml.contains("Raadhuisstraat"));
    assert!(fetched.messages[0].xml.contains(&format!(
        "<ToewijzingNummer>{}</ToewijzingNummer>",
        a.number
    )));
    assert_all_valid(&fetched);
    assert_eq!(fetched.skipped.len(), 1);
    assert!(
        fetched.skipped[0].reason.contains("birth date"),
        "{:?}",
        fetched.skipped
    );
    assert!(fetch(&mut app, P2).await.messages.is_empty());

    // --- rejections change nothing ---
    outbox_drained(&app).await;
    let before = app.a.snapshot().await;
    let bad_bsn = jw305(P1, "S1", "111222334", a.number, "2022-07-04");
    let r = upload(&mut app, P1, &bad_bsn).await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["0001"], "{r:?}");
    assert!(
        r.return_message_xml
            .contains("<RetourCode>0001</RetourCode>")
    );
    ist::assert_valid("JW306", &r.return_message_xml);

    let other = jw305(P2, "S2", &b1, a.number, "2022-07-04");
    let r = upload(&mut app, P2, &other).await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["9019"], "{r:?}");
    ist::assert_valid("JW306", &r.return_message_xml);

    let wrong_client = jw305(P1, "S3", &b4, a.number, "2022-07-04");
    let r = upload(&mut app, P1, &wrong_client).await;
    assert_eq!(codes(&r), ["9019"], "{r:?}");

    let early = jw305(P1, "S4", &b1, a.number, "2022-06-30");
    let r = upload(&mut app, P1, &early).await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["9019"], "{r:?}");
    assert!(r.errors[0].rule.contains("start."), "{r:?}");

    // Another provider's message (its Afzender) uploaded by P2: not P2's to send, and no return
    // message about it goes to P2.
    let e = app
        .a
        .provider(P2)
        .upload_provider_message(pb::UploadProviderMessageRequest {
            agb_code: P2.into(),
            xml: jw305(P1, "S5", &b1, a.number, "2022-07-04").into_bytes(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("upload.sender_is_caller") && e.message().contains("Afzender"),
        "sender is not the caller: {e:?}"
    );

    let r = upload(&mut app, P1, "<Bericht><Header>").await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["0001"]);
    let r = upload(&mut app, P1, BILLION_LAUGHS).await;
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["0001"]);
    assert!(r.return_message_xml.is_empty());
    assert_eq!(app.a.snapshot().await, before, "rejections change nothing");

    // --- 305: started exactly like ReportStartOfCare ---
    let r = upload(&mut app, P1, &jw305(P1, "S6", &b1, a.number, "2022-07-04")).await;
    assert!(r.accepted, "{r:?}");
    assert_eq!(r.kind, "JW305");
    assert!(
        r.return_message_xml
            .contains("<RetourCode>0200</RetourCode>")
    );
    ist::assert_valid("JW306", &r.return_message_xml);
    let started = app.a.get(a.number).await;
    assert_eq!(started.status(), pb::AssignmentStatus::Started);
    assert_eq!(started.started_on, "2022-07-04");
    let r = upload(&mut app, P1, &jw305(P1, "S7", &b1, a.number, "2022-07-04")).await;
    assert_eq!(codes(&r), ["9074"], "a second start: {r:?}");

    // --- 307: stopped exactly like ReportStopOfCare ---
    let r = upload(
        &mut app,
        P1,
        &jw307(P1, "E1", &b1, a.number, "2022-07-04", "2022-09-30"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    ist::assert_valid("JW308", &r.return_message_xml);
    let stopped = app.a.get(a.number).await;
    assert_eq!(stopped.status(), pb::AssignmentStatus::Stopped);
    assert_eq!(stopped.stopped_on, "2022-09-30");
    assert_eq!(stopped.end_reason, "31");
    // A stop on an assignment whose care never started.
    let r = upload(
        &mut app,
        P1,
        &jw307(P1, "E2", &b2, imported.number, "2022-07-04", "2022-09-30"),
    )
    .await;
    assert_eq!(codes(&r), ["9069"], "{r:?}");

    // --- 315: a request stored exactly like RequestAssignment ---
    let requests = app.a.count("provider_requests").await;
    let r = upload(&mut app, P1, &jw315(P1, "V1", &b3, "REF-0042")).await;
    assert!(r.accepted, "{r:?}");
    ist::assert_valid("JW316", &r.return_message_xml);
    assert_eq!(app.a.count("provider_requests").await, requests + 1);
    let (id, status, agb): (uuid::Uuid, String, String) = sqlx::query_as(
        "SELECT id, status, agb_code FROM provider_requests WHERE client_key = $1 AND kind = 'assignment'",
    )
    .bind(key_of(&b3))
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), agb.as_str()), ("open", P1));
    // The same message again: its Identificatie was used before (TR056, 9056), nothing new.
    let r = upload(&mut app, P1, &jw315(P1, "V1", &b3, "REF-0042")).await;
    assert!(
        !r.accepted,
        "TR056: an identical 315 again is not accepted: {r:?}"
    );
    assert_eq!(codes(&r), ["9056"], "TR056: {r:?}");
    ist::assert_valid("JW316", &r.return_message_xml);
    assert_eq!(app.a.count("provider_requests").await, requests + 1);
    // Another message for the same client and subsegment while the first is open.
    let r = upload(&mut app, P1, &jw315(P1, "V2", &b3, "REF-0043")).await;
    assert_eq!(codes(&r), ["9374"], "{r:?}");

    // Refused by the municipality: the provider receives a JW319 quoting its reference.
    app.a
        .municipality()
        .answer_request(pb::AnswerRequestRequest {
            request_id: id.to_string(),
            grant: false,
            refusal_reason: "3".into(),
            date: "2022-06-28".into(),
        })
        .await
        .unwrap();

    // --- 317: a change request stored exactly like RequestChange ---
    app.decide_youth(
        &b4,
        "2022-06-27",
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    let b = app.a.wait_for(&key_of(&b4), 1).await.remove(0);
    let r = upload(
        &mut app,
        P1,
        &jw317(P1, "W1", &b4, b.number, "2022-07-01", "2022-11-30"),
    )
    .await;
    assert!(r.accepted, "{r:?}");
    ist::assert_valid("JW318", &r.return_message_xml);
    let change: (String, Option<chrono::NaiveDate>) = sqlx::query_as(
        "SELECT status, end_date FROM provider_requests WHERE kind = 'change' AND assignment_number = $1",
    )
    .bind(i64::from(b.number))
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(change, ("open".into(), Some(d("2022-11-30"))));
    // Another provider's assignment.
    let r = upload(
        &mut app,
        P2,
        &jw317(P2, "W2", &b4, b.number, "2022-07-01", "2022-11-30"),
    )
    .await;
    assert_eq!(codes(&r), ["9351"], "{r:?}");

    // Everything the provider receives now: 301s and the 319, all valid.
    let fetched = fetch(&mut app, P1).await;
    let kinds: Vec<&str> = fetched.messages.iter().map(|m| m.kind.as_str()).collect();
    assert!(kinds.contains(&"JW319"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "JW301").count() >= 2,
        "{kinds:?}"
    );
    let answer = fetched.messages.iter().find(|m| m.kind == "JW319").unwrap();
    assert!(answer.xml.contains("REF-0042"), "{}", answer.xml);
    assert_all_valid(&fetched);

    // The chain deadlines cover the XML traffic: the started and stopped assignment has none,
    // the issued one (from the 317's decision) and the open change request do.
    let deadlines = app
        .a
        .client
        .list_chain_deadlines(pb::ListChainDeadlinesRequest {
            municipality: M.into(),
            as_of: "2022-06-28".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .deadlines;
    assert!(
        deadlines
            .iter()
            .any(|x| x.kind == "request_answer" && x.assignment_number == b.number),
        "{deadlines:?}"
    );
    assert!(
        !deadlines
            .iter()
            .any(|x| x.assignment_number == a.number && x.kind == "start_of_care")
    );
}

#[tokio::test]
async fn oversized_uploads_are_refused_before_parsing() {
    let app = spawn_app().await;
    let before = app.a.snapshot().await;
    // Just over the standard's limit: read by the gRPC layer, refused by the reader (0001).
    let mut big = jw305(P1, "BIG", &bsn(1), 1, "2022-07-04").into_bytes();
    big.resize(rz_istandaarden::MAX_MESSAGE_BYTES + 1, b' ');
    let r = app
        .a
        .provider(P1)
        .upload_provider_message(pb::UploadProviderMessageRequest {
            agb_code: P1.into(),
            xml: big,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.accepted);
    assert_eq!(codes(&r), ["0001"], "{r:?}");
    // Far over it: refused by the gRPC layer itself.
    let e = app
        .a
        .provider(P1)
        .upload_provider_message(pb::UploadProviderMessageRequest {
            agb_code: P1.into(),
            xml: vec![b' '; 30 * 1024 * 1024],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    assert_eq!(app.a.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_xml_uploads_a_folder_and_writes_the_return_messages() {
    let mut app = spawn_app().await;
    let b1 = bsn(1);
    app.decide_youth(
        &b1,
        "2022-06-27",
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&b1), 1).await.remove(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("import-xml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("b-start.xml"),
        jw305(P1, "F1", &b1, a.number, "2022-07-04"),
    )
    .unwrap();
    std::fs::write(
        dir.join("a-early.xml"),
        jw305(P1, "F2", &b1, a.number, "2022-06-01"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a message").unwrap();
    let (endpoint, d2) = (app.a.endpoint.clone(), dir.clone());
    // The provider's system calls with the provider's certificate (`provider-<AGB>` of the PKI).
    let pki = app.a.stack.pki().dir().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_assignment"))
            .args(["import-xml", "--endpoint", &endpoint, "--agb", P1, "--pki"])
            .arg(&pki)
            .arg(&d2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 files: 1 accepted, 1 with rejected records, 0 failed"),
        "{stdout}"
    );
    let ok = std::fs::read_to_string(dir.join("b-start.return.xml")).unwrap();
    ist::assert_valid("JW306", &ok);
    assert!(ok.contains("<RetourCode>0200</RetourCode>"));
    let early = std::fs::read_to_string(dir.join("a-early.return.xml")).unwrap();
    assert!(early.contains("<RetourCode>9019</RetourCode>"), "{early}");
    assert_eq!(
        app.a.get(a.number).await.status(),
        pb::AssignmentStatus::Started
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_xml_names_a_file_over_the_size_limit_instead_of_a_transport_error() {
    let app = spawn_app().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("import-xml-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut big = jw305(P1, "BIG", &bsn(1), 1, "2022-07-04").into_bytes();
    big.resize(rz_istandaarden::MAX_MESSAGE_BYTES + 1, b' ');
    std::fs::write(dir.join("big.xml"), &big).unwrap();
    let mut huge = big;
    huge.resize(40 * 1024 * 1024, b' ');
    std::fs::write(dir.join("huge.xml"), &huge).unwrap();
    let (endpoint, d2) = (app.a.endpoint.clone(), dir.clone());
    let pki = app.a.stack.pki().dir().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_assignment"))
            .args(["import-xml", "--endpoint", &endpoint, "--agb", P1, "--pki"])
            .arg(&pki)
            .arg(&d2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(
        stdout.contains("2 files: 0 accepted, 0 with rejected records, 2 failed"),
        "{stdout}"
    );
    for (file, len) in [("big.xml", 26_214_401), ("huge.xml", 41_943_040)] {
        assert!(
            stderr.contains(&format!(
                "{file}: {len} bytes is over the standard's limit of 26214400 bytes (25 MiB)"
            )),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("h2 protocol error"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
