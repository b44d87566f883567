//! Errors of the writers and the readers.

use rz_domain::{FieldError, ReturnCode};

use crate::model::ReceivedHeader;

/// Why a message could not be written. Nothing is written half: the writers return either a
/// complete message or this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A value breaks a rule of the schema (`field` names the element path).
    #[error("{0}")]
    Invalid(FieldError),
    /// A code from the other law's list (e.g. a WMO020 category in a JW301).
    #[error("{field}: code list of the wrong law for a {message} message")]
    LawMismatch { field: String, message: String },
    /// The execution variant does not fit the filled elements.
    #[error("{field}: {rule}")]
    Variant { field: String, rule: String },
    /// The return message does not answer the received message type.
    #[error("a {kind} cannot answer a {received}")]
    WrongReturnType { kind: String, received: String },
    /// Return codes for a record that the received message does not contain.
    #[error("{0}: no such record in the received message")]
    UnknownRecord(String),
}

impl From<FieldError> for RenderError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

/// The kind of a [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// Larger than [`crate::MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not UTF-8, or an encoding declaration other than UTF-8.
    Encoding,
    /// Not well-formed XML.
    NotWellFormed,
    /// A DOCTYPE (DTD) is present; no DTD is ever processed.
    Doctype,
    /// An entity reference other than the five predefined ones or a character reference.
    Entity,
    /// Nesting deeper than [`crate::MAX_DEPTH`].
    TooDeep,
    /// More elements than [`crate::MAX_ELEMENTS`].
    TooManyElements,
    /// More attributes on one element than [`crate::MAX_ATTRIBUTES`].
    TooManyAttributes,
    /// An attribute the schemas do not define.
    Attribute,
    /// A processing instruction.
    ProcessingInstruction,
    /// The root element is not `Bericht`.
    WrongRoot,
    /// The namespace is not the one of the expected message (wrong law or wrong message).
    WrongNamespace,
    /// BerichtCode, BerichtVersie or BerichtSubversie do not match the schema.
    WrongHeader,
    /// A required element is missing.
    Missing,
    /// An element that is not allowed at this place, or one that occurs too often.
    Unexpected,
    /// An empty element (the standard forbids them).
    Empty,
    /// A value breaks a rule (BSN 11-test, AGB 8 digits, length, code list, ...).
    InvalidValue,
    /// A date not written as `YYYY-MM-DD` without time zone, or not an existing date.
    InvalidDate,
    /// An end date before its start date.
    EndBeforeStart,
}

/// Why a received message is rejected: the element (an XPath-like path), the rule, and the
/// WJ001 return code to answer with.
///
/// Return codes: `S300` (Gemeentecode ongeldig) for an invalid municipality code, `S329`
/// (ProductCode ongeldig) for an invalid product code; every other violation is a schema or
/// technical error and gets `0001` (Bericht is afgekeurd om technische redenen). WJ001 has no
/// specific code for an invalid BSN, a bad date or an end before the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule} (return code {})", return_code.code())]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub path: String,
    pub rule: String,
    pub return_code: ReturnCode,
    /// The header, when it could be read before the error: enough to answer with a return
    /// message that rejects the whole message (see [`crate::render_return`]).
    pub received: Option<Box<ReceivedHeader>>,
}

impl ParseError {
    pub(crate) fn new(
        kind: ParseErrorKind,
        path: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            path: path.into(),
            rule: rule.into(),
            return_code: ReturnCode::TECHNICAL_REJECTION,
            received: None,
        }
    }

    pub(crate) fn with_code(mut self, code: ReturnCode) -> Self {
        self.return_code = code;
        self
    }
}
