//! Order tolerance: after a replay an assignment's `started` may arrive before its `issued`, and a
//! contract's older event after its newer one; the read model keeps the latest state per field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, NaiveDate, Utc};
use prost::Message;
use reporting::consumers::{
    AccessHandler, AssignmentHandler, CONTRACT_CHANGED, CONTRACT_CONCLUDED, LIFECYCLE,
    PRODUCT_AMENDED, RegistrationHandler,
};
use reporting::store;
use rz_eventing::{Event, Handler};
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::registration::v1 as reg;
use rz_proto::types::v1 as types;
use rz_testkit::TestEnv;
use sqlx::PgPool;

async fn db() -> PgPool {
    let env = TestEnv::load();
    let url = env.fresh_database().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    rz_platform::db::migrate(&pool, store::MIGRATIONS)
        .await
        .unwrap();
    pool
}

fn event(t: &str, at: DateTime<Utc>, subject: &str, payload: Vec<u8>) -> Event {
    Event {
        id: uuid::Uuid::now_v7(),
        event_type: t.into(),
        source: "test".into(),
        subject: "x".into(),
        time: at,
        nats_subject: subject.into(),
        traceparent: None,
        payload: payload.into(),
    }
}

async fn apply<H: Handler>(pool: &PgPool, h: &H, e: &Event) {
    let mut tx = pool.begin().await.unwrap();
    h.handle(&mut tx, e).await.unwrap();
    tx.commit().await.unwrap();
}

fn assignment(status: asg::AssignmentStatus) -> asg::Assignment {
    asg::Assignment {
        number: 7,
        municipality: "0222".into(),
        client_key: "k".repeat(43),
        agb_code: "03010001".into(),
        law: types::Law::Jeugdwet as i32,
        segment_code: "IAJ".into(),
        subsegment_code: "IAJ-ON".into(),
        period: Some(types::Period {
            start: "2022-07-04".into(),
            end: "2023-01-31".into(),
        }),
        status: status as i32,
        assigned_on: "2022-07-04".into(),
        ..Default::default()
    }
}

fn lifecycle(a: asg::Assignment, change: &str, at: DateTime<Utc>) -> Event {
    event(
        LIFECYCLE,
        at,
        "t.assignment.0222._.lifecycle",
        asg::AssignmentLifecycle {
            assignment: Some(a),
            change: change.into(),
        }
        .encode_to_vec(),
    )
}

#[tokio::test]
async fn an_assignment_keeps_its_latest_state_whatever_the_order() {
    let pool = db().await;
    let t0 = Utc::now();
    let issued = lifecycle(assignment(asg::AssignmentStatus::Issued), "issued", t0);
    let mut started = assignment(asg::AssignmentStatus::Started);
    started.started_on = "2022-07-05".into();
    let started = lifecycle(started, "started", t0 + Duration::seconds(1));
    let mut changed = assignment(asg::AssignmentStatus::Started);
    changed.started_on = "2022-07-05".into();
    changed.replaced_by_number = 9;
    let changed = lifecycle(changed, "changed", t0 + Duration::seconds(2));

    for order in [
        [&issued, &started, &changed],
        [&changed, &started, &issued],
        [&started, &issued, &changed],
    ] {
        sqlx::query("TRUNCATE assignments")
            .execute(&pool)
            .await
            .unwrap();
        for e in order {
            apply(&pool, &AssignmentHandler, e).await;
        }
        // and once more: the same facts again change nothing
        apply(&pool, &AssignmentHandler, &issued).await;
        let mut conn = pool.acquire().await.unwrap();
        let got = store::load_assignments(&mut conn, None, None)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(a.status, "started");
        assert_eq!(
            a.started_on,
            Some(NaiveDate::from_ymd_opt(2022, 7, 5).unwrap())
        );
        assert_eq!(a.replaced_by_number, Some(9));
    }
}

