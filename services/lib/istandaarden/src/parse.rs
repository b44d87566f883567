//! Readers of the provider messages 305, 307, 315 and 317 (iJw and iWmo, told apart by the
//! namespace).

use chrono::NaiveDate;
use rz_domain::{
    AgbCode, AssignmentNumber, Bsn, Cents, FieldError, Frequency, GemeenteCode, Law, MessageId,
    ProductCode, Referrer, RequestReason, ReturnCode, Unit, parse_date,
};

use crate::error::{ParseError, ParseErrorKind as K};
use crate::model::{
    ChangeRequest, DeliveryStatus, EndReason, Gender, Message305, Message307, Message315,
    Message317, Name, NewProduct, Product, ProductCategory, ProductChange, ReceivedClient,
    ReceivedHeader, ReferrerInfo, RequestedProduct, Size, StartedProduct, StoppedProduct,
    UnchangedProduct,
};
use crate::render::ReceivedBody;
use crate::schema::{MESSAGE_SUBVERSION, MESSAGE_VERSION, MessageType};
use crate::xml::{Element, read_tree};

/// Reads a 305 Start zorg (JW305 or WMO305).
pub fn parse_305(input: &[u8]) -> Result<Message305, ParseError> {
    let (header, client_el) = envelope(input, &[MessageType::Start305])?;
    read_305(header, client_el)
}

fn read_305(header: ReceivedHeader, client_el: Element) -> Result<Message305, ParseError> {
    body(&header, || {
        client_el.only(&["Bsn", "Geboortedatum", "Geslacht", "Naam", "StartProducten"])?;
        let client = client(&client_el)?;
        let list = client_el.one("StartProducten")?;
        list.only(&["StartProduct"])?;
        let mut products = Vec::new();
        for p in list.all("StartProduct") {
            p.only(&[
                "ToewijzingNummer",
                "Product",
                "ToewijzingIngangsdatum",
                "Begindatum",
                "StatusAanlevering",
            ])?;
            products.push(StartedProduct {
                record: p.path.clone(),
                assignment_number: opt_number(p, "ToewijzingNummer")?,
                product: opt_product(header.law, p)?,
                assignment_start: opt_date(p, "ToewijzingIngangsdatum")?,
                start: date(p.one("Begindatum")?)?,
                status: status(p)?,
            });
        }
        Ok(Message305 {
            header: header.clone(),
            client,
            products,
            body: ReceivedBody {
                client: client_el.clone(),
            },
        })
    })
}

/// Reads a 307 Stop zorg (JW307 or WMO307).
pub fn parse_307(input: &[u8]) -> Result<Message307, ParseError> {
    let (header, client_el) = envelope(input, &[MessageType::Stop307])?;
    read_307(header, client_el)
}

fn read_307(header: ReceivedHeader, client_el: Element) -> Result<Message307, ParseError> {
    body(&header, || {
        client_el.only(&["Bsn", "Geboortedatum", "Geslacht", "Naam", "StopProducten"])?;
        let client = client(&client_el)?;
        let list = client_el.one("StopProducten")?;
        list.only(&["StopProduct"])?;
        let mut products = Vec::new();
        for p in list.all("StopProduct") {
            p.only(&[
                "ToewijzingNummer",
                "Product",
                "ToewijzingIngangsdatum",
                "Begindatum",
                "RedenBeeindiging",
                "Einddatum",
                "StatusAanlevering",
            ])?;
            let start = date(p.one("Begindatum")?)?;
            let end_el = p.one("Einddatum")?;
            let end = date(end_el)?;
            not_before(end_el, end, start, "Begindatum")?;
            let reason_el = p.one("RedenBeeindiging")?;
            let end_reason = EndReason::parse(header.law, reason_el.value()?)
                .map_err(|e| invalid(reason_el, e))?;
            products.push(StoppedProduct {
                record: p.path.clone(),
                assignment_number: opt_number(p, "ToewijzingNummer")?,
                product: opt_product(header.law, p)?,
                assignment_start: opt_date(p, "ToewijzingIngangsdatum")?,
                start,
                end_reason,
                end,
                status: status(p)?,
            });
        }
        Ok(Message307 {
            header: header.clone(),
            client,
            products,
            body: ReceivedBody {
                client: client_el.clone(),
            },
        })
    })
}

