//! The catalogue, providers, consortia and subcontractors.

use crate::common::{assert_invalid, assert_rule, provider, spawn_app};
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
    for (key, name) in [("reg-03000001", "Other name"), ("another", "Dup")] {
        let err = app
            .register_as(key, "03000001", name, "bv")
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{key}");
    }

    // Malformed fields are all named at once.
    let err = app
        .client
        .register_provider(pb::RegisterProviderRequest {
            kvk_number: "12ab".into(),
            ..provider("k", "1234567", " ", "bv")
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
    let subcontractor = |meets_minimum_demands| pb::AddSubcontractorRequest {
        main_agb_code: "03000001".into(),
        subcontractor_agb_code: "03000003".into(),
        meets_minimum_demands,
    };
    let err = app
        .client
        .add_subcontractor(subcontractor(false))
        .await
        .unwrap_err();
    assert_rule(&err, "subcontractor.minimum_demands");
    assert_eq!(app.snapshot().await, before);

    let main = app
        .client
        .add_subcontractor(subcontractor(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(main.subcontractor_agb_codes, ["03000003"]);
    let get = |agb: &str| pb::GetProviderRequest {
        agb_code: agb.into(),
    };
    let detail = app
        .client
        .get_provider(get("03000002"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.consortium_agb_codes, ["03999999"]);
    let err = app.client.get_provider(get("03000404")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
