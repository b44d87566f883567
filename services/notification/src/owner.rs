//! Who may touch what, where the policy table (`rz_platform::authz::policy`) leaves it to the
//! handler because the call names its subject by an id only: `ReplayDelivery` names a delivery,
//! and a provider may replay only a delivery to its own subscription (an operator any). A refusal
//! is PERMISSION_DENIED naming the rule `notification.replay_own_delivery`; a call without a
//! caller (no authorisation layer ran) is UNAUTHENTICATED.

use rz_platform::ApiError;
use rz_platform::identity::{Caller, Organisation};

pub use rz_platform::identity::require_caller as caller;

/// `ReplayDelivery`: whether `caller` may replay delivery `id`, which went to a subscription of
/// provider `agb_code`.
pub fn may_replay(
    caller: &Caller,
    id: &impl std::fmt::Display,
    agb_code: &str,
) -> Result<(), ApiError> {
    let own = match &caller.organisation {
        Organisation::Operator(_) => true,
        Organisation::Provider(a) => a.as_str() == agb_code,
        Organisation::Municipality(_) | Organisation::Service(_) => false,
    };
    if own {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "notification.replay_own_delivery: delivery {id} is not to a subscription of yours ({} {})",
            caller.kind().as_str(),
            caller.organisation.id()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rz_domain::{AgbCode, GemeenteCode};
    use tonic::{Code, Request, Status};

    fn provider(agb: &str) -> Caller {
        Caller::organisation(Organisation::Provider(AgbCode::parse(agb).unwrap()))
    }

    #[test]
    fn no_caller_is_unauthenticated() {
        assert_eq!(
            caller(&Request::new(())).unwrap_err().code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn a_provider_replays_its_own_deliveries_only() {
        may_replay(&provider("03000001"), &"d1", "03000001").unwrap();
        may_replay(
            &Caller::organisation(Organisation::Operator("ops".into())),
            &"d1",
            "03000001",
        )
        .unwrap();
        for other in [
            provider("03000002"),
            Caller::organisation(Organisation::Municipality(
                GemeenteCode::parse("0222").unwrap(),
            )),
            Caller::organisation(Organisation::Service("assignment".into())),
        ] {
            let status = Status::from(may_replay(&other, &"d1", "03000001").unwrap_err());
            assert_eq!(status.code(), Code::PermissionDenied);
            assert!(
                status
                    .message()
                    .starts_with("notification.replay_own_delivery"),
                "{}",
                status.message()
            );
        }
    }
}
