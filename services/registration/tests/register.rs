//! The contract register's rules over gRPC, against real PostgreSQL and NATS. Every refused command
//! gets a precise status and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_invalid, assert_rule, spawn_app};
use rz_proto::registration::v1 as pb;

#[tokio::test]
async fn catalogue_lists_the_region() {
    let mut app = spawn_app().await;
    let c = app
        .client
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.region, "Achterhoek");
    assert_eq!(c.municipalities.len(), 8);
    let wio = c
        .lots
        .iter()
        .flat_map(|l| &l.segments)
        .find(|s| s.code == "WIO")
        .unwrap();
    let pv = wio.subsegments.iter().find(|s| s.code == "WIO-PV").unwrap();
    assert_eq!(pv.financing(), rz_proto::types::v1::Financing::Pxq);
    assert_eq!(
        pv.execution_variant(),
        rz_proto::types::v1::ExecutionVariant::Inspanningsgericht
    );
    assert_eq!(pv.product_categories, ["03"]);
    assert!(!wio.municipalities.contains(&"1509".to_string()));
}

#[tokio::test]
async fn providers_consortia_and_subcontractors() {
    let mut app = spawn_app().await;
    app.register("03000001", "Stichting Een").await;
    app.register("03000002", "Stichting Twee").await;
    app.register("03000003", "Zorg Drie BV").await;

    // Idempotent: the same request with the same key returns the same provider.
    let again = app.register("03000001", "Stichting Een").await;
    assert_eq!(again.name, "Stichting Een");
    assert_eq!(app.count("providers").await, 3);

    // A different request under a used key is refused; a second registration of an AGB code too.
    let before = app.snapshot().await;
    let err = app
        .client
        .register_provider(pb::RegisterProviderRequest {
            idempotency_key: "reg-03000001".into(),
            agb_code: "03000001".into(),
            name: "Other name".into(),
            legal_form: "bv".into(),
            kvk_number: "41234567".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    let err = app
        .client
        .register_provider(pb::RegisterProviderRequest {
            idempotency_key: "another".into(),
            agb_code: "03000001".into(),
            name: "Dup".into(),
            legal_form: "bv".into(),
            kvk_number: "41234567".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);

    // Malformed fields are all named at once.
    let err = app
        .client
        .register_provider(pb::RegisterProviderRequest {
            idempotency_key: "k".into(),
            agb_code: "1234567".into(),
            name: " ".into(),
            legal_form: "bv".into(),
            kvk_number: "12ab".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "agb_code");
    assert_invalid(&err, "name");
    assert_invalid(&err, "kvk_number");
    assert_eq!(app.snapshot().await, before);

    let consortium = app
        .client
        .form_consortium(pb::FormConsortiumRequest {
            idempotency_key: "cons".into(),
            agb_code: "03999999".into(),
            name: "Samenwerkingsverband Achterhoek Jong".into(),
            kvk_number: "49999999".into(),
            lead_agb_code: "03000001".into(),
            member_agb_codes: vec!["03000002".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consortium.kind(), pb::ProviderKind::Consortium);
    assert_eq!(consortium.member_agb_codes, ["03000001", "03000002"]);

    let before = app.snapshot().await;
    let err = app
        .client
        .form_consortium(pb::FormConsortiumRequest {
            idempotency_key: "cons2".into(),
            agb_code: "03999998".into(),
            name: "X".into(),
            kvk_number: "49999998".into(),
            lead_agb_code: "03000001".into(),
            member_agb_codes: vec!["03000404".into()],
        })
        .await
        .unwrap_err();
    assert_rule(&err, "consortium.members_registered");
    let err = app
        .client
        .add_subcontractor(pb::AddSubcontractorRequest {
            main_agb_code: "03000001".into(),
            subcontractor_agb_code: "03000003".into(),
            meets_minimum_demands: false,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "subcontractor.minimum_demands");
    assert_eq!(app.snapshot().await, before);

    let main = app
        .client
        .add_subcontractor(pb::AddSubcontractorRequest {
            main_agb_code: "03000001".into(),
            subcontractor_agb_code: "03000003".into(),
            meets_minimum_demands: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(main.subcontractor_agb_codes, ["03000003"]);
    let detail = app
        .client
        .get_provider(pb::GetProviderRequest {
            agb_code: "03000002".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.consortium_agb_codes, ["03999999"]);
    let err = app
        .client
        .get_provider(pb::GetProviderRequest {
            agb_code: "03000404".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn tender_selects_scores_ranks_and_awards_contracts() {
    let mut app = spawn_app().await;
    for i in 1..=5 {
        app.register(&format!("0300001{i}"), &format!("Aanbieder {i}"))
            .await;
    }
    let t = app
        .client
        .open_tender(pb::OpenTenderRequest {
            idempotency_key: "t-iaj".into(),
            name: "Integrale Ambulante Jeugdhulp 2022".into(),
            segment_code: "IAJ".into(),
            selection_quota: 4,
            award_quota: 2,
            contract_start: "2022-07-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for (i, score) in [(1, 60), (2, 90), (3, 80), (4, 70), (5, 10)] {
        let municipalities = if i == 3 {
            vec!["0294".to_string(), "0197".to_string()]
        } else {
            vec![]
        };
        app.client
            .submit_registration(pb::SubmitRegistrationRequest {
                tender_id: t.id.clone(),
                agb_code: format!("0300001{i}"),
                subsegment_codes: vec![],
                municipalities,
                selection_score: score,
            })
            .await
            .unwrap();
    }
    // A municipality outside the segment is refused.
    let err = app
        .client
        .submit_registration(pb::SubmitRegistrationRequest {
            tender_id: t.id.clone(),
            agb_code: "03000015".into(),
            subsegment_codes: vec![],
            municipalities: vec!["1509".into()],
            selection_score: 1,
        })
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

    let err = app
        .client
        .award_tender(pb::AwardTenderRequest {
            tender_id: t.id.clone(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "tender.all_scored");
    for (agb, ok, c, l, s) in [
        ("03000011", true, 9, 9, 9),
        ("03000012", false, 10, 10, 10),
        ("03000013", true, 8, 7, 6),
        ("03000014", true, 5, 5, 5),
    ] {
        app.client
            .score_bid(pb::ScoreBidRequest {
                tender_id: t.id.clone(),
                agb_code: agb.into(),
                meets_minimum_demands: ok,
                cooperation: c,
                lead_time: l,
                scaling_down: s,
            })
            .await
            .unwrap();
    }
    let err = app
        .client
        .score_bid(pb::ScoreBidRequest {
            tender_id: t.id.clone(),
            agb_code: "03000015".into(),
            meets_minimum_demands: true,
            cooperation: 1,
            lead_time: 1,
            scaling_down: 1,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "tender.admitted_only");
    let err = app
        .client
        .score_bid(pb::ScoreBidRequest {
            tender_id: t.id.clone(),
            agb_code: "03000011".into(),
            meets_minimum_demands: true,
            cooperation: 11,
            lead_time: 1,
            scaling_down: 1,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "cooperation");

    let award = app
        .client
        .award_tender(pb::AwardTenderRequest {
            tender_id: t.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
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
    let err = app
        .client
        .award_tender(pb::AwardTenderRequest {
            tender_id: t.id.clone(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "tender.phase");
    assert_eq!(app.snapshot().await, before);

    // The register answers who is contracted where and when.
    let list = |m: &str, d: &str| pb::ListContractedProvidersRequest {
        subsegment_code: "IAJ-ON".into(),
        municipality: m.into(),
        date: d.into(),
    };
    let in_winterswijk = app
        .client
        .list_contracted_providers(list("0294", "2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_winterswijk.providers.len(), 2);
    let in_doetinchem = app
        .client
        .list_contracted_providers(list("0222", "2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_doetinchem.providers.len(), 1);
    let before_start = app
        .client
        .list_contracted_providers(list("0222", "2022-06-30"))
        .await
        .unwrap()
        .into_inner();
    assert!(before_start.providers.is_empty());
    let err = app
        .client
        .list_contracted_providers(list("0363", "2022-07-01"))
        .await
        .unwrap_err();
    assert_invalid(&err, "municipality");
    let err = app
        .client
        .list_contracted_providers(list("0222", "2022-07-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert_invalid(&err, "date");
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
async fn contract_terms_extensions_termination_and_overlap() {
    let mut app = spawn_app().await;
    app.register("41000001", "Wmo Zorg Een").await;
    let c = app
        .conclude("41000001", "WIO", &["WIO-ONT", "WIO-PV"], &[], "2022-07-01")
        .await
        .unwrap();
    assert_eq!(c.municipalities.len(), 7);
    assert_eq!(
        (
            c.initial_end.as_str(),
            c.extensions_left,
            c.latest_possible_end.as_str()
        ),
        ("2025-06-30", 2, "2029-06-30")
    );

    let before = app.snapshot().await;
    // Malformed and unknown input.
    let err = app
        .conclude("4100001", "WIO", &[], &[], "2022-07-01")
        .await
        .unwrap_err();
    assert_invalid(&err, "agb_code");
    let err = app
        .conclude("41000001", "WIO", &["WIO-XX"], &[], "2022-07-01")
        .await
        .unwrap_err();
    assert_invalid(&err, "subsegment_codes[0]");
    let err = app
        .conclude("41000001", "NOPE", &[], &[], "2022-07-01")
        .await
        .unwrap_err();
    assert_invalid(&err, "segment_code");
    let err = app
        .conclude("41000001", "WIO", &[], &["9999"], "2022-07-01")
        .await
        .unwrap_err();
    assert_invalid(&err, "municipalities[0]");
    let err = app
        .conclude("41000001", "WIO", &[], &["1509"], "2022-07-01")
        .await
        .unwrap_err();
    assert_rule(&err, "segment.municipality_takes_part");
    let err = app
        .conclude("41000001", "WIO", &[], &[], "1-7-2022")
        .await
        .unwrap_err();
    assert_invalid(&err, "start");
    let err = app
        .conclude("41000404", "WIO", &[], &[], "2022-07-01")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    // A second overlapping contract for the same subsegment and municipality.
    let err = app
        .conclude("41000001", "WIO", &["WIO-PV"], &["0222"], "2024-01-01")
        .await
        .unwrap_err();
    assert_rule(&err, "contract.no_overlap");
    // End before start.
    let err = app
        .client
        .terminate_contract(pb::TerminateContractRequest {
            contract_id: c.id.clone(),
            end_date: "2022-06-30".into(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "end_date");
    let err = app
        .client
        .terminate_contract(pb::TerminateContractRequest {
            contract_id: c.id.clone(),
            end_date: "2023-01-01".into(),
            reason: "".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "reason");
    // Budgets and tariffs belong to the right financing, municipality and years.
    let err = app
        .client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: c.id.clone(),
            municipality: "1509".into(),
            year: 2023,
            amount_cents: 1,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "budget.municipality_covered");
    let err = app
        .client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: c.id.clone(),
            municipality: "0222".into(),
            year: 2031,
            amount_cents: 1,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "budget.year_within_term");
    let err = app
        .client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: c.id.clone(),
            municipality: "0222".into(),
            year: 2023,
            amount_cents: -5,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "amount_cents");
    let err = app
        .client
        .set_tariff(pb::SetTariffRequest {
            contract_id: c.id.clone(),
            product_code: "TOOLONG".into(),
            unit: "99".into(),
            price_cents: 100,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "product_code");
    assert_invalid(&err, "unit");
    let err = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: "not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "contract_id");
    assert_eq!(
        app.snapshot().await,
        before,
        "refused commands changed something"
    );

    let with_budget = app
        .client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: c.id.clone(),
            municipality: "0222".into(),
            year: 2023,
            amount_cents: 35_000_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        with_budget.budgets,
        [pb::LumpsumBudget {
            municipality: "0222".into(),
            year: 2023,
            amount_cents: 35_000_000
        }]
    );
    let with_tariff = app
        .client
        .set_tariff(pb::SetTariffRequest {
            contract_id: c.id.clone(),
            product_code: "PV01".into(),
            unit: "04".into(),
            price_cents: 6_250,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_tariff.tariffs.len(), 1);

    // Two extensions of two years, then no third.
    let e1 = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e1.period.unwrap().end, "2027-06-30");
    let e2 = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (e2.period.unwrap().end.as_str(), e2.extensions_left),
        ("2029-06-30", 0)
    );
    let err = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: c.id.clone(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "contract.max_extensions");

    // Early termination; afterwards the provider may be contracted again from the next day.
    let t = app
        .client
        .terminate_contract(pb::TerminateContractRequest {
            contract_id: c.id.clone(),
            end_date: "2023-12-31".into(),
            reason: "Kwaliteit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (t.terminated_on.as_str(), t.status()),
        ("2023-12-31", pb::ContractStatus::Terminated)
    );
    let err = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: c.id.clone(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "contract.terminated");
    app.conclude("41000001", "WIO", &["WIO-PV"], &["0222"], "2024-01-01")
        .await
        .unwrap();
    let err = app
        .conclude("41000001", "WIO", &["WIO-PV"], &["0222"], "2023-12-31")
        .await
        .unwrap_err();
    assert_rule(&err, "contract.no_overlap");

    let listed = app
        .client
        .list_contracts(pb::ListContractsRequest {
            agb_code: "41000001".into(),
            active_on: "2024-06-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contracts.len(), 1);
}

#[tokio::test]
async fn concurrent_overlapping_contracts_cannot_both_land() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    client
        .register_provider(pb::RegisterProviderRequest {
            idempotency_key: "p".into(),
            agb_code: "03000077".into(),
            name: "Race".into(),
            legal_form: "bv".into(),
            kvk_number: "41234567".into(),
        })
        .await
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..6 {
        let mut c = client.clone();
        calls.push(tokio::spawn(async move {
            c.conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("race-{i}"),
                agb_code: "03000077".into(),
                segment_code: "GWV".into(),
                subsegment_codes: vec!["GWV-PZ".into()],
                municipalities: vec!["0222".into()],
                start: format!("2022-0{}-01", 1 + i),
            })
            .await
        }));
    }
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_rule(&e, "contract.no_overlap"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.count("contract_coverage").await, 1);
}

#[tokio::test]
async fn an_extension_may_not_run_into_a_later_contract() {
    let mut app = spawn_app().await;
    app.register("03000088", "Verlenging BV").await;
    let old = app
        .conclude("03000088", "GWV", &["GWV-PZ"], &["0222"], "2019-01-01")
        .await
        .unwrap();
    app.conclude("03000088", "GWV", &["GWV-PZ"], &["0222"], "2022-07-01")
        .await
        .unwrap();
    let before = app.snapshot().await;
    let err = app
        .client
        .extend_contract(pb::ExtendContractRequest {
            contract_id: old.id.clone(),
        })
        .await
        .unwrap_err();
    assert_rule(&err, "contract.no_overlap");
    assert_eq!(app.snapshot().await, before);
    // Ending it early stays possible.
    app.client
        .terminate_contract(pb::TerminateContractRequest {
            contract_id: old.id,
            end_date: "2021-06-30".into(),
            reason: "Omzetting".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn budgets_follow_the_financing() {
    let mut app = spawn_app().await;
    app.register("03000099", "Dyslexie Instituut").await;
    app.register("41000099", "Logeerhuis").await;
    let dys = app
        .conclude("03000099", "DYS", &[], &[], "2021-08-01")
        .await
        .unwrap();
    app.client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: dys.id.clone(),
            municipality: "0294".into(),
            year: 2022,
            amount_cents: 12_000_000,
        })
        .await
        .unwrap();
    let log = app
        .conclude("41000099", "WLOG", &[], &[], "2022-07-01")
        .await
        .unwrap();
    let err = app
        .client
        .set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
            contract_id: log.id.clone(),
            municipality: "0294".into(),
            year: 2022,
            amount_cents: 1,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "budget.fixed_sum_only");
    let err = app
        .client
        .set_tariff(pb::SetTariffRequest {
            contract_id: dys.id,
            product_code: "DYS01".into(),
            unit: "04".into(),
            price_cents: 1,
        })
        .await
        .unwrap_err();
    assert_rule(&err, "tariff.pxq_only");
    app.client
        .set_tariff(pb::SetTariffRequest {
            contract_id: log.id,
            product_code: "LOG01".into(),
            unit: "14".into(),
            price_cents: 14_500,
        })
        .await
        .unwrap();
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

    let t = app
        .client
        .open_tender(pb::OpenTenderRequest {
            idempotency_key: "t".into(),
            name: "GWV".into(),
            segment_code: "GWV".into(),
            selection_quota: 3,
            award_quota: 2,
            contract_start: "2022-07-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let submit = |agb: &str| pb::SubmitRegistrationRequest {
        tender_id: t.id.clone(),
        agb_code: agb.into(),
        subsegment_codes: vec![],
        municipalities: vec![],
        selection_score: 50,
    };
    app.client
        .submit_registration(submit("03000299"))
        .await
        .unwrap();
    let err = app
        .client
        .submit_registration(submit("03000202"))
        .await
        .unwrap_err();
    assert_rule(&err, "tender.one_bid_per_party");
    app.client
        .submit_registration(submit("03000203"))
        .await
        .unwrap();
    let err = app
        .client
        .submit_registration(submit("03000203"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
}
