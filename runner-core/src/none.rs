//! The built-in `none` bootloader: a UEFI application goes to `EFI/BOOT/BOOT<ARCH>.EFI`, or,
//! when `cmdline` gives it arguments, the firmware provider's UEFI shell goes there with a
//! `startup.nsh` that starts the application with them; a multiboot1 or PVH ELF is handed to
//! the runner for direct boot; a ready image is booted as it is.

use crate::context::Context;
use crate::error::Error;
use crate::kernel::Kernel;
use crate::media::{BootKind, Image};
use crate::plugin::{Bootloader, Staged};
use crate::staging::{Source, Staging};

/// Boots the kernel with no bootloader in between.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBootloader;

impl Bootloader for NoBootloader {
    fn name(&self) -> &str {
        "none"
    }

    fn wants_image(&self, kernel: &Kernel, _boot: BootKind) -> bool {
        kernel.prebuilt_image().is_none() && kernel.is_efi_app()
    }

    fn wants_uefi_shell(&self, ctx: &Context) -> bool {
        ctx.kernel.prebuilt_image().is_none()
            && ctx.kernel.is_efi_app()
            && ctx.decisions.boot != BootKind::Bios
            && !ctx.config.cmdline.trim().is_empty()
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        self.staging(ctx).map(Staged::new)
    }
}

/// The image folder of a UEFI application started through the shell.
const APP_DIR: &str = "EFI/image-runner";

/// The shell script that starts the application at `\EFI\image-runner\<app>` with `cmdline`,
/// on whichever file system holds it, and powers the machine off when it returns.
fn startup_script(app: &str, cmdline: &str) -> String {
    // `^` escapes the characters the shell would take as variables or comments; quotes (and
    // `^` itself) are the user's own. Redirections and pipes are refused before staging.
    let mut args = String::new();
    for c in cmdline.trim().chars() {
        if matches!(c, '%' | '#') {
            args.push('^');
        }
        args.push(c);
    }
    let path = format!("\\{}\\{app}", APP_DIR.replace('/', "\\"));
    format!(
        "@echo -off\r\nfor %d in fs0 fs1 fs2 fs3 fs4 fs5 fs6 fs7 fs8 fs9\r\n  if exist %d:{path} then\r\n    %d:\r\n    {path} {args}\r\n    reset -s\r\n  endif\r\nendfor\r\necho \"startup.nsh: {path} was found on no file system\"\r\nreset -s\r\n"
    )
}

/// The application's file name in the image: its own when that is a plain name, else
/// `kernel.efi`.
fn app_name(kernel: &Kernel) -> String {
    let name = kernel
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .unwrap_or("kernel.efi");
    if name.to_ascii_lowercase().ends_with(".efi") {
        name.to_owned()
    } else {
        format!("{name}.efi")
    }
}

