//! Residents: registration with the pseudonymous client key, idempotency, the municipality's own
//! residents only, minors and their representative, and the client block for an assignment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    MUNICIPALITY, SECRET, assert_invalid, assert_invalid_says, assert_rule, bsn, days_from_today,
    resident_request, spawn_app, years_ago,
};
use rz_domain::{Bsn, ClientKey};
use rz_proto::access::v1 as pb;

#[tokio::test]
async fn a_resident_registers_once_with_the_regions_client_key() {
    let mut app = spawn_app().await;
    let b = bsn(1);
    let r = app.register_adult(&b).await;
    let expected = ClientKey::derive(SECRET.as_bytes(), &Bsn::parse(&b).unwrap());
    assert_eq!(r.client_key, expected.as_str());
    assert_eq!(r.bsn, b);
    assert_eq!(r.municipality, MUNICIPALITY);
    assert_eq!(r.family_name, "Jansen");
    assert_eq!(r.address.as_ref().unwrap().postal_code, "7001EW");
    assert!(r.legal_representative.is_none());

    // The same request under the same key returns the stored resident and stores nothing more.
    let before = app.snapshot().await;
    let again = app.register_adult(&b).await;
    assert_eq!(again, r);
    assert_eq!(app.snapshot().await, before);

    // The same BSN under another key is a duplicate; another request under a used key a conflict.
    let mut dup = resident_request(&b, "1970-03-15");
    dup.idempotency_key = "another-key".into();
    let err = app.client.register_resident(dup).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    assert!(
        !err.message().contains(&b),
        "the BSN is not echoed: {}",
        err.message()
    );
    let mut other = resident_request(&bsn(2), "1970-03-15");
    other.idempotency_key = format!("res-{b}");
    let err = app.client.register_resident(other).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.count("residents").await, 1);

    // Registering a resident publishes nothing: residents never leave access.
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn a_resident_of_another_municipality_is_not_ours() {
    let mut app = spawn_app().await;
    let before = app.snapshot().await;
    let mut r = resident_request(&bsn(10), "1970-03-15");
    r.address.as_mut().unwrap().municipality = "0197".into(); // Aalten
    let err = app.client.register_resident(r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("resident.lives_in_municipality"),
        "{}",
        err.message()
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_minor_needs_a_legal_representative() {
    let mut app = spawn_app().await;
    let b = bsn(20);
    let before = app.snapshot().await;
    let err = app
        .client
        .register_resident(resident_request(&b, &years_ago(12)))
        .await
        .unwrap_err();
    assert_rule(&err, "resident.minor_needs_representative");
    // 18 tomorrow is still a minor today.
    let almost = common::today()
        .checked_sub_months(chrono::Months::new(18 * 12))
        .unwrap()
        .succ_opt()
        .unwrap()
        .to_string();
    let err = app
        .client
        .register_resident(resident_request(&bsn(21), &almost))
        .await
        .unwrap_err();
    assert_rule(&err, "resident.minor_needs_representative");
    // Half a representative is a malformed field.
    let mut half = resident_request(&b, &years_ago(12));
    half.legal_representative = Some(pb::LegalRepresentative {
        name: "P. Jansen".into(),
        relation: String::new(),
    });
    let err = app.client.register_resident(half).await.unwrap_err();
    assert_invalid(&err, "legal_representative.relation");
    assert_eq!(app.snapshot().await, before);

    let mut ok = resident_request(&b, &years_ago(12));
    ok.legal_representative = Some(pb::LegalRepresentative {
        name: "P. Jansen".into(),
        relation: "ouder".into(),
    });
    let r = app.client.register_resident(ok).await.unwrap().into_inner();
    assert_eq!(r.legal_representative.unwrap().relation, "ouder");
    // 18 today is an adult.
    app.client
        .register_resident(resident_request(&bsn(22), &years_ago(18)))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_resident_fields_are_named_together() {
    let mut app = spawn_app().await;
    let before = app.snapshot().await;
    let mut r = resident_request("123456789", &days_from_today(1));
    r.idempotency_key = String::new();
    r.family_name = "  ".into();
    {
        let a = r.address.as_mut().unwrap();
        a.postal_code = "7001 EW".into();
        a.municipality = "222".into();
        a.street = String::new();
    }
    let err = app.client.register_resident(r).await.unwrap_err();
    assert_invalid(&err, "idempotency_key");
    assert_invalid_says(&err, "bsn", "11-test");
    assert_invalid(&err, "family_name");
    assert_invalid_says(&err, "birth_date", "future");
    assert_invalid_says(&err, "address.postal_code", "1234AB");
    assert_invalid(&err, "address.municipality");
    assert_invalid(&err, "address.street");

    let mut r = resident_request(&bsn(30), "15-03-1970");
    r.address = None;
    let err = app.client.register_resident(r).await.unwrap_err();
    assert_invalid(&err, "birth_date");
    assert_invalid(&err, "address");
    // Given names are optional.
    let mut r = resident_request(&bsn(30), "1970-03-15");
    r.given_names = String::new();
    assert_eq!(app.snapshot().await, before);
    app.client.register_resident(r).await.unwrap();
}

#[tokio::test]
async fn residents_are_found_by_bsn_or_client_key_and_give_the_client_block() {
    let mut app = spawn_app().await;
    let b = bsn(40);
    let r = app.register_adult(&b).await;
    let find = |bsn: &str, client_key: &str| pb::GetResidentRequest {
        bsn: bsn.into(),
        client_key: client_key.into(),
    };
    for (bsn_, key) in [(b.as_str(), ""), ("", r.client_key.as_str())] {
        let found = app.client.get_resident(find(bsn_, key)).await.unwrap();
        assert_eq!(found.into_inner(), r, "{bsn_:?} {key:?}");
    }
    let unregistered = bsn(41);
    for (bsn_, key, code) in [
        ("", "", tonic::Code::InvalidArgument),
        (
            b.as_str(),
            r.client_key.as_str(),
            tonic::Code::InvalidArgument,
        ),
        (unregistered.as_str(), "", tonic::Code::NotFound),
    ] {
        let err = app.client.get_resident(find(bsn_, key)).await.unwrap_err();
        assert_eq!(err.code(), code);
    }

    let client = app
        .assignment
        .get_client_for_assignment(pb::GetClientForAssignmentRequest {
            client_key: r.client_key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        client,
        pb::AssignmentClient {
            client_key: r.client_key.clone(),
            bsn: b.clone(),
            birth_date: "1970-03-15".into(),
            family_name: "Jansen".into(),
            given_names: "Anna Maria".into(),
            municipality: MUNICIPALITY.into(),
            gender: "2".into(),
            address: Some(pb::Address {
                street: "Raadhuisstraat".into(),
                house_number: "1".into(),
                postal_code: "7001EW".into(),
                city: "Doetinchem".into(),
                municipality: MUNICIPALITY.into(),
            }),
        }
    );
    let unknown = ClientKey::derive(SECRET.as_bytes(), &Bsn::parse(&bsn(42)).unwrap());
    let for_assignment = |client_key: String| pb::GetClientForAssignmentRequest { client_key };
    let err = app
        .assignment
        .get_client_for_assignment(for_assignment(unknown.to_string()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = app
        .assignment
        .get_client_for_assignment(for_assignment(b.clone()))
        .await
        .unwrap_err();
    assert_invalid(&err, "client_key");

    // Many at once: the known keys' blocks, the unknown key left out.
    let second = app
        .client
        .register_resident(resident_request(&bsn(43), "1980-01-02"))
        .await
        .unwrap()
        .into_inner();
    let mut many = app
        .assignment
        .get_clients_for_assignment(pb::GetClientsForAssignmentRequest {
            client_keys: vec![
                r.client_key.clone(),
                unknown.to_string(),
                second.client_key.clone(),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    many.sort_by(|a, b| a.client_key.cmp(&b.client_key));
    let mut expected = vec![client.clone(), {
        let one = app
            .assignment
            .get_client_for_assignment(pb::GetClientForAssignmentRequest {
                client_key: second.client_key.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.bsn, bsn(43));
        one
    }];
    expected.sort_by(|a, b| a.client_key.cmp(&b.client_key));
    assert_eq!(many, expected);
    // A bad key is named by its position; too many keys are refused.
    let err = app
        .assignment
        .get_clients_for_assignment(pb::GetClientsForAssignmentRequest {
            client_keys: vec![r.client_key.clone(), b.clone()],
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "client_keys[1]");
    let err = app
        .assignment
        .get_clients_for_assignment(pb::GetClientsForAssignmentRequest {
            client_keys: vec![r.client_key.clone(); 501],
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "client_keys");
    let none = app
        .assignment
        .get_clients_for_assignment(pb::GetClientsForAssignmentRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(none.clients.is_empty());
}

#[tokio::test]
async fn gender_is_a_cod046_code_and_defaults_to_unknown() {
    let mut app = spawn_app().await;
    let before = app.snapshot().await;
    let mut bad = resident_request(&bsn(30), "1970-03-15");
    bad.gender = "9".into();
    let err = app.client.register_resident(bad).await.unwrap_err();
    assert_invalid(&err, "gender");
    assert_eq!(app.snapshot().await, before);

    let mut none = resident_request(&bsn(31), "1970-03-15");
    none.gender = String::new();
    let r = app
        .client
        .register_resident(none)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.gender, "0");
    let client = app
        .assignment
        .get_client_for_assignment(pb::GetClientForAssignmentRequest {
            client_key: r.client_key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(client.gender, "0");
    assert_eq!(client.address.unwrap().city, "Doetinchem");

    let r = app
        .client
        .register_resident(resident_request(&bsn(32), "1970-03-15"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.gender, "2");
}

#[tokio::test]
async fn identifiers_with_surrounding_spaces_are_refused_not_trimmed() {
    let mut app = spawn_app().await;
    let b = bsn(50);
    let r = app.register_adult(&b).await;
    // A BSN or client key with a space before or after is refused naming the field; nothing is
    // looked up or stored under the trimmed value.
    for (bsn_, key, field) in [
        (format!(" {b}"), String::new(), "bsn"),
        (format!("{b} "), String::new(), "bsn"),
        (String::new(), format!(" {}", r.client_key), "client_key"),
    ] {
        let err = app
            .client
            .get_resident(pb::GetResidentRequest {
                bsn: bsn_.clone(),
                client_key: key.clone(),
            })
            .await
            .unwrap_err();
        assert_invalid(&err, field);
    }
    let other = bsn(51);
    let err = app
        .client
        .register_resident(resident_request(&format!(" {other}"), "1970-03-15"))
        .await
        .unwrap_err();
    assert_invalid(&err, "bsn");
    let err = app
        .client
        .get_resident(pb::GetResidentRequest {
            bsn: other.clone(),
            client_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}
