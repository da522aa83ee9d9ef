//! Writing the protocol's serial lines (PROTOCOL.md, section 3).

use core::fmt::{self, Write};

/// Writes everything through, escaped to stay on one line: `\` as `\\`, newline as `\n`,
/// carriage return as `\r`, any other ASCII control character as `\xHH`.
pub struct Escaped<'a, W: Write + ?Sized>(pub &'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b if b.is_ascii_control() => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\x{byte:02x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

impl<W: Write + ?Sized> fmt::Debug for Escaped<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Escaped")
    }
}

/// Longest `expected` text of a `should_panic` test (the attribute checks it at compile time).
pub const MAX_EXPECTED: usize = 256;

/// Tells whether the text written through it contains `needle`, without storing the text:
/// it keeps only the last `needle.len()` bytes.
#[derive(Debug)]
pub struct Contains<'a> {
    needle: &'a [u8],
    window: [u8; MAX_EXPECTED],
    filled: usize,
    found: bool,
}

impl<'a> Contains<'a> {
    /// A needle longer than [`MAX_EXPECTED`] is cut to its first [`MAX_EXPECTED`] bytes.
    pub fn new(needle: &'a str) -> Self {
        let needle = needle.as_bytes();
        Contains {
            needle: &needle[..needle.len().min(MAX_EXPECTED)],
            window: [0; MAX_EXPECTED],
            filled: 0,
            found: needle.is_empty(),
        }
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

impl Write for Contains<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = self.needle.len();
        for &byte in s.as_bytes() {
            if self.found {
                break;
            }
            if self.filled == n {
                self.window.copy_within(1..n, 0);
                self.filled -= 1;
            }
            self.window[self.filled] = byte;
            self.filled += 1;
            self.found = self.window[..self.filled] == *self.needle;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_one_line() {
        let mut out = String::new();
        write!(Escaped(&mut out), "a\\b\nc\rd\x07e\x7f é").expect("write");
        assert_eq!(out, "a\\\\b\\nc\\rd\\x07e\\x7f é");
    }

    #[test]
    fn contains_sees_across_writes() {
        let mut c = Contains::new("bo om");
        for piece in ["x", "b", "o om!"] {
            c.write_str(piece).expect("write");
        }
        assert!(c.found());
        let mut c = Contains::new("boom");
        write!(c, "bobo bom boo").expect("write");
        assert!(!c.found());
        let mut c = Contains::new("aab");
        write!(c, "aaab").expect("write");
        assert!(c.found());
        assert!(Contains::new("").found());
    }
}
