//! Watching a run from code: the runner streams the guest's serial output to a
//! [`SerialHandler`] as it arrives; the handler can type into the serial port and end the run
//! with a verdict through its [`Control`]. Ready-made handlers: [`Capture`], [`Tee`],
//! [`AnswerOn`], [`EndOn`]; tuples and `Vec<Box<dyn SerialHandler>>` chain several.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::media::Verdict;

/// What a handler may do to the running machine.
#[derive(Debug, Default)]
pub struct Control {
    input: Vec<u8>,
    end: Option<Verdict>,
    /// `Some(new)` when the handler set or cleared its deadline in this call.
    deadline: Option<Option<(Instant, Verdict)>>,
    screenshots: Vec<PathBuf>,
}

impl Control {
    /// A control with nothing asked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Types `bytes` into the guest's serial port (sent after the handler returns).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.input.extend_from_slice(bytes.as_ref());
    }

    /// Ends the run with `verdict`: the runner stops the machine and reports it.
    pub fn finish(&mut self, verdict: Verdict) {
        self.end.get_or_insert(verdict);
    }

    /// Whether a verdict was given.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }

    /// Ends the run with `verdict` at `at`, unless a later call moves or clears this deadline:
    /// a watchdog for a guest that goes quiet (a test that hangs), since the handler is only
    /// called when output arrives. Runners that cannot keep deadlines ignore it (their own time
    /// limit still applies).
    pub fn end_at(&mut self, at: Instant, verdict: Verdict) {
        self.deadline = Some(Some((at, verdict)));
    }

    /// Clears the deadline set with [`Control::end_at`].
    pub fn clear_end_at(&mut self) {
        self.deadline = Some(None);
    }

    /// Asks the runner to save a picture of the guest's display at `path` (PNG) now. Runners
    /// that cannot ignore it; whether the file was written shows on disk.
    pub fn screenshot(&mut self, path: impl Into<PathBuf>) {
        self.screenshots.push(path.into());
    }

    /// For runners: the deadline change asked for in this call, taken (`Some(None)`: cleared).
    pub fn take_deadline(&mut self) -> Option<Option<(Instant, Verdict)>> {
        self.deadline.take()
    }

    /// For runners: the screenshots asked for, taken.
    pub fn take_screenshots(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.screenshots)
    }

    /// For runners: the bytes to type, taken.
    pub fn take_input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.input)
    }

    /// For runners: the verdict the handler asked for, taken.
    pub fn take_verdict(&mut self) -> Option<Verdict> {
        self.end.take()
    }
}

/// Receives the guest's serial output as it arrives.
pub trait SerialHandler: Send {
    /// Called with each chunk of output (not split at lines; may be empty of newlines). Runners
    /// may call it once with no bytes when the machine starts, so that a handler can set a
    /// deadline ([`Control::end_at`]) before the guest has said anything.
    fn output(&mut self, bytes: &[u8], control: &mut Control);

    /// Called once when the machine has stopped, for handlers that flush.
    fn finished(&mut self) {}
}

/// Ignores the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignore;

impl SerialHandler for Ignore {
    fn output(&mut self, _bytes: &[u8], _control: &mut Control) {}
}

impl<H: SerialHandler + ?Sized> SerialHandler for Box<H> {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        (**self).output(bytes, control);
    }

    fn finished(&mut self) {
        (**self).finished();
    }
}

impl<H: SerialHandler + ?Sized> SerialHandler for &mut H {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        (**self).output(bytes, control);
    }

    fn finished(&mut self) {
        (**self).finished();
    }
}

impl<A: SerialHandler, B: SerialHandler> SerialHandler for (A, B) {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        self.0.output(bytes, control);
        self.1.output(bytes, control);
    }

    fn finished(&mut self) {
        self.0.finished();
        self.1.finished();
    }
}

impl<H: SerialHandler> SerialHandler for Vec<H> {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        for handler in self.iter_mut() {
            handler.output(bytes, control);
        }
    }

    fn finished(&mut self) {
        for handler in self.iter_mut() {
            handler.finished();
        }
    }
}

/// Keeps all output; clones share the buffer, so keep one and read it after the run.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was captured so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What was captured so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl SerialHandler for Capture {
    fn output(&mut self, bytes: &[u8], _control: &mut Control) {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
    }
}

/// Copies the output to a writer (a file, `std::io::stderr()`, ...) as it arrives.
#[derive(Debug)]
pub struct Tee<W: Write + Send> {
    writer: W,
}

