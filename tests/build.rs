//! Assembles and links the test kernels in `kernels/` into `OUT_DIR/kernels/`.
//!
//! Each source is built once per variant (`-DVARIANT_PASS`, `-DVARIANT_FAIL`,
//! `-DVARIANT_HANG`); `src/kernels.rs` knows the resulting file names. Only
//! gcc (as the assembler driver, for the C preprocessor) and GNU ld are
//! needed: no cross toolchain, since ld's `elf_i386` and `i386pep`
//! emulations produce the 32-bit ELF and the PE32+ image from x86_64 hosts.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// How to build one kernel source.
struct Spec {
    /// Source file in `kernels/`.
    source: &'static str,
    /// Output name stem; the file is `<stem>-<variant>.<extension>`.
    stem: &'static str,
    extension: &'static str,
    /// gcc flag selecting the instruction set / object format.
    cc_mode: &'static str,
    /// Linker script in `kernels/`, if any.
    linker_script: Option<&'static str>,
    /// ld arguments other than the linker script, inputs and output.
    ld_args: &'static [&'static str],
}

const SPECS: &[Spec] = &[
    Spec {
        source: "multiboot.S",
        stem: "multiboot",
        extension: "elf",
        cc_mode: "-m32",
        linker_script: Some("multiboot.ld"),
        ld_args: &[
            "-m",
            "elf_i386",
            "-z",
            "max-page-size=0x1000",
            "-nostdlib",
            "-static",
        ],
    },
    Spec {
        source: "efi_app.S",
        stem: "efi-app",
        extension: "efi",
        cc_mode: "-m64",
        linker_script: None,
        // PE32+ "EFI application" (subsystem 10). The code is position
        // independent, so the image has no base relocations yet is not
        // marked "relocations stripped": firmware may load it anywhere.
        // No timestamp, so the output is reproducible.
        ld_args: &[
            "-m",
            "i386pep",
            "--subsystem",
            "10",
            "--entry",
            "efi_main",
            "--no-insert-timestamp",
            "-nostdlib",
        ],
    },
    Spec {
        source: "limine.S",
        stem: "limine",
        extension: "elf",
        cc_mode: "-m64",
        linker_script: Some("limine.ld"),
        ld_args: &[
            "-m",
            "elf_x86_64",
            "-z",
            "max-page-size=0x1000",
            "-nostdlib",
            "-static",
        ],
    },
];

const VARIANTS: &[(&str, &str)] = &[
    ("pass", "VARIANT_PASS"),
    ("fail", "VARIANT_FAIL"),
    ("hang", "VARIANT_HANG"),
];

/// Shared header included by every source.
const HEADERS: &[&str] = &["common.h"];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building the test kernels failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
    let out_dir = env_path("OUT_DIR")?;
    let src_dir = manifest_dir.join("kernels");
    let obj_dir = out_dir.join("obj");
    let kernel_dir = out_dir.join("kernels");
    for dir in [&obj_dir, &kernel_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    for header in HEADERS {
        rerun_if_changed(&src_dir.join(header));
    }
    for spec in SPECS {
        let source = src_dir.join(spec.source);
        rerun_if_changed(&source);
        let script = spec.linker_script.map(|s| src_dir.join(s));
        if let Some(script) = &script {
            rerun_if_changed(script);
        }

        for (variant, define) in VARIANTS {
            let name = format!("{}-{variant}", spec.stem);
            let object = obj_dir.join(format!("{name}.o"));
            let output = kernel_dir.join(format!("{name}.{}", spec.extension));

            let mut cc = Command::new("gcc");
            cc.args(["-c", spec.cc_mode, "-nostdlib", "-ffreestanding"])
                .arg(format!("-D{define}"))
                .arg("-Wa,--fatal-warnings")
                .arg("-o")
                .arg(&object)
                .arg(&source);
            execute(
                "gcc",
                "the C compiler driver used to assemble the kernels",
                &mut cc,
            )?;

            let mut ld = Command::new("ld");
            ld.args(spec.ld_args).arg("--fatal-warnings");
            if let Some(script) = &script {
                ld.arg("-T").arg(script);
            }
            ld.arg("-o").arg(&output).arg(&object);
            execute("ld", "the GNU linker (binutils)", &mut ld)?;
        }
    }
    Ok(())
}

fn env_path(name: &str) -> Result<PathBuf, String> {
    env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("environment variable {name} is not set (not run by cargo?)"))
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// Runs `command`, turning a missing tool or a failure into a readable error.
fn execute(tool: &str, what: &str, command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{tool}` ({what}) was not found in PATH; it is needed to build the \
                 test kernels (on Debian/Ubuntu: apt-get install gcc binutils)"
            )
        } else {
            format!("cannot run `{tool}`: {e}")
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{command:?}` failed ({status})\n{stdout}{stderr}",
        status = output.status,
        stdout = String::from_utf8_lossy(&output.stdout),
        stderr = String::from_utf8_lossy(&output.stderr),
    ))
}
