//! Deterministic seed data for the Achterhoek, loaded through the gRPC API so that every rule of the
//! server applies, and a plain-text report of the region's contract landscape.
//!
//! The seed is re-runnable against the same database: create commands carry deterministic
//! idempotency keys (a replay returns the stored result), and commands without a key are only sent
//! when the current state shows they have not been applied yet.
//!
//! What it loads (names are made up, codes are valid but fictitious):
//! - the 2022 tender per joint segment (IAJ, GWV, HCWV, WIO, WLOG, WWON): registrations, selection,
//!   scoring and award; 64 contracts for 60 distinct providers (three of them consortia);
//! - dyslexia care (10 contracts from 2021-08-01), hospital care (2) and household help (3);
//! - 43 old contracts (2019-01-01, extended once) that ended on 2022-06-30: 40 providers that lost
//!   their contract and 3 that continue under a new one;
//! - lumpsum budgets for 2022 (half year) and 2023, and PxQ tariffs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;

use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1::Financing;
use tonic::transport::Channel;

type Client = RegistrationServiceClient<Channel>;

// ---------------------------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------------------------

const AAL: &str = "0197"; // Aalten
const BER: &str = "1859"; // Berkelland
const BRO: &str = "1876"; // Bronckhorst
const DOE: &str = "0222"; // Doetinchem
const MON: &str = "1955"; // Montferland
const OG: &str = "1586"; // Oost Gelre
const OIJ: &str = "1509"; // Oude IJsselstreek
const WW: &str = "0294"; // Winterswijk
/// Empty = every subsegment of the segment / every municipality that takes part in it.
const ALL: &[&str] = &[];

const OLD_START: &str = "2019-01-01";
const OLD_END: &str = "2022-06-30";
const NEW_START: &str = "2022-07-01";
const DYS_START: &str = "2021-08-01";
const HANDOVER_REASON: &str =
    "Niet gecontracteerd in de nieuwe aanbesteding; cliënten worden overgedragen";

/// The segments bought through the joint 2022 tender, in tender order.
const TENDER_SEGMENTS: &[&str] = &["IAJ", "GWV", "HCWV", "WIO", "WLOG", "WWON"];

/// Inhabitants per municipality (rounded), for budgets.
const INHABITANTS: &[(&str, i64)] = &[
    (AAL, 27_000),
    (BER, 44_000),
    (BRO, 37_000),
    (DOE, 58_000),
    (MON, 36_000),
    (OG, 30_000),
    (OIJ, 39_000),
    (WW, 29_000),
];

/// Yearly lumpsum per inhabitant (euros) per segment, shared by the segment's contracted providers.
const BUDGET_PER_INHABITANT: &[(&str, i64)] = &[
    ("IAJ", 110),
    ("GWV", 60),
    ("HCWV", 28),
    ("WIO", 75),
    ("WWON", 65),
];

/// PxQ tariffs per subsegment: (subsegment, product code, WJ756 unit, price in cents).
const TARIFFS: &[(&str, &str, &str, i64)] = &[
    ("WIO-PV", "PV01", "04", 5_840), // persoonlijke verzorging, per hour
    ("WIO-PV", "PV02", "01", 98),    // persoonlijke verzorging, per minute
    ("WLOG", "LOG01", "14", 16_950), // logeren, per etmaal
    ("WLOG", "LOG02", "16", 5_275),  // logeren, per dagdeel
    ("HBH", "HH01", "04", 3_125),    // hulp bij het huishouden, per hour
    ("HBH", "HH02", "04", 3_390),    // hulp bij het huishouden plus (other product), per hour
];

