//! Writers of the messages the municipality sends: 301, 319 and the return messages.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rz_domain::{ExecutionVariant, FieldError, Law, MessageId, ReturnCode};

use crate::error::RenderError;
use crate::model::{
    Address, Answer, AssignedProduct, Client, Header, Name, ReceivedHeader, RequestOutcome, Size,
};
use crate::schema::{MESSAGE_SUBVERSION, MESSAGE_VERSION, MessageType, xsd_versions};
use crate::xml::{Element, XmlOut};

const DATE: &str = "%Y-%m-%d";

fn date(d: NaiveDate) -> String {
    d.format(DATE).to_string()
}

/// Checks a free-text value: not blank, at most `max` characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), RenderError> {
    let n = value.chars().count();
    if value.trim().is_empty() || n > max {
        return Err(
            FieldError::new(field, format!("must be 1 to {max} characters, not blank")).into(),
        );
    }
    Ok(())
}

fn write_header(out: &mut XmlOut, header: &Header, message: MessageType) {
    let (basis, bericht) = xsd_versions(header.law);
    out.open("Header");
    out.leaf("BerichtCode", message.code(header.law));
    out.leaf("BerichtVersie", MESSAGE_VERSION);
    out.leaf("BerichtSubversie", MESSAGE_SUBVERSION);
    out.leaf("Afzender", header.sender_municipality.as_str());
    out.leaf("Ontvanger", header.receiver_agb.as_str());
    out.open("BerichtIdentificatie");
    out.leaf("Identificatie", header.message_id.as_str());
    out.leaf("Dagtekening", &date(header.message_date));
    out.close();
    out.open("XsdVersie");
    out.leaf("BasisschemaXsdVersie", basis);
    out.leaf("BerichtXsdVersie", bericht);
    out.close();
    out.close();
}

fn check_name(name: &Name) -> Result<(), RenderError> {
    text(
        "Client/Naam/Geslachtsnaam/Achternaam",
        &name.family_name,
        200,
    )?;
    if let Some(p) = &name.prefix {
        text("Client/Naam/Geslachtsnaam/Voorvoegsel", p, 10)?;
    }
    if let Some(g) = &name.given_names {
        text("Client/Naam/Voornamen", g, 200)?;
    }
    if let Some(i) = &name.initials {
        let n = i.chars().count();
        if !(1..=6).contains(&n) || !i.chars().all(char::is_alphabetic) {
            return Err(
                FieldError::new("Client/Naam/Voorletters", "must be 1 to 6 letters").into(),
            );
        }
    }
    Ok(())
}

fn check_address(a: &Address) -> Result<(), RenderError> {
    const P: &str = "Client/Contactgegevens/Contact/Adres";
    text(&format!("{P}/Straatnaam"), &a.street, 24)?;
    text(&format!("{P}/Postcode"), &a.postal_code, 8)?;
    text(&format!("{P}/Plaatsnaam"), &a.city, 80)?;
    if a.house_number > 99_999 {
        return Err(FieldError::new(format!("{P}/Huis/Huisnummer"), "must be 0 to 99999").into());
    }
    if let Some(c) = a.house_letter
        && !c.is_alphanumeric()
    {
        return Err(FieldError::new(format!("{P}/Huis/Huisletter"), "must be a letter").into());
    }
    if let Some(t) = &a.house_number_addition {
        text(&format!("{P}/Huis/HuisnummerToevoeging"), t, 4)?;
    }
    Ok(())
}

fn check_size(field: &str, s: &Size) -> Result<(), RenderError> {
    if s.volume > 99_999_999 {
        return Err(
            FieldError::new(format!("{field}/Omvang/Volume"), "must be 0 to 99999999").into(),
        );
    }
    Ok(())
}

fn check_budget(field: &str, cents: i64) -> Result<(), RenderError> {
    if !(0..=99_999_999).contains(&cents) {
        return Err(FieldError::new(
            format!("{field}/Budget"),
            "must be 0 to 99999999 euro cents",
        )
        .into());
    }
    Ok(())
}

