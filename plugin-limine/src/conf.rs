//! `limine.conf` text: generated from structured entries in the syntax of the Limine major
//! version in use, or expanded from the user's template.
//!
//! The format since 8.x: `#` comments on their own lines, global options first
//! (`timeout: 0`, `serial: yes`), then entries opened by `/Title` with indented
//! `option: value` lines. Limine 7.x and older read `limine.cfg` in another syntax and are not
//! supported here. The keys differ between major versions (from Limine's `CONFIG.md` of 8.2.0
//! and of the current trunk, and its protocol sources):
//!
//! | what | 8.x | 9.x and later |
//! |---|---|---|
//! | executable (limine, linux, multiboot1/2) | `kernel_path` (`path` is not understood: "KERNEL_PATH not specified") | `path` (`kernel_path` stays an alias) |
//! | EFI application (`efi_chainload`) | `image_path` | `path` (`image_path` stays an alias) |
//! | kernel command line | `cmdline` | `cmdline` |
//! | module | `module_path` | `module_path` |
//! | module string, limine protocol | `module_cmdline` | `module_cmdline` (alias of `module_string`) |
//! | module string, multiboot1/2 | `module_string` | `module_string` |
//! | module string, linux | none: Linux modules (initrds) take no string | none |
//!
//! The protocol is written `efi_chainload` for every version: 9.x added `efi` and kept
//! `efi_chainload` as its alias.

use image_runner_core::config::Variables;

use crate::error::LimineError;

/// `timeout` when nothing else is asked: boot the first entry at once.
pub const DEFAULT_TIMEOUT: u32 = 0;
/// `serial` when nothing else is asked: Limine's menu and messages on the serial port too, so
/// a headless run shows them.
pub const DEFAULT_SERIAL: bool = true;
/// The oldest Limine major version whose config syntax this module writes.
pub const OLDEST_MAJOR: u32 = 8;

/// The boot protocols, as the core decides them ([`Protocol::resolve`] and
/// `ctx.decisions.protocol()`); this module only spells them for `limine.conf`.
pub use image_runner_core::Protocol;

/// The value of the `protocol:` option for `protocol`; `None` for a protocol Limine has no
/// name for.
pub fn limine_name(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Limine => Some("limine"),
        Protocol::Multiboot1 => Some("multiboot1"),
        Protocol::Multiboot2 => Some("multiboot2"),
        Protocol::Linux => Some("linux"),
        Protocol::EfiChainload => Some("efi_chainload"),
        _ => None,
    }
}

/// The option naming the executable of a `protocol` entry, in the syntax of `major`.
pub fn path_key(protocol: Protocol, major: u32) -> &'static str {
    match (protocol, major) {
        (_, 9..) => "path",
        (Protocol::EfiChainload, _) => "image_path",
        _ => "kernel_path",
    }
}

/// The option carrying a module's string under `protocol`, if the protocol has one.
pub fn module_string_key(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Limine => Some("module_cmdline"),
        Protocol::Multiboot1 | Protocol::Multiboot2 => Some("module_string"),
        _ => None,
    }
}

/// A module loaded with the executable (an initrd, a ramdisk, a driver).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Module {
    /// Limine path, like `boot():/boot/initrd.img`.
    pub path: String,
    /// The module's string (command line); empty for none.
    pub cmdline: String,
}

impl Module {
    /// A module at the Limine path `path`, without a string.
    pub fn new(path: impl Into<String>) -> Self {
        Module {
            path: path.into(),
            cmdline: String::new(),
        }
    }

    /// The same module with a string.
    pub fn with_cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }
}

/// One menu entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimineEntry {
    /// The title shown in the menu.
    pub title: String,
    /// How Limine boots it.
    pub protocol: Protocol,
    /// Limine path of the executable, like `boot():/boot/kernel`.
    pub kernel_path: String,
    /// Kernel command line; empty for none.
    pub cmdline: String,
    /// Modules, in order.
    pub modules: Vec<Module>,
}

