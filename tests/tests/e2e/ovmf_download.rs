//! The firmware download: a loopback HTTP server started by each test serves `.tar.xz` archives
//! in the layout of the prebuilt edk2 releases (`<tag>-bin/x64/code.fd`, `vars.fd`,
//! `shell.efi`, `aarch64/...`), built here from the installed OVMF and AAVMF files. The runner
//! is pointed at it with `ovmf.url` + `ovmf.sha256` (or their environment variables) and a
//! cache of its own, and made to download (`ovmf.source = "download"`: this machine has
//! installed firmware).
//!
//! Debian ships no separate `shell.efi`: the x86_64 archive's shell is the UEFI Shell taken out
//! of the installed OVMF build's compressed firmware volume, so it is a real edk2 shell.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run, wait};
use image_runner_tests::runner_bin;
use sha2::{Digest, Sha256};

/// The pinned tag: the default `ovmf.release`, so the URL template's `{tag}` becomes this.
const TAG: &str = image_runner_ovmf::release::PINNED_TAG;

// ---------------------------------------------------------------------------------------------
// Archives

/// The UEFI Shell application inside an installed OVMF build: its firmware volume is one
/// LZMA-compressed section (GUID EE4E5898-…); inside it, the shell is the FFS file
/// 7C04A583-9E3E-4F1C-AD65-E05268D0B4D1 whose PE32 section is the application.
fn shell_from_ovmf(code: &[u8]) -> Vec<u8> {
    const LZMA_SECTION: [u8; 16] = [
        0x98, 0x58, 0x4e, 0xee, 0x14, 0x39, 0x59, 0x42, 0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03,
        0xcf,
    ];
    const SHELL_FILE: [u8; 16] = [
        0x83, 0xa5, 0x04, 0x7c, 0x3e, 0x9e, 0x1c, 0x4f, 0xad, 0x65, 0xe0, 0x52, 0x68, 0xd0, 0xb4,
        0xd1,
    ];
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let u24 = |b: &[u8]| b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16;
    let at = find(code, &LZMA_SECTION, 0).expect("an LZMA-compressed volume in OVMF");
    let section = at - 4;
    let size = u24(&code[section..]);
    let data_offset = u16::from_le_bytes([code[at + 16], code[at + 17]]) as usize;
    let mut volume = Vec::new();
    lzma_rs::lzma_decompress(
        &mut &code[section + data_offset..section + size],
        &mut volume,
    )
    .expect("decompress OVMF's firmware volume");
    let mut from = 0;
    loop {
        let file = find(&volume, &SHELL_FILE, from).expect("the UEFI Shell in OVMF");
        from = file + 1;
        // FFS header: name (16), checksums (2), type (1), attributes (1), size (3), state (1).
        if volume[file + 18] != 0x09 {
            continue; // not an application file: a reference to the GUID elsewhere
        }
        let end = file + u24(&volume[file + 20..]);
        let mut sec = file + 24;
        while sec < end {
            let len = u24(&volume[sec..]);
            if volume[sec + 3] == 0x10 {
                return volume[sec + 4..sec + len].to_vec();
            }
            sec += (len + 3) & !3;
        }
        panic!("the UEFI Shell file has no PE32 section");
    }
}

/// A `.tar.xz` of `files` (path, content) under the top folder `<tag>-bin/`, as the releases
/// are laid out.
fn tar_xz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = vec![format!("{TAG}-bin/")];
    for (path, _) in files {
        let dir = format!("{TAG}-bin/{}/", path.rsplit_once('/').expect("arch/file").0);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, dir, std::io::empty())
            .expect("write a tar entry");
    }
    for (path, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, format!("{TAG}-bin/{path}"), data.as_slice())
            .expect("write a tar entry");
    }
    let tar = builder.into_inner().expect("finish the tar");
    xz(&tar)
}

fn xz(tar: &[u8]) -> Vec<u8> {
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &tar[..], &mut xz).expect("compress");
    xz
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e} (scripts/install-deps installs the ovmf and qemu-efi-aarch64 packages)")
    })
}

/// The release archive made from the installed firmware: x86_64 with its shell, and aarch64
/// from the unpadded AAVMF build (the runner pads it for QEMU's `virt`).
fn good_archive() -> &'static [u8] {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let code = read("/usr/share/OVMF/OVMF_CODE_4M.fd");
        let shell = shell_from_ovmf(&code);
        let mut aa_vars = read("/usr/share/AAVMF/AAVMF_VARS.fd");
        aa_vars.truncate(768 << 10);
        tar_xz(&[
            ("x64/code.fd", code),
            ("x64/vars.fd", read("/usr/share/OVMF/OVMF_VARS_4M.fd")),
            ("x64/shell.efi", shell),
            (
                "aarch64/code.fd",
                read("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"),
            ),
            ("aarch64/vars.fd", aa_vars),
        ])
    })
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The server

