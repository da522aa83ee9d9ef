//! The serial side of the protocol (section 3): [`Line`] parses one `KTEST` line, and
//! [`Watcher`] is the serial handler of a test boot: it follows which test runs, keeps each
//! test's output, keeps a watchdog on the running test's time limit, and ends the boot once the
//! kernel says `done`.

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

/// Undoes the protocol's escapes: `\\`, `\n`, `\r`, `\xHH`.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) => out.push(char::from(b)),
                    Err(_) => {
                        out.push_str("\\x");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
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

/// The serial handler of one test boot.
pub struct Watcher {
    /// Each test's time limit.
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
    /// What finished in this boot, in order.
    pub finished: Vec<TestRun>,
    /// The kernel said `done`.
    pub done: bool,
    /// A protocol version other than 1 was announced.
    pub bad_version: Option<u32>,
    /// A deadline was set at least once (the gaps' watchdog is running).
    armed: bool,
    /// Told of each test the kernel reports, as it reports it.
    on_report: Option<Report>,
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
            done: false,
            bad_version: None,
            armed: false,
            on_report: None,
        }
    }

    /// Calls `report` with each test's index and status as the kernel reports it (not for a
    /// test ended by [`Watcher::end_running`]).
    pub fn on_report(mut self, report: impl FnMut(usize, &Status) + Send + 'static) -> Self {
        self.on_report = Some(Box::new(report));
        self
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
        self.finished.push(TestRun {
            index: current.index,
            status: Status::Failed(reason),
            output: current.output,
            panic: current.panic,
            frames: current.frames,
            duration: current.started.elapsed(),
            screenshot: None,
        });
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
        match line {
            Line::Begin { version, .. } => {
                if version != 1 {
                    self.bad_version = Some(version);
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
                if let Some(report) = &mut self.on_report {
                    report(index, &status);
                }
                self.finished.push(TestRun {
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
                    // The display as the panic left it, asked for now: the kernel goes on
                    // (and may exit) while the runner takes it. Named only if the test fails.
                    if let Some(dir) = &self.shot_dir {
                        control.screenshot(self.shot_path(dir, index));
                    }
                }
            }
            Line::Frame { address } => match &mut self.current {
                Some(c) => c.frames.push(address),
                None => self.outside.extend_from_slice(raw),
            },
            Line::Done => {
                self.done = true;
                control.clear_end_at();
                // The kernel exits next; ending here saves waiting for it.
                control.finish(Verdict::Success);
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

/// A test name as a file name: `::` and anything unusual become `-`/`_`.
pub fn file_name(name: &str) -> String {
    let name = name.replace("::", "-");
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl SerialHandler for Watcher {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
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
    use super::*;
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
        assert_eq!(control.take_verdict(), Some(Verdict::Success));
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
        w.output(b"KTEST ignored 1\n", &mut control);
        assert_eq!(w.running(), Some(0));
        assert_eq!(control.take_deadline(), None, "a's deadline stays");
        w.output(b"after\nKTEST panic 0 boom\nKTEST failed 0\n", &mut control);
        assert_eq!(w.running(), None);
        assert_eq!(w.finished.len(), 2);
        assert_eq!(w.finished[0].index, 1);
        assert_eq!(w.finished[0].status, Status::Ignored);
        assert_eq!(w.finished[1].index, 0);
        assert_eq!(w.finished[1].status, Status::Failed(String::new()));
        assert_eq!(w.finished[1].output, b"before\nafter\n");
        assert_eq!(w.finished[1].panic.as_deref(), Some("boom"));
    }

    #[test]
    fn file_names_are_plain() {
        assert_eq!(file_name("paging::maps pages/x"), "paging-maps_pages_x");
    }
}
