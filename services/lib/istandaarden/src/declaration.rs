//! Declarations: the reader of the 323 (Declaratie, JW323 / WMO323) and the writer of its answer,
//! the 325 (Declaratie-antwoord, JW325 / WMO325).
//!
//! The reader reads with the same hardened tree reader as the other messages (no DTD, no
//! entities, bounded size, depth and attributes), with a larger element bound
//! ([`crate::MAX_DECLARATION_ELEMENTS`]) since a monthly file holds tens of thousands of lines.
//! Amounts (ProductTarief, IngediendBedrag, TotaalBedrag) are euro cents, as LDT_Bedrag.
//!
//! The writer follows the standard: the 325's header carries its own identification and XSD
//! versions, DeclaratieIdentificatie and XsdVersieDeclaratie those of the 323 it answers. A
//! declaration refused as a whole has only header return codes (no DeclaratieAntwoord). A judged
//! declaration has DeclaratieAntwoord with the declared and the approved totals; only the refused
//! lines (Prestaties) are listed, each with its codes; when every line is approved no client is
//! listed and DeclaratieAntwoord carries `8001` (Declaratie is volledig toegewezen).

use chrono::NaiveDate;
use rz_domain::{AssignmentNumber, Bsn, FieldError, ProductCode, ReturnCode, Unit};

use crate::error::{ParseError, ParseErrorKind as K, RenderError};
use crate::model::{ProductCategory, ReceivedHeader};
use crate::parse::{bsn, code, date, fixed, integer, invalid, number, text_value, version};
use crate::render::ReturnHeader;
use crate::schema::{
    MAX_DECLARATION_ELEMENTS, MESSAGE_SUBVERSION, MESSAGE_VERSION, MessageType, xsd_versions,
};
use crate::xml::{Element, XmlOut, read_tree_bounded};

use rz_domain::{AgbCode, GemeenteCode, MessageId};

/// COD043 Indicatie debet/credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DebitCredit {
    /// `D`: an amount declared.
    Debit,
    /// `C`: the undoing of an earlier debit line (VorigReferentieNummer names it).
    Credit,
}

impl DebitCredit {
    pub fn code(self) -> &'static str {
        match self {
            Self::Debit => "D",
            Self::Credit => "C",
        }
    }

    pub fn from_code(c: &str) -> Result<Self, FieldError> {
        match c {
            "D" => Ok(Self::Debit),
            "C" => Ok(Self::Credit),
            _ => Err(FieldError::new(
                "DebetCredit",
                "must be D or C (list COD043)",
            )),
        }
    }

    /// `cents` with the sign of the indicator (credit negative).
    pub fn signed(self, cents: i64) -> i64 {
        match self {
            Self::Debit => cents,
            Self::Credit => -cents,
        }
    }
}

/// One Prestatie of a 323.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredLine {
    /// ProductReferentie/ReferentieNummer: the provider's key of the line.
    pub reference: String,
    /// ProductReferentie/VorigReferentieNummer: the earlier line a credit undoes (or a new debit
    /// replaces).
    pub previous_reference: Option<String>,
    pub assignment_number: AssignmentNumber,
    pub category: ProductCategory,
    pub product_code: ProductCode,
    pub begin: NaiveDate,
    pub end: NaiveDate,
    pub volume: u32,
    pub unit: Unit,
    /// ProductTarief in cents, when sent.
    pub tariff_cents: Option<u32>,
    /// IngediendBedrag/Bedrag in cents.
    pub amount_cents: u32,
    pub debit_credit: DebitCredit,
}

/// One Client of a 323 with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredClient {
    pub bsn: Bsn,
    pub lines: Vec<DeclaredLine>,
}

/// A 323 Declaratie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message323 {
    pub header: ReceivedHeader,
    /// DeclaratieNummer (1 to 12 letters and digits).
    pub number: String,
    pub period_begin: NaiveDate,
    pub period_end: NaiveDate,
    /// DeclaratieDagtekening.
    pub declaration_date: NaiveDate,
    /// TotaalIngediendBedrag in cents, signed (credit negative).
    pub total_cents: i64,
    pub clients: Vec<DeclaredClient>,
}

impl Message323 {
    /// The number of lines (Prestaties) over all clients.
    pub fn line_count(&self) -> usize {
        self.clients.iter().map(|c| c.lines.len()).sum()
    }
}

fn attach(header: &ReceivedHeader, e: ParseError) -> ParseError {
    let mut e = e;
    e.received = Some(Box::new(header.clone()));
    e
}

