//! A webhook subscription's filters name only what exists (issue 14): event types a webhook
//! receives (full CloudEvents type or short name), municipalities of the region, and segment or
//! subsegment codes of the region's catalogue. Anything else is INVALID_ARGUMENT naming the
//! filter's element, and nothing is stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, spawn_app};
use rz_proto::notification::v1 as pb;
use tonic_types::StatusExt;

const AGB: &str = "03010001";

/// Event types, municipalities and segments of a request, and the fields its answer names.
type Case = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// Row counts of every table a subscription could write.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for t in ["subscriptions", "idempotency_keys", "deliveries"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        out.push(n);
    }
    out
}

fn request(
    key: &str,
    types: &[&str],
    munis: &[&str],
    segments: &[&str],
) -> pb::CreateSubscriptionRequest {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    pb::CreateSubscriptionRequest {
        idempotency_key: key.into(),
        agb_code: AGB.into(),
        url: "http://127.0.0.1:9/hook".into(),
        event_types: v(types),
        municipalities: v(munis),
        segments: v(segments),
    }
}

/// The violations' fields of an INVALID_ARGUMENT answer.
fn fields(e: &tonic::Status) -> Vec<String> {
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    e.get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn filters_naming_what_does_not_exist_are_refused_and_store_nothing() {
    let mut app = spawn_app().await;
    let mut provider = app.provider(AGB);
    let before = snapshot(&app).await;

    let cases: [Case; 6] = [
        // Event types that do not exist, or that no webhook receives (not addressed to a provider).
        (
            &[
                "issued",
                "nl.regiozorg.assignment.withdrawn.v1",
                "lifecycle",
            ],
            &[],
            &[],
            &["event_types[1]", "event_types[2]"],
        ),
        (
            &["nl.regiozorg.access.decision_granted.v1"],
            &[],
            &[],
            &["event_types[0]"],
        ),
        // A municipality outside the Achterhoek (Enschede), or no CBS code at all.
        (
            &[],
            &["0222", "0153", "22"],
            &[],
            &["municipalities[1]", "municipalities[2]"],
        ),
        // A lot code is no segment; codes are case-sensitive; a subsegment that does not exist.
        (
            &[],
            &[],
            &["IAJ-ON", "WMO", "iaj", "IAJ-XX"],
            &["segments[1]", "segments[2]", "segments[3]"],
        ),
        (&[], &[], &["HBH", "NOPE"], &["segments[1]"]),
        // All at once: every element is named.
        (
            &["assigned"],
            &["0363"],
            &["X"],
            &["event_types[0]", "municipalities[0]", "segments[0]"],
        ),
    ];
    for (i, (types, munis, segments, want)) in cases.iter().enumerate() {
        let e = provider
            .create_subscription(request(&format!("bad-{i}"), types, munis, segments))
            .await
            .unwrap_err();
        assert_eq!(fields(&e), *want, "case {i}: {e:?}");
    }
    // The same for the operator, who subscribes on a provider's behalf.
    let e = app
        .client
        .create_subscription(request("bad-op", &[], &["0153"], &[]))
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["municipalities[0]"]);
    assert_eq!(snapshot(&app).await, before, "nothing was stored");

    // What exists is accepted: full and short types, the region's municipalities, segment and
    // subsegment codes (a segment without subsegments under its own code).
    let ok = provider
        .create_subscription(request(
            "good",
            &[
                "nl.regiozorg.assignment.issued.v1",
                "changed",
                "request_answered",
            ],
            &["0197", "0222", "1509"],
            &["IAJ", "IAJ-ON", "WIO", "ZHZ", "HBH"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.segments.len(), 5);
    assert_eq!(snapshot(&app).await[0], before[0] + 1);
}
