//! The audit trail (NEN 7513) as a municipality and an operator use it: every read of a
//! resident's personal data at access is listed for that resident (who, which organisation and
//! person, what), another municipality cannot list it, and the operator verifies the chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rz_proto::access::v1 as acc;
use rz_proto::audit::v1 as aud;
use rz_stack::{Role, Stack, bsn, resident_request};
use tonic::Code;

#[tokio::test]
async fn a_municipality_lists_who_read_its_residents_data_and_the_operator_verifies_the_chain() {
    let stack = Stack::builder()
        .access("0222")
        .municipalities(&["0197"])
        .start()
        .await;
    let resident = bsn(7513);
    let key = stack.key_of(&resident);

    // A consulent registers and reads the resident; the assignment service fetches the client
    // block; another resident is read too (not in this resident's list).
    let staff = stack.staff("0222", Role::Consulent);
    let mut access = stack.access("0222");
    access
        .register_resident(staff.request(resident_request(&resident, "2012-03-04")))
        .await
        .unwrap();
    let mut purpose = staff.request(acc::GetResidentRequest {
        bsn: resident.clone(),
        client_key: String::new(),
    });
    purpose
        .metadata_mut()
        .insert("x-purpose", "onderzoek jeugdhulp".parse().unwrap());
    access.get_resident(purpose).await.unwrap();
    access
        .register_resident(resident_request(&bsn(7514), "2011-01-01"))
        .await
        .unwrap();
    stack
        .as_service("assignment")
        .access("0222")
        .get_client_for_assignment(acc::GetClientForAssignmentRequest {
            client_key: key.clone(),
        })
        .await
        .unwrap();

    // The municipality asks by BSN, the resident's right to know who looked.
    let entries = stack
        .as_municipality("0222")
        .audit("access:0222")
        .list_client_entries(aud::ListClientEntriesRequest {
            municipality: "0222".into(),
            client_key: String::new(),
            bsn: resident.clone(),
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let seen: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.organisation.as_str(),
                e.person.as_str(),
                e.purpose.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "read_client_block",
                "urn:regiozorg:service:assignment",
                "",
                ""
            ),
            (
                "read_resident",
                "urn:regiozorg:municipality:0222",
                "consulent-0222",
                "onderzoek jeugdhulp"
            ),
            (
                "register_resident",
                "urn:regiozorg:municipality:0222",
                "consulent-0222",
                ""
            ),
        ],
        "newest first, this resident only"
    );
    for e in &entries {
        assert_eq!(e.client_key, key);
        assert_eq!(e.municipality, "0222");
        assert_eq!(e.system, "access");
        assert!(!format!("{e:?}").contains(&resident), "no BSN in an entry");
    }

    // Another municipality may not list Doetinchem's residents, nor verify the chain.
    let refused = stack
        .as_municipality("0197")
        .audit("access:0222")
        .list_client_entries(aud::ListClientEntriesRequest {
            municipality: "0222".into(),
            client_key: key.clone(),
            bsn: String::new(),
            page_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = stack
        .as_municipality("0222")
        .audit("access:0222")
        .verify_chain(aud::VerifyChainRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let verified = stack
        .as_operator()
        .audit("access:0222")
        .verify_chain(aud::VerifyChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{}", verified.detail);
    assert!(verified.entries >= 4, "{verified:?}");
}