/// Organisations with their own name: (AGB code, name, legal form). Youth providers' AGB codes
/// start with 03, Wmo providers' with 41.
#[rustfmt::skip]
const ORGS: &[(&str, &str, &str)] = &[
    // Integrale Ambulante Jeugdhulp (and a few in two segments)
    ("03010011", "Stichting Jeugdzorg Oost-Achterhoek", "stichting"),
    ("03010028", "Zorggroep De Berkel", "stichting"),
    ("03010036", "Praktijk Kind & Gezin Doetinchem", "vof"),
    ("03010044", "Jeugdhulp De Slinge BV", "bv"),
    ("03010052", "Stichting Ambulant Team Graafschap", "stichting"),
    ("03010069", "Opvoedpunt Lichtenvoorde", "vof"),
    ("03010077", "Gezinscoach Achterhoek BV", "bv"),
    ("03010085", "Stichting Kompas Jeugd & Gezin", "stichting"),
    ("03010093", "Orthopedagogenpraktijk Groenlo", "eenmanszaak"),
    ("03010108", "Stichting Jeugd-GGZ Gelre-Oost", "stichting"),
    ("03010116", "Dagbehandeling 't Hilgelo BV", "bv"),
    ("03010124", "Stichting Spoedhulp Jeugd Achterhoek", "stichting"),
    ("03010132", "Samen Sterk Jeugdhulp VOF", "vof"),
    ("03010149", "Kinderpraktijk De Oude IJssel", "maatschap"),
    ("03010157", "Stichting Zorgboerderij De Bijvank", "stichting"),
    ("03010165", "Autismecentrum Eibergen BV", "bv"),
    ("03010173", "Psychologenpraktijk Zelhem", "maatschap"),
    ("03010181", "Stichting Gezinsbegeleiding Montferland", "stichting"),
    ("03010199", "Jeugdteam Plus Achterhoek BV", "bv"),
    // Gezins- en Woonvormen, Hoog Complex Weinig Voorkomend
    ("03010207", "Stichting Residentiële Jeugdzorg De Hoven", "stichting"),
    ("03010215", "Gezinshuis De Linde VOF", "vof"),
    ("03010223", "Kamertraining Achterhoek BV", "bv"),
    ("03010231", "Stichting Woongroepen Jeugd Oost-Gelderland", "stichting"),
    ("03010248", "Gezinshuizen Het Nest BV", "bv"),
    ("03010256", "Stichting Jeugdwoonvormen Zutphen-Achterhoek", "stichting"),
    ("03010264", "Stichting Leefgroepen De Kruisberg", "stichting"),
    ("03010272", "Gezinshuis 't Wilgenhof", "eenmanszaak"),
    ("03010289", "Stichting Zelfstandig Wonen Jongeren Achterhoek", "stichting"),
    ("03010297", "Stichting Jeugdzorgplus Oost-Nederland", "stichting"),
    ("03010305", "Intensieve Behandelgroepen Gelderland BV", "bv"),
    // Consortium members (not contracted in their own name)
    ("03020102", "Stichting Maatschappelijk Werk Achterhoek", "stichting"),
    ("03020119", "Ambulante Gezinszorg Berkelland BV", "bv"),
    ("03020127", "Stichting Pleegzorg Gelderland-Oost", "stichting"),
    ("03020135", "Gezinshuizen Achterhoek BV", "bv"),
    ("03020143", "Stichting Netwerkpleegzorg De Graafschap", "stichting"),
    ("41020105", "Stichting Begeleid Wonen Graafschap", "stichting"),
    ("41020113", "Stichting Kansrijk Wonen", "stichting"),
    ("41020121", "Herstelcentrum De Kruisberg BV", "bv"),
    // Subcontractors
    ("03030012", "Zorgboerderij De Vlinderhof VOF", "vof"),
    ("03030029", "Paardencoaching Het Ruiterpad", "eenmanszaak"),
    ("41030018", "Stichting Maatjesproject Achterhoek", "stichting"),
    ("41030026", "Jobcoach Oost VOF", "vof"),
    // Dyslexiezorg
    ("03040015", "Dyslexiepraktijk Achterhoek BV", "bv"),
    ("03040023", "Stichting Lees- en Leercentrum Doetinchem", "stichting"),
    ("03040031", "Praktijk Letterwijs", "eenmanszaak"),
    ("03040048", "Dyslexiecentrum Oost-Gelderland BV", "bv"),
    ("03040056", "RT-praktijk Taalkracht VOF", "vof"),
    ("03040064", "Stichting Leerproblemen Gelre", "stichting"),
    ("03040072", "Onderwijsadvies De Leesboom VOF", "vof"),
    ("03040089", "Logopedie & Dyslexie Groenlo", "maatschap"),
    ("03040097", "Kinderpraktijk Woordenrijk", "eenmanszaak"),
    // Ziekenhuiszorg
    ("03050012", "Stichting Streekziekenhuis Achterhoek", "stichting"),
    ("03050029", "Kinder- en Jeugdpsychiatrie IJsselvallei BV", "bv"),
    // Wmo Integrale Ondersteuning, Logeren, Wonen
    ("41010017", "Wonen & Welzijn IJsselland BV", "bv"),
    ("41010025", "Stichting Zorgplein Achterhoek", "stichting"),
    ("41010033", "Begeleiding Op Maat Oost BV", "bv"),
    ("41010041", "Stichting Dagbesteding 't Wooldse Veen", "stichting"),
    ("41010058", "Thuiszorg Gelre-IJssel BV", "bv"),
    ("41010066", "Stichting Ambulante Begeleiding Graafschap", "stichting"),
    ("41010074", "Zorgboerderij 't Everloo VOF", "vof"),
    ("41010082", "Stichting Wijkverpleging Achterhoek", "stichting"),
    ("41010099", "Herstelacademie Oost-Gelderland", "stichting"),
    ("41010104", "Coachingspraktijk Vooruit VOF", "vof"),
    ("41010112", "Stichting Zorg aan Huis Bronckhorst", "stichting"),
    ("41010129", "Arbeidsmatige Dagbesteding De Werkplaats BV", "bv"),
    ("41010137", "Stichting NAH-Zorg Achterhoek", "stichting"),
    ("41010145", "Wijkzorg Samen BV", "bv"),
    ("41010153", "Stichting Beschermd Thuis Oost", "stichting"),
    ("41010161", "Persoonlijke Assistentie Achterhoek VOF", "vof"),
    ("41010178", "Stichting Welzijn & Zorg Montferland", "stichting"),
    ("41010186", "Logeerhuis De Hessenhoek", "stichting"),
    ("41010194", "Stichting Respijtzorg Achterhoek", "stichting"),
    ("41010202", "Logeerboerderij Het Scholtenhuis VOF", "vof"),
    ("41010219", "Stichting Kortdurend Verblijf Gelre-Oost", "stichting"),
    ("41010227", "Stichting Beschermd Wonen De Graafschap", "stichting"),
    ("41010235", "Beschut Wonen Ulft BV", "bv"),
    ("41010243", "Stichting Woonzorg Psychiatrie Oost", "stichting"),
    ("41010251", "Stichting Herstelhuis Achterhoek", "stichting"),
    ("41010268", "Wooninitiatief De Zonnewende VOF", "vof"),
    ("41010276", "Stichting Lichtpunt Wonen", "stichting"),
    // Hulp bij het Huishouden
    ("41040011", "Thuishulp Achterhoek BV", "bv"),
    ("41040028", "Stichting Huishoudelijke Zorg Berkel & Slinge", "stichting"),
    ("41040036", "Schoon & Zorg Thuis VOF", "vof"),
];

/// Consortia (samenwerkingsverbanden): (AGB code, name, lead, other members).
#[rustfmt::skip]
const CONSORTIA: &[(&str, &str, &str, &[&str])] = &[
    ("03020011", "Samenwerkingsverband Integrale Jeugdhulp Achterhoek", "03010108", &["03020102", "03020119"]),
    ("03020028", "Pleegzorg Achterhoek Samen", "03020127", &["03020135", "03020143"]),
    ("41020014", "Consortium Beschermd Wonen Achterhoek", "41020105", &["41020113", "41020121"]),
];

/// Subcontractors (onderaannemers): (main contractor, subcontractor).
const SUBCONTRACTORS: &[(&str, &str)] = &[
    ("03010028", "03030012"),
    ("03010044", "03030029"),
    ("41010025", "41030018"),
    ("41010129", "41030026"),
    ("41020014", "41010235"),
];

