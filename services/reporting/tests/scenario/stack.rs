//! The services of the scenario, its steps and waits, and the requests for the figures.

use std::sync::Arc;
use std::time::Duration;

use assignment::FixedClock;
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::reporting::v1 as pb;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use rz_proto::types::v1 as types;
use rz_stack::{Landscape, M, OLD, P1, P2, P3, PV1, d};
use sqlx::PgPool;
use tonic::transport::Channel;

/// How long the scenario waits for assignment.
const WITHIN: Duration = Duration::from_secs(15);

pub(crate) struct Stack {
    pub(crate) registration: RegistrationServiceClient<Channel>,
    /// As Doetinchem, at its access instance.
    pub(crate) access: AccessServiceClient<Channel>,
    /// As the operator (imports, the handover).
    pub(crate) assignment: AssignmentServiceClient<Channel>,
    /// As Doetinchem (its clients' assignments).
    pub(crate) municipality: AssignmentServiceClient<Channel>,
    pub(crate) reporting: ReportingServiceClient<Channel>,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) registration_db: PgPool,
    pub(crate) access_db: PgPool,
    pub(crate) assignment_db: PgPool,
    pub(crate) reporting_db: PgPool,
    /// The running services (its drop stops them).
    pub(crate) stack: rz_stack::Stack,
}

/// Reporting first (it ensures the streams and consumes from their start), then registration,
/// access 0222 and assignment (its date 2022-06-27).
pub(crate) async fn spawn_stack() -> Stack {
    let mut stack = rz_stack::Stack::builder()
        .reporting()
        .access(M)
        // products are amended on TODAY, while they are still active
        .access_config(|c| c.access.today = Some(d(TODAY)))
        .assignment()
        .today(d("2022-06-27"))
        .start()
        .await;
    Stack {
        registration: stack.registration(),
        access: stack.access(M),
        assignment: stack.assignment(),
        municipality: stack.as_municipality(M).assignment(),
        reporting: stack.reporting(),
        clock: stack.clock(),
        registration_db: stack.registration_service().pool.clone(),
        access_db: stack.access_service(M).pool.clone(),
        assignment_db: stack.assignment_service().pool.clone(),
        reporting_db: stack.reporting_service().pool.clone(),
        stack,
    }
}

impl Stack {
    /// Assignment as the provider `agb` (what it reports of its own care).
    pub(crate) fn provider(&self, agb: &str) -> AssignmentServiceClient<Channel> {
        self.stack.as_provider(agb).assignment()
    }

    pub(crate) async fn load_contracts(&mut self) {
        let mut landscape = Landscape::new();
        for agb in [P1, P2, P3, OLD, PV1] {
            landscape = landscape.provider(agb, &format!("Zorg {agb}"));
        }
        for (agb, budget) in [(P1, 50_000_000), (P2, 30_000_000), (P3, 20_000_000)] {
            landscape = landscape
                .contract(agb, "IAJ", &["IAJ-ON"], "2022-07-01")
                .budget(M, 2022, budget)
                .budget(M, 2023, budget + 1_000);
        }
        landscape
            .contract(OLD, "IAJ", &[], "2019-07-01")
            .contract(PV1, "WIO", &["WIO-PV"], "2022-07-01")
            .load(&mut self.registration)
            .await;
    }

    pub(crate) async fn resident(&mut self, bsn: &str, birth: &str) {
        self.access
            .register_resident(acc::RegisterResidentRequest {
                gender: String::new(),
                ..rz_stack::resident_request(bsn, birth)
            })
            .await
            .unwrap();
    }

    /// A Jeugdwet application on `applied` decided on `decided`.
    pub(crate) async fn youth(
        &mut self,
        bsn: &str,
        applied: &str,
        decided: &str,
        grant: acc::ProductToGrant,
    ) {
        self.resident(bsn, "2012-05-01").await;
        let key = format!("case-{bsn}");
        let case =
            rz_stack::open_case(&mut self.access, key, bsn, types::Law::Jeugdwet, applied).await;
        self.decide(&case.id, decided, grant).await;
    }

    /// A Wmo melding on `reported`, application and decision on `decided`.
    pub(crate) async fn wmo(
        &mut self,
        bsn: &str,
        reported: &str,
        decided: &str,
        grant: acc::ProductToGrant,
    ) {
        self.resident(bsn, "1960-01-10").await;
        let key = format!("case-{bsn}");
        let case = rz_stack::open_case(&mut self.access, key, bsn, types::Law::Wmo, reported).await;
        rz_stack::investigate_and_apply(&mut self.access, &case.id, decided).await;
        self.decide(&case.id, decided, grant).await;
    }

