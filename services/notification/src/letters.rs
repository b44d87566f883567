//! Letters to residents in plain Dutch, from templates: when a provider is assigned (the
//! `issued` assignment message, which carries the client block with name and address as the
//! standard's 301 does). The consumer `notification-letters` writes one letter per event in the
//! inbox transaction; municipalities list them with `ListLetters` to print or send them.
//!
//! For youth care (Jeugdwet) to a child under 16 the letter is addressed to the parents or
//! carers; from 16 on, to the young person. When the assignment replaces another one (a handover
//! because the old provider has no contract any more) the letter says so.

use chrono::{Datelike, NaiveDate};
use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use rz_proto::assignment::v1 as apb;
use sqlx::PgConnection;
use uuid::Uuid;

pub const CONSUMER: &str = "notification-letters";
pub const PROVIDER_ASSIGNED: &str = "provider_assigned";

pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    ConsumerSpec::new(
        CONSUMER,
        ns.stream_name(crate::consumer::ASSIGNMENT),
        format!("{}.{}.*.*.issued", ns.as_str(), crate::consumer::ASSIGNMENT),
    )
}

/// The CBS name of the region's municipalities; others are named by code.
pub fn municipality_name(code: &str) -> String {
    match code {
        "0197" => "Aalten".into(),
        "1859" => "Berkelland".into(),
        "1876" => "Bronckhorst".into(),
        "0222" => "Doetinchem".into(),
        "1955" => "Montferland".into(),
        "1586" => "Oost Gelre".into(),
        "1509" => "Oude IJsselstreek".into(),
        "0294" => "Winterswijk".into(),
        other => other.to_owned(),
    }
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

/// The letter for a new assignment, or `None` when the message has no assignment or client.
pub fn provider_assigned(m: &apb::AssignmentMessage, today: NaiveDate) -> Option<String> {
    let a = m.assignment.as_ref()?;
    let c = m.client.as_ref()?;
    let gemeente = municipality_name(&a.municipality);
    let name = [c.given_names.trim(), c.family_name.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() {
        "de cliënt".to_owned()
    } else {
        name
    };
    let youth = a.law == rz_proto::types::v1::Law::Jeugdwet as i32;
    let start = a.period.as_ref().and_then(|p| parse(&p.start));
    let end = a.period.as_ref().and_then(|p| parse(&p.end));
    let child = youth
        && parse(&c.birth_date).is_some_and(|b| age_on(b, start.unwrap_or(today).max(today)) < 16);
    let mut t = String::new();
    t.push_str(&format!("Gemeente {gemeente}\n\n"));
    if child {
        t.push_str(&format!("Aan de ouder(s) of verzorger(s) van {name}\n"));
    } else {
        t.push_str(&format!("Aan {name}\n"));
    }
    if let Some(addr) = &c.address {
        let street = format!("{} {}", addr.street.trim(), addr.house_number.trim());
        if !street.trim().is_empty() {
            t.push_str(street.trim());
            t.push('\n');
        }
        let city = format!("{}  {}", addr.postal_code.trim(), addr.city.trim());
        if !city.trim().is_empty() {
            t.push_str(city.trim());
            t.push('\n');
        }
    }
    t.push_str(&format!("\n{}\n\n", dutch_date(today)));
    let what = if youth {
        "jeugdhulp"
    } else {
        "ondersteuning vanuit de Wmo"
    };
    t.push_str(&format!("Onderwerp: uw zorgaanbieder voor {what}\n\n"));
    if child {
        t.push_str(&format!("Beste ouder(s) of verzorger(s) van {name},\n\n"));
    } else {
        t.push_str(&format!("Beste {name},\n\n"));
    }
    let who = if child { "Uw kind krijgt" } else { "U krijgt" };
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
    t.push_str(&format!(
        "Met vriendelijke groet,\n\nTeam Toegang\nGemeente {gemeente}\n"
    ));
    Some(t)
}

pub struct LetterWriter;

impl Handler for LetterWriter {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        if event.event_type != "nl.regiozorg.assignment.issued.v1" {
            return Ok(());
        }
        let m: apb::AssignmentMessage = event.decode()?;
        // The letter's date: the day of the event (UTC; a letter written just after midnight in
        // the Netherlands carries the day before).
        let today = event.time.date_naive();
        let Some(text) = provider_assigned(&m, today) else {
            return Ok(());
        };
        let Some(a) = &m.assignment else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO letters (id, event_id, kind, municipality, client_key, assignment_number, text)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id, kind) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(event.id)
        .bind(PROVIDER_ASSIGNED)
        .bind(&a.municipality)
        .bind(&a.client_key)
        .bind(i64::from(a.number))
        .bind(&text)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = provider_assigned(&message(1, "2015-06-01", 0), day("2026-11-22")).unwrap();
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
        let t = provider_assigned(&message(2, "1950-01-01", 99), day("2026-11-22")).unwrap();
        assert!(t.contains("Aan Sanne Jansen\n"));
        assert!(t.contains("Beste Sanne Jansen,"));
        assert!(t.contains("ondersteuning vanuit de Wmo"));
        assert!(t.contains("De vorige zorgaanbieder heeft geen contract meer"));
        // A 16-year-old in youth care is addressed directly.
        let t = provider_assigned(&message(1, "2010-01-01", 0), day("2026-11-22")).unwrap();
        assert!(t.contains("Aan Sanne Jansen\n"));
    }

    #[test]
    fn ages_and_dates() {
        assert_eq!(age_on(day("2010-11-23"), day("2026-11-22")), 15);
        assert_eq!(age_on(day("2010-11-22"), day("2026-11-22")), 16);
        assert_eq!(dutch_date(day("2027-03-05")), "5 maart 2027");
        assert_eq!(municipality_name("1509"), "Oude IJsselstreek");
    }
}
