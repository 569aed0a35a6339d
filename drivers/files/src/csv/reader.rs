//! A streaming RFC 4180 record reader that tells, for every field, whether it was quoted.
//!
//! The `csv` crate does not report quoting, and the extractor needs it to keep an unquoted empty
//! field (NULL) apart from a quoted one (`""`, the empty string). This reader parses exactly like
//! `csv` with `flexible(true)`, no escape character and doubled quotes:
//!
//! * a UTF-8 byte order mark at the start of the input is dropped;
//! * before a record, line breaks (blank lines) and lines starting with the comment character
//!   are skipped;
//! * a record ends at `\n`, `\r` or `\r\n` outside quotes, or at the end of the input;
//! * a field starting with `"` is quoted: `""` inside it is one quote, line breaks and delimiters
//!   are data, and it ends at the next single quote; anything after that up to the delimiter or
//!   line end is appended as is;
//! * a quote inside an unquoted field is an ordinary character.
//!
//! Two deliberate differences: a quoted field still open at the end of the input is an error
//! ([`ReadError::UnterminatedQuote`], naming the line of the opening quote) where `csv` silently
//! takes the rest of the input as the field, since one stray quote would otherwise merge the rest
//! of a file into one value; and `csv` reads a comment line at the very end of the input, without
//! a line break, as a record of one empty field, which is skipped here like any other comment line.
//!
//! Memory is bounded by the buffer (64 KiB, or the longest record if longer). Each record carries
//! the line it starts on, counting `\n` bytes from 1.

use std::io::{self, Read};

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Longest record accepted. Longer ones are almost always an unterminated quote that would
/// otherwise pull the rest of the file into memory.
pub(crate) const MAX_RECORD_BYTES: usize = 64 << 20;

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The input could not be read.
    Io(io::Error),
    /// A quoted field opened on `line` is still open at the end of the input.
    UnterminatedQuote { line: u64 },
    /// The record starting on `line` is longer than [`MAX_RECORD_BYTES`].
    RecordTooLong { line: u64 },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::UnterminatedQuote { line } => {
                write!(f, "line {line}: a quoted field opened on this line is never closed (unterminated quote)")
            }
            ReadError::RecordTooLong { line } => write!(
                f,
                "line {line}: the record starting on this line is longer than {} MiB; is a quote (\") left unclosed?",
                MAX_RECORD_BYTES >> 20
            ),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// What [`parse_record`] found at the start of its input.
enum Parsed {
    /// A whole record: the bytes used (with the terminator) and the `\n`s inside quotes.
    Record { used: usize, newlines: u64 },
    /// The record may continue past the input: read more.
    NeedMore,
    /// The input ends inside a quoted field that opened after `newlines` line breaks of the record.
    Unterminated { newlines: u64 },
}

/// One CSV record: its bytes, and where each field lies in them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    data: Vec<u8>,
    fields: Vec<Span>,
    line: u64,
}

/// A field of a [`Record`]: `data[start..end]`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    quoted: bool,
    /// The raw text still holds doubled quotes, or text after the closing quote (parsing only).
    unescape: bool,
}

impl Record {
    /// Number of fields.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// The bytes of field `i` (quotes removed, doubled quotes undone).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        let f = self.fields.get(i)?;
        self.data.get(f.start..f.end)
    }

    /// Whether field `i` started with a quote (`""` is a quoted empty field).
    #[inline]
    pub(crate) fn is_quoted(&self, i: usize) -> bool {
        self.fields.get(i).is_some_and(|f| f.quoted)
    }

    /// The line the record starts on (1-based).
    #[inline]
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The fields in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
    }
}

