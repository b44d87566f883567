//! Authorisation on every call, once, as a server layer: who is calling (the client certificate
//! and, for staff, the token: [`crate::identity`]), whether that kind of caller may call this RPC
//! and whether the request's bound fields name the caller itself ([`policy::POLICY`]), and the
//! caller's rate limit. A refused call never reaches the handler:
//!
//! - no certificate, a certificate that names no organisation, a bad token: UNAUTHENTICATED;
//! - a caller the rule does not allow, or a request naming another provider or municipality:
//!   PERMISSION_DENIED;
//! - over the caller's rate: RESOURCE_EXHAUSTED;
//! - a request body that is not the method's message (bad protobuf, a string that is not UTF-8):
//!   INVALID_ARGUMENT naming the message type;
//! - a request that breaks the input rules ([`crate::input`]: lengths, control characters, counts):
//!   INVALID_ARGUMENT with a `google.rpc.BadRequest` violation per field.
//!
//! Refusals are logged with the method, the organisation and the reason: organisation codes, never
//! personal data. The handler finds the [`Caller`] in the request's extensions.

pub mod policy;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use rz_domain::GemeenteCode;
use serde::Deserialize;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::identity::{Caller, Identities, Kind, Organisation};

/// Who a rule lets call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Any organisation of the region.
    Anyone,
    Operator,
    /// The platform's service of this name.
    Service(&'static str),
    /// A provider; the listed request fields (dotted paths) must hold its own AGB code.
    Provider(&'static [&'static str]),
    /// A municipality; the listed request fields must hold its own CBS code.
    Municipality(&'static [&'static str]),
    /// The municipality whose access instance this is.
    OwnMunicipality,
}

impl Allow {
    /// Whether the rule admits `caller` at a service whose instance belongs to `instance`.
    fn admits(&self, caller: &Caller, instance: Option<&GemeenteCode>) -> bool {
        match (self, &caller.organisation) {
            (Allow::Anyone, _) => true,
            (Allow::Operator, Organisation::Operator(_)) => true,
            (Allow::Service(name), Organisation::Service(s)) => s == name,
            (Allow::Provider(_), Organisation::Provider(_)) => true,
            (Allow::Municipality(_), Organisation::Municipality(_)) => true,
            (Allow::OwnMunicipality, Organisation::Municipality(g)) => Some(g) == instance,
            _ => false,
        }
    }

    /// The request fields that must hold the caller's own code.
    pub fn bindings(&self) -> &'static [&'static str] {
        match self {
            Allow::Provider(b) | Allow::Municipality(b) => b,
            _ => &[],
        }
    }
}

/// `[limits]`: calls per second (and burst) per calling organisation (and person), by kind of
/// caller. 0 turns a limit off. The platform's own services are not limited.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub provider_per_second: u32,
    pub provider_burst: u32,
    pub municipality_per_second: u32,
    pub municipality_burst: u32,
    pub operator_per_second: u32,
    pub operator_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            provider_per_second: 50,
            provider_burst: 200,
            municipality_per_second: 200,
            municipality_burst: 1000,
            operator_per_second: 500,
            operator_burst: 5000,
        }
    }
}

fn limiter(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    PermissionDenied(String),
    ResourceExhausted(String),
    InvalidArgument(String),
    /// The request is larger than the method accepts.
    OutOfRange(String),
    /// Fields that break the input rules ([`crate::input`]).
    BadRequest(Vec<rz_domain::FieldError>),
}

impl Refusal {
    pub fn status(&self) -> Status {
        match self {
            Refusal::Unauthenticated(m) => Status::unauthenticated(m),
            Refusal::PermissionDenied(m) => Status::permission_denied(m),
            Refusal::ResourceExhausted(m) => Status::resource_exhausted(m),
            Refusal::InvalidArgument(m) => Status::invalid_argument(m),
            Refusal::OutOfRange(m) => Status::out_of_range(m),
            Refusal::BadRequest(errors) => crate::ApiError::InvalidArgument(errors.clone()).into(),
        }
    }
}

