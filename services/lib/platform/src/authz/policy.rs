//! The one policy table: for every RPC of every service, which kinds of caller may call it and
//! which request fields must hold the caller's own identity. A method without a row is refused
//! (and `tests/authz` fails: it enumerates every RPC from the descriptors).
//!
//! Where a call names its subject by an id only (an assignment request, a delivery), the table
//! says so with an empty binding and the handler checks that the subject is the caller's
//! ([`crate::identity::Caller`]); the table's `owner` note names what it checks.

use super::Allow::{self, *};

/// One RPC's rule.
#[derive(Debug)]
pub struct Rule {
    /// `/package.Service/Method`, the HTTP/2 path of the call.
    pub method: &'static str,
    pub allow: &'static [Allow],
    /// What the handler checks on top (empty: nothing, the table says it all).
    pub owner: &'static str,
}

const fn rule(method: &'static str, allow: &'static [Allow]) -> Rule {
    Rule {
        method,
        allow,
        owner: "",
    }
}

const fn owned(method: &'static str, allow: &'static [Allow], owner: &'static str) -> Rule {
    Rule {
        method,
        allow,
        owner,
    }
}

const REG: &str = "/regiozorg.registration.v1.RegistrationService/";
const ACC: &str = "/regiozorg.access.v1.AccessService/";
const ASG: &str = "/regiozorg.assignment.v1.AssignmentService/";
const NOT: &str = "/regiozorg.notification.v1.NotificationService/";
const REP: &str = "/regiozorg.reporting.v1.ReportingService/";
const AUD: &str = "/regiozorg.audit.v1.AuditService/";

// `concat!` takes literals only, so each prefix is spelled out once here.
macro_rules! m {
    (REG, $name:literal) => {
        concat!("/regiozorg.registration.v1.RegistrationService/", $name)
    };
    (ACC, $name:literal) => {
        concat!("/regiozorg.access.v1.AccessService/", $name)
    };
    (ASG, $name:literal) => {
        concat!("/regiozorg.assignment.v1.AssignmentService/", $name)
    };
    (NOT, $name:literal) => {
        concat!("/regiozorg.notification.v1.NotificationService/", $name)
    };
    (REP, $name:literal) => {
        concat!("/regiozorg.reporting.v1.ReportingService/", $name)
    };
    (AUD, $name:literal) => {
        concat!("/regiozorg.audit.v1.AuditService/", $name)
    };
}

/// The services' prefixes, for what checks the table's coverage.
pub const SERVICES: [&str; 6] = [REG, ACC, ASG, NOT, REP, AUD];

/// Registration writes, imports, handover runs, replays and rebuilds: operators only.
const OPERATOR: &[Allow] = &[Operator];
/// The register is the region's shared knowledge: every organisation of the region may read it.
const ANY: &[Allow] = &[Anyone];
/// A resident's personal data at a municipality's access instance: that municipality only.
const OWN: &[Allow] = &[OwnMunicipality];
/// What a provider does for itself: the request's `agb_code` must be its own.
const PROVIDER: &[Allow] = &[Provider(&["agb_code"])];

