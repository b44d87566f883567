//! Letters to residents in plain Dutch, from templates: when a provider is assigned (the
//! `issued` assignment message, which carries the client block with name and address as the
//! standard's 301 does). The consumer `notification-letters` writes one letter per event in the
//! inbox transaction, its text sealed at rest ([`store::insert_letter`]); municipalities list them
//! with `ListLetters` to print or send them.
//! The decision letters ([`decision_granted`], [`decision_refused`]) are written by
//! [`crate::decisions`], the reminders ([`indication_ending`]) by [`crate::scan`].
//!
//! For youth care (Jeugdwet) to a child under 16 the letter is addressed to the parents or
//! carers; from 16 on, to the young person. When the assignment replaces another one (a handover
//! because the old provider has no contract any more) the letter says so.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as apb;
use rz_proto::events::assignment::ISSUED;
use sqlx::PgConnection;

use crate::region::Region;
use crate::secrets::Keyring;
use crate::store::{self, NewLetter};

pub const CONSUMER: &str = "notification-letters";
pub const PROVIDER_ASSIGNED: &str = "provider_assigned";

pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    ConsumerSpec::new(
        CONSUMER,
        ns.stream_name(crate::consumer::ASSIGNMENT),
        format!("{}.{}.*.*.issued", ns.as_str(), crate::consumer::ASSIGNMENT),
    )
}

const MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

/// `22 november 2026`.
pub fn dutch_date(d: NaiveDate) -> String {
    let month = MONTHS.get(d.month0() as usize).copied().unwrap_or_default();
    format!("{} {month} {}", d.day(), d.year())
}

fn parse(d: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
}

fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// `Jan Jansen`, or `de cliënt` when the name is unknown.
pub fn full_name(given_names: &str, family_name: &str) -> String {
    let name = [given_names.trim(), family_name.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        "de cliënt".to_owned()
    } else {
        name
    }
}

/// Who a letter is written to: the resident, or for youth care (Jeugdwet) to a child under 16
/// (on `on`) the parents or carers.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub name: String,
    pub child: bool,
    pub street: String,
    pub city: String,
}

impl Recipient {
    pub fn new(
        given_names: &str,
        family_name: &str,
        birth_date: &str,
        youth: bool,
        on: NaiveDate,
        street: (&str, &str),
        city: (&str, &str),
    ) -> Self {
        Self {
            name: full_name(given_names, family_name),
            child: youth && parse(birth_date).is_some_and(|b| age_on(b, on) < 16),
            street: format!("{} {}", street.0.trim(), street.1.trim())
                .trim()
                .to_owned(),
            city: format!("{}  {}", city.0.trim(), city.1.trim())
                .trim()
                .to_owned(),
        }
    }

    /// From the resident block access hands out.
    pub fn from_access(c: &acc::AssignmentClient, youth: bool, on: NaiveDate) -> Self {
        let (street, number, postal, city) = c
            .address
            .as_ref()
            .map(|a| {
                (
                    a.street.as_str(),
                    a.house_number.as_str(),
                    a.postal_code.as_str(),
                    a.city.as_str(),
                )
            })
            .unwrap_or_default();
        Self::new(
            &c.given_names,
            &c.family_name,
            &c.birth_date,
            youth,
            on,
            (street, number),
            (postal, city),
        )
    }

    /// "Uw kind krijgt" / "U krijgt" and the like.
    fn you(&self) -> &'static str {
        if self.child { "Uw kind" } else { "U" }
    }
}

/// The letterhead, address block, date, subject and salutation.
fn opening(t: &mut String, gemeente: &str, r: &Recipient, date: NaiveDate, subject: &str) {
    t.push_str(&format!("Gemeente {gemeente}\n\n"));
    if r.child {
        t.push_str(&format!("Aan de ouder(s) of verzorger(s) van {}\n", r.name));
    } else {
        t.push_str(&format!("Aan {}\n", r.name));
    }
    for line in [&r.street, &r.city] {
        if !line.is_empty() {
            t.push_str(line);
            t.push('\n');
        }
    }
    t.push_str(&format!("\n{}\n\n", dutch_date(date)));
    t.push_str(&format!("Onderwerp: {subject}\n\n"));
    if r.child {
        t.push_str(&format!(
            "Beste ouder(s) of verzorger(s) van {},\n\n",
            r.name
        ));
    } else {
        t.push_str(&format!("Beste {},\n\n", r.name));
    }
}