/// The decisions of the layer, without I/O: built once per service.
pub struct Authz {
    identities: Identities,
    instance: Option<GemeenteCode>,
    /// Per method: its rule and its request message (looked up once per call, not scanned).
    methods: HashMap<&'static str, (&'static policy::Rule, MessageDescriptor)>,
    limits: HashMap<Kind, DefaultKeyedRateLimiter<String>>,
    /// The largest request message the layer reads to check its fields: the same as the
    /// service's gRPC decoding limit.
    max_message: usize,
}

/// tonic's default limit of a decoded request message.
pub const DEFAULT_MAX_MESSAGE: usize = 4 * 1024 * 1024;

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("identities", &self.identities)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The request message of `method` (`/package.Service/Method`) in `pool`.
pub fn input_of(pool: &DescriptorPool, method: &str) -> Option<MessageDescriptor> {
    let (service, name) = method.strip_prefix('/')?.split_once('/')?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == name)
        .map(|m| m.input())
}

/// The descriptors of every regiozorg API.
pub fn descriptors() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(rz_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
}

impl Authz {
    /// `instance`: the municipality an access instance serves (None for regional services).
    pub fn new(
        identities: Identities,
        instance: Option<GemeenteCode>,
        limits: &LimitsConfig,
    ) -> Result<Self, String> {
        let pool = descriptors()?;
        let mut inputs = HashMap::new();
        for rule in policy::POLICY {
            let input = input_of(&pool, rule.method)
                .ok_or_else(|| format!("the policy names {}, which no API has", rule.method))?;
            inputs.insert(rule.method, (rule, input));
        }
        let mut by_kind = HashMap::new();
        for (kind, rate, burst) in [
            (
                Kind::Provider,
                limits.provider_per_second,
                limits.provider_burst,
            ),
            (
                Kind::Municipality,
                limits.municipality_per_second,
                limits.municipality_burst,
            ),
            (
                Kind::Operator,
                limits.operator_per_second,
                limits.operator_burst,
            ),
        ] {
            if let Some(l) = limiter(rate, burst) {
                by_kind.insert(kind, l);
            }
        }
        Ok(Self {
            identities,
            instance,
            methods: inputs,
            limits: by_kind,
            max_message: DEFAULT_MAX_MESSAGE,
        })
    }

    /// Reads request messages up to `bytes` (a service that accepts larger messages than tonic's
    /// default says so here too).
    pub fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// The caller named by the client certificate (`peer`, DER of the leaf) and, for staff, the
    /// bearer token.
    pub fn identify(&self, peer: Option<&[u8]>, bearer: Option<&str>) -> Result<Caller, Refusal> {
        let der = peer.ok_or_else(|| {
            Refusal::Unauthenticated(
                "no client certificate: call with a certificate of the region's CA".into(),
            )
        })?;
        let organisation = self
            .identities
            .organisation(der)
            .map_err(|e| Refusal::Unauthenticated(e.to_string()))?;
        let person = match bearer {
            None => None,
            Some(token) => Some(
                self.identities
                    .person(&organisation, token)
                    .map_err(|e| Refusal::Unauthenticated(e.to_string()))?,
            ),
        };
        Ok(Caller {
            organisation,
            person,
        })
    }

    fn method(&self, method: &str) -> Result<&(&'static policy::Rule, MessageDescriptor), Refusal> {
        self.methods.get(method).ok_or_else(|| {
            Refusal::PermissionDenied(format!("{method} has no authorisation policy"))
        })
    }

