//! Bounded fuzzing of the four readers (305, 307, 315, 317; issue 14): generated inputs (random
//! bytes, and the valid test messages mutated: flipped bytes, truncations, duplicated and dropped
//! elements, huge and odd numbers and dates, injected DTDs, entities, deep nesting, invalid UTF-8)
//! fed to every reader. Each reader must return, never panic, and every rejection must be a clean
//! [`ParseError`]: an element path, a rule, and a short message (the input is not echoed).
//!
//! Bounded: `RZ_FUZZ_CASES` inputs (default 5,000) or `RZ_FUZZ_SECONDS` (default 20), whichever
//! comes first. The generator is seeded (`RZ_FUZZ_SEED`, default fixed), so a failure repeats;
//! the failing input is written to `target/fuzz-failures/` and its seed and case number printed.
//! Prints cases per second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rz_istandaarden::{ParseError, parse_305, parse_307, parse_315, parse_317};

/// SplitMix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        (self.next() & 0xff) as u8
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for name in [
        "jw305_valid.xml",
        "jw307_valid.xml",
        "jw315_valid.xml",
        "jw317_valid.xml",
        "wmo305_valid.xml",
        "wmo307_valid.xml",
        "wmo315_valid.xml",
        "wmo317_valid.xml",
    ] {
        out.push(std::fs::read(dir.join(name)).unwrap());
    }
    let invalid = dir.join("invalid");
    let mut names: Vec<_> = std::fs::read_dir(&invalid)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        out.push(std::fs::read(path).unwrap());
    }
    out
}

/// The byte range of a random element `<Name ...>...</Name>` (to the first closing tag of the
/// same name), if the input has one.
fn element(xml: &[u8], rng: &mut Rng) -> Option<(usize, usize)> {
    let starts: Vec<usize> = xml
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] == b'<' && w[1].is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        return None;
    }
    // A few tries: a tag without a closing one (self-closing, or broken by a mutation) is skipped.
    for _ in 0..4 {
        let start = *rng.pick(&starts);
        let rest = &xml[start + 1..];
        let name_len = rest
            .iter()
            .position(|b| matches!(b, b' ' | b'>' | b'/' | b'\n' | b'\t' | b'\r'))
            .unwrap_or(rest.len());
        let mut close = b"</".to_vec();
        close.extend_from_slice(&rest[..name_len]);
        close.push(b'>');
        if let Some(end) = xml[start..]
            .windows(close.len())
            .position(|w| w == close.as_slice())
        {
            return Some((start, start + end + close.len()));
        }
    }
    None
}

/// Byte ranges of text between `>` and `<` that is not only whitespace.
fn texts(xml: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = xml[i..].iter().position(|&b| b == b'>') {
        let start = i + off + 1;
        let Some(len) = xml[start..].iter().position(|&b| b == b'<') else {
            break;
        };
        if xml[start..start + len]
            .iter()
            .any(|b| !b.is_ascii_whitespace())
        {
            out.push((start, start + len));
        }
        i = start + len;
    }
    out
}

const ODD_VALUES: &[&str] = &[
    "99999999999999999999999999999999",
    "-1",
    "-0",
    "0",
    "18446744073709551616",
    "1e308",
    "NaN",
    "0000-01-01",
    "9999-12-31",
    "+10000-02-11",
    "2024-02-30",
    "2024-13-01",
    "2024-01-01T00:00:00Z",
    "2024-01-01+01:00",
    "",
    " ",
    "\u{0}",
    "\u{1b}",
    "&amp;&lt;&#0;&#x110000;&#xD800;",
    "&undeclared;",
    "<![CDATA[x]]>",
    "\u{202e}\u{feff}\u{10ffff}",
    "123456789",
    "00000000",
];

const INJECTIONS: &[&str] = &[
    "<!DOCTYPE Bericht [<!ENTITY a \"aaaa\">]>",
    "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">",
    "&xxe;",
    "<?xml-stylesheet href=\"x\"?>",
    "<!-- c -->",
    "<x:Onbekend xmlns:x=\"urn:x\">1</x:Onbekend>",
    "<Onbekend/>",
    " attr=\"1\"",
    "</Bericht>",
    "<Bericht>",
    "\u{0}",
];

