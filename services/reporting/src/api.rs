//! The gRPC edge: validates the requests, loads the facts, computes the reports ([`crate::figures`])
//! and maps them to the proto messages; errors go through [`ApiError`]. No report carries a client
//! key, a BSN or a name: only codes, dates and counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rz_domain::{FieldError, Fields, GemeenteCode};
use rz_platform::ApiError;
use rz_proto::reporting::v1 as pb;
use rz_proto::reporting::v1::reporting_service_server::ReportingService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::consumers::{self, Consumers};
use crate::facts::GOALS;
use crate::figures::{self, Month};
use crate::{csv, store};

/// The longest span of months one `MonthlyFigures` call may ask for.
pub const MAX_MONTHS: i64 = 120;

#[derive(Clone)]
pub struct ReportingApi {
    pool: PgPool,
    consumers: Arc<Consumers>,
}

type ApiResult<T> = Result<T, ApiError>;

fn municipality(field: &str, s: &str) -> Result<Option<String>, FieldError> {
    if s.is_empty() {
        return Ok(None);
    }
    GemeenteCode::parse(s)
        .map(|m| Some(m.to_string()))
        .map_err(|_| FieldError::new(field, "must be a 4-digit CBS municipality code"))
}

fn date(field: &str, s: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "must be a date YYYY-MM-DD"))
}

fn month(field: &str, s: &str) -> Result<Month, FieldError> {
    Month::parse(s).ok_or_else(|| FieldError::new(field, "must be a month YYYY-MM"))
}

fn lead(l: figures::LeadTime) -> Option<pb::LeadTime> {
    Some(pb::LeadTime {
        count: l.count,
        avg_days: l.avg_days,
        p90_days: l.p90_days,
    })
}

impl ReportingApi {
    pub fn new(pool: PgPool, consumers: Arc<Consumers>) -> Self {
        Self { pool, consumers }
    }

    pub async fn monthly_figures(
        &self,
        r: &pb::MonthlyFiguresRequest,
    ) -> ApiResult<pb::MonthlyFiguresResponse> {
        let mut f = Fields::default();
        let m = f.check(municipality("municipality", &r.municipality));
        let from = f.check(month("from_month", &r.from_month));
        let to = f.check(month("to_month", &r.to_month));
        f.finish()?;
        let (Some(m), Some(from), Some(to)) = (m, from, to) else {
            return Err(ApiError::field("request", "incomplete"));
        };
        let span = from.count_to(to);
        if span < 1 {
            return Err(ApiError::field("to_month", "must not be before from_month"));
        }
        if span > MAX_MONTHS {
            return Err(ApiError::field(
                "to_month",
                "must be at most 120 months after from_month",
            ));
        }
        let segment = (!r.segment_code.is_empty()).then_some(r.segment_code.as_str());
        let mut conn = self.pool.acquire().await?;
        let assignments = store::load_assignments(&mut conn, m.as_deref(), segment).await?;
        let cases: HashMap<_, _> = store::load_product_cases(&mut conn)
            .await?
            .into_iter()
            .collect();
        let rows = figures::monthly(&assignments, &cases, from, to)
            .into_iter()
            .map(|(k, r)| pb::MonthlyFiguresRow {
                municipality: k.municipality,
                segment_code: k.segment_code,
                subsegment_code: k.subsegment_code,
                agb_code: k.agb_code,
                month: k.month.to_string(),
                clients_in_care: r.clients_in_care,
                new_clients: r.new_clients,
                ended_clients: r.ended_clients,
                request_to_decision: lead(r.request_to_decision),
                decision_to_assignment: lead(r.decision_to_assignment),
                assignment_to_start: lead(r.assignment_to_start),
                decisions_late: r.decisions_late,
                starts_late: r.starts_late,
                pxq: r
                    .pxq
                    .into_iter()
                    .map(|p| pb::PxqVolume {
                        unit: p.unit,
                        frequency: p.frequency,
                        assignments: p.assignments,
                        volume: p.volume,
                    })
                    .collect(),
            })
            .collect();
        Ok(pb::MonthlyFiguresResponse { rows })
    }

