//! The serial side of the protocol (section 3): [`Line`] parses one `KTEST` line, and
//! [`Watcher`] is the serial handler of a test boot: it follows which test runs, keeps each
//! test's output and one result a test (a later failure wins over an earlier pass), keeps a
//! watchdog on the running test's time limit, and stops reading at a final state: `done` (the
//! kernel exits next) or a protocol version it does not speak.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image_runner_core::{Control, SerialHandler, Verdict};

/// One protocol line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `KTEST begin <version> <count>`.
    Begin { version: u32, count: usize },
    /// `KTEST start <index> <name>`.
    Start { index: usize, name: String },
    /// `KTEST ok <index>`.
    Ok { index: usize },
    /// `KTEST ignored <index>`.
    Ignored { index: usize },
    /// `KTEST panic <index> <message>`.
    Panic { index: usize, message: String },
    /// `KTEST frame 0x<address>`.
    Frame { address: u64 },
    /// `KTEST failed <index> [<reason>]`.
    Failed { index: usize, reason: String },
    /// `KTEST done`.
    Done,
}

impl Line {
    /// Parses a serial line (without its line end); `None` when it is not a protocol line.
    pub fn parse(line: &str) -> Option<Line> {
        let rest = line
            .strip_suffix('\r')
            .unwrap_or(line)
            .strip_prefix("KTEST ")?;
        let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let index_and_text = |rest: &str| -> Option<(usize, String)> {
            let (index, text) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((index.parse().ok()?, unescape(text)))
        };
        Some(match word {
            "begin" => {
                let (version, count) = rest.split_once(' ')?;
                Line::Begin {
                    version: version.parse().ok()?,
                    count: count.trim().parse().ok()?,
                }
            }
            "start" => {
                let (index, name) = index_and_text(rest)?;
                Line::Start { index, name }
            }
            "ok" => Line::Ok {
                index: rest.trim().parse().ok()?,
            },
            "ignored" => Line::Ignored {
                index: rest.trim().parse().ok()?,
            },
            "panic" => {
                let (index, message) = index_and_text(rest)?;
                Line::Panic { index, message }
            }
            "frame" => Line::Frame {
                address: u64::from_str_radix(rest.trim().strip_prefix("0x")?, 16).ok()?,
            },
            "failed" => {
                let (index, reason) = index_and_text(rest)?;
                Line::Failed { index, reason }
            }
            "done" => Line::Done,
            _ => return None,
        })
    }
}

/// Undoes the protocol's escapes: `\\`, `\n`, `\r`, `\xHH`. `\xHH` is a byte: escaped bytes of
/// a UTF-8 character (`\xC3\xA9`) make that character, and bytes that are no UTF-8 read as
/// U+FFFD (never as the Latin-1 character of the same number).
pub fn unescape(text: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    let push = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            push(&mut out, c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => {
                        out.extend_from_slice(b"\\x");
                        out.extend_from_slice(hex.as_bytes());
                    }
                }
            }
            Some(other) => {
                out.push(b'\\');
                push(&mut out, other);
            }
            None => out.push(b'\\'),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Passed,
    /// It failed; the reason in one line.
    Failed(String),
    /// The kernel skipped it.
    Ignored,
}

/// The result of one test that started (or was reported) in a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The table index.
    pub index: usize,
    /// How it ended.
    pub status: Status,
    /// Its serial output (protocol lines left out).
    pub output: Vec<u8>,
    /// The panic message, when it panicked.
    pub panic: Option<String>,
    /// Its backtrace: return addresses, innermost first.
    pub frames: Vec<u64>,
    /// How long it ran.
    pub duration: Duration,
    /// Evidence files: the screenshot asked for when it failed.
    pub screenshot: Option<PathBuf>,
}

/// The test running now.
#[derive(Debug)]
struct Current {
    index: usize,
    started: Instant,
    output: Vec<u8>,
    panic: Option<String>,
    frames: Vec<u64>,
}

/// How long the kernel has to exit after `done` before the boot is ended for it (a kernel that
/// halts instead of leaving, e.g. without the exit device).
const AFTER_DONE: Duration = Duration::from_secs(3);