    pub(crate) async fn decide(&mut self, case_id: &str, date: &str, grant: acc::ProductToGrant) {
        rz_stack::decide(&mut self.access, case_id, date, vec![grant], "")
            .await
            .unwrap();
    }

    /// Waits until the client has `n` assignments and returns them.
    pub(crate) async fn assignments_of(&mut self, bsn: &str, n: usize) -> Vec<asg::Assignment> {
        rz_stack::assignments_of(&mut self.municipality, bsn, n, WITHIN).await
    }

    /// Waits until assignment applied an amendment: an active assignment of the client ends on `end`.
    pub(crate) async fn wait_for_end(&mut self, bsn: &str, end: &str) {
        rz_stack::eventually(WITHIN, async || {
            let got = self.assignments_of(bsn, 1).await;
            let ends = |a: &asg::Assignment| a.period.as_ref().is_some_and(|p| p.end == end);
            match got.iter().any(ends) {
                true => Ok(()),
                false => Err(format!("{bsn}: {got:?}")),
            }
        })
        .await
    }

    pub(crate) async fn start(&mut self, a: &asg::Assignment, date: &str) {
        self.provider(&a.agb_code)
            .report_start_of_care(asg::ReportStartOfCareRequest {
                agb_code: a.agb_code.clone(),
                municipality: M.into(),
                assignment_number: a.number,
                start_date: date.into(),
            })
            .await
            .unwrap();
    }

    /// Existing care of OLD, imported.
    pub(crate) async fn import(&mut self, bsn: &str, start: &str, end: &str, started: bool) {
        let request = rz_stack::import_request(bsn, OLD, start, end, started);
        self.assignment.import_assignment(request).await.unwrap();
    }

    /// Waits until every service published its outbox and reporting applied every event.
    pub(crate) async fn settle(&mut self) {
        rz_stack::eventually(Duration::from_secs(20), async || {
            let mut unpublished = 0i64;
            for db in [&self.registration_db, &self.access_db, &self.assignment_db] {
                unpublished += rz_stack::unpublished(db).await;
            }
            let status = self.reporting.get_status(pb::GetStatusRequest {}).await;
            let status = status.unwrap().into_inner();
            match unpublished == 0 && status.caught_up {
                true => Ok(()),
                false => Err(format!(
                    "not settled: {unpublished} unpublished, {status:?}"
                )),
            }
        })
        .await
    }

    pub(crate) async fn figures(&mut self) -> Figures {
        let r = &mut self.reporting;
        Figures {
            goals: r.goals(goals_request()).await.unwrap().into_inner(),
            monthly: r
                .monthly_figures(monthly_request())
                .await
                .unwrap()
                .into_inner(),
            handover: r
                .handover_progress(handover_request())
                .await
                .unwrap()
                .into_inner(),
            budget: r
                .budget_use(pb::BudgetUseRequest {
                    year: 2022,
                    municipality: String::new(),
                })
                .await
                .unwrap()
                .into_inner(),
            providers: r
                .providers_per_segment(pb::ProvidersPerSegmentRequest {
                    date: "2022-08-01".into(),
                    municipality: M.into(),
                })
                .await
                .unwrap()
                .into_inner(),
        }
    }
}

pub(crate) fn monthly_request() -> pb::MonthlyFiguresRequest {
    pb::MonthlyFiguresRequest {
        municipality: M.into(),
        segment_code: String::new(),
        from_month: "2022-06".into(),
        to_month: "2023-03".into(),
    }
}

pub(crate) const TODAY: &str = "2022-07-15";

pub(crate) fn handover_request() -> pb::HandoverProgressRequest {
    pb::HandoverProgressRequest {
        deadline: "2023-01-01".into(),
        as_of: TODAY.into(),
    }
}

pub(crate) fn goals_request() -> pb::GoalsRequest {
    pb::GoalsRequest {
        municipality: M.into(),
        from_month: "2022-06".into(),
        to_month: "2023-03".into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figures {
    pub(crate) goals: pb::GoalsResponse,
    pub(crate) monthly: pb::MonthlyFiguresResponse,
    pub(crate) handover: pb::HandoverProgressResponse,
    pub(crate) budget: pb::BudgetUseResponse,
    pub(crate) providers: pb::ProvidersPerSegmentResponse,
}