/// Reads a 315 Verzoek om toewijzing (JW315 or WMO315).
pub fn parse_315(input: &[u8]) -> Result<Message315, ParseError> {
    let (header, client_el) = envelope(input, &[MessageType::AssignmentRequest315])?;
    read_315(header, client_el)
}

fn read_315(header: ReceivedHeader, client_el: Element) -> Result<Message315, ParseError> {
    body(&header, || {
        let mut allowed = vec![
            "Bsn",
            "Geboortedatum",
            "Geslacht",
            "Naam",
            "Commentaar",
            "AangevraagdeProducten",
        ];
        if header.law == Law::Jeugdwet {
            allowed.push("GezagsdragerBekend");
        }
        client_el.only(&allowed)?;
        let client = client(&client_el)?;
        let guardian_known = opt_yes_no(&client_el, "GezagsdragerBekend")?;
        let comment = opt_text(&client_el, "Commentaar", usize::MAX)?;
        let list = client_el.one("AangevraagdeProducten")?;
        list.only(&["AangevraagdProduct"])?;
        let mut products = Vec::new();
        for p in list.all("AangevraagdProduct") {
            p.only(&[
                "ReferentieAanbieder",
                "BeschikkingNummer",
                "Product",
                "BeschikkingIngangsdatum",
                "ToewijzingIngangsdatum",
                "ToewijzingEinddatum",
                "Omvang",
                "Budget",
                "Verwijzer",
                "Raamcontract",
                "Commentaar",
            ])?;
            let start = date(p.one("ToewijzingIngangsdatum")?)?;
            let end = match p.opt("ToewijzingEinddatum")? {
                Some(e) => {
                    let end = date(e)?;
                    not_before(e, end, start, "ToewijzingIngangsdatum")?;
                    Some(end)
                }
                None => None,
            };
            let decision_number = opt_number(p, "BeschikkingNummer")?.map(u32::from);
            products.push(RequestedProduct {
                record: p.path.clone(),
                provider_reference: required_text(p, "ReferentieAanbieder", 36)?,
                decision_number,
                product: opt_product(header.law, p)?,
                decision_start: opt_date(p, "BeschikkingIngangsdatum")?,
                start,
                end,
                size: opt_size(p)?,
                budget: opt_budget(p)?,
                referrer: referrer(p.one("Verwijzer")?)?,
                framework_contract: opt_yes_no(p, "Raamcontract")?,
                comment: opt_text(p, "Commentaar", usize::MAX)?,
            });
        }
        Ok(Message315 {
            header: header.clone(),
            client,
            guardian_known,
            comment,
            products,
            body: ReceivedBody {
                client: client_el.clone(),
            },
        })
    })
}

/// Reads a 317 Verzoek om wijziging (JW317 or WMO317).
pub fn parse_317(input: &[u8]) -> Result<Message317, ParseError> {
    let (header, client_el) = envelope(input, &[MessageType::ChangeRequest317])?;
    read_317(header, client_el)
}

fn read_317(header: ReceivedHeader, client_el: Element) -> Result<Message317, ParseError> {
    body(&header, || {
        client_el.only(&["Bsn", "Verzoek"])?;
        let bsn = bsn(client_el.one("Bsn")?)?;
        let v = client_el.one("Verzoek")?;
        v.only(&[
            "ReferentieAanbieder",
            "RedenVerzoek",
            "OngewijzigdeProducten",
            "TeWijzigenProducten",
            "NieuweProducten",
        ])?;
        let reason_el = v.one("RedenVerzoek")?;
        let reason =
            RequestReason::from_code(reason_el.value()?).map_err(|e| invalid(reason_el, e))?;
        let mut unchanged = Vec::new();
        if let Some(list) = v.opt("OngewijzigdeProducten")? {
            list.only(&["OngewijzigdProduct"])?;
            for p in list.all("OngewijzigdProduct") {
                p.only(&["ToewijzingNummer"])?;
                unchanged.push(UnchangedProduct {
                    record: p.path.clone(),
                    assignment_number: number(p.one("ToewijzingNummer")?)?,
                });
            }
        }
        let mut to_change = Vec::new();
        if let Some(list) = v.opt("TeWijzigenProducten")? {
            list.only(&["TeWijzigenProduct"])?;
            for p in list.all("TeWijzigenProduct") {
                p.only(&[
                    "ToewijzingNummer",
                    "GewensteIngangsdatum",
                    "Einddatum",
                    "Omvang",
                    "Budget",
                ])?;
                let desired_start = date(p.one("GewensteIngangsdatum")?)?;
                to_change.push(ProductChange {
                    record: p.path.clone(),
                    assignment_number: number(p.one("ToewijzingNummer")?)?,
                    desired_start,
                    end: opt_end(p, desired_start)?,
                    size: opt_size(p)?,
                    budget: opt_budget(p)?,
                });
            }
        }
        let mut new = Vec::new();
        if let Some(list) = v.opt("NieuweProducten")? {
            list.only(&["NieuwProduct"])?;
            for p in list.all("NieuwProduct") {
                p.only(&[
                    "Product",
                    "GewensteIngangsdatum",
                    "Einddatum",
                    "Omvang",
                    "Budget",
                ])?;
                let desired_start = date(p.one("GewensteIngangsdatum")?)?;
                new.push(NewProduct {
                    record: p.path.clone(),
                    product: opt_product(header.law, p)?,
                    desired_start,
                    end: opt_end(p, desired_start)?,
                    size: opt_size(p)?,
                    budget: opt_budget(p)?,
                });
            }
        }
        Ok(Message317 {
            header: header.clone(),
            bsn,
            request: ChangeRequest {
                record: v.path.clone(),
                provider_reference: required_text(v, "ReferentieAanbieder", 36)?,
                reason,
                unchanged,
                to_change,
                new,
            },
            body: ReceivedBody {
                client: client_el.clone(),
            },
        })
    })
}

