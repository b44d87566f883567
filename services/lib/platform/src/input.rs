//! The rules every request's text obeys, once, for every API: applied by the authorisation layer
//! ([`crate::authz`]) to the decoded request after the caller was admitted and before the
//! handler runs.
//!
//! - A string field holds at most its maximum of characters: [`LIMITS`] by field name, any other
//!   string field [`DEFAULT_MAX_CHARS`].
//! - No string holds a NUL byte or another C0 control character; only free text ([`Text::Free`],
//!   such as reasons and notes) may hold a tab or a line break (`\t`, `\n`, `\r`): names, codes
//!   and keys may not.
//! - A repeated field holds at most [`DEFAULT_MAX_ITEMS`] elements (or its own maximum in
//!   [`LIMITS`]).
//!
//! `bytes` fields (the XML upload) are not text and are not checked here. A request that breaks a
//! rule is answered INVALID_ARGUMENT with a `google.rpc.BadRequest` violation per field, named by
//! its path (`address.street`, `items[2].name`).

use prost_reflect::{DynamicMessage, Kind as FieldKind, Value};
use rz_domain::FieldError;

/// Whether a string field may hold tabs and line breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// A name, code, key or date: one line, no control character at all.
    Line,
    /// Free text (a reason, a note): may hold `\t`, `\n` and `\r`.
    Free,
}

/// The limit of the fields of one name, in every message of every API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The field's name (its last path segment).
    pub field: &'static str,
    /// The most characters (Unicode scalar values) one value holds.
    pub max_chars: usize,
    pub text: Text,
    /// The most elements a repeated field of this name holds (None: [`DEFAULT_MAX_ITEMS`]).
    pub max_items: Option<usize>,
    /// What the field is, for the README's table.
    pub what: &'static str,
}

const fn line(field: &'static str, max_chars: usize, what: &'static str) -> Limit {
    Limit {
        field,
        max_chars,
        text: Text::Line,
        max_items: None,
        what,
    }
}

const fn free(field: &'static str, max_chars: usize, what: &'static str) -> Limit {
    Limit {
        field,
        max_chars,
        text: Text::Free,
        max_items: None,
        what,
    }
}

/// The most characters of a string field not in [`LIMITS`].
pub const DEFAULT_MAX_CHARS: usize = 256;
/// The most elements of a repeated field not in [`LIMITS`] with its own maximum.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

/// The text limits by field name. A field not named here is a one-line text of at most
/// [`DEFAULT_MAX_CHARS`] characters.
pub const LIMITS: &[Limit] = &[
    line("idempotency_key", 128, "the caller's key of a change"),
    line("bsn", 9, "citizen service number (9 digits)"),
    line("agb_code", 8, "AGB code of a provider (8 digits)"),
    line("lead_agb_code", 8, "AGB code"),
    line("main_agb_code", 8, "AGB code"),
    line("preferred_provider_agb", 8, "AGB code"),
    line("subcontractor_agb_code", 8, "AGB code"),
    line("member_agb_codes", 8, "AGB codes"),
    line("municipality", 4, "CBS code of a municipality (4 digits)"),
    line("municipalities", 4, "CBS codes"),
    line(
        "client_key",
        32,
        "pseudonymous client key (32 hex characters)",
    ),
    line("kvk_number", 8, "Chamber of Commerce number (8 digits)"),
    line("postal_code", 7, "Dutch postal code (1234AB)"),
    line("house_number", 16, "house number"),
    line("segment_code", 16, "segment code"),
    line("subsegment_code", 16, "subsegment code"),
    line("subsegment_codes", 16, "subsegment codes"),
    line("product_code", 16, "product code"),
    line("product_category", 16, "product category"),
    line("birth_date", 10, "date (YYYY-MM-DD)"),
    line(
        "message_id",
        12,
        "message identification of the standard (12 characters)",
    ),
    line("given_names", 200, "given names"),
    line("family_name", 200, "family name"),
    line("name", 200, "name"),
    line("legal_form", 200, "legal form"),
    line("street", 200, "street"),
    line("city", 200, "city"),
    line("relation", 200, "relation of a legal representative"),
    line("url", 2048, "webhook URL"),
    line("secret", 256, "webhook secret"),
    free("reason", 1000, "reason"),
    free("refusal_reason", 1000, "reason of a refusal"),
    free("termination_reason", 1000, "reason of a termination"),
    free("result", 1000, "result of a product"),
    free("goal", 1000, "goal"),
    free("note", 1000, "note"),
    free("purpose", 1000, "purpose of a look-up"),
    free("text", 4000, "text"),
];

