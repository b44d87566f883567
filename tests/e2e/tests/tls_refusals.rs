//! What the region refuses at its door, over the wire: who may not connect at all (no
//! certificate, a certificate of another CA, an expired one, one that names no organisation),
//! staff tokens that do not hold (another key, expired, another municipality), callers acting for
//! someone else (a provider naming another provider, Doetinchem at Aalten's access instance, a
//! provider asking for a client's personal data) and a caller over its rate limit. Each refusal
//! is shown against the same call that succeeds for the right caller, and where a refused call
//! would have written something, that nothing was written.
//!
//! (The whole policy table, every RPC by every kind of caller, is walked in `policy_table.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rz_platform::tls::TlsConfig;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_stack::{Issue, Landscape, M, OPERATOR, P1, P2, Role, Stack, Staff, bsn, resident_request};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Aalten, the other municipality with an access instance here.
const AALTEN: &str = "0197";

fn register(agb: &str) -> reg::RegisterProviderRequest {
    reg::RegisterProviderRequest {
        idempotency_key: format!("reg-{agb}"),
        agb_code: agb.into(),
        name: "Zorg Zonder Toegang BV".into(),
        legal_form: "bv".into(),
        kvk_number: "41234567".into(),
    }
}

/// TLS that trusts the region's CA and presents no certificate.
fn anonymous(url: &str, ca: &TlsConfig) -> Channel {
    let pem = std::fs::read(ca.ca.as_ref().unwrap()).unwrap();
    Endpoint::from_shared(url.replacen("http://", "https://", 1))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
        .unwrap()
        .connect_lazy()
}