/// One generated input and how it was made.
fn generate(rng: &mut Rng, seeds: &[Vec<u8>]) -> (Vec<u8>, String) {
    let class = rng.below(12);
    if class == 0 {
        let len = rng.below(4096);
        return (
            (0..len).map(|_| rng.byte()).collect(),
            format!("{len} random bytes"),
        );
    }
    let seed_no = rng.below(seeds.len());
    let mut xml = seeds[seed_no].clone();
    // One to three mutations on a seed message.
    let rounds = 1 + rng.below(3);
    let mut what = format!("seed {seed_no}:");
    for _ in 0..rounds {
        let m = 1 + rng.below(10);
        match m {
            1 => {
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    if xml.is_empty() {
                        break;
                    }
                    let i = rng.below(xml.len());
                    xml[i] ^= 1 << rng.below(8);
                }
                what.push_str(&format!(" flip {n} bits;"));
            }
            2 => {
                let at = rng.below(xml.len() + 1);
                xml.truncate(at);
                what.push_str(&format!(" truncate at {at};"));
            }
            3 | 4 => {
                let Some((s, e)) = element(&xml, rng) else {
                    continue;
                };
                let copy = xml[s..e].to_vec();
                let times = if rng.below(4) == 0 {
                    50 + rng.below(200)
                } else {
                    1
                };
                let tail = xml.split_off(e);
                for _ in 0..times {
                    xml.extend_from_slice(&copy);
                }
                xml.extend_from_slice(&tail);
                what.push_str(&format!(" duplicate element {s}..{e} x{times};"));
            }
            5 => {
                let Some((s, e)) = element(&xml, rng) else {
                    continue;
                };
                xml.drain(s..e);
                what.push_str(&format!(" drop element {s}..{e};"));
            }
            6 | 7 => {
                let ts = texts(&xml);
                if ts.is_empty() {
                    continue;
                }
                let (s, e) = *rng.pick(&ts);
                let value = *rng.pick(ODD_VALUES);
                xml.splice(s..e, value.bytes());
                what.push_str(&format!(" value {s}..{e} := {value:?};"));
            }
            8 => {
                let ts = texts(&xml);
                if ts.is_empty() {
                    continue;
                }
                let (s, e) = *rng.pick(&ts);
                // Mostly a few thousand digits; now and then some hundred thousand.
                let len = if rng.below(8) == 0 {
                    1 + rng.below(300_000)
                } else {
                    1 + rng.below(5_000)
                };
                xml.splice(s..e, std::iter::repeat_n(b'7', len));
                what.push_str(&format!(" value {s}..{e} := {len} digits;"));
            }
            9 => {
                let at = rng.below(xml.len() + 1);
                let inj = *rng.pick(INJECTIONS);
                xml.splice(at..at, inj.bytes());
                what.push_str(&format!(" inject {inj:?} at {at};"));
            }
            _ => {
                // Deep nesting or invalid UTF-8 in a text.
                let ts = texts(&xml);
                if ts.is_empty() {
                    continue;
                }
                let (s, e) = *rng.pick(&ts);
                if rng.below(2) == 0 {
                    let depth = 1 + rng.below(5000);
                    let mut deep = b"<a>".repeat(depth);
                    deep.extend_from_slice(&b"</a>".repeat(depth));
                    xml.splice(s..e, deep);
                    what.push_str(&format!(" nest {depth} deep at {s};"));
                } else {
                    xml.splice(s..e, [0xC3, 0x28, 0xED, 0xA0, 0x80, 0xFF]);
                    what.push_str(&format!(" invalid UTF-8 at {s};"));
                }
            }
        }
    }
    (xml, what)
}

/// `None` when the result is a value or a clean error, else what is wrong with it.
fn unclean<T>(reader: &str, result: Result<T, ParseError>) -> Option<String> {
    let Err(e) = result else { return None };
    let shown = e.to_string();
    if e.path.is_empty() || e.rule.trim().is_empty() {
        return Some(format!("{reader}: an error without path or rule: {e:?}"));
    }
    if shown.len() > 2048 {
        return Some(format!(
            "{reader}: an error of {} bytes (echoes the input?): {}…",
            shown.len(),
            shown.chars().take(200).collect::<String>()
        ));
    }
    None
}

/// What is unclean in the four readers' answers, and whether one accepted the input.
fn read_all(input: &[u8]) -> (Vec<String>, bool) {
    let (a, b, c, d) = (
        parse_305(input),
        parse_307(input),
        parse_315(input),
        parse_317(input),
    );
    let accepted = a.is_ok() || b.is_ok() || c.is_ok() || d.is_ok();
    let mut out = Vec::new();
    out.extend(unclean("parse_305", a));
    out.extend(unclean("parse_307", b));
    out.extend(unclean("parse_315", c));
    out.extend(unclean("parse_317", d));
    (out, accepted)
}

#[test]
fn every_reader_returns_a_clean_error_or_a_message_for_generated_inputs() {
    let seed: u64 = env_or("RZ_FUZZ_SEED", 0x1514_2026);
    let max_cases: usize = env_or("RZ_FUZZ_CASES", 5000);
    let max_time = Duration::from_secs(env_or("RZ_FUZZ_SECONDS", 20));
    let seeds = seeds();
    // The unmutated valid messages parse with their own reader.
    assert!(parse_305(&seeds[0]).is_ok() && parse_307(&seeds[1]).is_ok());
    assert!(parse_315(&seeds[2]).is_ok() && parse_317(&seeds[3]).is_ok());

    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut cases, mut accepted, mut bytes) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    let mut in_readers = Duration::ZERO;
    while cases < max_cases && started.elapsed() < max_time {
        let (input, what) = generate(&mut rng, &seeds);
        cases += 1;
        bytes += input.len();
        let reading = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| read_all(&input)));
        in_readers += reading.elapsed();
        let problems = match outcome {
            Ok((p, ok)) => {
                accepted += usize::from(ok);
                p
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                vec![format!("PANIC: {msg}")]
            }
        };
        if !problems.is_empty() {
            let dir =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("xml-{seed:x}-{cases}.xml"));
            let _ = std::fs::write(&file, &input);
            failures.push(format!(
                "case {cases} (seed {seed:#x}; {what}) -> {}: {}",
                file.display(),
                problems.join("; ")
            ));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz readers: {cases} inputs x 4 readers in {secs:.1} s = {:.0} inputs/s ({:.1} s of it \
         in the readers: {:.0} inputs/s; {:.1} MB read), {accepted} accepted by a reader, {} unclean",
        cases as f64 / secs.max(1e-9),
        in_readers.as_secs_f64(),
        cases as f64 / in_readers.as_secs_f64().max(1e-9),
        bytes as f64 / 1e6,
        failures.len()
    );
    assert!(cases >= 100, "only {cases} inputs in {secs:.1} s");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
