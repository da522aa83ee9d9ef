//! GRUB core images made with `grub-mkimage`, embedding only the modules a boot needs, and
//! cached under `<output>/grub/` by their exact command and the identity of the GRUB files they
//! are made from, so an unchanged run starts no `grub-mkimage` at all.

use std::path::{Path, PathBuf};

use image_runner_core::{CommandSpec, Error};
use image_runner_disk_layout::content_hash::Hasher;

use crate::cfg::{self, Protocol};
use crate::host::{Host, Platform};

/// What kind of core image, as `grub-mkimage --format` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// `i386-pc-eltorito`: `cdboot.img`, then `diskboot.img`, then the core. BIOS boots it from
    /// a CD's El Torito entry (which skips `diskboot`), and from a hybrid ISO attached as a disk
    /// through `boot.img`, which loads `diskboot` 2048 bytes in.
    I386PcEltorito,
    /// `i386-pc`: `diskboot.img`, then the core; installed into a disk's embedding area and
    /// loaded by `boot.img` in sector 0.
    I386Pc,
    /// `x86_64-efi`: a PE32+ UEFI application, `EFI/BOOT/BOOTX64.EFI`.
    X86_64Efi,
}

impl Target {
    /// The `--format` value.
    pub fn format(self) -> &'static str {
        match self {
            Target::I386PcEltorito => "i386-pc-eltorito",
            Target::I386Pc => "i386-pc",
            Target::X86_64Efi => "x86_64-efi",
        }
    }

    /// The platform whose modules it is made from.
    pub fn platform(self) -> Platform {
        match self {
            Target::I386PcEltorito | Target::I386Pc => Platform::I386Pc,
            Target::X86_64Efi => Platform::X86_64Efi,
        }
    }

    /// Where it is staged in the image (GRUB's own installers use the same places).
    pub fn staged_path(self) -> &'static str {
        match self {
            Target::I386PcEltorito => "boot/grub/i386-pc/eltorito.img",
            Target::I386Pc => "boot/grub/i386-pc/core.img",
            Target::X86_64Efi => "EFI/BOOT/BOOTX64.EFI",
        }
    }

    /// The start of its cached file names.
    fn cache_stem(self) -> &'static str {
        match self {
            Target::I386PcEltorito => "eltorito",
            Target::I386Pc => "core",
            Target::X86_64Efi => "bootx64",
        }
    }

    /// Modules for reading the boot medium: the BIOS disk driver and the file systems and
    /// partition tables the image formats write.
    fn media_modules(self) -> &'static [&'static str] {
        match self {
            // A CD, or the same ISO attached as a disk: ISO 9660 on the whole device.
            Target::I386PcEltorito => &["biosdisk", "iso9660"],
            // The FAT partition of a GPT or MBR disk.
            Target::I386Pc => &["biosdisk", "part_gpt", "part_msdos", "fat"],
            // The ESP of a disk, or the ISO 9660 volume of a CD (GRUB starts from its El Torito
            // ESP and searches for the config). UEFI has no text mode: without a GOP driver
            // GRUB's multiboot loaders print "no suitable video mode found" before booting,
            // and multiboot kernels get no framebuffer.
            Target::X86_64Efi => &["part_gpt", "part_msdos", "fat", "iso9660", "efi_gop"],
        }
    }
}

/// Modules every core image embeds: the early config's `search`, the serial console and
/// `terminal_*` commands of the generated config, `normal` (reads it) and `boot`.
const BASE_MODULES: [&str; 5] = ["normal", "search", "serial", "terminal", "boot"];

/// One core image to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreImage {
    /// What kind.
    pub target: Target,
    /// Modules to embed (`grub-mkimage` adds their dependencies), in a fixed order.
    pub modules: Vec<String>,
}

