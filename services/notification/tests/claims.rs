//! The delivery queue on its own (no worker running): claims skip each other, a lease that
//! expires hands the delivery to another worker, and only the current claim records an outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use notification::store::{self, NewDelivery, SubscriptionRow};
use uuid::Uuid;

async fn pool() -> sqlx::PgPool {
    rz_stack::migrated_pool(store::MIGRATIONS).await
}

#[tokio::test]
async fn claims_skip_each_other_and_an_expired_lease_moves_the_delivery() {
    let pool = pool().await;
    let sub = SubscriptionRow {
        id: Uuid::now_v7(),
        agb_code: "12345678".parse().unwrap(),
        url: "http://127.0.0.1:9/".into(),
        event_types: vec![],
        municipalities: vec![],
        segments: vec![],
        created_at: chrono::Utc::now(),
    };
    // Never opened here: the queue does not look into secrets.
    let sealed = notification::secrets::Sealed {
        key_id: "test".into(),
        bytes: vec![0; 28],
    };
    // The deliveries' bodies are sealed with it (and opened when claimed).
    let keys =
        notification::secrets::Keyring::from_keys("k1", &[("k1".into(), [7u8; 32])]).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    store::insert_subscription(&mut conn, &sub, &sealed)
        .await
        .unwrap();
    for _ in 0..3 {
        store::insert_delivery(
            &mut conn,
            &keys,
            &NewDelivery {
                subscription_id: sub.id,
                agb_code: "12345678",
                event_id: Uuid::now_v7(),
                event_type: "t",
                event_subject: "s",
                body: "{}",
            },
        )
        .await
        .unwrap();
    }
    // Two workers at once: disjoint claims that together cover the queue.
    let (a, b) = tokio::join!(
        store::claim_due(&pool, &keys, 2, 60_000),
        store::claim_due(&pool, &keys, 2, 60_000)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 3, "{a:?} {b:?}");
    assert!(a.iter().all(|x| b.iter().all(|y| x.id != y.id)));
    assert!(
        store::claim_due(&pool, &keys, 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );

    // A worker that claimed with a short lease and died: the delivery is taken over, and the
    // late outcome of the first claim is ignored.
    sqlx::query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let first = store::claim_due(&pool, &keys, 1, 30)
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let second = store::claim_due(&pool, &keys, 3, 60_000).await.unwrap();
    let again = second
        .iter()
        .find(|d| d.id == first.id)
        .expect("taken over");
    assert_ne!(again.claim, first.claim);
    assert_eq!(again.first_attempt_at, first.first_attempt_at);
    assert!(
        !store::mark_delivered(&pool, first.id, first.claim)
            .await
            .unwrap()
    );
    assert!(
        store::mark_delivered(&pool, again.id, again.claim)
            .await
            .unwrap()
    );
    let d = store::delivery(&pool, first.id).await.unwrap().unwrap();
    assert_eq!(d.status, "delivered");
    assert_eq!(d.attempts, 1);
}