fn closing(t: &mut String, gemeente: &str) {
    t.push_str(&format!(
        "Met vriendelijke groet,\n\nTeam Toegang\nGemeente {gemeente}\n"
    ));
}

fn what(youth: bool) -> &'static str {
    if youth {
        "jeugdhulp"
    } else {
        "ondersteuning vanuit de Wmo"
    }
}

/// The letter for a new assignment, or `None` when the message has no assignment or client, or
/// when the assignment is existing care imported at go-live (origin `import`): the resident
/// already receives that care from that provider, and a region's migration must not write to
/// every resident in care.
pub fn provider_assigned(
    m: &apb::AssignmentMessage,
    region: &Region,
    today: NaiveDate,
) -> Option<String> {
    let a = m.assignment.as_ref()?;
    if a.origin == "import" {
        return None;
    }
    let c = m.client.as_ref()?;
    let gemeente = region.municipality_name(&a.municipality);
    let youth = a.law == rz_proto::types::v1::Law::Jeugdwet as i32;
    let start = a.period.as_ref().and_then(|p| parse(&p.start));
    let end = a.period.as_ref().and_then(|p| parse(&p.end));
    let (street, number, postal, city) = c
        .address
        .as_ref()
        .map(|a| {
            (
                a.street.as_str(),
                a.house_number.as_str(),
                a.postal_code.as_str(),
                a.city.as_str(),
            )
        })
        .unwrap_or_default();
    let r = Recipient::new(
        &c.given_names,
        &c.family_name,
        &c.birth_date,
        youth,
        start.unwrap_or(today).max(today),
        (street, number),
        (postal, city),
    );
    let what = what(youth);
    let mut t = String::new();
    opening(
        &mut t,
        &gemeente,
        &r,
        today,
        &format!("uw zorgaanbieder voor {what}"),
    );
    let who = if r.child {
        "Uw kind krijgt"
    } else {
        "U krijgt"
    };
    t.push_str(&format!(
        "{who} {what} van de gemeente {gemeente}. In deze brief leest u welke zorgaanbieder die hulp geeft.\n\n"
    ));
    if a.replaces_number != 0 {
        t.push_str(
            "De vorige zorgaanbieder heeft geen contract meer met de gemeente. De hulp gaat daarom \
             over naar een nieuwe zorgaanbieder. De hulp waar u recht op heeft, blijft hetzelfde. \
             De vorige zorgaanbieder helpt u tot de nieuwe zorgaanbieder de hulp overneemt.\n\n",
        );
    }
    t.push_str(&format!("Zorgaanbieder:       AGB-code {}\n", a.agb_code));
    let product = if a.product_code.is_empty() {
        a.subsegment_code.clone()
    } else {
        format!("{} ({})", a.product_code, a.subsegment_code)
    };
    t.push_str(&format!("Product:             {product}\n"));
    match start {
        Some(s) => t.push_str(&format!("Vanaf:               {}\n", dutch_date(s))),
        None => t.push_str("Vanaf:               zo snel mogelijk\n"),
    }
    if let Some(e) = end {
        t.push_str(&format!("Tot en met:          {}\n", dutch_date(e)));
    }
    if let Some(size) = &a.size
        && size.volume > 0
    {
        t.push_str(&format!(
            "Omvang:              {} {} {}\n",
            size.volume, size.unit, size.frequency
        ));
    }
    t.push_str(&format!("Toewijzingsnummer:   {}\n\n", a.number));
    t.push_str(
        "De zorgaanbieder neemt binnen vijf werkdagen contact met u op. Samen spreekt u af hoe de \
         hulp eruitziet. Heeft u na vijf werkdagen nog niets gehoord? Bel dan de zorgaanbieder of \
         uw contactpersoon bij de gemeente.\n\n",
    );
    closing(&mut t, &gemeente);
    Some(t)
}

