//! `grub.cfg` text: generated from menu entries (serial and normal console, timeout, one
//! `menuentry` per entry), and the short config embedded in the core images that finds it.

use image_runner_core::Error;

/// Where the generated config goes in the image; the embedded config searches for this file.
pub const CONFIG_PATH: &str = "/boot/grub/grub.cfg";
/// The `prefix` GRUB gets once the config's device is found.
pub const PREFIX: &str = "/boot/grub";

pub use image_runner_core::Protocol;

/// The protocols GRUB boots (every one but Limine's), for templates that may use any of them.
pub const PROTOCOLS: [Protocol; 4] = [
    Protocol::Multiboot1,
    Protocol::Multiboot2,
    Protocol::Linux,
    Protocol::EfiChainload,
];

/// Whether GRUB can start a kernel with `protocol`.
pub fn supports(protocol: Protocol) -> bool {
    PROTOCOLS.contains(&protocol)
}

/// The GRUB command that loads the kernel; `None` for a protocol GRUB cannot boot.
fn command(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Multiboot1 => Some("multiboot"),
        Protocol::Multiboot2 => Some("multiboot2"),
        Protocol::Linux => Some("linux"),
        Protocol::EfiChainload => Some("chainloader"),
        _ => None,
    }
}

/// The GRUB command that loads one module with its string, where the protocol has one.
fn module_command(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Multiboot1 => Some("module"),
        Protocol::Multiboot2 => Some("module2"),
        _ => None,
    }
}

/// The GRUB module (`.mod`) providing the loader commands, to embed in core images (as the
/// platform folders' `command.lst` maps them: `chainloader` lives in `chain`); `None` for a
/// protocol GRUB cannot boot.
pub fn grub_module(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Multiboot1 => Some("multiboot"),
        Protocol::Multiboot2 => Some("multiboot2"),
        Protocol::Linux => Some("linux"),
        Protocol::EfiChainload => Some("chain"),
        _ => None,
    }
}

/// A file loaded with the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Module {
    /// GRUB path, like `/boot/modules/initrd.img`.
    pub path: String,
    /// The module's string; empty for none.
    pub cmdline: String,
}

impl Module {
    /// A module at the GRUB path `path` with string `cmdline`.
    pub fn new(path: impl Into<String>, cmdline: impl Into<String>) -> Self {
        Module {
            path: path.into(),
            cmdline: cmdline.into(),
        }
    }
}

/// One `menuentry`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MenuEntry {
    /// The title shown in the menu.
    pub title: String,
    /// How GRUB starts the kernel.
    pub protocol: Protocol,
    /// GRUB path of the kernel, like `/boot/kernel`.
    pub kernel: String,
    /// Kernel command line; empty for none.
    pub cmdline: String,
    /// Modules, in order.
    pub modules: Vec<Module>,
}

impl MenuEntry {
    /// An entry booting `kernel` with `protocol`, without command line or modules.
    pub fn new(title: impl Into<String>, protocol: Protocol, kernel: impl Into<String>) -> Self {
        MenuEntry {
            title: title.into(),
            protocol,
            kernel: kernel.into(),
            cmdline: String::new(),
            modules: Vec::new(),
        }
    }

    /// The same entry with a command line.
    pub fn with_cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }

    /// The same entry with one more module.
    pub fn with_module(mut self, module: Module) -> Self {
        self.modules.push(module);
        self
    }
}

/// The whole generated `grub.cfg`: GRUB's console on the first serial port (115200 baud) and
/// on the normal console, `timeout` seconds before the first entry boots (0: at once), then
/// the entries.
pub fn render(entries: &[MenuEntry], timeout: u32) -> Result<String, Error> {
    let mut out = String::from("# Written by cargo-image-runner.\n");
    out.push_str(&console_lines());
    out.push_str(&format!("set timeout={timeout}\nset default=0\n"));
    out.push_str(&render_entries(entries)?);
    Ok(out)
}

/// The serial and terminal lines of the generated config.
pub fn console_lines() -> String {
    "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n"
        .to_owned()
}