    /// Whether `caller` may call `method`; the rule that admits it.
    pub fn admit(&self, method: &str, caller: &Caller) -> Result<&'static Allow, Refusal> {
        let (rule, _) = self.method(method)?;
        rule.allow
            .iter()
            .find(|a| a.admits(caller, self.instance.as_ref()))
            .ok_or_else(|| {
                let whom = match (&caller.organisation, &self.instance) {
                    (Organisation::Municipality(g), Some(own))
                        if rule.allow.contains(&Allow::OwnMunicipality) =>
                    {
                        format!("this access instance serves municipality {own}, not {g}")
                    }
                    _ => format!("a {} may not call it", caller.kind().as_str()),
                };
                Refusal::PermissionDenied(format!("{method}: {whom}"))
            })
    }

    /// The caller's rate limit.
    pub fn limit(&self, caller: &Caller) -> Result<(), Refusal> {
        let Some(limiter) = self.limits.get(&caller.kind()) else {
            return Ok(());
        };
        let key = match &caller.person {
            Some(p) => format!("{}#{}", caller.organisation.urn(), p.subject),
            None => caller.organisation.urn(),
        };
        limiter.check_key(&key).map_err(|_| {
            Refusal::ResourceExhausted(format!(
                "{}: too many calls; slow down and retry",
                caller.organisation
            ))
        })
    }

    /// Decodes the request message of `method` (the gRPC message, without its frame).
    pub fn decode(&self, method: &str, message: &[u8]) -> Result<DynamicMessage, Refusal> {
        let (_, input) = self.method(method)?;
        DynamicMessage::decode(input.clone(), message).map_err(|e| {
            Refusal::InvalidArgument(format!(
                "the request is not a valid {}: {e}",
                input.full_name()
            ))
        })
    }

    /// Checks that every bound field of the request (the gRPC message, without its frame) holds
    /// the caller's own code.
    pub fn check_fields(
        &self,
        method: &str,
        bindings: &[&str],
        caller: &Caller,
        message: &[u8],
    ) -> Result<(), Refusal> {
        if bindings.is_empty() {
            return Ok(());
        }
        let msg = self.decode(method, message)?;
        check_bindings(bindings, caller, &msg)
    }
}

/// Checks that every bound field of the decoded request holds the caller's own code.
fn check_bindings(bindings: &[&str], caller: &Caller, msg: &DynamicMessage) -> Result<(), Refusal> {
    let own = caller.organisation.id();
    let what = match caller.kind() {
        Kind::Provider => "AGB code",
        _ => "CBS code",
    };
    for path in bindings {
        let values = field_strings(msg, path);
        if values.is_empty() || values.iter().any(|v| v != own) {
            let named = if values.is_empty() {
                "names none".to_owned()
            } else {
                format!("names {}", values.join(", "))
            };
            return Err(Refusal::PermissionDenied(format!(
                "`{path}` must be your own {what} ({own}); the request {named}"
            )));
        }
    }
    Ok(())
}

/// The string values at a dotted field path (a repeated field gives each element; an unset or
/// empty field none).
fn field_strings(msg: &DynamicMessage, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect_strings(msg, path, &mut out);
    out
}

// Walks the path by reference: the request is not copied.
fn collect_strings(msg: &DynamicMessage, path: &str, out: &mut Vec<String>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(field) = msg.descriptor().get_field_by_name(head) else {
        return;
    };
    let value = msg.get_field(&field);
    let items = match value.as_ref() {
        Value::List(items) => items.as_slice(),
        v => std::slice::from_ref(v),
    };
    for item in items {
        match (item, rest) {
            (Value::String(s), None) if !s.is_empty() => out.push(s.clone()),
            (Value::Message(inner), Some(rest)) => collect_strings(inner, rest, out),
            _ => {}
        }
    }
}

/// The server layer (see the module doc).
#[derive(Debug, Clone)]
pub struct AuthzLayer(Arc<Authz>);

