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
        s = escape_attribute(suite),
    ));
    for r in results {
        let head = format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape_attribute(&r.name),
            escape_attribute(suite),
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
                    escape_attribute(message),
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

/// Text for XML content and attribute values (`"`-quoted). Characters XML 1.0 cannot hold at
/// all (C0 controls other than tab, line feed and carriage return; U+FFFE and U+FFFF) are shown
/// as Rust writes them (`\u{1b}`), so a report stays well-formed and still says what was
/// there. Carriage returns, and in values also tabs and line feeds, are written as character
/// references: a parser would turn them into line feeds or spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            c if !allowed_in_xml(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// [`escape`] for an attribute value: tabs and line feeds kept too.
fn escape_attribute(text: &str) -> String {
    escape(text).replace('\t', "&#9;").replace('\n', "&#10;")
}

/// XML 1.0's `Char` production (surrogates cannot be in a `char`).
fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{fffd}' | '\u{10000}'..)
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
            xml.contains("<system-out>out &lt;1&gt;\\u{7}</system-out>"),
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

    /// Item 17 of issue 18: whatever a test's name, output or failure says (controls, ESC,
    /// U+FFFE, U+FFFF, DEL, C1 controls, `]]>`, quotes), the report is well-formed XML 1.0 by a
    /// real parser, and what XML can hold comes back as it was.
    #[test]
    fn reports_are_well_formed_xml_whatever_the_text() {
        let hostile = "nul\u{0} bell\u{7} esc\u{1b}[31m vt\u{b} ff\u{c} us\u{1f} del\u{7f} c1\u{85} \u{fffe}\u{ffff} ]]> \"q\" 'a' <t> & \u{10ffff} tab\tcr\rlf\n";
        let r = |name: &str, verdict| Outcome {
            name: name.into(),
            should_panic: false,
            verdict,
            output: hostile.into(),
            duration: Duration::from_millis(1),
        };
        let results = [
            r(&format!("pass {hostile}"), Verdict::Passed),
            r(
                &format!("fail {hostile}"),
                Verdict::Failed {
                    details: format!("{hostile}\npanicked: {hostile}"),
                },
            ),
            r(&format!("skip {hostile}"), Verdict::Ignored),
        ];
        let xml = render(&format!("suite {hostile}"), &results);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
        let cases: Vec<roxmltree::Node<'_, '_>> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        // What XML cannot hold is shown as Rust's escape; the rest is kept.
        let shown = "nul\\u{0} bell\\u{7} esc\\u{1b}[31m vt\\u{b} ff\\u{c} us\\u{1f} del\u{7f} c1\u{85} \\u{fffe}\\u{ffff} ]]> \"q\" 'a' <t> & \u{10ffff} tab\tcr\rlf\n";
        assert_eq!(
            cases[0].attribute("name"),
            Some(format!("pass {shown}").as_str())
        );
        let out = cases[0]
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text());
        assert_eq!(out, Some(shown));
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("a failure element");
        assert_eq!(
            failure.attribute("message"),
            Some(format!("panicked: {shown}").trim_end())
        );
        assert!(cases[2].children().any(|n| n.has_tag_name("skipped")));
    }
}
