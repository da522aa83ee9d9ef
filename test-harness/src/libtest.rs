//! libtest's own output, so that cargo, people and tools read kernel tests like any Rust test:
//! `running N tests`, `test name ... ok`, terse dots, the `failures:` section, the
//! `test result:` line, the `--list` forms, and exit code 101 when a test failed.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use crate::request::Format;
use crate::table::TestCase;

/// libtest's exit code when a test failed (or its arguments were wrong).
pub const FAILED_EXIT_CODE: i32 = 101;

/// libtest's `QUIET_MODE_MAX_COLUMN`: terse output ends its line of marks with the progress
/// when the column reaches this many less one; a failure's own line starts a new column too.
const TERSE_COLUMNS: usize = 88;

/// How a test ended, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Passed,
    /// It failed; `details` is what goes in its `---- name stdout ----` block.
    Failed { details: String },
    /// It was not run.
    Ignored,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The test's name.
    pub name: String,
    /// Whether it is a `should_panic` test (libtest shows that on its line).
    pub should_panic: bool,
    /// How it ended.
    pub verdict: Verdict,
    /// Its captured output (shown with `--show-output`).
    pub output: String,
    /// How long it ran.
    pub duration: Duration,
}

/// Prints a run as libtest does.
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    show_output: bool,
    /// Test output was printed as it came (`--nocapture`): no output blocks.
    echoed: bool,
    total: usize,
    /// Terse marks on the current line.
    column: usize,
    /// Result lines printed so far.
    printed: usize,
    /// Ignored tests not printed yet, in name order: each is printed before the first result
    /// whose name sorts after it, as libtest reports them among the others.
    ignored: VecDeque<Outcome>,
    /// Every result recorded so far.
    pub results: Vec<Outcome>,
}

/// What a result line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `ok`, `.`.
    Passed,
    /// `FAILED`, `name --- FAILED`.
    Failed,
    /// `ignored`, `i`.
    Ignored,
}

impl Verdict {
    /// The mark of its line.
    pub fn mark(&self) -> Mark {
        match self {
            Verdict::Passed => Mark::Passed,
            Verdict::Failed { .. } => Mark::Failed,
            Verdict::Ignored => Mark::Ignored,
        }
    }
}

