//! The webhook path: every provider subscribes at the notification service with a URL of a local
//! HTTP receiver ([`WebhookReceiver`] of rz-workload), which checks each POST's signature and
//! dedupes by the CloudEvent id, as a provider's system must: a redelivery is answered as a
//! success and skipped.

use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_workload::dial::{OPERATOR, provider};
pub use rz_workload::webhook::{Receipts, Snapshot as WebhookState, WebhookReceiver};
use rz_workload::{Dial, Driver};

use super::retry::{RetryStats, retry};

/// Subscribes every provider of the register (all event types, all municipalities) with
/// `http://<addr>/hook/<agb>` of `hooks`, which keeps the secrets to verify the signatures.
pub async fn subscribe_all(
    dial: &Dial,
    hooks: &WebhookReceiver,
    registration: &str,
    notification: &str,
    retries: &RetryStats,
) -> Result<usize, String> {
    let t = std::time::Duration::from_secs(10);
    let r = RegistrationServiceClient::new(dial.lazy(OPERATOR, registration, t)?);
    let providers = retry(retries, || {
        let mut r = r.clone();
        async move { r.list_providers(reg::ListProvidersRequest {}).await }
    })
    .await
    .map_err(|s| format!("ListProviders: {s}"))?
    .into_inner()
    .providers;
    for p in &providers {
        // A subscription is the provider's own: it subscribes with its own certificate.
        let n =
            NotificationServiceClient::new(dial.lazy(&provider(&p.agb_code), notification, t)?);
        let req = Driver::new("chaos").subscription(&p.agb_code, hooks.url(&p.agb_code));
        let sub = retry(retries, || {
            let mut n = n.clone();
            let req = req.clone();
            async move { n.create_subscription(req).await }
        })
        .await
        .map_err(|s| format!("CreateSubscription for {}: {s}", p.agb_code))?
        .into_inner();
        // The secret is shown once: a retry whose first answer was lost gets the subscription
        // without it, and rotates it (the documented recovery).
        let secret = if sub.secret.is_empty() {
            let rotate = rz_proto::notification::v1::RotateSubscriptionSecretRequest {
                agb_code: p.agb_code.clone(),
                subscription_id: sub.id.clone(),
            };
            retry(retries, || {
                let mut n = n.clone();
                let rotate = rotate.clone();
                async move { n.rotate_subscription_secret(rotate).await }
            })
            .await
            .map_err(|s| format!("RotateSubscriptionSecret for {}: {s}", p.agb_code))?
            .into_inner()
            .secret
        } else {
            sub.secret
        };
        hooks.add_secret(&p.agb_code, secret);
    }
    Ok(providers.len())
}
