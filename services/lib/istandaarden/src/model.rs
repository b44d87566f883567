//! Plain input and output types of the writers and readers.

use chrono::{NaiveDate, NaiveDateTime};
use rz_domain::{
    AgbCode, AssignmentNumber, Bsn, Cents, ExecutionVariant, FieldError, Frequency, GemeenteCode,
    Law, MessageId, ProductCode, Referrer, RefusalReason, RequestReason, Unit, WmoChangeReason,
    WmoEndReason, WmoProductCategory, YouthChangeReason, YouthEndReason, YouthProductCategory,
};

use crate::schema::MessageType;

/// A code whose list depends on the law (JZ0xx for the Jeugdwet, WMO0xx for the Wmo).
macro_rules! law_code {
    ($(#[$meta:meta])* $name:ident, $youth:ty, $wmo:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            Youth($youth),
            Wmo($wmo),
        }

        impl $name {
            /// The law whose code list this code is from.
            pub fn law(self) -> Law {
                match self {
                    Self::Youth(_) => Law::Jeugdwet,
                    Self::Wmo(_) => Law::Wmo,
                }
            }

            /// The code as written in the message.
            pub fn code(self) -> &'static str {
                match self {
                    Self::Youth(c) => c.code(),
                    Self::Wmo(c) => c.code(),
                }
            }

            /// Parses a code from the list of `law`.
            pub fn parse(law: Law, code: &str) -> Result<Self, FieldError> {
                match law {
                    Law::Jeugdwet => <$youth>::from_code(code).map(Self::Youth),
                    Law::Wmo => <$wmo>::from_code(code).map(Self::Wmo),
                }
            }
        }

        impl From<$youth> for $name {
            fn from(c: $youth) -> Self {
                Self::Youth(c)
            }
        }

        impl From<$wmo> for $name {
            fn from(c: $wmo) -> Self {
                Self::Wmo(c)
            }
        }
    };
}

law_code!(
    /// Product category: JZ020 (iJw) or WMO020 (iWmo).
    ProductCategory,
    YouthProductCategory,
    WmoProductCategory
);
law_code!(
    /// Reason for changing an assignment: JZ002 (iJw) or WMO002 (iWmo).
    ChangeReason,
    YouthChangeReason,
    WmoChangeReason
);
law_code!(
    /// Reason delivery ended: JZ588 (iJw) or WMO588 (iWmo).
    EndReason,
    YouthEndReason,
    WmoEndReason
);

/// COD046 Geslacht. The 3.2 list has only these three codes (no `9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `0` Onbekend.
    Unknown,
    /// `1` Mannelijk.
    Male,
    /// `2` Vrouwelijk.
    Female,
}

impl Gender {
    pub fn code(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Male => "1",
            Self::Female => "2",
        }
    }

    pub fn from_code(code: &str) -> Result<Self, FieldError> {
        match code {
            "0" => Ok(Self::Unknown),
            "1" => Ok(Self::Male),
            "2" => Ok(Self::Female),
            _ => Err(FieldError::new("gender", "must be a code from list COD046")),
        }
    }
}

/// COD467 Status aanlevering of a start or stop record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// `1` Eerste aanlevering.
    First,
    /// `2` Gewijzigde aanlevering.
    Changed,
    /// `3` Verwijderen aanlevering.
    Delete,
    /// `9` Niet van toepassing (ongewijzigd).
    Unchanged,
}

impl DeliveryStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::First => "1",
            Self::Changed => "2",
            Self::Delete => "3",
            Self::Unchanged => "9",
        }
    }

    pub fn from_code(code: &str) -> Result<Self, FieldError> {
        match code {
            "1" => Ok(Self::First),
            "2" => Ok(Self::Changed),
            "3" => Ok(Self::Delete),
            "9" => Ok(Self::Unchanged),
            _ => Err(FieldError::new("status", "must be a code from list COD467")),
        }
    }
}