impl CoreImage {
    /// A core image of `target` that can start kernels with `protocols`, plus `extra` modules
    /// (`grub.extra-modules`).
    pub fn new(target: Target, protocols: &[Protocol], extra: &[String]) -> CoreImage {
        let mut modules: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !modules.iter().any(|m| m == name) {
                modules.push(name.to_owned());
            }
        };
        target.media_modules().iter().for_each(|m| add(m));
        BASE_MODULES.iter().for_each(|m| add(m));
        for &protocol in protocols {
            // BIOS GRUB cannot start EFI applications (stage() refuses that combination), and
            // a protocol GRUB has no loader for (Limine; refused too) adds no module.
            if protocol == Protocol::EfiChainload && target.platform() != Platform::X86_64Efi {
                continue;
            }
            if let Some(module) = cfg::grub_module(protocol) {
                add(module);
            }
        }
        extra.iter().for_each(|m| add(m.trim()));
        CoreImage { target, modules }
    }

    /// The `grub-mkimage` command writing this image to `output`, with the modules from
    /// `modules_dir` and the early config file `config`.
    pub fn command(
        &self,
        mkimage: &Path,
        modules_dir: &Path,
        config: &Path,
        output: &Path,
    ) -> CommandSpec {
        // Paths are passed byte for byte (`--option=PATH`), even when they are not UTF-8.
        let option = |name: &str, path: &Path| {
            let mut word = std::ffi::OsString::from(name);
            word.push(path);
            word
        };
        let mut spec = CommandSpec::new(mkimage.to_string_lossy());
        spec.arg(format!("--format={}", self.target.format()))
            .arg(option("--directory=", modules_dir))
            .arg(format!("--prefix={}", cfg::PREFIX))
            .arg(option("--config=", config))
            .arg(option(OUTPUT_OPTION, output))
            .args(self.modules.iter().cloned());
        spec
    }
}

const OUTPUT_OPTION: &str = "--output=";

/// A core image on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Where it is.
    pub path: PathBuf,
    /// Whether `grub-mkimage` ran for it (false: found in the cache).
    pub made: bool,
}

/// Makes `image` with the host's GRUB, or finds it already made from the same command and the
/// same GRUB files, under `cache_dir`.
pub fn build_cached(image: &CoreImage, host: &Host, cache_dir: &Path) -> Result<Built, Error> {
    let mkimage = host.mkimage()?;
    let modules_dir = host.modules_dir(image.target.platform())?;
    for module in &image.modules {
        if module.is_empty() || !modules_dir.join(format!("{module}.mod")).is_file() {
            return Err(Error::plugin(
                "grub",
                format!(
                    "there is no GRUB module `{module}` in `{}`; check `grub.extra-modules` (the names of the `.mod` files there, without `.mod`)",
                    modules_dir.display()
                ),
            ));
        }
    }
    let early = cfg::early_config();
    let config = cache_dir.join(format!("early-{}.cfg", short_hash(&[early.as_str()])));
    // The output path below depends on the key, and the key on the command: hash the command
    // without its output.
    let probe = image.command(&mkimage, &modules_dir, &config, Path::new(""));
    let key = cache_key(image, &probe, &early, &mkimage, &modules_dir)?;
    let extension = match image.target {
        Target::X86_64Efi => "efi",
        _ => "img",
    };
    let stem = image.target.cache_stem();
    let output = cache_dir.join(format!("{stem}-{key}.{extension}"));
    if output.is_file() {
        return Ok(Built {
            path: output,
            made: false,
        });
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::io("create the directory", cache_dir, e))?;
    if std::fs::read_to_string(&config).ok().as_deref() != Some(early.as_str()) {
        image_runner_core::fs::write_atomic(&config, |file, temp| {
            use std::io::Write;
            file.write_all(early.as_bytes())
                .map_err(|e| Error::io("write", temp, e))
        })?;
    }
    // grub-mkimage writes the temporary file the shared atomic write made (and removes on
    // failure or a signal); it is renamed into place only when grub-mkimage succeeded.
    image_runner_core::fs::write_atomic(&output, |_, temp| {
        run(&image.command(&mkimage, &modules_dir, &config, temp))
    })?;
    prune(cache_dir, stem, &output);
    Ok(Built {
        path: output,
        made: true,
    })
}

/// Runs `grub-mkimage`, turning a failure into an error with its own message.
fn run(spec: &CommandSpec) -> Result<(), Error> {
    let output = spec.to_command().output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingTool {
                program: spec.program.clone(),
                hint: "install grub-common (Debian, Ubuntu), or set `grub.mkimage`".into(),
            }
        } else {
            Error::plugin_source("grub", format!("could not start `{spec}`"), e)
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(Error::plugin(
        "grub",
        format!("`{spec}` failed ({}): {said}", output.status),
    ))
}