/// The `menuentry` blocks alone, each preceded by an empty line (`{{ENTRIES}}` in templates).
pub fn render_entries(entries: &[MenuEntry]) -> Result<String, Error> {
    if entries.is_empty() {
        return Err(Error::plugin("grub", "there is no entry to boot"));
    }
    let mut out = String::new();
    for entry in entries {
        let command = check(entry)?;
        out.push_str(&format!("\nmenuentry {} {{\n", quote(&entry.title)));
        let mut line = format!("\t{command} {}", quote(&entry.kernel));
        push_words(&mut line, &entry.cmdline, "kernel command line")?;
        out.push_str(&line);
        out.push('\n');
        match module_command(entry.protocol) {
            Some(command) => {
                for module in &entry.modules {
                    let mut line = format!("\t{command} {}", quote(&module.path));
                    push_words(&mut line, &module.cmdline, "module command line")?;
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            // Linux takes all its initrds in one command, which concatenates them.
            None if !entry.modules.is_empty() => {
                out.push_str("\tinitrd");
                for module in &entry.modules {
                    out.push(' ');
                    out.push_str(&quote(&module.path));
                }
                out.push('\n');
            }
            None => {}
        }
        out.push_str("\tboot\n}\n");
    }
    Ok(out)
}

/// Refuses what GRUB cannot write for `entry`; returns the command that loads its kernel.
fn check(entry: &MenuEntry) -> Result<&'static str, Error> {
    let bad = |what: String| {
        Error::plugin(
            "grub",
            format!("menu entry `{}`: {what}", entry.title.escape_debug()),
        )
    };
    if entry.title.trim().is_empty() {
        return Err(Error::plugin("grub", "a menu entry has an empty title"));
    }
    let mut values = vec![("title", &entry.title), ("kernel path", &entry.kernel)];
    values.extend(entry.modules.iter().map(|m| ("module path", &m.path)));
    for (what, value) in values {
        if value.contains(['\n', '\r']) {
            return Err(bad(format!(
                "the {what} `{}` holds a line break",
                value.escape_debug()
            )));
        }
    }
    let command = command(entry.protocol).ok_or_else(|| {
        bad(format!(
            "GRUB cannot boot the `{}` protocol",
            entry.protocol
        ))
    })?;
    match entry.protocol {
        Protocol::EfiChainload if !entry.modules.is_empty() => Err(bad(
            "a chainloaded EFI application takes no modules; remove `modules`".into(),
        )),
        Protocol::Linux => match entry.modules.iter().find(|m| !m.cmdline.trim().is_empty()) {
            Some(module) => Err(bad(format!(
                "Linux initrds take no string, so the module string `{}` cannot be passed; remove it",
                module.cmdline
            ))),
            None => Ok(command),
        },
        _ => Ok(command),
    }
}

/// Appends the words of a command line, each quoted. GRUB joins a command's arguments with
/// single spaces for the kernel (and backslash-escapes `\`, `'` and `"` in them), so runs of
/// whitespace become one space.
fn push_words(line: &mut String, cmdline: &str, what: &str) -> Result<(), Error> {
    for word in cmdline.split_whitespace() {
        let quoted = quote(word);
        if quoted.len() > WORD_MAX {
            let start: String = word.chars().take(24).collect();
            return Err(Error::plugin(
                "grub",
                format!(
                    "a word of the {what} (`{start}…`, {} bytes) is longer than GRUB's config parser takes ({WORD_MAX} bytes; GRUB would abort with `token too large, exceeds YYLMAX`); shorten it, split it into several words, or use another bootloader",
                    quoted.len()
                ),
            ));
        }
        line.push(' ');
        line.push_str(&quoted);
    }
    Ok(())
}

/// The longest word GRUB 2.06's config parser takes (its token buffer, `YYLMAX`, is 8 KiB: a
/// word of 8,180 bytes boots, one of 8,200 makes GRUB abort), less a margin.
const WORD_MAX: usize = 8000;

/// Quotes one word for GRUB's script parser: bare when it only has characters the parser takes
/// literally, else in single quotes (inside which nothing is special), with `'` written as
/// `'\''` as in a POSIX shell.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A file that a `grub.cfg` loads from the device the config is on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadedPath {
    /// The line of the command, counting from 1.
    pub line: usize,
    /// That line as written (trimmed), for messages.
    pub command: String,
    /// The path, without a `($root)` prefix.
    pub path: String,
}

