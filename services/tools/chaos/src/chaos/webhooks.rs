//! The webhook path: every provider subscribes at the notification service with a URL of a local
//! HTTP receiver, which checks each POST's signature (`X-Regiozorg-Signature: sha256=<HMAC of the
//! body under the subscription's secret>`) and dedupes by the CloudEvent id, as a provider's system
//! must: a redelivery is answered 200 and skipped.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rz_proto::notification::v1 as npb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use sha2::Sha256;
use tokio::net::TcpListener;

use super::retry::{RetryStats, retry};

#[derive(Debug, Default, Clone)]
pub struct WebhookState {
    /// CloudEvent ids applied (once each).
    pub applied: HashSet<String>,
    /// AGB code -> subscription secret.
    pub secrets: HashMap<String, String>,
    /// Deliveries with a missing or wrong signature: (agb, event id).
    pub bad_signatures: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct WebhookStats {
    pub posts: AtomicU64,
    pub redeliveries: AtomicU64,
}

pub struct WebhookReceiver {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<WebhookState>>,
    pub stats: Arc<WebhookStats>,
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == hex.to_ascii_lowercase()
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1 (a free port) until the runtime ends.
    pub async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("webhook receiver: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("webhook receiver: {e}"))?;
        let state = Arc::new(Mutex::new(WebhookState::default()));
        let stats = Arc::new(WebhookStats::default());
        let (st, sx) = (state.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, sx) = (st.clone(), sx.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (st, sx) = (st.clone(), sx.clone());
                        async move { Ok::<_, hyper::Error>(handle(req, &st, &sx).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, stats })
    }

    /// Subscribes every provider of the register (all event types, all municipalities) with
    /// `http://<addr>/hook/<agb>`; keeps the secrets to verify the signatures.
    pub async fn subscribe_all(
        &self,
        registration: &str,
        notification: &str,
        retries: &RetryStats,
    ) -> Result<usize, String> {
        let t = std::time::Duration::from_secs(10);
        let r = RegistrationServiceClient::new(super::flows::channel(registration, t)?);
        let n = NotificationServiceClient::new(super::flows::channel(notification, t)?);
        let providers = retry(retries, || {
            let mut r = r.clone();
            async move { r.list_providers(reg::ListProvidersRequest {}).await }
        })
        .await
        .map_err(|s| format!("ListProviders: {s}"))?
        .into_inner()
        .providers;
        for p in &providers {
            let req = npb::CreateSubscriptionRequest {
                idempotency_key: format!("chaos-hook-{}", p.agb_code),
                agb_code: p.agb_code.clone(),
                url: format!("http://{}/hook/{}", self.addr, p.agb_code),
                ..Default::default()
            };
            let sub = retry(retries, || {
                let mut n = n.clone();
                let req = req.clone();
                async move { n.create_subscription(req).await }
            })
            .await
            .map_err(|s| format!("CreateSubscription for {}: {s}", p.agb_code))?
            .into_inner();
            if let Ok(mut st) = self.state.lock() {
                st.secrets.insert(p.agb_code.clone(), sub.secret);
            }
        }
        Ok(providers.len())
    }
}

async fn handle(
    req: Request<Incoming>,
    state: &Mutex<WebhookState>,
    stats: &WebhookStats,
) -> Response<Full<Bytes>> {
    let agb = req
        .uri()
        .path()
        .strip_prefix("/hook/")
        .unwrap_or_default()
        .to_owned();
    let signature = req
        .headers()
        .get("x-regiozorg-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST),
    };
    stats.posts.fetch_add(1, Ordering::Relaxed);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let Ok(mut st) = state.lock() else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let ok = st
        .secrets
        .get(&agb)
        .is_some_and(|secret| verify(secret, &body, &signature));
    if !ok {
        // A real receiver refuses it; the sender retries, and it is counted as evidence.
        st.bad_signatures.push((agb, id));
        return reply(StatusCode::UNAUTHORIZED);
    }
    if !st.applied.insert(id) {
        stats.redeliveries.fetch_add(1, Ordering::Relaxed);
    }
    reply(StatusCode::OK)
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_verify() {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(super::verify("s3cret", b"{}", &format!("sha256={hex}")));
        assert!(!super::verify("other", b"{}", &format!("sha256={hex}")));
        assert!(!super::verify("s3cret", b"{}", &hex));
    }
}