impl LimineEntry {
    /// An entry booting `kernel_path` with `protocol`, no command line, no modules.
    pub fn new(
        title: impl Into<String>,
        protocol: Protocol,
        kernel_path: impl Into<String>,
    ) -> Self {
        LimineEntry {
            title: title.into(),
            protocol,
            kernel_path: kernel_path.into(),
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

/// Writes a `limine.conf` for Limine `major`.x booting `entries` (the first boots after
/// `timeout` seconds; 0 boots at once), with Limine's serial output on when `serial`.
///
/// Errors name the entry and the value that cannot be written: a line break in any value
/// (it would end the option), a title starting with `/` or `+` (they mean sub-entries and
/// expanded directories), an empty path, a module string Limine's protocol cannot carry,
/// modules on an EFI application, a major version older than 8.
pub fn render_conf(
    entries: &[LimineEntry],
    timeout: u32,
    serial: bool,
    major: u32,
) -> Result<String, LimineError> {
    if major < OLDEST_MAJOR {
        return Err(LimineError::Conf(format!(
            "Limine {major}.x reads limine.cfg in an older syntax that is not supported; use Limine {OLDEST_MAJOR}.x or newer (`limine.version`)"
        )));
    }
    if entries.is_empty() {
        return Err(LimineError::Conf("there is no entry to boot".into()));
    }
    let mut out = format!(
        "# Written by cargo-image-runner in the Limine {major}.x syntax.\ntimeout: {timeout}\n"
    );
    if serial {
        out.push_str("serial: yes\n");
    }
    for entry in entries {
        let name = check_entry(entry)?;
        let protocol = entry.protocol;
        out.push('\n');
        out.push_str(&format!("/{}\n", entry.title.trim()));
        push_option(&mut out, "protocol", name);
        push_option(&mut out, path_key(protocol, major), &entry.kernel_path);
        if !entry.cmdline.is_empty() {
            push_option(&mut out, "cmdline", &entry.cmdline);
        }
        for module in &entry.modules {
            push_option(&mut out, "module_path", &module.path);
            if let (Some(key), false) = (module_string_key(protocol), module.cmdline.is_empty()) {
                push_option(&mut out, key, &module.cmdline);
            }
        }
    }
    Ok(out)
}

fn push_option(out: &mut String, key: &str, value: &str) {
    out.push_str("    ");
    out.push_str(key);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

/// Checks that `entry` can be written, and returns its protocol's `limine.conf` name.
fn check_entry(entry: &LimineEntry) -> Result<&'static str, LimineError> {
    let title = entry.title.trim();
    let bad =
        |what: String| LimineError::Conf(format!("entry `{}`: {what}", entry.title.escape_debug()));
    if title.is_empty() {
        return Err(LimineError::Conf("an entry has an empty title".into()));
    }
    if title.starts_with(['/', '+']) {
        return Err(bad(
            "a title may not start with `/` or `+` (Limine reads them as sub-entry and expanded-directory marks)".into(),
        ));
    }
    let mut values = vec![
        ("title", entry.title.as_str()),
        ("path", entry.kernel_path.as_str()),
        ("cmdline", entry.cmdline.as_str()),
    ];
    for module in &entry.modules {
        values.push(("module path", module.path.as_str()));
        values.push(("module cmdline", module.cmdline.as_str()));
    }
    for (what, value) in values {
        if value.contains(['\n', '\r']) {
            return Err(bad(format!(
                "the {what} `{}` holds a line break, which would end the option",
                value.escape_debug()
            )));
        }
    }
    if entry.kernel_path.trim().is_empty() {
        return Err(bad("the executable path is empty".into()));
    }
    let Some(name) = limine_name(entry.protocol) else {
        return Err(bad(format!(
            "Limine has no `{}` boot protocol",
            entry.protocol
        )));
    };
    if entry.protocol == Protocol::EfiChainload && !entry.modules.is_empty() {
        return Err(bad(
            "an EFI application (efi_chainload) takes no modules".into()
        ));
    }
    for module in &entry.modules {
        if module.path.trim().is_empty() {
            return Err(bad("a module path is empty".into()));
        }
        if !module.cmdline.is_empty() && module_string_key(entry.protocol).is_none() {
            return Err(bad(format!(
                "the {name} protocol gives modules no string, so the module string `{}` cannot be passed",
                module.cmdline
            )));
        }
    }
    Ok(name)
}

/// The options whose value is a file Limine loads (a missing one stops the boot).
const FILE_KEYS: [&str; 4] = ["path", "kernel_path", "image_path", "module_path"];

/// A file on the boot partition that a `limine.conf` names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootPath {
    /// The line it is on, counting from 1.
    pub line: usize,
    /// The option as written (trimmed), for messages.
    pub option: String,
    /// The path after `boot():` or `boot(N):`, with macros expanded and a `#hash` suffix
    /// removed.
    pub path: String,
}

/// The files `text` (a `limine.conf`) loads from the boot drive: the values of `path`,
/// `kernel_path`, `image_path` and `module_path` (in any case) given as `boot():/...` or
/// `boot(N):/...`, after expanding the config's `${NAME}=value` macros. Values naming another
/// resource (`hdd(...)`, `guid(...)`, `tftp(...)`, ...) or an undefined macro (such as
/// Limine's built-in `${ARCH}`) are left out: they cannot be checked against the image.
pub fn boot_paths(text: &str) -> Vec<BootPath> {
    let mut macros: Vec<(String, String)> = Vec::new();
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("${")
            && let Some((name, value)) = rest.split_once("}=")
        {
            macros.push((format!("${{{name}}}"), value.to_owned()));
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !FILE_KEYS.iter().any(|k| key.trim().eq_ignore_ascii_case(k)) {
            continue;
        }
        let mut value = value.trim().to_owned();
        for (name, replacement) in &macros {
            value = value.replace(name.as_str(), replacement);
        }
        if value.contains("${") {
            continue;
        }
        let Some(rest) = value.strip_prefix("boot(") else {
            continue;
        };
        let Some((partition, path)) = rest.split_once(')') else {
            continue;
        };
        let Some(path) = path.strip_prefix(':') else {
            continue;
        };
        if !partition.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = match path.rsplit_once('#') {
            Some((file, hash))
                if !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                file
            }
            _ => path,
        };
        found.push(BootPath {
            line: i + 1,
            option: line.to_owned(),
            path: path.to_owned(),
        });
    }
    found
}

/// Expands `{{NAME}}` variables in a user's `limine.conf` template, with runner-core's
/// variables (built-ins such as `{{EXECUTABLE_NAME}}` plus the user's `variables` table).
pub fn render_template(
    template: &str,
    vars: &Variables,
) -> Result<String, image_runner_core::Error> {
    vars.expand(template, "limine.conf template")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limine_entry() -> LimineEntry {
        LimineEntry::new("kernel", Protocol::Limine, "boot():/boot/kernel")
            .with_cmdline("console=ttyS0 quiet")
            .with_module(Module::new("boot():/boot/initrd").with_cmdline("initrd"))
            .with_module(Module::new("boot():/boot/font.psf"))
    }

    #[test]
    fn every_core_protocol_has_a_limine_name() {
        let names: Vec<_> = Protocol::ALL.iter().map(|&p| limine_name(p)).collect();
        assert_eq!(
            names,
            [
                Some("limine"),
                Some("multiboot1"),
                Some("multiboot2"),
                Some("linux"),
                Some("efi_chainload"),
            ]
        );
    }

    #[test]
    fn limine_protocol_8() {
        let text = render_conf(&[limine_entry()], 0, true, 8).unwrap();
        assert_eq!(
            text,
            "# Written by cargo-image-runner in the Limine 8.x syntax.
timeout: 0
serial: yes

/kernel
    protocol: limine
    kernel_path: boot():/boot/kernel
    cmdline: console=ttyS0 quiet
    module_path: boot():/boot/initrd
    module_cmdline: initrd
    module_path: boot():/boot/font.psf
"
        );
    }

    #[test]
    fn limine_protocol_9_and_10() {
        for major in [9, 10] {
            let text = render_conf(&[limine_entry()], 3, false, major).unwrap();
            assert_eq!(
                text,
                format!(
                    "# Written by cargo-image-runner in the Limine {major}.x syntax.
timeout: 3

/kernel
    protocol: limine
    path: boot():/boot/kernel
    cmdline: console=ttyS0 quiet
    module_path: boot():/boot/initrd
    module_cmdline: initrd
    module_path: boot():/boot/font.psf
"
                )
            );
        }
    }

    fn multiboot(protocol: Protocol) -> LimineEntry {
        LimineEntry::new("mb", protocol, "boot():/boot/kernel.elf")
            .with_module(Module::new("boot():/boot/mod").with_cmdline("mod arg"))
    }

    #[test]
    fn multiboot_1_and_2() {
        for (protocol, name) in [
            (Protocol::Multiboot1, "multiboot1"),
            (Protocol::Multiboot2, "multiboot2"),
        ] {
            for (major, key) in [(8, "kernel_path"), (9, "path"), (10, "path")] {
                let text = render_conf(&[multiboot(protocol)], 0, true, major).unwrap();
                assert_eq!(
                    text,
                    format!(
                        "# Written by cargo-image-runner in the Limine {major}.x syntax.
timeout: 0
serial: yes

/mb
    protocol: {name}
    {key}: boot():/boot/kernel.elf
    module_path: boot():/boot/mod
    module_string: mod arg
"
                    )
                );
            }
        }
    }

    #[test]
    fn linux() {
        let entry = LimineEntry::new("Linux", Protocol::Linux, "boot():/vmlinuz")
            .with_cmdline("console=ttyS0")
            .with_module(Module::new("boot():/initrd.img"));
        for (major, key) in [(8, "kernel_path"), (9, "path"), (10, "path")] {
            let text = render_conf(std::slice::from_ref(&entry), 0, true, major).unwrap();
            assert_eq!(
                text,
                format!(
                    "# Written by cargo-image-runner in the Limine {major}.x syntax.
timeout: 0
serial: yes

/Linux
    protocol: linux
    {key}: boot():/vmlinuz
    cmdline: console=ttyS0
    module_path: boot():/initrd.img
"
                )
            );
        }
        let with_string = entry.with_module(Module::new("boot():/x").with_cmdline("y"));
        let err = render_conf(&[with_string], 0, true, 8)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux protocol gives modules no string"),
            "{err}"
        );
    }