/// The bids that win the 2022 tender: (segment, AGB code, subsegments, municipalities).
#[rustfmt::skip]
const WINNERS: &[(&str, &str, &[&str], &[&str])] = &[
    ("IAJ", "03010011", ALL, ALL),
    ("IAJ", "03010028", ALL, ALL),
    ("IAJ", "03010036", ALL, &[DOE, MON, BRO]),
    ("IAJ", "03010044", ALL, ALL),
    ("IAJ", "03010052", ALL, ALL),
    ("IAJ", "03010069", ALL, &[OG, AAL, WW]),
    ("IAJ", "03010077", ALL, ALL),
    ("IAJ", "03010085", ALL, ALL),
    ("IAJ", "03010093", &["IAJ-ON", "IAJ-BH"], &[OG, BER, WW]),
    ("IAJ", "03010116", &["IAJ-ON", "IAJ-BH"], &[WW, AAL]),
    ("IAJ", "03010124", &["IAJ-SH", "IAJ-BH"], ALL),
    ("IAJ", "03010132", ALL, ALL),
    ("IAJ", "03010149", ALL, &[DOE, MON]),
    ("IAJ", "03010157", &["IAJ-ON"], &[BER, BRO]),
    ("IAJ", "03010165", &["IAJ-ON", "IAJ-BH"], ALL),
    ("IAJ", "03010173", &["IAJ-BH"], ALL),
    ("IAJ", "03010181", ALL, ALL),
    ("IAJ", "03010199", ALL, ALL),
    ("IAJ", "03020011", ALL, ALL),
    ("GWV", "03010028", &["GWV-WZ", "GWV-VG"], ALL),
    ("GWV", "03020028", &["GWV-PZ", "GWV-GH"], ALL),
    ("GWV", "03010207", &["GWV-WZ", "GWV-VG"], ALL),
    ("GWV", "03010215", &["GWV-GH"], &[OIJ, DOE, MON]),
    ("GWV", "03010223", &["GWV-WZ"], ALL),
    ("GWV", "03010231", &["GWV-WZ", "GWV-VG"], ALL),
    ("GWV", "03010248", &["GWV-GH"], ALL),
    ("GWV", "03010256", ALL, ALL),
    ("GWV", "03010264", &["GWV-VG"], ALL),
    ("GWV", "03010272", &["GWV-GH"], &[WW, AAL]),
    ("GWV", "03010289", &["GWV-WZ"], ALL),
    ("HCWV", "03010108", &["HCWV-GGZC"], ALL),
    ("HCWV", "03010207", &["HCWV-VC"], ALL),
    ("HCWV", "03010297", &["HCWV-JZP"], ALL),
    ("HCWV", "03010305", &["HCWV-VC", "HCWV-GGZC"], ALL),
    ("WIO", "41010017", ALL, ALL),
    ("WIO", "41010025", ALL, ALL),
    ("WIO", "41010033", &["WIO-ONT", "WIO-STA", "WIO-BT"], ALL),
    ("WIO", "41010041", &["WIO-ONT", "WIO-STA"], &[WW, AAL]),
    ("WIO", "41010058", ALL, ALL),
    ("WIO", "41010066", &["WIO-ONT", "WIO-STA", "WIO-BT"], ALL),
    ("WIO", "41010074", &["WIO-ONT", "WIO-STA"], &[BER, OG, WW]),
    ("WIO", "41010082", &["WIO-STA", "WIO-PV"], ALL),
    ("WIO", "41010099", &["WIO-ONT"], ALL),
    ("WIO", "41010104", &["WIO-ONT", "WIO-STA"], ALL),
    ("WIO", "41010112", ALL, &[BRO, DOE]),
    ("WIO", "41010129", &["WIO-ONT", "WIO-STA"], ALL),
    ("WIO", "41010137", ALL, ALL),
    ("WIO", "41010145", &["WIO-STA", "WIO-BT", "WIO-PV"], ALL),
    ("WIO", "41010153", &["WIO-STA", "WIO-BT"], ALL),
    ("WIO", "41010161", &["WIO-STA", "WIO-PV"], ALL),
    ("WIO", "41010178", ALL, &[MON, DOE]),
    ("WLOG", "41010074", ALL, ALL),
    ("WLOG", "41010186", ALL, &[BRO, BER]),
    ("WLOG", "41010194", ALL, ALL),
    ("WLOG", "41010202", ALL, ALL),
    ("WLOG", "41010219", ALL, ALL),
    ("WWON", "41010017", &["WWON-BSW"], ALL),
    ("WWON", "41020014", ALL, ALL),
    ("WWON", "41010227", ALL, ALL),
    ("WWON", "41010235", &["WWON-BSW"], &[OIJ, DOE, MON]),
    ("WWON", "41010243", &["WWON-BMW"], ALL),
    ("WWON", "41010251", ALL, ALL),
    ("WWON", "41010268", &["WWON-BSW"], &[WW, AAL, OG]),
    ("WWON", "41010276", ALL, ALL),
];

/// Contracts concluded outside the joint tender: (segment, AGB code, start, municipalities).
#[rustfmt::skip]
const DIRECT: &[(&str, &str, &str, &[&str])] = &[
    ("DYS", "03040015", DYS_START, ALL),
    ("DYS", "03040023", DYS_START, ALL),
    ("DYS", "03040031", DYS_START, &[WW, AAL]),
    ("DYS", "03040048", DYS_START, ALL),
    ("DYS", "03040056", DYS_START, &[BER, OG]),
    ("DYS", "03040064", DYS_START, ALL),
    ("DYS", "03040072", DYS_START, ALL),
    ("DYS", "03040089", DYS_START, &[OG, BER, WW]),
    ("DYS", "03040097", DYS_START, &[BRO, DOE]),
    ("DYS", "03010093", DYS_START, &[OG, BER, WW]),
    ("ZHZ", "03050012", NEW_START, ALL),
    ("ZHZ", "03050029", NEW_START, ALL),
    ("HBH", "41040011", NEW_START, ALL),
    ("HBH", "41040028", NEW_START, ALL),
    ("HBH", "41040036", NEW_START, ALL),
];

/// How a bid fares in the tender; scores are generated to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bid {
    Win,
    /// Admitted, meets the minimum demands, ranked below the award quota.
    Lose,
    /// Admitted, fails the minimum demands.
    Reject,
    NotAdmitted,
}
use Bid::{Lose, NotAdmitted, Reject};

/// Formerly contracted providers (name generated from the segment and a village): (segment,
/// village, how their bid in the 2022 tender fared, if they registered).
#[rustfmt::skip]
const OLD: &[(&str, &str, Option<Bid>)] = &[
    ("IAJ", "Dinxperlo", Some(NotAdmitted)), ("IAJ", "Bredevoort", None),
    ("IAJ", "Lievelde", Some(Lose)), ("IAJ", "Zieuwent", None),
    ("IAJ", "Harreveld", Some(NotAdmitted)), ("IAJ", "Mariënvelde", None),
    ("IAJ", "Beltrum", Some(Reject)), ("IAJ", "Rekken", None),
    ("IAJ", "Haarlo", Some(NotAdmitted)), ("IAJ", "Geesteren", None),
    ("IAJ", "Gelselaar", None), ("IAJ", "Noordijk", None),
    ("IAJ", "Rietmolen", None), ("IAJ", "Hupsel", None),
    ("GWV", "Meddo", Some(NotAdmitted)), ("GWV", "Kotten", None),
    ("GWV", "Ratum", Some(Lose)), ("GWV", "Miste", None),
    ("GWV", "Lintelo", Some(NotAdmitted)), ("GWV", "IJzerlo", None),
    ("GWV", "Barlo", None),
    ("HCWV", "De Heurne", Some(Reject)), ("HCWV", "Varsselder", Some(NotAdmitted)),
    ("WIO", "Westendorp", Some(NotAdmitted)), ("WIO", "Etten", None),
    ("WIO", "Breedenbroek", Some(Lose)), ("WIO", "Megchelen", None),
    ("WIO", "Netterden", Some(NotAdmitted)), ("WIO", "Azewijn", None),
    ("WIO", "Braamt", Some(Reject)), ("WIO", "Kilder", None),
    ("WIO", "Loil", Some(NotAdmitted)), ("WIO", "Stokkum", None),
    ("WIO", "Lengel", None),
    ("WLOG", "Vierakker", Some(Lose)), ("WLOG", "Wichmond", Some(NotAdmitted)),
    ("WWON", "Baak", Some(Reject)), ("WWON", "Toldijk", None),
    ("WWON", "Keijenborg", Some(NotAdmitted)), ("WWON", "Hummelo", None),
];

/// Name patterns of the old providers per segment: (pattern, legal form); `{}` is the village.
#[rustfmt::skip]
const OLD_NAMES: &[(&str, &[(&str, &str)])] = &[
    ("IAJ", &[("Stichting Jeugdhulp {}", "stichting"), ("Gezinsbegeleiding {} BV", "bv"),
              ("Opvoedpraktijk {}", "eenmanszaak"), ("Kindercoach {} VOF", "vof")]),
    ("GWV", &[("Gezinshuis {}", "vof"), ("Stichting Woongroep {}", "stichting")]),
    ("HCWV", &[("Stichting Behandelcentrum {}", "stichting")]),
    ("WIO", &[("Stichting Dagbesteding {}", "stichting"), ("Thuisbegeleiding {} BV", "bv"),
              ("Zorgboerderij {}", "vof")]),
    ("WLOG", &[("Logeerhuis {}", "stichting")]),
    ("WWON", &[("Stichting Beschermd Wonen {}", "stichting"), ("Woonvorm {} BV", "bv")]),
];

