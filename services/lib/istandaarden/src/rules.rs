//! The technical rules (TR) of iJw/iWmo 3.2 that are checked on the providers' messages, each with
//! the WJ001 return code the standard prescribes for it.
//!
//! Source: the code list WJ001 (Retourcode) in `shared/istandaarden/codelijsten-ijw/` and
//! `codelijsten-iwmo/`, which names for each code its TR rule and the messages it applies to. The
//! full rule texts of the standard's informatiemodel are not in that folder; the description of a
//! rule here is the code's meaning from WJ001. Which rule is checked where is listed in
//! `docs/istandaarden-rules.md`.
//!
//! The readers check the schema and the rules that need only the message itself (S300 for an
//! invalid municipality code, S329 for an invalid product code); the rules below that need the
//! date, earlier messages or the register are checked by the service that receives the message.

use chrono::NaiveDate;
use rz_domain::ReturnCode;

use crate::model::ReceivedHeader;

/// A technical rule of the standard with its WJ001 return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `9019` Het regiebericht kan niet gekoppeld worden aan een toewijzing (305, 307).
    TR019,
    /// `9056` Identificatie moet uniek zijn (every message).
    TR056,
    /// `9063` Het bericht kan niet verwerkt worden omdat geen eerder bericht ontvangen is (305,
    /// 307): a deletion of a record never received.
    TR063,
    /// `9069` Er is geen actueel startbericht met dezelfde sleutel (307).
    TR069,
    /// `9071` Het eerdere startbericht kan niet verwijderd worden omdat de zorg al beëindigd is
    /// (305).
    TR071,
    /// `9074` Er is al een eerder bericht ontvangen met dezelfde sleutel (305, 307).
    TR074,
    /// `8848` Dagtekening moet gelijk zijn aan of voor de systeemdatum liggen (every message).
    TR135,
    /// `9326` De actuele levering is nog niet gestopt met een Stopbericht (305).
    TR326,
    /// `9347` ReferentieAanbieder is niet uniek voor de aanbieder binnen het wettelijk domein
    /// (315, 317).
    TR347,
    /// `9351` TeWijzigenProduct is niet gerelateerd aan een actuele toewijzing (317).
    TR351,
    /// `9374` Er is al een verzoek onderhanden (315, 317).
    TR374,
    /// `S300` Gemeentecode ongeldig.
    TR378,
    /// `S329` ProductCode ongeldig.
    TR381,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 13] = [
        Self::TR019,
        Self::TR056,
        Self::TR063,
        Self::TR069,
        Self::TR071,
        Self::TR074,
        Self::TR135,
        Self::TR326,
        Self::TR347,
        Self::TR351,
        Self::TR374,
        Self::TR378,
        Self::TR381,
    ];

    /// The rule's id as the standard writes it: `TR056`.
    pub fn id(self) -> &'static str {
        match self {
            Self::TR019 => "TR019",
            Self::TR056 => "TR056",
            Self::TR063 => "TR063",
            Self::TR069 => "TR069",
            Self::TR071 => "TR071",
            Self::TR074 => "TR074",
            Self::TR135 => "TR135",
            Self::TR326 => "TR326",
            Self::TR347 => "TR347",
            Self::TR351 => "TR351",
            Self::TR374 => "TR374",
            Self::TR378 => "TR378",
            Self::TR381 => "TR381",
        }
    }

    fn code_str(self) -> &'static str {
        match self {
            Self::TR019 => "9019",
            Self::TR056 => "9056",
            Self::TR063 => "9063",
            Self::TR069 => "9069",
            Self::TR071 => "9071",
            Self::TR074 => "9074",
            Self::TR135 => "8848",
            Self::TR326 => "9326",
            Self::TR347 => "9347",
            Self::TR351 => "9351",
            Self::TR374 => "9374",
            Self::TR378 => "S300",
            Self::TR381 => "S329",
        }
    }

    /// The WJ001 return code prescribed for a violation of the rule.
    pub fn return_code(self) -> ReturnCode {
        // Every code above is in WJ001 (a test checks it); the fallback is never taken.
        ReturnCode::from_code(self.code_str()).unwrap_or(ReturnCode::TECHNICAL_REJECTION)
    }

    /// The return code's meaning (WJ001).
    pub fn text(self) -> &'static str {
        self.return_code().description()
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A rule a received message breaks: the rule, the element (path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub path: String,
    pub description: String,
}

impl Violation {
    pub fn new(rule: Rule, path: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            rule,
            path: path.into(),
            description: description.into(),
        }
    }

    /// `TR135: <description>`, as shown to the sender.
    pub fn rule_text(&self) -> String {
        format!("{}: {}", self.rule.id(), self.description)
    }
}

/// TR135: the Dagtekening of a received message is on or before `today` (the receiver's date).
pub fn check_dagtekening(header: &ReceivedHeader, today: NaiveDate) -> Result<(), Violation> {
    if header.message_date > today {
        return Err(Violation::new(
            Rule::TR135,
            "/Bericht/Header/BerichtIdentificatie/Dagtekening",
            format!(
                "the Dagtekening {} is after today ({today}); {}",
                header.message_date,
                Rule::TR135.text()
            ),
        ));
    }
    Ok(())
}