pub static POLICY: &[Rule] = &[
    // --- registration: the regional contract register ---
    rule(m!(REG, "GetCatalogue"), ANY),
    rule(m!(REG, "RegisterProvider"), OPERATOR),
    rule(m!(REG, "FormConsortium"), OPERATOR),
    rule(m!(REG, "AddSubcontractor"), OPERATOR),
    rule(m!(REG, "GetProvider"), ANY),
    rule(m!(REG, "ListProviders"), ANY),
    rule(m!(REG, "OpenTender"), OPERATOR),
    rule(
        m!(REG, "SubmitRegistration"),
        &[Provider(&["agb_code"]), Operator],
    ),
    rule(m!(REG, "SelectRegistrations"), OPERATOR),
    rule(m!(REG, "ScoreBid"), OPERATOR),
    rule(m!(REG, "AwardTender"), OPERATOR),
    rule(m!(REG, "GetTender"), ANY),
    rule(m!(REG, "ConcludeContract"), OPERATOR),
    rule(m!(REG, "ExtendContract"), OPERATOR),
    rule(m!(REG, "TerminateContract"), OPERATOR),
    rule(m!(REG, "SetLumpsumBudget"), OPERATOR),
    rule(m!(REG, "SetTariff"), OPERATOR),
    rule(m!(REG, "GetContract"), ANY),
    rule(m!(REG, "ListContracts"), ANY),
    rule(m!(REG, "ListContractedProviders"), ANY),
    rule(m!(REG, "CheckContracted"), ANY),
    // --- access: one instance per municipality, its own residents only ---
    rule(m!(ACC, "RegisterResident"), OWN),
    rule(m!(ACC, "GetResident"), OWN),
    rule(m!(ACC, "OpenCase"), OWN),
    rule(m!(ACC, "CompleteInvestigation"), OWN),
    rule(m!(ACC, "SubmitApplication"), OWN),
    rule(m!(ACC, "Decide"), OWN),
    rule(m!(ACC, "GetCase"), OWN),
    rule(m!(ACC, "AmendProduct"), OWN),
    rule(
        m!(ACC, "ListDeadlines"),
        &[OwnMunicipality, Service("notification")],
    ),
    rule(
        m!(ACC, "ListExpiringIndications"),
        &[OwnMunicipality, Service("notification")],
    ),
    rule(
        m!(ACC, "GetClientForAssignment"),
        &[Service("assignment"), Service("notification")],
    ),
    rule(
        m!(ACC, "GetClientsForAssignment"),
        &[Service("assignment"), Service("notification")],
    ),
    // --- assignment: the provider's side ---
    owned(
        m!(ASG, "ReportStartOfCare"),
        PROVIDER,
        "the assignment is the provider's",
    ),
    owned(
        m!(ASG, "ReportStopOfCare"),
        PROVIDER,
        "the assignment is the provider's",
    ),
    rule(m!(ASG, "RequestAssignment"), PROVIDER),
    owned(
        m!(ASG, "RequestChange"),
        PROVIDER,
        "the assignment is the provider's",
    ),
    rule(m!(ASG, "ListProviderAssignments"), PROVIDER),
    rule(m!(ASG, "FetchProviderMessages"), PROVIDER),
    rule(m!(ASG, "UploadProviderMessage"), PROVIDER),
    // --- assignment: the municipality's side ---
    owned(
        m!(ASG, "AnswerRequest"),
        &[Municipality(&[])],
        "the request is for the municipality",
    ),
    rule(
        m!(ASG, "WithdrawAssignment"),
        &[Municipality(&["municipality"])],
    ),
    owned(
        m!(ASG, "GetAssignment"),
        &[Municipality(&["municipality"]), Provider(&[]), Operator],
        "a provider: the assignment is its own",
    ),
    rule(
        m!(ASG, "ListClientAssignments"),
        &[Municipality(&["municipality"])],
    ),
    rule(
        m!(ASG, "ListChainDeadlines"),
        &[
            Municipality(&["municipality"]),
            Service("notification"),
            Operator,
        ],
    ),
    rule(
        m!(ASG, "ListUnassignedProducts"),
        &[Municipality(&["municipality"]), Operator],
    ),
    rule(m!(ASG, "ImportAssignment"), OPERATOR),
    rule(m!(ASG, "ImportAssignments"), OPERATOR),
    rule(m!(ASG, "RunHandover"), OPERATOR),
    rule(m!(ASG, "HandoverProgress"), &[Operator, Municipality(&[])]),
    // --- notification ---
    rule(
        m!(NOT, "CreateSubscription"),
        &[Provider(&["agb_code"]), Operator],
    ),
    rule(
        m!(NOT, "ListSubscriptions"),
        &[Provider(&["agb_code"]), Operator],
    ),
    rule(
        m!(NOT, "RotateSubscriptionSecret"),
        &[Provider(&["agb_code"]), Operator],
    ),
    rule(
        m!(NOT, "DeleteSubscription"),
        &[Provider(&["agb_code"]), Operator],
    ),
    rule(
        m!(NOT, "ListFailedDeliveries"),
        &[Provider(&["agb_code"]), Operator],
    ),
    owned(
        m!(NOT, "ReplayDelivery"),
        &[Provider(&[]), Operator],
        "a provider: the delivery is to its own subscription",
    ),
    rule(m!(NOT, "ListLetters"), &[Municipality(&["municipality"])]),
    rule(
        m!(NOT, "ListStaffAlerts"),
        &[Municipality(&["municipality"])],
    ),
    rule(m!(NOT, "ScanDeadlines"), OPERATOR),
    // --- reporting: aggregates without personal data, for the region's steering ---
    rule(m!(REP, "MonthlyFigures"), &[Municipality(&[]), Operator]),
    rule(m!(REP, "HandoverProgress"), &[Municipality(&[]), Operator]),
    rule(m!(REP, "BudgetUse"), &[Municipality(&[]), Operator]),
    rule(
        m!(REP, "ProvidersPerSegment"),
        &[Municipality(&[]), Operator],
    ),
    rule(m!(REP, "Goals"), &[Municipality(&[]), Operator]),
    rule(m!(REP, "ExportCsv"), &[Municipality(&[]), Operator]),
    rule(m!(REP, "Rebuild"), OPERATOR),
    rule(m!(REP, "GetStatus"), &[Municipality(&[]), Operator]),
    // --- the audit trail of every service holding personal data ---
    rule(
        m!(AUD, "ListClientEntries"),
        &[Municipality(&["municipality"]), Operator],
    ),
    rule(m!(AUD, "VerifyChain"), OPERATOR),
];

/// The rule for `method`, if the table has one.
pub fn rule_for(method: &str) -> Option<&'static Rule> {
    POLICY.iter().find(|r| r.method == method)
}

impl Allow {
    /// How the documentation names this entry.
    pub fn describe(&self) -> String {
        let bound = |who: &str, fields: &[&str], code: &str| {
            if fields.is_empty() {
                who.to_owned()
            } else {
                let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                format!("{who} ({} = own {code})", list.join(", "))
            }
        };
        match self {
            Anyone => "any organisation".into(),
            Operator => "operator".into(),
            Service(name) => format!("service {name}"),
            Provider(fields) => bound("provider", fields, "AGB"),
            Municipality(fields) => bound("municipality", fields, "CBS"),
            OwnMunicipality => "the instance's own municipality".into(),
        }
    }
}

/// The table as Markdown (docs/security.md holds it; a test keeps the two equal).
pub fn markdown() -> String {
    let mut out = String::from("| RPC | who may call | the handler also checks |\n|---|---|---|\n");
    for rule in POLICY {
        let name = rule
            .method
            .trim_start_matches("/regiozorg.")
            .replace(".v1.", " ")
            .replace('/', ".");
        let who: Vec<String> = rule.allow.iter().map(Allow::describe).collect();
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            who.join("; "),
            rule.owner
        ));
    }
    out
}
