//! What cargo, a user or nextest asks of a test executable, in libtest's own arguments, and
//! which tests that selects.

use std::path::PathBuf;

use crate::table::TestCase;

/// libtest's output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `test name ... ok`, one line a test.
    #[default]
    Pretty,
    /// A character a test (`--format terse`, `-q`).
    Terse,
}

/// Which tests run with regard to their `ignore` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ignored {
    /// Ignored tests are reported as ignored and not run (the default).
    #[default]
    Skip,
    /// Only ignored tests run (`--ignored`).
    Only,
    /// Every test runs (`--include-ignored`).
    Include,
}

/// A parsed libtest command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Name filters: a test runs when one matches (a substring, or the whole name with
    /// `exact`). None: every test.
    pub filters: Vec<String>,
    /// Filters and skips match whole names.
    pub exact: bool,
    /// Tests whose names match one of these do not run (`--skip`, repeatable).
    pub skip: Vec<String>,
    /// What to do with ignored tests.
    pub ignored: Ignored,
    /// List the tests instead of running them (`--list`).
    pub list: bool,
    /// How to print.
    pub format: Format,
    /// Print each test's output as it comes instead of capturing it (`--nocapture`).
    pub nocapture: bool,
    /// Show the captured output of passing tests too (`--show-output`).
    pub show_output: bool,
    /// Colour (`--color auto|always|never`): accepted; the output is plain.
    pub color: Option<String>,
    /// Write a JUnit XML report here (`--junit PATH`, this runner's own option).
    pub junit: Option<PathBuf>,
}

/// Options libtest takes that change nothing for kernel tests (one machine runs tests one
/// after another), with whether they take a value.
const ACCEPTED: &[(&str, bool)] = &[
    ("--test-threads", true),
    ("--test", false),
    ("--report-time", false),
    ("--ensure-time", false),
    ("--shuffle", false),
    ("--shuffle-seed", true),
    ("--logfile", true),
    ("-Z", true),
    ("--force-run-in-process", false),
];

impl Request {
    /// Parses libtest's arguments (what follows the executable). Unknown options are an error
    /// that says what is understood.
    pub fn parse(args: &[String]) -> Result<Request, String> {
        let mut request = Request::default();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (option, inline) = match word.split_once('=') {
                Some((o, v)) if o.starts_with("--") => (o, Some(v.to_owned())),
                _ => (word.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => words
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("`{name}` needs a value")),
                }
            };
            match option {
                "--exact" => request.exact = true,
                "--skip" => request.skip.push(value("--skip")?),
                "--ignored" => request.ignored = Ignored::Only,
                "--include-ignored" => request.ignored = Ignored::Include,
                "--list" => request.list = true,
                "--nocapture" | "--no-capture" => request.nocapture = true,
                "--show-output" => request.show_output = true,
                "-q" | "--quiet" => request.format = Format::Terse,
                "--format" => {
                    request.format = match value("--format")?.as_str() {
                        "pretty" => Format::Pretty,
                        "terse" => Format::Terse,
                        "junit" => {
                            return Err(
                                "`--format junit` is not supported for kernel tests; use `--junit PATH` to write a JUnit report beside the normal output".into(),
                            );
                        }
                        other => {
                            return Err(format!(
                                "`--format {other}` is not supported for kernel tests; use pretty or terse"
                            ));
                        }
                    }
                }
                "--color" => {
                    let v = value("--color")?;
                    if !matches!(v.as_str(), "auto" | "always" | "never") {
                        return Err(format!("`--color {v}`: use auto, always or never"));
                    }
                    request.color = Some(v);
                }
                "--junit" => request.junit = Some(PathBuf::from(value("--junit")?)),
                "--bench" => {
                    return Err("`--bench`: kernel tests have no benchmarks".into());
                }
                "-h" | "--help" => return Err(usage()),
                // `-Z unstable-options` can be one word, as libtest's short options can.
                z if z.starts_with("-Z") && z.len() > 2 => {}
                _ => match ACCEPTED.iter().find(|(name, _)| *name == option) {
                    Some((name, true)) => {
                        value(name)?;
                    }
                    Some((_, false)) => {}
                    None if option.starts_with('-') && option.len() > 1 => {
                        return Err(format!("unknown option `{word}`\n{}", usage()));
                    }
                    None => request.filters.push(word.clone()),
                },
            }
        }
        Ok(request)
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    /// Splits `tests` into what runs, what is reported as ignored, and how many were filtered
    /// out, as libtest does: filters and skips first, then the ignore flag; in name order, the
    /// order libtest runs and lists tests in.
    pub fn select<'t>(&self, tests: &'t [TestCase]) -> Selection<'t> {
        let mut selection = Selection::default();
        for test in tests {
            let wanted = (self.filters.is_empty()
                || self.filters.iter().any(|f| self.matches(f, &test.name)))
                && !self.skip.iter().any(|s| self.matches(s, &test.name))
                && (self.ignored != Ignored::Only || test.ignore);
            if !wanted {
                selection.filtered_out += 1;
            } else if test.ignore && self.ignored == Ignored::Skip {
                selection.ignored.push(test);
            } else {
                selection.run.push(test);
            }
        }
        selection.run.sort_by(|a, b| a.name.cmp(&b.name));
        selection.ignored.sort_by(|a, b| a.name.cmp(&b.name));
        selection
    }
}