/// Reads a 323 Declaratie (JW323 or WMO323, told apart by the namespace).
pub fn parse_323(input: &[u8]) -> Result<Message323, ParseError> {
    let (root, law, expected) = read_tree_bounded(
        input,
        &[MessageType::Declaration323],
        MAX_DECLARATION_ELEMENTS,
    )?;
    root.only(&["Header", "Declaratie"])?;
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
    let d = root.one("Declaratie").map_err(|e| attach(&header, e))?;
    read_declaration(&header, d).map_err(|e| attach(&header, e))
}

fn read_declaration(header: &ReceivedHeader, d: &Element) -> Result<Message323, ParseError> {
    d.only(&[
        "DeclaratieNummer",
        "DeclaratiePeriode",
        "DeclaratieDagtekening",
        "TotaalIngediendBedrag",
        "Clienten",
    ])?;
    let num_el = d.one("DeclaratieNummer")?;
    let number = text_value(num_el, 12)?;
    if !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ParseError::new(
            K::InvalidValue,
            num_el.path.clone(),
            "must be 1 to 12 letters and digits",
        ));
    }
    let (period_begin, period_end) = period(d.one("DeclaratiePeriode")?)?;
    let declaration_date = date(d.one("DeclaratieDagtekening")?)?;
    let total = d.one("TotaalIngediendBedrag")?;
    total.only(&["TotaalBedrag", "DebetCredit"])?;
    let total_el = total.one("TotaalBedrag")?;
    let total_abs = total_el
        .value()?
        .parse::<i64>()
        .ok()
        .filter(|n| (0..=999_999_999_999).contains(n))
        .filter(|_| {
            total_el
                .value()
                .is_ok_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
        })
        .ok_or_else(|| {
            ParseError::new(
                K::InvalidValue,
                total_el.path.clone(),
                "must be a whole number of cents from 0 to 999999999999",
            )
        })?;
    let total_cents = debit_credit(total)?.signed(total_abs);
    let list = d.one("Clienten")?;
    list.only(&["Client"])?;
    let mut clients = Vec::new();
    for c in list.all("Client") {
        c.only(&["Bsn", "Prestaties"])?;
        let bsn = bsn(c.one("Bsn")?)?;
        let ps = c.one("Prestaties")?;
        ps.only(&["Prestatie"])?;
        let mut lines = Vec::new();
        for p in ps.all("Prestatie") {
            lines.push(line(header, p)?);
        }
        if lines.is_empty() {
            return Err(ParseError::new(
                K::Missing,
                ps.path.clone(),
                "at least one Prestatie",
            ));
        }
        clients.push(DeclaredClient { bsn, lines });
    }
    if clients.is_empty() {
        return Err(ParseError::new(
            K::Missing,
            list.path.clone(),
            "at least one Client",
        ));
    }
    Ok(Message323 {
        header: header.clone(),
        number,
        period_begin,
        period_end,
        declaration_date,
        total_cents,
        clients,
    })
}

fn period(el: &Element) -> Result<(NaiveDate, NaiveDate), ParseError> {
    el.only(&["Begindatum", "Einddatum"])?;
    let begin = date(el.one("Begindatum")?)?;
    let end_el = el.one("Einddatum")?;
    let end = date(end_el)?;
    if end < begin {
        return Err(ParseError::new(
            K::EndBeforeStart,
            end_el.path.clone(),
            "must not be before Begindatum",
        ));
    }
    Ok((begin, end))
}

fn debit_credit(parent: &Element) -> Result<DebitCredit, ParseError> {
    let el = parent.one("DebetCredit")?;
    DebitCredit::from_code(el.value()?).map_err(|e| invalid(el, e))
}

fn reference(el: &Element) -> Result<String, ParseError> {
    let v = text_value(el, 20)?;
    Ok(v)
}

fn line(header: &ReceivedHeader, p: &Element) -> Result<DeclaredLine, ParseError> {
    p.only(&[
        "ProductReferentie",
        "ToewijzingNummer",
        "ProductCategorie",
        "ProductCode",
        "ProductPeriode",
        "GeleverdVolume",
        "Eenheid",
        "ProductTarief",
        "IngediendBedrag",
    ])?;
    let r = p.one("ProductReferentie")?;
    r.only(&["ReferentieNummer", "VorigReferentieNummer"])?;
    let cat = p.one("ProductCategorie")?;
    let category = ProductCategory::parse(header.law, cat.value()?).map_err(|e| invalid(cat, e))?;
    let pc = p.one("ProductCode")?;
    let product_code =
        ProductCode::parse(pc.value()?).map_err(|e| invalid(pc, e).with_code(code("S329")))?;
    let (begin, end) = period(p.one("ProductPeriode")?)?;
    let unit_el = p.one("Eenheid")?;
    let unit = Unit::from_code(unit_el.value()?).map_err(|e| invalid(unit_el, e))?;
    let amount = p.one("IngediendBedrag")?;
    amount.only(&["Bedrag", "DebetCredit"])?;
    Ok(DeclaredLine {
        reference: reference(r.one("ReferentieNummer")?)?,
        previous_reference: r.opt("VorigReferentieNummer")?.map(reference).transpose()?,
        assignment_number: number(p.one("ToewijzingNummer")?)?,
        category,
        product_code,
        begin,
        end,
        volume: integer(p.one("GeleverdVolume")?)?,
        unit,
        tariff_cents: p.opt("ProductTarief")?.map(integer).transpose()?,
        amount_cents: integer(amount.one("Bedrag")?)?,
        debit_credit: debit_credit(amount)?,
    })
}