/// The region's goal a granted product serves, in words.
pub fn goal_text(goal: i32) -> Option<&'static str> {
    Some(match acc::Goal::try_from(goal).ok()? {
        acc::Goal::TimelyLastingResult => {
            "op tijd een passend en blijvend resultaat, in een veilige en vertrouwde omgeving"
        }
        acc::Goal::MeaningfulLife => "een betekenisvol leven (positieve gezondheid)",
        acc::Goal::Participation => "meedoen in de samenleving",
        acc::Goal::FlexibleAmbulant => {
            "flexibele hulp dichtbij huis, die mee kan groeien of krimpen"
        }
        acc::Goal::ResidentSatisfaction => "tevreden inwoners",
        acc::Goal::ChainSatisfaction => "goede samenwerking van alle betrokkenen",
        acc::Goal::Unspecified => return None,
    })
}

/// `€ 1.234,50`.
pub fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let whole = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}€ {grouped},{:02}", c % 100)
}

/// The size of a granted product in words: a budget, a volume, or nothing (taakgericht).
fn size_text(p: &acc::GrantedProduct) -> Option<String> {
    if p.budget_cents > 0 {
        return Some(format!("een budget van {}", euros(p.budget_cents)));
    }
    if p.volume > 0 {
        let unit = rz_domain::Unit::from_code(&p.unit)
            .map(|u| u.description().to_lowercase())
            .unwrap_or_else(|_| p.unit.clone());
        let frequency = rz_domain::Frequency::from_code(&p.frequency)
            .map(|f| f.description().to_lowercase())
            .unwrap_or_else(|_| p.frequency.clone());
        return Some(format!("{} x {unit}, {frequency}", p.volume));
    }
    None
}

fn product_name(p: &acc::GrantedProduct) -> String {
    if p.product_code.is_empty() {
        p.subsegment_code.clone()
    } else {
        format!("{} ({})", p.product_code, p.subsegment_code)
    }
}

fn period_lines(t: &mut String, p: &acc::GrantedProduct) {
    let start = p.period.as_ref().and_then(|x| parse(&x.start));
    let end = p.period.as_ref().and_then(|x| parse(&x.end));
    if let Some(s) = start {
        t.push_str(&format!("  Vanaf:         {}\n", dutch_date(s)));
    }
    match end {
        Some(e) => t.push_str(&format!("  Tot en met:    {}\n", dutch_date(e))),
        None => t.push_str("  Tot en met:    geen einddatum\n"),
    }
}

const OBJECTION: &str = "Bent u het niet eens met dit besluit? Dan kunt u bezwaar maken binnen zes weken na \
     de datum van deze brief. Stuur uw bezwaarschrift naar het college van burgemeester en \
     wethouders van de gemeente. Schrijf erin waarom u het niet eens bent met het besluit en stuur \
     een kopie van deze brief mee. Wilt u eerst overleggen? Bel dan uw contactpersoon bij de \
     gemeente.\n\n";

/// A decision letter up to its content: the opening and the verdict on the decision date
/// ("... krijgt jeugdhulp" when `granted`, "... krijgt geen jeugdhulp" otherwise).
fn decision_opening(
    c: &acc::Case,
    r: &Recipient,
    gemeente: &str,
    date: NaiveDate,
    granted: bool,
) -> String {
    let youth = c.law == rz_proto::types::v1::Law::Jeugdwet as i32;
    let what = what(youth);
    let mut t = String::new();
    opening(
        &mut t,
        gemeente,
        r,
        date,
        &format!("besluit over uw aanvraag voor {what}"),
    );
    let decided = parse(&c.decided_on).unwrap_or(date);
    let verdict = if granted {
        format!("{what}. In deze brief leest u wat dat is.")
    } else {
        format!("geen {what}.")
    };
    t.push_str(&format!(
        "Op {} heeft de gemeente {gemeente} besloten over uw aanvraag. {} krijgt {verdict}\n\n",
        dutch_date(decided),
        r.you()
    ));
    t
}

/// A decision letter's end: the right to object and the closing.
fn decision_closing(mut t: String, gemeente: &str) -> String {
    t.push_str(OBJECTION);
    closing(&mut t, gemeente);
    t
}

