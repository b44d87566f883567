//! The national message standards iJw 3.2 (Jeugdwet) and iWmo 3.2 (Wmo): writers for the
//! messages a municipality sends and hardened readers for the messages providers send.
//!
//! - Writers: [`render_301`] (Toewijzing), [`render_319`] (Antwoordbericht) and
//!   [`render_return`] (the return messages 306, 308, 316 and 318). The law in the header picks
//!   JW or WMO: message code, namespace and XSD version follow from it ([`MessageType`]).
//! - Readers: [`parse_305`] (Start zorg), [`parse_307`] (Stop zorg), [`parse_315`] (Verzoek om
//!   toewijzing), [`parse_317`] (Verzoek om wijziging). The law is taken from the namespace. A
//!   rejection is a [`ParseError`] naming the element, the rule and the WJ001 return code.
//!   [`parse_provider_message`] reads any of the four in one pass.
//! - Declarations: [`parse_323`] (Declaratie) and [`render_325`] (Declaratie-antwoord); the
//!   iWmo 325 schema is not published and is derived from JW325 as the other iWmo returns.
//! - Rules: [`Rule`], the standard's technical rules checked on received messages with their
//!   WJ001 return codes; [`check_dagtekening`] (TR135).
//!
//! The readers never expand entities and never process a DTD (a DOCTYPE is rejected), and they
//! bound size ([`MAX_MESSAGE_BYTES`], checked before any parsing; use [`read_limited`] to read
//! from a stream without reading more), depth, element count and attribute count.
//!
//! The crate is pure: no I/O. The tests validate every written message against the official
//! XSDs with `xmllint`.

mod declaration;
mod error;
mod model;
mod parse;
mod render;
mod rules;
mod schema;
mod xml;

pub use declaration::{
    DebitCredit, DeclarationContent, DeclaredClient, DeclaredLine, Message323, approved_total,
    message_type_of, parse_323, render_325,
};
pub use error::{ParseError, ParseErrorKind, RenderError};
pub use model::{
    Address, Answer, AssignedProduct, ChangeReason, ChangeRequest, Client, DeliveryStatus,
    EndReason, Gender, Header, Message305, Message307, Message315, Message317, Name, NewProduct,
    Product, ProductCategory, ProductChange, ReceivedClient, ReceivedHeader, ReferrerInfo,
    RequestOutcome, RequestedProduct, Size, StartedProduct, StoppedProduct, UnchangedProduct,
};
pub use parse::{
    ProviderMessage, parse_305, parse_307, parse_315, parse_317, parse_provider_message,
};
pub use render::{
    ReceivedBody, RecordCodes, ReturnContent, ReturnHeader, render_301, render_319, render_return,
};
pub use rules::{Rule, Violation, check_dagtekening};
pub use schema::{
    MAX_ATTRIBUTES, MAX_DECLARATION_ELEMENTS, MAX_DEPTH, MAX_ELEMENTS, MAX_MESSAGE_BYTES,
    MESSAGE_SUBVERSION, MESSAGE_VERSION, MessageType, xsd_versions,
};

/// Reads a message from `source`, reading at most [`MAX_MESSAGE_BYTES`] + 1 bytes: a larger
/// message is rejected ([`ParseErrorKind::TooLarge`]) without reading the rest.
pub fn read_limited(source: impl std::io::Read) -> Result<Vec<u8>, ParseError> {
    use std::io::Read;
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_MESSAGE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    source.take(limit).read_to_end(&mut buf).map_err(|e| {
        ParseError::new(
            ParseErrorKind::NotWellFormed,
            "/",
            format!("read failed: {e}"),
        )
    })?;
    if buf.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::new(
            ParseErrorKind::TooLarge,
            "/",
            format!("the message is larger than {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    Ok(buf)
}