/// The files `text` (a `grub.cfg`) loads from its own device: the kernel of `multiboot`,
/// `multiboot2`, `linux` (`linux16`, `linuxefi`) and `chainloader`, the module of `module` and
/// `module2`, every file of `initrd` (`initrd16`, `initrdefi`), when written as an absolute
/// path (`/boot/kernel`) or under `($root)`. Paths on other devices (`(hd1,gpt1)/...`), built
/// from variables (`$prefix/...`), or given in any other form are left out.
pub fn loaded_paths(text: &str) -> Vec<LoadedPath> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for command in commands(text) {
        let Some((name, args)) = command.split_first() else {
            continue;
        };
        let args = args.iter().filter(|w| !w.text.starts_with("--"));
        let files: Vec<&Word> = match name.text.as_str() {
            "multiboot" | "multiboot2" | "linux" | "linux16" | "linuxefi" | "chainloader"
            | "module" | "module2" => args.take(1).collect(),
            "initrd" | "initrd16" | "initrdefi" => args.collect(),
            _ => continue,
        };
        for word in files {
            let text = word.text.as_str();
            let path = text
                .strip_prefix("($root)")
                .or_else(|| text.strip_prefix("(${root})"))
                .unwrap_or(text);
            if !path.starts_with('/') || path.contains('$') {
                continue;
            }
            found.push(LoadedPath {
                line: name.line,
                command: lines
                    .get(name.line - 1)
                    .map_or_else(String::new, |l| l.trim().to_owned()),
                path: path.to_owned(),
            });
        }
    }
    found
}

/// One word of GRUB's script language, unquoted, and the line it starts on.
#[derive(Debug)]
struct Word {
    text: String,
    line: usize,
}

/// Splits `text` into commands (at line ends, `;`, and `{` / `}` words) of words, the way
/// GRUB's parser reads them: single quotes keep everything, double quotes and backslashes
/// escape, `#` at the start of a word comments out the rest of the line, a backslash before a
/// line end continues the line. `$` is kept in the words (they are not expanded).
fn commands(text: &str) -> Vec<Vec<Word>> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut commands = Vec::new();
    let mut command: Vec<Word> = Vec::new();
    let mut word: Option<Word> = None;
    let mut quoted = false;
    let mut quote = Quote::None;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    // Ends the word being read; a bare `{` or `}` ends the command instead.
    let end_word = |word: &mut Option<Word>,
                    quoted: &mut bool,
                    command: &mut Vec<Word>,
                    commands: &mut Vec<Vec<Word>>| {
        if let Some(w) = word.take() {
            if !*quoted && (w.text == "{" || w.text == "}") {
                commands.push(std::mem::take(command));
            } else {
                command.push(w);
            }
        }
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        let start = |word: &mut Option<Word>| {
            word.get_or_insert_with(|| Word {
                text: String::new(),
                line,
            });
        };
        match quote {
            Quote::Single => {
                if c == '\'' {
                    quote = Quote::None;
                } else if let Some(w) = word.as_mut() {
                    w.text.push(c);
                }
            }
            Quote::Double => match c {
                '"' => quote = Quote::None,
                '\\' if matches!(chars.peek(), Some('$' | '"' | '\\')) => {
                    if let (Some(next), Some(w)) = (chars.next(), word.as_mut()) {
                        w.text.push(next);
                    }
                }
                '\\' if chars.peek() == Some(&'\n') => {
                    chars.next();
                    line += 1;
                }
                _ => {
                    if let Some(w) = word.as_mut() {
                        w.text.push(c);
                    }
                }
            },
            Quote::None => match c {
                '\n' | ';' => {
                    end_word(&mut word, &mut quoted, &mut command, &mut commands);
                    commands.push(std::mem::take(&mut command));
                }
                ' ' | '\t' | '\r' => {
                    end_word(&mut word, &mut quoted, &mut command, &mut commands);
                }
                '#' if word.is_none() => while chars.next_if(|&n| n != '\n').is_some() {},
                '\'' | '"' => {
                    start(&mut word);
                    quoted = true;
                    quote = if c == '\'' {
                        Quote::Single
                    } else {
                        Quote::Double
                    };
                }
                '\\' => match chars.next() {
                    // A continued line.
                    Some('\n') => line += 1,
                    Some(next) => {
                        start(&mut word);
                        quoted = true;
                        if let Some(w) = word.as_mut() {
                            w.text.push(next);
                        }
                    }
                    None => {}
                },
                _ => {
                    start(&mut word);
                    if let Some(w) = word.as_mut() {
                        w.text.push(c);
                    }
                }
            },
        }
        if c == '\n' {
            line += 1;
        }
    }
    end_word(&mut word, &mut quoted, &mut command, &mut commands);
    commands.push(command);
    commands.retain(|c| !c.is_empty());
    commands
}