/// What a 325 says about the 323 it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclarationContent<'a> {
    /// The declaration refused (or not judged) as a whole: the codes go in the header, no
    /// DeclaratieAntwoord (e.g. `0001`, `9056`, `8848`).
    Whole(&'a [ReturnCode]),
    /// Every line judged: `codes[client][line]` are the line's refusal codes, empty when the line
    /// is approved.
    Judged {
        declaration: &'a Message323,
        codes: &'a [Vec<Vec<ReturnCode>>],
    },
}

fn write_codes(out: &mut XmlOut, codes: &[ReturnCode]) {
    out.open("RetourCodes");
    for c in codes {
        out.leaf("RetourCode", c.code());
    }
    out.close();
}

fn write_total(out: &mut XmlOut, name: &str, signed_cents: i64) {
    out.open(name);
    out.leaf("TotaalBedrag", &signed_cents.unsigned_abs().to_string());
    out.leaf(
        "DebetCredit",
        if signed_cents < 0 {
            DebitCredit::Credit.code()
        } else {
            DebitCredit::Debit.code()
        },
    );
    out.close();
}

/// The approved total of a judged declaration in cents, signed (credit negative).
pub fn approved_total(declaration: &Message323, codes: &[Vec<Vec<ReturnCode>>]) -> i64 {
    let mut sum = 0i64;
    for (ci, c) in declaration.clients.iter().enumerate() {
        for (li, l) in c.lines.iter().enumerate() {
            let refused = codes
                .get(ci)
                .and_then(|x| x.get(li))
                .is_some_and(|x| !x.is_empty());
            if !refused {
                sum += l.debit_credit.signed(i64::from(l.amount_cents));
            }
        }
    }
    sum
}

/// Writes a 325 Declaratie-antwoord (JW325 or WMO325, the law of `received`) that answers the 323
/// `received` (see the module documentation).
pub fn render_325(
    header: &ReturnHeader,
    received: &ReceivedHeader,
    content: DeclarationContent<'_>,
) -> Result<String, RenderError> {
    let law = received.law;
    if received.message_type != MessageType::Declaration323 {
        return Err(RenderError::WrongReturnType {
            kind: MessageType::DeclarationAnswer325.name(law),
            received: received.message_type.name(law),
        });
    }
    match content {
        DeclarationContent::Whole([]) => {
            return Err(FieldError::new("Header/RetourCodes", "at least one return code").into());
        }
        DeclarationContent::Whole(_) => {}
        DeclarationContent::Judged { declaration, codes } => {
            let shape_ok = codes.len() == declaration.clients.len()
                && codes
                    .iter()
                    .zip(&declaration.clients)
                    .all(|(c, d)| c.len() == d.lines.len());
            if !shape_ok {
                return Err(RenderError::UnknownRecord(
                    "codes do not match the declaration's clients and lines".into(),
                ));
            }
        }
    }
    let kind = MessageType::DeclarationAnswer325;
    let (basis, bericht) = xsd_versions(law);
    let mut out = XmlOut::new(&kind.namespace(law), law);
    out.open("Header");
    out.leaf("BerichtCode", kind.code(law));
    out.leaf("BerichtVersie", MESSAGE_VERSION);
    out.leaf("BerichtSubversie", MESSAGE_SUBVERSION);
    out.leaf("Afzender", received.receiver_municipality.as_str());
    out.leaf("Ontvanger", received.sender_agb.as_str());
    out.open("BerichtIdentificatie");
    out.leaf("Identificatie", header.message_id.as_str());
    out.leaf(
        "Dagtekening",
        &header.message_date.format("%Y-%m-%d").to_string(),
    );
    out.close();
    out.open("XsdVersie");
    out.leaf("BasisschemaXsdVersie", basis);
    out.leaf("BerichtXsdVersie", bericht);
    out.close();
    out.open("DeclaratieIdentificatie");
    out.leaf("Identificatie", received.message_id.as_str());
    out.leaf(
        "Dagtekening",
        &received.message_date.format("%Y-%m-%d").to_string(),
    );
    out.close();
    out.open("XsdVersieDeclaratie");
    out.leaf("BasisschemaXsdVersie", &received.basisschema_xsd_version);
    out.leaf("BerichtXsdVersie", &received.message_xsd_version);
    out.close();
    match content {
        DeclarationContent::Whole(codes) => {
            write_codes(&mut out, codes);
            out.close();
        }
        DeclarationContent::Judged { declaration, codes } => {
            write_codes(&mut out, &[ReturnCode::ACCEPTED]);
            out.close();
            write_answer(&mut out, declaration, codes);
        }
    }
    Ok(out.finish())
}