/// A provider's message of any of the four kinds the readers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderMessage {
    Start(Message305),
    Stop(Message307),
    Request(Message315),
    Change(Message317),
}

impl ProviderMessage {
    pub fn header(&self) -> &ReceivedHeader {
        match self {
            Self::Start(m) => &m.header,
            Self::Stop(m) => &m.header,
            Self::Request(m) => &m.header,
            Self::Change(m) => &m.header,
        }
    }

    pub fn body(&self) -> &ReceivedBody {
        match self {
            Self::Start(m) => &m.body,
            Self::Stop(m) => &m.body,
            Self::Request(m) => &m.body,
            Self::Change(m) => &m.body,
        }
    }
}

/// Reads a 305, 307, 315 or 317 (iJw or iWmo), recognised by the root's namespace, in one pass.
/// A document of another message or standard is rejected naming what was found and the eight
/// messages expected.
pub fn parse_provider_message(input: &[u8]) -> Result<ProviderMessage, ParseError> {
    let (header, client_el) = envelope(input, &MessageType::PROVIDER_MESSAGES)?;
    match header.message_type {
        MessageType::Start305 => read_305(header, client_el).map(ProviderMessage::Start),
        MessageType::Stop307 => read_307(header, client_el).map(ProviderMessage::Stop),
        MessageType::AssignmentRequest315 => {
            read_315(header, client_el).map(ProviderMessage::Request)
        }
        _ => read_317(header, client_el).map(ProviderMessage::Change),
    }
}

/// Runs the body checks; an error gets the header attached so it can be answered.
fn body<T>(
    header: &ReceivedHeader,
    f: impl FnOnce() -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    f().map_err(|mut e| {
        e.received = Some(Box::new(header.clone()));
        e
    })
}

/// Reads the document, checks root, namespace (which decides the law) and header, and returns
/// the header and the `Client` element.
fn envelope(
    input: &[u8],
    expected: &[MessageType],
) -> Result<(ReceivedHeader, Element), ParseError> {
    let (root, law, expected) = read_tree(input, expected)?;
    root.only(&["Header", "Client"])?;
    let h = root.one("Header")?;
    h.only(&[
        "BerichtCode",
        "BerichtVersie",
        "BerichtSubversie",
        "Afzender",
        "Ontvanger",
        "BerichtIdentificatie",
        "XsdVersie",
    ])?;
    fixed(h.one("BerichtCode")?, expected.code(law))?;
    fixed(h.one("BerichtVersie")?, MESSAGE_VERSION)?;
    fixed(h.one("BerichtSubversie")?, MESSAGE_SUBVERSION)?;
    let afz = h.one("Afzender")?;
    let sender_agb = AgbCode::parse(afz.value()?).map_err(|e| invalid(afz, e))?;
    let ont = h.one("Ontvanger")?;
    let receiver_municipality =
        GemeenteCode::parse(ont.value()?).map_err(|e| invalid(ont, e).with_code(code("S300")))?;
    let id = h.one("BerichtIdentificatie")?;
    id.only(&["Identificatie", "Dagtekening"])?;
    let ident = id.one("Identificatie")?;
    let message_id = MessageId::parse(ident.value()?).map_err(|e| invalid(ident, e))?;
    let message_date = date(id.one("Dagtekening")?)?;
    let xsd = h.one("XsdVersie")?;
    xsd.only(&["BasisschemaXsdVersie", "BerichtXsdVersie"])?;
    let header = ReceivedHeader {
        law,
        message_type: expected,
        sender_agb,
        receiver_municipality,
        message_id,
        message_date,
        basisschema_xsd_version: version(xsd.one("BasisschemaXsdVersie")?)?,
        message_xsd_version: version(xsd.one("BerichtXsdVersie")?)?,
    };
    let client = body(&header, || root.one("Client").cloned())?;
    Ok((header, client))
}

