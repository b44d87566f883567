//! Code lists: our own (law, financing, execution variant) and the iStandaarden iJw/iWmo 3.2 lists.
//!
//! Code values are kept exactly as in the lists (leading zeros included); descriptions are the
//! Dutch texts of the lists. Every code type has `code()`, `from_code()`, `description()` and
//! (de)serializes as its code string. Short lists are enums with an `ALL` slice; long lists
//! (return codes, product categories) are validated newtypes over a static `TABLE`.
//!
//! Expired codes are left out: code `01` "Administratieve correctie (vervallen)" of JZ002/WMO002
//! is still in the 3.2 schema but must not be used; it fails to parse here. The JZ020 categories
//! 31..=38 marked "(2015)" are still valid codes in the 3.2 schema and are included.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Shared trait impls for a code type with `code()` and `from_code()`.
macro_rules! code_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            /// Writes the code (not the description).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::from_code(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::from_code(&s)
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str {
                v.code()
            }
        }
    };
}

/// A code list as an enum: `Variant = "code", "description";`.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, list = $list:literal {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal, $desc:literal;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $code, "`: ", $desc)] $variant,)+
        }

        impl $name {
            /// Every valid code, in list order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The name of the code list.
            pub const LIST: &'static str = $list;
            /// The default field name in a [`FieldError`].
            pub const FIELD: &'static str = $field;

            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code,)+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $desc,)+ }
            }

            pub fn from_code(code: &str) -> Result<Self, FieldError> {
                match code {
                    $($code => Ok(Self::$variant),)+
                    _ => Err(FieldError::new($field, concat!("must be a code from list ", $list))),
                }
            }
        }

        code_impls!($name);
    };
}

/// A long code list as a validated newtype over a static `(code, description)` table.
macro_rules! code_table {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, list = $list:literal,
        table = [$(($code:literal, $desc:literal),)+]
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub struct $name(u16);

        impl $name {
            /// Every valid `(code, description)`, in list order.
            pub const TABLE: &'static [(&'static str, &'static str)] = &[$(($code, $desc)),+];
            /// The name of the code list.
            pub const LIST: &'static str = $list;
            /// The default field name in a [`FieldError`].
            pub const FIELD: &'static str = $field;

            pub fn parse(code: &str) -> Result<Self, FieldError> {
                Self::TABLE
                    .iter()
                    .position(|(c, _)| *c == code)
                    .and_then(|i| u16::try_from(i).ok())
                    .map(Self)
                    .ok_or_else(|| {
                        FieldError::new($field, concat!("must be a code from list ", $list))
                    })
            }

            /// Same as [`Self::parse`].
            pub fn from_code(code: &str) -> Result<Self, FieldError> {
                Self::parse(code)
            }

            fn entry(self) -> (&'static str, &'static str) {
                Self::TABLE.get(usize::from(self.0)).copied().unwrap_or(("", ""))
            }

            pub fn code(self) -> &'static str {
                self.entry().0
            }

            pub fn description(self) -> &'static str {
                self.entry().1
            }

            /// Every valid code, in list order.
            pub fn all() -> impl Iterator<Item = Self> {
                (0..Self::TABLE.len()).filter_map(|i| u16::try_from(i).ok()).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.code())
            }
        }

        code_impls!($name);
    };
}

code_enum!(
    /// The law a case falls under (our own codes).
    Law, field = "law", list = "rz-law" {
        Jeugdwet = "jeugdwet", "Jeugdwet";
        Wmo = "wmo", "Wet maatschappelijke ondersteuning 2015";
    }
);

code_enum!(
    /// How a contract is financed (our own codes).
    Financing, field = "financing", list = "rz-financing" {
        /// Fixed budget per period for a segment, not paid per client.
        Lumpsum = "lumpsum", "Lumpsum";
        /// Providers jointly responsible for a target group's outcome for a fixed sum.
        PopulationBased = "population", "Populatiebekostiging";
        /// Price times quantity, per client indication.
        PxQ = "pxq", "PxQ (prijs maal hoeveelheid)";
        /// A separately procured contract (e.g. hospital youth care).
        SeparateContract = "separate", "Apart contract";
    }
);

code_enum!(
    /// The iStandaarden execution variant (uitvoeringsvariant) of an assignment (our own codes;
    /// in the messages the variant shows in which elements of the assigned product are filled).
    ExecutionVariant, field = "execution_variant", list = "rz-execution-variant" {
        /// Only the product category is assigned, no volume.
        Taakgericht = "taakgericht", "Taakgericht";
        /// A product with a budget or result.
        Outputgericht = "outputgericht", "Outputgericht";
        /// Volume + unit + frequency.
        Inspanningsgericht = "inspanningsgericht", "Inspanningsgericht";
    }
);

