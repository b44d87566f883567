//! What each schema fixes: message codes, namespaces and XSD versions of iJw 3.2 and iWmo 3.2.

use rz_domain::Law;

/// The messages this crate writes or reads (the number of the message, without the law's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// 301 Toewijzing (assignment), municipality -> provider.
    Assignment301,
    /// 305 Start zorg, provider -> municipality.
    Start305,
    /// 306 return message of a 305.
    Return306,
    /// 307 Stop zorg, provider -> municipality.
    Stop307,
    /// 308 return message of a 307.
    Return308,
    /// 315 Verzoek om toewijzing, provider -> municipality.
    AssignmentRequest315,
    /// 316 return message of a 315.
    Return316,
    /// 317 Verzoek om wijziging, provider -> municipality.
    ChangeRequest317,
    /// 318 return message of a 317.
    Return318,
    /// 319 Antwoordbericht, municipality -> provider.
    Answer319,
    /// 323 Declaratie, provider -> municipality.
    Declaration323,
    /// 325 Declaratie-antwoord, municipality -> provider (answers a 323).
    DeclarationAnswer325,
}

impl MessageType {
    /// Every message this crate writes or reads.
    pub const ALL: [MessageType; 12] = [
        Self::Assignment301,
        Self::Start305,
        Self::Return306,
        Self::Stop307,
        Self::Return308,
        Self::AssignmentRequest315,
        Self::Return316,
        Self::ChangeRequest317,
        Self::Return318,
        Self::Answer319,
        Self::Declaration323,
        Self::DeclarationAnswer325,
    ];

    /// The messages providers send, which the readers read (305, 307, 315, 317).
    pub const PROVIDER_MESSAGES: [MessageType; 4] = [
        Self::Start305,
        Self::Stop307,
        Self::AssignmentRequest315,
        Self::ChangeRequest317,
    ];

    /// The number of the message: `301`, `305`, ...
    pub fn number(self) -> u16 {
        match self {
            Self::Assignment301 => 301,
            Self::Start305 => 305,
            Self::Return306 => 306,
            Self::Stop307 => 307,
            Self::Return308 => 308,
            Self::AssignmentRequest315 => 315,
            Self::Return316 => 316,
            Self::ChangeRequest317 => 317,
            Self::Return318 => 318,
            Self::Answer319 => 319,
            Self::Declaration323 => 323,
            Self::DeclarationAnswer325 => 325,
        }
    }

    /// The message name as in the standard: `JW301`, `WMO306`, ...
    pub fn name(self, law: Law) -> String {
        format!("{}{}", law_prefix(law).to_uppercase(), self.number())
    }

    /// The BerichtCode the message's XSD fixes (list COD002-VEKTIS): JW301 carries 436, WMO301 414.
    pub fn code(self, law: Law) -> &'static str {
        match (law, self) {
            (Law::Jeugdwet, Self::Assignment301) => "436",
            (Law::Jeugdwet, Self::Start305) => "438",
            (Law::Jeugdwet, Self::Return306) => "439",
            (Law::Jeugdwet, Self::Stop307) => "440",
            (Law::Jeugdwet, Self::Return308) => "441",
            (Law::Jeugdwet, Self::AssignmentRequest315) => "446",
            (Law::Jeugdwet, Self::Return316) => "447",
            (Law::Jeugdwet, Self::ChangeRequest317) => "486",
            (Law::Jeugdwet, Self::Return318) => "487",
            (Law::Jeugdwet, Self::Answer319) => "488",
            (Law::Jeugdwet, Self::Declaration323) => "490",
            (Law::Jeugdwet, Self::DeclarationAnswer325) => "491",
            (Law::Wmo, Self::Assignment301) => "414",
            (Law::Wmo, Self::Start305) => "418",
            (Law::Wmo, Self::Return306) => "419",
            (Law::Wmo, Self::Stop307) => "420",
            (Law::Wmo, Self::Return308) => "421",
            (Law::Wmo, Self::AssignmentRequest315) => "444",
            (Law::Wmo, Self::Return316) => "445",
            (Law::Wmo, Self::ChangeRequest317) => "480",
            (Law::Wmo, Self::Return318) => "481",
            (Law::Wmo, Self::Answer319) => "482",
            (Law::Wmo, Self::Declaration323) => "484",
            (Law::Wmo, Self::DeclarationAnswer325) => "485",
        }
    }

    /// The target namespace of the message's XSD, e.g.
    /// `http://www.istandaarden.nl/ijw/3_2/jw301/schema` or
    /// `http://www.istandaarden.nl/iwmo/3_2/wmo306/schema`.
    pub fn namespace(self, law: Law) -> String {
        let standard = match law {
            Law::Jeugdwet => "ijw",
            Law::Wmo => "iwmo",
        };
        format!(
            "http://www.istandaarden.nl/{standard}/3_2/{}{}/schema",
            law_prefix(law),
            self.number()
        )
    }

    /// The return message that answers this message (305 -> 306, ...), if any.
    pub fn return_type(self) -> Option<MessageType> {
        match self {
            Self::Start305 => Some(Self::Return306),
            Self::Stop307 => Some(Self::Return308),
            Self::AssignmentRequest315 => Some(Self::Return316),
            Self::ChangeRequest317 => Some(Self::Return318),
            _ => None,
        }
    }
}

fn law_prefix(law: Law) -> &'static str {
    match law {
        Law::Jeugdwet => "jw",
        Law::Wmo => "wmo",
    }
}

/// `BerichtVersie`: the major release (3).
pub const MESSAGE_VERSION: &str = "3";
/// `BerichtSubversie`: the minor release (2).
pub const MESSAGE_SUBVERSION: &str = "2";

/// The XSD versions from the schemas' appinfo (`BasisschemaXsdVersie`, `BerichtXsdVersie`):
/// `0.1.0` for every iJw 3.2 schema, `1.0.0` for every iWmo 3.2 schema (the iWmo return messages
/// are not shipped; they are assumed to carry the same version as the other iWmo schemas).
pub fn xsd_versions(law: Law) -> (&'static str, &'static str) {
    match law {
        Law::Jeugdwet => ("0.1.0", "0.1.0"),
        Law::Wmo => ("1.0.0", "1.0.0"),
    }
}

/// The largest message accepted by the readers: 25 MiB.
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;
/// The most elements accepted in a 323 (declaration): a file at [`MAX_MESSAGE_BYTES`] written
/// without indentation holds up to about 50,000 lines (some 520 bytes and 16 elements each), about
/// 800,000 elements.
pub const MAX_DECLARATION_ELEMENTS: usize = 1_000_000;
/// The deepest element nesting accepted (the messages need about 8 levels).
pub const MAX_DEPTH: usize = 64;
/// The most elements accepted in one message.
pub const MAX_ELEMENTS: usize = 250_000;
/// The most attributes (namespace declarations included) accepted on one element.
pub const MAX_ATTRIBUTES: usize = 16;
