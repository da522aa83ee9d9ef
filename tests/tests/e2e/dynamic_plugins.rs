//! Plugins loaded from dynamic libraries: the example plugin (`examples/vm-disk-formats`, the
//! qcow2, vmdk and vhdx formats) built as a `cdylib` and booted through in QEMU, and fixture
//! libraries that are wrong on purpose (`tests/plugins`), each refused with a clear error and
//! the runner-error exit code. The libraries are built with cargo into `plugin-builds` in the
//! tests' temporary folder of the target directory (`CARGO_TARGET_TMPDIR`, which follows
//! `CARGO_TARGET_DIR`), each project once per test process, when a test first needs one of its
//! libraries (cargo's lock keeps parallel builds apart).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf()
}

/// Builds the cargo project in `dir` (relative to the repository) into the shared target.
fn cargo_build(dir: &str, target: &Path) {
    let mut cargo = image_runner_tests::tools::repository_cargo(&repo().join(dir));
    cargo
        .args(["build", "--quiet"])
        .env("CARGO_TARGET_DIR", target);
    let out = cargo.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The folder holding the built plugin libraries: the example's (`vm_disk_formats`) or the
/// fixtures' (every other name), each project built on first use.
fn libraries(name: &str) -> &'static Path {
    static EXAMPLE: OnceLock<PathBuf> = OnceLock::new();
    static FIXTURES: OnceLock<PathBuf> = OnceLock::new();
    let (built, project) = if name == "vm_disk_formats" {
        (&EXAMPLE, "examples/vm-disk-formats")
    } else {
        (&FIXTURES, "tests/plugins")
    };
    built.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-builds");
        cargo_build(project, &target);
        target.join("debug")
    })
}

fn library(name: &str) -> PathBuf {
    let path = libraries(name).join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A project with the library `name` copied to `plugins/` and named relative to its
/// `Cargo.toml`, plus `config`.
fn project_with(name: &str, config: &str) -> (Project, PathBuf) {
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let project = Project::new(
        runner_bin!(),
        &format!("plugins = [\"plugins/{file}\"]\n{config}"),
    );
    let copy = project.root().join("plugins").join(&file);
    std::fs::create_dir_all(copy.parent().expect("a parent")).expect("create plugins/");
    std::fs::copy(library(name), &copy).expect("copy the plugin library");
    (project, copy)
}

fn multiboot(variant: Variant) -> PathBuf {
    kernels::path(Kernel::Multiboot, variant)
}

/// The only line of stderr, which must be exactly `expected`.
#[track_caller]
fn assert_error(run: &Run, expected: &str) {
    run.assert_code(2);
    assert_eq!(run.stderr.trim_end(), expected, "{run}");
}

fn qemu_img_format(image: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image)
        .output()
        .expect("qemu-img (qemu-utils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8_lossy(&out.stdout);
    info.split("\"format\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no format in {info}"))
        .to_owned()
}

const GRUB_QCOW2: &str =
    "bootloader = \"grub\"\nprotocol = \"multiboot2\"\nboot = \"bios\"\nformat = \"qcow2\"\n";

