//! A cursor over one record's bytes: strict JSON tokens (whitespace,
//! strings with escapes, numbers, literals) and skipping of whole values
//! without building them. Anything outside strict JSON, or that the scanner
//! does not handle, is a [`Bail`]: the caller hands the batch to arrow-json.

use memchr::memchr2;

/// The scanner gives up on this batch; arrow-json decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bail;

/// Result of a scanning step.
pub(super) type Scan<T> = Result<T, Bail>;

/// Deepest nesting skipped; deeper records go to arrow-json (which has no limit).
const MAX_DEPTH: usize = 64;

/// A JSON number's text and whether it has neither fraction nor exponent.
pub(super) struct Number<'a> {
    /// The token, e.g. `-12.5e3`.
    pub text: &'a [u8],
    /// `-?digits` only.
    pub integer: bool,
}

/// A string value: borrowed from the record when it has no escapes,
/// otherwise decoded into the caller's scratch buffer.
pub(super) enum Text<'a> {
    /// A slice of the record (valid UTF-8: the record was checked whole).
    Borrowed(&'a str),
    /// Escapes were decoded into the scratch buffer.
    Decoded,
}

/// Position in one record. The record is valid UTF-8 (checked up front),
/// so slicing it between ASCII delimiters always yields whole characters.
pub(super) struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, bytes: text.as_bytes(), pos: 0 }
    }

    /// Bytes from the cursor on.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Moves the cursor `n` bytes on.
    pub fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte, without moving.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` or bails.
    #[inline]
    pub fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.bytes.len()
    }

    /// Consumes the literal `word` (`null`, `true`, `false`) or bails.
    #[inline]
    pub fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.rest().starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// After an opening quote: the string up to its closing quote, escapes
    /// decoded into `scratch` (then [`Text::Decoded`]).
    #[inline]
    pub fn string(&mut self, scratch: &mut String) -> Scan<Text<'a>> {
        let start = self.pos;
        let stop = memchr2(b'"', b'\\', &self.bytes[start..]).ok_or(Bail)?;
        self.pos = start + stop;
        if self.bytes[self.pos] == b'"' {
            self.pos += 1;
            return Ok(Text::Borrowed(&self.text[start..start + stop]));
        }
        scratch.clear();
        scratch.push_str(&self.text[start..self.pos]);
        loop {
            // At a backslash.
            self.pos += 1;
            let escaped = self.unescape()?;
            scratch.push(escaped);
            let from = self.pos;
            let stop = memchr2(b'"', b'\\', &self.bytes[from..]).ok_or(Bail)?;
            self.pos = from + stop;
            scratch.push_str(&self.text[from..self.pos]);
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(Text::Decoded);
            }
        }
    }

    /// After an opening quote: skips the string, checking its escapes as
    /// decoding would.
    pub fn skip_string(&mut self) -> Scan<()> {
        loop {
            let stop = memchr2(b'"', b'\\', &self.bytes[self.pos..]).ok_or(Bail)?;
            self.pos += stop + 1;
            if self.bytes[self.pos - 1] == b'"' {
                return Ok(());
            }
            self.unescape()?;
        }
    }

    /// After a backslash: the escaped character (surrogate pairs joined;
    /// a lone surrogate bails, as arrow-json rejects it).
    fn unescape(&mut self) -> Scan<char> {
        let byte = self.peek().ok_or(Bail)?;
        self.pos += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                match high {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(Bail);
                        }
                        let code = (((high - 0xD800) as u32) << 10) | ((low - 0xDC00) as u32 + 0x1_0000);
                        char::from_u32(code).ok_or(Bail)?
                    }
                    _ => char::from_u32(high as u32).ok_or(Bail)?,
                }
            }
            _ => return Err(Bail),
        })
    }

    fn hex4(&mut self) -> Scan<u16> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Bail)?;
        let mut value = 0u16;
        for &digit in digits {
            value = (value << 4) | char::from(digit).to_digit(16).ok_or(Bail)? as u16;
        }
        self.pos += 4;
        Ok(value)
    }

    /// A number in strict JSON grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    pub fn number(&mut self) -> Scan<Number<'a>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Bail),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits()?;
            integer = false;
        }
        Ok(Number { text: &self.bytes[start..self.pos], integer })
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Scan<()> {
        let start = self.pos;
        self.digits();
        if self.pos == start { Err(Bail) } else { Ok(()) }
    }

    /// After a member or element: a `,` (more follow: false) or the
    /// container's `close` (it ended: true); anything else bails.
    #[inline]
    fn item_end(&mut self, close: u8) -> Scan<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(Bail),
        }
    }

    /// Skips one value of any type (checked, not built).
    pub fn skip_value(&mut self, depth: usize) -> Scan<()> {
        match self.peek().ok_or(Bail)? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(Bail);
                }
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.expect(b'"')?;
                    self.skip_string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    if self.item_end(b'}')? {
                        return Ok(());
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Bail);
                }
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if self.item_end(b']')? {
                        return Ok(());
                    }
                }
            }
            _ => Err(Bail),
        }
    }
}
