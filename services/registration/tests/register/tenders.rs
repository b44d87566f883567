//! Tenders: selection, scoring, ranking and the award; one bid per party, consortia not nested.

use crate::common::{assert_invalid, assert_rule, spawn_app};
use rz_proto::registration::v1 as pb;
use tonic_types::StatusExt;

#[tokio::test]
async fn tender_selects_scores_ranks_and_awards_contracts() {
    let mut app = spawn_app().await;
    for i in 1..=5 {
        app.register(&format!("0300001{i}"), &format!("Aanbieder {i}"))
            .await;
    }
    let t = app
        .open_tender("t-iaj", "Integrale Ambulante Jeugdhulp 2022", "IAJ", (4, 2))
        .await;
    let submit =
        |agb: &str, municipalities: &[&str], selection_score| pb::SubmitRegistrationRequest {
            tender_id: t.id.clone(),
            agb_code: agb.into(),
            subsegment_codes: vec![],
            municipalities: municipalities.iter().map(|m| m.to_string()).collect(),
            selection_score,
        };
    for (i, score) in [(1, 60), (2, 90), (3, 80), (4, 70), (5, 10)] {
        let municipalities: &[&str] = if i == 3 { &["0294", "0197"] } else { &[] };
        let agb = format!("0300001{i}");
        app.provider(&agb)
            .submit_registration(submit(&agb, municipalities, score))
            .await
            .unwrap();
    }
    // A municipality outside the segment is refused.
    let err = app
        .provider("03000015")
        .submit_registration(submit("03000015", &["1509"], 1))
        .await
        .unwrap_err();
    assert_rule(&err, "segment.municipality_takes_part");

    let t = app
        .client
        .select_registrations(pb::SelectRegistrationsRequest {
            tender_id: t.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let admitted: Vec<_> = t
        .registrations
        .iter()
        .filter(|r| r.status() == pb::RegistrationStatus::Admitted)
        .map(|r| r.agb_code.clone())
        .collect();
    assert_eq!(admitted, ["03000011", "03000012", "03000013", "03000014"]);

    let err = app.award(&t.id).await.unwrap_err();
    assert_rule(&err, "tender.all_scored");
    for (agb, ok, scores) in [
        ("03000011", true, [9, 9, 9]),
        ("03000012", false, [10, 10, 10]),
        ("03000013", true, [8, 7, 6]),
        ("03000014", true, [5, 5, 5]),
    ] {
        app.score(&t.id, agb, ok, scores).await.unwrap();
    }
    let err = app
        .score(&t.id, "03000015", true, [1, 1, 1])
        .await
        .unwrap_err();
    assert_rule(&err, "tender.admitted_only");
    let err = app
        .score(&t.id, "03000011", true, [11, 1, 1])
        .await
        .unwrap_err();
    assert_invalid(&err, "cooperation");

    let award = app.award(&t.id).await.unwrap();
    let winners: Vec<_> = award.contracts.iter().map(|c| c.agb_code.clone()).collect();
    assert_eq!(winners, ["03000011", "03000013"]);
    let local = &award.contracts[1];
    assert_eq!(local.municipalities, ["0294", "0197"]);
    assert_eq!(local.subsegment_codes.len(), 4);
    assert_eq!(local.period.as_ref().unwrap().end, "2025-06-30");
    let status = |agb: &str| {
        award
            .tender
            .as_ref()
            .unwrap()
            .registrations
            .iter()
            .find(|r| r.agb_code == agb)
            .unwrap()
            .status()
    };
    assert_eq!(status("03000012"), pb::RegistrationStatus::Rejected);
    assert_eq!(status("03000014"), pb::RegistrationStatus::NotAwarded);
    assert_eq!(status("03000015"), pb::RegistrationStatus::NotAdmitted);

    // Awarding twice is refused and creates nothing.
    let before = app.snapshot().await;
    let err = app.award(&t.id).await.unwrap_err();
    assert_rule(&err, "tender.phase");
    assert_eq!(app.snapshot().await, before);

    // The register answers who is contracted where and when.
    let list = |m: &str, d: &str| pb::ListContractedProvidersRequest {
        subsegment_code: "IAJ-ON".into(),
        municipality: m.into(),
        date: d.into(),
    };
    for (municipality, date, providers) in [
        ("0294", "2022-07-01", 2), // Winterswijk
        ("0222", "2022-07-01", 1), // Doetinchem
        ("0222", "2022-06-30", 0), // before the start
    ] {
        let listed = app
            .client
            .list_contracted_providers(list(municipality, date))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.providers.len(), providers, "{municipality} {date}");
    }
    for (municipality, date, field) in [
        ("0363", "2022-07-01", "municipality"),
        ("0222", "2022-07-01T00:00:00Z", "date"),
    ] {
        let err = app
            .client
            .list_contracted_providers(list(municipality, date))
            .await
            .unwrap_err();
        assert_invalid(&err, field);
    }
    let check = app
        .client
        .check_contracted(pb::CheckContractedRequest {
            agb_code: "03000013".into(),
            subsegment_code: "IAJ-BH".into(),
            municipality: "0222".into(),
            date: "2023-01-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!check.contracted);
}

#[tokio::test]
async fn a_party_bids_once_and_consortia_are_not_nested() {
    let mut app = spawn_app().await;
    for agb in ["03000201", "03000202", "03000203"] {
        app.register(agb, "Lid").await;
    }
    let form = |agb: &str, members: Vec<String>| pb::FormConsortiumRequest {
        idempotency_key: format!("k-{agb}"),
        agb_code: agb.into(),
        name: "Consortium".into(),
        kvk_number: "41234567".into(),
        lead_agb_code: "03000201".into(),
        member_agb_codes: members,
    };
    app.client
        .form_consortium(form("03000299", vec!["03000202".into()]))
        .await
        .unwrap();
    let err = app
        .client
        .form_consortium(form("03000298", vec!["03000299".into()]))
        .await
        .unwrap_err();
    assert_rule(&err, "consortium.members_are_organisations");

    let t = app.open_tender("t", "GWV", "GWV", (3, 2)).await;
    let submit = |agb: &str| pb::SubmitRegistrationRequest {
        tender_id: t.id.clone(),
        agb_code: agb.into(),
        subsegment_codes: vec![],
        municipalities: vec![],
        selection_score: 50,
    };
    app.provider("03000299")
        .submit_registration(submit("03000299"))
        .await
        .unwrap();
    let err = app
        .provider("03000202")
        .submit_registration(submit("03000202"))
        .await
        .unwrap_err();
    assert_rule(&err, "tender.one_bid_per_party");
    app.provider("03000203")
        .submit_registration(submit("03000203"))
        .await
        .unwrap();
    let err = app
        .provider("03000203")
        .submit_registration(submit("03000203"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
}

#[tokio::test]
async fn a_tender_whose_contracts_start_over_a_year_ago_is_refused() {
    let mut app = spawn_app().await;
    let before = app.snapshot().await;
    let err = app
        .client
        .open_tender(pb::OpenTenderRequest {
            idempotency_key: "t-old".into(),
            name: "Terugwerkende kracht".into(),
            segment_code: "IAJ".into(),
            selection_quota: 3,
            award_quota: 2,
            // The tests' today is 2022-07-01: a year back is 2021-07-01.
            contract_start: "2021-06-30".into(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "tender.contract_start_recent");
    let failure = err.get_details_precondition_failure().unwrap();
    assert_eq!(failure.violations[0].subject, "contract_start");
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused tender changed something"
    );
}
