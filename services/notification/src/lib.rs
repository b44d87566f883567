//! Notification (`notification`): what the platform tells providers' systems, residents and the
//! municipality's staff.
//!
//! **Webhooks.** A provider subscribes a URL with filters (event types, municipalities, segments).
//! The durable consumer `notification-webhooks` reads `<ns>.assignment.>`; for each event
//! addressed to a provider (the AGB token of the subject; providers only get their own events) it
//! writes one delivery per matching subscription, in the inbox transaction. The
//! [`delivery::DeliveryWorker`] POSTs each delivery as a CloudEvents 1.0 structured JSON document,
//! signed as Standard Webhooks prescribes (`webhook-id: <delivery id>`, `webhook-timestamp`,
//! fresh on every attempt, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! under the subscription's `whsec_` secret, sealed at rest by [`secrets`]); the CloudEvent id is
//! the event id on every attempt, so receivers drop duplicates (delivery is at least once). The
//! SSRF guard ([`egress`]) refuses URLs into the platform's own networks at subscription and
//! again at every connection. The POSTs reuse keep-alive HTTP/1.1
//! connections (a small pool per receiver origin, `webhooks.max_idle_per_origin`,
//! `webhooks.idle_timeout_ms`); successes are recorded in batches, each row only under the claim
//! that sent it. The matcher writes the deliveries of a batch of events in one statement
//! and runs one transaction per provider at a time (partitioned by the AGB token). Failed attempts back off
//! exponentially; when the retry budget is spent the delivery fails, an operator alert is raised
//! and `ReplayDelivery` puts it back.
//!
//! **Personal data at rest.** A delivery's body (the client's BSN, name and address) and a
//! letter's text are sealed (AES-256-GCM, [`rz_platform::sealing`]) under the current key of
//! `webhooks.secret_keys_file`, the key that seals the subscription secrets; a delivered
//! delivery's body is removed. At start the service seals what is still in plaintext (rows from
//! before migration 107) or under an older key. A replica whose key file lacks a row's key puts
//! that delivery or letter off (a minute, the key named in its `last_error`) rather than sending it.
//!
//! **Residents' letters** ([`letters`], listed with `ListLetters` per municipality and resident):
//! - `provider_assigned`: consumer `notification-letters` on `<ns>.assignment.*.*.issued` (the
//!   message carries the client block), also in the handover;
//! - `decision_granted` / `decision_refused` ([`decisions`]): consumer `notification-decisions` on
//!   access' `<ns>.access.*._.>` (`decision_granted`, and `case_changed` with status refused).
//!   Those events carry only the client key: name, address and birth date come from the
//!   municipality's access instance (`GetClientForAssignment`, endpoints in
//!   `notification.access_endpoints`). Access unreachable is retried; an unknown client key is
//!   dead-lettered with the reason and nothing is written;
//! - `indication_ending` ([`scan`]): a granted product that ends within 8 weeks (access
//!   `ListExpiringIndications`), one letter per product and end date, never twice.
//!
//! For youth care (Jeugdwet) to a child under 16 letters go to the parents or carers.
//!
//! **Sending letters** ([`dispatch`]): every letter starts `pending`. The channel
//! (`notification.letters.channel`) is a [`dispatch::LetterChannel`]: `none` (the default: no
//! dispatcher runs, letters are stored and listed only, as before); `post`, which writes each
//! letter as the UTF-8 file `<spool_dir>/<municipality>/<letter id>.txt` (a temp file, synced,
//! then renamed) for a print house to collect, or `smtp` ([`smtp`]), which e-mails each letter
//! through a local relay (no TLS) to its municipality's mailroom (residents have no e-mail
//! address in access yet). The [`dispatch::LetterDispatcher`] claims due
//! letters under a lease (`FOR UPDATE SKIP LOCKED`, so replicas never send one at once), sends
//! them and marks them `sent` (never sent again); a transient error is retried with exponential
//! backoff, and after `max_attempts` attempts (or a permanent error) the letter is `failed` with
//! the reason in `last_error`. `ListLetters` shows status, attempts, channel, times and the error.
//! At least once: a replica that dies between sending and recording sends again after the lease;
//! for the post spool that rewrites the same file, and a mailroom can drop the duplicate
//! e-mail by its `Message-ID` (the letter id).
//!
//! **Staff alerts** ([`scan`], `ListStaffAlerts`): access `ListDeadlines` (investigation 6 weeks,
//! decision 2 or 8 weeks) and assignment `ListChainDeadlines` (answer to a provider request, start
//! of care 5 working days after an assignment's start). One row per deadline, `upcoming` (due
//! within `notification.alert_within_days`) -> `overdue` -> `resolved` (no longer listed). They
//! carry the client key and case, assignment or request ids, never a BSN or name.
//!
//! The expiring-indication letters and the alerts are polls: `ScanDeadlines { as_of }` runs them
//! for a date (the demo plays simulated dates) and a background loop runs them with today's date
//! (the system date, or `notification.today` / `notification.today_file` as access and
//! assignment take them) every `notification.scan_interval_secs` (default 900; 0 disables it). Both are idempotent and
//! safe with several replicas (unique keys, an advisory lock per source and municipality).
//!
//! Layout: [`webhook`] holds the webhook rules without I/O, [`letters`] the letter templates,
//! [`store`] the SQL, [`consumer`] and [`decisions`] the event consumers, [`scan`] the deadline
//! scans, [`upstream`] the gRPC clients of access and assignment, [`delivery`] the HTTP worker,
//! [`dispatch`] the letter channels and their dispatcher, [`smtp`] the e-mail channel,
//! [`api`] the gRPC edge, and [`App`] wires them.