#[test]
fn a_kernel_boots_from_a_qcow2_disk_made_by_the_example_plugin() {
    let (project, _) = project_with(
        "vm_disk_formats",
        &format!("{GRUB_QCOW2}[qcow2]\ncompress = true\n"),
    );
    let run = project.run([multiboot(Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    let image = project
        .output_dir(&multiboot(Variant::Pass))
        .join("image.qcow2");
    assert_eq!(qemu_img_format(&image), "qcow2");
    // The runner opens it as qcow2, not raw.
    let print = project.run(
        ["--print-cmd".as_ref(), multiboot(Variant::Pass).as_os_str()],
        &[],
    );
    print.assert_code(0);
    assert!(
        print.stdout.contains(&format!(
            "format=qcow2,file={},snapshot=on",
            image.display()
        )),
        "{print}"
    );
    // A failing kernel on the same kind of disk fails: the verdict is the guest's.
    let run = project.run([multiboot(Variant::Fail)], &[]);
    run.assert_code(1)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Fail));
}

#[test]
fn vmdk_and_vhdx_images_are_what_qemu_img_says_they_are() {
    for (format, config) in [
        ("vmdk", "[vmdk]\nsubformat = \"streamOptimized\"\n"),
        ("vhdx", "[vhdx]\nsubformat = \"dynamic\"\n"),
    ] {
        let (project, _) = project_with(
            "vm_disk_formats",
            &format!(
                "bootloader = \"grub\"\nprotocol = \"multiboot2\"\nboot = \"bios\"\nformat = \"{format}\"\n{config}"
            ),
        );
        let run = project.run(
            ["build".as_ref(), multiboot(Variant::Pass).as_os_str()],
            &[],
        );
        run.assert_code(0);
        let image = PathBuf::from(run.stdout.trim());
        assert!(image.ends_with(format!("image.{format}")), "{run}");
        assert_eq!(qemu_img_format(&image), format);
    }
}

#[test]
fn a_plugins_section_is_checked_with_file_line_and_column() {
    let (project, _) = project_with(
        "vm_disk_formats",
        &format!("{GRUB_QCOW2}[qcow2]\ncompres = true\n"),
    );
    let manifest = project.root().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    let line = text
        .lines()
        .position(|l| l.starts_with("compres"))
        .expect("the typo's line")
        + 1;
    let run = project.run([multiboot(Variant::Pass)], &[]);
    run.assert_code(2)
        .assert_stderr_contains(&format!(
            "{}:{line}:1: unknown field `compres`, expected `compress` or `compat`",
            manifest.display()
        ))
        .assert_stderr_contains("help: did you mean `compress`?");
    assert!(
        !run.stdout.contains("KERNEL:"),
        "booted despite the error: {run}"
    );
}

#[test]
fn the_plugins_command_lists_library_plugins_with_their_path() {
    let (project, library) = project_with("vm_disk_formats", "");
    let run = project.run(["plugins"], &[]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["KIND", "NAME", "VERSION", "ORIGIN"]
    );
    for name in ["qcow2", "vhdx", "vmdk"] {
        let row = lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w[..2] == ["format", name])
            .unwrap_or_else(|| panic!("no row for {name}: {run}"));
        assert_eq!(row[2..], ["0.1.0", &library.display().to_string()], "{run}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["format", "iso", "0.1.0", "static"]),
        "{run}"
    );
}

#[test]
fn a_library_of_another_abi_major_is_refused_naming_both_versions() {
    let (project, library) = project_with("fixture_wrong_major", "");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{}`: built for plugin ABI 99.3, but this cargo-image-runner loads plugin ABI 1.x (it speaks 1.1); rebuild the plugin against image-runner-core 0.1.0",
            library.display()
        ),
    );
}

#[test]
fn a_plugin_that_panics_is_an_error_and_a_clean_exit_code_2() {
    let (project, library) = project_with("fixture_panics", "format = \"panicky\"\n");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: format `panicky` (plugin library `{}`): the plugin panicked in config_section: config_section() of the panicking fixture at panics/src/lib.rs:22; this is a bug in the plugin, report it to its author",
            library.display()
        ),
    );
    // The same through `--plugin`, for `plugins`.
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        ["plugins".as_ref(), "--plugin".as_ref(), library.as_os_str()],
        &[],
    );
    run.assert_code(2)
        .assert_stderr_contains("the plugin panicked in config_section");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let project = Project::new(runner_bin!(), "plugins = [\"libnot-a-plugin.so\"]\n");
    let fake = project.write(
        "libnot-a-plugin.so",
        "This is a text file, not a shared library. It is long enough for the loader to read a header.\n",
    );
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{0}`: not a loadable library ({0}: invalid ELF header); a plugin is a `cdylib` built for this system",
            fake.display()
        ),
    );
}