/// Why a requested test reported `ignored` failed.
const IGNORED_THOUGH_REQUESTED: &str = "the kernel reported this test as `ignored`, so it did not run, although the runner requested it (`ktest=`); with a request the kernel runs every requested test, whatever its `ignore` flag (the protocol allows `ignored` only without a request)";

/// Why a test that panicked after its `ok` failed (until a `failed` line says more).
const PANICKED_AFTER_OK: &str = "it panicked after the kernel had reported it `ok`";

/// The serial handler of one test boot.
pub struct Watcher {
    /// Each requested test's time limit (its keys: the tests the boot's request asks for).
    limits: BTreeMap<usize, Duration>,
    /// The limit of a test without its own, and of the gaps (boot, between tests).
    default_limit: Duration,
    /// Print output as it comes (`--nocapture`).
    echo: bool,
    /// Where screenshots of failing tests go (`<dir>/<test name>.png`).
    shot_dir: Option<PathBuf>,
    names: BTreeMap<usize, String>,
    partial: Vec<u8>,
    current: Option<Current>,
    /// Output outside any test (the kernel's boot messages).
    pub outside: Vec<u8>,
    /// What finished in this boot, one result a test, in the order they first ended.
    pub finished: Vec<TestRun>,
    /// Where each test of `finished` is, and what its live line said.
    ended: BTreeMap<usize, Ended>,
    /// The test the last `panic` line was for: the `frame` lines that follow are its.
    frames_for: Option<usize>,
    /// The kernel said `done`.
    pub done: bool,
    /// A protocol version other than 1 was announced.
    pub bad_version: Option<u32>,
    /// A final state was reached (`done`, or a protocol version other than 1): nothing after
    /// it is read.
    closed: bool,
    /// A deadline was set at least once (the gaps' watchdog is running).
    armed: bool,
    /// Told of each test's result for its live line (see [`Watcher::on_report`]).
    on_report: Option<Report>,
}

/// What the watcher knows of a test in [`Watcher::finished`].
#[derive(Debug, Clone, Copy)]
struct Ended {
    /// Its place in `finished`.
    at: usize,
    /// What its live line said, once it was reported: `true` for a failure.
    printed: Option<bool>,
    /// Its failure is only a panic after `ok` so far: a `failed` line's reason replaces it.
    late_panic: bool,
}