impl ExecutionVariant {
    /// Whether the standard's 301 names the product (Productcode) for this variant: effort-based
    /// (volume) and output-based (budget) assignments do, task-based ones assign only the category.
    pub fn names_product(self) -> bool {
        self != Self::Taakgericht
    }

    /// The product code a decision or assignment of this variant carries, checked against the
    /// region's product codes of its subsegment (`allowed`; empty = any valid code). When the
    /// variant names its product and none is given, the subsegment's only product is taken; with
    /// several to choose from, the caller must choose.
    pub fn product_code(
        self,
        allowed: &[crate::ProductCode],
        given: &str,
        field: &str,
    ) -> Result<Option<crate::ProductCode>, FieldError> {
        let list = || {
            allowed
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Taken as sent: " 45A12" is refused by the product code's rule, not trimmed.
        if given.is_empty() {
            return match (self.names_product(), allowed) {
                (false, _) => Ok(None),
                (true, [only]) => Ok(Some(only.clone())),
                (true, []) => Err(FieldError::new(
                    field,
                    format!(
                        "must be given for an {} product (the standard's 301 message names the product)",
                        self.code()
                    ),
                )),
                (true, _) => Err(FieldError::new(
                    field,
                    format!(
                        "must be given for an {} product (the standard's 301 message names the product): one of {}",
                        self.code(),
                        list()
                    ),
                )),
            };
        }
        let code = crate::ProductCode::parse(given).map_err(|e| e.at(field))?;
        if !allowed.is_empty() && !allowed.contains(&code) {
            return Err(FieldError::new(
                field,
                format!("must be one of the subsegment's product codes: {}", list()),
            ));
        }
        Ok(Some(code))
    }
}

impl Financing {
    /// Lumpsum and population-based -> task-based; PxQ -> effort-based; separate -> output-based.
    pub fn execution_variant(self) -> ExecutionVariant {
        match self {
            Self::Lumpsum | Self::PopulationBased => ExecutionVariant::Taakgericht,
            Self::PxQ => ExecutionVariant::Inspanningsgericht,
            Self::SeparateContract => ExecutionVariant::Outputgericht,
        }
    }
}

code_enum!(
    /// WJ756 Eenheid: the unit of a volume (same list for iJw and iWmo).
    Unit, field = "unit", list = "WJ756" {
        Minute = "01", "Minuut";
        Hour = "04", "Uur";
        /// Etmaal: a day and night (24 hours).
        Etmaal = "14", "Etmaal";
        /// Dagdeel: a part of a day of 4 hours.
        DayPart = "16", "Dagdeel (4 uur)";
        PiecesOutput = "82", "Stuks (output)";
        Euros = "83", "Euro's";
        PiecesEffort = "84", "Stuks (inspanning)";
    }
);

code_enum!(
    /// WMO757 Frequentie: the period a volume applies to (used by iJw and iWmo).
    Frequency, field = "frequency", list = "WMO757" {
        PerDay = "1", "Per dag";
        PerWeek = "2", "Per week";
        PerMonth = "4", "Per maand";
        /// The volume is the total for the whole assignment period.
        Total = "6", "Totaal binnen geldigheidsduur toewijzing";
    }
);

code_enum!(
    /// JZ002 Reden wijziging toewijzing (iJw). Expired code `01` is not accepted.
    YouthChangeReason, field = "change_reason", list = "JZ002" {
        ClientDeceased = "02", "Cliënt overleden";
        ContractChange = "03", "Contractwijziging";
        ReassessmentExtension = "04", "Herbeoordeling verlenging toewijzing";
        ReassessmentShortening = "05", "Herbeoordeling verkorting toewijzing";
        OutflowToOtherDomain = "06", "Uitstroom naar ander domein";
        MovedToOtherMunicipality = "07", "Verhuizing naar een andere gemeente";
        DeliveryFormChange = "08", "Wijziging leveringsvorm";
        SwitchToOtherProvider = "09", "Overstap naar andere aanbieder";
        NewFinancingSystem = "10", "Overgang naar nieuwe bekostigingssystematiek";
        MunicipalReorganisation = "11", "Gemeentelijke herindeling";
        InitiatedByProvider = "12", "Geïnitieerd door de aanbieder";
        /// Sent by mistake: end date equals start date, the assignment counts as never sent.
        Deleted = "13", "Verwijderd";
        AdministrativeCorrection = "14", "Administratieve correctie";
    }
);

code_enum!(
    /// WMO002 Reden wijziging toewijzing (iWmo). Expired code `01` is not accepted.
    WmoChangeReason, field = "change_reason", list = "WMO002" {
        ClientDeceased = "02", "Cliënt overleden";
        ContractChange = "03", "Contractwijziging";
        ReassessmentExtension = "04", "Herbeoordeling: verlenging toewijzing";
        ReassessmentShortening = "05", "Herbeoordeling: verkorting toewijzing";
        OutflowToOtherDomain = "06", "Uitstroom naar ander domein";
        MovedToOtherMunicipality = "07", "Verhuizing naar een andere gemeente";
        DeliveryFormChange = "08", "Wijziging leveringsvorm";
        SwitchToOtherProvider = "09", "Overstap naar andere aanbieder";
        NewFinancingSystem = "10", "Overgang naar nieuwe bekostigingssystematiek";
        MunicipalReorganisation = "11", "Gemeentelijke herindeling";
        InitiatedByProvider = "12", "Geïnitieerd door de aanbieder";
        /// Sent by mistake: end date equals start date, the assignment counts as never sent.
        Deleted = "13", "Verwijderd";
        AdministrativeCorrection = "14", "Administratieve correctie";
    }
);

code_enum!(
    /// JZ588 Reden beëindiging (iJw): why delivery of youth care ended (307 Stop zorg).
    YouthEndReason, field = "end_reason", list = "JZ588" {
        Deceased = "02", "Overlijden";
        TemporarilyEnded = "20", "Levering is tijdelijk beëindigd";
        EndedAsPlanned = "31", "Levering is volgens plan beëindigd";
        EndedEarlyByClient = "32", "Voortijdig afgesloten, door cliënt";
        EndedEarlyByProvider = "33", "Voortijdig afgesloten, door aanbieder";
        EndedEarlyByAgreement = "34", "Voortijdig afgesloten, in overleg";
        EndedEarlyExternalCause = "35", "Voortijdig afgesloten, externe oorzaak";
        InitiatedByMunicipality = "36", "Geïnitieerd door de gemeente";
        ChangeRequest = "37", "In verband met wijzigingsverzoek";
        SwitchToOtherProvider = "38", "Overstap naar andere aanbieder";
        OutflowToOtherDomain = "39", "Uitstroom naar ander domein";
    }
);

code_enum!(
    /// WMO588 Reden beëindiging (iWmo): why delivery of Wmo support ended (307 Stop zorg).
    WmoEndReason, field = "end_reason", list = "WMO588" {
        Deceased = "02", "Overlijden";
        EndedAsPlanned = "19", "Levering volgens plan beeindigd";
        TemporarilyEnded = "20", "Levering is tijdelijk beeindigd";
        EndedByClient = "21", "Levering is eenzijdig door client beeindigd";
        EndedByProvider = "22", "Levering is eenzijdig door aanbieder beeindigd";
        EndedEarlyByAgreement = "23", "Levering is in overeenstemming voortijdig beeindigd";
        MovedToOtherMunicipality = "31", "Verhuizing naar een andere gemeente";
        InitiatedByMunicipality = "36", "Geinitieerd door de gemeente";
        ChangeRequest = "37", "In verband met wijzigingsverzoek";
        SwitchToOtherProvider = "38", "Overstap naar andere aanbieder";
        OutflowToOtherDomain = "39", "Uitstroom naar ander domein";
    }
);

impl YouthChangeReason {
    /// The end reason (JZ588) that goes with this change reason, per the list's last column;
    /// `None` where the list says "nvt" (04, 13, 14).
    pub fn end_reason(self) -> Option<YouthEndReason> {
        use YouthEndReason as E;
        match self {
            Self::ClientDeceased => Some(E::Deceased),
            Self::ContractChange
            | Self::ReassessmentShortening
            | Self::DeliveryFormChange
            | Self::NewFinancingSystem
            | Self::MunicipalReorganisation => Some(E::InitiatedByMunicipality),
            Self::OutflowToOtherDomain => Some(E::OutflowToOtherDomain),
            Self::MovedToOtherMunicipality => Some(E::EndedEarlyExternalCause),
            Self::SwitchToOtherProvider => Some(E::SwitchToOtherProvider),
            Self::InitiatedByProvider => Some(E::ChangeRequest),
            Self::ReassessmentExtension | Self::Deleted | Self::AdministrativeCorrection => None,
        }
    }
}

impl WmoChangeReason {
    /// The end reason (WMO588) that goes with this change reason, per the list's last column;
    /// `None` where the list says "nvt" (04, 13, 14).
    pub fn end_reason(self) -> Option<WmoEndReason> {
        use WmoEndReason as E;
        match self {
            Self::ClientDeceased => Some(E::Deceased),
            Self::ContractChange
            | Self::ReassessmentShortening
            | Self::DeliveryFormChange
            | Self::NewFinancingSystem
            | Self::MunicipalReorganisation => Some(E::InitiatedByMunicipality),
            Self::OutflowToOtherDomain => Some(E::OutflowToOtherDomain),
            Self::MovedToOtherMunicipality => Some(E::MovedToOtherMunicipality),
            Self::SwitchToOtherProvider => Some(E::SwitchToOtherProvider),
            Self::InitiatedByProvider => Some(E::ChangeRequest),
            Self::ReassessmentExtension | Self::Deleted | Self::AdministrativeCorrection => None,
        }
    }
}

code_enum!(
    /// WJ758 Reden verzoek: why a provider asks to change an assignment (317).
    RequestReason, field = "request_reason", list = "WJ758" {
        ClientSituationChanged = "1", "Verandering clientsituatie";
        CarePlanChanged = "2", "Wijziging zorgplan";
    }
);

code_enum!(
    /// WJ759 Reden afwijzing verzoek: why a 315/317 request was refused (319).
    RefusalReason, field = "refusal_reason", list = "WJ759" {
        NotAChangeButNewRequest = "1", "Geen wijziging, maar nieuwe aanvraag";
        ExceedsBudget = "2", "Past niet binnen budget";
        NoContract = "3", "Geen contract";
        NotWithinContract = "4", "Past niet binnen contract";
        OtherMunicipality = "5", "Andere gemeente";
        /// Stapeling: accumulation with other care.
        Stacking = "6", "Stapeling";
        CareContentRejection = "7", "Zorginhoudelijke afkeur";
        /// Woonplaatsbeginsel: another municipality is responsible by the residence principle.
        ResidencePrinciple = "8", "Woonplaatsbeginsel";
        AgeLimitReached = "9", "Leeftijdsgrens is bereikt";
    }
);

code_enum!(
    /// WJ760 Verzoek antwoord: the answer in a 319. There is no "granted" code: a granted request
    /// is answered with a 301 assignment.
    RequestAnswer, field = "request_answer", list = "WJ760" {
        Refused = "1", "Verzoek afgewezen";
        UnderInvestigation = "2", "Aanvraag in onderzoek";
    }
);

code_enum!(
    /// COD327 Code verwijzer: who referred the client (315). There is no code `07`.
    Referrer, field = "referrer", list = "COD327" {
        Municipality = "01", "Gemeente";
        GeneralPractitioner = "02", "Huisarts";
        YouthDoctor = "03", "Jeugdarts";
        CertifiedInstitution = "04", "Gecertificeerde instelling";
        MedicalSpecialist = "05", "Medisch specialist";
        SelfReferral = "06", "Zelfverwijzer / geen verwijzer";
        Judiciary = "08", "Rechter, Officier van Justitie, functionaris Justitiële jeugdinrichting";
    }
);

code_table!(
    /// WJ001 Retourcode: the result of checking (part of) a received message, in a return message.
    ///
    /// Note: `0200` ("no remark about this message class") is the code for *accepted*; `0001`
    /// means *rejected for technical reasons*. The list is the same for iJw and iWmo; its 59 codes
    /// are those of the 3.2 schema (descriptions from the code list; `9355` from the schema).
    ReturnCode, field = "return_code", list = "WJ001",
    table = [
        ("0001", "Bericht is afgekeurd om technische redenen."),
        ("0200", "Geen opmerking over deze berichtklasse."),
        ("0233", "Berichtklasse is niet beoordeeld."),
        ("0611", "Het ingediende tarief komt niet overeen met het contractuele tarief."),
        ("8001", "Declaratie is volledig toegewezen."),
        ("8017", "Van deze credit prestatie is geen debet prestatie bekend."),
        ("8021", "Referentienummer prestatie is reeds aangeleverd."),
        ("8187", "De prestatie hoort niet bij deze cliënt."),
        ("8214", "DeclaratiePeriode is niet de kalendermaand die volgt op voorgaande DeclaratiePeriode terwijl iedere declaratieperiode zorg geleverd is."),
        ("8848", "Dagtekening moet gelijk zijn aan of voor de systeemdatum liggen."),
        ("9019", "Het regiebericht kan niet gekoppeld worden aan een toewijzing."),
        ("9056", "Identificatie moet uniek zijn."),
        ("9063", "Het bericht kan niet verwerkt worden omdat geen eerder bericht ontvangen is"),
        ("9069", "Er is geen actueel startbericht met dezelfde sleutel."),
        ("9071", "Het eerdere startbericht kan niet verwijderd worden omdat de zorg al beeindigd is."),
        ("9074", "Er is al een eerder bericht ontvangen met dezelfde sleutel."),
        ("9307", "Begindatum prestatie ligt niet tussen de ingangsdatum en einddatum toewijzing."),
        ("9308", "Einddatum prestatie ligt niet tussen de ingangsdatum en einddatum toewijzing."),
        ("9319", "De ProductPeriode valt niet geheel binnen een DeclaratiePeriode."),
        ("9321", "Het ingediende volume overschrijdt het toegewezen volume."),
        ("9322", "De som van de ingediende volumes overschrijdt het toegewezen volume."),
        ("9326", "De actuele levering is nog niet gestopt met een Stopbericht."),
        ("9332", "Toewijzing heeft geen uniek nummer binnen wettelijk domein."),
        ("9333", "Declaratienummer is niet uniek."),
        ("9338", "Niet iedere prestatie in een declaratiebericht is gerelateerd aan een toegewezen product op basis van het toewijzingnummer."),
        ("9339", "ProductCategorie in de prestatie is niet gelijk aan ProductCategorie in het ToegewezenProduct."),
        ("9340", "ProductCode in de Prestatie is niet gelijk aan ProductCode in het ToegewezenProduct."),
        ("9341", "Eenheid in de Prestatie past niet bij Eenheid in het ToegewezenProduct."),
        ("9346", "Eenheid is ongelijk is aan waarde 83 (Euro’s), maar IngediendBedrag is niet gelijk aan GeleverdVolume vermenigvuldigd met (het onafgeronde) ProductTarief."),
        ("9347", "ReferentieAanbieder is niet uniek voor de aanbieder binnen het wettelijk domein."),
        ("9349", "Het VOW bericht bevat niet alle actuele toegewezen producten van de cliënt, hetzij in OngewijzigdProduct, hetzij in TeWijzigenProduct."),
        ("9350", "OngewijzigdProduct is niet gerelateerd aan een actueel toegewezen product op basis van het toewijzingnummer."),
        ("9351", "TeWijzigenProduct is niet gerelateerd aan een actuele toewijzing op basis van ToewijzingNummer."),
        ("9355", "ReferentieAanbieder in het antwoordbericht komt niet voor in een eerder verzoek om toewijzing of verzoek om wijziging"),
        ("9357", "GewensteIngangsdatum is kleiner dan of gelijk aan de dagtekening, maar niet gelijk aan de ingangsdatum van het originele ToegewezenProduct."),
        ("9359", "Er is al een toewijzing gestuurd met deze ReferentieAanbieder."),
        ("9360", "Er is al een antwoordbericht met deze ReferentieAanbieder, terwijl antwoordbericht in VerzoekAntwoord waarde 2 (aanvraag in onderzoek) heeft."),
        ("9361", "Het product komt vaker voor met overlappende zorgperiodes."),
        ("9365", "Er is al een antwoordbericht met dezelfde ReferentieAanbieder waar VerzoekAntwoord niet de waarde ‘Aanvraag in onderzoek’ heeft."),
        ("9366", "ProductReferentie komt niet voor in een Declaratiebericht."),
        ("9367", "De waarde komt niet overeen met de waarde uit heenbericht met gelijke ProductReferentie."),
        ("9369", "Budget is meegegeven, maar de som van GeleverdVolume in alle ingediende Prestaties passen niet binnen het toegewezen Budget."),
        ("9373", "Budget is gewijzigd, maar GewensteIngangsdatum is niet gelijk aan die in de actuele toewijzing."),
        ("9374", "Er is al een verzoek onderhanden."),
        ("9375", "Omvang is gevuld, terwijl Product in toewijzing met ToewijzingNummer leeg is en Einddatum groter dan 31-12-2020 of leeg is."),
        ("9379", "ReferentieAanbieder refereert niet naar een verzoek om toewijzing of verzoek om wijziging, is onterecht gevuld."),
        ("9384", "Declaratie op toewijzing met RedenWijziging “13” (Verwijderd)."),
        ("9385", "Toewijzing heeft goedgekeurde declaratieregels."),
        ("9387", "Begindatum van de ProductPeriode is niet eerste dag van de kalendermaand waarop ProductPeriode betrekking heeft en Ingangsdatum van de toewijzing ligt niet later in deze betreffende maand."),
        ("9388", "Einddatum van de ProductPeriode is niet laatste dag van de kalendermaand waarop ProductPeriode betrekking heeft en Einddatum van de toewijzing ligt niet eerder in deze betreffende maand."),
        ("9389", "Deze prestatie heeft een debetprestatie zonder bijbehorende creditprestatie."),
        ("9390", "Er is al een Prestatie met gelijk ProductReferentie met waarde Credit."),
        ("9411", "Omvang is leeg, terwijl Code in Product bij de toewijzing met ToewijzingNummer gevuld is."),
        ("9412", "Omvang is niet leeg, terwijl Code in Product bij de toewijzing met ToewijzingNummer leeg is en einddatum groter dan 31-12-2020 of leeg is."),
        ("9413", "StatusAanlevering is waarde 1 of 2 en RedenBeeindiging heeft waarde 20, terwijl er al een ander StopProduct met hetzelfde Bsn, ToewijzingNummer, Begindatum en RedenBeeindiging waarde 20 is."),
        ("9414", "Einddatum is niet >= aan Einddatum uit actuele StopProduct met gelijk Bsn, ToewijzingNummer en Begindatum."),
        ("9415", "Er is al een StopProduct met gelijk Bsn, ToewijzingNummer, Begindatum en RedenBeeindiging <> waarde 20 en StatusAanlevering heeft waarde 1 of 2."),
        ("S300", "Gemeentecode ongeldig."),
        ("S329", "ProductCode ongeldig."),
    ]
);

impl ReturnCode {
    /// `0001`: the message is rejected for technical reasons.
    pub const TECHNICAL_REJECTION: ReturnCode = ReturnCode(0);
    /// `0200`: no remark about this message class, i.e. accepted.
    pub const ACCEPTED: ReturnCode = ReturnCode(1);
    /// `0233`: the message class was not assessed.
    pub const NOT_ASSESSED: ReturnCode = ReturnCode(2);
}

code_table!(
    /// JZ020 Productcategorie (iJw). Codes 31..=38 are the 2015 categories, still in the 3.2 list.
    YouthProductCategory, field = "product_category", list = "JZ020",
    table = [
        ("31", "(2015) Zonder verblijf: uitgevoerd door wijk- of buurtteam"),
        ("32", "(2015) Zonder verblijf: ambulante jeugdhulp op locatie van de aanbieder"),
        ("33", "(2015) Zonder verblijf: daghulp op locatie van de aanbieder"),
        ("34", "(2015) Zonder verblijf: jeugdhulp in het netwerk van de jeugdige"),
        ("35", "(2015) Met verblijf: pleegzorg"),
        ("36", "(2015) Met verblijf: gezinsgericht"),
        ("37", "(2015) Met verblijf: gesloten plaatsing"),
        ("38", "(2015) Met verblijf: overig residentieel"),
        ("40", "Persoonlijke verzorging"),
        ("41", "Dagbehandeling"),
        ("42", "Vervoerdiensten"),
        ("43", "Jeugdhulp verblijf (incl. behandeling)"),
        ("44", "Jeugdhulp verblijf (excl. behandeling)"),
        ("45", "Jeugdhulp ambulant"),
        ("46", "Jeugdhulp crisis"),
        ("47", "Jeugdreclassering"),
        ("48", "Jeugdbescherming"),
        ("49", "Activiteiten in het preventief justitieel kader"),
        ("50", "Maatwerkarrangementen jeugd"),
        ("51", "Generalistische basis-ggz"),
        ("52", "Specialistische ggz"),
        ("53", "Kindergeneeskunde"),
        ("54", "Jeugd-ggz"),
        ("55", "Landelijk ingekochte zorg"),
    ]
);

code_table!(
    /// WMO020 Productcategorie (iWmo).
    WmoProductCategory, field = "product_category", list = "WMO020",
    table = [
        ("01", "Hulp bij het huishouden"),
        ("02", "Begeleiding"),
        ("03", "Persoonlijke verzorging"),
        ("04", "Kortdurend verblijf"),
        ("05", "Woondiensten"),
        ("06", "Overige ondersteuning gericht op het individu of huishouden/gezin"),
        ("07", "Dagbesteding"),
        ("08", "Vervoerdiensten"),
        ("09", "Overige groepsgerichte ondersteuning"),
        ("10", "Overige maatwerk arrangementen"),
        ("11", "Rolstoelen"),
        ("12", "Vervoervoorzieningen"),
        ("13", "Woonvoorzieningen"),
        ("14", "Overige hulpmiddelen"),
        ("15", "Beschermd wonen"),
        ("16", "Opvang"),
        ("17", "Spoedopvang"),
        ("18", "Overige beschermd wonen en opvang"),
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_code_follows_the_variant_and_the_subsegment() {
        let pc = |s: &str| crate::ProductCode::parse(s).unwrap();
        let two = [pc("PV01"), pc("PV02")];
        let e = ExecutionVariant::Inspanningsgericht;
        assert_eq!(e.product_code(&two, "PV02", "p"), Ok(Some(pc("PV02"))));
        // Not trimmed: white space around the code is refused by the code's rule.
        assert_eq!(e.product_code(&two, " PV02 ", "p").unwrap_err().field, "p");
        let err = e
            .product_code(&two, "", "grant[0].product_code")
            .unwrap_err();
        assert_eq!(err.field, "grant[0].product_code");
        assert!(err.rule.contains("PV01, PV02"), "{}", err.rule);
        assert!(
            e.product_code(&two, "PV03", "p")
                .unwrap_err()
                .rule
                .contains("one of")
        );
        assert_eq!(e.product_code(&two, "PV-3", "p").unwrap_err().field, "p");
        let one = [pc("ZH01")];
        let o = ExecutionVariant::Outputgericht;
        assert_eq!(o.product_code(&one, "", "p"), Ok(Some(pc("ZH01"))));
        assert!(o.product_code(&[], "", "p").is_err());
        assert_eq!(o.product_code(&[], "45A53", "p"), Ok(Some(pc("45A53"))));
        let t = ExecutionVariant::Taakgericht;
        assert_eq!(t.product_code(&[], "", "p"), Ok(None));
        assert_eq!(t.product_code(&[], "45A53", "p"), Ok(Some(pc("45A53"))));
    }

    /// Every enum code round-trips through `from_code`, serde and `FromStr`; codes are unique.
    macro_rules! round_trip {
        ($($t:ty),+) => {$(
            let mut seen = std::collections::HashSet::new();
            for v in <$t>::ALL {
                assert!(seen.insert(v.code()), "duplicate {}", v.code());
                assert_eq!(<$t>::from_code(v.code()), Ok(*v));
                assert_eq!(v.to_string().parse::<$t>(), Ok(*v));
                assert!(!v.description().is_empty());
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{}\"", v.code()));
                assert_eq!(serde_json::from_str::<$t>(&json).unwrap(), *v);
            }
            let e = <$t>::from_code("xx").unwrap_err();
            assert_eq!(e.field, <$t>::FIELD);
            assert_eq!(e.rule, format!("must be a code from list {}", <$t>::LIST));
            assert!(serde_json::from_str::<$t>("\"xx\"").is_err());
        )+};
    }

