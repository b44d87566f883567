//! Provider requests (315 verzoek om toewijzing, 317 verzoek om wijziging), the municipality's
//! answer (319), and the chain's deadlines with concrete dates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;

fn gp() -> Option<pb::Referrer> {
    Some(pb::Referrer {
        r#type: "02".into(),
        name: "Huisartsenpraktijk De Linde".into(),
        agb_code: "01012345".into(),
    })
}

fn request(
    key: &str,
    agb: &str,
    bsn: &str,
    start: &str,
    end: &str,
) -> pb::RequestAssignmentRequest {
    pb::RequestAssignmentRequest {
        idempotency_key: key.into(),
        agb_code: agb.into(),
        municipality: M.into(),
        bsn: bsn.into(),
        subsegment_code: "IAJ-ON".into(),
        product_code: String::new(),
        period: period(start, end),
        size: None,
        budget_cents: 0,
        referrer: gp(),
    }
}

fn answer(id: &str, grant: bool, reason: &str, date: &str) -> pb::AnswerRequestRequest {
    pb::AnswerRequestRequest {
        request_id: id.into(),
        grant,
        refusal_reason: reason.into(),
        date: date.into(),
    }
}

fn change(key: &str, agb: &str, number: u32) -> pb::RequestChangeRequest {
    pb::RequestChangeRequest {
        idempotency_key: key.into(),
        agb_code: agb.into(),
        municipality: M.into(),
        assignment_number: number,
        reason: "2".into(),
        new_end: String::new(),
        size: None,
        budget_cents: 0,
    }
}

#[tokio::test]
async fn a_request_for_an_assignment_is_checked_granted_and_answered_once() {
    let mut app = spawn_app().await;
    // The provider asks, the municipality answers: each with its own certificate.
    let (mut c, mut m) = (app.a.provider(P1), app.a.municipality());
    let client = bsn(1);
    let before = app.a.snapshot().await;

    // Every malformed field at once.
    let mut bad = request("", P1, "123456789", "2022-07-01", "2022-06-30");
    bad.referrer = None;
    bad.subsegment_code = "IAJ-XX".into();
    let e = c.request_assignment(bad).await.unwrap_err();
    for field in [
        "idempotency_key",
        "bsn",
        "referrer.type",
        "period.end",
        "subsegment_code",
    ] {
        assert_invalid(&e, field);
    }
    let mut bad = request("k0", P1, &client, "2022-07-01", "2022-12-31");
    bad.referrer.as_mut().unwrap().r#type = "07".into();
    bad.size = Some(pb::Size {
        volume: 3,
        unit: "04".into(),
        frequency: "2".into(),
    });
    let e = c.request_assignment(bad).await.unwrap_err();
    assert_invalid(&e, "referrer.type");
    assert_invalid(&e, "size.volume");
    // The requesting provider must be contracted on the period's start.
    for agb in [NONE, OLD] {
        let e = app
            .a
            .provider(agb)
            .request_assignment(request("k1", agb, &client, "2022-07-01", "2022-12-31"))
            .await
            .unwrap_err();
        assert_rule(&e, "request.provider_contracted");
    }
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused requests change nothing"
    );

    // Received on Monday 2022-06-27: the answer is due five working days later.
    let r = c
        .request_assignment(request("k1", P1, &client, "2022-07-01", "2022-12-31"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status(), pb::RequestStatus::Open);
    assert_eq!(r.kind, "assignment");
    assert_eq!(
        (r.received_on.as_str(), r.answer_due.as_str()),
        ("2022-06-27", "2022-07-04")
    );
    assert_eq!(r.client_key, key_of(&client));
    assert_eq!(r.referrer, gp());

    // Idempotent: the same request under the same key; another request under it is refused.
    let again = c
        .request_assignment(request("k1", P1, &client, "2022-07-01", "2022-12-31"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, r.id);
    let e = c
        .request_assignment(request("k1", P1, &client, "2022-08-01", "2022-12-31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    // One open request per client and subsegment, whoever asks.
    let before = app.a.snapshot().await;
    let e = app
        .a
        .provider(P2)
        .request_assignment(request("k2", P2, &client, "2022-07-01", "2022-12-31"))
        .await
        .unwrap_err();
    assert_rule(&e, "request.one_open");
    assert_eq!(app.a.snapshot().await, before);

    // Granted: the assignment is for the requesting provider.
    let granted = m
        .answer_request(answer(&r.id, true, "", "2022-06-29"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.status(), pb::RequestStatus::Granted);
    assert_eq!(granted.answered_on, "2022-06-29");
    let a = app.a.get(granted.resulting_assignment_number).await;
    assert_eq!(a.agb_code, P1);
    assert_eq!(a.status(), pb::AssignmentStatus::Issued);
    assert_eq!(a.assigned_on, "2022-06-29");
    assert_eq!(a.client_key, key_of(&client));
    assert!(
        a.choice_reason.starts_with(
            "requested by provider 03010001 (verzoek om toewijzing) after a referral by huisarts"
        ),
        "{}",
        a.choice_reason
    );
    // Access does not know this client: the message carries the BSN the provider sent.
    let msgs = app.a.messages_to(P1).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].1.client.as_ref().unwrap().bsn, client);

    // Answered once.
    let before = app.a.snapshot().await;
    let e = m
        .answer_request(answer(&r.id, false, "3", "2022-06-30"))
        .await
        .unwrap_err();
    assert_rule(&e, "request.answered_once");
    assert_eq!(app.a.snapshot().await, before);

    // The answer went to the requesting provider.
    let answers: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, nats_subject FROM outbox WHERE event_type = 'nl.regiozorg.assignment.request_answered.v1'",
    )
    .fetch_all(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].1, app.a.subject(Some(P1), "request_answered"));
    let id = answers[0].0.to_string();
    let payloads = app
        .a
        .published(&answers[0].1, std::iter::once(id.as_str()))
        .await;
    let ra: pb::RequestAnswered = prost::Message::decode(payloads[&id].as_slice()).unwrap();
    assert_eq!(ra.request.unwrap().resulting_assignment_number, a.number);
}

