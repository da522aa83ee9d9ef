//! Watching the guest's serial output: success and failure patterns that end the run, `send`
//! rules that type text when a prompt appears, and the signs that the bootloader or the
//! firmware gave up ([`BootWatch`]).

use regex::Regex;

use image_runner_core::Error;
use image_runner_core::config::SendRule;

/// What a piece of output triggered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// The success pattern matched this text.
    Success(String),
    /// The failure pattern matched this text.
    Failure(String),
    /// A send rule fired: type this.
    Send(String),
    /// The bootloader or the firmware gave up; the text says how, in its own words.
    BootFailure(String),
}

/// How much recent output is kept for matching (patterns spanning more are not supported).
const WINDOW: usize = 64 * 1024;

/// Scans serial output as it arrives.
#[derive(Debug, Clone)]
pub struct Watch {
    success: Option<Regex>,
    failure: Option<Regex>,
    sends: std::collections::VecDeque<(Regex, String)>,
    /// Output not yet consumed by a send rule, trimmed to [`WINDOW`].
    window: String,
    boot: Option<BootWatch>,
    done: bool,
    /// A verdict came from a line that has not ended yet.
    line_open: bool,
}

/// Patterns are line-oriented: `^` and `$` match at line starts and ends, with `\r\n` endings
/// (what most kernels print) treated as one line end.
fn compile(pattern: &str, key: &str) -> Result<Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .multi_line(true)
        .crlf(true)
        .build()
        .map_err(|e| Error::Config(format!("`{key}` is not a valid regular expression: {e}")))
}

impl Watch {
    /// Compiles the patterns; `mode` is `test` or `run` (for error messages).
    pub fn new(
        success: Option<&str>,
        failure: Option<&str>,
        sends: &[SendRule],
        mode: &str,
    ) -> Result<Watch, Error> {
        Ok(Watch {
            success: success
                .map(|p| compile(p, &format!("{mode}.success-pattern")))
                .transpose()?,
            failure: failure
                .map(|p| compile(p, &format!("{mode}.failure-pattern")))
                .transpose()?,
            sends: sends
                .iter()
                .map(|rule| {
                    Ok((
                        compile(&rule.after, &format!("{mode}.send.after"))?,
                        rule.text.clone(),
                    ))
                })
                .collect::<Result<_, Error>>()?,
            window: String::new(),
            boot: None,
            done: false,
            line_open: false,
        })
    }

    /// The same watch also looking for a bootloader or firmware that gives up.
    pub fn with_boot_watch(mut self) -> Watch {
        self.boot = Some(BootWatch::new());
        self
    }

    /// Whether anything is being watched for.
    pub fn is_active(&self) -> bool {
        self.success.is_some()
            || self.failure.is_some()
            || !self.sends.is_empty()
            || self.boot.is_some()
    }

    /// Whether a verdict was reached.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the line the verdict came from is still open (no line end seen after it yet).
    pub fn line_open(&self) -> bool {
        self.line_open
    }