/// The limit of the field `name` (the default when the table does not name it).
pub fn limit_of(name: &str) -> Limit {
    LIMITS
        .iter()
        .find(|l| l.field == name)
        .copied()
        .unwrap_or(Limit {
            field: "",
            max_chars: DEFAULT_MAX_CHARS,
            text: Text::Line,
            max_items: None,
            what: "any other string field",
        })
}

/// Every field of `message` (recursively) that breaks a rule, in field order.
pub fn check(message: &DynamicMessage) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    walk(message, "", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// At most this many violations are reported for one request.
const MAX_REPORTED: usize = 20;

fn walk(message: &DynamicMessage, prefix: &str, errors: &mut Vec<FieldError>) {
    for (field, value) in message.fields() {
        if errors.len() >= MAX_REPORTED {
            return;
        }
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        let limit = limit_of(field.name());
        match value {
            Value::List(items) => {
                let max = limit.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
                if items.len() > max {
                    errors.push(FieldError::new(
                        path.clone(),
                        format!("must hold at most {max} elements (holds {})", items.len()),
                    ));
                    continue;
                }
                for (i, item) in items.iter().enumerate() {
                    one(item, &format!("{path}[{i}]"), &limit, errors);
                }
            }
            Value::Map(entries) => {
                if entries.len() > DEFAULT_MAX_ITEMS {
                    errors.push(FieldError::new(
                        path.clone(),
                        format!("must hold at most {DEFAULT_MAX_ITEMS} entries"),
                    ));
                    continue;
                }
                for (key, item) in entries {
                    if let prost_reflect::MapKey::String(k) = key {
                        string(k, &format!("{path} (key)"), &limit_of(""), errors);
                    }
                    one(item, &format!("{path}[{key:?}]"), &limit, errors);
                }
            }
            v => {
                if matches!(field.kind(), FieldKind::String | FieldKind::Message(_)) {
                    one(v, &path, &limit, errors);
                }
            }
        }
    }
}

fn one(value: &Value, path: &str, limit: &Limit, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => string(s, path, limit, errors),
        Value::Message(m) => walk(m, path, errors),
        _ => {}
    }
}

fn string(s: &str, path: &str, limit: &Limit, errors: &mut Vec<FieldError>) {
    // Bytes bound the count first: a value of more bytes than 4 x the maximum is too long
    // whatever its characters, and is not counted.
    let too_long = s.len() > 4 * limit.max_chars || s.chars().count() > limit.max_chars;
    if too_long {
        errors.push(FieldError::new(
            path,
            format!("must be at most {} characters", limit.max_chars),
        ));
        return;
    }
    let allowed = |c: char| limit.text == Text::Free && matches!(c, '\t' | '\n' | '\r');
    if let Some(c) = s
        .chars()
        .find(|&c| c.is_control() && (c as u32) < 0x20 && !allowed(c))
    {
        let rule = match (c, limit.text) {
            ('\0', _) => "must not hold a NUL character".to_owned(),
            ('\t' | '\n' | '\r', Text::Line) => "must be one line: no tab or line break".to_owned(),
            _ => format!("must not hold the control character U+{:04X}", c as u32),
        };
        errors.push(FieldError::new(path, rule));
    }
}