impl<W: Write + Send> Tee<W> {
    /// Copies to `writer`.
    pub fn new(writer: W) -> Self {
        Tee { writer }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write + Send> SerialHandler for Tee<W> {
    fn output(&mut self, bytes: &[u8], _control: &mut Control) {
        // The run goes on when the copy cannot be written; the serial log has everything.
        let _ = self
            .writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush());
    }
}

/// Matches text in the output as it arrives, even when a chunk ends inside it. Keeps only as
/// much of the output as the pattern needs.
#[derive(Debug, Clone)]
struct Matcher {
    pattern: Vec<u8>,
    window: Vec<u8>,
}

impl Matcher {
    fn new(pattern: &str) -> Self {
        Matcher {
            pattern: pattern.as_bytes().to_vec(),
            window: Vec::new(),
        }
    }

    /// Whether `bytes` complete an occurrence of the pattern; each occurrence counts once.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.pattern.is_empty() {
            return false;
        }
        self.window.extend_from_slice(bytes);
        let found = self
            .window
            .windows(self.pattern.len())
            .position(|w| w == self.pattern.as_slice());
        match found {
            Some(at) => {
                self.window.drain(..at + self.pattern.len());
                true
            }
            None => {
                let keep = self.pattern.len() - 1;
                let excess = self.window.len().saturating_sub(keep);
                self.window.drain(..excess);
                false
            }
        }
    }
}

/// Types an answer when the output shows a prompt: `AnswerOn::new("login: ", "root\n")`.
/// Answers each occurrence, or only the first with [`AnswerOn::once`].
#[derive(Debug, Clone)]
pub struct AnswerOn {
    matcher: Matcher,
    answer: Vec<u8>,
    once: bool,
    answered: bool,
}

impl AnswerOn {
    /// Sends `answer` whenever the output contains `prompt`.
    pub fn new(prompt: &str, answer: impl AsRef<[u8]>) -> Self {
        AnswerOn {
            matcher: Matcher::new(prompt),
            answer: answer.as_ref().to_vec(),
            once: false,
            answered: false,
        }
    }

    /// Answers the first occurrence only.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }
}

impl SerialHandler for AnswerOn {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        if self.once && self.answered {
            return;
        }
        if self.matcher.feed(bytes) {
            control.send(&self.answer);
            self.answered = true;
        }
    }
}

/// Ends the run with a verdict when the output contains a text: `EndOn::new("ALL TESTS
/// PASSED", Verdict::Success)`.
#[derive(Debug, Clone)]
pub struct EndOn {
    matcher: Matcher,
    verdict: Verdict,
}

impl EndOn {
    /// Ends with `verdict` when the output contains `text`.
    pub fn new(text: &str, verdict: Verdict) -> Self {
        EndOn {
            matcher: Matcher::new(text),
            verdict,
        }
    }
}

impl SerialHandler for EndOn {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        if self.matcher.feed(bytes) {
            control.finish(self.verdict.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_prompt_split_across_chunks() {
        let mut answer = AnswerOn::new("login: ", "root\n");
        let mut control = Control::new();
        answer.output(b"welcome\nlog", &mut control);
        assert!(control.take_input().is_empty());
        answer.output(b"in: ", &mut control);
        assert_eq!(control.take_input(), b"root\n");
        answer.output(b"login: login: ", &mut control);
        assert_eq!(control.take_input(), b"root\n");
    }

    #[test]
    fn answers_once_when_asked() {
        let mut answer = AnswerOn::new("?", "y").once();
        let mut control = Control::new();
        answer.output(b"? ?", &mut control);
        answer.output(b"?", &mut control);
        assert_eq!(control.take_input(), b"y");
    }

    #[test]
    fn ends_on_text_and_keeps_the_first_verdict() {
        let mut handlers = (
            EndOn::new("PASS", Verdict::Success),
            EndOn::new("P", Verdict::Interrupted),
        );
        let mut control = Control::new();
        handlers.output(b"xxPA", &mut control);
        // "P" matched first, in the second handler.
        assert_eq!(control.take_verdict(), Some(Verdict::Interrupted));
        handlers.output(b"SS", &mut control);
        assert_eq!(control.take_verdict(), Some(Verdict::Success));
    }

    #[test]
    fn deadlines_and_screenshots_are_taken_once() {
        let mut control = Control::new();
        assert_eq!(control.take_deadline(), None);
        let at = Instant::now();
        control.end_at(at, Verdict::Interrupted);
        assert_eq!(
            control.take_deadline(),
            Some(Some((at, Verdict::Interrupted)))
        );
        assert_eq!(control.take_deadline(), None);
        control.clear_end_at();
        assert_eq!(control.take_deadline(), Some(None));
        control.screenshot("/a.png");
        assert_eq!(control.take_screenshots(), [PathBuf::from("/a.png")]);
        assert!(control.take_screenshots().is_empty());
    }

    #[test]
    fn capture_clones_share_the_buffer() {
        let capture = Capture::new();
        let mut writer = capture.clone();
        writer.output(b"abc", &mut Control::new());
        writer.output(b"def", &mut Control::new());
        assert_eq!(capture.text(), "abcdef");
    }
}