    /// Feeds new output; returns what it triggered, at most one verdict.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        if self.done {
            if self.line_open && bytes.contains(&b'\n') {
                self.line_open = false;
            }
            return hits;
        }
        if !self.is_active() {
            return hits;
        }
        if let Some(boot) = &mut self.boot {
            for hit in boot.feed(bytes) {
                match hit {
                    BootHit::Type(text) => hits.push(Hit::Send(text)),
                    BootHit::GaveUp(reason) => {
                        self.done = true;
                        hits.push(Hit::BootFailure(reason));
                        return hits;
                    }
                }
            }
        }
        if self.success.is_none() && self.failure.is_none() && self.sends.is_empty() {
            return hits;
        }
        self.window.push_str(&String::from_utf8_lossy(bytes));
        if self.window.len() > WINDOW {
            let mut cut = self.window.len() - WINDOW;
            while !self.window.is_char_boundary(cut) {
                cut += 1;
            }
            self.window.drain(..cut);
        }
        // A failure seen in the same output as a success wins: never report a false pass.
        if let Some(m) = self.failure.as_ref().and_then(|re| re.find(&self.window)) {
            self.done = true;
            self.line_open = !self.window[m.end()..].contains('\n');
            hits.push(Hit::Failure(m.as_str().to_owned()));
            return hits;
        }
        if let Some(m) = self.success.as_ref().and_then(|re| re.find(&self.window)) {
            self.done = true;
            hits.push(Hit::Success(m.as_str().to_owned()));
            return hits;
        }
        while let Some((after, _)) = self.sends.front() {
            let Some(m) = after.find(&self.window) else {
                break;
            };
            let end = m.end();
            if let Some((_, text)) = self.sends.pop_front() {
                hits.push(Hit::Send(text));
            }
            // The next rule waits for output after this prompt.
            self.window.drain(..end);
        }
        hits
    }
}

/// The console output as lines of text: escape sequences dropped, and a cursor moved to
/// another row (how firmware consoles draw, often without any line feed) taken as a line end.
#[derive(Debug, Clone, Default)]
struct Screen {
    line: Vec<u8>,
    escape: Escape,
    /// The cursor position the last `ESC [ row ; col H` set.
    cursor: Option<(u32, u32)>,
    done: Vec<String>,
}

#[derive(Debug, Clone, Default)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// After `ESC (` or `ESC )`: one more byte (the character set) to skip.
    Charset,
    /// Inside `ESC [`, with the parameters so far.
    Csi(String),
}

impl Screen {
    /// Ends the current line, if it has text.
    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line).trim().to_owned();
        self.line.clear();
        if !text.is_empty() {
            self.done.push(text);
        }
    }

    fn csi(&mut self, params: &str, command: u8) {
        match command {
            b'H' | b'f' => {
                let mut numbers = params
                    .split(';')
                    .map(|p| p.trim_start_matches(['?', '=']).parse::<u32>().unwrap_or(1));
                let row = numbers.next().unwrap_or(1);
                let col = numbers.next().unwrap_or(1);
                if let Some((last_row, last_col)) = self.cursor
                    && (row != last_row || col < last_col)
                {
                    self.end_line();
                }
                self.cursor = Some((row, col));
            }
            b'J' => self.end_line(),
            _ => {}
        }
    }

    /// Takes output; returns the lines it completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        for &b in bytes {
            match std::mem::take(&mut self.escape) {
                Escape::None => match b {
                    0x1b => self.escape = Escape::Start,
                    b'\n' => self.end_line(),
                    b'\t' => self.line.push(b' '),
                    0x08 => {
                        self.line.pop();
                    }
                    0x00..=0x1f | 0x7f => {}
                    _ if self.line.len() < 4096 => self.line.push(b),
                    _ => {}
                },
                Escape::Start => match b {
                    b'[' => self.escape = Escape::Csi(String::new()),
                    b'(' | b')' => self.escape = Escape::Charset,
                    _ => {}
                },
                Escape::Charset => {}
                Escape::Csi(mut params) => match b {
                    0x40..=0x7e => self.csi(&params, b),
                    _ if params.len() < 32 => {
                        params.push(b as char);
                        self.escape = Escape::Csi(params);
                    }
                    _ => {}
                },
            }
        }
        std::mem::take(&mut self.done)
    }

    /// The line being written, not ended yet (a prompt, say).
    fn partial(&self) -> String {
        String::from_utf8_lossy(&self.line).trim().to_owned()
    }
}

/// What the boot watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootHit {
    /// The bootloader or firmware gave up: the run is over. The text quotes it.
    GaveUp(String),
    /// Type this to get past a wait that only delays the verdict (GRUB's "Press any key to
    /// continue..." after a failed entry, which would otherwise wait 10 s).
    Type(String),
}