/// The consumer hands a batch to `handle_batch`: one statement per round must leave exactly the
/// rows that applying the events one by one leaves, whatever the order inside the batch.
#[tokio::test]
async fn a_batch_of_assignment_events_merges_as_one_by_one() {
    let pool = db().await;
    let t0 = Utc::now();
    let mut events = Vec::new();
    for n in 1..=5u32 {
        let mut a = assignment(asg::AssignmentStatus::Issued);
        a.number = n;
        let issued = lifecycle(a.clone(), "issued", t0 + Duration::seconds(i64::from(n)));
        a.status = asg::AssignmentStatus::Started as i32;
        a.started_on = format!("2022-07-{:02}", 10 + n);
        let started = lifecycle(
            a.clone(),
            "started",
            t0 + Duration::seconds(10 + i64::from(n)),
        );
        a.replaced_by_number = 100 + n;
        let changed = lifecycle(a, "changed", t0 + Duration::seconds(20 + i64::from(n)));
        // Per assignment a different order: in order, reversed, started first.
        match n % 3 {
            0 => events.extend([issued, started, changed]),
            1 => events.extend([changed, started, issued]),
            _ => events.extend([started, issued, changed]),
        }
    }
    // An event of another type in between is ignored, and an exact repeat merges to nothing new.
    events.insert(
        4,
        event("other.v1", t0, "t.assignment.0222._.other", vec![1, 2]),
    );
    events.push(events[0].clone());

    let mut tx = pool.begin().await.unwrap();
    let refs: Vec<&Event> = events.iter().collect();
    AssignmentHandler
        .handle_batch(&mut tx, &refs)
        .await
        .map_err(|(k, e)| format!("{k}: {e:?}"))
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let batched = store::load_assignments(&mut conn, None, None)
        .await
        .unwrap();

    sqlx::query("TRUNCATE assignments")
        .execute(&pool)
        .await
        .unwrap();
    for e in &events {
        apply(&pool, &AssignmentHandler, e).await;
    }
    let one_by_one = store::load_assignments(&mut conn, None, None)
        .await
        .unwrap();
    assert_eq!(batched.len(), 5);
    assert_eq!(format!("{batched:?}"), format!("{one_by_one:?}"));
    for a in &batched {
        assert_eq!(a.status, "started");
        assert_eq!(a.replaced_by_number, Some(100 + a.number));
    }

    // A lifecycle event that cannot be read is named by its position in the batch.
    let bad = event(
        LIFECYCLE,
        t0,
        "t.assignment.0222._.lifecycle",
        vec![0xff, 0xff],
    );
    let refs: Vec<&Event> = vec![&events[0], &events[1], &bad, &events[2]];
    let mut tx = pool.begin().await.unwrap();
    let err = AssignmentHandler.handle_batch(&mut tx, &refs).await;
    assert!(matches!(err, Err((2, _))), "{err:?}");
}