/// The tests a request selects.
#[derive(Debug, Default, Clone)]
pub struct Selection<'t> {
    /// Tests to run, in name order (the order libtest runs them in).
    pub run: Vec<&'t TestCase>,
    /// Tests reported as ignored without running, in name order.
    pub ignored: Vec<&'t TestCase>,
    /// How many the filters left out.
    pub filtered_out: usize,
}

impl Selection<'_> {
    /// Every selected test (run or ignored), in name order.
    pub fn listed(&self) -> Vec<&TestCase> {
        let mut all: Vec<&TestCase> = self.run.iter().chain(&self.ignored).copied().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// The most bytes of a `ktest=` token one boot gets: a command line must fit the bootloader's
/// config (GRUB takes words of about 8 KiB) and the system's argument limits (QEMU's
/// `-append`). More tests than that are run over several boots.
pub const TOKEN_MAX: usize = 3000;

/// How many of `tests` (from the first, in order) one boot's request holds: as many as fit
/// [`TOKEN_MAX`], and at least one.
pub fn batch_len(tests: &[&TestCase]) -> usize {
    // The token grows with each test (a range only ever shortens what follows it), so the
    // longest prefix that fits is found by halving.
    let (mut fits, mut too_long) = (1, tests.len() + 1);
    if kernel_token(tests).len() <= TOKEN_MAX {
        return tests.len();
    }
    while too_long - fits > 1 {
        let mid = (fits + too_long) / 2;
        if kernel_token(&tests[..mid]).len() <= TOKEN_MAX {
            fits = mid;
        } else {
            too_long = mid;
        }
    }
    fits.min(tests.len())
}

/// The `ktest=` token for the kernel's command line: the indices of `tests`, in order, with
/// runs of consecutive indices as ranges (protocol section 2).
pub fn kernel_token(tests: &[&TestCase]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut at = 0;
    while at < tests.len() {
        let first = tests[at].index;
        let mut last = first;
        while at + 1 < tests.len() && tests[at + 1].index == last + 1 {
            at += 1;
            last += 1;
        }
        items.push(if last > first {
            format!("{first}-{last}")
        } else {
            first.to_string()
        });
        at += 1;
    }
    format!("ktest={}", items.join(","))
}

fn usage() -> String {
    "kernel tests take libtest's arguments: [FILTER]... --exact --skip NAME --ignored --include-ignored --list --format pretty|terse -q --nocapture --show-output --test-threads N --color auto|always|never, and --junit PATH".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn table() -> Vec<TestCase> {
        let mut tests: Vec<TestCase> = ["paging::maps", "paging::unmaps", "heap::grows", "slow"]
            .iter()
            .enumerate()
            .map(|(i, n)| TestCase::new(i, *n))
            .collect();
        tests[3].ignore = true;
        tests
    }

    fn names(tests: &[&TestCase]) -> Vec<String> {
        tests.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn parses_what_cargo_and_nextest_pass() {
        let r = Request::parse(&args(&["--exact", "paging::maps", "--nocapture"])).unwrap();
        assert!(r.exact && r.nocapture);
        assert_eq!(r.filters, ["paging::maps"]);
        let r = Request::parse(&args(&["--list", "--format", "terse", "--ignored"])).unwrap();
        assert!(r.list);
        assert_eq!(r.format, Format::Terse);
        assert_eq!(r.ignored, Ignored::Only);
        let r = Request::parse(&args(&[
            "maps",
            "--skip=un",
            "--skip",
            "heap",
            "--test-threads",
            "1",
            "-q",
            "--color=never",
            "--include-ignored",
            "--junit",
            "out.xml",
        ]))
        .unwrap();
        assert_eq!(r.filters, ["maps"]);
        assert_eq!(r.skip, ["un", "heap"]);
        assert_eq!(r.format, Format::Terse);
        assert_eq!(r.ignored, Ignored::Include);
        assert_eq!(r.junit, Some(PathBuf::from("out.xml")));
    }

    /// `-Z` takes its value in the same word or in the next, as libtest's short options do.
    #[test]
    fn unstable_options_in_either_form() {
        for words in [
            &["-Zunstable-options", "maps"][..],
            &["-Z", "unstable-options", "maps"][..],
        ] {
            let r = Request::parse(&args(words)).unwrap();
            assert_eq!(r.filters, ["maps"], "{words:?}");
        }
    }

    #[test]
    fn unknown_options_are_errors() {
        let err = Request::parse(&args(&["--bogus"])).unwrap_err();
        assert!(err.starts_with("unknown option `--bogus`"), "{err}");
        assert!(Request::parse(&args(&["--skip"])).is_err());
        assert!(Request::parse(&args(&["--format", "json"])).is_err());
    }

    #[test]
    fn selects_like_libtest() {
        let t = table();
        let s = Request::parse(&args(&["paging"])).unwrap().select(&t);
        assert_eq!(names(&s.run), ["paging::maps", "paging::unmaps"]);
        assert_eq!(s.filtered_out, 2);
        let s = Request::parse(&args(&["maps", "heap"])).unwrap().select(&t);
        assert_eq!(
            names(&s.run),
            ["heap::grows", "paging::maps", "paging::unmaps"]
        );
        let s = Request::parse(&args(&["--exact", "paging::maps"]))
            .unwrap()
            .select(&t);
        assert_eq!(names(&s.run), ["paging::maps"]);
        let s = Request::parse(&args(&["--skip", "paging"]))
            .unwrap()
            .select(&t);
        assert_eq!(names(&s.run), ["heap::grows"]);
        assert_eq!(names(&s.ignored), ["slow"]);
        let s = Request::parse(&args(&["--ignored"])).unwrap().select(&t);
        assert_eq!(names(&s.run), ["slow"]);
        assert_eq!(s.filtered_out, 3);
        let s = Request::parse(&args(&["--include-ignored"]))
            .unwrap()
            .select(&t);
        assert_eq!(s.run.len(), 4);
        let s = Request::parse(&[]).unwrap().select(&t);
        assert_eq!(s.run.len(), 3);
        assert_eq!(
            names(&s.listed()),
            ["heap::grows", "paging::maps", "paging::unmaps", "slow"]
        );
    }

    #[test]
    fn the_kernel_token_uses_ranges() {
        let t: Vec<TestCase> = (0..10).map(|i| TestCase::new(i, format!("t{i}"))).collect();
        let pick = |ix: &[usize]| kernel_token(&ix.iter().map(|&i| &t[i]).collect::<Vec<_>>());
        assert_eq!(pick(&[0, 1, 2, 5, 7, 8]), "ktest=0-2,5,7-8");
        assert_eq!(pick(&[4]), "ktest=4");
        assert_eq!(pick(&[]), "ktest=");
    }

    /// 30,000 tests in an order that makes no ranges: each boot's request fits (issue 18,
    /// item 16: one `ktest=` token of 170 KiB made QEMU fail with "Argument list too long").
    #[test]
    fn a_request_too_long_for_one_command_line_is_split_into_boots_that_fit() {
        let cases: Vec<TestCase> = (0..30_000)
            .map(|i| TestCase::new((i * 7919) % 30_000, format!("t{i}")))
            .collect();
        let mut pending: Vec<&TestCase> = cases.iter().collect();
        let mut boots = 0;
        let mut seen = 0;
        while !pending.is_empty() {
            let n = batch_len(&pending);
            assert!(n >= 1);
            let token = kernel_token(&pending[..n]);
            assert!(token.len() <= TOKEN_MAX, "{} bytes", token.len());
            if n < pending.len() {
                assert!(
                    kernel_token(&pending[..n + 1]).len() > TOKEN_MAX,
                    "not the longest fit"
                );
            }
            seen += n;
            pending.drain(..n);
            boots += 1;
        }
        assert_eq!(seen, 30_000);
        assert!(boots > 1 && boots < 100, "{boots} boots");
        // A short request is one boot.
        let few: Vec<&TestCase> = cases.iter().take(10).collect();
        assert_eq!(batch_len(&few), 10);
    }
}