/// New providers that also had an old contract in the segment (it ends the day before the new
/// one starts, so the two do not overlap): (AGB code, segment).
const CONTINUING: &[(&str, &str)] = &[
    ("03010011", "IAJ"),
    ("03010028", "IAJ"),
    ("41010017", "WIO"),
];

fn is_youth(segment: &str) -> bool {
    matches!(segment, "IAJ" | "GWV" | "HCWV" | "DYS" | "ZHZ")
}

/// A formerly contracted provider: (AGB code, name, legal form, segment, bid in the 2022 tender).
struct OldProvider {
    agb: String,
    name: String,
    form: &'static str,
    segment: &'static str,
    bid: Option<Bid>,
}

fn old_providers() -> Vec<OldProvider> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    OLD.iter()
        .enumerate()
        .map(|(i, &(segment, village, bid))| {
            let n = seen.entry(segment).or_insert(0);
            let patterns = OLD_NAMES
                .iter()
                .find(|(s, _)| *s == segment)
                .map(|(_, p)| *p)
                .unwrap_or(&[("Zorgaanbieder {}", "stichting")]);
            let (pattern, form) = patterns[*n % patterns.len()];
            *n += 1;
            let prefix = if is_youth(segment) { "0309" } else { "4109" };
            OldProvider {
                agb: format!("{prefix}{:04}", 1003 + 11 * i),
                name: pattern.replace("{}", village),
                form,
                segment,
                bid,
            }
        })
        .collect()
}

/// A deterministic KvK number for an AGB code.
fn kvk(agb: &str) -> String {
    let n: u64 = agb.parse().unwrap_or(0);
    format!("{}", 10_000_000 + (n * 7_919 + 31_337) % 89_999_999)
}

/// A tiny fixed-seed LCG, seeded from a string (FNV-1a).
struct Lcg(u64);

impl Lcg {
    fn new(seed: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
}

/// Selection score and award scores (meets minimum demands, cooperation, lead time, scaling down)
/// that make a bid fare as planned: winners outscore losers on both.
fn scores(segment: &str, agb: &str, bid: Bid) -> (u32, bool, [u32; 3]) {
    let mut r = Lcg::new(&format!("{segment}/{agb}"));
    let (sel, ok, lo, hi) = match bid {
        Bid::Win => (r.between(70, 95), true, 6, 10),
        Bid::Lose => (r.between(60, 68), true, 3, 5),
        Bid::Reject => (r.between(70, 90), false, 4, 8),
        Bid::NotAdmitted => (r.between(35, 55), true, 2, 5),
    };
    (
        sel,
        ok,
        [r.between(lo, hi), r.between(lo, hi), r.between(lo, hi)],
    )
}

/// A planned registration in a tender.
struct PlannedBid {
    agb: String,
    subsegments: Vec<String>,
    municipalities: Vec<String>,
    bid: Bid,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn planned_bids(segment: &str, old: &[OldProvider]) -> Vec<PlannedBid> {
    let winners = WINNERS
        .iter()
        .filter(|w| w.0 == segment)
        .map(|&(_, agb, subs, munis)| PlannedBid {
            agb: agb.to_owned(),
            subsegments: strings(subs),
            municipalities: strings(munis),
            bid: Bid::Win,
        });
    let others = old.iter().filter(|o| o.segment == segment).filter_map(|o| {
        o.bid.map(|bid| PlannedBid {
            agb: o.agb.clone(),
            subsegments: vec![],
            municipalities: vec![],
            bid,
        })
    });
    // Interleave deterministically so that losers do not all register last.
    let mut all: Vec<PlannedBid> = winners.chain(others).collect();
    all.sort_by_key(|b| Lcg::new(&format!("order/{segment}/{}", b.agb)).next());
    all
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

fn failed(what: impl Display) -> impl FnOnce(tonic::Status) -> String {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

async fn connect(endpoint: &str) -> Result<Client, String> {
    RegistrationServiceClient::connect(endpoint.to_owned())
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))
}

#[derive(Default)]
struct Counts {
    budgets_set: usize,
    budgets_unchanged: usize,
    tariffs_set: usize,
    tariffs_unchanged: usize,
    changes: usize,
}

pub async fn load(endpoint: &str) -> Result<(), String> {
    let mut c = connect(endpoint).await?;
    let catalogue = c
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .map_err(failed("GetCatalogue"))?
        .into_inner();
    let financing: HashMap<String, i32> = catalogue
        .lots
        .iter()
        .flat_map(|l| &l.segments)
        .flat_map(|s| &s.subsegments)
        .map(|ss| (ss.code.clone(), ss.financing))
        .collect();
    let segment_name = |code: &str| {
        catalogue
            .lots
            .iter()
            .flat_map(|l| &l.segments)
            .find(|s| s.code == code)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| code.to_owned())
    };
    let mut n = Counts::default();

    // Providers.
    let old = old_providers();
    let orgs = ORGS
        .iter()
        .map(|&(a, name, form)| (a.to_owned(), name.to_owned(), form))
        .chain(old.iter().map(|o| (o.agb.clone(), o.name.clone(), o.form)));
    let mut registered = 0;
    for (agb, name, form) in orgs {
        c.register_provider(pb::RegisterProviderRequest {
            idempotency_key: format!("seed-provider-{agb}"),
            agb_code: agb.clone(),
            name,
            legal_form: form.to_owned(),
            kvk_number: kvk(&agb),
        })
        .await
        .map_err(failed(format!("RegisterProvider {agb}")))?;
        registered += 1;
    }
    for &(agb, name, lead, members) in CONSORTIA {
        c.form_consortium(pb::FormConsortiumRequest {
            idempotency_key: format!("seed-consortium-{agb}"),
            agb_code: agb.to_owned(),
            name: name.to_owned(),
            kvk_number: kvk(agb),
            lead_agb_code: lead.to_owned(),
            member_agb_codes: strings(members),
        })
        .await
        .map_err(failed(format!("FormConsortium {agb}")))?;
    }
    for &(main, sub) in SUBCONTRACTORS {
        let detail = c
            .get_provider(pb::GetProviderRequest {
                agb_code: main.to_owned(),
            })
            .await
            .map_err(failed(format!("GetProvider {main}")))?
            .into_inner();
        let has = detail
            .provider
            .is_some_and(|p| p.subcontractor_agb_codes.iter().any(|s| s == sub));
        if !has {
            c.add_subcontractor(pb::AddSubcontractorRequest {
                main_agb_code: main.to_owned(),
                subcontractor_agb_code: sub.to_owned(),
                meets_minimum_demands: true,
            })
            .await
            .map_err(failed(format!("AddSubcontractor {main} <- {sub}")))?;
            n.changes += 1;
        }
    }
    println!(
        "providers: {registered} organisations ({} formerly contracted), {} consortia, {} subcontractor links",
        old.len(),
        CONSORTIA.len(),
        SUBCONTRACTORS.len()
    );