#[tokio::test]
async fn a_contract_keeps_its_newest_budgets() {
    let pool = db().await;
    let t0 = Utc::now();
    let contract = |budget: i64| reg::Contract {
        id: "c1".into(),
        agb_code: "03010001".into(),
        segment_code: "IAJ".into(),
        subsegment_codes: vec!["IAJ-ON".into()],
        municipalities: vec!["0222".into()],
        period: Some(types::Period {
            start: "2022-07-01".into(),
            end: "2025-06-30".into(),
        }),
        budgets: (budget > 0)
            .then(|| reg::LumpsumBudget {
                municipality: "0222".into(),
                year: 2022,
                amount_cents: budget,
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let concluded = event(
        CONTRACT_CONCLUDED,
        t0,
        "t.registration._.03010001.contract_concluded",
        reg::ContractConcluded {
            contract: Some(contract(0)),
        }
        .encode_to_vec(),
    );
    let budget_set = event(
        CONTRACT_CHANGED,
        t0 + Duration::seconds(1),
        "t.registration._.03010001.contract_changed",
        reg::ContractChanged {
            contract: Some(contract(5_000)),
            change: "budget_set".into(),
        }
        .encode_to_vec(),
    );
    apply(&pool, &RegistrationHandler, &budget_set).await;
    apply(&pool, &RegistrationHandler, &concluded).await;
    let mut conn = pool.acquire().await.unwrap();
    let budgets = store::load_budgets(&mut conn, 2022).await.unwrap();
    assert_eq!(budgets.len(), 1);
    assert_eq!(budgets[0].1.amount_cents, 5_000);
}

fn amended(version: u32, amendment: acc::Amendment, end: &str) -> Event {
    event(
        PRODUCT_AMENDED,
        Utc::now(),
        "t.access.0222._.product_amended",
        acc::ProductAmended {
            product: Some(acc::GrantedProduct {
                id: "p1".into(),
                case_id: "c1".into(),
                segment_code: "WIO".into(),
                subsegment_code: "WIO-PV".into(),
                goal: acc::Goal::FlexibleAmbulant as i32,
                period: Some(types::Period {
                    start: "2022-07-04".into(),
                    end: end.into(),
                }),
                version,
                ..Default::default()
            }),
            amendment: amendment as i32,
            municipality: "0222".into(),
        }
        .encode_to_vec(),
    )
}

async fn product_state(pool: &PgPool) -> (String, Option<NaiveDate>, Option<NaiveDate>) {
    sqlx::query_as(
        "SELECT goal, period_end, scaled_down_to FROM granted_products WHERE product_id = 'p1'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_product_keeps_its_last_early_end_whatever_the_order() {
    let pool = db().await;
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let end_v2 = amended(2, acc::Amendment::End, "2022-11-30");
    let end_v3 = amended(3, acc::Amendment::End, "2022-10-31");
    let extend_v4 = amended(4, acc::Amendment::Extend, "2023-03-31");
    // newest first, as a replay may deliver them
    for e in [&extend_v4, &end_v3, &end_v2] {
        apply(&pool, &AccessHandler, e).await;
    }
    let (goal, end, down) = product_state(&pool).await;
    assert_eq!(goal, "flexible_ambulant");
    assert_eq!(end, Some(d("2023-03-31")), "the newest version's end");
    assert_eq!(down, Some(d("2022-10-31")), "the last END amendment's end");
    // in order: the same state
    let pool = db().await;
    for e in [&end_v2, &end_v3, &extend_v4] {
        apply(&pool, &AccessHandler, e).await;
    }
    assert_eq!(
        product_state(&pool).await,
        (
            "flexible_ambulant".into(),
            Some(d("2023-03-31")),
            Some(d("2022-10-31"))
        )
    );
}

fn decided(case: &str, product: &str, version: u32, end: &str, at: DateTime<Utc>) -> Event {
    event(
        reporting::consumers::DECISION_GRANTED,
        at,
        "t.access.0222._.decision_granted",
        acc::DecisionGranted {
            case: Some(acc::Case {
                id: case.into(),
                client_key: "k".repeat(43),
                law: types::Law::Jeugdwet as i32,
                applied_on: "2022-07-01".into(),
                decided_on: format!("2022-07-{:02}", 1 + version),
                products: vec![acc::GrantedProduct {
                    id: product.into(),
                    case_id: case.into(),
                    segment_code: "WIO".into(),
                    subsegment_code: "WIO-PV".into(),
                    period: Some(types::Period {
                        start: "2022-07-04".into(),
                        end: end.into(),
                    }),
                    version,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            municipality: "0222".into(),
        }
        .encode_to_vec(),
    )
}

async fn access_state(pool: &PgPool) -> String {
    let cases: Vec<(String, String, Option<NaiveDate>)> =
        sqlx::query_as("SELECT case_id, status, decided_on FROM cases ORDER BY case_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let products: Vec<(String, i64, Option<NaiveDate>, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT product_id, version, period_end, scaled_down_to FROM granted_products
         ORDER BY product_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    format!("{cases:?} {products:?}")
}

/// Decisions and amendments in one batch: the batch writes what one by one writes, an amendment
/// taking effect in its place between the decisions.
#[tokio::test]
async fn a_batch_of_access_events_writes_what_one_by_one_writes() {
    let t0 = Utc::now();
    let events = vec![
        decided("c2", "p2", 1, "2023-06-30", t0),
        decided("c1", "p1", 1, "2023-06-30", t0),
        amended(2, acc::Amendment::End, "2022-11-30"),
        // a newer decision event of the same case and product after the amendment
        decided("c1", "p1", 3, "2023-01-31", t0 + Duration::seconds(5)),
        decided("c3", "p3", 1, "2023-06-30", t0),
        // the same event twice in a batch (two rounds)
        decided("c3", "p3", 1, "2023-06-30", t0),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    let batched = db().await;
    let mut tx = batched.begin().await.unwrap();
    AccessHandler
        .handle_batch(&mut tx, &refs)
        .await
        .map_err(|(k, e)| format!("{k}: {e:?}"))
        .unwrap();
    tx.commit().await.unwrap();
    let one_by_one = db().await;
    for e in &events {
        apply(&one_by_one, &AccessHandler, e).await;
    }
    let got = access_state(&batched).await;
    assert_eq!(got, access_state(&one_by_one).await);
    assert!(got.contains("\"p1\", 3"), "{got}");
    assert!(got.contains("\"c3\""), "{got}");

    // A decision that cannot be read is named by its position.
    let bad = event(
        reporting::consumers::DECISION_GRANTED,
        t0,
        "t.access.0222._.decision_granted",
        vec![0xff],
    );
    let refs: Vec<&Event> = vec![&events[0], &bad];
    let mut tx = batched.begin().await.unwrap();
    assert!(matches!(
        AccessHandler.handle_batch(&mut tx, &refs).await,
        Err((1, _))
    ));
}
