//! An external command as a value: built first, then printed, tested or run.

use std::fmt;
use std::path::Path;

/// A program and its arguments, built before anything runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandSpec {
    /// The program, looked up in `PATH` unless it contains a `/`.
    pub program: String,
    /// Arguments, without any shell quoting.
    pub args: Vec<String>,
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
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// A `std::process::Command` for this spec.
    pub fn to_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

/// The command line, each word quoted for a POSIX shell so it can be pasted.
impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            f.write_str(" ")?;
            f.write_str(&shell_quote(arg))?;
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

/// A path as a QEMU option value: commas doubled, since QEMU splits option strings on `,`.
pub fn qemu_escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
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
    }
}