/// Reads [`Record`]s from a byte stream.
pub(crate) struct RecordReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`.
    pos: usize,
    /// End of the valid bytes in `buf`.
    filled: usize,
    eof: bool,
    started: bool,
    in_comment: bool,
    delimiter: u8,
    comment: Option<u8>,
    /// Bytes that end an unquoted field: the delimiter, `\r` and `\n`.
    stops: [bool; 256],
    /// Line number of `buf[pos]`.
    line: u64,
    /// Input offset of `buf[pos]`.
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader splitting fields at `delimiter` and skipping lines that start with `comment`.
    pub(crate) fn new(inner: R, delimiter: u8, comment: Option<u8>, capacity: usize) -> Self {
        let mut stops = [false; 256];
        stops[delimiter as usize] = true;
        stops[b'\r' as usize] = true;
        stops[b'\n' as usize] = true;
        RecordReader {
            inner,
            buf: vec![0; capacity.max(64)],
            pos: 0,
            filled: 0,
            eof: false,
            started: false,
            in_comment: false,
            delimiter,
            comment,
            stops,
            line: 1,
            offset: 0,
        }
    }

    /// Bytes of input consumed so far (up to the end of the last record or skipped line).
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The current line (where the next record or skipped line starts).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next record into `rec`; `false` at the end of the input.
    pub(crate) fn read_record(&mut self, rec: &mut Record) -> Result<bool, ReadError> {
        if !self.started {
            while self.filled - self.pos < BOM.len() && !self.eof {
                self.fill()?;
            }
            if self.buf[self.pos..self.filled].starts_with(BOM) {
                self.advance(BOM.len());
            }
            self.started = true;
        }
        // Blank lines and comment lines before the record.
        loop {
            if self.pos == self.filled {
                if self.eof {
                    rec.clear();
                    return Ok(false);
                }
                self.fill()?;
                continue;
            }
            let rest = &self.buf[self.pos..self.filled];
            if self.in_comment {
                match rest.iter().position(|&c| c == b'\n') {
                    Some(k) => {
                        self.advance(k + 1);
                        self.line += 1;
                        self.in_comment = false;
                    }
                    None => self.advance(rest.len()),
                }
                continue;
            }
            match rest[0] {
                b'\n' => {
                    self.advance(1);
                    self.line += 1;
                }
                b'\r' => self.advance(1),
                c if Some(c) == self.comment => {
                    self.advance(1);
                    self.in_comment = true;
                }
                _ => break,
            }
        }
        rec.line = self.line;
        loop {
            let input = &self.buf[self.pos..self.filled];
            match parse_record(input, self.eof, self.delimiter, &self.stops, rec) {
                Parsed::Record { used, newlines } => {
                    self.advance(used);
                    self.line += newlines;
                    return Ok(true);
                }
                Parsed::Unterminated { newlines } => {
                    return Err(ReadError::UnterminatedQuote { line: self.line + newlines });
                }
                Parsed::NeedMore => self.fill()?,
            }
        }
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Moves the unparsed bytes to the front, grows the buffer when they fill it, and reads more.
    fn fill(&mut self) -> Result<(), ReadError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Err(ReadError::RecordTooLong { line: self.line });
            }
            let bigger = (self.buf.len() * 2).min(MAX_RECORD_BYTES);
            self.buf.resize(bigger, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Parses one record from the start of `b` (which is not a line break) into `rec`.
///
/// The record's bytes are copied once; fields are spans of them. Only a quoted field with doubled
/// quotes (or text after its closing quote) is rewritten, in place.
#[inline]
fn parse_record(b: &[u8], eof: bool, delimiter: u8, stops: &[bool; 256], rec: &mut Record) -> Parsed {
    rec.fields.clear();
    let mut i = 0;
    let mut newlines = 0u64;
    let mut rewrite = false;
    let used = loop {
        let quoted = i < b.len() && b[i] == b'"';
        let (start, mut end, mut unescape) = (i + usize::from(quoted), 0, false);
        if quoted {
            let opened_after = newlines;
            i += 1;
            // Up to the closing quote.
            loop {
                while i < b.len() && b[i] != b'"' {
                    newlines += u64::from(b[i] == b'\n');
                    i += 1;
                }
                if i + 1 < b.len() {
                    if b[i + 1] == b'"' {
                        unescape = true;
                        i += 2;
                        continue;
                    }
                } else if !eof {
                    return Parsed::NeedMore;
                } else if i == b.len() {
                    return Parsed::Unterminated { newlines: opened_after };
                }
                i += 1;
                break;
            }
            end = i - 1;
        }
        let tail = i;
        while i < b.len() && !stops[b[i] as usize] {
            i += 1;
        }
        if !quoted || i > tail {
            unescape |= quoted;
            end = i;
        }
        rewrite |= unescape;
        rec.fields.push(Span { start, end, quoted, unescape });
        if i == b.len() {
            if !eof {
                return Parsed::NeedMore;
            }
            break i;
        }
        let c = b[i];
        i += 1;
        if c != delimiter {
            // `\r` or `\n`; the `\n` of a `\r\n` is skipped before the next record.
            newlines += u64::from(c == b'\n');
            break i;
        }
    };
    rec.data.clear();
    rec.data.extend_from_slice(&b[..used]);
    if rewrite {
        for f in rec.fields.iter_mut().filter(|f| f.unescape) {
            f.end = unescape_in_place(&mut rec.data, f.start, f.end);
            f.unescape = false;
        }
    }
    Parsed::Record { used, newlines }
}

/// Rewrites the raw text of a quoted field after its opening quote, `data[start..end]`: `""` is
/// one quote inside the quotes, a single quote closes them, and anything after is kept as is.
/// Returns the new end.
fn unescape_in_place(data: &mut [u8], start: usize, end: usize) -> usize {
    let (mut r, mut w) = (start, start);
    let mut in_quotes = true;
    while r < end {
        let c = data[r];
        r += 1;
        if in_quotes && c == b'"' {
            if r < end && data[r] == b'"' {
                r += 1;
            } else {
                in_quotes = false;
                continue;
            }
        }
        data[w] = c;
        w += 1;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to exercise buffer refills.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    type Fields = Vec<(Vec<u8>, bool)>;

    fn parse(input: &[u8], comment: Option<u8>, step: usize, capacity: usize) -> Vec<(u64, Fields)> {
        let (records, unterminated) = parse_until_error(input, comment, step, capacity);
        assert_eq!(unterminated, None, "input {:?}", String::from_utf8_lossy(input));
        records
    }

    /// The records before an unterminated quote, and the line that quote opened on.
    fn parse_until_error(
        input: &[u8],
        comment: Option<u8>,
        step: usize,
        capacity: usize,
    ) -> (Vec<(u64, Fields)>, Option<u64>) {
        let mut r = RecordReader::new(Trickle { data: input, step }, b',', comment, capacity);
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match r.read_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(ReadError::UnterminatedQuote { line }) => return (out, Some(line)),
                Err(e) => panic!("{e}"),
            }
            let fields = (0..rec.len()).map(|i| (rec.get(i).unwrap().to_vec(), rec.is_quoted(i))).collect();
            out.push((rec.line(), fields));
        }
        assert_eq!(r.offset(), input.len() as u64);
        (out, None)
    }

    fn reference(input: &[u8], comment: Option<u8>) -> Vec<Vec<Vec<u8>>> {
        let mut r = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).comment(comment).from_reader(input);
        let mut rec = ::csv::ByteRecord::new();
        let mut out = Vec::new();
        while r.read_byte_record(&mut rec).unwrap() {
            out.push(rec.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    #[test]
    fn quoted_flags_lines_and_edge_cases() {
        let input =
            b"\xef\xbb\xbfa,\"\",,\"x\"\"y\"\r\n\n# note, \"q\"\n\"multi\nline\",b\"c\rlast,\"\"\"\",\"closed\nend\"";
        let got = parse(input, Some(b'#'), 3, 64);
        let f = |s: &str, q: bool| (s.as_bytes().to_vec(), q);
        assert_eq!(
            got,
            vec![
                (1, vec![f("a", false), f("", true), f("", false), f("x\"y", true)]),
                (4, vec![f("multi\nline", true), f("b\"c", false)]),
                (5, vec![f("last", false), f("\"", true), f("closed\nend", true)]),
            ]
        );
        assert_eq!(parse(b"", None, 1, 64), vec![]);
        assert_eq!(parse(b"\n\r\n", None, 1, 64), vec![]);
        assert_eq!(parse(b"x,", None, 1, 64), vec![(1, vec![f("x", false), f("", false)])]);
        assert_eq!(parse(b"\"\"", None, 1, 64), vec![(1, vec![f("", true)])]);
        assert_eq!(parse(b"\"a\" b,c", None, 1, 64), vec![(1, vec![f("a b", true), f("c", false)])]);
    }

    #[test]
    fn an_unterminated_quote_is_an_error_naming_the_line_it_opened_on() {
        for step in [1, 5, 1 << 16] {
            let (records, line) = parse_until_error(b"a,b\n1,\"x\ny\"\n2,\"open\n3,c\n4,d\n", None, step, 64);
            assert_eq!(records.len(), 2);
            assert_eq!(line, Some(4));
            // The quote opens on the record's second line, after a closed multi-line field.
            let (_, line) = parse_until_error(b"\"a\nb\",\"c\nd\",\"e\nf", None, step, 64);
            assert_eq!(line, Some(3));
            let (records, line) = parse_until_error(b"\"", None, step, 64);
            assert_eq!((records.len(), line), (0, Some(1)));
        }
    }

    /// Random inputs over the interesting bytes parse to the same fields as the `csv` crate, except
    /// that an input ending inside quotes is an error after the records before it.
    #[test]
    fn matches_the_csv_crate() {
        let alphabet = b"ab,\"\"\n\r#\xef";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..4000 {
            let len = (next() % 40) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if case % 5 == 0 {
                input.splice(0..0, BOM.iter().copied());
            }
            let comment = (case % 2 == 0).then_some(b'#');
            if comment.is_some() && input.last() != Some(&b'\n') {
                // `csv` turns a comment line at the very end without a line break into a record
                // of one empty field; this reader skips it like any other comment line.
                input.push(b'\n');
            }
            let want = reference(&input, comment);
            for (step, capacity) in [(1, 64), (7, 64), (1 << 16, 1 << 16)] {
                let (records, unterminated) = parse_until_error(&input, comment, step, capacity);
                let got: Vec<Vec<Vec<u8>>> =
                    records.into_iter().map(|(_, fields)| fields.into_iter().map(|(v, _)| v).collect()).collect();
                let shown = String::from_utf8_lossy(&input);
                if unterminated.is_some() {
                    // `csv` takes the rest of the input as the last record's field: the input ends
                    // inside quotes, so closing them parses to the same records plus that one.
                    let mut closed = input.clone();
                    closed.push(b'"');
                    let (whole, still_open) = parse_until_error(&closed, comment, step, capacity);
                    assert_eq!((whole.len(), still_open), (got.len() + 1, None), "input {shown:?}");
                    assert_eq!(got.len() + 1, want.len(), "input {shown:?}");
                    assert_eq!(got[..], want[..got.len()], "input {shown:?}");
                } else {
                    assert_eq!(got, want, "input {shown:?}");
                }
            }
        }
    }

    #[test]
    fn an_unclosed_quote_stops_at_the_record_size_limit() {
        /// `a,"` followed by endless text: the quote never closes.
        struct Unclosed(bool);
        impl Read for Unclosed {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let head: &[u8] = if self.0 { b"" } else { b"a,\"" };
                self.0 = true;
                buf[..head.len()].copy_from_slice(head);
                buf[head.len()..].fill(b'x');
                Ok(buf.len())
            }
        }
        let mut reader = RecordReader::new(Unclosed(false), b',', None, 1 << 16);
        let err = reader.read_record(&mut Record::default()).unwrap_err();
        assert!(matches!(err, ReadError::RecordTooLong { line: 1 }), "{err}");
    }

    #[test]
    fn long_records_grow_the_buffer() {
        let long = "y".repeat(1000);
        let input = format!("a,{long}\n\"{long}\n{long}\",b\n");
        let got = parse(input.as_bytes(), None, 100, 64);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1[1].0, long.as_bytes());
        assert_eq!(got[1].0, 2);
        assert_eq!(got[1].1[0].0, format!("{long}\n{long}").as_bytes());
    }
}
