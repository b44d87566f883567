//! The gRPC edge: each call is handed to the [`Assigner`]; errors become precise status codes
//! (INVALID_ARGUMENT with field violations, FAILED_PRECONDITION naming the rule, NOT_FOUND,
//! ALREADY_EXISTS, UNAVAILABLE when registration or access cannot be reached).

use rz_platform::audit::{Audit, AuditContext, AuditEntry};
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_server::AssignmentService;
use tonic::{Request, Response, Status};

use crate::assigner::Assigner;
use crate::error::Result;
use crate::owner;

pub struct AssignmentApi {
    assigner: Assigner,
    /// The NEN 7513 trail of every read or change of a client's data with BSN.
    audit: Audit,
}

impl AssignmentApi {
    pub fn new(assigner: Assigner) -> Self {
        let audit = Audit::new(assigner.pool.clone(), "assignment");
        Self { assigner, audit }
    }

    /// The service's audit trail (served by [`rz_platform::audit::AuditApi`]).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Writes `action` entries for (municipality, client key) pairs (empty keys skipped); a
    /// failed write fails the call (UNAVAILABLE).
    async fn record(
        &self,
        who: &AuditContext,
        action: &'static str,
        clients: impl IntoIterator<Item = (String, String)>,
    ) -> std::result::Result<(), Status> {
        let entries: Vec<AuditEntry> = clients
            .into_iter()
            .filter(|(_, k)| !k.is_empty())
            .map(|(m, k)| AuditEntry::new(k, m, action))
            .collect();
        self.audit.record_or_unavailable(who, &entries).await
    }