/// What the server does with one request.
#[derive(Debug, Clone)]
enum Reply {
    /// 200 with the body, sent in pieces `pace` apart.
    Ok { body: Vec<u8>, pace: Duration },
    /// 404.
    NotFound,
    /// A full Content-Length, half the body, then the connection closes.
    Truncated(Vec<u8>),
    /// A chunked body whose connection closes halfway, without the last chunk.
    Dropped(Vec<u8>),
    /// The headers and a little of the body, then nothing for `Duration`.
    Stall(Vec<u8>, Duration),
    /// 200 with a full Content-Length, then the body `piece` bytes at a time, `every` apart: a
    /// mirror that never stalls outright but would take forever.
    Drip {
        body: Vec<u8>,
        piece: usize,
        every: Duration,
    },
}

/// A loopback HTTP server answering every request with `reply(request number)`.
struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    /// The request lines received (CONNECT requests of a proxy client included).
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(reply: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("the bound port").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new(reply));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (count, shared, seen) = (requests.clone(), reply.clone(), lines.clone());
        std::thread::spawn(move || {
            // Bounded: no test makes more than a few dozen requests.
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { continue };
                let (count, shared, seen) = (count.clone(), shared.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &count, &shared, &seen));
            }
        });
        Server {
            port,
            requests,
            reply,
            lines,
        }
    }

    fn ok(body: &[u8]) -> Server {
        Server::start(Reply::Ok {
            body: body.to_vec(),
            pace: Duration::ZERO,
        })
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = reply;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/releases/{{tag}}-bin.tar.xz", self.port)
    }

    /// `[ovmf]` settings that download from this server.
    fn config(&self, sha256: &str) -> String {
        format!(
            "[ovmf]\nsource = \"download\"\nurl = \"{}\"\nsha256 = \"{sha256}\"\n",
            self.url()
        )
    }
}

fn serve(
    mut stream: TcpStream,
    count: &AtomicUsize,
    reply: &Mutex<Reply>,
    lines: &Mutex<Vec<String>>,
) {
    let Ok(copy) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(copy);
    let mut line = String::new();
    loop {
        // One request head; a proxy client's CONNECT is granted and the tunnel (to this same
        // server) carries the real request.
        let mut first = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first.is_empty() {
                first = line.trim_end().to_owned();
            }
            if line == "\r\n" {
                break;
            }
        }
        lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(first.clone());
        if !first.starts_with("CONNECT ") {
            break;
        }
        if stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    let reply = reply.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = stream;
    let head = |len: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    let _ = match reply {
        Reply::Ok { body, pace } => (|| {
            out.write_all(head(body.len()).as_bytes())?;
            for piece in body.chunks(body.len().div_ceil(10).max(1)) {
                out.write_all(piece)?;
                std::thread::sleep(pace);
            }
            out.flush()
        })(),
        Reply::NotFound => out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
        Reply::Truncated(body) => out
            .write_all(head(body.len()).as_bytes())
            .and_then(|()| out.write_all(&body[..body.len() / 2])),
        Reply::Dropped(body) => (|| {
            out.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )?;
            let half = &body[..body.len() / 2];
            out.write_all(format!("{:x}\r\n", half.len()).as_bytes())?;
            out.write_all(half)?;
            out.write_all(b"\r\n")
        })(),
        Reply::Drip { body, piece, every } => (|| {
            out.write_all(head(body.len()).as_bytes())?;
            for piece in body.chunks(piece.max(1)) {
                out.write_all(piece)?;
                out.flush()?;
                std::thread::sleep(every);
            }
            Ok(())
        })(),
        Reply::Stall(body, time) => (|| {
            out.write_all(head(body.len()).as_bytes())?;
            out.write_all(&body[..1000])?;
            out.flush()?;
            std::thread::sleep(time);
            Ok(())
        })(),
    };
    let _ = out.shutdown(std::net::Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn cache_of(project: &Project) -> PathBuf {
    project.scratch().join("cache").join("ovmf")
}

/// What the cache holds, lock file aside: published entries and anything left behind.
fn cache_contents(project: &Project) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache_of(project))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn fetch(project: &Project, env: &[(&str, &str)]) -> Run {
    project.run(["ovmf", "fetch"], env)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn the_efi_app_boots_with_downloaded_firmware_and_later_runs_reuse_it() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    project
        .run([&kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    assert_eq!(server.requests(), 1);
    let entry = cache_of(&project).join(&sum);
    assert_eq!(
        std::fs::read(entry.join("x64/code.fd")).unwrap(),
        read("/usr/share/OVMF/OVMF_CODE_4M.fd")
    );
    assert_eq!(cache_contents(&project), std::slice::from_ref(&sum));
    // The next run takes the firmware from the cache: no request.
    let printed = project.run([OsArg::from("--print-cmd"), kernel.into()], &[]);
    printed.assert_code(0);
    assert!(
        printed
            .stdout
            .contains(&format!("file={}", entry.join("x64/code.fd").display())),
        "{printed}"
    );
    assert_eq!(server.requests(), 1);
}

type OsArg = std::ffi::OsString;

#[test]
fn the_aarch64_efi_app_boots_with_downloaded_firmware_padded_for_virt() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    project
        .run([kernels::path(Kernel::EfiAppAa64, Variant::Pass)], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiAppAa64, Variant::Pass));
    let entry = cache_of(&project).join(&sum);
    for file in ["aarch64/code.fd", "aarch64/vars.fd"] {
        let len = std::fs::metadata(entry.join(file)).unwrap().len();
        assert_eq!(len, 64 << 20, "{file} not padded to 64 MiB");
    }
    assert_eq!(server.requests(), 1);
}

