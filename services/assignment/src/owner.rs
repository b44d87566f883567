//! Who may touch what, where the policy table (`rz_platform::authz::policy`) leaves it to the
//! handler because the call names its subject by an id only (its `owner` notes):
//!
//! | RPC | check | refused as |
//! |---|---|---|
//! | `ReportStartOfCare`, `ReportStopOfCare`, `RequestChange` | the request's `agb_code` is the caller's, and the assignment is that provider's (in the domain, before any change) | `start.assignment_of_provider`, `stop.assignment_of_provider`, `change.assignment_of_provider` |
//! | `UploadProviderMessage` | the request's `agb_code` is the caller's, and the XML's sender (Afzender) too | `upload.sender_is_caller` |
//! | `AnswerRequest` | the caller is a municipality and the provider request is for it | `answer.request_of_municipality` |
//! | `GetAssignment` | a provider sees its own assignments, a municipality its own municipality's | `get.assignment_of_caller` |
//!
//! Every refusal is PERMISSION_DENIED naming the rule ([`Error::Denied`]); a call without a caller
//! (no authorisation layer ran) is UNAUTHENTICATED.

use rz_domain::GemeenteCode;
use rz_platform::identity::{Caller, Organisation};

use crate::error::{Error, Result};

pub use rz_platform::identity::require_caller as caller;

/// A provider's own call: the caller is the provider the request names (`agb_code`). The layer
/// binds the field already; checked again because the handlers act on the request's code.
pub fn as_provider(caller: &Caller, agb_code: &str) -> Result<()> {
    match caller.provider() {
        Some(own) if own.as_str() == agb_code => Ok(()),
        Some(own) => Err(Error::denied(
            "caller.provider_named",
            format!("`agb_code` must be your own AGB code ({own}); the request names {agb_code}"),
        )),
        None => Err(Error::denied(
            "caller.provider_named",
            format!(
                "only a provider may make this call, not {}",
                caller.kind().as_str()
            ),
        )),
    }
}

/// `AnswerRequest`: the caller's municipality, which the provider request must be for.
pub fn as_municipality(caller: &Caller) -> Result<GemeenteCode> {
    caller.municipality().cloned().ok_or_else(|| {
        Error::denied(
            "answer.request_of_municipality",
            format!(
                "only a municipality answers a provider's request, not {}",
                caller.kind().as_str()
            ),
        )
    })
}

/// `AnswerRequest`: request `id` (for `municipality`) may be answered by municipality `by`.
pub fn request_of_municipality(
    by: &GemeenteCode,
    municipality: &GemeenteCode,
    id: &impl std::fmt::Display,
) -> Result<()> {
    if by == municipality {
        Ok(())
    } else {
        Err(Error::denied(
            "answer.request_of_municipality",
            format!("request {id} is not for municipality {by}"),
        ))
    }
}

/// `GetAssignment`: whether `caller` may see the assignment of `municipality` assigned to
/// `agb_code`. An operator sees every assignment; a service or any other caller none.
pub fn may_see_assignment(caller: &Caller, municipality: &str, agb_code: &str) -> Result<()> {
    let own = match &caller.organisation {
        Organisation::Operator(_) => true,
        Organisation::Provider(a) => a.as_str() == agb_code,
        Organisation::Municipality(g) => g.as_str() == municipality,
        Organisation::Service(_) => false,
    };
    if own {
        Ok(())
    } else {
        Err(Error::denied(
            "get.assignment_of_caller",
            format!(
                "the assignment is not yours ({} {})",
                caller.kind().as_str(),
                caller.organisation.id()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rz_domain::AgbCode;
    use tonic::{Code, Request, Status};

    fn provider(agb: &str) -> Caller {
        Caller::organisation(Organisation::Provider(AgbCode::parse(agb).unwrap()))
    }

    fn municipality(cbs: &str) -> Caller {
        Caller::organisation(Organisation::Municipality(
            GemeenteCode::parse(cbs).unwrap(),
        ))
    }

    fn operator() -> Caller {
        Caller::organisation(Organisation::Operator("ops".into()))
    }

    fn service(name: &str) -> Caller {
        Caller::organisation(Organisation::Service(name.into()))
    }

    fn denied(r: Result<()>, rule: &str) {
        let e = r.unwrap_err();
        assert_eq!(e.rule_id(), Some(rule));
        let status = Status::from(e);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().starts_with(rule), "{}", status.message());
    }

    #[test]
    fn no_caller_is_unauthenticated() {
        let r = Request::new(());
        assert_eq!(caller(&r).unwrap_err().code(), Code::Unauthenticated);
        let mut r = Request::new(());
        r.extensions_mut().insert(provider("03000001"));
        assert_eq!(caller(&r).unwrap(), provider("03000001"));
    }

    #[test]
    fn a_provider_acts_for_itself_only() {
        as_provider(&provider("03000001"), "03000001").unwrap();
        denied(
            as_provider(&provider("03000001"), "03000002"),
            "caller.provider_named",
        );
        denied(
            as_provider(&municipality("0222"), "03000001"),
            "caller.provider_named",
        );
        denied(
            as_provider(&operator(), "03000001"),
            "caller.provider_named",
        );
    }

    #[test]
    fn a_municipality_answers_its_own_requests() {
        let m = as_municipality(&municipality("0222")).unwrap();
        assert_eq!(m.as_str(), "0222");
        denied(
            as_municipality(&provider("03000001")).map(drop),
            "answer.request_of_municipality",
        );
        denied(
            as_municipality(&operator()).map(drop),
            "answer.request_of_municipality",
        );
        let aalten = GemeenteCode::parse("0197").unwrap();
        request_of_municipality(&m, &m, &"r1").unwrap();
        denied(
            request_of_municipality(&m, &aalten, &"r1"),
            "answer.request_of_municipality",
        );
    }

    #[test]
    fn who_sees_an_assignment() {
        may_see_assignment(&provider("03000001"), "0222", "03000001").unwrap();
        may_see_assignment(&municipality("0222"), "0222", "03000001").unwrap();
        may_see_assignment(&operator(), "0222", "03000001").unwrap();
        for other in [
            provider("03000002"),
            municipality("0197"),
            service("notification"),
        ] {
            denied(
                may_see_assignment(&other, "0222", "03000001"),
                "get.assignment_of_caller",
            );
        }
    }

    #[test]
    fn the_domain_refuses_another_providers_assignment_as_permission_denied() {
        let e = Error::denied("start.assignment_of_provider", "assignment 0222/1");
        assert_eq!(Status::from(e).code(), Code::PermissionDenied);
    }
}
