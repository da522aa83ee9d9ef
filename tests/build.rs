//! Assembles and links the test kernels in `kernels/` into `OUT_DIR/kernels/`.
//!
//! Each source is built once per variant (`-DVARIANT_PASS`, `-DVARIANT_FAIL`,
//! `-DVARIANT_HANG`); `src/kernels.rs` knows the resulting file names. The
//! x86 kernels need only gcc (as the assembler driver, for the C
//! preprocessor) and GNU ld: ld's `elf_i386` and `i386pep` emulations
//! produce the 32-bit ELF and the PE32+ image from x86_64 hosts. The aarch64
//! and riscv64 kernels need the cross binutils (as, ld, objcopy; no cross
//! compiler): the host gcc only runs the C preprocessor over them.
//!
//! One kernel is written in C: `c_ktest.c` (with `c_ktest_entry.S` and
//! `c_ktest.ld`), a 32-bit Multiboot kernel that speaks the kernel test
//! protocol on its own. It has no variants; it becomes `kernels/c-ktest.elf`.

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
    /// Which tools assemble and link it.
    toolchain: Toolchain,
    /// Linker script in `kernels/`, if any.
    linker_script: Option<&'static str>,
    /// ld arguments other than the linker script, inputs and output.
    ld_args: &'static [&'static str],
    /// If not empty, ld writes an intermediate ELF and objcopy, called with
    /// these arguments, turns it into the output file.
    objcopy_args: &'static [&'static str],
}

enum Toolchain {
    /// The host gcc assembles (with its C preprocessor); `cc_mode` selects
    /// the instruction set / object format. The host ld links.
    Host { cc_mode: &'static str },
    /// The host gcc only preprocesses; `<prefix>as`, `<prefix>ld` and
    /// `<prefix>objcopy` from the Debian package `package` do the rest.
    Cross {
        prefix: &'static str,
        package: &'static str,
        as_args: &'static [&'static str],
    },
}

impl Toolchain {
    /// The command name of a binutils program and the Debian package that
    /// provides it.
    fn binutil(&self, program: &str) -> (String, &'static str) {
        match self {
            Toolchain::Host { .. } => (program.to_owned(), "binutils"),
            Toolchain::Cross {
                prefix, package, ..
            } => (format!("{prefix}{program}"), package),
        }
    }
}

/// `ld` for a static 32-bit ELF kernel (4 KiB pages: loaders read the headers early).
const I386_LD_ARGS: &[&str] = &[
    "-m",
    "elf_i386",
    "-z",
    "max-page-size=0x1000",
    "-nostdlib",
    "-static",
];

/// `ld` for a PE32+ UEFI application (subsystem 10) entered at `efi_main`, without a timestamp
/// so the output is reproducible.
const EFI_LD_ARGS: &[&str] = &[
    "-m",
    "i386pep",
    "--subsystem",
    "10",
    "--entry",
    "efi_main",
    "--no-insert-timestamp",
    "-nostdlib",
];

