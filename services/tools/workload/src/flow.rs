//! The care flow's requests, as a municipality's access staff and the region send them: register
//! a resident, open a case, decide (grant or refuse), import existing care, subscribe a provider's
//! webhook. A [`Driver`] gives them the idempotency keys of one tool (`<prefix>-<what>-<n>`), so
//! that a step sent again, or a run repeated on the same data, is applied once.
//!
//! The tools send them their own way (the chaos run retries every call, the benchmarks time
//! them, the demo schedules them on dates); [`Driver::register`] and [`Driver::open`] send the
//! first steps once, as the demo and the benchmarks do.

use std::fmt::Display;

use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::notification::v1 as ntf;
use tonic::transport::Channel;

use crate::catalogue::Sub;
use crate::{residents, status_msg};

/// The reason a refused decision gives.
pub const REFUSAL_REASON: &str = "Voorliggende voorziening volstaat";

/// Builds (and for the first steps sends) a tool's care-flow requests with its idempotency keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver {
    prefix: &'static str,
}

impl Driver {
    /// The requests of the tool whose keys start with `prefix` (`demo`, `bench`, `chaos`).
    pub const fn new(prefix: &'static str) -> Self {
        Self { prefix }
    }

    /// `<prefix>-<what>-<n>`.
    pub fn key(&self, what: &str, n: impl Display) -> String {
        format!("{}-{what}-{n}", self.prefix)
    }

    /// The registration of resident `n` of municipality `m` (see [`residents::resident`]).
    pub fn resident(&self, n: u32, m: &str, minor: bool) -> acc::RegisterResidentRequest {
        residents::resident(self.key("resident", n), n, m, minor)
    }

    /// Case `k` of the resident with `bsn`, reported or applied for on `date`.
    pub fn open_case(&self, k: u32, bsn: String, law: i32, date: String) -> acc::OpenCaseRequest {
        acc::OpenCaseRequest {
            idempotency_key: self.key("case", k),
            bsn,
            law,
            date,
        }
    }

    /// Existing care number `k`: the resident with `bsn` of municipality `m` in care at provider
    /// `agb` with product `p` since its start.
    pub fn import(
        &self,
        k: impl Display,
        m: &str,
        bsn: String,
        agb: &str,
        p: acc::ProductToGrant,
    ) -> asg::ImportAssignmentRequest {
        asg::ImportAssignmentRequest {
            idempotency_key: self.key("import", k),
            municipality: m.to_owned(),
            bsn,
            client_key: String::new(),
            agb_code: agb.to_owned(),
            size: size(&p),
            subsegment_code: p.subsegment_code,
            product_code: p.product_code,
            period: p.period,
            budget_cents: p.budget_cents,
            started: true,
        }
    }

    /// Provider `agb`'s webhook subscription (every event type, every municipality) at `url`.
    pub fn subscription(&self, agb: &str, url: String) -> ntf::CreateSubscriptionRequest {
        ntf::CreateSubscriptionRequest {
            idempotency_key: self.key("hook", agb),
            agb_code: agb.to_owned(),
            url,
            ..Default::default()
        }
    }

    /// Registers resident `n` in municipality `m`'s access (idempotent); returns the BSN.
    pub async fn register(
        &self,
        access: &mut AccessServiceClient<Channel>,
        n: u32,
        m: &str,
        minor: bool,
    ) -> Result<String, String> {
        let request = self.resident(n, m, minor);
        let bsn = request.bsn.clone();
        access
            .register_resident(request)
            .await
            .map_err(status_msg("RegisterResident"))?;
        Ok(bsn)
    }

    /// Registers resident `n` of municipality `m` (a child for youth care) and opens their case
    /// `n` for `sub`'s law on `date`.
    pub async fn open(
        &self,
        access: &mut AccessServiceClient<Channel>,
        n: u32,
        m: &str,
        sub: &Sub,
        date: String,
    ) -> Result<acc::Case, String> {
        let bsn = self.register(access, n, m, sub.is_youth()).await?;
        Ok(access
            .open_case(self.open_case(n, bsn, sub.law, date))
            .await
            .map_err(status_msg("OpenCase"))?
            .into_inner())
    }
}

/// The decision on `case_id` on `date` granting `grant`.
pub fn decision(
    case_id: String,
    date: String,
    grant: Vec<acc::ProductToGrant>,
) -> acc::DecideRequest {
    acc::DecideRequest {
        case_id,
        date,
        grant,
        refusal_reason: String::new(),
    }
}

/// The decision on `case_id` on `date` refusing it ([`REFUSAL_REASON`]).
pub fn refusal(case_id: String, date: String) -> acc::DecideRequest {
    acc::DecideRequest {
        case_id,
        date,
        grant: Vec::new(),
        refusal_reason: REFUSAL_REASON.into(),
    }
}

/// The size of a granted product as assignment takes it (PxQ products only).
pub fn size(p: &acc::ProductToGrant) -> Option<asg::Size> {
    (p.volume > 0).then(|| asg::Size {
        volume: p.volume,
        unit: p.unit.clone(),
        frequency: p.frequency.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(financing: rz_proto::types::v1::Financing) -> Sub {
        Sub {
            code: "JGB01".into(),
            segment: "JGB".into(),
            law: rz_proto::types::v1::Law::Jeugdwet as i32,
            financing: financing as i32,
            municipalities: vec!["0222".into()],
            product_codes: vec!["45A01".into()],
        }
    }

    #[test]
    fn keys_name_the_tool_the_step_and_the_number() {
        let d = Driver::new("demo");
        assert_eq!(
            d.resident(7, "0222", true).idempotency_key,
            "demo-resident-7"
        );
        assert_eq!(
            d.open_case(7, "b".into(), 1, "2022-07-01".into())
                .idempotency_key,
            "demo-case-7"
        );
        assert_eq!(
            d.subscription("03010028", "http://h/hook".into())
                .idempotency_key,
            "demo-hook-03010028"
        );
        assert_eq!(Driver::new("chaos").key("import", 12), "chaos-import-12");
    }

    #[test]
    fn an_import_carries_the_product_and_its_size() {
        let p = crate::catalogue::product(
            &sub(rz_proto::types::v1::Financing::Pxq),
            "2021-09-01",
            "2023-08-31",
        );
        let r = Driver::new("bench").import(3, "0222", "999990019".into(), "03010028", p);
        assert_eq!(r.idempotency_key, "bench-import-3");
        assert_eq!(
            (r.subsegment_code.as_str(), r.product_code.as_str()),
            ("JGB01", "45A01")
        );
        assert_eq!(r.size.map(|s| s.volume), Some(3));
        assert!(r.started && r.client_key.is_empty());
        let p = crate::catalogue::product(
            &sub(rz_proto::types::v1::Financing::SeparateContract),
            "2021-09-01",
            "2023-08-31",
        );
        let r = Driver::new("bench").import(4, "0222", "999990019".into(), "03010028", p);
        assert_eq!((r.size, r.budget_cents), (None, 250_000));
    }

    #[test]
    fn decisions_grant_or_refuse() {
        let r = refusal("c".into(), "2022-08-01".into());
        assert!(r.grant.is_empty());
        assert_eq!(r.refusal_reason, REFUSAL_REASON);
        let g = decision(
            "c".into(),
            "2022-08-01".into(),
            vec![acc::ProductToGrant::default()],
        );
        assert_eq!((g.grant.len(), g.refusal_reason.as_str()), (1, ""));
    }
}