#[test]
fn cmdline_reaches_a_uefi_application_through_the_downloaded_shell() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(
        runner_bin!(),
        &format!(
            "cmdline = \"alpha --beta=2 100% a#b \\\"q\\\"\"\n{}",
            server.config(&sum)
        ),
    );
    let run = project.run([kernels::path(Kernel::EfiArgs, Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiArgs, Variant::Pass));
    let args = run
        .stdout
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("ARGS: "))
        .unwrap_or_else(|| panic!("no ARGS line:\n{run}"));
    // The shell passes the command line it ran: the application's path, then the arguments.
    assert!(
        args.ends_with("efi-args-pass.efi alpha --beta=2 100% a#b \"q\""),
        "load options {args:?}\n{run}"
    );
}

#[test]
fn cmdline_with_installed_firmware_takes_only_the_shell_from_the_release() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    // `source = "auto"`: the installed OVMF boots; the shell comes from the release.
    let project = Project::new(
        runner_bin!(),
        &format!(
            "cmdline = \"one\"\n[ovmf]\nurl = \"{}\"\nsha256 = \"{sum}\"\n",
            server.url()
        ),
    );
    let run = project.run(
        [
            OsArg::from("-v"),
            kernels::path(Kernel::EfiArgs, Variant::Pass).into(),
        ],
        &[],
    );
    run.assert_code(0)
        .assert_serial_line("ARGS: \\EFI\\image-runner\\efi-args-pass.efi one")
        .assert_stderr_contains("(installed)");
    assert_eq!(server.requests(), 1);
}

#[test]
fn cmdline_for_a_uefi_application_without_a_shell_is_an_error() {
    let project = Project::new(
        runner_bin!(),
        "cmdline = \"alpha\"\n[ovmf]\nsource = \"system\"\n",
    );
    let run = project.run([kernels::path(Kernel::EfiArgs, Variant::Pass)], &[]);
    run.assert_code(2)
        .assert_stderr_contains("ovmf.shell")
        .assert_stderr_contains("cmdline");
}

#[test]
fn a_sha256_mismatch_is_refused_and_nothing_is_cached() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let wrong = sha256(b"another archive");
    let project = Project::new(runner_bin!(), &server.config(&wrong));
    let run = fetch(&project, &[]);
    run.assert_code(2)
        .assert_stderr_contains(&format!("has sha256 {}", sha256(archive)))
        .assert_stderr_contains(&wrong)
        .assert_stderr_contains("nothing was cached");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
}

#[test]
fn a_truncated_body_is_retried_and_never_cached() {
    let archive = good_archive();
    let sum = sha256(archive);
    let server = Server::start(Reply::Truncated(archive.to_vec()));
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let run = fetch(&project, &[]);
    run.assert_code(2).assert_stderr_contains("failed 3 times");
    assert_eq!(server.requests(), 3, "{run}");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
    server.set(Reply::Ok {
        body: archive.to_vec(),
        pace: Duration::ZERO,
    });
    fetch(&project, &[]).assert_code(0);
    assert_eq!(cache_contents(&project), [sum]);
}