    #[test]
    fn enums_round_trip() {
        round_trip!(
            Law,
            Financing,
            ExecutionVariant,
            Unit,
            Frequency,
            YouthChangeReason,
            WmoChangeReason,
            YouthEndReason,
            WmoEndReason,
            RequestReason,
            RefusalReason,
            RequestAnswer,
            Referrer
        );
    }

    #[test]
    fn exact_codes() {
        assert_eq!(Unit::Minute.code(), "01");
        assert_eq!(
            Unit::from_code("1"),
            Err(FieldError::new("unit", "must be a code from list WJ756"))
        );
        assert_eq!(Unit::ALL.len(), 7);
        assert_eq!(Frequency::from_code("6"), Ok(Frequency::Total));
        assert_eq!(
            Frequency::from_code("06").unwrap_err().rule,
            "must be a code from list WMO757"
        );
        assert_eq!(Referrer::from_code("08"), Ok(Referrer::Judiciary));
        assert!(Referrer::from_code("07").is_err());
        assert_eq!(YouthEndReason::ALL.len(), 11);
        assert_eq!(WmoEndReason::ALL.len(), 11);
        assert!(YouthEndReason::from_code("19").is_err(), "19 is Wmo only");
        assert!(WmoEndReason::from_code("32").is_err(), "32 is youth only");
        assert_eq!(RefusalReason::ALL.len(), 9);
    }