/// What [`Watcher::on_report`] calls.
type Report = Box<dyn FnMut(usize, &Status) + Send>;

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("current", &self.current)
            .field("finished", &self.finished)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher for tests with these names and limits (by index).
    pub fn new(
        tests: &[&crate::table::TestCase],
        default_limit: Duration,
        echo: bool,
        shot_dir: Option<PathBuf>,
    ) -> Watcher {
        Watcher {
            limits: tests
                .iter()
                .map(|t| (t.index, t.timeout.unwrap_or(default_limit)))
                .collect(),
            default_limit,
            echo,
            shot_dir,
            names: tests.iter().map(|t| (t.index, t.name.clone())).collect(),
            partial: Vec::new(),
            current: None,
            outside: Vec::new(),
            finished: Vec::new(),
            ended: BTreeMap::new(),
            frames_for: None,
            done: false,
            bad_version: None,
            closed: false,
            armed: false,
            on_report: None,
        }
    }

    /// Calls `report` with each test's index and result, once a test, for its live line: when
    /// the next test starts, at `done`, and at [`Watcher::settle`] (so a report that follows
    /// the first one, such as a `failed` after `ok`, is in it). A test whose result turns into
    /// a failure after it was reported is reported again, failed; nothing else is reported
    /// twice.
    pub fn on_report(mut self, report: impl FnMut(usize, &Status) + Send + 'static) -> Self {
        self.on_report = Some(Box::new(report));
        self
    }

    /// Reports the results not reported yet (and failures of tests reported as passing) to
    /// [`Watcher::on_report`]'s function: for the caller once the boot is over and the test
    /// the machine died in has ended ([`Watcher::end_running`]).
    pub fn settle(&mut self) {
        let Watcher {
            finished,
            ended,
            on_report,
            ..
        } = self;
        for run in finished.iter() {
            let Some(state) = ended.get_mut(&run.index) else {
                continue;
            };
            let failed = matches!(run.status, Status::Failed(_));
            if state.printed.is_none() || (failed && state.printed == Some(false)) {
                state.printed = Some(failed);
                if let Some(report) = on_report {
                    report(run.index, &run.status);
                }
            }
        }
    }

    /// Fails every test of this boot that passed, with `reason` (the boot's end says the
    /// kernel's reports cannot all be true).
    pub fn fail_passed(&mut self, reason: &str) {
        for run in &mut self.finished {
            if run.status == Status::Passed {
                run.status = Status::Failed(reason.to_owned());
            }
        }
    }

    /// The test that started and has not ended, if any.
    pub fn running(&self) -> Option<usize> {
        self.current.as_ref().map(|c| c.index)
    }

    /// Ends the running test (the machine stopped under it) with `reason`; its output so far
    /// and any partial line are kept.
    pub fn end_running(&mut self, reason: String) {
        self.flush_partial();
        let Some(current) = self.current.take() else {
            return;
        };
        self.conclude(TestRun {
            index: current.index,
            status: Status::Failed(reason),
            output: current.output,
            panic: current.panic,
            frames: current.frames,
            duration: current.started.elapsed(),
            screenshot: None,
        });
    }

    /// Keeps how a test ended: its first result, or for a test that ended before (reported
    /// twice, or started again), the two merged: a failure wins over a pass or a skip (with a
    /// note that it came after), the first failure stands, a pass or skip again changes
    /// nothing; output, frames and evidence are kept from both.
    fn conclude(&mut self, run: TestRun) {
        let Some(state) = self.ended.get_mut(&run.index) else {
            self.ended.insert(
                run.index,
                Ended {
                    at: self.finished.len(),
                    printed: None,
                    late_panic: false,
                },
            );
            self.finished.push(run);
            return;
        };
        let earlier = &mut self.finished[state.at];
        earlier.output.extend_from_slice(&run.output);
        earlier.frames.extend(run.frames);
        earlier.panic = earlier.panic.take().or(run.panic);
        earlier.duration = earlier.duration.saturating_add(run.duration);
        earlier.screenshot = earlier.screenshot.take().or(run.screenshot);
        let Status::Failed(reason) = run.status else {
            return;
        };
        match &earlier.status {
            Status::Failed(_) if !state.late_panic => {}
            Status::Failed(_) | Status::Passed => {
                state.late_panic = false;
                earlier.status = Status::Failed(if reason.is_empty() {
                    "the kernel reported `failed` after `ok`".to_owned()
                } else {
                    format!("{reason} (after the kernel had reported `ok`)")
                });
            }
            Status::Ignored => earlier.status = Status::Failed(reason),
        }
    }

    fn flush_partial(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let mut rest = std::mem::take(&mut self.partial);
        rest.push(b'\n');
        match &mut self.current {
            Some(c) => c.output.extend_from_slice(&rest),
            None => self.outside.extend_from_slice(&rest),
        }
    }

    fn shot_path(&self, dir: &std::path::Path, index: usize) -> PathBuf {
        let name = self.names.get(&index).cloned().unwrap_or_default();
        dir.join(format!("{}.png", file_name(&name)))
    }

    fn limit_of(&self, index: usize) -> Duration {
        self.limits
            .get(&index)
            .copied()
            .unwrap_or(self.default_limit)
    }

    fn line(&mut self, raw: &[u8], control: &mut Control) {
        let text = String::from_utf8_lossy(raw);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let Some(line) = Line::parse(text) else {
            if self.echo {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(raw).and_then(|()| out.flush());
            }
            match &mut self.current {
                Some(c) => c.output.extend_from_slice(raw),
                None => self.outside.extend_from_slice(raw),
            }
            return;
        };
        let gap = |control: &mut Control, limit: Duration| watch(control, limit);
        if !matches!(line, Line::Frame { .. }) {
            self.frames_for = None;
        }
        match line {
            Line::Begin { version, .. } => {
                if version != 1 {
                    self.bad_version = Some(version);
                    self.closed = true;
                    control.finish(Verdict::Crashed {
                        reason: format!(
                            "the kernel speaks version {version} of the test protocol; this runner speaks version 1"
                        ),
                    });
                }
            }
            Line::Start { index, name } => {
                self.names.entry(index).or_insert(name);
                self.end_running("started another test without reporting this one".into());
                // The tests before it have their results: their lines are due.
                self.settle();
                self.current = Some(Current {
                    index,
                    started: Instant::now(),
                    output: Vec::new(),
                    panic: None,
                    frames: Vec::new(),
                });
                gap(control, self.limit_of(index));
                self.armed = true;
            }
            Line::Ok { index } | Line::Ignored { index } | Line::Failed { index, .. } => {
                let status = match line {
                    Line::Ok { .. } => Status::Passed,
                    // With a request (this boot's), `ignored` is only for tests not requested.
                    Line::Ignored { .. } if self.limits.contains_key(&index) => {
                        Status::Failed(IGNORED_THOUGH_REQUESTED.into())
                    }
                    Line::Ignored { .. } => Status::Ignored,
                    Line::Failed { reason, .. } => Status::Failed(reason),
                    _ => unreachable!("matched above"),
                };
                // A report of another test than the running one leaves the running one as it is.
                let current = match &self.current {
                    Some(c) if c.index == index => self.current.take(),
                    _ => None,
                };
                let (output, panic, frames, started) = match current {
                    Some(c) => (c.output, c.panic, c.frames, Some(c.started)),
                    None => (Vec::new(), None, Vec::new(), None),
                };
                let mut screenshot = None;
                if let (Status::Failed(_), Some(dir)) = (&status, &self.shot_dir) {
                    let path = self.shot_path(dir, index);
                    if panic.is_none() {
                        control.screenshot(&path);
                    }
                    screenshot = Some(path);
                }
                self.conclude(TestRun {
                    index,
                    status,
                    output,
                    panic,
                    frames,
                    duration: started.map(|s| s.elapsed()).unwrap_or_default(),
                    screenshot,
                });
                // The gap until the next test; a test still running keeps its own deadline.
                if self.current.is_none() {
                    gap(control, self.default_limit);
                }
            }
            Line::Panic { index, message } => {
                if let Some(c) = self.current.as_mut().filter(|c| c.index == index) {
                    c.panic = Some(message);
                    self.frames_for = Some(index);
                    // The display as the panic left it, asked for now: the kernel goes on
                    // (and may exit) while the runner takes it. Named only if the test fails.
                    if let Some(dir) = &self.shot_dir {
                        control.screenshot(self.shot_path(dir, index));
                    }
                } else if let Some(state) = self.ended.get_mut(&index) {
                    // A test that ended panics: after `ok`, it failed.
                    let run = &mut self.finished[state.at];
                    run.panic.get_or_insert(message);
                    if run.status == Status::Passed {
                        run.status = Status::Failed(PANICKED_AFTER_OK.into());
                        state.late_panic = true;
                    }
                    self.frames_for = Some(index);
                }
            }
            Line::Frame { address } => {
                let ended = self
                    .frames_for
                    .filter(|&i| self.current.as_ref().is_none_or(|c| c.index != i))
                    .and_then(|i| self.ended.get(&i));
                match (ended, &mut self.current) {
                    (Some(state), _) => self.finished[state.at].frames.push(address),
                    (None, Some(c)) => c.frames.push(address),
                    (None, None) => self.outside.extend_from_slice(raw),
                }
            }
            Line::Done => {
                self.done = true;
                self.closed = true;
                self.settle();
                // The kernel exits next, and its exit code is part of the verdict (the session
                // weighs it): the boot ends when it leaves, or soon after for one that stays.
                match Instant::now().checked_add(AFTER_DONE) {
                    Some(at) => control.end_at(at, Verdict::Success),
                    None => control.clear_end_at(),
                }
            }
        }
    }
}

