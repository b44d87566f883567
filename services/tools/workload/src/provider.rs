//! A provider system on the assignment events, as the provider simulator, the benchmarks and the
//! chaos run each run one: a durable pull consumer on `<ns>.assignment.*.<agb>.issued` (one
//! provider's or every provider's), the assignment read from each event, and the start of care
//! reported back over gRPC.

use std::time::Duration;

use prost::Message;
pub use rz_eventing::Namespace;
use rz_eventing::nats::jetstream::{self, consumer::PullConsumer, consumer::pull};
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use tonic::transport::Channel;

/// The subjects of issued assignments in namespace `ns`: provider `agb`'s, or every provider's.
pub fn issued_filter(ns: &str, agb: Option<&str>) -> String {
    format!("{ns}.assignment.*.{}.issued", agb.unwrap_or("*"))
}

/// A durable pull consumer `name` on `filter`, acknowledged one message at a time (30 s to
/// acknowledge before the event comes again).
pub fn durable(name: &str, filter: String) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: filter,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The assignment service's event stream: found as the service made it, or created with the
/// default settings when the provider system starts first (the service brings it to its own
/// settings when it starts). A provider system never changes a stream it found.
pub async fn stream(
    js: &jetstream::Context,
    ns: &Namespace,
) -> Result<jetstream::stream::Stream, String> {
    match js.get_stream(ns.stream_name("assignment")).await {
        Ok(stream) => Ok(stream),
        Err(_) => rz_eventing::ensure_stream(
            js,
            ns,
            "assignment",
            &rz_eventing::StreamSettings::default(),
        )
        .await
        .map_err(|e| e.to_string()),
    }
}

/// The [`durable`] consumer `name` on `filter` (created, or found as a restarted system left it).
pub async fn subscribe(
    js: &jetstream::Context,
    ns: &Namespace,
    name: &str,
    filter: String,
) -> Result<PullConsumer, String> {
    stream(js, ns)
        .await?
        .get_or_create_consumer(name, durable(name, filter))
        .await
        .map_err(|e| e.to_string())
}

/// The assignment an issued event carries (`None` for a message without one).
pub fn assignment(payload: &[u8]) -> Result<Option<pb::Assignment>, prost::DecodeError> {
    Ok(pb::AssignmentMessage::decode(payload)?.assignment)
}

/// The first day of the assignment's period (empty without a period).
pub fn first_day(a: &pb::Assignment) -> String {
    a.period
        .as_ref()
        .map(|p| p.start.clone())
        .unwrap_or_default()
}

/// The provider's report that care for assignment `a` started on `start_date`.
pub fn start_of_care(a: &pb::Assignment, start_date: String) -> pb::ReportStartOfCareRequest {
    pb::ReportStartOfCareRequest {
        agb_code: a.agb_code.clone(),
        municipality: a.municipality.clone(),
        assignment_number: a.number,
        start_date,
    }
}

/// How a reported start of care went.
#[derive(Debug)]
pub enum Started {
    Reported,
    /// The start was reported before (a redelivered event, or a retried call).
    AlreadyReported,
    /// Anything else: the service is down (try again later) or refused it (the assignment changed
    /// meanwhile); the caller decides by the code.
    Failed(tonic::Status),
}

/// Reports a start of care (see [`start_of_care`]).
pub async fn report_start(
    client: &mut AssignmentServiceClient<Channel>,
    request: impl tonic::IntoRequest<pb::ReportStartOfCareRequest>,
) -> Started {
    match client.report_start_of_care(request).await {
        Ok(_) => Started::Reported,
        Err(s) if s.code() == tonic::Code::AlreadyExists => Started::AlreadyReported,
        Err(s) => Started::Failed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_one_provider_or_all() {
        assert_eq!(
            issued_filter("rz", Some("03010028")),
            "rz.assignment.*.03010028.issued"
        );
        assert_eq!(issued_filter("rzb1", None), "rzb1.assignment.*.*.issued");
        let c = durable("provider-sim", issued_filter("rz", None));
        assert_eq!(c.durable_name.as_deref(), Some("provider-sim"));
        assert_eq!(c.ack_policy, jetstream::consumer::AckPolicy::Explicit);
    }

    #[test]
    fn an_event_gives_the_start_of_care() {
        let msg = pb::AssignmentMessage {
            assignment: Some(pb::Assignment {
                number: 42,
                municipality: "0222".into(),
                agb_code: "03010028".into(),
                period: Some(rz_proto::types::v1::Period {
                    start: "2022-09-01".into(),
                    end: "2023-08-31".into(),
                }),
                ..Default::default()
            }),
            client: None,
        };
        let a = assignment(&msg.encode_to_vec())
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(first_day(&a), "2022-09-01");
        let r = start_of_care(&a, first_day(&a));
        assert_eq!(
            (
                r.agb_code.as_str(),
                r.municipality.as_str(),
                r.assignment_number
            ),
            ("03010028", "0222", 42)
        );
        assert!(assignment(b"\xff\xff").is_err());
        let empty = pb::AssignmentMessage::default().encode_to_vec();
        assert!(matches!(assignment(&empty), Ok(None)));
    }
}
