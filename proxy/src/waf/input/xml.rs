//! XML bodies: every attribute an argument (`element@attribute`), every text
//! or CDATA node an argument named by its element; DOCTYPEs (where entity
//! declarations hide) are inspected as text.

use std::borrow::Cow;

use super::{Parsed, Problem, Source, MAX_DEPTH, MAX_VARS};

impl<'r> Parsed<'r> {
    pub(super) fn xml(&mut self, body: &'r [u8], truncated: bool) -> bool {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(body);
        let mut stack: Vec<String> = Vec::new();
        let mut buf = Vec::new();
        loop {
            if self.vars.len() >= MAX_VARS {
                return true;
            }
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    for attr in e.attributes().with_checks(false).flatten() {
                        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                        let value = attr
                            .unescape_value()
                            .map(|v| v.into_owned().into_bytes())
                            .unwrap_or_else(|_| attr.value.into_owned());
                        self.arg(
                            Cow::Owned(format!("{name}@{key}").into_bytes()),
                            Cow::Owned(value),
                        );
                    }
                    if stack.len() < MAX_DEPTH {
                        stack.push(name);
                    }
                }
                Ok(Event::End(_)) => {
                    stack.pop();
                }
                Ok(Event::Text(t)) => {
                    let text = t
                        .unescape()
                        .map(|v| v.into_owned().into_bytes())
                        .unwrap_or_else(|_| t.into_inner().into_owned());
                    if !text.trim_ascii().is_empty() {
                        let name = stack.last().cloned().unwrap_or_default();
                        self.arg(Cow::Owned(name.into_bytes()), Cow::Owned(text));
                    }
                }
                Ok(Event::CData(t)) => {
                    let name = stack.last().cloned().unwrap_or_default();
                    self.arg(
                        Cow::Owned(name.into_bytes()),
                        Cow::Owned(t.into_inner().into_owned()),
                    );
                }
                Ok(Event::DocType(t)) => {
                    // DOCTYPEs carry entity declarations (XXE): inspect them as text.
                    let mut v = b"<!DOCTYPE ".to_vec();
                    v.extend_from_slice(&t.into_inner());
                    self.push(Source::Body, Cow::Borrowed(""), Cow::Owned(v));
                }
                Ok(Event::Eof) => return true,
                Ok(_) => {}
                // A truncated body may end mid-construct: inspect it raw as well.
                Err(_) if truncated => return false,
                Err(_) => {
                    self.problems.push(Problem::BodyUnparsable("xml"));
                    return false;
                }
            }
            buf.clear();
        }
    }
}
