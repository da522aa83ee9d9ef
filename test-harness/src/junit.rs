//! `--junit PATH`: a JUnit XML report of a plain `cargo test` run of kernel tests (nextest
//! writes its own). Written atomically: a reader never sees half a report.

use std::io::Write;
use std::path::Path;

use image_runner_core::Error;

use crate::libtest::{Outcome, Verdict};

/// The report for the tests of `suite` (the executable's name).
pub fn render(suite: &str, results: &[Outcome]) -> String {
    let failures = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed { .. }))
        .count();
    let skipped = results
        .iter()
        .filter(|r| r.verdict == Verdict::Ignored)
        .count();
    let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"{s}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n  <testsuite name=\"{s}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
        results.len(),
        results.len(),
        s = escape(suite),
    ));
    for r in results {
        let head = format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(&r.name),
            escape(suite),
            r.duration.as_secs_f64()
        );
        match &r.verdict {
            Verdict::Passed if r.output.is_empty() => xml.push_str(&format!("{head}/>\n")),
            Verdict::Passed => xml.push_str(&format!(
                "{head}>\n      <system-out>{}</system-out>\n    </testcase>\n",
                escape(&r.output)
            )),
            Verdict::Ignored => {
                xml.push_str(&format!("{head}>\n      <skipped/>\n    </testcase>\n"))
            }
            Verdict::Failed { details } => {
                let message = details
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("failed");
                xml.push_str(&format!(
                    "{head}>\n      <failure message=\"{}\">{}</failure>\n      <system-out>{}</system-out>\n    </testcase>\n",
                    escape(message),
                    escape(details),
                    escape(&r.output)
                ));
            }
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Writes the report to `path`.
pub fn write(path: &Path, suite: &str, results: &[Outcome]) -> Result<(), Error> {
    let text = render(suite, results);
    image_runner_core::fs::write_atomic(path, |file, temp| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", temp, e))
    })
}

/// Text for XML attributes and content; characters XML cannot hold become `?`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reports_each_kind_of_result() {
        let r = |name: &str, verdict| Outcome {
            name: name.into(),
            should_panic: false,
            verdict,
            output: "out <1>\u{7}".into(),
            duration: Duration::from_millis(5),
        };
        let xml = render(
            "mixed",
            &[
                r("a", Verdict::Passed),
                r(
                    "b",
                    Verdict::Failed {
                        details: "panicked: x & y\n".into(),
                    },
                ),
                r("c", Verdict::Ignored),
            ],
        );
        assert!(
            xml.contains(
                "<testsuite name=\"mixed\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"panicked: x &amp; y\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>out &lt;1&gt;?</system-out>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<testcase name=\"c\" classname=\"mixed\" time=\"0.005\">\n      <skipped/>"
            ),
            "{xml}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.xml");
        write(&path, "mixed", &[r("a", Verdict::Passed)]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<?xml"));
    }
}