    /// The client key of an imported item: given, or derived from its BSN.
    fn import_key(&self, r: &pb::ImportAssignmentRequest) -> String {
        if !r.client_key.is_empty() {
            return r.client_key.clone();
        }
        rz_domain::Bsn::parse(&r.bsn)
            .map(|b| rz_domain::ClientKey::derive(&self.assigner.secret, &b).to_string())
            .unwrap_or_default()
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

fn reply<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl AssignmentService for AssignmentApi {
    async fn report_start_of_care(
        &self,
        r: Request<pb::ReportStartOfCareRequest>,
    ) -> Reply<pb::Assignment> {
        let caller = owner::caller(&r)?;
        let r = r.into_inner();
        owner::as_provider(&caller, &r.agb_code)?;
        reply(self.assigner.report_start(r).await)
    }

    async fn report_stop_of_care(
        &self,
        r: Request<pb::ReportStopOfCareRequest>,
    ) -> Reply<pb::Assignment> {
        let caller = owner::caller(&r)?;
        let r = r.into_inner();
        owner::as_provider(&caller, &r.agb_code)?;
        reply(self.assigner.report_stop(r).await)
    }

    async fn request_assignment(
        &self,
        r: Request<pb::RequestAssignmentRequest>,
    ) -> Reply<pb::ProviderRequest> {
        let who = AuditContext::from_request(&r)?;
        let out = self.assigner.request_assignment(r.into_inner()).await?;
        let client = (out.municipality.clone(), out.client_key.clone());
        self.record(&who, "request_assignment", [client]).await?;
        Ok(Response::new(out))
    }

    async fn request_change(
        &self,
        r: Request<pb::RequestChangeRequest>,
    ) -> Reply<pb::ProviderRequest> {
        let caller = owner::caller(&r)?;
        let r = r.into_inner();
        owner::as_provider(&caller, &r.agb_code)?;
        reply(self.assigner.request_change(r).await)
    }

    async fn list_provider_assignments(
        &self,
        r: Request<pb::ListProviderAssignmentsRequest>,
    ) -> Reply<pb::ListAssignmentsResponse> {
        reply(
            self.assigner
                .list_provider_assignments(r.into_inner())
                .await,
        )
    }

    async fn fetch_provider_messages(
        &self,
        r: Request<pb::FetchProviderMessagesRequest>,
    ) -> Reply<pb::FetchProviderMessagesResponse> {
        let who = AuditContext::from_request(&r)?;
        let (out, clients) = self
            .assigner
            .fetch_provider_messages_with_clients(r.into_inner())
            .await?;
        self.record(&who, "fetch_provider_messages", clients)
            .await?;
        Ok(Response::new(out))
    }

    async fn upload_provider_message(
        &self,
        r: Request<pb::UploadProviderMessageRequest>,
    ) -> Reply<pb::UploadResult> {
        let caller = owner::caller(&r)?;
        let who = AuditContext::from_request(&r)?;
        let r = r.into_inner();
        owner::as_provider(&caller, &r.agb_code)?;
        let client = crate::xml::uploaded_client(&r.xml).map(|(m, bsn)| {
            let key = rz_domain::ClientKey::derive(&self.assigner.secret, &bsn);
            (m.to_string(), key.to_string())
        });
        let out = self.assigner.upload_provider_message(r).await?;
        self.record(&who, "upload_provider_message", client).await?;
        Ok(Response::new(out))
    }

    async fn answer_request(
        &self,
        r: Request<pb::AnswerRequestRequest>,
    ) -> Reply<pb::ProviderRequest> {
        let caller = owner::caller(&r)?;
        let by = owner::as_municipality(&caller)?;
        reply(self.assigner.answer_request(r.into_inner(), &by).await)
    }

    async fn withdraw_assignment(
        &self,
        r: Request<pb::WithdrawAssignmentRequest>,
    ) -> Reply<pb::Assignment> {
        reply(self.assigner.withdraw(r.into_inner()).await)
    }

    async fn get_assignment(&self, r: Request<pb::GetAssignmentRequest>) -> Reply<pb::Assignment> {
        let caller = owner::caller(&r)?;
        let a = self.assigner.get_assignment(r.into_inner()).await?;
        owner::may_see_assignment(&caller, &a.municipality, &a.agb_code)?;
        Ok(Response::new(a))
    }

    async fn list_client_assignments(
        &self,
        r: Request<pb::ListClientAssignmentsRequest>,
    ) -> Reply<pb::ListAssignmentsResponse> {
        reply(self.assigner.list_client_assignments(r.into_inner()).await)
    }

    async fn list_chain_deadlines(
        &self,
        r: Request<pb::ListChainDeadlinesRequest>,
    ) -> Reply<pb::ListChainDeadlinesResponse> {
        reply(self.assigner.chain_deadlines(r.into_inner()).await)
    }

    async fn import_assignment(
        &self,
        r: Request<pb::ImportAssignmentRequest>,
    ) -> Reply<pb::Assignment> {
        let who = AuditContext::from_request(&r)?;
        let out = self.assigner.import_assignment(r.into_inner()).await?;
        let client = (out.municipality.clone(), out.client_key.clone());
        self.record(&who, "import_assignment", [client]).await?;
        Ok(Response::new(out))
    }

    async fn import_assignments(
        &self,
        r: Request<pb::ImportAssignmentsRequest>,
    ) -> Reply<pb::ImportAssignmentsResponse> {
        let who = AuditContext::from_request(&r)?;
        let r = r.into_inner();
        let keys: Vec<String> = r.assignments.iter().map(|a| self.import_key(a)).collect();
        let out = self.assigner.import_assignments(r).await?;
        let clients: Vec<(String, String)> = out
            .outcomes
            .iter()
            .filter(|o| o.refused.is_none())
            .filter_map(|o| {
                let key = keys.get(usize::try_from(o.index).ok()?)?;
                Some((o.municipality.clone(), key.clone()))
            })
            .collect();
        self.record(&who, "import_assignment", clients).await?;
        Ok(Response::new(out))
    }

    async fn run_handover(
        &self,
        r: Request<pb::RunHandoverRequest>,
    ) -> Reply<pb::RunHandoverResponse> {
        reply(self.assigner.run_handover_api(r.into_inner()).await)
    }

    async fn list_unassigned_products(
        &self,
        r: Request<pb::ListUnassignedProductsRequest>,
    ) -> Reply<pb::ListUnassignedProductsResponse> {
        let r = r.into_inner();
        let municipality = (!r.municipality.is_empty()).then_some(r.municipality.as_str());
        reply(
            self.assigner
                .list_unassigned(municipality)
                .await
                .map(|rows| pb::ListUnassignedProductsResponse {
                    products: rows.iter().map(crate::convert::unassigned_pb).collect(),
                }),
        )
    }

    async fn handover_progress(
        &self,
        r: Request<pb::HandoverProgressRequest>,
    ) -> Reply<pb::HandoverProgressResponse> {
        reply(self.assigner.handover_progress(r.into_inner()).await)
    }
}