    // Old contracts: 2019-01-01, extended once to bridge the gap, ended on 2022-06-30.
    let old_contracts = old
        .iter()
        .map(|o| (o.agb.clone(), o.segment))
        .chain(CONTINUING.iter().map(|&(a, s)| (a.to_owned(), s)));
    let mut ended = 0;
    for (agb, segment) in old_contracts {
        let mut k = c
            .conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("seed-contract-old-{agb}-{segment}"),
                agb_code: agb.clone(),
                segment_code: segment.to_owned(),
                subsegment_codes: vec![],
                municipalities: vec![],
                start: OLD_START.to_owned(),
            })
            .await
            .map_err(failed(format!("ConcludeContract old {agb} {segment}")))?
            .into_inner();
        if k.terminated_on.is_empty() && k.extensions == 0 {
            k = c
                .extend_contract(pb::ExtendContractRequest {
                    contract_id: k.id.clone(),
                })
                .await
                .map_err(failed(format!("ExtendContract {}", k.id)))?
                .into_inner();
            n.changes += 1;
        }
        if k.terminated_on.is_empty() {
            c.terminate_contract(pb::TerminateContractRequest {
                contract_id: k.id.clone(),
                end_date: OLD_END.to_owned(),
                reason: HANDOVER_REASON.to_owned(),
            })
            .await
            .map_err(failed(format!("TerminateContract {}", k.id)))?;
            n.changes += 1;
        }
        ended += 1;
    }
    println!("old contracts: {ended} from {OLD_START}, extended once, ended on {OLD_END}");

    // The 2022 tender, per joint segment.
    let mut contracts: Vec<pb::Contract> = Vec::new();
    for &segment in TENDER_SEGMENTS {
        let (tender, awarded) =
            run_tender(&mut c, segment, &segment_name(segment), &old, &mut n).await?;
        let count = |st: pb::RegistrationStatus| {
            tender
                .registrations
                .iter()
                .filter(|r| r.status() == st)
                .count()
        };
        println!(
            "tender {segment:<5} {:>2} registrations, {:>2} not admitted, {:>2} rejected (minimum demands), {:>2} not awarded, {:>2} awarded -> {} contracts",
            tender.registrations.len(),
            count(pb::RegistrationStatus::NotAdmitted),
            count(pb::RegistrationStatus::Rejected),
            count(pb::RegistrationStatus::NotAwarded),
            count(pb::RegistrationStatus::Awarded),
            awarded.len()
        );
        contracts.extend(awarded);
    }
    let distinct: BTreeSet<&str> = contracts.iter().map(|k| k.agb_code.as_str()).collect();
    println!(
        "tender contracts: {} for {} distinct providers",
        contracts.len(),
        distinct.len()
    );

    // Contracts outside the joint tender.
    let mut direct: BTreeMap<&str, usize> = BTreeMap::new();
    for &(segment, agb, start, munis) in DIRECT {
        let k = c
            .conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("seed-contract-{}-{agb}", segment.to_lowercase()),
                agb_code: agb.to_owned(),
                segment_code: segment.to_owned(),
                subsegment_codes: vec![],
                municipalities: strings(munis),
                start: start.to_owned(),
            })
            .await
            .map_err(failed(format!("ConcludeContract {agb} {segment}")))?
            .into_inner();
        *direct.entry(segment).or_default() += 1;
        contracts.push(k);
    }
    let direct: Vec<String> = direct.iter().map(|(s, k)| format!("{s} {k}")).collect();
    println!("direct contracts: {}", direct.join(", "));

    // Budgets and tariffs.
    set_budgets(&mut c, &contracts, &financing, &mut n).await?;
    set_tariffs(&mut c, &contracts, &mut n).await?;
    println!(
        "lumpsum budgets: {} set, {} unchanged; tariffs: {} set, {} unchanged",
        n.budgets_set, n.budgets_unchanged, n.tariffs_set, n.tariffs_unchanged
    );
    // Extensions in force today: after the mid-term evaluation of 2024 the region extended the
    // 2022 contracts once (to 2027-06-30) and the dyslexia contracts of 2021 twice (to 2028-07-31).
    let mut extended = 0;
    for k in &contracts {
        let target = if k.segment_code == "DYS" { 2 } else { 1 };
        let mut current = c
            .get_contract(pb::GetContractRequest {
                contract_id: k.id.clone(),
            })
            .await
            .map_err(failed(format!("GetContract {}", k.id)))?
            .into_inner();
        while current.extensions < target && current.terminated_on.is_empty() {
            current = c
                .extend_contract(pb::ExtendContractRequest {
                    contract_id: k.id.clone(),
                })
                .await
                .map_err(failed(format!("ExtendContract {}", k.id)))?
                .into_inner();
            extended += 1;
            n.changes += 1;
        }
    }
    println!("extensions: {extended} made in this run (2022 contracts once, dyslexia twice)");
    println!(
        "seed loaded ({} state changes without idempotency key in this run)",
        n.changes + n.budgets_set + n.tariffs_set
    );
    Ok(())
}