    #[test]
    fn efi_chainload() {
        let entry = LimineEntry::new("app", Protocol::EfiChainload, "boot():/EFI/app.efi");
        for (major, key) in [(8, "image_path"), (9, "path"), (10, "path")] {
            let text = render_conf(std::slice::from_ref(&entry), 0, true, major).unwrap();
            assert_eq!(
                text,
                format!(
                    "# Written by cargo-image-runner in the Limine {major}.x syntax.
timeout: 0
serial: yes

/app
    protocol: efi_chainload
    {key}: boot():/EFI/app.efi
"
                )
            );
        }
        let err = render_conf(&[entry.with_module(Module::new("boot():/m"))], 0, true, 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes no modules"), "{err}");
    }

    #[test]
    fn several_entries_in_order() {
        let a = LimineEntry::new("a", Protocol::Limine, "boot():/a");
        let b = LimineEntry::new("b", Protocol::Multiboot2, "boot():/b");
        let text = render_conf(&[a, b], 5, true, 8).unwrap();
        assert!(
            text.ends_with(
                "\n/a\n    protocol: limine\n    kernel_path: boot():/a\n\n/b\n    protocol: multiboot2\n    kernel_path: boot():/b\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn values_that_would_break_the_file_are_refused() {
        let cases = [
            (
                LimineEntry::new("a", Protocol::Limine, "boot():/k").with_cmdline("x\ntimeout: 9"),
                "line break",
            ),
            (
                LimineEntry::new("/sub", Protocol::Limine, "boot():/k"),
                "may not start",
            ),
            (
                LimineEntry::new("  ", Protocol::Limine, "boot():/k"),
                "empty title",
            ),
            (
                LimineEntry::new("a", Protocol::Limine, " "),
                "path is empty",
            ),
        ];
        for (entry, expected) in cases {
            let err = render_conf(&[entry], 0, true, 8).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let err = render_conf(&[], 0, true, 8).unwrap_err().to_string();
        assert!(err.contains("no entry"), "{err}");
        let err = render_conf(&[limine_entry()], 0, true, 7)
            .unwrap_err()
            .to_string();
        assert!(err.contains("limine.cfg"), "{err}");
    }

    #[test]
    fn boot_paths_are_found_with_macros_any_case_and_hashes() {
        let text = "${K}=boot():/boot/kernel
# kernel_path: boot():/commented
timeout: 0
/Entry: one
    protocol: limine
    KERNEL_PATH: ${K}
    module_path: boot(2):/m#0a1B
    module_path: boot():/with#name
    module_path: hdd(1:1):/other
    module_path: ${ARCH}/x
    cmdline: path: boot():/not-a-file
    image_path:boot():/efi.app
";
        let paths = boot_paths(text);
        let found: Vec<(usize, &str)> = paths.iter().map(|p| (p.line, p.path.as_str())).collect();
        assert_eq!(
            found,
            [
                (6, "/boot/kernel"),
                (7, "/m"),
                (8, "/with#name"),
                (12, "/efi.app"),
            ]
        );
        assert_eq!(boot_paths(text)[0].option, "KERNEL_PATH: ${K}");
    }

    #[test]
    fn templates_expand_runner_variables() {
        let mut vars = Variables::new();
        vars.set("EXECUTABLE_NAME", "kernel");
        let text = render_template(
            "timeout: 0\n/{{EXECUTABLE_NAME}}\n    path: boot():/boot/{{ EXECUTABLE_NAME }}\n",
            &vars,
        )
        .unwrap();
        assert_eq!(text, "timeout: 0\n/kernel\n    path: boot():/boot/kernel\n");
        let err = render_template("{{NOPE}}", &vars).unwrap_err().to_string();
        assert!(err.contains("limine.conf template"), "{err}");
    }
}
