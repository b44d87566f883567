//! Domain types of regiozorg: identifiers, periods, money, the working-day calendar and the code
//! lists of the iStandaarden iJw/iWmo 3.2. Pure values: no I/O, every parser returns
//! `Result<_, FieldError>`.
//!
//! # Dutch terms
//!
//! **Gemeente** (municipality): the local government that buys youth care and Wmo support for its
//! residents. Identified by its 4-digit CBS code ([`GemeenteCode`], e.g. `0222` Doetinchem). The
//! eight Achterhoek municipalities buy care together as a region.
//!
//! **Inwoner / cliënt** (resident / client): the person who receives care, identified by the
//! **BSN** (burgerservicenummer, [`Bsn`]), the national citizen service number: 9 digits passing
//! the 11-test. It is personal data: its `Debug` output is masked.
//!
//! **Zorgaanbieder** (care provider): an organisation that delivers care, identified by its
//! **AGB code** ([`AgbCode`], Algemeen GegevensBeheer zorgverleners), the national 8-digit care
//! provider code, and registered at the **KvK** (Kamer van Koophandel, Chamber of Commerce) with an
//! 8-digit [`KvkNumber`].
//!
//! **Jeugdwet** (Youth Act) and **Wmo** (Wet maatschappelijke ondersteuning 2015, Social Support
//! Act): the two laws ([`Law`]) under which municipalities arrange youth care (jeugdhulp) and support
//! for adults. Their message standards are **iJw** and **iWmo** (the iStandaarden), release 3.2.
//!
//! **Toegang** (access team): the municipality's team that decides what a resident needs. Its
//! formal decision is the **beschikking** (decision); a Wmo **melding** (notification) starts an
//! investigation, the **aanvraag** (formal application) leads to the beschikking.
//!
//! **Toewijzing** (assignment, message 301): the municipality assigns products to a provider for a
//! client, each with an [`AssignmentNumber`] (toewijzingnummer), a **productcategorie** (product
//! category: [`YouthProductCategory`] JZ020 / [`WmoProductCategory`] WMO020), optionally a
//! **productcode** ([`ProductCode`], defined per contract), a [`Period`] (ingangsdatum/einddatum,
//! end inclusive) and a size: **volume** with **eenheid** ([`Unit`]) and **frequentie**
//! ([`Frequency`]), or a **budget** in cents ([`Cents`]). Changes carry a **reden wijziging**
//! ([`YouthChangeReason`], [`WmoChangeReason`]).
//!
//! **Start zorg / stop zorg** (305/307): the provider reports the start and the end of delivery;
//! the end carries a **reden beëindiging** (end reason: [`YouthEndReason`], [`WmoEndReason`]).
//!
//! **Verzoek om toewijzing / verzoek om wijziging** (VOT 315 / VOW 317): the provider asks for a new
//! assignment (e.g. after a referral by a **verwijzer**, [`Referrer`]) or a change (with a
//! [`RequestReason`]). The municipality answers with an **antwoordbericht** (319) holding a
//! [`RequestAnswer`] and, when refused, a [`RefusalReason`]; a granted request is answered by a 301.
//!
//! **Retourbericht** (return message): every message is answered with return codes
//! ([`ReturnCode`], list WJ001); `0200` means accepted (no remark), `0001` technically rejected.
//! Each message has an **identificatie** ([`MessageId`], at most 12 characters).
//!
//! **Bekostiging** (financing, [`Financing`]): **lumpsum** (fixed budget per period),
//! **populatiebekostiging** (population-based) or **PxQ** (price times quantity). These map onto the
//! **uitvoeringsvarianten** (execution variants, [`ExecutionVariant`]): **taakgericht**
//! (task-based, no volume), **outputgericht** (output-based, a product with budget or result) and
//! **inspanningsgericht** (effort-based, volume + unit + frequency).
//!
//! **Werkdagen** (working days, [`WorkingDays`]): the chain's deadlines count working days, which
//! skip weekends and Dutch public holidays; Liberation Day (5 May) only counts in a **lustrum**
//! year (a year divisible by 5).

mod calendar;
mod codes;
mod error;
mod ids;
mod money;
mod period;
mod pseudonym;

pub use calendar::WorkingDays;
pub use codes::{
    ExecutionVariant, Financing, Frequency, Law, Referrer, RefusalReason, RequestAnswer,
    RequestReason, ReturnCode, Unit, WmoChangeReason, WmoEndReason, WmoProductCategory,
    YouthChangeReason, YouthEndReason, YouthProductCategory,
};
pub use error::{FieldError, Fields};
pub use ids::{AgbCode, AssignmentNumber, Bsn, GemeenteCode, KvkNumber, MessageId, ProductCode};
pub use money::Cents;
pub use period::{Period, parse_date};
pub use pseudonym::ClientKey;

#[cfg(test)]
mod no_trimming {
    use super::*;

    /// Every parser takes the value as sent: white space around it breaks the rule, nothing is
    /// trimmed.
    #[test]
    fn parsers_refuse_white_space_around_a_value() {
        for padded in [" {}", "{} ", "\t{}", "{}\n", " {} "] {
            let p = |v: &str| padded.replace("{}", v);
            assert!(
                Bsn::parse(&p("111222333")).is_err(),
                "bsn {:?}",
                p("111222333")
            );
            assert!(AgbCode::parse(&p("12345678")).is_err());
            assert!(GemeenteCode::parse(&p("0222")).is_err());
            assert!(KvkNumber::parse(&p("12345678")).is_err());
            assert!(ProductCode::parse(&p("45A12")).is_err());
            assert!(MessageId::parse(&p("M1")).is_err());
            assert!(AssignmentNumber::parse(&p("12")).is_err());
            assert!(parse_date("d", &p("2026-01-31")).is_err());
            assert!(ClientKey::parse(&p("0123456789abcdef0123456789abcdef")).is_err());
            assert!(YouthProductCategory::parse(&p(YouthProductCategory::TABLE[0].0)).is_err());
        }
        // The same values as sent are fine.
        assert!(Bsn::parse("111222333").is_ok());
        assert!(AgbCode::parse("12345678").is_ok());
        assert!(GemeenteCode::parse("0222").is_ok());
        assert!(ProductCode::parse("45A12").is_ok());
        assert!(MessageId::parse("M1").is_ok());
        assert!(parse_date("d", "2026-01-31").is_ok());
        assert!(ClientKey::parse("0123456789abcdef0123456789abcdef").is_ok());
    }
}