#[test]
fn a_connection_dropped_midway_is_never_cached_and_the_next_run_succeeds() {
    let archive = good_archive();
    let sum = sha256(archive);
    let server = Server::start(Reply::Dropped(archive.to_vec()));
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let run = fetch(&project, &[]);
    run.assert_code(2)
        .assert_stderr_contains(&server.url().replace("{tag}", TAG));
    assert_eq!(cache_contents(&project), Vec::<String>::new(), "{run}");
    server.set(Reply::Ok {
        body: archive.to_vec(),
        pace: Duration::ZERO,
    });
    fetch(&project, &[]).assert_code(0);
    assert_eq!(cache_contents(&project), [sum]);
}

#[test]
fn the_proxy_from_the_environment_is_used() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    // A host that does not resolve: only the proxy can reach it.
    let project = Project::new(
        runner_bin!(),
        &format!(
            "[ovmf]\nsource = \"download\"\nurl = \"http://firmware.invalid/{{tag}}.tar.xz\"\nsha256 = \"{sum}\"\n"
        ),
    );
    let proxy = format!("http://127.0.0.1:{}", server.port);
    fetch(&project, &[("HTTP_PROXY", &proxy), ("http_proxy", &proxy)]).assert_code(0);
    let lines = server.lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "CONNECT firmware.invalid:80 HTTP/1.1".to_owned(),
            format!("GET /{TAG}.tar.xz HTTP/1.1")
        ]
    );
    assert_eq!(cache_contents(&project), [sum]);
}

#[test]
fn a_missing_archive_is_a_clear_error_without_retries() {
    let server = Server::start(Reply::NotFound);
    let project = Project::new(runner_bin!(), "");
    // The URL and sum from the environment, through the usual layering.
    let url = server.url();
    let run = fetch(
        &project,
        &[
            ("CARGO_IMAGE_RUNNER_OVMF_URL", url.as_str()),
            ("CARGO_IMAGE_RUNNER_OVMF_SHA256", &sha256(b"x")),
        ],
    );
    run.assert_code(2).assert_stderr_contains("HTTP 404");
    assert_eq!(server.requests(), 1);
    // A mirror without its sha256 is refused before any request.
    let run = fetch(&project, &[("CARGO_IMAGE_RUNNER_OVMF_URL", url.as_str())]);
    run.assert_code(2).assert_stderr_contains("ovmf.sha256");
    assert_eq!(server.requests(), 1);
}

#[test]
fn fetch_outside_a_package_reads_the_environment() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), "");
    // A folder with no `Cargo.toml` above it: only the environment configures `[ovmf]`.
    let outside = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut command = project.command_for(["ovmf", "fetch", "--arch", "x86_64"]);
    command
        .current_dir(outside.path())
        .env("CARGO_IMAGE_RUNNER_OVMF_URL", &url)
        .env("CARGO_IMAGE_RUNNER_OVMF_SHA256", &sum)
        .env("CARGO_IMAGE_RUNNER_OVMF_SOURCE", "download");
    let run = image_runner_tests::runner::run_command(command);
    run.assert_code(0);
    assert_eq!(server.requests(), 1);
    assert_eq!(cache_contents(&project), std::slice::from_ref(&sum));
    assert!(run.stdout.contains(&sum), "{run}");
}

#[test]
fn a_stalled_server_times_out_with_a_clear_error() {
    let archive = good_archive();
    let server = Server::start(Reply::Stall(archive.to_vec(), Duration::from_secs(20)));
    let project = Project::new(
        runner_bin!(),
        &format!("{}timeout = 1\n", server.config(&sha256(archive))),
    );
    let started = Instant::now();
    let run = fetch(&project, &[]);
    run.assert_code(2)
        .assert_stderr_contains("stalled")
        .assert_stderr_contains("ovmf.timeout");
    assert!(started.elapsed() < Duration::from_secs(15), "{run}");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
}

#[test]
fn eight_concurrent_runs_download_once() {
    let archive = good_archive();
    // Paced, so that every process starts while the first is still downloading.
    let server = Server::start(Reply::Ok {
        body: archive.to_vec(),
        pace: Duration::from_millis(100),
    });
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    // Four runs (which resolve the firmware before printing QEMU's command) and four fetches.
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass).into_os_string();
    let children: Vec<_> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                project.spawn([OsArg::from("--print-cmd"), kernel.clone()], &[])
            } else {
                project.spawn(["ovmf", "fetch", "--arch", "x86_64"].map(OsArg::from), &[])
            }
        })
        .collect();
    for child in children {
        wait(child).assert_code(0);
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(cache_contents(&project), std::slice::from_ref(&sum));
    let list = project.run(["ovmf", "list"], &[]);
    list.assert_code(0);
    assert!(
        list.stdout.contains(&format!("{TAG}  sha256 {sum}")),
        "{list}"
    );
}

