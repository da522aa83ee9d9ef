//! The serial handler with real QEMU: a BIOS boot sector that asks for a name on COM1 and
//! greets it, answered and judged by the handler alone (no send rules, no patterns, test mode).
//! The boot sector is written here byte by byte, so this needs nothing but QEMU.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image_runner_core::serial::{AnswerOn, Capture, EndOn};
use image_runner_core::{
    Arch, BootKind, BootMedia, Config, Context, Decisions, Image, ImageKind, Kernel, RunMode,
    Runner, Verdict,
};
use image_runner_qemu::{Qemu, QemuConfig, SerialMode};

/// 16-bit code loaded at 0x7c00: prints "name? ", reads COM1 up to a line end into 0x7e00,
/// prints "hello <name>\n", halts. (Assembled from the listing beside the bytes.)
const BOOT_CODE: &[u8] = &[
    0xfa, //                   cli
    0x31, 0xc0, //             xor  %ax,%ax
    0x8e, 0xd8, //             mov  %ax,%ds
    0x8e, 0xc0, //             mov  %ax,%es
    0x8e, 0xd0, //             mov  %ax,%ss
    0xbc, 0x00, 0x7c, //       mov  $0x7c00,%sp
    0xfc, //                   cld
    0xbe, 0x63, 0x7c, //       mov  $prompt,%si
    0xe8, 0x38, 0x00, //       call puts
    0xbf, 0x00, 0x7e, //       mov  $0x7e00,%di          (the name)
    0xba, 0xfd, 0x03, // 7c16: mov  $0x3fd,%dx           (COM1 line status)
    0xec, //           7c19:   in   (%dx),%al
    0xa8, 0x01, //             test $0x1,%al             (data ready)
    0x74, 0xfb, //             je   7c19
    0xba, 0xf8, 0x03, //       mov  $0x3f8,%dx
    0xec, //                   in   (%dx),%al
    0x3c, 0x0a, //             cmp  $'\n',%al
    0x74, 0x0d, //             je   7c33
    0x3c, 0x0d, //             cmp  $'\r',%al
    0x74, 0x09, //             je   7c33
    0x81, 0xff, 0x40, 0x7e, // cmp  $0x7e40,%di          (64 bytes at most)
    0x74, 0xe6, //             je   7c16
    0xaa, //                   stosb
    0xeb, 0xe3, //             jmp  7c16
    0xc6, 0x05, 0x00, // 7c33: movb $0,(%di)
    0xbe, 0x6a, 0x7c, //       mov  $hello,%si
    0xe8, 0x0f, 0x00, //       call puts
    0xbe, 0x00, 0x7e, //       mov  $0x7e00,%si
    0xe8, 0x09, 0x00, //       call puts
    0xbe, 0x71, 0x7c, //       mov  $newline,%si
    0xe8, 0x03, 0x00, //       call puts
    0xf4, //           7c48:   hlt
    0xeb, 0xfd, //             jmp  7c48
    0xac, //           7c4b:   puts: lodsb
    0x84, 0xc0, //             test %al,%al
    0x74, 0x12, //             je   7c62
    0x88, 0xc4, //             mov  %al,%ah
    0xba, 0xfd, 0x03, //       mov  $0x3fd,%dx
    0xec, //           7c55:   in   (%dx),%al
    0xa8, 0x20, //             test $0x20,%al            (transmitter empty)
    0x74, 0xfb, //             je   7c55
    0x88, 0xe0, //             mov  %ah,%al
    0xba, 0xf8, 0x03, //       mov  $0x3f8,%dx
    0xee, //                   out  %al,(%dx)
    0xeb, 0xe9, //             jmp  7c4b
    0xc3, //           7c62:   ret
    b'n', b'a', b'm', b'e', b'?', b' ', 0, // 7c63: prompt
    b'h', b'e', b'l', b'l', b'o', b' ', 0, // 7c6a: hello
    b'\n', 0, //                              7c71: newline
];

/// A 1 MiB disk (SeaBIOS does not boot smaller ones) with the boot sector.
fn disk(dir: &Path) -> PathBuf {
    let mut sector = BOOT_CODE.to_vec();
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xaa]);
    let path = dir.join("disk.img");
    std::fs::write(&path, &sector).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    path
}

/// A test run of the disk, serial to `serial.log` only, within 60 s.
fn test_run(dir: &Path) -> (BootMedia, Context) {
    let disk = disk(dir);
    let mut mode = RunMode::choose(&Config::default(), true);
    mode.timeout = Some(Duration::from_secs(60));
    let mut cfg = QemuConfig::default();
    cfg.accel = "tcg".into();
    cfg.serial = SerialMode::File;
    let ctx = Context::for_tests(
        Kernel::inspect(&disk).unwrap(),
        Decisions::new(BootKind::Bios, Arch::X86_64, None, mode),
        dir,
    )
    .with_section("qemu", &cfg)
    .unwrap();
    let mut media = BootMedia::new(BootKind::Bios);
    media.image = Some(Image::new(disk, ImageKind::Disk));
    (media, ctx)
}

#[test]
fn the_handler_answers_the_guest_and_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (media, ctx) = test_run(dir.path());
    let capture = Capture::new();
    let mut handler = (
        capture.clone(),
        (
            AnswerOn::new("name? ", "world\n").once(),
            EndOn::new("hello world\n", Verdict::Success),
        ),
    );
    let start = Instant::now();
    let outcome = Qemu.run(&media, &ctx, &mut handler).unwrap();
    assert_eq!(outcome.verdict, Verdict::Success, "{outcome:?}");
    assert_eq!(outcome.status, None, "stopped by the runner: {outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(30), "{outcome:?}");
    assert_eq!(capture.text(), "name? hello world\n");
    let log = outcome.serial_log.expect("a serial log");
    assert_eq!(std::fs::read_to_string(log).unwrap(), "name? hello world\n");
}

#[test]
fn the_handlers_verdict_is_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (media, ctx) = test_run(dir.path());
    let failure = Verdict::GuestFailure {
        code: None,
        reason: "the guest asked for a name".into(),
    };
    let mut handler = EndOn::new("name? ", failure.clone());
    let outcome = Qemu.run(&media, &ctx, &mut handler).unwrap();
    assert_eq!(outcome.verdict, failure);
}