const SPECS: &[Spec] = &[
    Spec {
        source: "multiboot.S",
        stem: "multiboot",
        extension: "elf",
        toolchain: Toolchain::Host { cc_mode: "-m32" },
        linker_script: Some("multiboot.ld"),
        ld_args: I386_LD_ARGS,
        objcopy_args: &[],
    },
    Spec {
        source: "efi_app.S",
        stem: "efi-app",
        extension: "efi",
        toolchain: Toolchain::Host { cc_mode: "-m64" },
        linker_script: None,
        // PE32+ "EFI application" (subsystem 10). The code is position
        // independent, so the image has no base relocations yet is not
        // marked "relocations stripped": firmware may load it anywhere.
        // No timestamp, so the output is reproducible.
        ld_args: EFI_LD_ARGS,
        objcopy_args: &[],
    },
    Spec {
        // Prints its load options: the arguments a UEFI shell passes.
        source: "efi_args.S",
        stem: "efi-args",
        extension: "efi",
        toolchain: Toolchain::Host { cc_mode: "-m64" },
        linker_script: None,
        ld_args: EFI_LD_ARGS,
        objcopy_args: &[],
    },
    Spec {
        source: "limine.S",
        stem: "limine",
        extension: "elf",
        toolchain: Toolchain::Host { cc_mode: "-m64" },
        linker_script: Some("limine.ld"),
        ld_args: &[
            "-m",
            "elf_x86_64",
            "-z",
            "max-page-size=0x1000",
            "-nostdlib",
            "-static",
        ],
        objcopy_args: &[],
    },
    Spec {
        source: "bios_cd.S",
        stem: "bios-cd",
        extension: "bin",
        toolchain: Toolchain::Host { cc_mode: "-m32" },
        linker_script: None,
        // A flat 16-bit image for an El Torito no-emulation entry, linked
        // where the BIOS loads it.
        ld_args: &[
            "-m",
            "elf_i386",
            "--oformat",
            "binary",
            "-Ttext",
            "0x7c00",
            "-nostdlib",
            "-static",
        ],
        objcopy_args: &[],
    },
    Spec {
        source: "efi_app_aa64.S",
        stem: "efi-app-aa64",
        extension: "efi",
        toolchain: Toolchain::Cross {
            prefix: "aarch64-linux-gnu-",
            package: "binutils-aarch64-linux-gnu",
            as_args: &[],
        },
        linker_script: Some("efi_app_aa64.ld"),
        ld_args: &["-nostdlib", "-static"],
        // ld has no AArch64 PE emulation; objcopy (binutils >= 2.38) has
        // the PE32+ format. It writes no timestamp, so the output is
        // reproducible.
        objcopy_args: &[
            "-O",
            "pei-aarch64-little",
            "--subsystem",
            "efi-app",
            "--strip-all",
        ],
    },
    Spec {
        source: "riscv64.S",
        stem: "riscv64",
        extension: "elf",
        toolchain: Toolchain::Cross {
            prefix: "riscv64-linux-gnu-",
            package: "binutils-riscv64-linux-gnu",
            // No floating point: the soft-float ABI, as kernels use.
            as_args: &["-march=rv64imac_zicsr", "-mabi=lp64"],
        },
        linker_script: Some("riscv64.ld"),
        ld_args: &["-z", "max-page-size=0x1000", "-nostdlib", "-static"],
        objcopy_args: &[],
    },
];

const VARIANTS: &[(&str, &str)] = &[
    ("pass", "VARIANT_PASS"),
    ("fail", "VARIANT_FAIL"),
    ("hang", "VARIANT_HANG"),
];

/// Variants built for the multiboot kernel only.
const MULTIBOOT_VARIANTS: &[(&str, &str)] = &[
    ("triple", "VARIANT_TRIPLE"),
    ("input", "VARIANT_INPUT"),
    ("poweroff", "VARIANT_POWEROFF"),
];

