//! A small XML writer and a hardened reader that builds a tree of the received message.

use quick_xml::NsReader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use crate::error::{ParseError, ParseErrorKind as K};
use crate::schema::{MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_MESSAGE_BYTES, MessageType};

const LAWS: [rz_domain::Law; 2] = [rz_domain::Law::Jeugdwet, rz_domain::Law::Wmo];

/// At most `max` characters of a received value, marked when cut: an error never echoes a large
/// input.
pub(crate) fn shortened(value: &str, max: usize) -> String {
    let shown: String = value.chars().take(max).collect();
    if shown.len() < value.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

/// What the root of a received document must be: `a Bericht of JW305 or WMO305 (namespace
/// "…/ijw/3_2/jw305/schema" or "…/iwmo/3_2/wmo305/schema")`.
fn describe_expected(expected: &[MessageType]) -> String {
    let names: Vec<String> = LAWS
        .iter()
        .flat_map(|l| expected.iter().map(move |t| t.name(*l)))
        .collect();
    let namespaces: Vec<String> = LAWS
        .iter()
        .flat_map(|l| {
            expected
                .iter()
                .map(move |t| format!("{:?}", t.namespace(*l)))
        })
        .collect();
    format!(
        "the root element Bericht of {} (namespace {})",
        or_list(&names),
        or_list(&namespaces)
    )
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The element found at the root: its name and namespace, and which message of the standard (or
/// which standard) that namespace belongs to, when it is one.
fn describe_found(local: &str, ns: &str) -> String {
    let name = shortened(local, 64);
    if ns.is_empty() {
        return format!("element {name} in no namespace");
    }
    let shown = shortened(ns, 120);
    let known = LAWS.iter().find_map(|l| {
        MessageType::ALL
            .iter()
            .find(|t| t.namespace(*l) == ns)
            .map(|t| t.name(*l))
    });
    match known {
        Some(m) => format!("element {name} in namespace {shown:?}, that of {m}"),
        None => match ns
            .strip_prefix("http://www.istandaarden.nl/")
            .and_then(|r| r.strip_suffix("/schema"))
            .map(|r| r.split('/').collect::<Vec<_>>())
        {
            Some(parts) if parts.len() == 3 => format!(
                "element {name} in namespace {shown:?}, that of {} of {} release {}",
                shortened(&parts[2].to_uppercase(), 16),
                shortened(parts[0], 16),
                shortened(&parts[1].replace('_', "."), 16)
            ),
            _ => format!("element {name} in namespace {shown:?}"),
        },
    }
}

/// Writes an indented document. Every element is either a container or a non-empty leaf.
pub(crate) struct XmlOut {
    buf: String,
    /// Open elements: (qualified name, are its children in the basisschema namespace).
    stack: Vec<(String, bool)>,
    prefix: &'static str,
}

/// Elements of the message namespace whose type is a `CDT_*` type of the basisschema: their
/// children are in the basisschema namespace (both schemas have `elementFormDefault="qualified"`).
/// Children of a basisschema element are always in the basisschema namespace.
const CDT_ELEMENTS: &[&str] = &[
    "BerichtIdentificatie",
    "XsdVersie",
    "XsdVersieRetour",
    "Geboortedatum",
    "Naam",
    "Product",
    "Omvang",
    "Verwijzer",
    "Adres",
    "Telefoon",
    "Periode",
    "Communicatie",
    // 323 and 325
    "DeclaratiePeriode",
    "TotaalIngediendBedrag",
    "TotaalToegekendBedrag",
    "ProductReferentie",
    "ProductPeriode",
    "IngediendBedrag",
    "DeclaratieIdentificatie",
    "XsdVersieDeclaratie",
];

/// Whether the children of an element are in the basisschema namespace.
pub(crate) fn children_in_basis(name: &str, in_basis: bool) -> bool {
    in_basis || CDT_ELEMENTS.contains(&name)
}

/// The basisschema namespace and its usual prefix for a message namespace's standard.
pub(crate) fn basis_namespace(law: rz_domain::Law) -> (&'static str, &'static str) {
    match law {
        rz_domain::Law::Jeugdwet => (
            "http://www.istandaarden.nl/ijw/3_2/basisschema/schema",
            "ijw",
        ),
        rz_domain::Law::Wmo => (
            "http://www.istandaarden.nl/iwmo/3_2/basisschema/schema",
            "iwmo",
        ),
    }
}

impl XmlOut {
    /// Starts a document with root `Bericht` in `namespace` (the default namespace).
    pub(crate) fn new(namespace: &str, law: rz_domain::Law) -> Self {
        let (basis, prefix) = basis_namespace(law);
        let mut buf = String::with_capacity(4096);
        buf.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bericht xmlns=\"");
        buf.push_str(&escape(namespace));
        buf.push_str("\" xmlns:");
        buf.push_str(prefix);
        buf.push_str("=\"");
        buf.push_str(basis);
        buf.push_str("\">\n");
        Self {
            buf,
            stack: vec![("Bericht".to_owned(), false)],
            prefix,
        }
    }

    /// The qualified name of a new child of the current element, and whether its own children
    /// are in the basisschema namespace.
    fn qualify(&self, name: &str) -> (String, bool) {
        let in_basis = self.stack.last().is_some_and(|(_, b)| *b);
        let qname = if in_basis {
            format!("{}:{name}", self.prefix)
        } else {
            name.to_owned()
        };
        (qname, children_in_basis(name, in_basis))
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.buf.push_str("  ");
        }
    }

    pub(crate) fn open(&mut self, name: &str) {
        let (qname, basis) = self.qualify(name);
        self.indent();
        self.buf.push('<');
        self.buf.push_str(&qname);
        self.buf.push_str(">\n");
        self.stack.push((qname, basis));
    }

    pub(crate) fn close(&mut self) {
        if let Some((name, _)) = self.stack.pop() {
            self.indent();
            self.buf.push_str("</");
            self.buf.push_str(&name);
            self.buf.push_str(">\n");
        }
    }

    /// A leaf with a value; callers never pass an empty value (the standard forbids empty
    /// elements), the value is escaped.
    pub(crate) fn leaf(&mut self, name: &str, value: &str) {
        let (qname, _) = self.qualify(name);
        self.indent();
        self.buf.push('<');
        self.buf.push_str(&qname);
        self.buf.push('>');
        self.buf.push_str(&escape(value));
        self.buf.push_str("</");
        self.buf.push_str(&qname);
        self.buf.push_str(">\n");
    }

    pub(crate) fn opt_leaf(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.leaf(name, v);
        }
    }

    /// Writes a received element (renamed into this document's namespace) and its subtree;
    /// `hook` is called before each element is closed, so it can append children.
    pub(crate) fn echo(&mut self, el: &Element, hook: &mut dyn FnMut(&mut Self, &Element)) {
        match &el.text {
            Some(t) if el.children.is_empty() => self.leaf(&el.name, t),
            _ => {
                self.open(&el.name);
                for c in &el.children {
                    self.echo(c, hook);
                }
                hook(self, el);
                self.close();
            }
        }
    }

    pub(crate) fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.buf
    }
}