/// The header data the municipality supplies for a message it sends (301, 319, return messages
/// use [`ReturnHeader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub law: Law,
    /// Afzender: the sending municipality.
    pub sender_municipality: GemeenteCode,
    /// Ontvanger: the receiving provider.
    pub receiver_agb: AgbCode,
    /// BerichtIdentificatie/Identificatie: at most 12 characters.
    pub message_id: MessageId,
    /// BerichtIdentificatie/Dagtekening.
    pub message_date: NaiveDate,
}

/// A person's name (CDT_VolledigeNaam / CDT_VerkorteNaam).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name {
    /// Geslachtsnaam/Achternaam (1..=200 characters).
    pub family_name: String,
    /// Geslachtsnaam/Voorvoegsel, e.g. `van der` (at most 10 characters).
    pub prefix: Option<String>,
    /// Voornamen (at most 200 characters).
    pub given_names: Option<String>,
    /// Voorletters: letters only, at most 6 (`JP`).
    pub initials: Option<String>,
}

/// A Dutch address (CDT_Adres).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Straatnaam (at most 24 characters).
    pub street: String,
    /// Huisnummer (0..=99999).
    pub house_number: u32,
    /// Huisletter.
    pub house_letter: Option<char>,
    /// HuisnummerToevoeging (at most 4 characters).
    pub house_number_addition: Option<String>,
    /// Postcode (at most 8 characters), e.g. `7001AB`.
    pub postal_code: String,
    /// Plaatsnaam (at most 80 characters).
    pub city: String,
}

/// The client block of a 301.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub bsn: Bsn,
    pub birth_date: NaiveDate,
    pub gender: Gender,
    pub name: Name,
    /// Written as the BRP address (COD757 `01`).
    pub address: Address,
}

/// Size of an assignment (CDT_Omvang): volume, unit (WJ756) and frequency (WMO757).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    /// 0..=99,999,999.
    pub volume: u32,
    pub unit: Unit,
    pub frequency: Frequency,
}

/// Product category plus optional product code (CDT_Product).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Product {
    pub category: ProductCategory,
    pub code: Option<ProductCode>,
}

/// One assigned product of a 301 (ToegewezenProduct).
///
/// `variant` decides what is written besides the category:
/// - taakgericht: the product category only (no code, no size, no budget);
/// - outputgericht: category + code + budget (a size is allowed as well);
/// - inspanningsgericht: category + code + size (a budget is allowed as well).
///
/// Anything else is a [`crate::RenderError::Variant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedProduct {
    pub number: AssignmentNumber,
    pub variant: ExecutionVariant,
    /// ReferentieAanbieder, when the assignment answers a 315/317 (at most 36 characters).
    pub provider_reference: Option<String>,
    pub category: ProductCategory,
    pub product_code: Option<ProductCode>,
    /// Toewijzingsdatum + Toewijzingstijd (local civil time, no time zone).
    pub assigned_at: NaiveDateTime,
    /// Ingangsdatum.
    pub start: NaiveDate,
    /// Einddatum (inclusive).
    pub end: Option<NaiveDate>,
    pub change_reason: Option<ChangeReason>,
    pub size: Option<Size>,
    /// Budget in euro cents; the standard's unit is 1/100 of the currency, so the value is
    /// written as is (at most 99,999,999).
    pub budget: Option<Cents>,
}

/// The answer of a 319 to a 315 or 317 request. A granted request is answered with a 301, so the
/// list WJ760 only has "refused" and "under investigation".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// VerzoekAntwoord `1`, with RedenAfwijzingVerzoek (WJ759). `responsible_municipality`
    /// (Woonplaatsbeginsel/Gemeente) exists only in JW319, and only with reason `8`.
    Refused {
        reason: RefusalReason,
        responsible_municipality: Option<GemeenteCode>,
    },
    /// VerzoekAntwoord `2`: aanvraag in onderzoek.
    UnderInvestigation,
}

/// The content of a 319.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// ReferentieAanbieder of the 315/317 being answered (1..=36 characters).
    pub provider_reference: String,
    pub outcome: RequestOutcome,
}

