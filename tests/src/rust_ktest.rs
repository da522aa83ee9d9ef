//! The Rust test kernels of `tests/kernels/rust-ktest` (test targets using the `kernel-test`
//! crate): building them with cargo, reading their test table, and booting them in plain QEMU.
//!
//! [`rust_ktest!`](crate::rust_ktest!) runs `cargo build --tests` in that project once per test
//! process, with its target directory in the calling test's `CARGO_TARGET_TMPDIR`, and returns
//! the executables: `mixed` (every kind of outcome; see the table at the top of
//! `tests/kernels/rust-ktest/tests/mixed.rs`) and `fifty` (fifty quick passing tests).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test executables of a cargo project, by test target name.
#[derive(Debug, Clone)]
pub struct Executables {
    pub targets: Vec<(String, PathBuf)>,
}

impl Executables {
    /// The executable of test target `name`.
    pub fn get(&self, name: &str) -> &Path {
        self.targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
            .unwrap_or_else(|| panic!("no test target `{name}` was built: {:?}", self.targets))
    }
}

/// The folder of the fixture project.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/rust-ktest")
}

/// The folder of the bundled example kernel.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rust-kernel")
}

/// The fixture's test kernels (`mixed`, `fifty`), built once per test process:
/// `rust_ktest!().get("mixed")`.
#[macro_export]
macro_rules! rust_ktest {
    () => {
        $crate::rust_ktest::build(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    };
}

/// Builds the fixture's test kernels (once per process) with the target directory
/// `tmpdir/rust-ktest-target`, and returns them.
pub fn build(tmpdir: &Path) -> &'static Executables {
    static BUILT: OnceLock<Executables> = OnceLock::new();
    BUILT.get_or_init(|| build_tests(&fixture_dir(), &tmpdir.join("rust-ktest-target")))
}

/// Builds the example kernel's test kernel (once per process), as [`build`] does.
pub fn build_example(tmpdir: &Path) -> &'static Executables {
    static BUILT: OnceLock<Executables> = OnceLock::new();
    BUILT.get_or_init(|| build_tests(&example_dir(), &tmpdir.join("rust-kernel-target")))
}

/// `cargo build --tests` in `project` with the target directory `target_dir`; the test
/// executables cargo reports.
pub fn build_tests(project: &Path, target_dir: &Path) -> Executables {
    let mut cargo = crate::tools::repository_cargo(project);
    cargo
        .args([
            "build",
            "--tests",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .stderr(Stdio::inherit());
    let out = cargo.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --tests in {} failed ({})",
        project.display(),
        out.status
    );
    let mut targets = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_test = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            targets.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    assert!(!targets.is_empty(), "cargo reported no test executable");
    Executables { targets }
}

/// Every test of the fixture's `mixed` target, in name order (the table at the top of
/// `tests/kernels/rust-ktest/tests/mixed.rs` says how each ends).
pub const MIXED_TESTS: [&str; 17] = [
    "crash::hangs",
    "crash::triple_fault",
    "late::after_crash_one",
    "late::after_crash_two",
    "math::adds",
    "math::multiplies",
    "math::subs",
    "mem::copies",
    "mem::fills",
    "output::partial_line",
    "output::prints",
    "panics::asserts_equal",
    "panics::does_not_panic",
    "panics::expected",
    "panics::fails_with_message",
    "panics::wrong_message",
    "slow::ignored",
];

/// One entry of an executable's `kernel_tests` section, decoded (PROTOCOL.md, section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub flags: u32,
    pub timeout_ms: u32,
    pub name: String,
    pub expected: Option<String>,
    pub run: u64,
}

