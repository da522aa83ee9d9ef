//! An external command as a value: built first, then printed, tested or run.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::Path;

/// A program and its arguments, built before anything runs. Arguments are `OsString`s, so a
/// path that is not UTF-8 reaches the program unchanged; [`fmt::Display`] prints the command
/// for a shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CommandSpec {
    /// The program, looked up in `PATH` unless it contains a `/`.
    pub program: String,
    /// Arguments, without any shell quoting.
    pub args: Vec<OsString>,
}

impl CommandSpec {
    /// A command with no arguments yet.
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Whether some argument equals `word`.
    pub fn has_arg(&self, word: &str) -> bool {
        self.args.iter().any(|a| a == word)
    }

    /// The arguments as text, for tests and messages (bytes that are not UTF-8 become U+FFFD).
    pub fn args_lossy(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// A `std::process::Command` for this spec; every argument is passed as it is.
    pub fn to_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

/// The command line, each word quoted for a POSIX shell so it can be pasted (a word that is
/// not UTF-8 is written as `$'…'` with `\xNN` escapes, which bash, zsh and ksh read back
/// byte for byte).
impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            f.write_str(" ")?;
            f.write_str(&shell_quote_os(arg))?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell; words made only of characters no shell treats specially
/// stay bare (commas and `=` included, so QEMU option lists read as typed). (A word with a NUL
/// byte, which no shell can pass, is quoted as text.)
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    match shlex::try_quote(word) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("'{}'", word.replace('\'', r"'\''")),
    }
}

/// Like [`shell_quote`], for a word that may not be UTF-8: such a word is written as `$'…'`
/// (ANSI-C quoting), its bytes outside printable ASCII as `\xNN`.
pub fn shell_quote_os(word: &OsStr) -> String {
    if let Some(text) = word.to_str() {
        return shell_quote(text);
    }
    let mut quoted = String::from("$'");
    for &byte in word.as_encoded_bytes() {
        match byte {
            b'\'' | b'\\' => {
                quoted.push('\\');
                quoted.push(char::from(byte));
            }
            0x20..=0x7e => quoted.push(char::from(byte)),
            _ => quoted.push_str(&format!("\\x{byte:02x}")),
        }
    }
    quoted.push('\'');
    quoted
}

/// A path as a QEMU option value: commas doubled, since QEMU splits option strings on `,`.
/// Bytes that are not UTF-8 become U+FFFD; [`qemu_escape_os`] keeps them.
pub fn qemu_escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// A path as a QEMU option value, byte for byte: commas doubled.
pub fn qemu_escape_os(path: &Path) -> OsString {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut escaped = Vec::with_capacity(bytes.len());
    for &byte in bytes {
        escaped.push(byte);
        if byte == b',' {
            escaped.push(b',');
        }
    }
    // SAFETY: the input was an `OsStr`'s encoded bytes and only ASCII commas, each after an
    // ASCII comma, were added, which keeps it a valid encoding.
    unsafe { OsString::from_encoded_bytes_unchecked(escaped) }
}

/// `prefix`, then `path` escaped for QEMU ([`qemu_escape_os`]), then `suffix`: one option value
/// such as `file=PATH,snapshot=on`, byte for byte.
pub fn qemu_option(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut value = OsString::from(prefix);
    value.push(qemu_escape_os(path));
    value.push(suffix);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut cmd = CommandSpec::new("qemu-system-x86_64");
        cmd.args(["-m", "256M", "file=/a b/c,,d.img", "it's", ""]);
        assert_eq!(
            cmd.to_string(),
            r#"qemu-system-x86_64 -m 256M 'file=/a b/c,,d.img' "it's" ''"#
        );
    }

    #[test]
    fn qemu_values_double_commas() {
        assert_eq!(qemu_escape(Path::new("/x/a,b,c")), "/x/a,,b,,c");
        assert_eq!(qemu_escape_os(Path::new("/x/a,b,c")), "/x/a,,b,,c");
        assert_eq!(
            qemu_option("file=", Path::new("/a,b"), ",snapshot=on"),
            "file=/a,,b,snapshot=on"
        );
    }

    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_utf8_pass_unchanged_and_print_as_ansi_c_quotes() {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let path = Path::new(OsStr::from_bytes(b"/k/ker\xffnel,x 'q'"));
        let mut cmd = CommandSpec::new("qemu-system-x86_64");
        cmd.arg("-kernel")
            .arg(path)
            .arg(qemu_option("file=", path, ""));
        assert_eq!(cmd.args[1].as_bytes(), b"/k/ker\xffnel,x 'q'");
        assert_eq!(cmd.args[2].as_bytes(), b"file=/k/ker\xffnel,,x 'q'");
        let command = cmd.to_command();
        let passed: Vec<Vec<u8>> = command
            .get_args()
            .map(|a| a.to_os_string().into_vec())
            .collect();
        assert_eq!(passed[1], b"/k/ker\xffnel,x 'q'");
        assert_eq!(
            cmd.to_string(),
            r"qemu-system-x86_64 -kernel $'/k/ker\xffnel,x \'q\'' $'file=/k/ker\xffnel,,x \'q\''"
        );
        assert!(cmd.has_arg("-kernel"));
        assert_eq!(cmd.args_lossy()[1], "/k/ker\u{fffd}nel,x 'q'");
    }
}