fn check_product(law: Law, i: usize, p: &AssignedProduct) -> Result<(), RenderError> {
    let field = format!("Client/ToegewezenProducten/ToegewezenProduct[{}]", i + 1);
    let message = MessageType::Assignment301.name(law);
    if p.category.law() != law {
        return Err(RenderError::LawMismatch {
            field: format!("{field}/Product/Categorie"),
            message,
        });
    }
    if let Some(r) = p.change_reason
        && r.law() != law
    {
        return Err(RenderError::LawMismatch {
            field: format!("{field}/RedenWijziging"),
            message,
        });
    }
    if let Some(r) = &p.provider_reference {
        text(&format!("{field}/ReferentieAanbieder"), r, 36)?;
    }
    if let Some(end) = p.end
        && end < p.start
    {
        return Err(FieldError::new(
            format!("{field}/Einddatum"),
            "must not be before the Ingangsdatum",
        )
        .into());
    }
    if let Some(s) = &p.size {
        check_size(&field, s)?;
    }
    if let Some(b) = p.budget {
        check_budget(&field, b.as_i64())?;
    }
    let variant = |rule: &str| RenderError::Variant {
        field: field.clone(),
        rule: format!("{}: {rule}", p.variant.code()),
    };
    match p.variant {
        ExecutionVariant::Taakgericht => {
            if p.product_code.is_some() || p.size.is_some() || p.budget.is_some() {
                return Err(variant(
                    "only the product category is assigned (no product code, size or budget)",
                ));
            }
        }
        ExecutionVariant::Outputgericht => {
            if p.product_code.is_none() || p.budget.is_none() {
                return Err(variant("needs a product code and a budget"));
            }
        }
        ExecutionVariant::Inspanningsgericht => {
            if p.product_code.is_none() || p.size.is_none() {
                return Err(variant(
                    "needs a product code and a size (volume, unit, frequency)",
                ));
            }
        }
    }
    Ok(())
}

/// Writes a JW301 (Jeugdwet) or WMO301 (Wmo) Toewijzing for one client.
///
/// The client is written with NaamGebruik `1` (eigen naam) and the address as BRP address
/// (Contact/Soort `01`). Each product is written per its execution variant (see
/// [`AssignedProduct`]); optional elements without a value are left out.
pub fn render_301(
    header: &Header,
    client: &Client,
    products: &[AssignedProduct],
) -> Result<String, RenderError> {
    let law = header.law;
    if products.is_empty() {
        return Err(FieldError::new(
            "Client/ToegewezenProducten",
            "at least one assigned product is required",
        )
        .into());
    }
    check_name(&client.name)?;
    check_address(&client.address)?;
    for (i, p) in products.iter().enumerate() {
        check_product(law, i, p)?;
    }

    let mut out = XmlOut::new(&MessageType::Assignment301.namespace(law), law);
    write_header(&mut out, header, MessageType::Assignment301);
    out.open("Client");
    out.leaf("Bsn", client.bsn.as_str());
    out.open("Geboortedatum");
    out.leaf("Datum", &date(client.birth_date));
    out.close();
    out.leaf("Geslacht", client.gender.code());
    let n = &client.name;
    out.open("Naam");
    out.open("Geslachtsnaam");
    out.leaf("Achternaam", &n.family_name);
    out.opt_leaf("Voorvoegsel", n.prefix.as_deref());
    out.close();
    out.opt_leaf("Voornamen", n.given_names.as_deref());
    out.opt_leaf("Voorletters", n.initials.as_deref());
    out.leaf("NaamGebruik", "1");
    out.close();
    let a = &client.address;
    out.open("Contactgegevens");
    out.open("Contact");
    out.leaf("Soort", "01");
    out.open("Adres");
    out.open("Huis");
    out.leaf("Huisnummer", &a.house_number.to_string());
    out.opt_leaf("Huisletter", a.house_letter.map(String::from).as_deref());
    out.opt_leaf("HuisnummerToevoeging", a.house_number_addition.as_deref());
    out.close();
    out.leaf("Postcode", &a.postal_code);
    out.leaf("Straatnaam", &a.street);
    out.leaf("Plaatsnaam", &a.city);
    out.close();
    out.close();
    out.close();
    out.open("ToegewezenProducten");
    for p in products {
        out.open("ToegewezenProduct");
        out.leaf("ToewijzingNummer", &p.number.to_string());
        out.opt_leaf("ReferentieAanbieder", p.provider_reference.as_deref());
        out.open("Product");
        out.leaf("Categorie", p.category.code());
        if p.variant != ExecutionVariant::Taakgericht {
            out.opt_leaf("Code", p.product_code.as_ref().map(|c| c.as_str()));
        }
        out.close();
        out.leaf("Toewijzingsdatum", &date(p.assigned_at.date()));
        out.leaf(
            "Toewijzingstijd",
            &p.assigned_at.format("%H:%M:%S").to_string(),
        );
        out.leaf("Ingangsdatum", &date(p.start));
        out.opt_leaf("Einddatum", p.end.map(date).as_deref());
        out.opt_leaf("RedenWijziging", p.change_reason.map(|r| r.code()));
        if p.variant != ExecutionVariant::Taakgericht {
            if let Some(s) = &p.size {
                out.open("Omvang");
                out.leaf("Volume", &s.volume.to_string());
                out.leaf("Eenheid", s.unit.code());
                out.leaf("Frequentie", s.frequency.code());
                out.close();
            }
            out.opt_leaf(
                "Budget",
                p.budget.map(|b| b.as_i64().to_string()).as_deref(),
            );
        }
        out.close();
    }
    out.close();
    out.close();
    Ok(out.finish())
}