#[test]
fn a_missing_library_is_refused_naming_where_it_was_named() {
    let project = Project::new(runner_bin!(), "plugins = [\"gone/libmissing.so\"]\n");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{}`: no such file; fix the path in `plugins` of {}",
            project.root().join("gone/libmissing.so").display(),
            project.root().join("Cargo.toml").display()
        ),
    );
    let project = Project::new(runner_bin!(), "");
    let run = project.run(["plugins", "--plugin", "nowhere.so"], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{}`: no such file; fix the path in `--plugin`",
            project.root().join("nowhere.so").display()
        ),
    );
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let (project, library) = project_with("fixture_no_entry", "");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{}`: not a cargo-image-runner plugin: it has no `image_runner_plugin_entry` symbol (a plugin library invokes `image_runner_core::export_plugin!`)",
            library.display()
        ),
    );
}

#[test]
fn a_name_clash_with_a_built_in_is_refused_unless_it_replaces_it() {
    let (project, library) = project_with("fixture_iso_clash", "");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: plugin library `{0}`: exports format `iso`, but a built-in format is called `iso` too; rename the plugin, or let it replace the built-in with `plugins = [{{ path = \"{0}\", replace = true }}]` (named in `plugins` of {1})",
            library.display(),
            project.root().join("Cargo.toml").display()
        ),
    );
    // With `replace = true` the library's `iso` takes the built-in's place.
    let file = library.file_name().expect("a file name").to_string_lossy();
    let project = Project::new(
        runner_bin!(),
        &format!(
            "plugins = [{{ path = \"plugins/{file}\", replace = true }}]\nformat = \"iso\"\nbootloader = \"grub\"\nprotocol = \"multiboot2\"\n"
        ),
    );
    let copy = project.root().join("plugins").join(&*file);
    std::fs::create_dir_all(copy.parent().expect("a parent")).expect("create plugins/");
    std::fs::copy(&library, &copy).expect("copy the plugin library");
    let run = project.run(["plugins"], &[]);
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["format", "iso", "0.1.0", &copy.display().to_string()]),
        "{run}"
    );
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        "error: iso: the fixture's `iso` format builds nothing; it only replaces the built-in",
    );
}

#[test]
fn plugins_entries_the_loader_cannot_read_are_refused() {
    let project = Project::new(runner_bin!(), "plugins = [3]\n");
    let run = project.run([multiboot(Variant::Pass)], &[]);
    assert_error(
        &run,
        &format!(
            "error: {}: the `plugins` entry `3` is neither a path nor a table like `{{ path = \"libfoo.so\", replace = true }}`; fix it",
            project.root().join("Cargo.toml").display()
        ),
    );
    let project = Project::new(runner_bin!(), "");
    let run = project.run(
        [
            "--set".as_ref(),
            "plugins=[\"a.so\"]".as_ref(),
            multiboot(Variant::Pass).as_os_str(),
        ],
        &[],
    );
    assert_error(
        &run,
        "error: `--set plugins=...`: plugin libraries are loaded before the config is read, so `plugins` is only read from config files and their profiles; use `--plugin PATH` on the command line",
    );
}

#[test]
fn a_profile_adds_its_plugins() {
    let (project, library) = project_with("fixture_no_entry", "");
    // The library is named only in profile `ci`: without the profile nothing is loaded.
    std::fs::write(
        project.root().join("image-runner.toml"),
        "[profile.ci]\nplugins = [\"plugins/libfixture_no_entry.so\"]\n",
    )
    .expect("write image-runner.toml");
    std::fs::write(
        project.root().join("Cargo.toml"),
        "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .expect("write Cargo.toml");
    project.run(["plugins"], &[]).assert_code(0);
    let run = project.run(["plugins", "--profile", "ci"], &[]);
    run.assert_code(2).assert_stderr_contains(&format!(
        "error: plugin library `{}`: not a cargo-image-runner plugin",
        library.display()
    ));
}

#[test]
fn a_bootloader_and_a_runner_from_a_library_boot_a_kernel() {
    let (project, _) = project_with(
        "fixture_direct_runner",
        "bootloader = \"direct\"\nrunner = \"tiny-qemu\"\n",
    );
    let run = project.run([multiboot(Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Pass));
    // The guest's failure comes back through the library's verdict.
    let run = project.run([multiboot(Variant::Fail)], &[]);
    run.assert_code(1)
        .assert_serial_line(kernels::marker(Kernel::Multiboot, Variant::Fail));
    let print = project.run(
        ["--print-cmd".as_ref(), multiboot(Variant::Pass).as_os_str()],
        &[],
    );
    print.assert_code(0);
    assert!(
        print.stdout.starts_with(&format!(
            "qemu-system-x86_64 -kernel {} -serial stdio",
            multiboot(Variant::Pass).display()
        )),
        "{print}"
    );
    let listed = project.run(["plugins"], &[]);
    listed.assert_code(0);
    for (kind, name) in [("bootloader", "direct"), ("runner", "tiny-qemu")] {
        assert!(
            listed.stdout.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() == 4
                    && w[..3] == [kind, name, "0.2.0"]
                    && w[3].ends_with("libfixture_direct_runner.so")
            }),
            "{listed}"
        );
    }
}