/// The decision (beschikking) that grants products: which, from when to when, the result and
/// the goal it serves, and the right to object.
pub fn decision_granted(c: &acc::Case, r: &Recipient, gemeente: &str, date: NaiveDate) -> String {
    let mut t = decision_opening(c, r, gemeente, date, true);
    for (i, p) in c.products.iter().enumerate() {
        t.push_str(&format!("{}. {}\n", i + 1, product_name(p)));
        period_lines(&mut t, p);
        if !p.result.trim().is_empty() {
            t.push_str(&format!("  Resultaat:     {}\n", p.result.trim()));
        }
        if let Some(goal) = goal_text(p.goal) {
            t.push_str(&format!("  Doel:          {goal}\n"));
        }
        if let Some(size) = size_text(p) {
            t.push_str(&format!("  Omvang:        {size}\n"));
        }
        t.push('\n');
    }
    t.push_str(
        "De gemeente zoekt nu een zorgaanbieder. U krijgt een brief zodra die bekend is.\n\n",
    );
    decision_closing(t, gemeente)
}

/// The decision that refuses: the reason and the right to object.
pub fn decision_refused(c: &acc::Case, r: &Recipient, gemeente: &str, date: NaiveDate) -> String {
    let mut t = decision_opening(c, r, gemeente, date, false);
    t.push_str(&format!(
        "De reden:\n{}\n\n",
        if c.refusal_reason.trim().is_empty() {
            "(geen reden opgegeven)"
        } else {
            c.refusal_reason.trim()
        }
    ));
    decision_closing(t, gemeente)
}

/// A granted product ends within 8 weeks: what to do if help is still needed.
pub fn indication_ending(
    p: &acc::GrantedProduct,
    r: &Recipient,
    gemeente: &str,
    ends_on: NaiveDate,
    date: NaiveDate,
) -> String {
    let youth = p.law == rz_proto::types::v1::Law::Jeugdwet as i32;
    let what = what(youth);
    let mut t = String::new();
    opening(
        &mut t,
        gemeente,
        r,
        date,
        &format!("uw {what} stopt binnenkort"),
    );
    let has = if r.child {
        "Uw kind krijgt"
    } else {
        "U krijgt"
    };
    t.push_str(&format!(
        "{has} {what} van de gemeente {gemeente}. Die hulp stopt op {}.\n\n",
        dutch_date(ends_on)
    ));
    t.push_str(&format!("Product:       {}\n", product_name(p)));
    period_lines(&mut t, p);
    if !p.result.trim().is_empty() {
        t.push_str(&format!("Resultaat:     {}\n", p.result.trim()));
    }
    t.push('\n');
    t.push_str(
        "Is de hulp daarna nog nodig? Neem dan zo snel mogelijk contact op met uw contactpersoon \
         bij de gemeente. Samen kijken we of er nieuwe hulp nodig is; daarvoor is een nieuw besluit \
         nodig. Is het resultaat bereikt? Dan hoeft u niets te doen.\n\n",
    );
    closing(&mut t, gemeente);
    t
}

/// Writes the letter of every new assignment (`issued`) to its resident, its text sealed.
pub struct LetterWriter {
    region: Arc<Region>,
    keys: Arc<Keyring>,
}

impl LetterWriter {
    pub fn new(region: Arc<Region>, keys: Arc<Keyring>) -> Self {
        Self { region, keys }
    }
}

