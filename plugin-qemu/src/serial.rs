//! Watching the guest's serial output: success and failure patterns that end the run, and
//! `send` rules that type text when a prompt appears.

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
    done: bool,
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
            done: false,
        })
    }

    /// Whether anything is being watched for.
    pub fn is_active(&self) -> bool {
        self.success.is_some() || self.failure.is_some() || !self.sends.is_empty()
    }

    /// Feeds new output; returns what it triggered, at most one verdict.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        if self.done || !self.is_active() {
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
}