/// An element of a received message: local name, path, children or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    /// XPath-like path, e.g. `/Bericht/Client/StartProducten/StartProduct[2]`.
    pub(crate) path: String,
    pub(crate) children: Vec<Element>,
    /// The trimmed text of a leaf.
    pub(crate) text: Option<String>,
}

/// Record elements that may repeat: their path carries a 1-based index.
const INDEXED: &[&str] = &[
    "StartProduct",
    "StopProduct",
    "AangevraagdProduct",
    "OngewijzigdProduct",
    "TeWijzigenProduct",
    "NieuwProduct",
];

struct Open {
    el: Element,
    text: String,
    children_in_basis: bool,
}

/// Reads a document into a tree, rejecting anything hostile or outside the standard's profile:
/// more than [`MAX_MESSAGE_BYTES`] (checked before reading), non-UTF-8, DOCTYPE/DTD (so no
/// entity is ever declared or expanded), undeclared entities, processing instructions,
/// attributes other than namespace declarations and `xsi:*`, nesting deeper than
/// [`MAX_DEPTH`], more than [`MAX_ELEMENTS`] elements or [`MAX_ATTRIBUTES`] attributes, elements
/// outside the root's namespace, mixed content and empty elements.
///
/// The root must be `Bericht` in the namespace of one of the `expected` messages (iJw or iWmo,
/// which decides the law and the message); every other element must be in that namespace or,
/// inside a basisschema type, in the law's basisschema namespace. A wrong root or namespace is
/// rejected naming what was found and what was expected. Returns the root, the law and the
/// message.
pub(crate) fn read_tree(
    input: &[u8],
    expected: &[MessageType],
) -> Result<(Element, rz_domain::Law, MessageType), ParseError> {
    read_tree_bounded(input, expected, MAX_ELEMENTS)
}

