//! A strict streaming view of repository XML: no DOCTYPE, no entity declarations, only the
//! predefined entities and character references. Events borrow the reader's buffer, so
//! parsing allocates only for the values a caller keeps.

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::reader::Reader;

/// A simplified XML event, borrowing the reader's buffer until the next call.
pub(crate) enum Ev<'b> {
    Start(BytesStart<'b>),
    /// An element with no content (`<x/>`); no matching `End` follows.
    Empty(BytesStart<'b>),
    End(BytesEnd<'b>),
    Text(Cow<'b, str>),
    /// A declaration, comment or processing instruction: nothing to do.
    Skip,
    Eof,
}

/// The longest run of bytes without a `<` or `>`: one tag or one text node. Real metadata's
/// longest are descriptions and changelogs, kilobytes; anything longer is refused before it is
/// held in memory.
pub(crate) const MAX_RUN: usize = 4 << 20;

/// A reader that fails once more than [`MAX_RUN`] bytes pass without markup.
pub(crate) struct Bounded<R> {
    inner: R,
    run: usize,
}

impl<R: BufRead> std::io::Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Bounded<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.run > MAX_RUN {
            return Err(std::io::Error::other(format!(
                "an element or text node is longer than {MAX_RUN} bytes"
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(avail) = self.inner.fill_buf() {
            let seen = &avail[..amt.min(avail.len())];
            self.run = match seen.iter().rposition(|&b| b == b'<' || b == b'>') {
                Some(i) => seen.len() - 1 - i,
                None => self.run + seen.len(),
            };
        }
        self.inner.consume(amt);
    }
}

pub(crate) struct XmlStream<R: BufRead> {
    reader: Reader<Bounded<R>>,
    buf: Vec<u8>,
    /// False: text is passed over as [`Ev::Skip`], neither decoded nor checked (a parser
    /// sets it outside the elements whose text it keeps, such as descriptions). Entity
    /// references are still checked.
    pub(crate) keep_text: bool,
}

impl<R: BufRead> XmlStream<R> {
    pub(crate) fn new(r: R) -> Self {
        let mut reader = Reader::from_reader(Bounded { inner: r, run: 0 });
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        XmlStream {
            reader,
            buf: Vec::with_capacity(64 * 1024),
            keep_text: true,
        }
    }

    pub(crate) fn event(&mut self) -> Result<Ev<'_>, String> {
        self.buf.clear();
        let pos = self.reader.buffer_position();
        let ev = self
            .reader
            .read_event_into(&mut self.buf)
            .map_err(|e| format!("malformed XML near byte {pos}: {e}"))?;
        convert(ev, self.keep_text)
    }
}

/// A strict view of repository XML already in memory (a chunk of a large file): events
/// borrow the bytes themselves, nothing is copied. The caller bounds the slice's size.
pub(crate) struct XmlSlice<'a> {
    reader: Reader<&'a [u8]>,
    /// As [`XmlStream::keep_text`].
    pub(crate) keep_text: bool,
}

impl<'a> XmlSlice<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(bytes);
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        XmlSlice {
            reader,
            keep_text: true,
        }
    }
}

/// What the metadata parsers read: a stream or a slice.
pub(crate) trait Events {
    /// The next event.
    fn next_event(&mut self) -> Result<Ev<'_>, String>;
    /// Whether text is decoded (see [`XmlStream::keep_text`]).
    fn set_keep_text(&mut self, keep: bool);
}

impl<R: BufRead> Events for XmlStream<R> {
    fn next_event(&mut self) -> Result<Ev<'_>, String> {
        self.event()
    }
    fn set_keep_text(&mut self, keep: bool) {
        self.keep_text = keep;
    }
}

impl Events for XmlSlice<'_> {
    fn next_event(&mut self) -> Result<Ev<'_>, String> {
        let pos = self.reader.buffer_position();
        let ev = self
            .reader
            .read_event()
            .map_err(|e| format!("malformed XML near byte {pos}: {e}"))?;
        convert(ev, self.keep_text)
    }
    fn set_keep_text(&mut self, keep: bool) {
        self.keep_text = keep;
    }
}

/// A quick-xml event as an [`Ev`]: only the predefined entities, no DOCTYPE.
fn convert(ev: Event<'_>, keep_text: bool) -> Result<Ev<'_>, String> {
    Ok(match ev {
        Event::Start(s) => Ev::Start(s),
        Event::Empty(s) => Ev::Empty(s),
        Event::End(e) => Ev::End(e),
        Event::Text(_) | Event::CData(_) if !keep_text => Ev::Skip,
        Event::Text(t) => Ev::Text(t.decode().map_err(|e| format!("bad text encoding: {e}"))?),
        Event::CData(t) => Ev::Text(Cow::Owned(String::from_utf8_lossy(&t).into_owned())),
        Event::GeneralRef(r) => {
            if r.is_char_ref() {
                match r.resolve_char_ref() {
                    Ok(Some(_)) if !keep_text => Ev::Skip,
                    Ok(Some(c)) => Ev::Text(Cow::Owned(c.to_string())),
                    _ => return Err("invalid character reference".into()),
                }
            } else {
                let name = r.decode().map_err(|e| e.to_string())?;
                let text = Ev::Text(Cow::Borrowed(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => return Err(format!("undefined entity `&{other};`")),
                }));
                if keep_text { text } else { Ev::Skip }
            }
        }
        Event::DocType(_) => {
            return Err(
                "DOCTYPE and entity declarations are not allowed in repository metadata".into(),
            );
        }
        Event::Eof => Ev::Eof,
        Event::Decl(_) | Event::PI(_) | Event::Comment(_) => Ev::Skip,
    })
}

/// The value of attribute `name` (by qualified name, e.g. `xml:base`).
pub(crate) fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, String> {
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
