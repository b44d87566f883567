//! The statutory deadlines as Prometheus reads them: access for Doetinchem (0222) with `[metrics]
//! listen` serves `rz_deadlines_open` and `rz_deadlines_overdue` with its own municipality, both
//! kinds at 0 from the start; a report not investigated within 6 weeks and a Jeugdwet application
//! not decided within 8 weeks are overdue, exactly as `ListDeadlines` lists them; a decision
//! takes its case off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{MUNICIPALITY, bsn, days_from_today, open_request, resident_request};
use rz_platform::Shutdown;
use rz_proto::access::v1 as pb;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::types::v1 as types;
use rz_stack::{Stack, scrape_until};
use tonic::transport::Channel;

fn series(metric: &str, kind: &str) -> String {
    format!("rz_deadlines_{metric}{{municipality=\"{MUNICIPALITY}\",kind=\"{kind}\"}}")
}

/// (open, overdue) per kind as `ListDeadlines` gives them today: what the gauges must show.
async fn listed(client: &mut AccessServiceClient<Channel>) -> Vec<(String, f64)> {
    let all = client
        .list_deadlines(pb::ListDeadlinesRequest {
            as_of: days_from_today(0),
            within_days: 3_650,
        })
        .await
        .unwrap()
        .into_inner()
        .deadlines;
    let mut out = Vec::new();
    for kind in ["investigation", "decision"] {
        let of_kind = all.iter().filter(|d| d.step == kind);
        out.push((series("open", kind), of_kind.clone().count() as f64));
        out.push((
            series("overdue", kind),
            of_kind.filter(|d| d.late).count() as f64,
        ));
    }
    out
}

#[tokio::test]
async fn overdue_statutory_deadlines_are_served_per_municipality_as_listed() {
    let stack = Stack::builder()
        .registration()
        .municipalities(&[MUNICIPALITY])
        .start()
        .await;
    let mut config = stack.access_config(MUNICIPALITY).await;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    config.metrics.sample_secs = 1;
    let app = access::App::build(config).await.expect("access builds");
    let metrics = app.metrics_addr().expect("metrics are served");
    let endpoint = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));

    let zero = |s: String| (s, 0.0);
    scrape_until(
        metrics,
        &[
            zero(series("open", "investigation")),
            zero(series("overdue", "investigation")),
            zero(series("open", "decision")),
            zero(series("overdue", "decision")),
        ],
    )
    .await;

    // A Wmo report of 50 days ago never investigated (6 weeks: overdue), one of 10 days ago (in
    // time), and a Jeugdwet application of 70 days ago never decided (8 weeks: overdue).
    let mut cases = Vec::new();
    for (n, law, days_ago, born) in [
        (1, types::Law::Wmo, 50, "1970-03-15"),
        (2, types::Law::Wmo, 10, "1970-03-15"),
        (3, types::Law::Jeugdwet, 70, "2012-03-15"),
    ] {
        let b = bsn(n);
        let mut resident = resident_request(&b, born);
        if law == types::Law::Jeugdwet {
            resident.legal_representative = Some(pb::LegalRepresentative {
                name: "M. de Vries".into(),
                relation: "ouder".into(),
            });
        }
        client.register_resident(resident).await.expect("registers");
        let case = client
            .open_case(open_request(&b, law, &days_from_today(-days_ago)))
            .await
            .expect("case opens")
            .into_inner();
        cases.push(case);
    }
    let want = listed(&mut client).await;
    assert!(
        want.contains(&(series("overdue", "investigation"), 1.0))
            && want.contains(&(series("open", "investigation"), 2.0))
            && want.contains(&(series("overdue", "decision"), 1.0)),
        "{want:?}"
    );
    let text = scrape_until(metrics, &want).await;
    for n in 1..=3 {
        assert!(!text.contains(&bsn(n)), "a BSN in the metrics");
    }
    for case in &cases {
        assert!(
            !text.contains(&case.client_key),
            "a client key in the metrics"
        );
    }

    // Refusing the Jeugdwet application takes it off.
    client
        .decide(pb::DecideRequest {
            case_id: cases[2].id.clone(),
            date: days_from_today(0),
            grant: Vec::new(),
            refusal_reason: "geen indicatie".into(),
        })
        .await
        .expect("refused");
    let want = listed(&mut client).await;
    assert!(
        want.contains(&(series("open", "decision"), 0.0)),
        "{want:?}"
    );
    scrape_until(metrics, &want).await;

    shutdown.trigger();
    server.await.unwrap().unwrap();
}