impl AuthzLayer {
    pub fn new(authz: Authz) -> Self {
        Self(Arc::new(authz))
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = AuthzService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthzService {
            inner,
            authz: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthzService<S> {
    inner: S,
    authz: Arc<Authz>,
}

type Body = tonic::body::Body;

impl<S, ResBody> tower::Service<http::Request<Body>> for AuthzService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authz = self.authz.clone();
        Box::pin(async move {
            let method = req.uri().path().to_owned();
            if method.starts_with("/grpc.health.v1.Health/") {
                return inner.call(req).await;
            }
            match authorise(&authz, &method, req).await {
                Ok(req) => inner.call(req).await,
                Err((refusal, org)) => {
                    tracing::warn!(
                        method = %method,
                        caller = %org,
                        reason = ?refusal,
                        "call refused"
                    );
                    Ok(refusal.status().into_http())
                }
            }
        })
    }
}

async fn authorise(
    authz: &Authz,
    method: &str,
    mut req: http::Request<Body>,
) -> Result<http::Request<Body>, (Refusal, String)> {
    let peer = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs());
    let leaf = peer.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
    let bearer = match req.headers().get(http::header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    (
                        Refusal::Unauthenticated(
                            "the authorization header must be `Bearer <token>`".into(),
                        ),
                        "-".to_owned(),
                    )
                })?
                .to_owned(),
        ),
    };
    let caller = authz
        .identify(leaf, bearer.as_deref())
        .map_err(|r| (r, "-".to_owned()))?;
    let org = caller.organisation.to_string();
    let allow = authz.admit(method, &caller).map_err(|r| (r, org.clone()))?;
    authz.limit(&caller).map_err(|r| (r, org.clone()))?;
    // Every request is read and decoded here (unary: one message): its bound fields must name
    // the caller, then its text must keep the input rules, before the handler sees it.
    let (parts, body) = req.into_parts();
    // The message plus its 5-byte frame.
    let limit = authz.max_message + 5;
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            let refusal = if e.is::<http_body_util::LengthLimitError>() {
                Refusal::OutOfRange(format!(
                    "the request is larger than {} bytes",
                    authz.max_message
                ))
            } else {
                Refusal::InvalidArgument(format!("the request body cannot be read: {e}"))
            };
            (refusal, org.clone())
        })?
        .to_bytes();
    let message = unframe(&bytes).map_err(|r| (r, org.clone()))?;
    let decoded = authz
        .decode(method, message)
        .map_err(|r| (r, org.clone()))?;
    check_bindings(allow.bindings(), &caller, &decoded).map_err(|r| (r, org.clone()))?;
    crate::input::check(&decoded).map_err(|e| (Refusal::BadRequest(e), org.clone()))?;
    req = http::Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)));
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The one message of a unary gRPC request body: a 5-byte frame (compression flag, length) and
/// the message.
fn unframe(body: &Bytes) -> Result<&[u8], Refusal> {
    let bad = |why: &str| Refusal::InvalidArgument(format!("the request body {why}"));
    if body.len() < 5 {
        return Err(bad("holds no gRPC message"));
    }
    if body[0] != 0 {
        return Err(bad("is compressed; send it uncompressed"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + len)
        .filter(|m| 5 + m.len() == body.len())
        .ok_or_else(|| bad("is not one gRPC message"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityConfig;

    fn authz(instance: Option<&str>) -> Authz {
        Authz::new(
            Identities::from_config(&IdentityConfig::default()).unwrap(),
            instance.map(|g| GemeenteCode::parse(g).unwrap()),
            &LimitsConfig::default(),
        )
        .unwrap()
    }

    fn caller(urn: &str) -> Caller {
        Caller::organisation(Organisation::parse_urn(urn).unwrap())
    }

    #[test]
    fn every_rule_names_a_method_of_an_api_and_every_method_has_a_rule() {
        let pool = descriptors().unwrap();
        for service in pool.services() {
            if !service.full_name().starts_with("regiozorg.") {
                continue;
            }
            for m in service.methods() {
                let path = format!("/{}/{}", service.full_name(), m.name());
                assert!(policy::rule_for(&path).is_some(), "{path} has no policy");
            }
        }
        authz(None);
    }

    #[test]
    fn bound_fields_must_name_the_caller() {
        use prost::Message;
        let a = authz(None);
        let method = "/regiozorg.assignment.v1.AssignmentService/ListProviderAssignments";
        let own = caller("urn:regiozorg:provider:12345678");
        let allow = a.admit(method, &own).unwrap();
        let req = rz_proto::assignment::v1::ListProviderAssignmentsRequest {
            agb_code: "12345678".into(),
            municipality: String::new(),
        };
        a.check_fields(method, allow.bindings(), &own, &req.encode_to_vec())
            .unwrap();
        let other = rz_proto::assignment::v1::ListProviderAssignmentsRequest {
            agb_code: "87654321".into(),
            municipality: String::new(),
        };
        let refused = a
            .check_fields(method, allow.bindings(), &own, &other.encode_to_vec())
            .unwrap_err();
        assert!(matches!(refused, Refusal::PermissionDenied(m) if m.contains("agb_code")));
        let none = a
            .check_fields(method, allow.bindings(), &own, &[])
            .unwrap_err();
        assert!(matches!(none, Refusal::PermissionDenied(m) if m.contains("names none")));
        let garbage = a
            .check_fields(method, allow.bindings(), &own, &[0xff, 0xff, 0xff])
            .unwrap_err();
        assert!(matches!(garbage, Refusal::InvalidArgument(_)));
    }

    #[test]
    fn an_access_instance_admits_its_own_municipality_only() {
        let a = authz(Some("0222"));
        let method = "/regiozorg.access.v1.AccessService/GetResident";
        a.admit(method, &caller("urn:regiozorg:municipality:0222"))
            .unwrap();
        for other in [
            "urn:regiozorg:municipality:0197",
            "urn:regiozorg:provider:12345678",
            "urn:regiozorg:operator:ops",
            "urn:regiozorg:service:assignment",
        ] {
            assert!(matches!(
                a.admit(method, &caller(other)),
                Err(Refusal::PermissionDenied(_))
            ));
        }
        let blocks = "/regiozorg.access.v1.AccessService/GetClientForAssignment";
        a.admit(blocks, &caller("urn:regiozorg:service:assignment"))
            .unwrap();
        assert!(
            a.admit(blocks, &caller("urn:regiozorg:provider:12345678"))
                .is_err()
        );
    }

    #[test]
    fn an_unknown_method_is_refused() {
        let a = authz(None);
        assert!(matches!(
            a.admit("/x.Y/Z", &caller("urn:regiozorg:operator:ops")),
            Err(Refusal::PermissionDenied(_))
        ));
    }

    #[test]
    fn the_rate_limit_is_per_caller() {
        let a = Authz::new(
            Identities::from_config(&IdentityConfig::default()).unwrap(),
            None,
            &LimitsConfig {
                provider_per_second: 1,
                provider_burst: 2,
                ..LimitsConfig::default()
            },
        )
        .unwrap();
        let p = caller("urn:regiozorg:provider:12345678");
        a.limit(&p).unwrap();
        a.limit(&p).unwrap();
        assert!(matches!(a.limit(&p), Err(Refusal::ResourceExhausted(_))));
        a.limit(&caller("urn:regiozorg:provider:87654321")).unwrap();
        for _ in 0..100 {
            a.limit(&caller("urn:regiozorg:service:assignment"))
                .unwrap();
        }
    }

    #[test]
    fn frames_are_read_strictly() {
        assert_eq!(
            unframe(&Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])).unwrap(),
            &[8, 1]
        );
        for bad in [
            &[0u8, 0, 0][..],
            &[1, 0, 0, 0, 0][..],
            &[0, 0, 0, 0, 3, 8, 1][..],
            &[0, 0, 0, 0, 1, 8, 1][..],
        ] {
            assert!(unframe(&Bytes::copy_from_slice(bad)).is_err());
        }
    }
}
