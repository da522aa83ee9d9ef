//! Image formats for other hypervisors' disks: `qcow2` (QEMU), `vmdk` (VMware, VirtualBox) and
//! `vhdx` (Hyper-V). Each builds the same GPT disk as the built-in `gpt` format, then converts
//! it with `qemu-img convert`. Loaded by cargo-image-runner from this crate's `cdylib`:
//!
//! ```toml
//! [package.metadata.image-runner]
//! plugins = ["path/to/libvm_disk_formats.so"]
//! format = "qcow2"
//!
//! [package.metadata.image-runner.qcow2]
//! compress = true
//! ```

use std::path::Path;
use std::process::Command;

use image_runner_core::media::{Check, CheckStatus};
use image_runner_core::{BuildRequest, Error, Image, ImageFormat, ImageKind, Section};
use image_runner_image::disk::GptFormat;
use serde::{Deserialize, Serialize};

/// `[…image-runner.qcow2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Qcow2Config {
    /// Compress the clusters (`qemu-img convert -c`): smaller files, slower writes by the guest.
    pub compress: bool,
    /// The qcow2 version: `"1.1"` (QEMU 1.1 and later, the default) or `"0.10"` (older tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
}

/// `[…image-runner.vmdk]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmdkConfig {
    /// `monolithicSparse` (the default: one growing file) or `streamOptimized` (for OVA
    /// appliances and uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subformat: Option<String>,
}

/// `[…image-runner.vhdx]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct VhdxConfig {
    /// `dynamic` (the default: grows as written) or `fixed` (all space allocated up front).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subformat: Option<String>,
}

/// One of the three formats: its name (also QEMU's name for it) and file extension.
#[derive(Debug, Clone, Copy)]
pub struct VmDisk {
    format: &'static str,
}

/// The `qcow2` format.
pub const QCOW2: VmDisk = VmDisk { format: "qcow2" };
/// The `vmdk` format.
pub const VMDK: VmDisk = VmDisk { format: "vmdk" };
/// The `vhdx` format.
pub const VHDX: VmDisk = VmDisk { format: "vhdx" };

impl VmDisk {
    /// `qemu-img convert` options for this format from its config section.
    fn options(&self, request: &BuildRequest<'_>) -> Result<Vec<String>, Error> {
        let ctx = request.ctx;
        let mut args = Vec::new();
        match self.format {
            "qcow2" => {
                let config: Qcow2Config = ctx.section("qcow2")?;
                if config.compress {
                    args.push("-c".to_owned());
                }
                if let Some(compat) = config.compat {
                    check_choice("qcow2.compat", &compat, &["1.1", "0.10"])?;
                    args.extend(["-o".to_owned(), format!("compat={compat}")]);
                }
            }
            "vmdk" => {
                let config: VmdkConfig = ctx.section("vmdk")?;
                if let Some(sub) = config.subformat {
                    check_choice(
                        "vmdk.subformat",
                        &sub,
                        &["monolithicSparse", "streamOptimized"],
                    )?;
                    args.extend(["-o".to_owned(), format!("subformat={sub}")]);
                }
            }
            _ => {
                let config: VhdxConfig = ctx.section("vhdx")?;
                if let Some(sub) = config.subformat {
                    check_choice("vhdx.subformat", &sub, &["dynamic", "fixed"])?;
                    args.extend(["-o".to_owned(), format!("subformat={sub}")]);
                }
            }
        }
        Ok(args)
    }
}

fn check_choice(key: &str, value: &str, allowed: &[&str]) -> Result<(), Error> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{key} = \"{value}\"` is not one of {}",
            allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

impl ImageFormat for VmDisk {
    fn name(&self) -> &str {
        self.format
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Disk
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let options = self.options(request)?;
        // The GPT disk first (reused when nothing changed), finished by the bootloader.
        let raw = GptFormat.build(request)?;
        let out = request
            .ctx
            .output_dir
            .join(format!("image.{}", self.format));
        image_runner_core::dynamic::log(
            image_runner_core::dynamic::abi::level::INFO,
            &format!(
                "{}: converting {} to {}",
                self.format,
                raw.path.display(),
                out.display()
            ),
        );
        image_runner_core::fs::write_atomic(&out, |_, temp| {
            convert(&raw.path, temp, self.format, &options)
        })?;
        Ok(Image::new(out, ImageKind::Disk).with_disk_format(self.format))
    }

    fn config_section(&self) -> Option<Section> {
        Some(match self.format {
            "qcow2" => Section::of::<Qcow2Config>(),
            "vmdk" => Section::of::<VmdkConfig>(),
            _ => Section::of::<VhdxConfig>(),
        })
    }

    fn checks(&self) -> Vec<Check> {
        let found = Command::new("qemu-img").arg("--version").output();
        let (status, detail) = match found {
            Ok(out) if out.status.success() => (
                CheckStatus::Ok,
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("found")
                    .to_owned(),
            ),
            _ => (
                CheckStatus::Missing,
                "not found; install qemu-utils (Debian, Ubuntu) or qemu-img (Fedora)".to_owned(),
            ),
        };
        vec![Check::new(
            format!("qemu-img (format {})", self.format),
            status,
            detail,
        )]
    }
}

/// `qemu-img convert -f raw -O <format> [options] raw out`.
fn convert(raw: &Path, out: &Path, format: &str, options: &[String]) -> Result<(), Error> {
    let result = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", format])
        .args(options)
        .arg(raw)
        .arg(out)
        .output();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingTool {
            program: "qemu-img".into(),
            hint: "install qemu-utils (Debian, Ubuntu) or qemu-img (Fedora) to build qcow2, vmdk or vhdx images".into(),
        }),
        Err(e) => Err(Error::io("run qemu-img on", raw, e)),
        Ok(output) if !output.status.success() => Err(Error::plugin(
            format,
            format!(
                "`qemu-img convert` to {format} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        )),
        Ok(_) => Ok(()),
    }
}

image_runner_core::export_plugin!(format: QCOW2, format: VMDK, format: VHDX);