/// The library API loads plugin libraries too: one named with `Builder::plugin` boots a kernel,
/// and one the project's config names is there when the builder reads that config.
#[test]
fn the_library_builder_loads_plugin_libraries() {
    use image_runner_core::{Builder, Registry, Verdict};

    let mut registry = Registry::new();
    image_runner_qemu::register(&mut registry);
    image_runner_ovmf::register(&mut registry);

    let dir = tempfile::tempdir().expect("a temporary folder");
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let result = Builder::new(&registry)
        .plugin(library("vm_disk_formats"))
        .target_dir(dir.path().join("target"))
        .executable(&kernel)
        .config_toml("format = \"qcow2\"\n[qcow2]\ncompress = true\n")
        .set("qemu.serial", "\"file\"")
        .test(true)
        .capture(true)
        .run()
        .expect("a boot through the library's qcow2 format");
    let output = String::from_utf8_lossy(result.output.as_deref().unwrap_or_default());
    assert_eq!(result.outcome.verdict, Verdict::Success, "{output}");
    assert!(
        output.contains(kernels::marker(Kernel::EfiApp, Variant::Pass)),
        "{output}"
    );
    // The registry the caller passed is left as it was.
    assert!(registry.format("qcow2").is_err());

    // Named by the project's config instead: loaded when the builder reads the project.
    let (project, _) = project_with("vm_disk_formats", "format = \"vmdk\"\nboot = \"uefi\"\n");
    let session = Builder::new(&registry)
        .project_dir(project.root())
        .target_dir(dir.path().join("project-target"))
        .executable(&kernel)
        .prepare()
        .expect("the project's plugin library is loaded");
    let image = &session.media().image.as_ref().expect("an image").path;
    assert_eq!(qemu_img_format(image), "vmdk");
}

/// A hand-made header claiming a million descriptors while its table holds one (what follows
/// it in memory names a plugin at an address nothing is mapped at): refused before anything
/// past the table is read, never a crash.
#[test]
fn a_header_claiming_more_descriptors_than_its_table_holds_is_refused_not_a_crash() {
    let (project, library) = project_with("fixture_lying_count", "");
    for run in [
        project.run([multiboot(Variant::Pass)], &[]),
        project.run(["plugins"], &[]),
    ] {
        run.assert_code(2);
        let stderr = run.stderr.trim_end();
        assert!(
            stderr.starts_with(&format!(
                "error: plugin library `{}`: its header claims 1000000 plugin descriptors of {} bytes, more than the library's loaded image holds there (room for ",
                library.display(),
                std::mem::size_of::<image_runner_core::dynamic::abi::Descriptor>()
            )) && stderr.ends_with("); the library is damaged or not built with image-runner-core")
                && stderr.lines().count() == 1,
            "{run}"
        );
    }
}

/// A runner called `limine` would take the Limine bootloader's `[limine]` section over: refused,
/// also with `replace = true` (which replaces a plugin of the same kind only).
#[test]
fn a_plugin_named_like_a_plugin_of_another_kind_is_refused() {
    let expected = |library: &std::path::Path| {
        format!(
            "error: plugin library `{}`: exports runner `limine`, a name a plugin cannot have: the built-in bootloader is called `limine`, and a plugin's config section is named after the plugin, so plugins of different kinds cannot share a name (`replace` replaces a plugin of the same kind only); rename the plugin",
            library.display()
        )
    };
    let (project, library) = project_with("fixture_limine_runner", "");
    assert_error(
        &project.run([multiboot(Variant::Pass)], &[]),
        &expected(&library),
    );
    assert_error(&project.run(["plugins"], &[]), &expected(&library));
    let file = library.file_name().expect("a file name").to_string_lossy();
    let project = Project::new(
        runner_bin!(),
        &format!("plugins = [{{ path = \"plugins/{file}\", replace = true }}]\n"),
    );
    let copy = project.root().join("plugins").join(&*file);
    std::fs::create_dir_all(copy.parent().expect("a parent")).expect("create plugins/");
    std::fs::copy(&library, &copy).expect("copy the plugin library");
    assert_error(&project.run(["plugins"], &[]), &expected(&copy));
}