/// Reads the test table of a little-endian ELF64 executable.
pub fn read_table(elf: &Path) -> Vec<TableEntry> {
    let data = std::fs::read(elf).unwrap_or_else(|e| panic!("read {}: {e}", elf.display()));
    assert_eq!(
        &data[..5],
        b"\x7fELF\x02",
        "not an ELF64 file: {}",
        elf.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let shoff = u64_at(0x28) as usize;
    let shentsize = usize::from(u16_at(0x3a));
    let shnum = usize::from(u16_at(0x3c));
    let shstrndx = usize::from(u16_at(0x3e));
    // (name, addr, offset, size, type) of each section.
    let sections: Vec<(u32, u64, u64, u64, u32)> = (0..shnum)
        .map(|i| {
            let h = shoff + i * shentsize;
            (
                u32_at(h),
                u64_at(h + 0x10),
                u64_at(h + 0x18),
                u64_at(h + 0x20),
                u32_at(h + 4),
            )
        })
        .collect();
    let strtab = sections[shstrndx].2 as usize;
    let name_of = |name: u32| {
        let start = strtab + name as usize;
        let end = start + data[start..].iter().position(|&b| b == 0).expect("NUL");
        String::from_utf8_lossy(&data[start..end]).into_owned()
    };
    // Bytes at a virtual address, through the section that holds them.
    let bytes_at = |addr: u64, len: u64| -> Vec<u8> {
        let (_, base, offset, _, _) = sections
            .iter()
            .find(|(_, a, _, size, kind)| {
                *kind != 8 && *a != 0 && *a <= addr && addr + len <= a + size
            })
            .unwrap_or_else(|| panic!("no section holds {addr:#x}+{len}"));
        let at = (offset + (addr - base)) as usize;
        data[at..at + len as usize].to_vec()
    };
    let &(_, _, offset, size, _) = sections
        .iter()
        .find(|(name, ..)| name_of(*name) == "kernel_tests")
        .unwrap_or_else(|| panic!("{} has no kernel_tests section", elf.display()));
    assert_eq!(size % 56, 0, "section size {size} is not a multiple of 56");
    (0..size / 56)
        .map(|i| {
            let e = (offset + i * 56) as usize;
            assert_eq!(u32_at(e), 0x4B54_0001, "entry {i}: magic");
            assert_eq!(u32_at(e + 12), 0, "entry {i}: reserved");
            let name = bytes_at(u64_at(e + 16), u64_at(e + 24));
            let expected_ptr = u64_at(e + 32);
            TableEntry {
                flags: u32_at(e + 4),
                timeout_ms: u32_at(e + 8),
                name: String::from_utf8(name).expect("UTF-8 name"),
                expected: (expected_ptr != 0).then(|| {
                    String::from_utf8(bytes_at(expected_ptr, u64_at(e + 40))).expect("UTF-8")
                }),
                run: u64_at(e + 48),
            }
        })
        .collect()
}

/// The index of the test named `name` in `table`.
pub fn index_of(table: &[TableEntry], name: &str) -> usize {
    table
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| panic!("no test named {name} in the table"))
}

/// How a plain QEMU boot ended.
#[derive(Debug)]
pub struct Boot {
    /// QEMU's exit status; `None` if it was stopped at the time limit.
    pub code: Option<i32>,
    /// The serial output, `\r` removed.
    pub serial: String,
    pub elapsed: Duration,
}

impl Boot {
    /// The lines starting with `KTEST `.
    pub fn protocol_lines(&self) -> Vec<&str> {
        self.serial
            .lines()
            .filter(|l| l.starts_with("KTEST "))
            .collect()
    }
}

/// Boots `kernel` with `-kernel` (PVH) and `-append cmdline`, as a person would by hand; stops
/// QEMU after `limit`.
pub fn boot(kernel: &Path, cmdline: Option<&str>, limit: Duration) -> Boot {
    boot_until(kernel, cmdline, None, limit)
}

/// Like [`boot`], for a kernel expected to hang: QEMU is stopped a second after the serial
/// line `line` has appeared (so a slow boot still gets there), or at `limit` whatever came.
pub fn boot_until_line(kernel: &Path, cmdline: Option<&str>, line: &str, limit: Duration) -> Boot {
    boot_until(kernel, cmdline, Some(line), limit)
}

fn boot_until(kernel: &Path, cmdline: Option<&str>, line: Option<&str>, limit: Duration) -> Boot {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-machine", "q35", "-m", "128M", "-display", "none"])
        .args([
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(kernel);
    if let Some(cmdline) = cmdline {
        qemu.args(["-append", cmdline]);
    }
    let start = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64 (apt-get install qemu-system-x86)");
    let mut stdout = child.stdout.take().expect("stdout");
    let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = output.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .expect("serial buffer")
                    .extend_from_slice(&buf[..n]),
            }
        }
    });
    let mut seen: Option<Instant> = None;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for qemu") {
            break status.code();
        }
        if let Some(line) = line
            && seen.is_none()
            && String::from_utf8_lossy(&output.lock().expect("serial buffer"))
                .lines()
                .any(|l| l.trim_end_matches('\r') == line)
        {
            seen = Some(Instant::now());
        }
        if start.elapsed() > limit || seen.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    reader.join().expect("reader");
    let serial = String::from_utf8_lossy(&output.lock().expect("serial buffer")).replace('\r', "");
    Boot {
        code,
        serial,
        elapsed,
    }
}