#[test]
fn offline_runs_use_the_cache_or_say_what_to_place_where() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let placed = cache_of(&project).join(format!("{TAG}-bin.tar.xz"));
    for env in [&[][..], &[("CARGO_NET_OFFLINE", "true")][..]] {
        let offline = if env.is_empty() {
            project.run(["--offline", "ovmf", "fetch"], env)
        } else {
            fetch(&project, env)
        };
        offline
            .assert_code(2)
            .assert_stderr_contains("offline")
            .assert_stderr_contains(&placed.display().to_string())
            .assert_stderr_contains(&server.url().replace("{tag}", TAG));
    }
    assert_eq!(server.requests(), 0);
    // An archive placed there by hand is verified and used without the network.
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::write(&placed, archive).unwrap();
    project
        .run(["--offline", "ovmf", "fetch"], &[])
        .assert_code(0);
    std::fs::remove_file(&placed).unwrap();
    // With the cache, an offline run boots.
    project
        .run(
            [
                OsArg::from("--offline"),
                kernels::path(Kernel::EfiApp, Variant::Pass).into(),
            ],
            &[],
        )
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    assert_eq!(server.requests(), 0);
}

#[test]
fn a_placed_archive_with_another_sha256_is_set_aside_when_online() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let placed = cache_of(&project).join(format!("{TAG}-bin.tar.xz"));
    let rejected = cache_of(&project).join(format!("{TAG}-bin.tar.xz.rejected"));
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::write(&placed, b"not the release").unwrap();
    // Offline, it is a clear error naming the file and the sha256 it must have.
    project
        .run(["--offline", "ovmf", "fetch"], &[])
        .assert_code(2)
        .assert_stderr_contains(&placed.display().to_string())
        .assert_stderr_contains(&sum);
    assert!(placed.is_file());
    assert_eq!(server.requests(), 0);
    // Online, it is moved aside with a warning naming where, and the release downloaded.
    fetch(&project, &[])
        .assert_code(0)
        .assert_stderr_contains("warning")
        .assert_stderr_contains(&rejected.display().to_string());
    assert_eq!(server.requests(), 1);
    assert!(!placed.exists());
    assert_eq!(std::fs::read(&rejected).unwrap(), b"not the release");
    assert!(cache_of(&project).join(&sum).join("MANIFEST").is_file());
}

#[test]
fn a_damaged_cache_entry_is_fetched_again() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    fetch(&project, &[]).assert_code(0);
    let code = cache_of(&project).join(&sum).join("x64/code.fd");
    let len = std::fs::metadata(&code).unwrap().len() as usize;
    std::fs::write(&code, vec![0xAAu8; len]).unwrap();
    // Its time set past the manifest's, so it was changed after it was published whatever the
    // file system clock's resolution.
    let published =
        image_runner_test_support::mtime(&cache_of(&project).join(&sum).join("MANIFEST"));
    image_runner_test_support::set_mtime(&code, published + Duration::from_secs(10));
    // A run notices (the file changed after it was published) and downloads again.
    let run = project.run(
        [
            OsArg::from("--print-cmd"),
            kernels::path(Kernel::EfiApp, Variant::Pass).into(),
        ],
        &[],
    );
    run.assert_code(0).assert_stderr_contains("damaged");
    assert_eq!(server.requests(), 2);
    assert_eq!(
        std::fs::read(&code).unwrap(),
        read("/usr/share/OVMF/OVMF_CODE_4M.fd")
    );
}