#[tokio::test]
async fn a_refusal_needs_a_reason_and_a_grant_never_stacks() {
    let mut app = spawn_app().await;
    let (mut c, mut m) = (app.a.provider(P1), app.a.municipality());
    let client = bsn(2);
    app.import(&client, P2, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    let r = c
        .request_assignment(request("k", P1, &client, "2022-10-01", "2023-03-31"))
        .await
        .unwrap()
        .into_inner();
    let before = app.a.snapshot().await;
    let e = m
        .answer_request(answer(&r.id, true, "", "2022-06-28"))
        .await
        .unwrap_err();
    assert_rule(&e, "assignment.no_stacking");
    for reason in ["", "99"] {
        let e = m
            .answer_request(answer(&r.id, false, reason, "2022-06-28"))
            .await
            .unwrap_err();
        assert_invalid(&e, "refusal_reason");
    }
    let e = m
        .answer_request(answer(&r.id, true, "6", "2022-06-28"))
        .await
        .unwrap_err();
    assert_invalid(&e, "refusal_reason");
    let e = m
        .answer_request(answer("not-a-uuid", true, "", "2022-06-28"))
        .await
        .unwrap_err();
    assert_invalid(&e, "request_id");
    let e = m
        .answer_request(answer(&uuid::Uuid::now_v7().to_string(), true, "", ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(app.a.snapshot().await, before);

    let refused = m
        .answer_request(answer(&r.id, false, "6", "2022-06-28"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refused.status(), pb::RequestStatus::Refused);
    assert_eq!(refused.refusal_reason, "6");
    assert_eq!(refused.resulting_assignment_number, 0);
    assert_eq!(app.a.of_client(&key_of(&client)).await.len(), 1);
    // No longer open: the provider may ask again.
    let again = c
        .request_assignment(request("k2", P1, &client, "2023-01-01", "2023-03-31"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status(), pb::RequestStatus::Open);
}

#[tokio::test]
async fn a_change_request_for_an_assignment_of_the_provider() {
    let mut app = spawn_app().await;
    // The operator imports; each provider asks for its own assignment; the municipality answers.
    let mut c = app.a.client.clone();
    let (mut pv1, mut p1, mut m) = (
        app.a.provider(PV1),
        app.a.provider(P1),
        app.a.municipality(),
    );
    let mut pv = import_request(&bsn(3), PV1, "2022-07-01", "2023-06-30", true);
    pv.subsegment_code = "WIO-PV".into();
    pv.size = Some(pb::Size {
        volume: 3,
        unit: "04".into(),
        frequency: "2".into(),
    });
    // An inspanningsgericht assignment names one of its subsegment's products (the 301 does).
    let err = c.import_assignment(pv.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("product_code") && err.message().contains("PV01, PV02"),
        "{err:?}"
    );
    pv.product_code = "PV01".into();
    let pv = c.import_assignment(pv).await.unwrap().into_inner();
    assert_eq!(pv.product_code, "PV01");
    let iaj = app
        .import(&bsn(4), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    let before = app.a.snapshot().await;

    // Another provider's assignment (its own AGB code in the request): not its to change.
    let e = app
        .a
        .provider(PV2)
        .request_change(pb::RequestChangeRequest {
            new_end: "2023-12-31".into(),
            ..change("c1", PV2, pv.number)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = pv1
        .request_change(pb::RequestChangeRequest {
            reason: "9".into(),
            new_end: "2023-12-31".into(),
            ..change("c1", PV1, pv.number)
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "reason");
    let e = pv1
        .request_change(change("c1", PV1, pv.number))
        .await
        .unwrap_err();
    assert_invalid(&e, "new_end");
    let e = p1
        .request_change(pb::RequestChangeRequest {
            size: Some(pb::Size {
                volume: 2,
                unit: "04".into(),
                frequency: "2".into(),
            }),
            ..change("c1", P1, iaj.number)
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "size.volume");
    let e = pv1
        .request_change(pb::RequestChangeRequest {
            new_end: "2022-06-01".into(),
            ..change("c1", PV1, pv.number)
        })
        .await
        .unwrap_err();
    assert_rule(&e, "change.end_not_before_start");
    assert_eq!(app.a.snapshot().await, before);

    let more = pb::RequestChangeRequest {
        new_end: "2023-12-31".into(),
        size: Some(pb::Size {
            volume: 5,
            unit: "04".into(),
            frequency: "2".into(),
        }),
        ..change("c1", PV1, pv.number)
    };
    let r = pv1.request_change(more.clone()).await.unwrap().into_inner();
    assert_eq!(
        (r.kind.as_str(), r.assignment_number),
        ("change", pv.number)
    );
    assert_eq!(r.answer_due, "2022-07-04");
    let e = pv1
        .request_change(pb::RequestChangeRequest {
            idempotency_key: "c2".into(),
            ..more
        })
        .await
        .unwrap_err();
    assert_rule(&e, "request.one_open");

    let granted = m
        .answer_request(answer(&r.id, true, "", "2022-06-29"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.resulting_assignment_number, pv.number);
    let changed = app.a.get(pv.number).await;
    assert_eq!(changed.period, period("2022-07-01", "2023-12-31"));
    assert_eq!(changed.size.unwrap().volume, 5);
    assert_eq!(changed.change_reason, "12", "geïnitieerd door de aanbieder");
    let msgs = app.a.messages_to(PV1).await;
    assert_eq!(msgs.last().unwrap().0, "nl.regiozorg.assignment.changed.v1");

    // Not on an assignment that is no longer active.
    m.withdraw_assignment(pb::WithdrawAssignmentRequest {
        municipality: M.into(),
        assignment_number: iaj.number,
        date: "2022-06-27".into(),
        reason: "14".into(),
    })
    .await
    .unwrap();
    let e = p1
        .request_change(pb::RequestChangeRequest {
            new_end: "2022-11-30".into(),
            ..change("c3", P1, iaj.number)
        })
        .await
        .unwrap_err();
    assert_rule(&e, "change.assignment_active");
}

#[tokio::test]
async fn chain_deadlines_with_concrete_dates() {
    let mut app = spawn_app().await;
    // The region's overview of the chain's deadlines, as the operator reads it.
    let mut c = app.a.client.clone();
    // Friday 2022-07-01 + 5 working days = Friday 2022-07-08.
    let july = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    // Started: no deadline.
    app.import(&bsn(2), P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    // Friday 2022-12-23: Boxing Day (Monday 26th) does not count -> Monday 2023-01-02.
    let december = app
        .import(&bsn(3), P2, "2022-12-23", "2023-06-30", false)
        .await
        .unwrap();
    // A request received on Thursday 2022-12-22 -> due Friday 2022-12-30.
    app.a.clock.set(d("2022-12-22"));
    let r = app
        .a
        .provider(P3)
        .request_assignment(request("k", P3, &bsn(4), "2023-01-01", "2023-06-30"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.answer_due, "2022-12-30");

    let list = |as_of: &str, m: &str| pb::ListChainDeadlinesRequest {
        municipality: m.into(),
        as_of: as_of.into(),
    };
    let got = c
        .list_chain_deadlines(list("2022-12-30", ""))
        .await
        .unwrap()
        .into_inner()
        .deadlines;
    let seen: Vec<(&str, &str, u32, &str, bool)> = got
        .iter()
        .map(|x| {
            (
                x.kind.as_str(),
                x.agb_code.as_str(),
                x.assignment_number,
                x.due.as_str(),
                x.late,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("start_of_care", P1, july.number, "2022-07-08", true),
            ("request_answer", P3, 0, "2022-12-30", false),
            ("start_of_care", P2, december.number, "2023-01-02", false),
        ]
    );
    assert_eq!(got[1].request_id, r.id);
    let late: Vec<bool> = c
        .list_chain_deadlines(list("2023-01-03", M))
        .await
        .unwrap()
        .into_inner()
        .deadlines
        .iter()
        .map(|x| x.late)
        .collect();
    assert_eq!(late, [true, true, true]);
    assert!(
        c.list_chain_deadlines(list("2023-01-03", "0197"))
            .await
            .unwrap()
            .into_inner()
            .deadlines
            .is_empty()
    );
    let e = c.list_chain_deadlines(list("", "")).await.unwrap_err();
    assert_invalid(&e, "as_of");
}

/// The request names its municipality; only that municipality answers it. Another one is
/// PERMISSION_DENIED (the handler's check: the call names the request by its id only), and so is
/// a provider answering, or asking in another provider's name (the server layer). Nothing
/// changes.
#[tokio::test]
async fn only_the_requests_municipality_answers_it() {
    let app = spawn_app().await;
    let client = bsn(5);
    let r = app
        .a
        .provider(P1)
        .request_assignment(request("k", P1, &client, "2022-07-01", "2022-12-31"))
        .await
        .unwrap()
        .into_inner();
    let before = app.a.snapshot().await;

    // Aalten (0197) answering Doetinchem's request, granting or refusing.
    let mut aalten = app.a.as_municipality("0197");
    for (grant, reason) in [(true, ""), (false, "3")] {
        let e = aalten
            .answer_request(answer(&r.id, grant, reason, "2022-06-28"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    }
    // A provider cannot answer at all, not even its own request.
    let e = app
        .a
        .provider(P1)
        .answer_request(answer(&r.id, true, "", "2022-06-28"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // Nor ask in another provider's name.
    let e = app
        .a
        .provider(P2)
        .request_assignment(request("k2", P1, &bsn(6), "2022-07-01", "2022-12-31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused answers change nothing"
    );

    // Doetinchem answers it.
    let granted = app
        .a
        .municipality()
        .answer_request(answer(&r.id, true, "", "2022-06-28"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.status(), pb::RequestStatus::Granted);
}