/// The README's table of limits (markdown, generated from [`LIMITS`]).
pub fn markdown() -> String {
    let mut out = String::from("| Field | At most | Line breaks | What |\n|---|---|---|---|\n");
    for l in LIMITS {
        out.push_str(&format!(
            "| `{}` | {} characters | {} | {} |\n",
            l.field,
            l.max_chars,
            match l.text {
                Text::Line => "no",
                Text::Free => "yes",
            },
            l.what
        ));
    }
    out.push_str(&format!(
        "| any other string | {DEFAULT_MAX_CHARS} characters | no | |\n\
         | any repeated field | {DEFAULT_MAX_ITEMS} elements | | |\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{descriptors, input_of};
    use prost::Message;
    use rz_proto::access::v1 as access;

    fn dynamic(method: &str, m: &impl Message) -> DynamicMessage {
        let input = input_of(&descriptors().unwrap(), method).unwrap();
        DynamicMessage::decode(input, m.encode_to_vec().as_slice()).unwrap()
    }

    const REGISTER: &str = "/regiozorg.access.v1.AccessService/RegisterResident";
    const DECIDE: &str = "/regiozorg.access.v1.AccessService/Decide";

    fn resident() -> access::RegisterResidentRequest {
        access::RegisterResidentRequest {
            idempotency_key: "k-1".into(),
            bsn: "111222333".into(),
            given_names: "Anna Maria".into(),
            family_name: "de Vries".into(),
            birth_date: "2015-03-01".into(),
            address: Some(access::Address {
                street: "Dorpsstraat".into(),
                house_number: "1".into(),
                postal_code: "1234AB".into(),
                city: "Assen".into(),
                municipality: "0106".into(),
            }),
            ..Default::default()
        }
    }

    fn violations(method: &str, m: &impl Message) -> Vec<(String, String)> {
        match check(&dynamic(method, m)) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| (e.field, e.rule)).collect(),
        }
    }

    #[test]
    fn a_good_request_passes() {
        assert_eq!(violations(REGISTER, &resident()), []);
    }

    #[test]
    fn a_long_string_is_refused_with_its_field_and_maximum() {
        let mut r = resident();
        r.family_name = "x".repeat(1_200_000);
        r.idempotency_key = "k".repeat(100_000);
        let v = violations(REGISTER, &r);
        assert_eq!(
            v,
            [
                (
                    "idempotency_key".to_owned(),
                    "must be at most 128 characters".to_owned()
                ),
                (
                    "family_name".to_owned(),
                    "must be at most 200 characters".to_owned()
                ),
            ]
        );
        // Characters, not bytes: 200 two-byte characters are fine, 201 are not.
        r = resident();
        r.family_name = "é".repeat(200);
        assert_eq!(violations(REGISTER, &r), []);
        r.family_name = "é".repeat(201);
        assert_eq!(violations(REGISTER, &r).len(), 1);
        // A field not in the table: the default.
        r = resident();
        r.gender = "1".repeat(DEFAULT_MAX_CHARS + 1);
        assert_eq!(
            violations(REGISTER, &r),
            [(
                "gender".to_owned(),
                format!("must be at most {DEFAULT_MAX_CHARS} characters")
            )]
        );
    }

    #[test]
    fn control_characters_are_refused_with_the_field_path() {
        let mut r = resident();
        if let Some(a) = r.address.as_mut() {
            a.street = "Dorps\0straat".into();
            a.city = "As\u{1b}sen".into();
        }
        r.given_names = "Anna\nMaria".into();
        r.family_name = "de\tVries".into();
        let v = violations(REGISTER, &r);
        let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "given_names",
                "family_name",
                "address.street",
                "address.city"
            ]
        );
        assert!(v[0].1.contains("one line"), "{v:?}");
        assert!(v[2].1.contains("NUL"), "{v:?}");
        assert!(v[3].1.contains("U+001B"), "{v:?}");
    }

    #[test]
    fn free_text_may_hold_line_breaks_but_no_other_control_character() {
        let mut d = access::DecideRequest {
            case_id: "c".into(),
            date: "2026-01-01".into(),
            refusal_reason: "first line\r\nsecond\tline".into(),
            ..Default::default()
        };
        assert_eq!(violations(DECIDE, &d), []);
        d.refusal_reason = "bell\u{7}".into();
        assert_eq!(violations(DECIDE, &d)[0].0, "refusal_reason");
        d.refusal_reason = "x".repeat(1001);
        assert_eq!(
            violations(DECIDE, &d)[0].1,
            "must be at most 1000 characters"
        );
    }

    #[test]
    fn nested_repeated_fields_are_named_with_their_index_and_counted() {
        let product = access::ProductToGrant {
            subsegment_code: "10".into(),
            result: "ok".into(),
            ..Default::default()
        };
        let mut bad = product.clone();
        bad.preferred_provider_agb = "1234\n5678".into();
        let d = access::DecideRequest {
            case_id: "c".into(),
            grant: vec![product.clone(), bad],
            ..Default::default()
        };
        assert_eq!(
            violations(DECIDE, &d)[0].0,
            "grant[1].preferred_provider_agb"
        );
        let many = access::DecideRequest {
            case_id: "c".into(),
            grant: vec![product; DEFAULT_MAX_ITEMS + 1],
            ..Default::default()
        };
        assert_eq!(
            violations(DECIDE, &many),
            [(
                "grant".to_owned(),
                format!("must hold at most {DEFAULT_MAX_ITEMS} elements (holds 1001)")
            )]
        );
    }

    #[test]
    fn bytes_are_not_text() {
        let upload = rz_proto::assignment::v1::UploadProviderMessageRequest {
            agb_code: "12345678".into(),
            xml: b"<a>\0\x01\n</a>".repeat(1000),
        };
        assert_eq!(
            violations(
                "/regiozorg.assignment.v1.AssignmentService/UploadProviderMessage",
                &upload
            ),
            []
        );
    }

    #[test]
    fn the_table_names_each_field_once_and_every_named_field_is_in_an_api() {
        let mut seen = std::collections::HashSet::new();
        let pool = descriptors().unwrap();
        let names: std::collections::HashSet<String> = pool
            .all_messages()
            .flat_map(|m| m.fields().map(|f| f.name().to_owned()).collect::<Vec<_>>())
            .collect();
        for l in LIMITS {
            assert!(seen.insert(l.field), "{} twice", l.field);
            assert!(names.contains(l.field), "{} is in no message", l.field);
            assert!(l.max_chars > 0);
        }
        assert!(markdown().contains("| `idempotency_key` | 128 characters | no |"));
    }

    #[test]
    fn a_body_that_is_not_the_message_names_the_message_type_and_a_violation_is_a_bad_request() {
        use crate::authz::{Authz, LimitsConfig, Refusal};
        use crate::identity::{Identities, IdentityConfig};
        use tonic_types::StatusExt;
        let authz = Authz::new(
            Identities::from_config(&IdentityConfig::default()).unwrap(),
            None,
            &LimitsConfig::default(),
        )
        .unwrap();
        // Field 2 (bsn, a string) holding bytes that are not UTF-8; then a truncated field.
        for bad in [&[0x12, 0x02, 0xff, 0xfe][..], &[0x12, 0x09, b'1'][..]] {
            let refused = authz.decode(REGISTER, bad).unwrap_err();
            assert!(
                matches!(&refused, Refusal::InvalidArgument(m)
                    if m.contains("regiozorg.access.v1.RegisterResidentRequest")),
                "{refused:?}"
            );
            assert_eq!(refused.status().code(), tonic::Code::InvalidArgument);
        }
        let mut r = resident();
        r.family_name = "x".repeat(201);
        let decoded = authz.decode(REGISTER, &r.encode_to_vec()).unwrap();
        let status = Refusal::BadRequest(check(&decoded).unwrap_err()).status();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_details_bad_request().unwrap();
        assert_eq!(details.field_violations[0].field, "family_name");
        assert_eq!(
            details.field_violations[0].description,
            "must be at most 200 characters"
        );
    }
}
