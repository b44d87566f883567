//! One trace id survives a gRPC call into the registration service, its outbox, the JetStream
//! publish and the delivery to a second component's consumer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rz_eventing::{ConsumerSpec, Event, EventConsumer, HandleError, Handler, Namespace};
use rz_platform::Shutdown;
use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_stack::Stack;
use sqlx::{PgConnection, PgPool};

/// (event type, traceparent header, trace id of the consumer's span) of each event received.
type Sighting = (String, Option<String>, Option<String>);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Sighting>>>);

impl Handler for Seen {
    async fn handle(&self, _tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        // The trace id of the span the consumer runs this handler in.
        let in_span = rz_telemetry::current_trace_id();
        self.0
            .lock()
            .unwrap()
            .push((event.event_type.clone(), event.traceparent.clone(), in_span));
        tracing::info!("second component applied the event");
        Ok(())
    }
}

#[tokio::test]
async fn a_trace_id_survives_grpc_outbox_jetstream_and_a_consumer() {
    let stack = Stack::builder().registration().start().await;
    let env = stack.env.clone();
    let ns = Namespace::new(stack.namespace()).unwrap();
    let endpoint = stack.registration_endpoint();
    let shutdown = Shutdown::new();

    // The second component: its own database with an inbox, a durable consumer on the register's stream.
    let pool = PgPool::connect(&env.fresh_database().await).await.unwrap();
    rz_platform::db::migrate(
        &pool,
        &[rz_platform::db::Migration::shared(
            rz_eventing::OUTBOX_INBOX,
        )],
    )
    .await
    .unwrap();
    let (_nats, js) = rz_eventing::connect(&env.nats_url, "second-component")
        .await
        .unwrap();
    let seen = Seen::default();
    let spec = ConsumerSpec::new(
        "second-component",
        ns.stream_name("registration"),
        format!("{}.registration.>", ns.as_str()),
    );
    let consumer = tokio::spawn(
        EventConsumer::new(js, pool, ns.clone(), spec, seen.clone()).run(shutdown.clone()),
    );

    // A caller that is itself part of a trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(pb::RegisterProviderRequest {
        idempotency_key: "trace".into(),
        agb_code: "03001234".into(),
        name: "Traced BV".into(),
        legal_form: "bv".into(),
        kvk_number: "41234567".into(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    // The operator registers the provider (mutual TLS with the operator's certificate).
    let mut client = RegistrationServiceClient::new(
        rz_stack::connect(&endpoint, &stack.pki().tls(rz_stack::OPERATOR)).await,
    );
    client.register_provider(request).await.unwrap();

    let mut got = None;
    for _ in 0..200 {
        if let Some(first) = seen.0.lock().unwrap().first().cloned() {
            got = Some(first);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (event_type, header, in_span) = got.expect("the second component received the event");
    assert_eq!(
        event_type,
        "nl.regiozorg.registration.provider_registered.v1"
    );
    let header = header.expect("the event carries a traceparent header");
    assert!(header.starts_with(&format!("00-{trace_id}-")), "{header}");
    assert_ne!(
        header,
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
        "the service adds its own span"
    );
    assert_eq!(
        in_span.as_deref(),
        Some(trace_id),
        "the consumer's span continues the trace"
    );

    shutdown.trigger();
    stack.shutdown().await.unwrap();
    consumer.await.unwrap().unwrap();
}