/// Writes a JW319 or WMO319 Antwoordbericht: the answer to a 315 or 317 that is refused or
/// still under investigation (a granted request is answered with a 301).
pub fn render_319(header: &Header, answer: &Answer) -> Result<String, RenderError> {
    text(
        "Antwoord/ReferentieAanbieder",
        &answer.provider_reference,
        36,
    )?;
    if let RequestOutcome::Refused {
        responsible_municipality: Some(_),
        ..
    } = &answer.outcome
        && header.law == Law::Wmo
    {
        return Err(
            FieldError::new("Antwoord/Woonplaatsbeginsel", "does not exist in WMO319").into(),
        );
    }
    let mut out = XmlOut::new(&MessageType::Answer319.namespace(header.law), header.law);
    write_header(&mut out, header, MessageType::Answer319);
    out.open("Antwoord");
    out.leaf("ReferentieAanbieder", &answer.provider_reference);
    match &answer.outcome {
        RequestOutcome::Refused {
            reason,
            responsible_municipality,
        } => {
            out.leaf("VerzoekAntwoord", "1");
            out.leaf("RedenAfwijzingVerzoek", reason.code());
            if let Some(g) = responsible_municipality {
                out.open("Woonplaatsbeginsel");
                out.leaf("Gemeente", g.as_str());
                out.close();
            }
        }
        RequestOutcome::UnderInvestigation => out.leaf("VerzoekAntwoord", "2"),
    }
    out.close();
    Ok(out.finish())
}

/// The received client block, kept by the readers so a return message can echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedBody {
    pub(crate) client: Element,
}

impl ReceivedBody {
    /// Paths of every record that carries return codes (client, request, products), in
    /// document order.
    pub fn records(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_records(&self.client, &mut out);
        out
    }
}

const RECORDS: &[&str] = &[
    "Client",
    "Verzoek",
    "StartProduct",
    "StopProduct",
    "AangevraagdProduct",
    "OngewijzigdProduct",
    "TeWijzigenProduct",
    "NieuwProduct",
];

fn collect_records(el: &Element, out: &mut Vec<String>) {
    if RECORDS.contains(&el.name.as_str()) {
        out.push(el.path.clone());
    }
    for c in &el.children {
        collect_records(c, out);
    }
}

/// Return codes per record of a received message, keyed by the record's path (the `record`
/// field of the parsed structs, or [`ReceivedBody::records`]). A record without codes gets
/// `0200` (accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordCodes(BTreeMap<String, Vec<ReturnCode>>);