/// How many context lines (GRUB's errors, the firmware's failed boot options) are quoted.
const CONTEXT_LINES: usize = 4;

/// Recognises, in a console's output, a bootloader or firmware that has given up and will
/// never start the kernel:
///
/// - Limine's panic: `PANIC: <message>`, `Stacktrace:`, `End of trace.` (then it waits for a
///   key or halts);
/// - GRUB: `Failed to boot both default and fallback entries.` after its `error: ...` lines,
///   or its rescue prompt (`grub rescue>`), or its command prompt after errors, or its abort
///   (`fatal error: ...`, then `Aborted. Press any key to exit.`: a config line longer than
///   its parser takes ends there, `token too large, exceeds YYLMAX`);
/// - OVMF/AAVMF: `BdsDxe: No bootable option or device was found.`, or its UEFI shell started
///   after the boot options failed (a shell booted on purpose only has its `startup.nsh`
///   countdown answered);
/// - SeaBIOS (on its debug console): `No bootable device.`.
#[derive(Debug, Clone, Default)]
pub struct BootWatch {
    screen: Screen,
    /// A Limine panic's message, and whether its stack trace has begun.
    panic: Option<(String, bool)>,
    grub_errors: Vec<String>,
    /// GRUB's "Press any key" on the current line was answered.
    typed_on_line: bool,
    /// The firmware's failed boot attempts.
    firmware: Vec<String>,
    done: bool,
}

fn push_context(lines: &mut Vec<String>, line: &str) {
    if lines.len() == CONTEXT_LINES {
        lines.remove(0);
    }
    lines.push(line.to_owned());
}

impl BootWatch {
    /// A watch that has seen nothing yet.
    pub fn new() -> BootWatch {
        BootWatch::default()
    }