/// The provider `agb` is not in the register (as the operator sees it).
async fn not_registered(stack: &Stack, agb: &str) {
    let err = stack
        .registration()
        .get_provider(reg::GetProviderRequest {
            agb_code: agb.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{agb} was registered: {err:?}");
}

/// A call refused in the TLS handshake: the server's TLS alert (`alert`, e.g. CertificateExpired)
/// as a transport error, not an answer of the service (which would be UNAUTHENTICATED or
/// PERMISSION_DENIED from the authorisation layer, or the handler's own).
fn assert_handshake_refused(
    result: Result<tonic::Response<reg::Provider>, tonic::Status>,
    alert: &str,
    what: &str,
) {
    let err = result.expect_err(what);
    let seen = format!("{err:?}");
    assert!(
        err.code() == Code::Unknown
            && seen.contains("received fatal alert")
            && seen.contains(alert),
        "{what}: the handshake should have failed with {alert}, got {seen}"
    );
}

#[tokio::test]
async fn certificates_the_region_does_not_trust_are_refused_before_anything_runs() {
    let stack = Stack::builder().registration().start().await;
    let url = stack.registration_endpoint();
    let operator = stack.pki().tls(OPERATOR);

    // The operator registers a provider: the call the others try.
    let mut ok = RegistrationServiceClient::new(stack.channel_as(&url, &operator).await);
    ok.register_provider(register("03099001")).await.unwrap();

    // Without a client certificate: UNAUTHENTICATED, nothing registered.
    let err = RegistrationServiceClient::new(anonymous(&url, &operator))
        .register_provider(register("03099002"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    not_registered(&stack, "03099002").await;

    // An operator's certificate of another CA (trusting ours, presenting theirs): the handshake
    // fails.
    let other_dir = stack.pki().dir().with_extension("foreign");
    let foreign =
        rz_stack::rz_pki::generate(&other_dir, &rz_stack::rz_pki::PkiSpec::region(&[], &[]))
            .unwrap();
    let foreign_operator = foreign.tls(OPERATOR);
    let other_ca = TlsConfig {
        ca: operator.ca.clone(),
        ..foreign_operator.clone()
    };
    let result = RegistrationServiceClient::new(stack.channel_as(&url, &other_ca).await)
        .register_provider(register("03099003"))
        .await;
    assert_handshake_refused(result, "", "a certificate of another CA");
    not_registered(&stack, "03099003").await;

    // The operator's name on an expired certificate of our CA: the handshake fails.
    let expired = stack
        .pki()
        .issue(
            "operator-expired",
            &Issue {
                urn: Some("urn:regiozorg:operator:ops".into()),
                serial_number: None,
                valid_from_days: -10,
                valid_days: 2,
            },
        )
        .unwrap();
    let result = RegistrationServiceClient::new(stack.channel_as(&url, &expired).await)
        .register_provider(register("03099004"))
        .await;
    assert_handshake_refused(result, "CertificateExpired", "an expired certificate");
    not_registered(&stack, "03099004").await;

    // A valid certificate of our CA that names no organisation (no urn:regiozorg SAN, a
    // serialNumber the region does not map): UNAUTHENTICATED.
    let nobody = stack
        .pki()
        .issue(
            "unmapped",
            &Issue {
                urn: None,
                serial_number: Some("00000009999999999000".into()),
                valid_from_days: -1,
                valid_days: 5,
            },
        )
        .unwrap();
    let err = RegistrationServiceClient::new(stack.channel_as(&url, &nobody).await)
        .register_provider(register("03099005"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    not_registered(&stack, "03099005").await;

    // Even a read that anyone of the region may make.
    let err = RegistrationServiceClient::new(stack.channel_as(&url, &nobody).await)
        .get_catalogue(reg::GetCatalogueRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let _ = std::fs::remove_dir_all(&other_dir);
}

#[tokio::test]
async fn staff_tokens_must_be_signed_by_the_region_current_and_of_the_calling_municipality() {
    let stack = Stack::builder().access(M).start().await;
    let mut access = stack.access(M);

    // A consulent of Doetinchem with a valid token registers and reads a resident.
    let consulent = stack.staff(M, Role::Consulent);
    let b = bsn(7001);
    access
        .register_resident(consulent.request(resident_request(&b, "1980-01-01")))
        .await
        .unwrap();
    let read = |bsn: &str| acc::GetResidentRequest {
        bsn: bsn.into(),
        client_key: String::new(),
    };
    access
        .get_resident(consulent.request(read(&b)))
        .await
        .unwrap();

    let other_key = stack.pki().dir().with_extension("other-key");
    let foreign =
        rz_stack::rz_pki::generate(&other_key, &rz_stack::rz_pki::PkiSpec::region(&[], &[]))
            .unwrap();
    let tokens = [
        (
            "signed by a key the region does not know",
            foreign
                .staff_token(M, "consulent-x", "X", "consulent", 3600)
                .unwrap(),
        ),
        (
            "expired",
            stack
                .pki()
                .staff_token(M, "consulent-x", "X", "consulent", -600)
                .unwrap(),
        ),
        (
            "of another municipality",
            stack
                .pki()
                .staff_token(AALTEN, "consulent-x", "X", "consulent", 3600)
                .unwrap(),
        ),
    ];
    for (i, (what, token)) in tokens.into_iter().enumerate() {
        let staff = Staff::from_token(token);
        let err = access
            .get_resident(staff.request(read(&b)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "a token {what}: {err:?}");
        // Nothing is written with it either.
        let other = bsn(7100 + i as u32);
        let err = access
            .register_resident(staff.request(resident_request(&other, "1980-01-01")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "a token {what}: {err:?}");
        let err = access
            .get_resident(consulent.request(read(&other)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "registered with a token {what}");
    }

    // A provider may not pass a person's token at all.
    let err = stack
        .as_provider(P1)
        .registration()
        .get_catalogue(consulent.request(reg::GetCatalogueRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let _ = std::fs::remove_dir_all(&other_key);
}

#[tokio::test]
async fn callers_act_for_themselves_only() {
    let stack = Stack::builder()
        .landscape(Landscape::standard())
        .access(M)
        .access(AALTEN)
        .assignment()
        .start()
        .await;

    // A provider lists its own assignments, not another provider's.
    let mut p1 = stack.as_provider(P1).assignment();
    let own = |agb: &str| asg::ListProviderAssignmentsRequest {
        agb_code: agb.into(),
        municipality: String::new(),
    };
    p1.list_provider_assignments(own(P1)).await.unwrap();
    let err = p1.list_provider_assignments(own(P2)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Aalten reads its own resident; Doetinchem may not read it at Aalten's instance.
    let b = bsn(7201);
    let mut aalten = stack.access(AALTEN);
    let resident = aalten
        .register_resident(acc::RegisterResidentRequest {
            address: Some(acc::Address {
                street: "Markt".into(),
                house_number: "1".into(),
                postal_code: "7121CS".into(),
                city: "Aalten".into(),
                municipality: AALTEN.into(),
            }),
            ..resident_request(&b, "1980-01-01")
        })
        .await
        .unwrap()
        .into_inner();
    let read = acc::GetResidentRequest {
        bsn: b.clone(),
        client_key: String::new(),
    };
    aalten.get_resident(read.clone()).await.unwrap();
    let err = stack
        .as_municipality(M)
        .access(AALTEN)
        .get_resident(read.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Not with a staff token of Doetinchem either.
    let err = stack
        .as_municipality(M)
        .access(AALTEN)
        .get_resident(stack.staff(M, Role::Teamleider).request(read))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The client's personal data for an assignment: the assignment service, never a provider.
    let for_assignment = acc::GetClientForAssignmentRequest {
        client_key: resident.client_key.clone(),
    };
    let client = stack
        .as_service("assignment")
        .access(AALTEN)
        .get_client_for_assignment(for_assignment.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(client.bsn, b);
    let err = stack
        .as_provider(P1)
        .access(AALTEN)
        .get_client_for_assignment(for_assignment.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Nor the municipality itself through this door, nor the operator.
    for party in [stack.as_municipality(AALTEN), stack.as_operator()] {
        let err = party
            .access(AALTEN)
            .get_client_for_assignment(for_assignment.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::PermissionDenied,
            "{}: {err:?}",
            party.folder()
        );
    }
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_is_told_to_slow_down() {
    let stack = Stack::builder()
        .registration()
        .registration_config(|c| {
            c.limits.provider_per_second = 1;
            c.limits.provider_burst = 2;
        })
        .start()
        .await;
    let catalogue = || reg::GetCatalogueRequest {};

    let mut p1 = stack.as_provider(P1).registration();
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(match p1.get_catalogue(catalogue()).await {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        });
    }
    assert_eq!(codes[0], Code::Ok, "{codes:?}");
    assert!(
        codes.contains(&Code::ResourceExhausted),
        "six calls at once within a limit of 1/s (burst 2): {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)),
        "{codes:?}"
    );

    // The limit is per caller: another provider and the operator (not limited here) go on.
    stack
        .as_provider(P2)
        .registration()
        .get_catalogue(catalogue())
        .await
        .unwrap();
    for _ in 0..6 {
        stack
            .registration()
            .get_catalogue(catalogue())
            .await
            .unwrap();
    }
}