impl Handler for LetterWriter {
    /// A batch of events is written with one statement (per thousand letters).
    const BATCHES: bool = true;

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        self.handle_batch(tx, &[event]).await.map_err(|(_, e)| e)
    }

    /// A message that does not decode is named by its place; the statement covers the whole
    /// batch, so its failure is reported at the first event.
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&Event],
    ) -> Result<(), (usize, HandleError)> {
        let mut letters = Vec::new();
        for (k, event) in events.iter().enumerate() {
            if !ISSUED.is(&event.event_type) {
                continue;
            }
            let m: apb::AssignmentMessage =
                event.decode().map_err(|e| (k, HandleError::from(e)))?;
            // The letter's date: the day of the event (UTC; a letter written just after
            // midnight in the Netherlands carries the day before).
            let today = event.time.date_naive();
            let Some(text) = provider_assigned(&m, &self.region, today) else {
                continue;
            };
            let Some(a) = m.assignment else {
                continue;
            };
            letters.push((event.id, a, text));
        }
        let rows: Vec<NewLetter<'_>> = letters
            .iter()
            .map(|(id, a, text)| NewLetter {
                event_id: Some(*id),
                kind: PROVIDER_ASSIGNED,
                municipality: &a.municipality,
                client_key: &a.client_key,
                assignment_number: Some(i64::from(a.number)),
                case_id: None,
                product_id: None,
                ends_on: None,
                text,
            })
            .collect();
        store::insert_letters(tx, &self.keys, &rows)
            .await
            .map_err(|e| (0, HandleError::from(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region::achterhoek().unwrap()
    }

    fn message(law: i32, birth: &str, replaces: u32) -> apb::AssignmentMessage {
        apb::AssignmentMessage {
            assignment: Some(apb::Assignment {
                number: 123,
                municipality: "0222".into(),
                agb_code: "12345678".into(),
                law,
                subsegment_code: "IAJ-OND".into(),
                product_code: "45A01".into(),
                period: Some(rz_proto::types::v1::Period {
                    start: "2026-12-01".into(),
                    end: "2027-05-31".into(),
                }),
                replaces_number: replaces,
                ..Default::default()
            }),
            client: Some(apb::Client {
                given_names: "Sanne".into(),
                family_name: "Jansen".into(),
                birth_date: birth.into(),
                address: Some(apb::ClientAddress {
                    street: "Raadhuisstraat".into(),
                    house_number: "12a".into(),
                    postal_code: "7001 EW".into(),
                    city: "Doetinchem".into(),
                }),
                ..Default::default()
            }),
        }
    }

    fn day(s: &str) -> NaiveDate {
        parse(s).unwrap()
    }

    #[test]
    fn a_childs_letter_goes_to_the_parents() {
        let t =
            provider_assigned(&message(1, "2015-06-01", 0), &region(), day("2026-11-22")).unwrap();
        assert!(t.starts_with("Gemeente Doetinchem\n"), "{t}");
        assert!(t.contains("Aan de ouder(s) of verzorger(s) van Sanne Jansen\n"));
        assert!(t.contains("Raadhuisstraat 12a\n7001 EW  Doetinchem\n"));
        assert!(t.contains("22 november 2026"));
        assert!(t.contains("Onderwerp: uw zorgaanbieder voor jeugdhulp"));
        assert!(t.contains("Uw kind krijgt jeugdhulp van de gemeente Doetinchem."));
        assert!(t.contains("AGB-code 12345678"));
        assert!(t.contains("Vanaf:               1 december 2026"));
        assert!(t.contains("Tot en met:          31 mei 2027"));
        assert!(t.contains("Toewijzingsnummer:   123"));
        assert!(!t.contains("vorige zorgaanbieder"));
    }

    #[test]
    fn an_adult_gets_the_letter_and_a_handover_is_explained() {
        let t =
            provider_assigned(&message(2, "1950-01-01", 99), &region(), day("2026-11-22")).unwrap();
        assert!(t.contains("Aan Sanne Jansen\n"));
        assert!(t.contains("Beste Sanne Jansen,"));
        assert!(t.contains("ondersteuning vanuit de Wmo"));
        assert!(t.contains("De vorige zorgaanbieder heeft geen contract meer"));
        // A 16-year-old in youth care is addressed directly.
        let t =
            provider_assigned(&message(1, "2010-01-01", 0), &region(), day("2026-11-22")).unwrap();
        assert!(t.contains("Aan Sanne Jansen\n"));
    }

    #[test]
    fn imported_care_gets_no_letter() {
        let mut m = message(1, "2010-01-01", 0);
        if let Some(a) = m.assignment.as_mut() {
            a.origin = "import".into();
        }
        assert_eq!(provider_assigned(&m, &region(), day("2026-11-22")), None);
        for origin in ["", "decision", "request", "handover"] {
            if let Some(a) = m.assignment.as_mut() {
                a.origin = origin.into();
            }
            assert!(provider_assigned(&m, &region(), day("2026-11-22")).is_some());
        }
    }

    fn resident() -> acc::AssignmentClient {
        acc::AssignmentClient {
            client_key: "k".into(),
            bsn: "999990019".into(),
            birth_date: "2015-06-01".into(),
            family_name: "Jansen".into(),
            given_names: "Sanne".into(),
            municipality: "0222".into(),
            gender: "2".into(),
            address: Some(acc::Address {
                street: "Raadhuisstraat".into(),
                house_number: "12a".into(),
                postal_code: "7001EW".into(),
                city: "Doetinchem".into(),
                municipality: "0222".into(),
            }),
        }
    }

    fn product(budget: i64, volume: u32) -> acc::GrantedProduct {
        acc::GrantedProduct {
            id: "p1".into(),
            law: 2,
            subsegment_code: "WIO-PV".into(),
            product_code: "PV01".into(),
            result: "Zelfstandig wassen".into(),
            goal: acc::Goal::TimelyLastingResult as i32,
            period: Some(rz_proto::types::v1::Period {
                start: "2022-07-04".into(),
                end: "2022-12-31".into(),
            }),
            budget_cents: budget,
            volume,
            unit: "04".into(),
            frequency: "2".into(),
            ..Default::default()
        }
    }

    #[test]
    fn decision_letters_name_products_reason_and_objection() {
        let date = day("2022-07-15");
        let case = acc::Case {
            id: "c1".into(),
            law: 2,
            decided_on: "2022-07-14".into(),
            products: vec![product(0, 3), product(12_345_678, 0)],
            ..Default::default()
        };
        let adult = Recipient::from_access(&resident(), false, date);
        let t = decision_granted(&case, &adult, "Doetinchem", date);
        assert!(t.contains("Aan Sanne Jansen\n"), "{t}");
        assert!(
            t.contains("Op 14 juli 2022 heeft de gemeente Doetinchem besloten"),
            "{t}"
        );
        assert!(
            t.contains(
                "U krijgt ondersteuning vanuit de Wmo. In deze brief leest u wat dat is.\n\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("1. PV01 (WIO-PV)\n  Vanaf:         4 juli 2022\n"),
            "{t}"
        );
        assert!(t.contains("  Omvang:        3 x uur, per week\n"), "{t}");
        assert!(
            t.contains("  Omvang:        een budget van € 123.456,78\n"),
            "{t}"
        );
        assert!(
            t.contains("  Doel:          op tijd een passend en blijvend resultaat"),
            "{t}"
        );
        assert!(t.contains("bezwaar maken binnen zes weken"), "{t}");
        assert!(!t.contains("999990019"), "no BSN: {t}");

        let refused = acc::Case {
            law: 1,
            decided_on: "2022-07-14".into(),
            refusal_reason: "Voorliggende voorziening.".into(),
            ..Default::default()
        };
        let child = Recipient::from_access(&resident(), true, date);
        let t = decision_refused(&refused, &child, "Doetinchem", date);
        assert!(
            t.contains("Aan de ouder(s) of verzorger(s) van Sanne Jansen\n"),
            "{t}"
        );
        assert!(t.contains("Uw kind krijgt geen jeugdhulp."), "{t}");
        assert!(t.contains("De reden:\nVoorliggende voorziening.\n"), "{t}");
        assert!(t.contains("bezwaar maken binnen zes weken"), "{t}");

        let t = indication_ending(
            &product(0, 3),
            &adult,
            "Doetinchem",
            day("2022-12-31"),
            date,
        );
        assert!(
            t.contains("Onderwerp: uw ondersteuning vanuit de Wmo stopt binnenkort"),
            "{t}"
        );
        assert!(t.contains("Die hulp stopt op 31 december 2022."), "{t}");
    }

    #[test]
    fn euros_are_written_the_dutch_way() {
        assert_eq!(euros(0), "€ 0,00");
        assert_eq!(euros(5), "€ 0,05");
        assert_eq!(euros(100_000), "€ 1.000,00");
        assert_eq!(euros(123_456_789), "€ 1.234.567,89");
        assert_eq!(euros(-250), "-€ 2,50");
    }

    #[test]
    fn ages_and_dates() {
        assert_eq!(age_on(day("2010-11-23"), day("2026-11-22")), 15);
        assert_eq!(age_on(day("2010-11-22"), day("2026-11-22")), 16);
        assert_eq!(dutch_date(day("2027-03-05")), "5 maart 2027");
    }
}