    #[test]
    fn expired_change_reason_is_rejected() {
        assert!(YouthChangeReason::from_code("01").is_err());
        assert!(WmoChangeReason::from_code("01").is_err());
        assert_eq!(YouthChangeReason::ALL.len(), 13);
        assert_eq!(
            YouthChangeReason::from_code("14"),
            Ok(YouthChangeReason::AdministrativeCorrection)
        );
    }

    #[test]
    fn change_reason_to_end_reason() {
        assert_eq!(
            YouthChangeReason::MovedToOtherMunicipality.end_reason(),
            Some(YouthEndReason::EndedEarlyExternalCause)
        );
        assert_eq!(
            WmoChangeReason::MovedToOtherMunicipality
                .end_reason()
                .map(WmoEndReason::code),
            Some("31")
        );
        assert_eq!(YouthChangeReason::Deleted.end_reason(), None);
        assert_eq!(
            WmoChangeReason::InitiatedByProvider.end_reason(),
            Some(WmoEndReason::ChangeRequest)
        );
    }

    #[test]
    fn financing_variants() {
        assert_eq!(
            Financing::Lumpsum.execution_variant(),
            ExecutionVariant::Taakgericht
        );
        assert_eq!(
            Financing::PopulationBased.execution_variant(),
            ExecutionVariant::Taakgericht
        );
        assert_eq!(
            Financing::PxQ.execution_variant(),
            ExecutionVariant::Inspanningsgericht
        );
        assert_eq!(
            Financing::SeparateContract.execution_variant(),
            ExecutionVariant::Outputgericht
        );
        assert_eq!(
            Financing::from_code("population"),
            Ok(Financing::PopulationBased)
        );
        assert_eq!(Law::from_code("jeugdwet"), Ok(Law::Jeugdwet));
    }

