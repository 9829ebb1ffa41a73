//! A bounded, namespace-aware XML reader into a small element tree, and a typed writer.
//!
//! Reading: the input must be UTF-8, at most [`Limits::max_bytes`] long, at most
//! [`Limits::max_depth`] deep with at most [`Limits::max_elements`] elements. A document type
//! declaration is refused outright (no DTD means no entity expansion of any kind); the only
//! references accepted are the five predefined entities and character references. Namespace
//! prefixes are resolved while reading, so callers match on `(namespace, local name)` and never
//! on a prefix the peer happened to choose.
//!
//! Writing: [`XmlWriter`] emits elements through quick-xml's event writer, which escapes every
//! text and attribute value; no XML is ever assembled with string formatting.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            max_depth: 24,
            max_elements: 2048,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("document is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("document is not valid UTF-8")]
    NotUtf8,
    #[error("document type declarations are not accepted")]
    DocType,
    #[error("entity reference `&{name};` is not accepted")]
    Entity { name: String },
    #[error("elements nest deeper than {max}")]
    TooDeep { max: usize },
    #[error("more than {max} elements")]
    TooManyElements { max: usize },
    #[error("prefix `{prefix}` is not declared")]
    UnboundPrefix { prefix: String },
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("document has no root element")]
    NoRoot,
}

/// One element: resolved namespace, local name, attributes, text and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI, empty when the element is in no namespace.
    pub ns: String,
    pub name: String,
    /// Attributes as `(namespace, local name, value)`; namespace declarations are left out.
    pub attrs: Vec<(String, String, String)>,
    /// Concatenated character data directly inside this element, trimmed.
    pub text: String,
    pub children: Vec<Element>,
    /// Namespace declarations in scope at this element (prefix, URI), innermost last; the
    /// empty prefix is the default namespace. Needed to resolve QName-valued text.
    pub scope: Vec<(String, String)>,
}

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// The first child with this local name, whatever its namespace (for elements whose
    /// namespace differs between client libraries).
    pub fn child_local(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child_local(name).map(|c| c.text.as_str())
    }

    /// Value of the attribute with this local name (any namespace).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// Resolves a `prefix:local` QName found in text against this element's scope.
    pub fn resolve_qname(&self, qname: &str) -> Option<(String, String)> {
        let (prefix, local) = match qname.split_once(':') {
            Some((p, l)) => (p, l),
            None => ("", qname),
        };
        self.scope
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| (ns.clone(), local.to_string()))
            .or_else(|| {
                prefix
                    .is_empty()
                    .then(|| (String::new(), local.to_string()))
            })
    }
}

fn malformed(position: u64, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position,
        message: e.to_string(),
    }
}

fn split_qname(q: &str) -> (&str, &str) {
    match q.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", q),
    }
}

fn lookup<'a>(scope: &'a [(String, String)], prefix: &str) -> Option<&'a str> {
    scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, ns)| ns.as_str())
}

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Parses `input` into its root element, within `limits`.
pub fn parse(input: &[u8], limits: Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            len: input.len(),
            max: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = quick_xml::Reader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.trim_text(false);
    }
    // Stack of open elements; the scope of each is inherited from its parent.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| malformed(pos, e))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(malformed(pos, "content after the root element"));
                }
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        max: limits.max_elements,
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        max: limits.max_depth,
                    });
                }
                stack.push(open_element(&start, stack.last(), pos)?);
            }
            Event::End(_) => {
                let mut done = stack
                    .pop()
                    .ok_or_else(|| malformed(pos, "unbalanced end"))?;
                let trimmed = done.text.trim();
                if trimmed.len() != done.text.len() {
                    done.text = trimmed.to_string();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Empty(_) => {
                // expand_empty_elements turns these into Start+End.
                return Err(malformed(pos, "unexpected empty element event"));
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(malformed(pos, "text outside the root element")),
                }
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&content),
                    None => return Err(malformed(pos, "CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let ch: Cow<'static, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match r.xml10_content().as_ref() {
                        "lt" => Cow::Borrowed("<"),
                        "gt" => Cow::Borrowed(">"),
                        "amp" => Cow::Borrowed("&"),
                        "apos" => Cow::Borrowed("'"),
                        "quot" => Cow::Borrowed("\""),
                        other => {
                            return Err(XmlError::Entity {
                                name: other.to_string(),
                            });
                        }
                    },
                    Err(e) => return Err(malformed(pos, e)),
                };
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&ch),
                    None => return Err(malformed(pos, "reference outside the root element")),
                }
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(reader.buffer_position(), "unclosed element"));
    }
    root.ok_or(XmlError::NoRoot)
}