pub mod api;
pub mod config;
pub mod consumer;
pub mod decisions;
pub mod delivery;
pub mod dispatch;
pub mod egress;
pub mod letters;
pub mod metrics;
pub mod owner;
pub mod region;
pub mod scan;
pub mod secrets;
pub mod smtp;
pub mod store;
pub mod upstream;
pub mod webhook;

use rz_platform::{Foundation, Shutdown};
use rz_proto::notification::v1::notification_service_server::NotificationServiceServer;

pub use config::Config;
pub use rz_platform::StartError;

/// A built service, bound to its port, not yet serving.
pub struct App {
    foundation: Foundation,
    config: Config,
    worker: delivery::DeliveryWorker,
    dispatcher: Option<dispatch::LetterDispatcher>,
    upstream: std::sync::Arc<upstream::Upstream>,
    region: std::sync::Arc<region::Region>,
    keys: std::sync::Arc<secrets::Keyring>,
    guard: egress::Guard,
}

rz_platform::service!(
    App,
    "notification",
    "Notification: signed webhooks to provider systems, residents' letters and staff alerts",
    Config,
    store::MIGRATIONS
);

impl App {
    /// Connects, migrates, ensures the assignment stream (it may start before assignment) and binds.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.audit.retention().map_err(StartError::Config)?;
        if config.webhooks.lease_ms <= config.webhooks.request_timeout_ms {
            return Err(StartError::Config(
                "webhooks.lease_ms must be longer than webhooks.request_timeout_ms".into(),
            ));
        }
        let guard = egress::Guard::new(&config.webhooks.allow_cidrs, &config.webhooks.deny_cidrs)
            .map_err(StartError::Config)?;
        let keys_file = config.webhooks.secret_keys_file.as_ref().ok_or_else(|| {
            StartError::Config(
                "webhooks.secret_keys_file is required: the keys that seal subscription secrets \
                 (`<key id> <base64 of 32 bytes>` per line), kept outside the database"
                    .into(),
            )
        })?;
        let keys = std::sync::Arc::new(
            secrets::Keyring::load(keys_file, Some(config.webhooks.secret_key_id.as_str()))
                .map_err(|e| StartError::Config(format!("webhooks.secret_keys_file {e}")))?,
        );
        let upstream = std::sync::Arc::new(
            upstream::Upstream::new(&config.notification, &config.tls)
                .map_err(StartError::Config)?,
        );
        if !upstream.has_assignment() {
            tracing::warn!(
                "notification.assignment_endpoint is not set: chain deadlines are not scanned"
            );
        }
        let region = match &config.notification.region_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| region::Region::from_toml(&text)),
            None => region::Region::achterhoek(),
        }
        .map_err(|e| StartError::Config(format!("notification.region_file: {e}")))?;
        let region = std::sync::Arc::new(region);
        let letters_config = &config.notification.letters;
        letters_config.validate().map_err(StartError::Config)?;
        let channel: Option<std::sync::Arc<dyn dispatch::LetterChannel>> =
            match (letters_config.channel, &letters_config.spool_dir) {
                (config::LetterChannelKind::None, _) => None,
                (config::LetterChannelKind::Post, Some(dir)) => Some(std::sync::Arc::new(
                    dispatch::PostChannel::new(dir).map_err(|e| {
                        StartError::Config(format!(
                            "notification.letters.spool_dir {}: {e}",
                            dir.display()
                        ))
                    })?,
                )),
                (config::LetterChannelKind::Smtp, _) => Some(std::sync::Arc::new(
                    smtp::SmtpChannel::new(letters_config.smtp.clone())
                        .map_err(StartError::Config)?,
                )),
                (config::LetterChannelKind::Post, None) => {
                    return Err(StartError::Config(
                        "notification.letters.spool_dir is required for the post channel".into(),
                    ));
                }
            };
        let foundation = Foundation::start(
            "notification",
            &config,
            store::MIGRATIONS,
            &[consumer::ASSIGNMENT, decisions::ACCESS],
        )
        .await?;
        let pool = foundation.pool().clone();
        let resealed = store::reseal_secrets(&pool, &keys)
            .await
            .map_err(|e| StartError::Config(format!("webhooks.secret_keys_file: {e}")))?;
        if resealed > 0 {
            tracing::info!(
                subscriptions = resealed,
                key_id = keys.current(),
                "subscription secrets sealed under the current key"
            );
        }
        // Personal data in delivery bodies and letters: what is still in plaintext (before
        // migration 107) or under an older key is sealed under the current key now, and delivered
        // deliveries lose their bodies.
        let bodies = store::seal_delivery_bodies(&pool, &keys)
            .await
            .map_err(|e| StartError::Config(format!("webhooks.secret_keys_file: {e}")))?;
        let letters = store::seal_letter_texts(&pool, &keys)
            .await
            .map_err(|e| StartError::Config(format!("webhooks.secret_keys_file: {e}")))?;
        if bodies.sealed > 0 || bodies.removed > 0 || letters > 0 {
            tracing::info!(
                deliveries_sealed = bodies.sealed,
                delivered_bodies_removed = bodies.removed,
                letters_sealed = letters,
                key_id = keys.current(),
                "delivery bodies and letters sealed under the current key"
            );
        }
        // The queues and attempts (see [`metrics`]), sampled with the platform's metrics.
        let metrics = metrics::NotificationMetrics::register(foundation.metrics());
        metrics.sample_from(foundation.metrics(), pool.clone());
        let dispatcher = channel.map(|c| {
            dispatch::LetterDispatcher::new(
                pool.clone(),
                keys.clone(),
                c,
                config.notification.letters.clone(),
            )
            .with_metrics(metrics.letter_attempts.clone())
        });
        let worker =
            delivery::DeliveryWorker::new(pool.clone(), config.webhooks.clone(), keys.clone())
                .map_err(|e| StartError::Config(format!("webhooks: {e}")))?
                .with_metrics(metrics.webhooks.clone());
        Ok(Self {
            foundation,
            config,
            worker,
            dispatcher,
            upstream,
            region,
            keys,
            guard,
        })
    }

    /// Serves gRPC, consumes assignment and access events, delivers webhooks and letters and
    /// scans deadlines until `shutdown` (see [`rz_platform::runner`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let mut serving = self.foundation.serving(shutdown);
        let ns = serving.ns().clone();
        serving.consume(
            "webhooks",
            consumer::consumer_spec(&ns),
            consumer::WebhookMatcher::new(self.keys.clone()),
        );
        serving.consume(
            "letters",
            letters::consumer_spec(&ns),
            letters::LetterWriter::new(self.region.clone(), self.keys.clone()),
        );
        // Without any access endpoint there is nobody to address a decision letter to: the
        // consumer is not started (rather than dead-lettering every decision). With endpoints, a
        // municipality missing from them dead-letters its decisions with that reason.
        if self.upstream.municipalities().is_empty() {
            tracing::warn!(
                "notification.access_endpoints is empty: decision letters are not written"
            );
        } else {
            serving.consume(
                "decision letters",
                decisions::consumer_spec(&ns),
                decisions::DecisionLetters::new(
                    self.upstream.clone(),
                    self.region.clone(),
                    self.keys.clone(),
                ),
            );
        }
        serving.spawn(self.worker.run(serving.shutdown()));
        match self.dispatcher {
            Some(d) => serving.spawn(d.run(serving.shutdown())),
            None => tracing::info!(
                "notification.letters.channel is none: letters are stored and listed, not sent"
            ),
        }
        let scanner = scan::Scanner::new(
            serving.pool().clone(),
            self.upstream.clone(),
            self.region.clone(),
            self.keys.clone(),
            self.config.notification.alert_within_days,
        );
        let clock = rz_platform::clock::from_config(
            self.config.notification.today,
            self.config.notification.today_file.as_ref(),
        );
        serving.spawn(scanner.clone().run(
            std::time::Duration::from_secs(self.config.notification.scan_interval_secs),
            clock,
            serving.shutdown(),
        ));
        let api = api::NotificationApi::new(
            serving.pool().clone(),
            api::WebhookPolicy {
                require_https: self.config.webhooks.require_https,
                guard: self.guard,
                keys: self.keys,
            },
            self.region.clone(),
            scanner,
        );
        let audit = api.audit().clone();
        let retention = self.config.audit.retention().map_err(StartError::Config)?;
        serving.spawn(rz_platform::audit::pruner(
            audit.clone(),
            retention,
            serving.shutdown(),
        ));
        serving
            .run(|grpc| {
                grpc.add_service(NotificationServiceServer::new(api))
                    .add_service(rz_platform::audit::AuditApi::new(audit).server())
            })
            .await
    }
}
