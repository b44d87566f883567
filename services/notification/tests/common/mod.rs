//! `spawn_app`: the notification service from the test stack (port 0, a fresh database, its own
//! NATS namespace) with a fast retry schedule; a publisher writing envelope-correct assignment
//! events straight to JetStream. The webhook receiver and its signature check come from the stack.

// Each test file uses a part of these helpers; the test files allow unwrap, expect and panic.
#![allow(dead_code, unused_imports)]

pub mod stack;

use std::time::Duration;

use notification::Config;
use rz_eventing::nats::jetstream;
use rz_proto::assignment::v1 as apb;
use rz_proto::notification::v1 as pb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
pub use rz_stack::{Received, Receiver, fixture, verify_signature};
use rz_stack::{Stack, StackBuilder};
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct TestApp {
    pub db_url: String,
    /// Notification's client of the stack's operator; providers and municipalities call through
    /// [`TestApp::provider`] and [`TestApp::municipality`] with their own certificates.
    pub client: NotificationServiceClient<Channel>,
    pub pool: PgPool,
    pub namespace: String,
    pub js: jetstream::Context,
    pub stack: Stack,
    /// The service's keyring (`webhooks.secret_keys_file`): what the test writes or reads sealed
    /// (letters, deliveries) goes through it.
    pub keys: std::sync::Arc<notification::secrets::Keyring>,
    /// Its file.
    pub keys_file: std::path::PathBuf,
}

/// The service with a fast retry schedule: 10 ms doubling, capped at 40 ms, 4 attempts.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the configuration changed by `tune`.
pub async fn spawn_app_with(tune: impl FnOnce(&mut Config) + Send + Sync + 'static) -> TestApp {
    spawn(Stack::builder(), tune).await
}

/// The service with a fresh database in the NATS namespace `namespace` (shared with other
/// services the test spawns), with the configuration changed by `tune`.
pub async fn spawn_in(
    namespace: &str,
    tune: impl FnOnce(&mut Config) + Send + Sync + 'static,
) -> TestApp {
    spawn(Stack::builder().namespace(namespace), tune).await
}

/// Another replica on the same database and NATS namespace.
pub async fn spawn_replica(db: &str, namespace: &str) -> TestApp {
    spawn(
        Stack::builder().namespace(namespace).notification_on(db),
        |_| {},
    )
    .await
}

/// As [`spawn_replica`], with the configuration changed by `tune`.
pub async fn spawn_replica_with(
    db: &str,
    namespace: &str,
    tune: impl FnOnce(&mut Config) + Send + Sync + 'static,
) -> TestApp {
    spawn(
        Stack::builder().namespace(namespace).notification_on(db),
        tune,
    )
    .await
}

async fn spawn(
    builder: StackBuilder,
    tune: impl FnOnce(&mut Config) + Send + Sync + 'static,
) -> TestApp {
    let key_file = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = key_file.clone();
    let mut stack = builder
        .notification()
        .notification_config(move |config| {
            config.webhooks.initial_backoff_ms = 10;
            config.webhooks.max_backoff_ms = 40;
            config.webhooks.max_attempts = 4;
            config.webhooks.poll_interval_ms = 10;
            config.webhooks.request_timeout_ms = 2_000;
            config.webhooks.lease_ms = 5_000;
            config.webhooks.ca_file = Some(fixture("ca.pem"));
            // Scans run when a test asks (ScanDeadlines), not on a timer.
            config.notification.scan_interval_secs = 0;
            tune(config);
            *seen.lock().unwrap() = Some((
                config
                    .webhooks
                    .secret_keys_file
                    .clone()
                    .expect("a key file"),
                config.webhooks.secret_key_id.clone(),
            ));
        })
        .start()
        .await;
    let (path, key_id) = key_file
        .lock()
        .unwrap()
        .take()
        .expect("notification configured");
    let keys = std::sync::Arc::new(
        notification::secrets::Keyring::load(&path, Some(key_id.as_str())).expect("key file"),
    );
    let service = stack.notification_service();
    let (db_url, pool) = (service.db_url.clone(), service.pool.clone());
    let (_, js) = rz_eventing::connect(stack.nats_url(), "notification-test")
        .await
        .expect("nats");
    TestApp {
        db_url,
        client: stack.notification(),
        pool,
        namespace: stack.namespace().to_owned(),
        js,
        stack,
        keys,
        keys_file: path,
    }
}

impl TestApp {
    /// A client of notification as provider `agb` (its own certificate).
    pub fn provider(&self, agb: &str) -> NotificationServiceClient<Channel> {
        self.stack.as_provider(agb).notification()
    }

    /// A client of notification as municipality `cbs`.
    pub fn municipality(&self, cbs: &str) -> NotificationServiceClient<Channel> {
        self.stack.as_municipality(cbs).notification()
    }

    /// Waits until the municipality has `n` letters of `kind` and returns them (as it lists
    /// them).
    pub async fn letters(&mut self, municipality: &str, kind: &str, n: usize) -> Vec<pb::Letter> {
        let request = pb::ListLettersRequest {
            municipality: municipality.into(),
            client_key: String::new(),
            limit: 1000,
        };
        let mut client = self.municipality(municipality);
        rz_stack::eventually(Duration::from_secs(20), async || {
            let all = client.list_letters(request.clone()).await.unwrap();
            let got: Vec<pb::Letter> = all
                .into_inner()
                .letters
                .into_iter()
                .filter(|l| l.kind == kind)
                .collect();
            rz_stack::at_least(got, n, &format!("{kind} letters"))
        })
        .await
    }