/// Sets the watchdog to end the boot `limit` from now; a limit too far away to be a time (a
/// huge `timeout`) is no limit.
fn watch(control: &mut Control, limit: Duration) {
    match Instant::now().checked_add(limit) {
        Some(at) => control.end_at(at, Verdict::Timeout { after: limit }),
        None => control.clear_end_at(),
    }
}

/// A test name as a file or folder name, never the same for two names: ASCII letters,
/// digits, `-` and `_` stay, `::` becomes `.`, and every other byte is `%XX` (so `x::y` is
/// `x.y`, `x-y` stays `x-y`, `α` is `%CE%B1`, `..` is `%2E%2E`; the empty name is `%00`). A
/// result longer than [`FILE_NAME_MAX`] keeps its start and ends in a hash of the whole name.
pub fn file_name(name: &str) -> String {
    if name.is_empty() {
        return "%00".into();
    }
    let mut out = String::new();
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            out.push('.');
            rest = after;
            continue;
        }
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    if out.len() > FILE_NAME_MAX {
        let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
        // The escape is ASCII: any byte offset is a character boundary.
        out.truncate(FILE_NAME_MAX - 17);
        out.push_str(&format!("-{hash:016x}"));
    }
    out
}

/// The longest [`file_name`] (file systems allow 255 bytes; room is left for `.png`).
pub const FILE_NAME_MAX: usize = 200;