    pub async fn goals(&self, r: &pb::GoalsRequest) -> ApiResult<pb::GoalsResponse> {
        let mut f = Fields::default();
        let m = f.check(municipality("municipality", &r.municipality));
        let from = f.check(month("from_month", &r.from_month));
        let to = f.check(month("to_month", &r.to_month));
        f.finish()?;
        let (Some(m), Some(from), Some(to)) = (m, from, to) else {
            return Err(ApiError::field("request", "incomplete"));
        };
        let span = from.count_to(to);
        if span < 1 {
            return Err(ApiError::field("to_month", "must not be before from_month"));
        }
        if span > MAX_MONTHS {
            return Err(ApiError::field(
                "to_month",
                "must be at most 120 months after from_month",
            ));
        }
        let mut conn = self.pool.acquire().await?;
        let products = store::load_goal_products(&mut conn, m.as_deref()).await?;
        let decisions = store::load_decisions(&mut conn, m.as_deref()).await?;
        let assignments = store::load_assignments(&mut conn, m.as_deref(), None).await?;
        let rows = figures::goals(&products, &decisions, &assignments, from, to)
            .into_iter()
            .map(|(municipality, r)| pb::GoalsRow {
                municipality,
                goals: GOALS
                    .iter()
                    .zip(r.granted)
                    .map(|(g, n)| pb::GoalProducts {
                        goal: (*g).to_owned(),
                        granted_products: n,
                    })
                    .collect(),
                decisions: r.decisions,
                decisions_in_time: r.decisions_in_time,
                decisions_in_time_pct: figures::percent(r.decisions_in_time, r.decisions),
                starts: r.starts,
                starts_in_time: r.starts_in_time,
                starts_in_time_pct: figures::percent(r.starts_in_time, r.starts),
                scaled_down: r.scaled_down,
            })
            .collect();
        Ok(pb::GoalsResponse {
            from_month: from.to_string(),
            to_month: to.to_string(),
            rows,
        })
    }

    pub async fn handover_progress(
        &self,
        r: &pb::HandoverProgressRequest,
    ) -> ApiResult<pb::HandoverProgressResponse> {
        let mut f = Fields::default();
        let deadline = f.check(date("deadline", &r.deadline));
        let as_of = if r.as_of.is_empty() {
            Some(rz_platform::clock::Clock::today(
                &rz_platform::clock::SystemClock,
            ))
        } else {
            f.check(date("as_of", &r.as_of))
        };
        f.finish()?;
        let (Some(deadline), Some(as_of)) = (deadline, as_of) else {
            return Err(ApiError::field("request", "incomplete"));
        };
        let mut conn = self.pool.acquire().await?;
        let assignments = store::load_assignments(&mut conn, None, None).await?;
        let contracts = store::load_contracts(&mut conn).await?;
        let rows = figures::handover(&assignments, &contracts, deadline, as_of)
            .into_iter()
            .map(|((m, seg), r)| pb::HandoverProgressRow {
                municipality: m,
                segment_code: seg,
                handed_over: r.handed_over,
                handed_over_late: r.handed_over_late,
                waiting_for_start: r.waiting_for_start,
                not_arranged: r.not_arranged,
            })
            .collect();
        Ok(pb::HandoverProgressResponse {
            deadline: deadline.to_string(),
            rows,
        })
    }

    pub async fn budget_use(&self, r: &pb::BudgetUseRequest) -> ApiResult<pb::BudgetUseResponse> {
        let mut f = Fields::default();
        let m = f.check(municipality("municipality", &r.municipality));
        if !(2000..=2100).contains(&r.year) {
            f.push("year", "must be a year from 2000 to 2100");
        }
        f.finish()?;
        let m = m.flatten();
        let mut conn = self.pool.acquire().await?;
        let assignments = store::load_assignments(&mut conn, m.as_deref(), None).await?;
        let contracts = store::load_contracts(&mut conn).await?;
        let budgets = store::load_budgets(&mut conn, r.year).await?;
        let rows = figures::budget_use(&assignments, &contracts, &budgets, r.year)
            .into_iter()
            .filter(|(k, _)| m.as_ref().is_none_or(|m| &k.municipality == m))
            .map(|(k, row)| pb::BudgetUseRow {
                agb_code: k.agb_code,
                municipality: k.municipality,
                segment_code: k.segment_code,
                year: r.year,
                budget_cents: row.budget_cents,
                clients_served: row.clients_served,
                cost_per_client_cents: row.cost_per_client_cents,
            })
            .collect();
        Ok(pb::BudgetUseResponse { rows })
    }

    pub async fn providers_per_segment(
        &self,
        r: &pb::ProvidersPerSegmentRequest,
    ) -> ApiResult<pb::ProvidersPerSegmentResponse> {
        let mut f = Fields::default();
        let d = f.check(date("date", &r.date));
        let m = f.check(municipality("municipality", &r.municipality));
        f.finish()?;
        let (Some(d), Some(m)) = (d, m) else {
            return Err(ApiError::field("request", "incomplete"));
        };
        let mut conn = self.pool.acquire().await?;
        let contracts = store::load_contracts(&mut conn).await?;
        let rows = figures::providers_per_segment(&contracts, d, m.as_deref())
            .into_iter()
            .map(|(segment, agbs)| pb::ProvidersPerSegmentRow {
                segment_code: segment,
                providers: u32::try_from(agbs.len()).unwrap_or(u32::MAX),
                agb_codes: agbs.into_iter().collect(),
            })
            .collect();
        Ok(pb::ProvidersPerSegmentResponse {
            date: d.to_string(),
            rows,
        })
    }