/// A raw tar header: the `tar` crate refuses to write these names, so they are set by hand.
fn raw_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn archive_entries_that_climb_out_or_link_out_are_refused() {
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "`..`",
            raw_entry(
                &format!("{TAG}-bin/../../escaped"),
                tar::EntryType::Regular,
                "",
                b"x",
            ),
        ),
        (
            "link",
            raw_entry(
                &format!("{TAG}-bin/x64/vars.fd"),
                tar::EntryType::Symlink,
                "../../../../escaped",
                b"",
            ),
        ),
        (
            "link",
            raw_entry(
                &format!("{TAG}-bin/x64/code.fd"),
                tar::EntryType::Link,
                "/etc/passwd",
                b"",
            ),
        ),
    ];
    for (word, entry) in cases {
        let mut tar = raw_entry(
            &format!("{TAG}-bin/x64/shell.efi"),
            tar::EntryType::Regular,
            "",
            b"s",
        );
        tar.extend_from_slice(&entry);
        tar.resize(tar.len() + 1024, 0);
        let xz = xz(&tar);
        let server = Server::ok(&xz);
        let project = Project::new(runner_bin!(), &server.config(&sha256(&xz)));
        let run = fetch(&project, &[]);
        run.assert_code(2)
            .assert_stderr_contains("refused")
            .assert_stderr_contains(word);
        assert_eq!(cache_contents(&project), Vec::<String>::new());
        let escaped: Vec<PathBuf> = walk(project.scratch())
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "escaped"))
            .collect();
        assert!(escaped.is_empty(), "{escaped:?}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn efi_args_fixture_reads_its_load_options() {
    // The fixture's own check: booted from the FAT image without a shell, it still prints an
    // ARGS line (whatever the firmware's boot option passed) and passes.
    let project = Project::new(runner_bin!(), "");
    let run = project.run([kernels::path(Kernel::EfiArgs, Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiArgs, Variant::Pass));
    assert!(run.stdout.lines().any(|l| l.starts_with("ARGS: ")), "{run}");
}

#[test]
fn doctor_says_per_architecture_what_a_run_would_use() {
    let project = Project::new(runner_bin!(), "");
    let run = project.run(["doctor"], &[]);
    run.assert_code(0);
    let line = |arch: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(&format!("UEFI firmware for {arch}:")))
            .unwrap_or_else(|| panic!("no line for {arch}:\n{run}"))
            .to_owned()
    };
    // Installed here (Debian's ovmf and qemu-efi-aarch64).
    assert!(line("x86_64").contains("(installed)"), "{run}");
    assert!(line("aarch64").contains("(installed)"), "{run}");
    // Debian 12 packages no RISC-V or LoongArch edk2: the download, and what to install.
    for arch in ["riscv64", "loongarch64"] {
        let line = line(arch);
        assert!(line.trim_start().starts_with("warn"), "{line}");
        for word in [TAG, "Debian", "Fedora", "Arch", "macOS", "ovmf fetch"] {
            assert!(line.contains(word), "{word} missing: {line}");
        }
    }
}

/// Collects a runner started with [`Project::spawn`], killing it (and failing the test) when it
/// takes longer than `limit`: a slow mirror must not make a test wait for the safety limit.
fn wait_within(mut child: std::process::Child, limit: Duration) -> Run {
    let started = Instant::now();
    while child.try_wait().expect("wait for the runner").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let run = wait(child);
            panic!("the runner took longer than {limit:?}:\n{run}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait(child)
}

/// Waits until the server got `count` requests (the runner holds the download lock by then).
fn wait_for_requests(server: &Server, count: usize) {
    let started = Instant::now();
    while server.requests() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server got {} requests, not {count}",
            server.requests()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `[ovmf]` with the default `source = "auto"`, downloading from `server` only when nothing
/// else is found.
fn auto_config(server: &Server, sum: &str) -> String {
    format!("[ovmf]\nurl = \"{}\"\nsha256 = \"{sum}\"\n", server.url())
}

#[test]
fn an_explicit_firmware_path_that_is_wrong_is_an_error_never_a_download() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("missing.fd").display().to_string();
    let here = scratch.path().join("here.fd");
    std::fs::write(&here, b"firmware").unwrap();
    let here = here.display().to_string();
    // (config lines, environment, the setting the error names, the path it names)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            String::new(),
            vec![("OVMF_CODE", &missing)],
            "OVMF_CODE",
            &missing,
        ),
        (
            String::new(),
            vec![("OVMF_FD", &missing)],
            "OVMF_FD",
            &missing,
        ),
        (
            String::new(),
            vec![("OVMF_CODE", &here), ("OVMF_VARS", &missing)],
            "OVMF_VARS",
            &missing,
        ),
        // A variable store without its code cannot be used: the pair belongs together.
        (
            String::new(),
            vec![("OVMF_VARS", &here)],
            "OVMF_VARS",
            &here,
        ),
        (
            format!("code = \"{missing}\"\n"),
            vec![],
            "ovmf.code",
            &missing,
        ),
        (
            format!("code = \"{here}\"\nvars = \"{missing}\"\n"),
            vec![],
            "ovmf.vars",
            &missing,
        ),
        (format!("vars = \"{here}\"\n"), vec![], "ovmf.vars", &here),
    ];
    for (lines, env, setting, path) in cases {
        let project = Project::new(
            runner_bin!(),
            &format!("{}{lines}", auto_config(&server, &sum)),
        );
        let run = project.run([OsArg::from("--print-cmd"), kernel.clone().into()], &env);
        run.assert_code(2)
            .assert_stderr_contains(setting)
            .assert_stderr_contains(path);
        assert_eq!(server.requests(), 0, "{setting}: {run}");
        assert_eq!(cache_contents(&project), Vec::<String>::new(), "{run}");
    }
}