/// The cache key: the command without its output path, the early config, and the identity
/// (size, modification time, inode) of the program and of every GRUB file the image is made
/// from. An upgraded GRUB replaces those files, so it changes the key.
fn cache_key(
    image: &CoreImage,
    probe: &CommandSpec,
    early: &str,
    mkimage: &Path,
    modules_dir: &Path,
) -> Result<String, Error> {
    let mut hash = Hasher::new();
    hash.text("grub core image 1");
    hash.text(&probe.program);
    for arg in probe
        .args
        .iter()
        .map(|a| a.as_encoded_bytes())
        .filter(|a| !a.starts_with(OUTPUT_OPTION.as_bytes()))
    {
        hash.bytes(arg);
    }
    hash.text(early);
    let mut files = vec![
        mkimage.to_path_buf(),
        modules_dir.join("kernel.img"),
        modules_dir.join("moddep.lst"),
    ];
    if image.target.platform() == Platform::I386Pc {
        for name in ["cdboot.img", "diskboot.img", "lzma_decompress.img"] {
            files.push(modules_dir.join(name));
        }
    }
    files.extend(
        image
            .modules
            .iter()
            .map(|m| modules_dir.join(format!("{m}.mod"))),
    );
    for file in files {
        hash.text(&identity(&file)?);
    }
    Ok(hash.finish()[..16].to_owned())
}

fn identity(path: &Path) -> Result<String, Error> {
    image_runner_disk_layout::content_hash::file_identity(path)
        .map_err(|e| Error::io("read the metadata of", path, e))
}

fn short_hash(parts: &[&str]) -> String {
    let mut hash = Hasher::new();
    parts.iter().for_each(|p| hash.text(p));
    hash.finish()[..16].to_owned()
}

