//! Domain values <-> protobuf messages.

use rz_domain::{ExecutionVariant, Law};
use rz_proto::assignment::v1 as pb;
use rz_proto::types::v1 as types;

use crate::domain::{Assignment, Extent, ProviderRequest, RequestStatus, Status};

pub fn law_pb(l: Law) -> types::Law {
    match l {
        Law::Jeugdwet => types::Law::Jeugdwet,
        Law::Wmo => types::Law::Wmo,
    }
}

pub fn law_from_pb(l: i32) -> Option<Law> {
    match types::Law::try_from(l).ok()? {
        types::Law::Jeugdwet => Some(Law::Jeugdwet),
        types::Law::Wmo => Some(Law::Wmo),
        types::Law::Unspecified => None,
    }
}

pub fn variant_pb(v: ExecutionVariant) -> types::ExecutionVariant {
    match v {
        ExecutionVariant::Taakgericht => types::ExecutionVariant::Taakgericht,
        ExecutionVariant::Outputgericht => types::ExecutionVariant::Outputgericht,
        ExecutionVariant::Inspanningsgericht => types::ExecutionVariant::Inspanningsgericht,
    }
}

pub fn variant_from_pb(v: i32) -> Option<ExecutionVariant> {
    match types::ExecutionVariant::try_from(v).ok()? {
        types::ExecutionVariant::Taakgericht => Some(ExecutionVariant::Taakgericht),
        types::ExecutionVariant::Outputgericht => Some(ExecutionVariant::Outputgericht),
        types::ExecutionVariant::Inspanningsgericht => Some(ExecutionVariant::Inspanningsgericht),
        types::ExecutionVariant::Unspecified => None,
    }
}

pub fn status_pb(s: Status) -> pb::AssignmentStatus {
    match s {
        Status::Issued => pb::AssignmentStatus::Issued,
        Status::Started => pb::AssignmentStatus::Started,
        Status::Stopped => pb::AssignmentStatus::Stopped,
        Status::Ended => pb::AssignmentStatus::Ended,
        Status::Withdrawn => pb::AssignmentStatus::Withdrawn,
    }
}

fn date(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

pub fn assignment_pb(a: &Assignment) -> pb::Assignment {
    let (size, budget_cents) = match a.extent {
        Extent::Task => (None, 0),
        Extent::Effort {
            volume,
            unit,
            frequency,
        } => (
            Some(pb::Size {
                volume,
                unit: unit.code().to_owned(),
                frequency: frequency.code().to_owned(),
            }),
            0,
        ),
        Extent::Output { budget } => (None, budget.as_i64()),
    };
    pb::Assignment {
        number: a.number,
        municipality: a.municipality.to_string(),
        client_key: a.client_key.to_string(),
        agb_code: a.agb_code.to_string(),
        law: law_pb(a.law) as i32,
        segment_code: a.segment_code.clone(),
        subsegment_code: a.subsegment_code.clone(),
        product_category: a.product_category.clone(),
        product_code: a.product_code.clone(),
        period: Some(types::Period {
            start: a.period.start().to_string(),
            end: date(a.period.end()),
        }),
        execution_variant: variant_pb(a.extent.variant()) as i32,
        size,
        budget_cents,
        status: status_pb(a.status) as i32,
        assigned_on: a.assigned_on.to_string(),
        change_reason: a.change_reason.clone(),
        started_on: date(a.started_on),
        stopped_on: date(a.stopped_on),
        end_reason: a.end_reason.clone(),
        choice_reason: a.choice_reason.clone(),
        granted_product_id: a.granted_product_id.clone().unwrap_or_default(),
        replaces_number: a.replaces_number.unwrap_or(0),
        replaced_by_number: a.replaced_by_number.unwrap_or(0),
        origin: a.origin.code().to_owned(),
    }
}

pub fn request_pb(r: &ProviderRequest) -> pb::ProviderRequest {
    pb::ProviderRequest {
        id: r.id.to_string(),
        kind: r.kind.code().to_owned(),
        agb_code: r.agb_code.to_string(),
        municipality: r.municipality.to_string(),
        client_key: r.client_key.to_string(),
        subsegment_code: r.subsegment_code.clone(),
        assignment_number: r.assignment_number.unwrap_or(0),
        status: match r.status {
            RequestStatus::Open => pb::RequestStatus::Open,
            RequestStatus::Granted => pb::RequestStatus::Granted,
            RequestStatus::Refused => pb::RequestStatus::Refused,
        } as i32,
        received_on: r.received_on.to_string(),
        answer_due: r.answer_due.to_string(),
        answered_on: date(r.answered_on),
        refusal_reason: r.refusal_reason.clone(),
        referrer: r.referrer.as_ref().map(|x| pb::Referrer {
            r#type: x.kind.clone(),
            name: x.name.clone(),
            agb_code: x
                .agb_code
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }),
        resulting_assignment_number: r.resulting_assignment_number.unwrap_or(0),
    }
}

pub fn unassigned_pb(u: &crate::store::Unassigned) -> pb::UnassignedProduct {
    pb::UnassignedProduct {
        granted_product_id: u.granted_product_id.clone(),
        granted_version: u.granted_version,
        municipality: u.municipality.to_string(),
        client_key: u.client_key.to_string(),
        law: law_pb(u.law) as i32,
        segment_code: u.segment_code.clone(),
        subsegment_code: u.subsegment_code.clone(),
        period: Some(types::Period {
            start: u.period.start().to_string(),
            end: date(u.period.end()),
        }),
        reason_code: u.reason_code.clone(),
        reason: u.reason.clone(),
        decided_on: u.decided_on.to_string(),
    }
}