    /// Feeds console output; returns what it triggered (at most one `GaveUp`, after which the
    /// watch stops).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<BootHit> {
        let mut hits = Vec::new();
        if self.done {
            return hits;
        }
        for line in self.screen.push(bytes) {
            let hit = self.line(&line, true);
            // A key prompt answered while it was the line being written is not answered again
            // when its line ends.
            self.typed_on_line = false;
            if let Some(hit) = hit {
                hits.push(hit);
                if self.done {
                    return hits;
                }
            }
        }
        let partial = self.screen.partial();
        if !partial.is_empty()
            && let Some(hit) = self.line(&partial, false)
        {
            hits.push(hit);
        }
        hits
    }

    fn gave_up(&mut self, reason: String) -> Option<BootHit> {
        self.done = true;
        Some(BootHit::GaveUp(reason))
    }

    fn context(lines: &[String]) -> String {
        lines.join("; ")
    }

    /// Looks at one line of text; `complete` is false for the line still being written.
    fn line(&mut self, line: &str, complete: bool) -> Option<BootHit> {
        // Limine.
        if complete && line.starts_with("PANIC: ") {
            self.panic = Some((line.to_owned(), false));
            return None;
        }
        if let Some((message, trace)) = &mut self.panic {
            if *trace && line.contains("End of trace.") {
                let reason = format!("Limine gave up: {message}");
                return self.gave_up(reason);
            }
            if complete && !*trace {
                if line.starts_with("Stacktrace:") {
                    *trace = true;
                } else if message.len() < 1024 {
                    // The rest of a message the console wrapped onto the next row.
                    message.push_str(line);
                }
            }
            return None;
        }
        // GRUB.
        if complete && line.starts_with("fatal error: ") {
            push_context(&mut self.grub_errors, line);
            return None;
        }
        if line.contains("Aborted. Press any key to exit.") {
            let mut reason = if self.grub_errors.is_empty() {
                "GRUB aborted".to_owned()
            } else {
                format!("GRUB aborted: {}", Self::context(&self.grub_errors))
            };
            if self.grub_errors.iter().any(|e| e.contains("YYLMAX")) {
                reason.push_str(
                    " (a word of its config is longer than GRUB's parser takes, about 8 KiB: a long kernel command line or module argument)",
                );
            }
            return self.gave_up(reason);
        }
        if complete && line.starts_with("error: ") {
            push_context(&mut self.grub_errors, line);
            return None;
        }
        if line.contains("Failed to boot both default and fallback entries.") {
            let reason = if self.grub_errors.is_empty() {
                "GRUB failed to boot both its default and fallback entries".to_owned()
            } else {
                format!(
                    "GRUB gave up: {} (it failed to boot both its default and fallback entries)",
                    Self::context(&self.grub_errors)
                )
            };
            return self.gave_up(reason);
        }
        if line.starts_with("grub rescue>") {
            let reason = format!(
                "GRUB stopped at its rescue prompt{}",
                if self.grub_errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", Self::context(&self.grub_errors))
                }
            );
            return self.gave_up(reason);
        }
        if !complete && line == "grub>" && !self.grub_errors.is_empty() {
            let reason = format!(
                "GRUB stopped at its command prompt: {}",
                Self::context(&self.grub_errors)
            );
            return self.gave_up(reason);
        }
        if line.contains("Press any key to continue...")
            && !self.grub_errors.is_empty()
            && !self.typed_on_line
        {
            self.typed_on_line = true;
            return Some(BootHit::Type("\r".into()));
        }
        // The UEFI shell counts down before it runs `startup.nsh` (five seconds): any key
        // but Esc starts the script at once.
        if line.contains("Press ESC in") && line.contains("startup.nsh") && !self.typed_on_line {
            self.typed_on_line = true;
            return Some(BootHit::Type("\r".into()));
        }
        // OVMF / AAVMF.
        if complete
            && (line.starts_with("BdsDxe: failed to load Boot")
                || line.starts_with("BdsDxe: failed to start Boot"))
        {
            push_context(&mut self.firmware, line);
            return None;
        }
        if complete && line.starts_with("BdsDxe: No bootable option or device was found") {
            let mut lines = self.firmware.clone();
            lines.push(line.to_owned());
            let reason = format!(
                "the firmware found nothing to boot: {}",
                Self::context(&lines)
            );
            return self.gave_up(reason);
        }
        if complete
            && line.starts_with("BdsDxe: starting Boot")
            && line.contains("\"EFI Internal Shell\"")
        {
            let reason = if self.firmware.is_empty() {
                "the firmware started its UEFI shell (\"EFI Internal Shell\") instead of a boot loader or kernel".to_owned()
            } else {
                format!(
                    "the firmware found nothing to boot and started its UEFI shell (\"EFI Internal Shell\"): {}",
                    Self::context(&self.firmware)
                )
            };
            return self.gave_up(reason);
        }
        // SeaBIOS (its debug console).
        if complete && line.starts_with("Boot failed: ") {
            push_context(&mut self.firmware, line);
            return None;
        }
        if complete && line.starts_with("No bootable device.") {
            let mut lines = self.firmware.clone();
            lines.push(line.to_owned());
            let reason = format!(
                "the firmware found nothing to boot: {}",
                Self::context(&lines)
            );
            return self.gave_up(reason);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(after: &str, text: &str) -> SendRule {
        toml::from_str::<SendRule>(&format!("after = {after:?}\ntext = {text:?}")).unwrap()
    }

    #[test]
    fn patterns_match_across_chunks_and_end_the_watch() {
        let mut w = Watch::new(Some(r"ALL \d+ PASSED"), Some("PANIC"), &[], "test").unwrap();
        assert!(w.feed(b"running...\nALL 1").is_empty());
        assert_eq!(
            w.feed(b"2 PASSED\n"),
            [Hit::Success("ALL 12 PASSED".into())]
        );
        assert!(w.feed(b"PANIC").is_empty(), "nothing after the verdict");
    }

    #[test]
    fn anchors_match_at_line_ends_including_crlf() {
        let mut w = Watch::new(Some("^tests: ok$"), None, &[], "test").unwrap();
        assert!(w.feed(b"x tests: ok\r\n").is_empty());
        assert_eq!(
            w.feed(b"tests: ok\r\nmore"),
            [Hit::Success("tests: ok".into())]
        );
    }

    #[test]
    fn failure_wins_over_success_in_the_same_output() {
        let mut w = Watch::new(Some("ok"), Some("PANIC"), &[], "test").unwrap();
        assert_eq!(w.feed(b"ok\nPANIC at x\n"), [Hit::Failure("PANIC".into())]);
    }

    #[test]
    fn send_rules_fire_once_each_in_order() {
        let sends = [rule("login:", "root\n"), rule("[Pp]assword:", "secret\n")];
        let mut w = Watch::new(None, None, &sends, "run").unwrap();
        assert_eq!(w.feed(b"Password: login: "), [Hit::Send("root\n".into())]);
        // The password prompt came before the login prompt, so it does not count.
        assert!(w.feed(b"\n").is_empty());
        assert_eq!(w.feed(b"password:"), [Hit::Send("secret\n".into())]);
        assert!(w.feed(b"login: password:").is_empty());
    }

    #[test]
    fn bad_patterns_name_their_key() {
        let err = Watch::new(Some("("), None, &[], "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.success-pattern"), "{err}");
    }
    /// Feeds `bytes` in chunks of `chunk` bytes; returns every hit.
    fn boot_hits(bytes: &[u8], chunk: usize) -> Vec<BootHit> {
        let mut watch = BootWatch::new();
        bytes.chunks(chunk).flat_map(|c| watch.feed(c)).collect()
    }

    /// The hits for every chunk size from 1 byte to all at once, which must agree.
    fn boot_hits_any_chunking(bytes: &[u8]) -> Vec<BootHit> {
        let all = boot_hits(bytes, bytes.len().max(1));
        for chunk in [1, 2, 7, 64, 500] {
            assert_eq!(boot_hits(bytes, chunk), all, "chunks of {chunk}");
        }
        all
    }

    fn gave_up(hits: &[BootHit]) -> &str {
        match hits.last() {
            Some(BootHit::GaveUp(reason)) => reason,
            other => panic!("no verdict: {other:?} ({hits:?})"),
        }
    }

    /// GRUB 2.06 (BIOS) on a config word over its parser's limit, as it prints it: no verdict
    /// would ever come, QEMU spins (issue 18, item 10).
    #[test]
    fn grubs_abort_on_a_too_long_config_word_is_a_give_up() {
        let text = "\x1b[H\x1b[J\x1b[1;1Hfatal error: token too large, exceeds YYLMAX\r\n\r\rAborted. Press any key to exit.";
        let hits = boot_hits_any_chunking(text.as_bytes());
        let reason = gave_up(&hits);
        assert!(
            reason.starts_with("GRUB aborted: fatal error: token too large, exceeds YYLMAX"),
            "{reason}"
        );
        assert!(reason.contains("kernel command line"), "{reason}");
    }

    #[test]
    fn limines_panic_on_its_own_terminal() {
        // Limine's real panic (Limine 8.2 refusing Xen's multiboot2 header), as its BIOS
        // stage prints it with `serial: yes`: coloured word, message, stack trace, and the wait.
        let text = "\x1b[31mPANIC\x1b[37;1m\x1b[0m: multiboot2: required EFI AMD64 entry tag is unsupported and no alternative entry was found\r\nStacktrace:\r\n  [0x1245a] <panic+0x76>\r\n  [0x3652b] <multiboot2_load+0x5b>\r\nEnd of trace. Press a key to return to menu.";
        let hits = boot_hits_any_chunking(text.as_bytes());
        assert_eq!(
            gave_up(&hits),
            "Limine gave up: PANIC: multiboot2: required EFI AMD64 entry tag is unsupported and no alternative entry was found"
        );
        // Captured from Limine 8.2 booting a limine.conf whose kernel path is wrong.
        let hits =
            boot_hits_any_chunking(include_bytes!("../tests/fixtures/limine-bios-panic.log"));
        assert_eq!(
            gave_up(&hits),
            "Limine gave up: PANIC: multiboot2: Failed to open kernel with path `boot():/boot/missing`. Is the path correct?"
        );
    }

    /// Under UEFI Limine prints through the firmware's console, which places every character
    /// with a cursor position and wraps long lines onto the next row.
    #[test]
    fn limines_panic_on_the_firmware_console() {
        let hits =
            boot_hits_any_chunking(include_bytes!("../tests/fixtures/limine-uefi-panic.log"));
        assert_eq!(
            gave_up(&hits),
            "Limine gave up: PANIC: multiboot1: Cannot use text mode with UEFI."
        );
        // The real panic text, wrapped at 80 columns as that console does.
        let message = "PANIC: multiboot2: required EFI AMD64 entry tag is unsupported and no alternative entry was found";
        let mut drawn = String::from("\x1b[2J\x1b[01;01H");
        let lines = [
            &message[..80],
            &message[80..],
            "Stacktrace:",
            "  [0xe239b2d] <panic+0x9d>",
            "End of trace. Press a key to return to menu.",
        ];
        for (row, line) in lines.iter().enumerate() {
            for (col, c) in line.chars().enumerate() {
                drawn.push(c);
                drawn.push_str(&format!("\x1b[{:02};{:02}H", row + 1, col + 2));
            }
            drawn.push_str(&format!("\x1b[{:02};01H", row + 2));
        }
        let hits = boot_hits_any_chunking(drawn.as_bytes());
        assert_eq!(gave_up(&hits), format!("Limine gave up: {message}"));
    }

    #[test]
    fn a_kernels_own_panic_line_is_no_bootloader_failure() {
        let hits = boot_hits_any_chunking(
            b"PANIC: out of frames\nSystem halted.\nkernel: End of trace.\nStacktrace was not kept\n",
        );
        assert_eq!(hits, []);
    }

    #[test]
    fn the_uefi_shells_startup_countdown_is_answered_once() {
        // As edk2's shell draws it on the serial console (colours and cursor moves).
        let drawn = b"UEFI Interactive Shell v2.2\r\n\x1b[09;01HPress \x1b[1m\x1b[37m\x1b[40mESC\x1b[0m\x1b[37m\x1b[40m in 5 seconds to skip \x1b[1m\x1b[33m\x1b[40mstartup.nsh\x1b[0m\x1b[37m\x1b[40m or any other key to continue.\r\n";
        let hits = boot_hits_any_chunking(drawn);
        assert_eq!(hits, [BootHit::Type("\r".into())]);
    }

    #[test]
    fn grub_giving_up() {
        // Captured from GRUB 2.06 (BIOS) with a menu entry naming a missing kernel.
        let log = include_bytes!("../tests/fixtures/grub-gives-up.log");
        let hits = boot_hits_any_chunking(log);
        // Its first 10 s wait for a key is answered; the second one comes after the verdict.
        assert_eq!(hits[0], BootHit::Type("\r".into()));
        assert_eq!(
            gave_up(&hits),
            "GRUB gave up: error: file `/boot/missing' not found. (it failed to boot both its default and fallback entries)"
        );
        assert_eq!(hits.len(), 2, "{hits:?}");
    }

    #[test]
    fn grub_prompts_after_errors() {
        let hits = boot_hits_any_chunking(
            b"error: no such device: 1234-5678.\r\nEntering rescue mode...\r\ngrub rescue> ",
        );
        assert_eq!(
            gave_up(&hits),
            "GRUB stopped at its rescue prompt: error: no such device: 1234-5678."
        );
        let hits = boot_hits_any_chunking(b"error: unknown command `mulitboot'.\r\n\r\ngrub> ");
        assert_eq!(
            gave_up(&hits),
            "GRUB stopped at its command prompt: error: unknown command `mulitboot'."
        );
        // Its prompt without errors is someone using it; a key prompt without errors is not
        // GRUB's.
        assert_eq!(boot_hits_any_chunking(b"grub> "), []);
        assert_eq!(
            boot_hits_any_chunking(b"Press any key to continue...\n"),
            []
        );
    }

    #[test]
    fn ovmf_with_nothing_to_boot() {
        // Captured from Debian's OVMF with an empty disk: its shell starts after the disk and
        // the CD-ROM fail.
        let hits = boot_hits_any_chunking(include_bytes!("../tests/fixtures/ovmf-shell.log"));
        let reason = gave_up(&hits);
        assert!(
            reason.starts_with("the firmware found nothing to boot and started its UEFI shell (\"EFI Internal Shell\"): BdsDxe: failed to load Boot0001 \"UEFI QEMU DVD-ROM QM00005 \""),
            "{reason}"
        );
        assert!(
            reason.contains("Boot0002 \"UEFI QEMU HARDDISK QM00001 \""),
            "{reason}"
        );
        // The Secure Boot build has no shell: it says so and offers its boot manager.
        let hits = boot_hits(include_bytes!("../tests/fixtures/ovmf-no-bootable.log"), 3);
        let reason = gave_up(&hits);
        assert!(
            reason.starts_with("the firmware found nothing to boot"),
            "{reason}"
        );
        // A boot option that loads is no failure.
        let log = include_bytes!("../tests/fixtures/limine-uefi-panic.log");
        let limine_starts = log.windows(10).position(|w| w == b"m\x1b[01;02Hu").unwrap();
        let until_limine = &log[..limine_starts];
        assert_eq!(boot_hits_any_chunking(until_limine), []);
    }

    #[test]
    fn seabios_with_nothing_to_boot() {
        // SeaBIOS's debug console (port 0x402) with an empty disk.
        let hits = boot_hits_any_chunking(include_bytes!("../tests/fixtures/seabios-debugcon.log"));
        assert_eq!(
            gave_up(&hits),
            "the firmware found nothing to boot: Boot failed: not a bootable disk; Boot failed: Could not read from CDROM (code 0003); Boot failed: could not read the boot disk; No bootable device."
        );
    }

    #[test]
    fn the_watch_reports_a_boot_failure_once_and_keeps_the_line_state() {
        let mut w = Watch::new(None, Some("oops"), &[], "test")
            .unwrap()
            .with_boot_watch();
        assert!(w.is_active());
        let hits = w.feed(b"error: out of memory.\r\n\r\nPress any key to continue...");
        assert_eq!(hits, [Hit::Send("\r".into())]);
        let hits = w.feed(b"\r\n  Failed to boot both default and fallback entries.\r\n");
        assert!(matches!(&hits[..], [Hit::BootFailure(r)] if r.contains("error: out of memory.")));
        assert!(w.is_done());
        assert!(w.feed(b"oops\n").is_empty());
    }

    #[test]
    fn a_failure_match_knows_when_its_line_ends() {
        let mut w = Watch::new(None, Some("PANIC"), &[], "test").unwrap();
        assert_eq!(w.feed(b"boot\nPANIC at "), [Hit::Failure("PANIC".into())]);
        assert!(w.line_open());
        assert!(w.feed(b"main.rs:3: ").is_empty());
        assert!(w.line_open());
        w.feed(b"oops\r\nmore");
        assert!(!w.line_open());
        let mut w = Watch::new(None, Some("PANIC"), &[], "test").unwrap();
        w.feed(b"PANIC at x\n");
        assert!(!w.line_open());
    }
}