fn write_answer(out: &mut XmlOut, d: &Message323, codes: &[Vec<Vec<ReturnCode>>]) {
    out.open("DeclaratieAntwoord");
    out.leaf("DeclaratieNummer", &d.number);
    write_total(out, "TotaalIngediendBedrag", d.total_cents);
    write_total(out, "TotaalToegekendBedrag", approved_total(d, codes));
    let mut any_refused = false;
    for (client, client_codes) in d.clients.iter().zip(codes) {
        let refused: Vec<(&DeclaredLine, &Vec<ReturnCode>)> = client
            .lines
            .iter()
            .zip(client_codes)
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if refused.is_empty() {
            continue;
        }
        if !any_refused {
            out.open("Clienten");
            any_refused = true;
        }
        out.open("Client");
        out.leaf("Bsn", client.bsn.as_str());
        out.open("Prestaties");
        for (l, c) in refused {
            write_line(out, l);
            write_codes(out, c);
            out.close();
        }
        out.close();
        write_codes(out, &[ReturnCode::ACCEPTED]);
        out.close();
    }
    if any_refused {
        out.close();
        write_codes(out, &[ReturnCode::ACCEPTED]);
    } else {
        write_codes(out, &[code("8001")]);
    }
    out.close();
}

/// Opens a Prestatie and writes its fields as received (the caller adds RetourCodes and closes).
fn write_line(out: &mut XmlOut, l: &DeclaredLine) {
    out.open("Prestatie");
    out.open("ProductReferentie");
    out.leaf("ReferentieNummer", &l.reference);
    out.opt_leaf("VorigReferentieNummer", l.previous_reference.as_deref());
    out.close();
    out.leaf("ToewijzingNummer", &l.assignment_number.value().to_string());
    out.leaf("ProductCategorie", l.category.code());
    out.leaf("ProductCode", l.product_code.as_str());
    out.open("ProductPeriode");
    out.leaf("Begindatum", &l.begin.format("%Y-%m-%d").to_string());
    out.leaf("Einddatum", &l.end.format("%Y-%m-%d").to_string());
    out.close();
    out.leaf("GeleverdVolume", &l.volume.to_string());
    out.leaf("Eenheid", l.unit.code());
    if let Some(t) = l.tariff_cents {
        out.leaf("ProductTarief", &t.to_string());
    }
    out.open("IngediendBedrag");
    out.leaf("Bedrag", &l.amount_cents.to_string());
    out.leaf("DebetCredit", l.debit_credit.code());
    out.close();
}

/// The message type of a document by its root element's namespace, read from the first element
/// only (nothing else is parsed; `None` when it is not an iJw/iWmo 3.2 message this crate knows).
/// Lets a receiver route a 323 to [`parse_323`] and the others to
/// [`crate::parse_provider_message`]; the chosen reader still checks the whole document.
pub fn message_type_of(input: &[u8]) -> Option<(rz_domain::Law, MessageType)> {
    let text = std::str::from_utf8(input.get(..input.len().min(64 * 1024))?)
        .ok()
        .or_else(|| {
            // Cut inside a multi-byte character: read the valid prefix.
            let s = &input[..input.len().min(64 * 1024)];
            std::str::from_utf8(&s[..s.len().saturating_sub(3)]).ok()
        })?;
    let start = text.find("<Bericht")?;
    let tag_end = text[start..].find('>')? + start;
    let tag = &text[start..tag_end];
    [rz_domain::Law::Jeugdwet, rz_domain::Law::Wmo]
        .into_iter()
        .flat_map(|l| MessageType::ALL.into_iter().map(move |t| (l, t)))
        .find(|(l, t)| tag.contains(&format!("\"{}\"", t.namespace(*l))))
}
