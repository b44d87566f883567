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