/// [`read_tree`] with at most `max_elements` elements (a 323 may hold more than the other
/// messages: [`crate::MAX_DECLARATION_ELEMENTS`]).
pub(crate) fn read_tree_bounded(
    input: &[u8],
    expected: &[MessageType],
    max_elements: usize,
) -> Result<(Element, rz_domain::Law, MessageType), ParseError> {
    if input.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::new(
            K::TooLarge,
            "/",
            format!("the message is larger than {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(input)
        .map_err(|e| ParseError::new(K::Encoding, "/", format!("not UTF-8: {e}")))?;
    let mut reader = NsReader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.allow_unmatched_ends = false;
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<(Element, rz_domain::Law, MessageType)> = None;
    let mut law: Option<(rz_domain::Law, MessageType)> = None;
    let mut elements = 0usize;
    loop {
        let pos = reader.buffer_position();
        let (ns, event) = reader.read_resolved_event().map_err(|e| {
            ParseError::new(
                K::NotWellFormed,
                path_of(&stack),
                format!("not well-formed XML near byte {pos}: {e}"),
            )
        })?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(ParseError::new(
                    K::NotWellFormed,
                    path_of(&stack),
                    format!("undeclared namespace prefix {p:?}"),
                ));
            }
        };
        match event {
            Event::Start(start) => {
                let local = start.local_name().as_ref().to_owned();
                if root.is_some() {
                    return Err(ParseError::new(
                        K::NotWellFormed,
                        format!("/{local}"),
                        "only one root element is allowed",
                    ));
                }
                elements += 1;
                if elements > max_elements {
                    return Err(ParseError::new(
                        K::TooManyElements,
                        path_of(&stack),
                        format!("more than {max_elements} elements"),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::new(
                        K::TooDeep,
                        path_of(&stack),
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let path = match stack.last() {
                    None => format!("/{local}"),
                    Some(parent) => {
                        if INDEXED.contains(&local.as_str()) {
                            let n = parent
                                .el
                                .children
                                .iter()
                                .filter(|c| c.name == local)
                                .count();
                            format!("{}/{local}[{}]", parent.el.path, n + 1)
                        } else {
                            format!("{}/{local}", parent.el.path)
                        }
                    }
                };
                let mut count = 0usize;
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| {
                        ParseError::new(
                            K::NotWellFormed,
                            path.clone(),
                            format!("bad attribute: {e}"),
                        )
                    })?;
                    count += 1;
                    if count > MAX_ATTRIBUTES {
                        return Err(ParseError::new(
                            K::TooManyAttributes,
                            path,
                            format!("more than {MAX_ATTRIBUTES} attributes"),
                        ));
                    }
                    let key = attr.key.0;
                    let allowed =
                        key == "xmlns" || key.starts_with("xmlns:") || key.starts_with("xsi:");
                    if !allowed {
                        return Err(ParseError::new(
                            K::Attribute,
                            format!("{path}/@{key}"),
                            "attribute not defined by the schema",
                        ));
                    }
                }
                let ns = ns.unwrap_or_default();
                let in_basis = stack.last().is_some_and(|o| o.children_in_basis);
                match law {
                    None => {
                        let found = LAWS
                            .iter()
                            .flat_map(|l| expected.iter().map(move |t| (*l, *t)))
                            .find(|(l, t)| t.namespace(*l) == ns);
                        let found_what = || describe_found(&local, &ns);
                        let Some((l, t)) = found else {
                            return Err(ParseError::new(
                                K::WrongNamespace,
                                path,
                                format!(
                                    "expected {}, found {}",
                                    describe_expected(expected),
                                    found_what()
                                ),
                            ));
                        };
                        if local != "Bericht" {
                            return Err(ParseError::new(
                                K::WrongRoot,
                                path,
                                format!(
                                    "expected the root element Bericht, found {}",
                                    found_what()
                                ),
                            ));
                        }
                        law = Some((l, t));
                    }
                    Some((l, t)) => {
                        let want = if in_basis {
                            basis_namespace(l).0.to_owned()
                        } else {
                            t.namespace(l)
                        };
                        if ns != want {
                            return Err(ParseError::new(
                                K::WrongNamespace,
                                path,
                                format!("namespace {ns:?} is wrong here, expected {want:?}"),
                            ));
                        }
                    }
                }
                let children_in_basis = children_in_basis(&local, in_basis);
                stack.push(Open {
                    el: Element {
                        name: local,
                        path,
                        children: Vec::new(),
                        text: None,
                    },
                    text: String::new(),
                    children_in_basis,
                });
            }
            Event::End(_) => {
                let Some(open) = stack.pop() else {
                    return Err(ParseError::new(K::NotWellFormed, "/", "unmatched end tag"));
                };
                let mut el = open.el;
                let trimmed = open.text.trim();
                if el.children.is_empty() {
                    if trimmed.is_empty() {
                        return Err(ParseError::new(
                            K::Empty,
                            el.path,
                            "empty elements are not allowed",
                        ));
                    }
                    el.text = Some(trimmed.to_owned());
                } else if !trimmed.is_empty() {
                    return Err(ParseError::new(
                        K::Unexpected,
                        el.path,
                        "text is not allowed next to child elements",
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.el.children.push(el),
                    None => {
                        if let Some((l, t)) = law {
                            root = Some((el, l, t));
                        }
                    }
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => {
                        return Err(ParseError::new(
                            K::NotWellFormed,
                            "/",
                            "text outside the root element",
                        ));
                    }
                }
            }
            Event::CData(t) => match stack.last_mut() {
                Some(open) => open.text.push_str(&t.xml10_content()),
                None => {
                    return Err(ParseError::new(
                        K::NotWellFormed,
                        "/",
                        "CDATA outside the root element",
                    ));
                }
            },
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => resolve_predefined_entity(&r).map(str::to_owned),
                    Err(e) => {
                        return Err(ParseError::new(
                            K::NotWellFormed,
                            path_of(&stack),
                            format!("bad character reference: {e}"),
                        ));
                    }
                };
                let Some(value) = resolved else {
                    return Err(ParseError::new(
                        K::Entity,
                        path_of(&stack),
                        format!(
                            "entity &{}; is not allowed (no DTD, no custom entities)",
                            &*r
                        ),
                    ));
                };
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&value),
                    None => {
                        return Err(ParseError::new(
                            K::NotWellFormed,
                            "/",
                            "reference outside the root element",
                        ));
                    }
                }
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| {
                        ParseError::new(K::NotWellFormed, "/", format!("bad XML declaration: {e}"))
                    })?;
                    if !enc.eq_ignore_ascii_case("utf-8") {
                        return Err(ParseError::new(
                            K::Encoding,
                            "/",
                            format!("encoding {enc:?} is not allowed, only UTF-8"),
                        ));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(ParseError::new(
                    K::Doctype,
                    "/",
                    "a DOCTYPE (DTD) is not allowed; entities are never expanded",
                ));
            }
            Event::PI(_) => {
                return Err(ParseError::new(
                    K::ProcessingInstruction,
                    path_of(&stack),
                    "processing instructions are not allowed",
                ));
            }
            Event::Comment(_) => {}
            Event::Empty(_) => {
                // expand_empty_elements turns these into Start + End.
                return Err(ParseError::new(
                    K::Empty,
                    path_of(&stack),
                    "empty elements are not allowed",
                ));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::new(
            K::NotWellFormed,
            path_of(&stack),
            "unexpected end of document: element not closed",
        ));
    }
    root.ok_or_else(|| ParseError::new(K::NotWellFormed, "/", "no root element"))
}

fn path_of(stack: &[Open]) -> String {
    stack
        .last()
        .map_or_else(|| "/".to_owned(), |o| o.el.path.clone())
}

impl Element {
    /// The first child named `name`, if any; an error if it occurs more than once.
    pub(crate) fn opt(&self, name: &str) -> Result<Option<&Element>, ParseError> {
        let mut it = self.children.iter().filter(|c| c.name == name);
        let first = it.next();
        if let Some(second) = it.next() {
            return Err(ParseError::new(
                K::Unexpected,
                second.path.clone(),
                "element occurs more than once",
            ));
        }
        Ok(first)
    }

    /// The child named `name`; an error naming its path if it is missing.
    pub(crate) fn one(&self, name: &str) -> Result<&Element, ParseError> {
        self.opt(name)?.ok_or_else(|| {
            ParseError::new(
                K::Missing,
                format!("{}/{name}", self.path),
                "required element is missing",
            )
        })
    }

    /// Every child named `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Rejects children whose name is not in `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), ParseError> {
        match self
            .children
            .iter()
            .find(|c| !allowed.contains(&c.name.as_str()))
        {
            Some(c) => Err(ParseError::new(
                K::Unexpected,
                c.path.clone(),
                "element is not allowed here by the schema",
            )),
            None => Ok(()),
        }
    }

    /// The text of a leaf.
    pub(crate) fn value(&self) -> Result<&str, ParseError> {
        match (&self.text, self.children.is_empty()) {
            (Some(t), true) => Ok(t),
            _ => Err(ParseError::new(
                K::Unexpected,
                self.path.clone(),
                "expected a value, found child elements",
            )),
        }
    }
}