    pub async fn export_csv(&self, r: &pb::ExportCsvRequest) -> ApiResult<pb::ExportCsvResponse> {
        use pb::export_csv_request::Report;
        let (filename, text) = match &r.report {
            None => {
                return Err(ApiError::field("report", "choose the report to export"));
            }
            Some(Report::MonthlyFigures(q)) => (
                format!("monthly-figures-{}-{}.csv", q.from_month, q.to_month),
                csv::monthly(&self.monthly_figures(q).await?),
            ),
            Some(Report::HandoverProgress(q)) => (
                format!("handover-progress-{}.csv", q.deadline),
                csv::handover(&self.handover_progress(q).await?),
            ),
            Some(Report::BudgetUse(q)) => (
                format!("budget-use-{}.csv", q.year),
                csv::budget(&self.budget_use(q).await?),
            ),
            Some(Report::ProvidersPerSegment(q)) => (
                format!("providers-per-segment-{}.csv", q.date),
                csv::providers(&self.providers_per_segment(q).await?),
            ),
            Some(Report::Goals(q)) => (
                format!("goals-{}-{}.csv", q.from_month, q.to_month),
                csv::goals(&self.goals(q).await?),
            ),
        };
        Ok(pb::ExportCsvResponse {
            filename,
            csv: text.into_bytes(),
        })
    }

    pub async fn rebuild(&self, r: &pb::RebuildRequest) -> ApiResult<pb::RebuildResponse> {
        let timeout = Duration::from_secs(if r.timeout_secs == 0 {
            60
        } else {
            u64::from(r.timeout_secs.min(3600))
        });
        self.consumers.rebuild().await.map_err(ApiError::internal)?;
        let caught_up = self
            .consumers
            .wait_caught_up(timeout)
            .await
            .map_err(ApiError::internal)?;
        let mut conn = self.pool.acquire().await?;
        let counts = store::counts(&mut conn).await?;
        let events = store::inbox_count(&mut conn, consumers::ALL).await?;
        let n = |i: usize| u64::try_from(counts.get(i).copied().unwrap_or(0)).unwrap_or(0);
        tracing::info!(caught_up, events, "read model rebuilt");
        Ok(pb::RebuildResponse {
            caught_up,
            events_applied: u64::try_from(events).unwrap_or(0),
            cases: n(0),
            granted_products: n(1),
            assignments: n(2),
            contracts: n(3),
            budgets: n(4),
        })
    }

    pub async fn status(&self) -> ApiResult<pb::GetStatusResponse> {
        let lag = self.consumers.lag().await.map_err(ApiError::internal)?;
        Ok(pb::GetStatusResponse {
            caught_up: lag.iter().all(|l| l.pending == 0 && l.ack_pending == 0),
            consumers: lag
                .into_iter()
                .map(|l| pb::ConsumerStatus {
                    name: l.name,
                    pending: l.pending,
                    ack_pending: l.ack_pending,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn monthly_figures(
        &self,
        request: Request<pb::MonthlyFiguresRequest>,
    ) -> Result<Response<pb::MonthlyFiguresResponse>, Status> {
        Ok(Response::new(
            ReportingApi::monthly_figures(self, request.get_ref()).await?,
        ))
    }

    async fn handover_progress(
        &self,
        request: Request<pb::HandoverProgressRequest>,
    ) -> Result<Response<pb::HandoverProgressResponse>, Status> {
        Ok(Response::new(
            ReportingApi::handover_progress(self, request.get_ref()).await?,
        ))
    }

    async fn budget_use(
        &self,
        request: Request<pb::BudgetUseRequest>,
    ) -> Result<Response<pb::BudgetUseResponse>, Status> {
        Ok(Response::new(
            ReportingApi::budget_use(self, request.get_ref()).await?,
        ))
    }

    async fn providers_per_segment(
        &self,
        request: Request<pb::ProvidersPerSegmentRequest>,
    ) -> Result<Response<pb::ProvidersPerSegmentResponse>, Status> {
        Ok(Response::new(
            ReportingApi::providers_per_segment(self, request.get_ref()).await?,
        ))
    }

    async fn goals(
        &self,
        request: Request<pb::GoalsRequest>,
    ) -> Result<Response<pb::GoalsResponse>, Status> {
        Ok(Response::new(
            ReportingApi::goals(self, request.get_ref()).await?,
        ))
    }

    async fn export_csv(
        &self,
        request: Request<pb::ExportCsvRequest>,
    ) -> Result<Response<pb::ExportCsvResponse>, Status> {
        Ok(Response::new(
            ReportingApi::export_csv(self, request.get_ref()).await?,
        ))
    }

    async fn rebuild(
        &self,
        request: Request<pb::RebuildRequest>,
    ) -> Result<Response<pb::RebuildResponse>, Status> {
        Ok(Response::new(
            ReportingApi::rebuild(self, request.get_ref()).await?,
        ))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(self.status().await?))
    }
}