async fn run_tender(
    c: &mut Client,
    segment: &str,
    name: &str,
    old: &[OldProvider],
    n: &mut Counts,
) -> Result<(pb::Tender, Vec<pb::Contract>), String> {
    let bids = planned_bids(segment, old);
    let award_quota = bids.iter().filter(|b| b.bid == Bid::Win).count() as u32;
    let selection_quota = bids.iter().filter(|b| b.bid != NotAdmitted).count() as u32;
    let mut t = c
        .open_tender(pb::OpenTenderRequest {
            idempotency_key: format!("seed-tender-{segment}"),
            name: format!("Aanbesteding Jeugdhulp en Wmo Achterhoek 2022 - {name}"),
            segment_code: segment.to_owned(),
            selection_quota,
            award_quota,
            contract_start: NEW_START.to_owned(),
        })
        .await
        .map_err(failed(format!("OpenTender {segment}")))?
        .into_inner();
    let tender_id = t.id.clone();
    if t.status() == pb::TenderStatus::Open {
        for b in &bids {
            if t.registrations.iter().any(|r| r.agb_code == b.agb) {
                continue;
            }
            let (selection_score, _, _) = scores(segment, &b.agb, b.bid);
            t = c
                .submit_registration(pb::SubmitRegistrationRequest {
                    tender_id: tender_id.clone(),
                    agb_code: b.agb.clone(),
                    subsegment_codes: b.subsegments.clone(),
                    municipalities: b.municipalities.clone(),
                    selection_score,
                })
                .await
                .map_err(failed(format!("SubmitRegistration {segment} {}", b.agb)))?
                .into_inner();
            n.changes += 1;
        }
        t = c
            .select_registrations(pb::SelectRegistrationsRequest {
                tender_id: tender_id.clone(),
            })
            .await
            .map_err(failed(format!("SelectRegistrations {segment}")))?
            .into_inner();
        n.changes += 1;
    }
    if t.status() == pb::TenderStatus::Selected {
        let to_score: Vec<String> = t
            .registrations
            .iter()
            .filter(|r| r.status() == pb::RegistrationStatus::Admitted && !r.scored)
            .map(|r| r.agb_code.clone())
            .collect();
        for agb in to_score {
            let bid = bids
                .iter()
                .find(|b| b.agb == agb)
                .map_or(Bid::Lose, |b| b.bid);
            let (_, ok, [cooperation, lead_time, scaling_down]) = scores(segment, &agb, bid);
            c.score_bid(pb::ScoreBidRequest {
                tender_id: tender_id.clone(),
                agb_code: agb.clone(),
                meets_minimum_demands: ok,
                cooperation,
                lead_time,
                scaling_down,
            })
            .await
            .map_err(failed(format!("ScoreBid {segment} {agb}")))?;
            n.changes += 1;
        }
        let r = c
            .award_tender(pb::AwardTenderRequest {
                tender_id: tender_id.clone(),
            })
            .await
            .map_err(failed(format!("AwardTender {segment}")))?
            .into_inner();
        n.changes += 1;
        if let Some(awarded) = r.tender {
            t = awarded;
        }
    }
    let contracts = c
        .list_contracts(pb::ListContractsRequest {
            segment_code: segment.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(failed(format!("ListContracts {segment}")))?
        .into_inner()
        .contracts
        .into_iter()
        .filter(|k| k.tender_id == tender_id)
        .collect();
    Ok((t, contracts))
}

fn lookup(table: &[(&str, i64)], key: &str) -> i64 {
    table.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| *v)
}

/// Lumpsum budgets for 2022 (July to December) and 2023: the segment's yearly amount per
/// inhabitant times the municipality's size, shared by the contracts covering it in proportion to
/// the number of lumpsum subsegments they cover and a fixed per-provider factor (80..120%).
async fn set_budgets(
    c: &mut Client,
    contracts: &[pb::Contract],
    financing: &HashMap<String, i32>,
    n: &mut Counts,
) -> Result<(), String> {
    let lumpsum = Financing::Lumpsum as i32;
    let weight = |k: &pb::Contract| -> i64 {
        let subs = k
            .subsegment_codes
            .iter()
            .filter(|s| financing.get(*s) == Some(&lumpsum))
            .count() as i64;
        subs * i64::from(Lcg::new(&format!("budget/{}", k.agb_code)).between(80, 120))
    };
    let mut total_weight: HashMap<(&str, &str), i64> = HashMap::new();
    for k in contracts {
        for m in &k.municipalities {
            *total_weight
                .entry((k.segment_code.as_str(), m.as_str()))
                .or_default() += weight(k);
        }
    }
    for k in contracts {
        let w = weight(k);
        let rate = lookup(BUDGET_PER_INHABITANT, &k.segment_code);
        if w == 0 || rate == 0 {
            continue;
        }
        for m in &k.municipalities {
            let total = total_weight
                .get(&(k.segment_code.as_str(), m.as_str()))
                .copied()
                .unwrap_or(w)
                .max(1);
            let yearly = rate * lookup(INHABITANTS, m) * 100 * w / total;
            // 2022: half a year; 2023: a full year with 4% indexation; rounded to 1,000 euros.
            let round = |cents: i64| (cents + 50_000) / 100_000 * 100_000;
            for (year, amount) in [(2022, round(yearly / 2)), (2023, round(yearly * 104 / 100))] {
                let same = k
                    .budgets
                    .iter()
                    .any(|b| &b.municipality == m && b.year == year && b.amount_cents == amount);
                if same {
                    n.budgets_unchanged += 1;
                    continue;
                }
                c.set_lumpsum_budget(pb::SetLumpsumBudgetRequest {
                    contract_id: k.id.clone(),
                    municipality: m.clone(),
                    year,
                    amount_cents: amount,
                })
                .await
                .map_err(failed(format!(
                    "SetLumpsumBudget {} {} {m} {year}",
                    k.agb_code, k.segment_code
                )))?;
                n.budgets_set += 1;
            }
        }
    }
    Ok(())
}

async fn set_tariffs(
    c: &mut Client,
    contracts: &[pb::Contract],
    n: &mut Counts,
) -> Result<(), String> {
    for k in contracts {
        for &(sub, product, unit, price) in TARIFFS {
            if !k.subsegment_codes.iter().any(|s| s == sub) {
                continue;
            }
            let same = k
                .tariffs
                .iter()
                .any(|t| t.product_code == product && t.unit == unit && t.price_cents == price);
            if same {
                n.tariffs_unchanged += 1;
                continue;
            }
            c.set_tariff(pb::SetTariffRequest {
                contract_id: k.id.clone(),
                product_code: product.to_owned(),
                unit: unit.to_owned(),
                price_cents: price,
            })
            .await
            .map_err(failed(format!(
                "SetTariff {} {} {product}",
                k.agb_code, k.segment_code
            )))?;
            n.tariffs_set += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The landscape
// ---------------------------------------------------------------------------------------------

/// Renders a plain-text table. Header cells may hold a `\n` for a second line; columns listed in
/// `left` are left-aligned, the others right-aligned.
fn table(head: &[&str], rows: &[Vec<String>], left: &[usize]) -> String {
    let cols = head.len();
    let head_lines: Vec<Vec<&str>> = head.iter().map(|h| h.split('\n').collect()).collect();
    let depth = head_lines.iter().map(Vec::len).max().unwrap_or(1);
    let mut width: Vec<usize> = head_lines
        .iter()
        .map(|l| l.iter().map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, w) in width.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if i > 0 {
                out.push_str("  ");
            }
            if left.contains(&i) {
                out.push_str(cell);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(cell);
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = String::new();
    for d in 0..depth {
        // Multi-line headers are bottom-aligned.
        let cells: Vec<String> = head_lines
            .iter()
            .map(|l| {
                let skip = depth - l.len();
                if d < skip {
                    String::new()
                } else {
                    l[d - skip].to_owned()
                }
            })
            .collect();
        out.push_str(&line(&cells));
    }
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Whole euros with dots between thousands: `€ 1.234.567`.
fn euros(cents: i64) -> String {
    let e = ((cents + 50) / 100).to_string();
    let mut s = String::new();
    for (i, ch) in e.chars().enumerate() {
        if i > 0 && (e.len() - i).is_multiple_of(3) {
            s.push('.');
        }
        s.push(ch);
    }
    format!("€ {s}")
}

fn financing_label(s: &pb::Segment) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for ss in &s.subsegments {
        let l = match Financing::try_from(ss.financing) {
            Ok(Financing::Lumpsum) => "lumpsum",
            Ok(Financing::PopulationBased) => "populatiebekostiging",
            Ok(Financing::Pxq) => "PxQ",
            Ok(Financing::SeparateContract) => "apart contract",
            _ => "?",
        };
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels.join(" + ")
}

pub async fn print_landscape(endpoint: &str) -> Result<(), String> {
    let mut c = connect(endpoint).await?;
    let cat = c
        .get_catalogue(pb::GetCatalogueRequest {})
        .await
        .map_err(failed("GetCatalogue"))?
        .into_inner();
    let providers: HashMap<String, pb::Provider> = c
        .list_providers(pb::ListProvidersRequest {})
        .await
        .map_err(failed("ListProviders"))?
        .into_inner()
        .providers
        .into_iter()
        .map(|p| (p.agb_code.clone(), p))
        .collect();
    let list = async |c: &mut Client, date: &str| -> Result<Vec<pb::Contract>, String> {
        Ok(c.list_contracts(pb::ListContractsRequest {
            active_on: date.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(failed(format!("ListContracts active on {date}")))?
        .into_inner()
        .contracts)
    };
    let active = list(&mut c, NEW_START).await?;
    let ended: Vec<pb::Contract> = list(&mut c, OLD_END)
        .await?
        .into_iter()
        .filter(|k| k.period.as_ref().is_some_and(|p| p.end == OLD_END))
        .collect();

    let segments: Vec<(&pb::Lot, &pb::Segment)> = cat
        .lots
        .iter()
        .flat_map(|l| l.segments.iter().map(move |s| (l, s)))
        .collect();
    let munis = &cat.municipalities;
    let of = |seg: &str| -> Vec<&pb::Contract> {
        active.iter().filter(|k| k.segment_code == seg).collect()
    };
    let name_of = |agb: &str| {
        providers
            .get(agb)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    // "Oude IJsselstreek" -> "Oude\nIJsselstreek": two-line headers keep the matrix narrow.
    let muni_heads: Vec<String> = munis
        .iter()
        .map(|m| m.name.replacen(' ', "\n", 1))
        .collect();

    println!(
        "Contract landscape of the region {} (contracts active on {NEW_START})\n",
        cat.region
    );
    let rows: Vec<Vec<String>> = segments
        .iter()
        .map(|(l, s)| {
            let excluded: Vec<&str> = munis
                .iter()
                .filter(|m| !s.municipalities.contains(&m.code))
                .map(|m| m.name.as_str())
                .collect();
            vec![
                s.code.clone(),
                l.name.clone(),
                s.name.clone(),
                financing_label(s),
                if excluded.is_empty() {
                    "all 8".into()
                } else {
                    format!("all but {}", excluded.join(", "))
                },
            ]
        })
        .collect();
    println!("Segments");
    print!(
        "{}",
        table(
            &["Code", "Lot", "Segment", "Financing", "Municipalities"],
            &rows,
            &[0, 1, 2, 3, 4]
        )
    );

    // 1. Providers per segment and municipality.
    println!("\n1. Contracted providers per segment and municipality on {NEW_START}");
    println!("   ('-' = the municipality does not buy the segment through the joint contracts)\n");
    let mut head: Vec<&str> = vec!["Segment"];
    head.extend(muni_heads.iter().map(String::as_str));
    head.extend(["Distinct\nproviders", "Name"]);
    let mut rows = Vec::new();
    for (_, s) in &segments {
        let mut row = vec![s.code.clone()];
        for m in munis {
            if !s.municipalities.contains(&m.code) {
                row.push("-".into());
                continue;
            }
            let n: BTreeSet<&str> = of(&s.code)
                .into_iter()
                .filter(|k| k.municipalities.contains(&m.code))
                .map(|k| k.agb_code.as_str())
                .collect();
            row.push(n.len().to_string());
        }
        let all: BTreeSet<&str> = of(&s.code)
            .into_iter()
            .map(|k| k.agb_code.as_str())
            .collect();
        row.push(all.len().to_string());
        row.push(s.name.clone());
        rows.push(row);
    }
    let mut row = vec!["All".to_owned()];
    for m in munis {
        let n: BTreeSet<&str> = active
            .iter()
            .filter(|k| k.municipalities.contains(&m.code))
            .map(|k| k.agb_code.as_str())
            .collect();
        row.push(n.len().to_string());
    }
    let all: BTreeSet<&str> = active.iter().map(|k| k.agb_code.as_str()).collect();
    row.push(all.len().to_string());
    row.push("(distinct providers over all segments)".into());
    rows.push(row);
    print!("{}", table(&head, &rows, &[0, 10]));

    // 2. Lumpsum budgets 2022.
    println!("\n2. Lumpsum budgets 2022 (July to December) per segment and municipality\n");
    let mut head: Vec<&str> = vec!["Segment"];
    head.extend(muni_heads.iter().map(String::as_str));
    head.push("Total");
    let budget = |k: &pb::Contract, m: Option<&str>| -> i64 {
        k.budgets
            .iter()
            .filter(|b| b.year == 2022 && m.is_none_or(|m| b.municipality == m))
            .map(|b| b.amount_cents)
            .sum()
    };
    let mut rows = Vec::new();
    let mut column_totals = vec![0i64; munis.len() + 1];
    for (_, s) in &segments {
        let total: i64 = of(&s.code).into_iter().map(|k| budget(k, None)).sum();
        if total == 0 {
            continue;
        }
        let mut row = vec![s.code.clone()];
        for (i, m) in munis.iter().enumerate() {
            if !s.municipalities.contains(&m.code) {
                row.push("-".into());
                continue;
            }
            let v: i64 = of(&s.code)
                .into_iter()
                .map(|k| budget(k, Some(&m.code)))
                .sum();
            column_totals[i] += v;
            row.push(euros(v));
        }
        column_totals[munis.len()] += total;
        row.push(euros(total));
        rows.push(row);
    }
    let mut row = vec!["Total".to_owned()];
    row.extend(column_totals.iter().map(|v| euros(*v)));
    rows.push(row);
    print!("{}", table(&head, &rows, &[0]));

    // 3. End dates and extension options.
    println!("\n3. Contract terms and extension options (contracts active on {NEW_START})\n");
    let mut groups: BTreeMap<(usize, String, String, String, u32, String), usize> = BTreeMap::new();
    for k in &active {
        let pos = segments
            .iter()
            .position(|(_, s)| s.code == k.segment_code)
            .unwrap_or(usize::MAX);
        let (start, end) = k
            .period
            .as_ref()
            .map(|p| (p.start.clone(), p.end.clone()))
            .unwrap_or_default();
        let latest = if k.latest_possible_end.is_empty() {
            "-".to_owned()
        } else {
            k.latest_possible_end.clone()
        };
        *groups
            .entry((
                pos,
                start,
                k.initial_end.clone(),
                end,
                k.extensions_left,
                latest,
            ))
            .or_default() += 1;
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|((pos, start, initial, end, left, latest), count)| {
            let s = segments.get(pos).map(|(_, s)| *s);
            vec![
                s.map(|s| s.code.clone()).unwrap_or_default(),
                count.to_string(),
                start,
                initial,
                end,
                left.to_string(),
                latest,
                s.map(|s| s.name.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "Segment",
                "Contracts",
                "Start",
                "Initial end",
                "Current end",
                "Extensions\nleft",
                "Latest\npossible end",
                "Name"
            ],
            &rows,
            &[0, 2, 3, 4, 6, 7]
        )
    );

    // 4. Contracts that ended on 2022-06-30.
    println!("\n4. Contracts that ended on {OLD_END}: clients to hand over\n");
    let continues = |k: &pb::Contract| {
        active
            .iter()
            .any(|a| a.agb_code == k.agb_code && a.segment_code == k.segment_code)
    };
    let mut rows = Vec::new();
    for (_, s) in &segments {
        let here: Vec<&pb::Contract> = ended.iter().filter(|k| k.segment_code == s.code).collect();
        if here.is_empty() {
            continue;
        }
        let providers: BTreeSet<&str> = here.iter().map(|k| k.agb_code.as_str()).collect();
        let hand_over = here.iter().filter(|k| !continues(k)).count();
        rows.push(vec![
            s.code.clone(),
            here.len().to_string(),
            providers.len().to_string(),
            hand_over.to_string(),
            (here.len() - hand_over).to_string(),
            s.name.clone(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "Segment",
                "Ended\ncontracts",
                "Providers",
                "Hand over\n(no new contract)",
                "Continue\n(new contract)",
                "Name"
            ],
            &rows,
            &[0, 5]
        )
    );
    println!();
    let mut rows: Vec<Vec<String>> = ended
        .iter()
        .map(|k| {
            vec![
                k.segment_code.clone(),
                k.agb_code.clone(),
                name_of(&k.agb_code),
                if continues(k) {
                    "continues under a new contract".into()
                } else {
                    "clients to hand over".into()
                },
            ]
        })
        .collect();
    rows.sort_by(|a, b| (&a[3], &a[0], &a[2]).cmp(&(&b[3], &b[0], &b[2])));
    print!(
        "{}",
        table(
            &["Segment", "AGB", "Provider", "Status"],
            &rows,
            &[0, 1, 2, 3]
        )
    );

    // 5. Totals.
    println!("\n5. Totals\n");
    let distinct = |segs: &[&str]| -> BTreeSet<&str> {
        active
            .iter()
            .filter(|k| segs.contains(&k.segment_code.as_str()))
            .map(|k| k.agb_code.as_str())
            .collect()
    };
    let joint = distinct(TENDER_SEGMENTS);
    let mut with_dys: Vec<&str> = TENDER_SEGMENTS.to_vec();
    with_dys.push("DYS");
    let with_dys = distinct(&with_dys);
    let consortia = joint
        .iter()
        .filter(|a| {
            providers
                .get(**a)
                .is_some_and(|p| p.kind() == pb::ProviderKind::Consortium)
        })
        .count();
    let now: BTreeSet<&str> = active.iter().map(|k| k.agb_code.as_str()).collect();
    let former: BTreeSet<&str> = ended
        .iter()
        .map(|k| k.agb_code.as_str())
        .filter(|a| !now.contains(a))
        .collect();
    let rows = vec![
        vec![
            "Contracted providers, joint lots (IAJ, GWV, HCWV, WIO, WLOG, WWON)".to_owned(),
            joint.len().to_string(),
        ],
        vec!["  of which consortia".to_owned(), consortia.to_string()],
        vec![
            "Contracted providers, joint lots + dyslexia".to_owned(),
            with_dys.len().to_string(),
        ],
        vec![
            "Contracted providers, all segments (incl. hospital care, household help)".to_owned(),
            now.len().to_string(),
        ],
        vec![
            format!("Providers whose contracts ended on {OLD_END}"),
            ended
                .iter()
                .map(|k| k.agb_code.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                .to_string(),
        ],
        vec![
            "  formerly contracted (no contract any more)".to_owned(),
            former.len().to_string(),
        ],
    ];
    print!("{}", table(&["", "Providers"], &rows, &[0]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tender::{BidScore, Registration, RegistrationStatus, Tender};
    use rz_domain::AgbCode;

    fn all_codes() -> Vec<String> {
        ORGS.iter()
            .map(|o| o.0.to_owned())
            .chain(old_providers().into_iter().map(|o| o.agb))
            .chain(CONSORTIA.iter().map(|c| c.0.to_owned()))
            .collect()
    }

    #[test]
    fn codes_are_valid_and_unique_and_every_reference_is_registered() {
        let codes = all_codes();
        let unique: BTreeSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        let kvks: BTreeSet<String> = codes.iter().map(|c| kvk(c)).collect();
        assert_eq!(kvks.len(), codes.len());
        for c in &codes {
            assert!(AgbCode::parse(c).is_ok(), "{c}");
            assert!(rz_domain::KvkNumber::parse(&kvk(c)).is_ok(), "{c}");
        }
        let names: BTreeSet<String> = ORGS
            .iter()
            .map(|o| o.1.to_owned())
            .chain(old_providers().into_iter().map(|o| o.name))
            .collect();
        assert_eq!(names.len(), ORGS.len() + OLD.len());
        let known = |a: &str| codes.iter().any(|c| c == a);
        for a in WINNERS
            .iter()
            .map(|w| w.1)
            .chain(DIRECT.iter().map(|d| d.1))
        {
            assert!(known(a), "{a}");
        }
        for (_, _, lead, members) in CONSORTIA {
            assert!(known(lead));
            assert!(members.iter().all(|m| known(m)));
        }
        for (m, s) in SUBCONTRACTORS {
            assert!(known(m) && known(s));
        }
        assert_eq!(OLD.len(), 40);
    }

    #[test]
    fn the_planned_tenders_award_the_planned_winners() {
        let old = old_providers();
        let start = chrono::NaiveDate::from_ymd_opt(2022, 7, 1).unwrap();
        let mut contracted = BTreeSet::new();
        for &segment in TENDER_SEGMENTS {
            let bids = planned_bids(segment, &old);
            let award = bids.iter().filter(|b| b.bid == Bid::Win).count() as u32;
            let select = bids.iter().filter(|b| b.bid != NotAdmitted).count() as u32;
            assert!(select > award, "{segment}");
            assert!(bids.iter().any(|b| b.bid == NotAdmitted), "{segment}");
            let mut t = Tender::open(
                uuid::Uuid::nil(),
                segment.into(),
                segment.into(),
                select,
                award,
                start,
            )
            .unwrap();
            for b in &bids {
                t.submit(Registration {
                    agb_code: AgbCode::parse(&b.agb).unwrap(),
                    subsegments: vec![],
                    municipalities: vec![],
                    selection_score: scores(segment, &b.agb, b.bid).0,
                    status: RegistrationStatus::Submitted,
                    score: None,
                    rank: None,
                })
                .unwrap();
            }
            t.select().unwrap();
            for b in &bids {
                let admitted = t.registrations.iter().any(|r| {
                    r.agb_code.as_str() == b.agb && r.status == RegistrationStatus::Admitted
                });
                assert_eq!(admitted, b.bid != NotAdmitted, "{segment} {}", b.agb);
                if admitted {
                    let (_, ok, [c, l, s]) = scores(segment, &b.agb, b.bid);
                    let code = AgbCode::parse(&b.agb).unwrap();
                    t.score(&code, BidScore::new(ok, c, l, s).unwrap()).unwrap();
                }
            }
            let awarded: BTreeSet<String> = t
                .award()
                .unwrap()
                .iter()
                .map(|r| r.agb_code.to_string())
                .collect();
            let planned: BTreeSet<String> = bids
                .iter()
                .filter(|b| b.bid == Bid::Win)
                .map(|b| b.agb.clone())
                .collect();
            assert_eq!(awarded, planned, "{segment}");
            contracted.extend(awarded);
        }
        assert_eq!(contracted.len(), 60);
    }

    #[test]
    fn euros_and_tables_format() {
        assert_eq!(euros(123_456_789), "€ 1.234.568");
        assert_eq!(euros(0), "€ 0");
        let t = table(&["A", "B\nC"], &[vec!["x".into(), "10".into()]], &[0]);
        assert_eq!(t, "    B\nA   C\n-  --\nx  10\n");
    }
}