    #[test]
    fn return_codes() {
        assert_eq!(ReturnCode::TABLE.len(), 59);
        assert_eq!(ReturnCode::ACCEPTED.code(), "0200");
        assert_eq!(ReturnCode::TECHNICAL_REJECTION.code(), "0001");
        assert_eq!(ReturnCode::NOT_ASSESSED.code(), "0233");
        assert_eq!(ReturnCode::parse("0200"), Ok(ReturnCode::ACCEPTED));
        let s300 = ReturnCode::parse("S300").unwrap();
        assert_eq!(s300.description(), "Gemeentecode ongeldig.");
        assert_eq!(format!("{s300:?}"), "ReturnCode(\"S300\")");
        assert_eq!(serde_json::to_string(&s300).unwrap(), "\"S300\"");
        assert_eq!(
            serde_json::from_str::<ReturnCode>("\"S300\"").unwrap(),
            s300
        );
        for bad in ["", "200", "1", "9999", "s300"] {
            assert_eq!(
                ReturnCode::parse(bad),
                Err(FieldError::new(
                    "return_code",
                    "must be a code from list WJ001"
                )),
                "{bad}"
            );
        }
        // sorted and unique, so derived Ord follows the code order
        assert!(ReturnCode::TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            ReturnCode::all()
                .map(ReturnCode::code)
                .eq(ReturnCode::TABLE.iter().map(|e| e.0))
        );
    }

    #[test]
    fn product_categories() {
        assert_eq!(YouthProductCategory::TABLE.len(), 24);
        assert_eq!(WmoProductCategory::TABLE.len(), 18);
        let c = YouthProductCategory::parse("45").unwrap();
        assert_eq!(c.description(), "Jeugdhulp ambulant");
        assert!(YouthProductCategory::parse("39").is_err());
        assert!(YouthProductCategory::parse("01").is_err());
        let w = WmoProductCategory::parse("01").unwrap();
        assert_eq!(
            (w.code(), w.description()),
            ("01", "Hulp bij het huishouden")
        );
        assert!(WmoProductCategory::parse("1").is_err());
        assert_eq!(
            WmoProductCategory::parse("19").unwrap_err().field,
            "product_category"
        );
        for t in [YouthProductCategory::TABLE, WmoProductCategory::TABLE] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
        for c in WmoProductCategory::all() {
            assert_eq!(WmoProductCategory::from_code(c.code()), Ok(c));
        }
    }
}