/// The config embedded in every core image. GRUB starts with `root` on the device it was
/// loaded from, which on a CD booted under UEFI is the El Torito ESP, not the ISO 9660 volume
/// holding the config: so it searches every device for the config file and sets `prefix`
/// there. Normal mode then reads `$prefix/grub.cfg`.
pub fn early_config() -> String {
    format!("search --no-floppy --file --set=root {CONFIG_PATH}\nset prefix=($root){PREFIX}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# Written by cargo-image-runner.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
";

    #[test]
    fn multiboot1() {
        let entry = MenuEntry::new("kernel.elf", Protocol::Multiboot1, "/boot/kernel")
            .with_cmdline("console=ttyS0  quiet")
            .with_module(Module::new("/boot/modules/initrd.img", "initrd rw"))
            .with_module(Module::new("/boot/modules/font.psf", ""));
        assert_eq!(
            render(&[entry], 0).unwrap(),
            format!(
                "{HEAD}set timeout=0
set default=0

menuentry kernel.elf {{
\tmultiboot /boot/kernel console=ttyS0 quiet
\tmodule /boot/modules/initrd.img initrd rw
\tmodule /boot/modules/font.psf
\tboot
}}
"
            )
        );
    }

    #[test]
    fn multiboot2() {
        let entry = MenuEntry::new("My kernel", Protocol::Multiboot2, "/boot/kernel")
            .with_module(Module::new("/boot/modules/ramdisk", "a b"));
        assert_eq!(
            render(&[entry], 5).unwrap(),
            format!(
                "{HEAD}set timeout=5
set default=0

menuentry 'My kernel' {{
\tmultiboot2 /boot/kernel
\tmodule2 /boot/modules/ramdisk a b
\tboot
}}
"
            )
        );
    }

    #[test]
    fn linux_takes_initrds_in_one_command() {
        let entry = MenuEntry::new("Linux", Protocol::Linux, "/boot/kernel")
            .with_cmdline("console=ttyS0 root=/dev/sda1")
            .with_module(Module::new("/boot/modules/initrd.img", ""))
            .with_module(Module::new("/boot/modules/extra.cpio", ""));
        assert_eq!(
            render(std::slice::from_ref(&entry), 0).unwrap(),
            format!(
                "{HEAD}set timeout=0
set default=0

menuentry Linux {{
\tlinux /boot/kernel console=ttyS0 root=/dev/sda1
\tinitrd /boot/modules/initrd.img /boot/modules/extra.cpio
\tboot
}}
"
            )
        );
        let with_string = entry.with_module(Module::new("/boot/x", "y"));
        let err = render(&[with_string], 0).unwrap_err().to_string();
        assert!(err.contains("Linux initrds take no string"), "{err}");
    }

    #[test]
    fn efi_chainload() {
        let entry =
            MenuEntry::new("app", Protocol::EfiChainload, "/boot/kernel").with_cmdline("-v");
        assert_eq!(
            render_entries(std::slice::from_ref(&entry)).unwrap(),
            "\nmenuentry app {\n\tchainloader /boot/kernel -v\n\tboot\n}\n"
        );
        let err = render(&[entry.with_module(Module::new("/m", ""))], 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes no modules"), "{err}");
    }

    #[test]
    fn several_entries_in_order() {
        let entries = [
            MenuEntry::new("a", Protocol::Multiboot2, "/boot/kernel"),
            MenuEntry::new("b", Protocol::Multiboot1, "/boot/entry-1/kernel"),
        ];
        let text = render_entries(&entries).unwrap();
        assert_eq!(
            text,
            "\nmenuentry a {\n\tmultiboot2 /boot/kernel\n\tboot\n}\n\
             \nmenuentry b {\n\tmultiboot /boot/entry-1/kernel\n\tboot\n}\n"
        );
    }

    #[test]
    fn words_with_special_characters_are_quoted() {
        assert_eq!(quote("plain/path-1.0"), "plain/path-1.0");
        assert_eq!(quote("$x"), "'$x'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a{b}"), "'a{b}'");
        assert_eq!(quote(""), "''");
        let entry = MenuEntry::new("t", Protocol::Multiboot2, "/boot/kernel")
            .with_cmdline("x=\"a\" ${y}; z");
        let text = render_entries(&[entry]).unwrap();
        assert!(
            text.contains("\tmultiboot2 /boot/kernel 'x=\"a\"' '${y};' z\n"),
            "{text}"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_title() {
        let err = render(&[], 0).unwrap_err().to_string();
        assert!(err.contains("no entry"), "{err}");
        let err = render(
            &[MenuEntry::new(
                "two\nlines",
                Protocol::Linux,
                "/boot/kernel",
            )],
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line break") && err.contains("two\\nlines"),
            "{err}"
        );
    }

    #[test]
    fn grub_boots_every_protocol_but_limine() {
        assert!(!supports(Protocol::Limine));
        assert!(!PROTOCOLS.contains(&Protocol::Limine));
        for protocol in Protocol::ALL {
            assert_eq!(
                supports(protocol),
                protocol != Protocol::Limine,
                "{protocol}"
            );
            assert_eq!(
                grub_module(protocol).is_some(),
                supports(protocol),
                "{protocol}"
            );
        }
        assert_eq!(grub_module(Protocol::EfiChainload), Some("chain"));
        let err = render_entries(&[MenuEntry::new("l", Protocol::Limine, "/boot/kernel")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("menu entry `l`") && err.contains("cannot boot the `limine` protocol"),
            "{err}"
        );
    }

    #[test]
    fn loaded_paths_are_read_like_grub_reads_commands() {
        let text = "# multiboot /commented
set root=(hd0)
menuentry 'a;b' { multiboot ($root)/boot/kernel x=/y; module --nounzip \"/boot/a b\" /s ; boot }
linux (${root})/k\\
  /cmdline
initrd /i1 '/i 2' newc:n:/x (hd1,gpt1)/o $prefix/p /i\\$3
chainloader --force /app.efi
echo /not-loaded
multiboot2 '/it''s'
";
        let paths = loaded_paths(text);
        let found: Vec<(usize, &str)> = paths.iter().map(|p| (p.line, p.path.as_str())).collect();
        assert_eq!(
            found,
            [
                (3, "/boot/kernel"),
                (3, "/boot/a b"),
                (4, "/k"),
                (6, "/i1"),
                (6, "/i 2"),
                (7, "/app.efi"),
                (9, "/its"),
            ]
        );
        assert_eq!(paths[5].command, "chainloader --force /app.efi");
    }

    #[test]
    fn the_early_config_finds_the_generated_one() {
        assert_eq!(
            early_config(),
            "search --no-floppy --file --set=root /boot/grub/grub.cfg\nset prefix=($root)/boot/grub\n"
        );
    }

    /// A word GRUB's parser cannot take is refused before any image is written (issue 18,
    /// item 10: GRUB aborted at boot and the run spun until its time limit).
    #[test]
    fn a_command_line_word_longer_than_grubs_parser_takes_is_refused() {
        let fits = MenuEntry::new("k", Protocol::Multiboot2, "/boot/kernel")
            .with_cmdline(format!("a {} b", "x".repeat(WORD_MAX)));
        assert!(render(&[fits], 0).is_ok());
        let long = MenuEntry::new("k", Protocol::Multiboot2, "/boot/kernel")
            .with_cmdline(format!("a ktest={}", "1,".repeat(5000)));
        let err = render(&[long], 0).unwrap_err().to_string();
        assert!(err.contains("`ktest=1,1,1,"), "{err}");
        assert!(err.contains("10006 bytes"), "{err}");
        assert!(err.contains("YYLMAX"), "{err}");
    }
}