#[test]
fn a_firmware_variable_that_is_not_utf8_is_an_error_naming_it() {
    use std::os::unix::ffi::OsStringExt;
    let archive = good_archive();
    let server = Server::ok(archive);
    let project = Project::new(runner_bin!(), &auto_config(&server, &sha256(archive)));
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    for name in ["OVMF_CODE", "OVMF_VARS", "OVMF_FD"] {
        let mut command = project.command_for([OsArg::from("--print-cmd"), kernel.clone().into()]);
        command.env(name, OsArg::from_vec(b"/fw/caf\xe9.fd".to_vec()));
        let run = image_runner_tests::runner::run_command(command);
        run.assert_code(2)
            .assert_stderr_contains(name)
            .assert_stderr_contains("UTF-8");
    }
    assert_eq!(server.requests(), 0);
}

#[test]
fn planted_firmware_is_noticed_whatever_its_time_or_the_manifest_says() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    fetch(&project, &[]).assert_code(0);
    let entry = cache_of(&project).join(&sum);
    let code = entry.join("x64/code.fd");
    let original = std::fs::read(&code).unwrap();
    let zeros = vec![0u8; original.len()];
    // The same size, zeros, and the file's time set back to what it was.
    let plant = || {
        let modified = image_runner_test_support::mtime(&code);
        std::fs::write(&code, &zeros).unwrap();
        image_runner_test_support::set_mtime(&code, modified);
    };
    let print_cmd = || {
        project.run(
            [
                OsArg::from("--print-cmd"),
                kernels::path(Kernel::EfiApp, Variant::Pass).into(),
            ],
            &[],
        )
    };
    let listed_damaged = || {
        let list = project.run(["ovmf", "list"], &[]);
        list.assert_code(0);
        assert!(list.stdout.contains("damaged"), "{list}");
    };

    // What `ovmf list` calls damaged, a run fetches again.
    plant();
    listed_damaged();
    print_cmd().assert_code(0).assert_stderr_contains("damaged");
    assert_eq!(server.requests(), 2);
    assert_eq!(std::fs::read(&code).unwrap(), original);

    // Its line in the manifest rewritten too: neither a run nor `ovmf fetch` accepts it.
    let rewrite_manifest = || {
        let manifest = entry.join("MANIFEST");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let planted = text.replace(&sha256(&original), &sha256(&zeros));
        assert_ne!(
            text, planted,
            "the manifest does not list the file's sha256"
        );
        std::fs::write(&manifest, planted).unwrap();
    };
    plant();
    rewrite_manifest();
    listed_damaged();
    print_cmd().assert_code(0).assert_stderr_contains("damaged");
    assert_eq!(server.requests(), 3);
    assert_eq!(std::fs::read(&code).unwrap(), original);
    plant();
    rewrite_manifest();
    fetch(&project, &[])
        .assert_code(0)
        .assert_stderr_contains("damaged");
    assert_eq!(server.requests(), 4);
    assert_eq!(std::fs::read(&code).unwrap(), original);
}

#[test]
fn a_slow_drip_mirror_counts_as_stalled() {
    let archive = good_archive();
    // 2,000 bytes a second, below the default `ovmf.low-speed-limit`: the whole archive would
    // take many minutes.
    let server = Server::start(Reply::Drip {
        body: archive.to_vec(),
        piece: 100,
        every: Duration::from_millis(50),
    });
    let project = Project::new(
        runner_bin!(),
        &format!("{}timeout = 1\n", server.config(&sha256(archive))),
    );
    let run = wait_within(
        project.spawn(["ovmf", "fetch"], &[]),
        Duration::from_secs(40),
    );
    run.assert_code(2)
        .assert_stderr_contains("ovmf.low-speed-limit")
        .assert_stderr_contains("ovmf.timeout");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
}

#[test]
fn a_download_over_its_overall_deadline_is_stopped() {
    let archive = good_archive();
    // Fast enough for the speed limit, far too slow for a deadline of 2 s.
    let server = Server::start(Reply::Drip {
        body: archive.to_vec(),
        piece: 2000,
        every: Duration::from_millis(50),
    });
    let project = Project::new(
        runner_bin!(),
        &format!("{}download-timeout = 2\n", server.config(&sha256(archive))),
    );
    let started = Instant::now();
    let run = wait_within(
        project.spawn(["ovmf", "fetch"], &[]),
        Duration::from_secs(40),
    );
    run.assert_code(2)
        .assert_stderr_contains("did not finish within 2 s")
        .assert_stderr_contains("ovmf.download-timeout");
    assert!(started.elapsed() < Duration::from_secs(15), "{run}");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
}