pub(crate) fn code(c: &str) -> ReturnCode {
    ReturnCode::parse(c).unwrap_or(ReturnCode::TECHNICAL_REJECTION)
}

pub(crate) fn invalid(el: &Element, e: FieldError) -> ParseError {
    ParseError::new(K::InvalidValue, el.path.clone(), e.rule)
}

pub(crate) fn fixed(el: &Element, expected: &str) -> Result<(), ParseError> {
    let v = el.value()?;
    if v == expected {
        Ok(())
    } else {
        // The value is shown shortened: a rejection never echoes a large input.
        Err(ParseError::new(
            K::WrongHeader,
            el.path.clone(),
            format!(
                "must be {expected} for this message, found {:?}",
                crate::xml::shortened(v, 16)
            ),
        ))
    }
}

pub(crate) fn version(el: &Element) -> Result<String, ParseError> {
    let v = el.value()?;
    let parts: Vec<&str> = v.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ParseError::new(
            K::InvalidValue,
            el.path.clone(),
            "must be a version MAJOR.MINOR.PATCH",
        ))
    }
}

pub(crate) fn date(el: &Element) -> Result<NaiveDate, ParseError> {
    parse_date(&el.path, el.value()?)
        .map_err(|e| ParseError::new(K::InvalidDate, el.path.clone(), e.rule))
}

fn opt_date(parent: &Element, name: &str) -> Result<Option<NaiveDate>, ParseError> {
    parent.opt(name)?.map(date).transpose()
}

fn not_before(
    el: &Element,
    end: NaiveDate,
    start: NaiveDate,
    start_name: &str,
) -> Result<(), ParseError> {
    if end < start {
        return Err(ParseError::new(
            K::EndBeforeStart,
            el.path.clone(),
            format!("must not be before {start_name}"),
        ));
    }
    Ok(())
}

fn opt_end(p: &Element, start: NaiveDate) -> Result<Option<NaiveDate>, ParseError> {
    match p.opt("Einddatum")? {
        Some(e) => {
            let end = date(e)?;
            not_before(e, end, start, "GewensteIngangsdatum")?;
            Ok(Some(end))
        }
        None => Ok(None),
    }
}

pub(crate) fn bsn(el: &Element) -> Result<Bsn, ParseError> {
    Bsn::parse(el.value()?).map_err(|e| invalid(el, e))
}

pub(crate) fn number(el: &Element) -> Result<AssignmentNumber, ParseError> {
    AssignmentNumber::parse(el.value()?).map_err(|e| invalid(el, e))
}

fn opt_number(parent: &Element, name: &str) -> Result<Option<AssignmentNumber>, ParseError> {
    parent.opt(name)?.map(number).transpose()
}

fn status(p: &Element) -> Result<DeliveryStatus, ParseError> {
    let el = p.one("StatusAanlevering")?;
    DeliveryStatus::from_code(el.value()?).map_err(|e| invalid(el, e))
}