impl<W: Write> std::fmt::Debug for Printer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer")
            .field("results", &self.results)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Printer<W> {
    /// A printer to `out`.
    pub fn new(out: W, format: Format, show_output: bool) -> Printer<W> {
        Printer {
            out,
            format,
            show_output,
            echoed: false,
            total: 0,
            column: 0,
            printed: 0,
            ignored: VecDeque::new(),
            results: Vec::new(),
        }
    }

    /// Whether the tests' output was printed as it came (`--nocapture`), when the
    /// `successes:` section of `--show-output` has names only, as libtest's.
    pub fn echoed(mut self, echoed: bool) -> Self {
        self.echoed = echoed;
        self
    }

    /// `running N tests`.
    pub fn start(&mut self, count: usize) {
        self.total = count;
        let noun = if count == 1 { "test" } else { "tests" };
        let _ = write!(self.out, "\nrunning {count} {noun}\n");
        let _ = self.out.flush();
    }

    /// Tests reported as ignored without running: each is printed (and recorded) at its place
    /// in name order among the results that follow, the rest by [`Printer::finish`].
    pub fn ignored(&mut self, outcomes: impl IntoIterator<Item = Outcome>) {
        self.ignored.extend(outcomes);
        self.ignored
            .make_contiguous()
            .sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Prints the held ignored tests whose names sort before `name` (all of them: `None`).
    fn ignored_before(&mut self, name: Option<&str>) {
        while let Some(next) = self.ignored.front() {
            if name.is_some_and(|name| next.name.as_str() >= name) {
                break;
            }
            let Some(outcome) = self.ignored.pop_front() else {
                break;
            };
            self.write_line(&outcome.name, outcome.should_panic, Mark::Ignored);
            self.record(outcome);
        }
    }

    /// One test's line (or character) and its record.
    pub fn result(&mut self, outcome: Outcome) {
        self.line(&outcome.name, outcome.should_panic, outcome.verdict.mark());
        self.record(outcome);
    }

    /// One test's line (or character), printed as the test ends; its details come later with
    /// [`Printer::record`].
    pub fn line(&mut self, name: &str, should_panic: bool, mark: Mark) {
        self.ignored_before(Some(name));
        self.write_line(name, should_panic, mark);
    }

    fn write_line(&mut self, name: &str, should_panic: bool, mark: Mark) {
        match self.format {
            Format::Pretty => {
                let mode = if should_panic { " - should panic" } else { "" };
                let word = match mark {
                    Mark::Passed => "ok",
                    Mark::Failed => "FAILED",
                    Mark::Ignored => "ignored",
                };
                let _ = writeln!(self.out, "test {name}{mode} ... {word}");
                self.printed += 1;
            }
            Format::Terse if mark == Mark::Failed => {
                // libtest names a failure on its own line as it happens, ending the line of
                // marks before it with the progress (none when no mark is on the line).
                if self.column != 0 {
                    self.progress();
                }
                let _ = writeln!(self.out, "{name} --- FAILED");
                self.printed += 1;
            }
            Format::Terse => {
                let _ = write!(self.out, "{}", if mark == Mark::Passed { "." } else { "i" });
                self.printed += 1;
                self.column += 1;
                if self.column % TERSE_COLUMNS == TERSE_COLUMNS - 1 {
                    self.progress();
                }
            }
        }
        let _ = self.out.flush();
    }

    /// Ends the line of terse marks with how many results of how many are out.
    fn progress(&mut self) {
        let _ = writeln!(self.out, " {}/{}", self.printed, self.total);
        self.column = 0;
    }

    /// Keeps a test's result (with its failure details) for the summary.
    pub fn record(&mut self, outcome: Outcome) {
        self.results.push(outcome);
    }

    /// The `failures:` section and the `test result:` line; returns the exit code.
    pub fn finish(&mut self, filtered_out: usize, elapsed: Duration) -> i32 {
        self.ignored_before(None);
        let count = |f: fn(&Verdict) -> bool| self.results.iter().filter(|r| f(&r.verdict)).count();
        let passed = count(|v| *v == Verdict::Passed);
        let failed = count(|v| matches!(v, Verdict::Failed { .. }));
        let ignored = count(|v| *v == Verdict::Ignored);
        if self.show_output {
            // libtest's `successes:` section: the passing tests' output, then their names; both
            // headings even when there is neither (output shown as it came has no block).
            let mut blocks = String::new();
            let mut names = Vec::new();
            for r in &self.results {
                if r.verdict == Verdict::Passed {
                    names.push(r.name.as_str());
                    if !self.echoed && !r.output.is_empty() {
                        blocks.push_str(&format!("---- {} stdout ----\n{}\n", r.name, r.output));
                    }
                }
            }
            let _ = write!(self.out, "\nsuccesses:\n");
            if !blocks.is_empty() {
                let _ = write!(self.out, "\n{blocks}");
            }
            let _ = write!(self.out, "\nsuccesses:\n");
            names.sort_unstable();
            for name in names {
                let _ = writeln!(self.out, "    {name}");
            }
        }
        if failed > 0 {
            let mut blocks = String::new();
            let mut names = Vec::new();
            for r in &self.results {
                if let Verdict::Failed { details } = &r.verdict {
                    names.push(r.name.clone());
                    if !details.is_empty() {
                        blocks.push_str(&format!("---- {} stdout ----\n{details}\n", r.name));
                    }
                }
            }
            let _ = write!(self.out, "\nfailures:\n");
            if !blocks.is_empty() {
                let _ = write!(self.out, "\n{blocks}");
            }
            let _ = write!(self.out, "\nfailures:\n");
            names.sort();
            for name in names {
                let _ = writeln!(self.out, "    {name}");
            }
        }
        let word = if failed > 0 { "FAILED" } else { "ok" };
        let _ = write!(
            self.out,
            "\ntest result: {word}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n\n",
            elapsed.as_secs_f64()
        );
        let _ = self.out.flush();
        if failed > 0 { FAILED_EXIT_CODE } else { 0 }
    }
}

/// `--list`: `name: test` lines, with libtest's count line after them unless terse.
pub fn list(out: &mut impl Write, tests: &[&TestCase], format: Format) {
    for test in tests {
        let _ = writeln!(out, "{}: test", test.name);
    }
    if format == Format::Pretty {
        if !tests.is_empty() {
            let _ = writeln!(out);
        }
        let noun = if tests.len() == 1 { "test" } else { "tests" };
        let _ = writeln!(out, "{} {noun}, 0 benchmarks", tests.len());
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, verdict: Verdict) -> Outcome {
        Outcome {
            name: name.into(),
            should_panic: false,
            verdict,
            output: String::new(),
            duration: Duration::ZERO,
        }
    }

    /// The very text libtest prints for the same results (taken from a real `cargo test`).
    #[test]
    fn pretty_output_is_libtests() {
        let mut p = Printer::new(Vec::new(), Format::Pretty, false);
        p.start(4);
        p.result(outcome("tests::alpha", Verdict::Passed));
        p.result(outcome("tests::delta_ign", Verdict::Ignored));
        p.result(outcome(
            "tests::beta_fails",
            Verdict::Failed {
                details: "beta out\npanicked: boom here\n".into(),
            },
        ));
        let mut sp = outcome("tests::gamma_sp", Verdict::Passed);
        sp.should_panic = true;
        p.result(sp);
        let code = p.finish(1, Duration::from_millis(110));
        assert_eq!(code, 101);
        let text = String::from_utf8(p.out).unwrap();
        assert_eq!(
            text,
            "\nrunning 4 tests\ntest tests::alpha ... ok\ntest tests::delta_ign ... ignored\ntest tests::beta_fails ... FAILED\ntest tests::gamma_sp - should panic ... ok\n\nfailures:\n\n---- tests::beta_fails stdout ----\nbeta out\npanicked: boom here\n\n\nfailures:\n    tests::beta_fails\n\ntest result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 1 filtered out; finished in 0.11s\n\n"
        );
    }

    /// Ignored tests among the others in name order, as libtest prints them (`test s::c_ign ...
    /// ignored` between `s::b_pass_quiet` and `s::d_pass_out` in a real run), the last ones
    /// after every result.
    #[test]
    fn ignored_tests_print_in_name_order() {
        let mut p = Printer::new(Vec::new(), Format::Pretty, false);
        p.start(6);
        p.ignored([
            outcome("s::f_ign", Verdict::Ignored),
            outcome("s::a_ign", Verdict::Ignored),
            outcome("s::c_ign", Verdict::Ignored),
        ]);
        p.result(outcome("s::b_pass", Verdict::Passed));
        // As the session prints a line live and records the result after the boot.
        p.line("s::d_pass", false, Mark::Passed);
        p.line("s::e_pass", false, Mark::Passed);
        p.record(outcome("s::d_pass", Verdict::Passed));
        p.record(outcome("s::e_pass", Verdict::Passed));
        assert_eq!(p.finish(0, Duration::ZERO), 0);
        let text = String::from_utf8(p.out).unwrap();
        assert_eq!(
            text,
            "\nrunning 6 tests\ntest s::a_ign ... ignored\ntest s::b_pass ... ok\ntest s::c_ign ... ignored\ntest s::d_pass ... ok\ntest s::e_pass ... ok\ntest s::f_ign ... ignored\n\ntest result: ok. 3 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n"
        );
    }

    fn with_output(name: &str, output: &str) -> Outcome {
        Outcome {
            output: output.into(),
            ..outcome(name, Verdict::Passed)
        }
    }

    /// `--show-output`: the text libtest printed for the same results (a real `cargo test --
    /// --show-output`, pretty and terse, with and without `--nocapture`, and with no test passed).
    #[test]
    fn show_output_is_libtests() {
        let run = |format: Format, echoed: bool| {
            let mut p = Printer::new(Vec::new(), format, true).echoed(echoed);
            p.start(4);
            p.ignored([outcome("s::c_ign", Verdict::Ignored)]);
            p.result(with_output("s::a_pass_out", "hello a\n"));
            p.result(with_output("s::b_pass_quiet", ""));
            p.result(with_output("s::d_pass_out", "hello d\n"));
            assert_eq!(p.finish(201, Duration::ZERO), 0);
            String::from_utf8(p.out).unwrap()
        };
        let summary = "\nsuccesses:\n    s::a_pass_out\n    s::b_pass_quiet\n    s::d_pass_out\n\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 201 filtered out; finished in 0.00s\n\n";
        let blocks = "\nsuccesses:\n\n---- s::a_pass_out stdout ----\nhello a\n\n---- s::d_pass_out stdout ----\nhello d\n\n";
        let lines = "\nrunning 4 tests\ntest s::a_pass_out ... ok\ntest s::b_pass_quiet ... ok\ntest s::c_ign ... ignored\ntest s::d_pass_out ... ok\n";
        assert_eq!(
            run(Format::Pretty, false),
            format!("{lines}{blocks}{summary}")
        );
        assert_eq!(
            run(Format::Terse, false),
            format!("\nrunning 4 tests\n..i.{blocks}{summary}")
        );
        assert_eq!(
            run(Format::Pretty, true),
            format!("{lines}\nsuccesses:\n{summary}")
        );
        let mut p = Printer::new(Vec::new(), Format::Pretty, true);
        p.start(1);
        p.result(outcome("s::c_ign", Verdict::Ignored));
        p.finish(204, Duration::ZERO);
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "\nrunning 1 test\ntest s::c_ign ... ignored\n\nsuccesses:\n\nsuccesses:\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 204 filtered out; finished in 0.00s\n\n"
        );
    }

    #[test]
    fn a_passing_run_exits_0() {
        let mut p = Printer::new(Vec::new(), Format::Pretty, false);
        p.start(1);
        p.result(outcome("a", Verdict::Passed));
        assert_eq!(p.finish(4, Duration::ZERO), 0);
        let text = String::from_utf8(p.out).unwrap();
        assert_eq!(
            text,
            "\nrunning 1 test\ntest a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.00s\n\n"
        );
    }

    #[test]
    fn terse_output_is_libtests() {
        let mut p = Printer::new(Vec::new(), Format::Terse, false);
        p.start(5);
        p.result(outcome("a", Verdict::Passed));
        p.result(outcome("d", Verdict::Ignored));
        p.result(outcome("e", Verdict::Ignored));
        p.result(outcome(
            "b",
            Verdict::Failed {
                details: String::new(),
            },
        ));
        p.result(outcome("c", Verdict::Passed));
        p.finish(0, Duration::ZERO);
        let text = String::from_utf8(p.out).unwrap();
        assert!(
            text.starts_with(
                "\nrunning 5 tests\n.ii 3/5\nb --- FAILED\n.\nfailures:\n\nfailures:\n    b\n"
            ),
            "{text}"
        );
    }

    /// 203 results with failures at the start of a line, back to back and after long runs of
    /// marks: the text libtest printed for the same results (`cargo test -- --format terse
    /// --test-threads=1`), up to its `failures:` section.
    #[test]
    fn terse_lines_and_progress_are_libtests() {
        let failed = || Verdict::Failed {
            details: String::new(),
        };
        let mut p = Printer::new(Vec::new(), Format::Terse, false);
        p.start(203);
        for name in ["s::a", "s::b", "s::d"] {
            p.result(outcome(name, Verdict::Passed));
        }
        for i in 0..200 {
            let verdict = match i {
                1 | 50 => Verdict::Ignored,
                3 | 90 | 176 | 177 => failed(),
                _ => Verdict::Passed,
            };
            p.result(outcome(&format!("t{i:03}"), verdict));
        }
        p.finish(0, Duration::ZERO);
        let text = String::from_utf8(p.out).unwrap();
        let expected = format!(
            "\nrunning 203 tests\n....i. 6/203\nt003 --- FAILED\n{}i{} 93/203\nt090 --- FAILED\n{} 179/203\nt176 --- FAILED\nt177 --- FAILED\n{}\nfailures:\n",
            ".".repeat(46),
            ".".repeat(39),
            ".".repeat(85),
            ".".repeat(22),
        );
        assert!(text.starts_with(&expected), "{text}");
    }

    /// A long run of marks breaks after 87 of them, and the count goes on from there.
    #[test]
    fn terse_breaks_long_lines_as_libtest() {
        let mut p = Printer::new(Vec::new(), Format::Terse, false);
        p.start(180);
        for i in 0..180 {
            p.result(outcome(&format!("t{i:03}"), Verdict::Passed));
        }
        p.finish(0, Duration::ZERO);
        let text = String::from_utf8(p.out).unwrap();
        let expected = format!(
            "\nrunning 180 tests\n{} 87/180\n{} 174/180\n{}\ntest result: ok.",
            ".".repeat(87),
            ".".repeat(87),
            ".".repeat(6),
        );
        assert!(text.starts_with(&expected), "{text}");
    }

    #[test]
    fn lists_like_libtest() {
        let tests = [TestCase::new(0, "a::b"), TestCase::new(1, "c")];
        let refs: Vec<&TestCase> = tests.iter().collect();
        let mut out = Vec::new();
        list(&mut out, &refs, Format::Pretty);
        assert_eq!(out, b"a::b: test\nc: test\n\n2 tests, 0 benchmarks\n");
        let mut out = Vec::new();
        list(&mut out, &refs, Format::Terse);
        assert_eq!(out, b"a::b: test\nc: test\n");
        let mut out = Vec::new();
        list(&mut out, &[], Format::Pretty);
        assert_eq!(out, b"0 tests, 0 benchmarks\n");
    }
}