    pub async fn scan(&mut self, as_of: &str) -> pb::ScanDeadlinesResponse {
        self.client
            .scan_deadlines(pb::ScanDeadlinesRequest {
                as_of: as_of.into(),
            })
            .await
            .expect("scan")
            .into_inner()
    }

    /// Scans the deadlines as of `as_of` and asserts how many alerts it opened, found overdue and
    /// resolved.
    pub async fn assert_scan(&mut self, as_of: &str, (opened, overdue, resolved): (u32, u32, u32)) {
        let r = self.scan(as_of).await;
        assert_eq!(
            (r.alerts_opened, r.alerts_overdue, r.alerts_resolved),
            (opened, overdue, resolved),
            "{r:?}"
        );
    }

    /// The municipality's staff alerts in `states` (all when empty), as it lists them.
    pub async fn alerts(
        &mut self,
        municipality: &str,
        states: &[pb::AlertState],
    ) -> Vec<pb::StaffAlert> {
        self.municipality(municipality)
            .list_staff_alerts(pb::ListStaffAlertsRequest {
                municipality: municipality.into(),
                states: states.iter().map(|s| *s as i32).collect(),
                limit: 0,
            })
            .await
            .expect("alerts")
            .into_inner()
            .alerts
    }

    /// A subscription of provider `agb`, created by the provider itself.
    pub async fn subscribe(
        &mut self,
        agb: &str,
        url: &str,
        event_types: &[&str],
        municipalities: &[&str],
        segments: &[&str],
    ) -> pb::Subscription {
        self.provider(agb)
            .create_subscription(pb::CreateSubscriptionRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                agb_code: agb.into(),
                url: url.into(),
                event_types: event_types.iter().map(|s| s.to_string()).collect(),
                municipalities: municipalities.iter().map(|s| s.to_string()).collect(),
                segments: segments.iter().map(|s| s.to_string()).collect(),
            })
            .await
            .expect("subscription created")
            .into_inner()
    }

    /// Publishes an envelope-correct `AssignmentMessage` on
    /// `<ns>.assignment.<municipality>.<agb>.<event>` and returns the event id.
    pub async fn publish_assignment(
        &self,
        municipality: &str,
        agb: &str,
        event: &str,
        number: u32,
        segment: &str,
    ) -> Uuid {
        self.publish(
            &format!("{}.assignment.{municipality}.{agb}.{event}", self.namespace),
            &format!("nl.regiozorg.assignment.{event}.v1"),
            &format!("regiozorg/assignment/{municipality}"),
            &format!("{municipality}/{number}"),
            assignment_payload(municipality, agb, number, segment),
        )
        .await
    }

    pub async fn publish(
        &self,
        subject: &str,
        event_type: &str,
        source: &str,
        aggregate: &str,
        payload: Vec<u8>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.publish_as(
            id,
            &id.to_string(),
            subject,
            event_type,
            source,
            aggregate,
            payload,
        )
        .await;
        id
    }

    /// Publishes with a given event id and `Nats-Msg-Id` (a different one defeats JetStream's
    /// duplicate window, as a republish after the window would).
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_as(
        &self,
        id: Uuid,
        msg_id: &str,
        subject: &str,
        event_type: &str,
        source: &str,
        aggregate: &str,
        payload: Vec<u8>,
    ) {
        let mut h = rz_eventing::nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", msg_id);
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", id.to_string().as_str());
        h.insert("ce-type", event_type);
        h.insert("ce-source", source);
        h.insert("ce-subject", aggregate);
        h.insert(
            "ce-time",
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        h.insert("content-type", "application/protobuf");
        self.js
            .publish_with_headers(subject.to_owned(), h, payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    /// Waits until `n` deliveries are delivered.
    pub async fn wait_delivered(&self, n: i64) {
        self.wait_count(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            n,
        )
        .await
    }

    /// Waits until `sql` (a scalar count) returns `want`.
    pub async fn wait_count(&self, sql: &str, want: i64) {
        rz_stack::eventually(Duration::from_secs(20), async || {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&self.pool)
                .await
                .unwrap();
            match n == want {
                true => Ok(()),
                false => Err(format!("`{sql}` is {n}, expected {want}")),
            }
        })
        .await
    }

    pub async fn stop(mut self) {
        let _ = self.stack.notification_service().stop().await;
    }
}

/// The encoded `AssignmentMessage` [`TestApp::publish_assignment`] publishes: assignment `number`
/// of `agb` in `municipality`, for a child (born 2012) with a BSN and a name.
pub fn assignment_payload(municipality: &str, agb: &str, number: u32, segment: &str) -> Vec<u8> {
    let payload = apb::AssignmentMessage {
        assignment: Some(apb::Assignment {
            number,
            municipality: municipality.into(),
            agb_code: agb.into(),
            segment_code: segment.into(),
            subsegment_code: format!("{segment}-1"),
            product_code: "45A01".into(),
            law: 1,
            ..Default::default()
        }),
        client: Some(apb::Client {
            bsn: "999990019".into(),
            birth_date: "2012-03-04".into(),
            family_name: "Jansen".into(),
            given_names: "Sanne".into(),
            ..Default::default()
        }),
    };
    prost::Message::encode_to_vec(&payload)
}