fn open_element(
    start: &BytesStart<'_>,
    parent: Option<&Element>,
    pos: u64,
) -> Result<Element, XmlError> {
    let mut scope: Vec<(String, String)> = parent.map(|p| p.scope.clone()).unwrap_or_default();
    let mut raw_attrs: Vec<(String, String)> = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(pos, e))?;
        let key: &str = attr.key.as_ref();
        let key = key.to_string();
        let value =
            attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => XmlError::Entity { name },
                    other => malformed(pos, other),
                })?
                .into_owned();
        if key == "xmlns" {
            scope.push((String::new(), value));
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            scope.push((prefix.to_string(), value));
        } else {
            raw_attrs.push((key, value));
        }
    }
    let name = start.name();
    let qname: &str = name.as_ref();
    let qname = qname.to_string();
    let (prefix, local) = split_qname(&qname);
    let ns = match lookup(&scope, prefix) {
        Some(ns) => ns.to_string(),
        None if prefix.is_empty() => String::new(),
        None if prefix == "xml" => XML_NS.to_string(),
        None => {
            return Err(XmlError::UnboundPrefix {
                prefix: prefix.to_string(),
            });
        }
    };
    let mut attrs = Vec::with_capacity(raw_attrs.len());
    for (key, value) in raw_attrs {
        let (p, l) = split_qname(&key);
        // Unprefixed attributes are in no namespace (not the default one).
        let ans = if p.is_empty() {
            String::new()
        } else if p == "xml" {
            XML_NS.to_string()
        } else {
            lookup(&scope, p)
                .ok_or_else(|| XmlError::UnboundPrefix {
                    prefix: p.to_string(),
                })?
                .to_string()
        };
        attrs.push((ans, l.to_string(), value));
    }
    Ok(Element {
        ns,
        name: local.to_string(),
        attrs,
        text: String::new(),
        children: Vec::new(),
        scope,
    })
}

/// Writes XML through quick-xml events. Element names are given with the prefix the
/// document declares (`tds:Manufacturer`); values are escaped by the writer.
pub struct XmlWriter {
    inner: quick_xml::Writer<Vec<u8>>,
}

impl std::fmt::Debug for XmlWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlWriter")
            .field("len", &self.inner.get_ref().len())
            .finish()
    }
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

// Writing into a Vec<u8> cannot fail, so the io::Result of each event is dropped below.
impl XmlWriter {
    pub fn new() -> Self {
        let mut inner = quick_xml::Writer::new(Vec::with_capacity(4096));
        let _ = inner.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        Self { inner }
    }

    /// Opens `name` with attributes.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let start = BytesStart::new(name).with_attributes(attrs.iter().copied());
        let _ = self.inner.write_event(Event::Start(start));
    }

    /// Closes `name`.
    pub fn close(&mut self, name: &str) {
        let _ = self.inner.write_event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_with(name, &[], text);
    }

    /// `<name attrs>text</name>`.
    pub fn leaf_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        let _ = self.inner.write_event(Event::Text(BytesText::new(text)));
        self.close(name);
    }

    /// `<name attrs/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let start = BytesStart::new(name).with_attributes(attrs.iter().copied());
        let _ = self.inner.write_event(Event::Empty(start));
    }

    /// A numeric leaf.
    pub fn num(&mut self, name: &str, value: impl std::fmt::Display) {
        self.leaf(name, &value.to_string());
    }

    /// A boolean leaf (`true`/`false`).
    pub fn boolean(&mut self, name: &str, value: bool) {
        self.leaf(name, if value { "true" } else { "false" });
    }

    pub fn finish(self) -> Vec<u8> {
        self.inner.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_and_references() {
        let doc = br#"<?xml version="1.0"?>
<a:Root xmlns:a="urn:a" xmlns="urn:d"><Child x="1 &amp; 2">t&lt;&#65;<![CDATA[<z>]]></Child><a:Q xmlns:b="urn:b">b:Name</a:Q></a:Root>"#;
        let root = parse(doc, Limits::default()).unwrap();
        assert!(root.is("urn:a", "Root"));
        let child = root.child("urn:d", "Child").unwrap();
        assert_eq!(child.text, "t<A<z>");
        assert_eq!(child.attr("x"), Some("1 & 2"));
        let q = root.child("urn:a", "Q").unwrap();
        assert_eq!(
            q.resolve_qname(&q.text),
            Some(("urn:b".to_string(), "Name".to_string()))
        );
    }

    #[test]
    fn refuses_doctype_entities_and_excess() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>"#;
        assert_eq!(parse(doc, Limits::default()), Err(XmlError::DocType));
        assert!(matches!(
            parse(b"<r>&x;</r>", Limits::default()),
            Err(XmlError::Entity { .. })
        ));
        assert!(matches!(
            parse(b"<r a='&x;'/>", Limits::default()),
            Err(XmlError::Entity { .. })
        ));
        let deep = "<a>".repeat(30) + &"</a>".repeat(30);
        assert!(matches!(
            parse(deep.as_bytes(), Limits::default()),
            Err(XmlError::TooDeep { .. })
        ));
        assert!(matches!(
            parse(b"<p:a/>", Limits::default()),
            Err(XmlError::UnboundPrefix { .. })
        ));
        assert!(parse(b"<a></b>", Limits::default()).is_err());
        assert!(parse(b"<a/><b/>", Limits::default()).is_err());
        assert_eq!(parse(b"  ", Limits::default()), Err(XmlError::NoRoot));
        assert_eq!(
            parse(&[0xff, 0xfe], Limits::default()),
            Err(XmlError::NotUtf8)
        );
    }

    #[test]
    fn writer_escapes() {
        let mut w = XmlWriter::new();
        w.open("r", &[("k", "a\"<")]);
        w.leaf("t", "x & <y>");
        w.close("r");
        let out = w.finish();
        let root = parse(&out, Limits::default()).unwrap();
        assert_eq!(root.attr("k"), Some("a\"<"));
        assert_eq!(root.child_text("t"), Some("x & <y>"));
    }
}
