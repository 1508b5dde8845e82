//! A strict streaming view of repository XML: no DOCTYPE, no entity declarations, only the
//! predefined entities and character references.

use std::io::BufRead;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// A simplified XML event.
pub enum Ev {
    Start(BytesStart<'static>),
    /// An element with no content (`<x/>`); no matching `End` follows.
    Empty(BytesStart<'static>),
    End(Vec<u8>),
    Text(String),
    Eof,
}

pub struct XmlStream<R: BufRead> {
    reader: Reader<R>,
    buf: Vec<u8>,
}

impl<R: BufRead> XmlStream<R> {
    pub fn new(r: R) -> Self {
        let mut reader = Reader::from_reader(r);
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        XmlStream {
            reader,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Byte position, for messages.
    pub fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    pub fn event(&mut self) -> Result<Ev, String> {
        loop {
            self.buf.clear();
            let ev = self.reader.read_event_into(&mut self.buf).map_err(|e| {
                format!(
                    "malformed XML at byte {}: {e}",
                    self.reader.error_position()
                )
            })?;
            return Ok(match ev {
                Event::Start(s) => Ev::Start(s.into_owned()),
                Event::Empty(s) => Ev::Empty(s.into_owned()),
                Event::End(e) => Ev::End(e.local_name().as_ref().to_vec()),
                Event::Text(t) => Ev::Text(
                    t.decode()
                        .map_err(|e| format!("bad text encoding: {e}"))?
                        .into_owned(),
                ),
                Event::CData(t) => Ev::Text(String::from_utf8_lossy(&t).into_owned()),
                Event::GeneralRef(r) => {
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => Ev::Text(c.to_string()),
                            _ => return Err("invalid character reference".into()),
                        }
                    } else {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        Ev::Text(
                            match name.as_ref() {
                                "amp" => "&",
                                "lt" => "<",
                                "gt" => ">",
                                "quot" => "\"",
                                "apos" => "'",
                                other => return Err(format!("undefined entity `&{other};`")),
                            }
                            .to_owned(),
                        )
                    }
                }
                Event::DocType(_) => {
                    return Err(
                        "DOCTYPE and entity declarations are not allowed in repository metadata"
                            .into(),
                    );
                }
                Event::Eof => Ev::Eof,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
            });
        }
    }
}

/// The value of attribute `name` (by qualified name, e.g. `xml:base`).
pub fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        if a.key.as_ref() == name {
            return a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| Some(v.into_owned()))
                .map_err(|e| format!("bad attribute value: {e}"));
        }
    }
    Ok(None)
}

/// Local name of an element (`rpm:entry` → `entry`).
pub fn local(e: &BytesStart<'_>) -> Vec<u8> {
    e.local_name().as_ref().to_vec()
}