impl SerialHandler for Watcher {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        if self.closed {
            // A final state was reached: nothing after it changes a result.
            return;
        }
        if !self.armed {
            // The boot itself (until the first test starts) gets the default limit.
            watch(control, self.default_limit);
            self.armed = true;
        }
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..=end]);
            rest = &rest[end + 1..];
            self.line(&line, control);
            if self.closed {
                return;
            }
        }
        self.partial.extend_from_slice(rest);
        // A test that prints forever is still held to its limit.
        if let Some(c) = &self.current {
            let limit = self.limit_of(c.index);
            if c.started.elapsed() > limit {
                control.finish(Verdict::Timeout { after: limit });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// Issue 18, item 22: `\xC3\xA9` decoded as `Ã©` (each byte a Latin-1 character).
    #[test]
    fn byte_escapes_are_bytes_of_utf8() {
        assert_eq!(unescape(r"caf\xC3\xA9"), "café");
        assert_eq!(unescape(r"\xFF!"), "\u{FFFD}!");
        assert_eq!(unescape(r"a\x41\n\\"), "aA\n\\");
        assert_eq!(unescape(r"\xZZ \x4"), r"\xZZ \x4");
        assert_eq!(unescape("é"), "é");
    }

    /// Names that map to one folder would share an image and a log under nextest (issue 18,
    /// item 3: `x::y` and `x-y` both went to `x-y`, every non-ASCII name to `_`).
    #[test]
    fn test_names_map_to_distinct_folder_names_that_stay_in_their_folder() {
        let names = [
            "x::y", "x-y", "x.y", "x_y", "α", "β", "..", ".", "", "a:::b", "a::", "::a", "%",
            "%25", "x y", "x/y", "x\\y",
        ];
        let mapped: Vec<String> = names.iter().map(|n| file_name(n)).collect();
        for (i, a) in mapped.iter().enumerate() {
            assert!(
                !a.is_empty() && a != "." && a != "..",
                "{:?} → {a:?}",
                names[i]
            );
            assert!(
                !a.contains('/') && !a.contains('\\'),
                "{:?} → {a:?}",
                names[i]
            );
            for (j, b) in mapped.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} and {:?} share a folder", names[i], names[j]);
            }
        }
        assert_eq!(file_name("math::adds"), "math.adds");
        assert_eq!(file_name("α"), "%CE%B1");
        // Long names: bounded, and still distinct.
        let long_a = "α".repeat(200);
        let long_b = format!("{}β", "α".repeat(199));
        assert!(file_name(&long_a).len() <= FILE_NAME_MAX);
        assert_ne!(file_name(&long_a), file_name(&long_b));
    }
    use crate::table::TestCase;

    #[test]
    fn parses_each_line() {
        assert_eq!(
            Line::parse("KTEST begin 1 3"),
            Some(Line::Begin {
                version: 1,
                count: 3
            })
        );
        assert_eq!(
            Line::parse("KTEST start 4 paging::maps\r"),
            Some(Line::Start {
                index: 4,
                name: "paging::maps".into()
            })
        );
        assert_eq!(Line::parse("KTEST ok 4"), Some(Line::Ok { index: 4 }));
        assert_eq!(
            Line::parse("KTEST panic 2 left: 1\\nright: 2 \\\\ \\x07"),
            Some(Line::Panic {
                index: 2,
                message: "left: 1\nright: 2 \\ \u{7}".into()
            })
        );
        assert_eq!(
            Line::parse("KTEST frame 0xffffffff80001234"),
            Some(Line::Frame {
                address: 0xffff_ffff_8000_1234
            })
        );
        assert_eq!(
            Line::parse("KTEST failed 2"),
            Some(Line::Failed {
                index: 2,
                reason: String::new()
            })
        );
        assert_eq!(Line::parse("KTEST done"), Some(Line::Done));
        assert_eq!(Line::parse("hello KTEST ok 1"), None);
        assert_eq!(Line::parse("KTEST ok x"), None);
        assert_eq!(Line::parse("KTEST bogus 1"), None);
    }

    #[test]
    fn follows_tests_across_chunks() {
        let tests = [
            TestCase::new(0, "a"),
            TestCase::new(1, "b"),
            TestCase::new(2, "c"),
        ];
        let refs: Vec<&TestCase> = tests.iter().collect();
        let mut w = Watcher::new(&refs, Duration::from_secs(5), false, None);
        let mut control = Control::new();
        let serial = "booting\nKTEST begin 1 3\nKTEST start 0 a\nhello from a\nKTEST ok 0\nKTEST start 1 b\nb says\nKTEST panic 1 boom\\nline 2\nKTEST frame 0x1000\nKTEST failed 1 panicked\nKTEST start 2 c\npartial";
        for chunk in serial.as_bytes().chunks(7) {
            w.output(chunk, &mut control);
        }
        assert!(control.take_deadline().is_some(), "a watchdog is set");
        assert_eq!(w.finished.len(), 2);
        assert_eq!(w.finished[0].status, Status::Passed);
        assert_eq!(w.finished[0].output, b"hello from a\n");
        assert_eq!(w.finished[1].status, Status::Failed("panicked".into()));
        assert_eq!(w.finished[1].panic.as_deref(), Some("boom\nline 2"));
        assert_eq!(w.finished[1].frames, [0x1000]);
        assert_eq!(w.outside, b"booting\n");
        assert_eq!(w.running(), Some(2));
        w.end_running("the machine reset".into());
        assert_eq!(w.finished[2].output, b"partial\n");
        assert!(!w.done);
        w.output(b"KTEST done\n", &mut control);
        assert!(w.done);
        // The kernel exits next: its exit code is heard, with a short wait for one that stays.
        assert_eq!(control.take_verdict(), None);
        let (at, verdict) = control.take_deadline().flatten().expect("a deadline");
        assert!(at <= Instant::now() + AFTER_DONE);
        assert_eq!(verdict, Verdict::Success);
    }

    /// A limit past what an `Instant` can hold (a huge `test.timeout` or test `timeout`) sets no
    /// deadline instead of overflowing.
    #[test]
    fn huge_limits_set_no_deadline() {
        let mut slow = TestCase::new(1, "slow");
        slow.timeout = Some(Duration::MAX);
        let quick = TestCase::new(0, "quick");
        let mut w = Watcher::new(&[&quick, &slow], Duration::MAX, false, None);
        let mut control = Control::new();
        w.output(b"booting\n", &mut control);
        assert_eq!(control.take_deadline(), Some(None));
        w.output(b"KTEST start 1 slow\n", &mut control);
        assert_eq!(control.take_deadline(), Some(None));
        w.output(b"KTEST ok 1\n", &mut control);
        assert_eq!(control.take_deadline(), Some(None));
        assert_eq!(w.finished[0].status, Status::Passed);

        // A test's own sensible limit still sets a deadline under a huge default.
        let mut limited = TestCase::new(0, "limited");
        limited.timeout = Some(Duration::from_secs(3));
        let mut w = Watcher::new(&[&limited], Duration::MAX, false, None);
        w.output(b"KTEST start 0 limited\n", &mut control);
        let (at, verdict) = control.take_deadline().flatten().expect("a deadline");
        assert!(at > Instant::now());
        assert_eq!(
            verdict,
            Verdict::Timeout {
                after: Duration::from_secs(3)
            }
        );
    }

    /// A report for a test other than the running one is kept, and the running test keeps its
    /// output, its time and its deadline.
    #[test]
    fn a_report_of_another_test_leaves_the_running_one() {
        let tests = [TestCase::new(0, "a"), TestCase::new(1, "b")];
        let refs: Vec<&TestCase> = tests.iter().collect();
        let mut w = Watcher::new(&refs, Duration::from_secs(5), false, None);
        let mut control = Control::new();
        w.output(b"KTEST start 0 a\nbefore\n", &mut control);
        assert!(control.take_deadline().flatten().is_some());
        w.output(b"KTEST ok 1\n", &mut control);
        assert_eq!(w.running(), Some(0));
        assert_eq!(control.take_deadline(), None, "a's deadline stays");
        w.output(b"after\nKTEST panic 0 boom\nKTEST failed 0\n", &mut control);
        assert_eq!(w.running(), None);
        assert_eq!(w.finished.len(), 2);
        assert_eq!(w.finished[0].index, 1);
        assert_eq!(w.finished[0].status, Status::Passed);
        assert_eq!(w.finished[1].index, 0);
        assert_eq!(w.finished[1].status, Status::Failed(String::new()));
        assert_eq!(w.finished[1].output, b"before\nafter\n");
        assert_eq!(w.finished[1].panic.as_deref(), Some("boom"));
    }

    /// The reports a watcher gave for live lines, in order.
    type Reports = Arc<Mutex<Vec<(usize, Status)>>>;

    /// A watcher for tests `a`, `b`, `c` (0, 1, 2), and the reports it gives for live lines.
    fn watcher_abc() -> (Watcher, Reports) {
        let tests = [
            TestCase::new(0, "a"),
            TestCase::new(1, "b"),
            TestCase::new(2, "c"),
        ];
        let refs: Vec<&TestCase> = tests.iter().collect();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reports);
        let w = Watcher::new(&refs, Duration::from_secs(5), false, None).on_report(
            move |index, status| {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((index, status.clone()));
            },
        );
        (w, reports)
    }

    fn reported(reports: &Reports) -> Vec<(usize, Status)> {
        reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Item 2 of issue 18: a `failed` or a `panic` after `ok` fails the test (one result a
    /// test, the failure's), with the panic and its frames; a repeated `ok` changes nothing.
    #[test]
    fn a_later_failure_wins_over_ok() {
        let (mut w, reports) = watcher_abc();
        let mut control = Control::new();
        w.output(
            b"KTEST begin 1 3\nKTEST start 0 a\nKTEST ok 0\nKTEST panic 0 boom\nKTEST frame 0x10\nKTEST failed 0 panicked\nKTEST start 1 b\nKTEST ok 1\nKTEST panic 1 late\nKTEST start 2 c\nKTEST ok 2\nKTEST ok 2\nKTEST done\n",
            &mut control,
        );
        let results: Vec<(usize, &Status)> =
            w.finished.iter().map(|r| (r.index, &r.status)).collect();
        assert_eq!(results.len(), 3, "{:?}", w.finished);
        assert_eq!(results[0].0, 0);
        assert!(
            matches!(results[0].1, Status::Failed(r) if r.starts_with("panicked")),
            "{results:?}"
        );
        assert_eq!(w.finished[0].panic.as_deref(), Some("boom"));
        assert_eq!(w.finished[0].frames, [0x10]);
        assert_eq!(results[1].0, 1);
        assert!(
            matches!(results[1].1, Status::Failed(r) if r.contains("after")),
            "{results:?}"
        );
        assert_eq!(w.finished[1].panic.as_deref(), Some("late"));
        assert_eq!(results[2], (2, &Status::Passed));
        let lines: Vec<(usize, bool)> = reported(&reports)
            .iter()
            .map(|(i, s)| (*i, matches!(s, Status::Failed(_))))
            .collect();
        assert_eq!(lines, [(0, true), (1, true), (2, false)]);
    }

    /// Item 4 of issue 18: after an unsupported protocol version ends the boot, the lines that
    /// follow in the same read (or later) change nothing.
    #[test]
    fn nothing_after_a_final_state_changes_the_results() {
        let (mut w, reports) = watcher_abc();
        let mut control = Control::new();
        w.output(
            b"KTEST begin 0 2\nKTEST start 0 a\nKTEST ok 0\nKTEST start 1 b\n",
            &mut control,
        );
        w.output(b"KTEST ok 1\nKTEST done\n", &mut control);
        assert_eq!(w.bad_version, Some(0));
        assert!(w.finished.is_empty(), "{:?}", w.finished);
        assert_eq!(w.running(), None);
        assert!(!w.done);
        assert!(reported(&reports).is_empty());
        assert!(matches!(
            control.take_verdict(),
            Some(Verdict::Crashed { reason }) if reason.contains("version 0")
        ));

        // `done` is final too: the kernel exits next.
        let (mut w, _) = watcher_abc();
        w.output(
            b"KTEST begin 1 1\nKTEST start 0 a\nKTEST ok 0\nKTEST done\nKTEST failed 0 late\nKTEST start 1 b\n",
            &mut control,
        );
        assert_eq!(w.finished.len(), 1);
        assert_eq!(w.finished[0].status, Status::Passed);
        assert_eq!(w.running(), None);
    }

    /// Item 5 of issue 18: with a request (the watcher's tests are the requested ones),
    /// `ignored` for a requested test is a failure that says so; for a test not requested it
    /// stays a skip.
    #[test]
    fn ignored_is_a_failure_for_a_requested_test() {
        let (mut w, reports) = watcher_abc();
        let mut control = Control::new();
        w.output(
            b"KTEST ignored 1\nKTEST ignored 7\nKTEST done\n",
            &mut control,
        );
        assert_eq!(w.finished.len(), 2);
        assert_eq!(w.finished[0].index, 1);
        assert!(
            matches!(&w.finished[0].status, Status::Failed(r) if r.contains("`ignored`") && r.contains("requested")),
            "{:?}",
            w.finished[0].status
        );
        assert_eq!(w.finished[1].index, 7);
        assert_eq!(w.finished[1].status, Status::Ignored);
        assert!(matches!(reported(&reports)[0], (1, Status::Failed(_))));
    }

    /// Item 6 of issue 18: one live line a test, with its result: a test ended by the next
    /// `start` reports its failure (a late `ok` does not turn it into a pass), a repeated `ok`
    /// reports once.
    #[test]
    fn one_live_line_a_test_with_its_result() {
        let (mut w, reports) = watcher_abc();
        let mut control = Control::new();
        w.output(
            b"KTEST start 0 a\nKTEST start 1 b\nKTEST ok 0\nKTEST ok 1\nKTEST ok 1\nKTEST start 2 c\n",
            &mut control,
        );
        w.end_running("the machine reset".into());
        w.settle();
        let lines: Vec<(usize, bool)> = reported(&reports)
            .iter()
            .map(|(i, s)| (*i, matches!(s, Status::Failed(_))))
            .collect();
        assert_eq!(lines, [(0, true), (1, false), (2, true)]);
        let results: Vec<(usize, bool)> = w
            .finished
            .iter()
            .map(|r| (r.index, matches!(r.status, Status::Failed(_))))
            .collect();
        assert_eq!(results, lines);
    }

    #[test]
    fn file_names_are_plain() {
        assert_eq!(file_name("paging::maps pages/x"), "paging.maps%20pages%2Fx");
    }
}