/// Shared headers included by the sources.
const HEADERS: &[&str] = &["common.h", "cross_common.h"];

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

        let extra = if spec.stem == "multiboot" {
            MULTIBOOT_VARIANTS
        } else {
            &[]
        };
        for (variant, define) in VARIANTS.iter().chain(extra) {
            let name = format!("{}-{variant}", spec.stem);
            let object = obj_dir.join(format!("{name}.o"));
            let output = kernel_dir.join(format!("{name}.{}", spec.extension));

            match &spec.toolchain {
                Toolchain::Host { cc_mode } => {
                    let mut cc = Command::new("gcc");
                    cc.args(["-c", cc_mode, "-nostdlib", "-ffreestanding"])
                        .arg(format!("-D{define}"))
                        .arg("-Wa,--fatal-warnings")
                        .arg("-o")
                        .arg(&object)
                        .arg(&source);
                    execute(&mut cc, "gcc", "gcc")?;
                }
                Toolchain::Cross { as_args, .. } => {
                    // Line markers are kept: the assembler understands them
                    // and reports errors against the original source.
                    let preprocessed = obj_dir.join(format!("{name}.s"));
                    let mut cpp = Command::new("gcc");
                    cpp.args(["-E", "-undef", "-nostdinc", "-x", "assembler-with-cpp"])
                        .arg(format!("-D{define}"))
                        .arg("-o")
                        .arg(&preprocessed)
                        .arg(&source);
                    execute(&mut cpp, "gcc", "gcc")?;

                    let (tool, package) = spec.toolchain.binutil("as");
                    let mut assemble = Command::new(&tool);
                    assemble
                        .args(*as_args)
                        .arg("--fatal-warnings")
                        .arg("-o")
                        .arg(&object)
                        .arg(&preprocessed);
                    execute(&mut assemble, &tool, package)?;
                }
            }

            let linked = if spec.objcopy_args.is_empty() {
                output.clone()
            } else {
                obj_dir.join(format!("{name}.elf"))
            };
            let (tool, package) = spec.toolchain.binutil("ld");
            let mut ld = Command::new(&tool);
            ld.args(spec.ld_args).arg("--fatal-warnings");
            if let Some(script) = &script {
                ld.arg("-T").arg(script);
            }
            ld.arg("-o").arg(&linked).arg(&object);
            execute(&mut ld, &tool, package)?;

            if !spec.objcopy_args.is_empty() {
                let (tool, package) = spec.toolchain.binutil("objcopy");
                let mut objcopy = Command::new(&tool);
                objcopy.args(spec.objcopy_args).arg(&linked).arg(&output);
                execute(&mut objcopy, &tool, package)?;
            }
        }
    }
    build_c_ktest(&src_dir, &obj_dir, &kernel_dir)
}

/// The C test kernel: `c_ktest_entry.S` and `c_ktest.c`, compiled freestanding for i386 and
/// linked with `c_ktest.ld` into `kernels/c-ktest.elf`.
fn build_c_ktest(src_dir: &Path, obj_dir: &Path, kernel_dir: &Path) -> Result<(), String> {
    let script = src_dir.join("c_ktest.ld");
    rerun_if_changed(&script);
    let mut objects = Vec::new();
    for (source, flags) in [
        ("c_ktest_entry.S", &["-Wa,--fatal-warnings"][..]),
        (
            "c_ktest.c",
            &[
                "-std=c11",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fno-pic",
                "-fno-stack-protector",
                "-fno-asynchronous-unwind-tables",
                "-mgeneral-regs-only",
            ][..],
        ),
    ] {
        let source = src_dir.join(source);
        rerun_if_changed(&source);
        let object = obj_dir.join(format!(
            "{}.o",
            source.file_stem().unwrap_or_default().to_string_lossy()
        ));
        let mut cc = Command::new("gcc");
        cc.args(["-c", "-m32", "-ffreestanding", "-nostdlib"])
            .args(flags)
            .arg("-o")
            .arg(&object)
            .arg(&source);
        execute(&mut cc, "gcc", "gcc")?;
        objects.push(object);
    }
    let mut ld = Command::new("ld");
    ld.args(I386_LD_ARGS)
        .arg("--fatal-warnings")
        .arg("-T")
        .arg(&script)
        .arg("-o")
        .arg(kernel_dir.join("c-ktest.elf"))
        .args(&objects);
    execute(&mut ld, "ld", "binutils")
}

fn env_path(name: &str) -> Result<PathBuf, String> {
    env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("environment variable {name} is not set (not run by cargo?)"))
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// Runs `command` (the program `tool`, from the Debian package `package`),
/// turning a missing tool or a failure into a readable error.
fn execute(command: &mut Command, tool: &str, package: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{tool}` was not found in PATH; it is needed to build the test kernels \
                 (on Debian/Ubuntu: apt-get install {package}, or run scripts/install-deps)"
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