/// Removes this stem's older images, so the folder holds one per kind. Best effort: a file
/// that cannot be removed costs only space.
fn prune(cache_dir: &Path, stem: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    let prefix = format!("{stem}-");
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(image: &CoreImage) -> Vec<String> {
        image
            .command(
                Path::new("/usr/bin/grub-mkimage"),
                Path::new("/usr/lib/grub/i386-pc"),
                Path::new("/out/grub/early.cfg"),
                Path::new("/out/grub/core.img"),
            )
            .args_lossy()
    }

    #[test]
    fn cd_core_image_command() {
        let image = CoreImage::new(Target::I386PcEltorito, &[Protocol::Multiboot2], &[]);
        assert_eq!(
            args(&image),
            [
                "--format=i386-pc-eltorito",
                "--directory=/usr/lib/grub/i386-pc",
                "--prefix=/boot/grub",
                "--config=/out/grub/early.cfg",
                "--output=/out/grub/core.img",
                "biosdisk",
                "iso9660",
                "normal",
                "search",
                "serial",
                "terminal",
                "boot",
                "multiboot2",
            ]
        );
    }

    #[test]
    fn disk_core_image_command() {
        let image = CoreImage::new(
            Target::I386Pc,
            &[
                Protocol::Multiboot1,
                Protocol::Linux,
                Protocol::EfiChainload,
                Protocol::Limine,
            ],
            &["echo".into(), "serial".into()],
        );
        assert_eq!(
            &args(&image)[..2],
            ["--format=i386-pc", "--directory=/usr/lib/grub/i386-pc"]
        );
        assert_eq!(
            image.modules,
            [
                "biosdisk",
                "part_gpt",
                "part_msdos",
                "fat",
                "normal",
                "search",
                "serial",
                "terminal",
                "boot",
                "multiboot",
                "linux",
                "echo"
            ]
        );
    }

    #[test]
    fn efi_core_image_command() {
        let image = CoreImage::new(
            Target::X86_64Efi,
            &[Protocol::Multiboot2, Protocol::EfiChainload],
            &[],
        );
        let args = image
            .command(
                Path::new("grub-mkimage"),
                Path::new("/g/x86_64-efi"),
                Path::new("/c"),
                Path::new("/o"),
            )
            .args_lossy();
        assert_eq!(args[0], "--format=x86_64-efi");
        assert_eq!(
            &args[5..],
            [
                "part_gpt",
                "part_msdos",
                "fat",
                "iso9660",
                "efi_gop",
                "normal",
                "search",
                "serial",
                "terminal",
                "boot",
                "multiboot2",
                "chain"
            ]
        );
        assert_eq!(Target::X86_64Efi.staged_path(), "EFI/BOOT/BOOTX64.EFI");
    }

    #[test]
    fn every_module_named_here_exists_in_the_installed_grub() {
        let host = Host::system();
        for target in [Target::I386PcEltorito, Target::I386Pc, Target::X86_64Efi] {
            let dir = host.modules_dir(target.platform()).unwrap_or_else(|e| {
                panic!("{e} (these tests check the module names against the real GRUB)")
            });
            let image = CoreImage::new(target, &cfg::PROTOCOLS, &[]);
            for module in &image.modules {
                assert!(
                    dir.join(format!("{module}.mod")).is_file(),
                    "no {module}.mod in {}",
                    dir.display()
                );
            }
        }
    }

    /// A fake GRUB: a module folder and a `grub-mkimage` script that records its arguments and
    /// writes them as the image.
    fn fake_grub(dir: &Path) -> Host {
        let modules = dir.join("grub/i386-pc");
        std::fs::create_dir_all(&modules).unwrap();
        for name in [
            "kernel.img",
            "moddep.lst",
            "cdboot.img",
            "diskboot.img",
            "lzma_decompress.img",
        ] {
            std::fs::write(modules.join(name), b"").unwrap();
        }
        for m in CoreImage::new(Target::I386Pc, &[Protocol::Multiboot2], &[]).modules {
            std::fs::write(modules.join(format!("{m}.mod")), b"").unwrap();
        }
        let script = dir.join("grub-mkimage");
        image_runner_test_support::fake_tool(
            &script,
            &format!(
                "#!/bin/sh\necho run >> '{}'\nfor a; do case $a in --output=*) out=${{a#--output=}};; esac; done\necho \"$@\" > \"$out\"\n",
                dir.join("runs").display()
            ),
        );
        Host {
            mkimage: script.display().to_string(),
            modules_root: dir.join("grub"),
        }
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn images_are_made_once_and_remade_when_grub_changes() {
        let dir = tempfile::tempdir().unwrap();
        let host = fake_grub(dir.path());
        let cache = dir.path().join("out/grub");
        let image = CoreImage::new(Target::I386Pc, &[Protocol::Multiboot2], &[]);
        let first = build_cached(&image, &host, &cache).unwrap();
        assert!(first.made);
        let first = first.path;
        assert_eq!(runs(dir.path()), 1);
        let text = std::fs::read_to_string(&first).unwrap();
        assert!(text.starts_with("--format=i386-pc "), "{text}");
        assert!(
            text.contains(".tmp-"),
            "grub-mkimage writes a temporary file, renamed when complete: {text}"
        );
        let again = build_cached(&image, &host, &cache).unwrap();
        assert_eq!((again.path, again.made), (first.clone(), false));
        assert_eq!(runs(dir.path()), 1, "an unchanged image is not made again");

        // An upgraded GRUB replaces its files.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join("grub/i386-pc/kernel.img"), b"new").unwrap();
        let second = build_cached(&image, &host, &cache).unwrap().path;
        assert_ne!(second, first);
        assert_eq!(runs(dir.path()), 2);
        assert!(!first.exists(), "the stale image is removed");

        let other = CoreImage::new(Target::I386Pc, &[Protocol::Multiboot1], &[]);
        let err = build_cached(&other, &host, &cache).unwrap_err().to_string();
        assert!(err.contains("no GRUB module `multiboot`"), "{err}");
    }

    #[test]
    fn a_failing_mkimage_is_reported_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = fake_grub(dir.path());
        let script = dir.path().join("failing");
        image_runner_test_support::fake_tool(
            &script,
            "#!/bin/sh\necho 'grub-mkimage: error: core image is too big' >&2\nexit 1\n",
        );
        host.mkimage = script.display().to_string();
        let image = CoreImage::new(Target::I386Pc, &[Protocol::Multiboot2], &[]);
        let cache = dir.path().join("cache");
        let err = build_cached(&image, &host, &cache).unwrap_err().to_string();
        assert!(err.contains("core image is too big"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !n.to_string_lossy().starts_with("early-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