#[test]
fn a_run_waiting_for_another_ones_download_says_so() {
    let archive = good_archive();
    let server = Server::start(Reply::Ok {
        body: archive.to_vec(),
        pace: Duration::from_millis(300),
    });
    let sum = sha256(archive);
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let first = project.spawn(["ovmf", "fetch"], &[]);
    wait_for_requests(&server, 1);
    let second = project.spawn(["ovmf", "fetch"], &[]);
    wait(first).assert_code(0);
    wait(second)
        .assert_code(0)
        .assert_stderr_contains("Waiting for another process")
        .assert_stderr_contains(&cache_of(&project).display().to_string());
    assert_eq!(server.requests(), 1);
    assert_eq!(cache_contents(&project), [sum]);
}

#[test]
fn sigterm_during_ovmf_fetch_names_what_it_interrupted() {
    let archive = good_archive();
    let server = Server::start(Reply::Drip {
        body: archive.to_vec(),
        piece: 1000,
        every: Duration::from_millis(100),
    });
    let project = Project::new(runner_bin!(), &server.config(&sha256(archive)));
    let child = project.spawn(["ovmf", "fetch"], &[]);
    wait_for_requests(&server, 1);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    let run = wait_within(child, Duration::from_secs(30));
    run.assert_code(130)
        .assert_stderr_contains("interrupted by SIGTERM")
        .assert_stderr_contains("UEFI firmware");
    assert!(!run.stderr.contains("guest"), "{run}");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
}

#[test]
fn a_huge_ovmf_timeout_is_a_config_error_naming_the_key() {
    let archive = good_archive();
    let server = Server::ok(archive);
    let sum = sha256(archive);
    let project = Project::new(
        runner_bin!(),
        &format!("{}timeout = 9223372036854775807\n", server.config(&sum)),
    );
    let run = fetch(&project, &[]);
    run.assert_code(2).assert_stderr_contains("ovmf.timeout");
    assert!(!run.stderr.contains("panicked"), "{run}");
    // From the environment too.
    let project = Project::new(runner_bin!(), &server.config(&sum));
    let run = fetch(
        &project,
        &[("CARGO_IMAGE_RUNNER_OVMF_TIMEOUT", "9223372036854775000")],
    );
    run.assert_code(2).assert_stderr_contains("ovmf.timeout");
    assert!(!run.stderr.contains("panicked"), "{run}");
    assert_eq!(server.requests(), 0);
}

#[test]
fn fetch_for_an_architecture_the_release_lacks_fails_and_publishes_nothing() {
    let aarch64_only = tar_xz(&[
        ("aarch64/code.fd", b"aa code".to_vec()),
        ("aarch64/vars.fd", b"aa vars".to_vec()),
    ]);
    let server = Server::ok(&aarch64_only);
    let project = Project::new(runner_bin!(), &server.config(&sha256(&aarch64_only)));
    let run = project.run(["ovmf", "fetch", "--arch", "x86_64"], &[]);
    run.assert_code(2)
        .assert_stderr_contains("x86_64")
        .assert_stderr_contains("aarch64");
    assert!(!run.stderr.contains("(it has: )"), "{run}");
    assert_eq!(cache_contents(&project), Vec::<String>::new());
    // Published for aarch64, it still fails for x86_64.
    project
        .run(["ovmf", "fetch", "--arch", "aarch64"], &[])
        .assert_code(0);
    project
        .run(["ovmf", "fetch", "--arch", "x86_64"], &[])
        .assert_code(2)
        .assert_stderr_contains("aarch64");

    // A release without firmware for any architecture: nothing to fetch, whatever is asked.
    let nothing = tar_xz(&[("doc/README", b"no firmware here".to_vec())]);
    server.set(Reply::Ok {
        body: nothing.clone(),
        pace: Duration::ZERO,
    });
    let project = Project::new(runner_bin!(), &server.config(&sha256(&nothing)));
    for args in [
        &["ovmf", "fetch", "--arch", "x86_64"][..],
        &["ovmf", "fetch"],
    ] {
        let run = project.run(args, &[]);
        run.assert_code(2)
            .assert_stderr_contains("no firmware for any architecture");
        assert!(!run.stderr.contains("(it has: )"), "{run}");
        assert_eq!(cache_contents(&project), Vec::<String>::new(), "{run}");
    }
}