impl RecordCodes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the codes of one record (an empty list means `0200`).
    pub fn set(&mut self, record: impl Into<String>, codes: Vec<ReturnCode>) -> &mut Self {
        self.0.insert(record.into(), codes);
        self
    }

    fn get(&self, record: &str) -> Vec<ReturnCode> {
        match self.0.get(record) {
            Some(c) if !c.is_empty() => c.clone(),
            _ => vec![ReturnCode::ACCEPTED],
        }
    }
}

/// Identification of the return message itself (IdentificatieRetour, DagtekeningRetour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnHeader {
    pub message_id: MessageId,
    pub message_date: NaiveDate,
}

/// What a return message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnContent<'a> {
    /// The whole message is judged at once (e.g. `0001` for a technical rejection): the codes
    /// go in the header, no client block is echoed.
    Whole(&'a [ReturnCode]),
    /// Every record judged: the received client block is echoed with its codes per record.
    PerRecord {
        body: &'a ReceivedBody,
        codes: &'a RecordCodes,
    },
}

/// Writes a return message (306, 308, 316 or 318, iJw or iWmo) that answers `received`.
///
/// As the schemas' documentation prescribes, the header describes the received message
/// (heenbericht) and adds the return message's own identification: Afzender and Ontvanger,
/// BerichtIdentificatie (Identificatie, Dagtekening) and XsdVersie are those of the received
/// message; IdentificatieRetour, DagtekeningRetour and XsdVersieRetour are the return message's
/// own (`header` and this crate's XSD versions). `kind` must be the return type of the received
/// message.
pub fn render_return(
    kind: MessageType,
    header: &ReturnHeader,
    received: &ReceivedHeader,
    content: ReturnContent<'_>,
) -> Result<String, RenderError> {
    let law = received.law;
    if received.message_type.return_type() != Some(kind) {
        return Err(RenderError::WrongReturnType {
            kind: kind.name(law),
            received: received.message_type.name(law),
        });
    }
    match content {
        ReturnContent::Whole([]) => {
            return Err(FieldError::new("Header/RetourCodes", "at least one return code").into());
        }
        ReturnContent::Whole(_) => {}
        ReturnContent::PerRecord { body, codes } => {
            let records = body.records();
            if let Some(unknown) = codes.0.keys().find(|k| !records.contains(k)) {
                return Err(RenderError::UnknownRecord(unknown.clone()));
            }
        }
    }
    let (basis, bericht) = xsd_versions(law);
    let mut out = XmlOut::new(&kind.namespace(law), law);
    out.open("Header");
    out.leaf("BerichtCode", kind.code(law));
    out.leaf("BerichtVersie", MESSAGE_VERSION);
    out.leaf("BerichtSubversie", MESSAGE_SUBVERSION);
    out.leaf("Afzender", received.sender_agb.as_str());
    out.leaf("Ontvanger", received.receiver_municipality.as_str());
    // The received message (heenbericht): its identification and date, and the XSD versions it
    // was written with.
    out.open("BerichtIdentificatie");
    out.leaf("Identificatie", received.message_id.as_str());
    out.leaf("Dagtekening", &date(received.message_date));
    out.close();
    out.open("XsdVersie");
    out.leaf("BasisschemaXsdVersie", &received.basisschema_xsd_version);
    out.leaf("BerichtXsdVersie", &received.message_xsd_version);
    out.close();
    // The return message itself: its own identification, date and XSD versions.
    out.leaf("IdentificatieRetour", header.message_id.as_str());
    out.leaf("DagtekeningRetour", &date(header.message_date));
    out.open("XsdVersieRetour");
    out.leaf("BasisschemaXsdVersie", basis);
    out.leaf("BerichtXsdVersie", bericht);
    out.close();
    if let ReturnContent::Whole(codes) = content {
        write_codes(&mut out, codes);
    }
    out.close();
    if let ReturnContent::PerRecord { body, codes } = content {
        out.echo(&body.client, &mut |out, el| {
            if RECORDS.contains(&el.name.as_str()) {
                write_codes(out, &codes.get(&el.path));
            }
        });
    }
    Ok(out.finish())
}

fn write_codes(out: &mut XmlOut, codes: &[ReturnCode]) {
    out.open("RetourCodes");
    for c in codes {
        out.leaf("RetourCode", c.code());
    }
    out.close();
}
