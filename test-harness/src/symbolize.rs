//! Backtrace addresses to `function at file:line`, from the executable's own DWARF (and its
//! symbol table where there is no line information). Works for any kernel that prints its
//! frames as `KTEST frame 0x<address>` ([`FrameLines`] does that for a plain `cargo run`).

use std::io::Write;
use std::path::{Path, PathBuf};

use image_runner_core::{Control, SerialHandler};

/// The debug information of one executable.
pub struct Symbolizer {
    loader: addr2line::Loader,
    /// Paths are shown relative to this directory when they lie under it.
    base: Option<PathBuf>,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer").finish_non_exhaustive()
    }
}

impl Symbolizer {
    /// Reads the debug information of the executable at `path`; `None` when it cannot be read.
    pub fn open(path: &Path) -> Option<Symbolizer> {
        let loader = addr2line::Loader::new(path).ok()?;
        Some(Symbolizer {
            loader,
            base: std::env::current_dir().ok(),
        })
    }

    /// `function at file:line` (and the functions it was inlined into, after ` <- `) for a
    /// return address `address` (the call itself is looked up, one byte before it); the bare
    /// address when nothing is known.
    pub fn describe(&self, address: u64) -> String {
        let probe = address.saturating_sub(1);
        let mut parts = Vec::new();
        // Line tables alone (`debug = "line-tables-only"`) name no functions: the symbol
        // table names the outermost one.
        let symbol = self
            .loader
            .find_symbol(probe)
            .map(|s| without_hash(&addr2line::demangle_auto(s.into(), None)));
        if let Ok(mut frames) = self.loader.find_frames(probe) {
            let mut found = Vec::new();
            while let Ok(Some(frame)) = frames.next() {
                found.push(frame);
            }
            let last = found.len().saturating_sub(1);
            for (i, frame) in found.into_iter().enumerate() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok().map(|n| without_hash(&n)))
                    .or_else(|| (i == last).then(|| symbol.clone()).flatten());
                let location = frame.location.as_ref().and_then(|l| {
                    let file = self.shorten(l.file?);
                    Some(match l.line {
                        Some(line) => format!("{file}:{line}"),
                        None => file,
                    })
                });
                match (function, location) {
                    (Some(f), Some(l)) => parts.push(format!("{f} at {l}")),
                    (Some(f), None) => parts.push(f),
                    (None, Some(l)) => parts.push(format!("?? at {l}")),
                    (None, None) => {}
                }
            }
        }
        if parts.is_empty()
            && let Some(symbol) = symbol
        {
            parts.push(symbol);
        }
        if parts.is_empty() {
            format!("{address:#x}")
        } else {
            format!("{address:#x} {}", parts.join(" <- inlined into "))
        }
    }

    fn shorten(&self, file: &str) -> String {
        match &self.base {
            Some(base) => Path::new(file)
                .strip_prefix(base)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.to_owned()),
            None => file.to_owned(),
        }
    }
}

/// Drops the `::h0123456789abcdef` hash of a legacy-mangled Rust name.
fn without_hash(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// A serial handler for plain runs: each `KTEST frame 0x...` line is followed on stderr by the
/// function, file and line it names. The debug information is read when the first frame line
/// arrives: a run that prints none costs nothing.
pub struct FrameLines {
    executable: PathBuf,
    symbolizer: Option<Option<Symbolizer>>,
    partial: Vec<u8>,
}

impl std::fmt::Debug for FrameLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameLines").finish_non_exhaustive()
    }
}

impl FrameLines {
    /// Describes frames with the debug information of `executable`.
    pub fn new(executable: &Path) -> FrameLines {
        FrameLines {
            executable: executable.to_path_buf(),
            symbolizer: None,
            partial: Vec::new(),
        }
    }
}

impl SerialHandler for FrameLines {
    fn output(&mut self, bytes: &[u8], _control: &mut Control) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if let Some(crate::protocol::Line::Frame { address }) =
                crate::protocol::Line::parse(text.trim_end_matches('\n'))
            {
                let executable = &self.executable;
                let symbolizer = self
                    .symbolizer
                    .get_or_insert_with(|| Symbolizer::open(executable));
                let text = match symbolizer {
                    Some(s) => s.describe(address),
                    None => format!(
                        "{address:#x} (no debug information in {})",
                        executable.display()
                    ),
                };
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "      = {text}");
            }
        }
        // Only a line start can be a frame line; keep at most one line.
        if self.partial.len() > 4096 {
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_dropped() {
        assert_eq!(without_hash("k::f::h0123456789abcdef"), "k::f");
        assert_eq!(without_hash("k::hello"), "k::hello");
    }

    /// This very test executable has DWARF (line tables in the dev profile): the address of a
    /// function of it names the function and this file.
    #[test]
    fn describes_a_function_of_this_executable() {
        #[inline(never)]
        fn marker() -> u64 {
            std::hint::black_box(7)
        }
        let exe = std::env::current_exe().unwrap();
        let Some(symbolizer) = Symbolizer::open(&exe) else {
            panic!("no debug info in {}", exe.display());
        };
        // A position-independent test executable is loaded at some base: look up the
        // function's address in the file's own symbol table.
        std::hint::black_box(marker());
        let file = std::fs::read(&exe).unwrap();
        let object = object::File::parse(&*file).unwrap();
        use object::{Object, ObjectSymbol};
        let symbol = object
            .symbols()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| n.contains("describes_a_function") && n.contains("marker"))
            })
            .expect("the marker symbol");
        let text = symbolizer.describe(symbol.address() + 1);
        assert!(text.contains("marker at "), "{text}");
        assert!(text.contains("symbolize.rs:"), "{text}");
    }
}