impl NoBootloader {
    fn staging(&self, ctx: &Context) -> Result<Staging, Error> {
        let kernel = &ctx.kernel;
        let boot = ctx.decisions.boot;
        let mut staging = Staging::new();
        if let Some(kind) = kernel.prebuilt_image() {
            staging.prebuilt = Some(Image::new(kernel.path.clone(), kind));
            return Ok(staging);
        }
        if kernel.is_efi_app() {
            if boot == BootKind::Bios {
                return Err(Error::kernel(
                    &kernel.path,
                    "is a UEFI application, which BIOS cannot start; set `boot = \"uefi\"` (or leave `boot` at auto)",
                ));
            }
            let boot_file = format!("EFI/BOOT/{}", ctx.decisions.arch.efi_boot_file());
            let cmdline = ctx.config.cmdline.trim();
            if cmdline.is_empty() {
                staging.add_file(&boot_file, Source::File(kernel.path.clone()))?;
                return Ok(staging);
            }
            if cmdline.chars().any(char::is_control) {
                return Err(Error::Config(format!(
                    "`cmdline` holds a control character (a line break?); a UEFI application's arguments are one line: `{}`",
                    cmdline.escape_debug()
                )));
            }
            if let Some(c) = cmdline.chars().find(|c| matches!(c, '<' | '>' | '|')) {
                return Err(Error::Config(format!(
                    "`cmdline = \"{cmdline}\"` holds `{c}`, which the UEFI shell that passes a UEFI application its arguments takes as a redirection or a pipe (it cannot be escaped there); remove it"
                )));
            }
            let Some(shell) = &ctx.uefi_shell else {
                return Err(Error::kernel(
                    &kernel.path,
                    format!(
                        "is a UEFI application, which the firmware starts without arguments, but `cmdline = \"{cmdline}\"` gives it some. They are passed through a UEFI shell, and firmware provider `{}` supplied none: set `ovmf.shell` to a shell.efi for {}, or let the downloaded firmware's shell be used (`ovmf.source = \"auto\"` or `\"download\"`, not offline); or remove `cmdline`",
                        ctx.config.firmware, ctx.decisions.arch
                    ),
                ));
            };
            let app = app_name(kernel);
            staging.add_file(&boot_file, Source::File(shell.clone()))?;
            staging.add_file(
                &format!("{APP_DIR}/{app}"),
                Source::File(kernel.path.clone()),
            )?;
            // Beside the shell, where it looks first.
            staging.add_file(
                "EFI/BOOT/startup.nsh",
                Source::Bytes(startup_script(&app, cmdline).into_bytes()),
            )?;
            return Ok(staging);
        }
        if !kernel.boots_directly() {
            let what = if kernel.multiboot2 {
                "carries only a multiboot2 header, which QEMU cannot boot directly"
            } else {
                "has neither a multiboot1 header (32-bit ELF) nor a PVH note, so QEMU cannot boot it directly"
            };
            return Err(Error::kernel(
                &kernel.path,
                format!(
                    "{what}; set `bootloader = \"limine\"` or `\"grub\"`, or add a PVH ELF note to the kernel"
                ),
            ));
        }
        if boot != BootKind::Bios {
            return Err(Error::kernel(
                &kernel.path,
                format!(
                    "with `bootloader = \"none\"` an ELF kernel boots directly under BIOS only, but `boot = \"{}\"`; set `boot = \"bios\"` or use a bootloader",
                    boot
                ),
            ));
        }
        staging.direct_kernel = Some(kernel.path.clone());
        Ok(staging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::decisions::{Decisions, ImagePlan, RunMode};
    use crate::kernel::{Arch, KernelFormat};
    use crate::media::ImageKind;
    use crate::staging::ImagePath;

    fn context(cmdline: &str, shell: Option<&str>) -> Context {
        let kernel = Kernel::described(
            "/k/my-app.efi",
            KernelFormat::Pe { efi_app: true },
            Arch::X86_64,
        );
        let decisions = Decisions::new(
            BootKind::Uefi,
            Arch::X86_64,
            Some(ImagePlan::new("fat", ImageKind::Fat)),
            RunMode::choose(&Config::default(), false),
        );
        let mut ctx = Context::for_tests(kernel, decisions, std::path::Path::new("/p"));
        ctx.config.cmdline = cmdline.into();
        ctx.uefi_shell = shell.map(Into::into);
        ctx
    }

    fn source(staging: &Staging, path: &str) -> Option<Source> {
        staging.entries.get(&ImagePath::new(path).unwrap()).cloned()
    }

    #[test]
    fn without_arguments_the_application_is_the_boot_file() {
        let ctx = context("", None);
        assert!(!NoBootloader.wants_uefi_shell(&ctx));
        let staging = NoBootloader.staging(&ctx).unwrap();
        assert_eq!(
            source(&staging, "EFI/BOOT/BOOTX64.EFI"),
            Some(Source::File("/k/my-app.efi".into()))
        );
        assert_eq!(staging.entries.len(), 1);
    }

    #[test]
    fn arguments_go_through_the_shell_and_its_startup_script() {
        let ctx = context("  one 50% #two \"three four\" ", Some("/fw/shell.efi"));
        assert!(NoBootloader.wants_uefi_shell(&ctx));
        let staging = NoBootloader.staging(&ctx).unwrap();
        assert_eq!(
            source(&staging, "EFI/BOOT/BOOTX64.EFI"),
            Some(Source::File("/fw/shell.efi".into()))
        );
        assert_eq!(
            source(&staging, "EFI/image-runner/my-app.efi"),
            Some(Source::File("/k/my-app.efi".into()))
        );
        let Some(Source::Bytes(script)) = source(&staging, "EFI/BOOT/startup.nsh") else {
            panic!("no startup.nsh");
        };
        let script = String::from_utf8(script).unwrap();
        assert!(
            script
                .contains("    \\EFI\\image-runner\\my-app.efi one 50^% ^#two \"three four\"\r\n"),
            "{script}"
        );
        assert!(script.contains("reset -s"), "{script}");
    }

    #[test]
    fn arguments_without_a_shell_or_with_redirections_are_errors() {
        let err = NoBootloader
            .staging(&context("one", None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ovmf.shell") && err.contains("cmdline = \"one\""),
            "{err}"
        );
        let err = NoBootloader
            .staging(&context("a > b", Some("/fw/shell.efi")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`>`"), "{err}");
        assert_eq!(
            app_name(&Kernel::described(
                "/k/odd name",
                KernelFormat::Pe { efi_app: true },
                Arch::X86_64
            )),
            "kernel.efi"
        );
    }
}