pub(crate) fn text_value(el: &Element, max: usize) -> Result<String, ParseError> {
    let v = el.value()?;
    if v.chars().count() > max {
        return Err(ParseError::new(
            K::InvalidValue,
            el.path.clone(),
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn required_text(parent: &Element, name: &str, max: usize) -> Result<String, ParseError> {
    text_value(parent.one(name)?, max)
}

fn opt_text(parent: &Element, name: &str, max: usize) -> Result<Option<String>, ParseError> {
    parent.opt(name)?.map(|e| text_value(e, max)).transpose()
}

fn opt_yes_no(parent: &Element, name: &str) -> Result<Option<bool>, ParseError> {
    let Some(el) = parent.opt(name)? else {
        return Ok(None);
    };
    match el.value()? {
        "1" => Ok(Some(true)),
        "2" => Ok(Some(false)),
        _ => Err(ParseError::new(
            K::InvalidValue,
            el.path.clone(),
            "must be a code from list COD260",
        )),
    }
}

fn client(c: &Element) -> Result<ReceivedClient, ParseError> {
    let birth = c.one("Geboortedatum")?;
    birth.only(&["Datum", "DatumGebruik"])?;
    let gender_el = c.one("Geslacht")?;
    let n = c.one("Naam")?;
    n.only(&["Geslachtsnaam", "Voornamen", "Voorletters"])?;
    let g = n.one("Geslachtsnaam")?;
    g.only(&["Achternaam", "Voorvoegsel"])?;
    let initials = opt_text(n, "Voorletters", 6)?;
    if let (Some(i), Some(el)) = (&initials, n.opt("Voorletters")?)
        && !i.chars().all(char::is_alphabetic)
    {
        return Err(ParseError::new(
            K::InvalidValue,
            el.path.clone(),
            "must be letters only",
        ));
    }
    Ok(ReceivedClient {
        bsn: bsn(c.one("Bsn")?)?,
        birth_date: date(birth.one("Datum")?)?,
        gender: Gender::from_code(gender_el.value()?).map_err(|e| invalid(gender_el, e))?,
        name: Name {
            family_name: required_text(g, "Achternaam", 200)?,
            prefix: opt_text(g, "Voorvoegsel", 10)?,
            given_names: opt_text(n, "Voornamen", 200)?,
            initials,
        },
    })
}

fn opt_product(law: Law, parent: &Element) -> Result<Option<Product>, ParseError> {
    let Some(p) = parent.opt("Product")? else {
        return Ok(None);
    };
    p.only(&["Categorie", "Code"])?;
    let cat = p.one("Categorie")?;
    let category = ProductCategory::parse(law, cat.value()?).map_err(|e| invalid(cat, e))?;
    let code = match p.opt("Code")? {
        Some(c) => Some(
            ProductCode::parse(c.value()?).map_err(|e| invalid(c, e).with_code(code("S329")))?,
        ),
        None => None,
    };
    Ok(Some(Product { category, code }))
}

fn opt_size(parent: &Element) -> Result<Option<Size>, ParseError> {
    let Some(o) = parent.opt("Omvang")? else {
        return Ok(None);
    };
    o.only(&["Volume", "Eenheid", "Frequentie"])?;
    let vol = o.one("Volume")?;
    let volume = integer(vol)?;
    let unit_el = o.one("Eenheid")?;
    let freq_el = o.one("Frequentie")?;
    Ok(Some(Size {
        volume,
        unit: Unit::from_code(unit_el.value()?).map_err(|e| invalid(unit_el, e))?,
        frequency: Frequency::from_code(freq_el.value()?).map_err(|e| invalid(freq_el, e))?,
    }))
}

/// A non-negative integer below 100,000,000 (LDT_Volume, LDT_Budget).
pub(crate) fn integer(el: &Element) -> Result<u32, ParseError> {
    let v = el.value()?;
    v.parse::<u32>()
        .ok()
        .filter(|n| *n <= 99_999_999 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ParseError::new(
                K::InvalidValue,
                el.path.clone(),
                "must be a whole number from 0 to 99999999",
            )
        })
}

fn opt_budget(parent: &Element) -> Result<Option<Cents>, ParseError> {
    let Some(b) = parent.opt("Budget")? else {
        return Ok(None);
    };
    let cents = integer(b)?;
    Cents::new(i64::from(cents))
        .map(Some)
        .map_err(|e| invalid(b, e))
}

fn referrer(v: &Element) -> Result<ReferrerInfo, ParseError> {
    v.only(&["Type", "Naam", "ZorgverlenerCode"])?;
    let t = v.one("Type")?;
    let agb = match v.opt("ZorgverlenerCode")? {
        Some(z) => Some(AgbCode::parse(z.value()?).map_err(|e| invalid(z, e))?),
        None => None,
    };
    Ok(ReferrerInfo {
        kind: Referrer::from_code(t.value()?).map_err(|e| invalid(t, e))?,
        name: opt_text(v, "Naam", 64)?,
        agb,
    })
}