/// The header of a received provider message (305, 307, 315, 317).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedHeader {
    pub law: Law,
    pub message_type: MessageType,
    /// Afzender: the provider.
    pub sender_agb: AgbCode,
    /// Ontvanger: the municipality.
    pub receiver_municipality: GemeenteCode,
    pub message_id: MessageId,
    pub message_date: NaiveDate,
    /// XsdVersie/BasisschemaXsdVersie as received.
    pub basisschema_xsd_version: String,
    /// XsdVersie/BerichtXsdVersie as received.
    pub message_xsd_version: String,
}

/// The client of a 305, 307 or 315 (CDT_VerkorteNaam).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedClient {
    pub bsn: Bsn,
    pub birth_date: NaiveDate,
    pub gender: Gender,
    pub name: Name,
}

/// One StartProduct of a 305.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedProduct {
    /// Path of the record, the key for its return codes in [`crate::RecordCodes`].
    pub record: String,
    pub assignment_number: Option<AssignmentNumber>,
    pub product: Option<Product>,
    pub assignment_start: Option<NaiveDate>,
    /// Begindatum: delivery started.
    pub start: NaiveDate,
    pub status: DeliveryStatus,
}

/// One StopProduct of a 307.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedProduct {
    pub record: String,
    pub assignment_number: Option<AssignmentNumber>,
    pub product: Option<Product>,
    pub assignment_start: Option<NaiveDate>,
    /// Begindatum of the delivery.
    pub start: NaiveDate,
    pub end_reason: EndReason,
    /// Einddatum: not before `start`.
    pub end: NaiveDate,
    pub status: DeliveryStatus,
}

/// Verwijzer of a 315 (CDT_Verwijzer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerInfo {
    pub kind: Referrer,
    pub name: Option<String>,
    pub agb: Option<AgbCode>,
}

/// One AangevraagdProduct of a 315.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedProduct {
    pub record: String,
    pub provider_reference: String,
    pub decision_number: Option<u32>,
    pub product: Option<Product>,
    pub decision_start: Option<NaiveDate>,
    /// ToewijzingIngangsdatum.
    pub start: NaiveDate,
    /// ToewijzingEinddatum: not before `start`.
    pub end: Option<NaiveDate>,
    pub size: Option<Size>,
    pub budget: Option<Cents>,
    pub referrer: ReferrerInfo,
    pub framework_contract: Option<bool>,
    pub comment: Option<String>,
}

/// OngewijzigdProduct of a 317.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnchangedProduct {
    pub record: String,
    pub assignment_number: AssignmentNumber,
}

/// TeWijzigenProduct of a 317.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductChange {
    pub record: String,
    pub assignment_number: AssignmentNumber,
    pub desired_start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub size: Option<Size>,
    pub budget: Option<Cents>,
}

/// NieuwProduct of a 317.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub record: String,
    pub product: Option<Product>,
    pub desired_start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub size: Option<Size>,
    pub budget: Option<Cents>,
}

/// Verzoek of a 317.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub record: String,
    pub provider_reference: String,
    pub reason: RequestReason,
    pub unchanged: Vec<UnchangedProduct>,
    pub to_change: Vec<ProductChange>,
    pub new: Vec<NewProduct>,
}

/// A parsed 305 Start zorg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message305 {
    pub header: ReceivedHeader,
    pub client: ReceivedClient,
    pub products: Vec<StartedProduct>,
    /// The received client block, echoed by the 306.
    pub body: crate::ReceivedBody,
}

/// A parsed 307 Stop zorg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message307 {
    pub header: ReceivedHeader,
    pub client: ReceivedClient,
    pub products: Vec<StoppedProduct>,
    pub body: crate::ReceivedBody,
}

/// A parsed 315 Verzoek om toewijzing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message315 {
    pub header: ReceivedHeader,
    pub client: ReceivedClient,
    /// GezagsdragerBekend (iJw only).
    pub guardian_known: Option<bool>,
    pub comment: Option<String>,
    pub products: Vec<RequestedProduct>,
    pub body: crate::ReceivedBody,
}

/// A parsed 317 Verzoek om wijziging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message317 {
    pub header: ReceivedHeader,
    pub bsn: Bsn,
    pub request: ChangeRequest,
    pub body: crate::ReceivedBody,
}
