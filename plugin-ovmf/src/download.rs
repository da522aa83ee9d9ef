//! Downloading one archive over HTTP(S): rustls (no OpenSSL), proxies from the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), a stall timeout, a minimum average
//! speed, an overall deadline, bounded retries with backoff, a size cap, and a progress line on
//! a terminal only. The bytes are hashed as they arrive, so the caller can verify them before
//! anything is unpacked.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use image_runner_core::Error;

/// The largest archive accepted (the real ones are about 10 MiB).
pub const MAX_ARCHIVE_BYTES: u64 = 256 << 20;

/// How a download behaves.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// How long to wait for the server at each step (connecting, each read); also the span
    /// over which `low_speed_limit` is measured (`ovmf.timeout`).
    pub stall_timeout: Duration,
    /// Bytes per second an attempt must average over each `stall_timeout`, or it counts as
    /// stalled; 0: no minimum (`ovmf.low-speed-limit`).
    pub low_speed_limit: u64,
    /// How long the whole download may take, retries and waits between them included; `None`:
    /// no limit (`ovmf.download-timeout`).
    pub deadline: Option<Duration>,
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub backoff: Duration,
    /// Show a progress line (only on a terminal).
    pub progress: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            stall_timeout: Duration::from_secs(30),
            low_speed_limit: 4096,
            deadline: Some(Duration::from_secs(900)),
            attempts: 3,
            backoff: Duration::from_millis(500),
            progress: std::io::stderr().is_terminal(),
        }
    }
}

/// What one attempt ended with.
enum Failure {
    /// Worth another attempt (network trouble, a server error, a cut-off body, a stall).
    Transient(String),
    /// Another attempt would fail the same way (404, a body over the cap, the deadline).
    Permanent(String),
}

/// Downloads `url` into `dest` (truncated first at each attempt) and returns the sha256 of
/// what was written, as lowercase hex. The error says what went wrong with which URL.
pub fn download(url: &str, dest: &Path, options: &DownloadOptions) -> Result<String, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(options.stall_timeout))
        .timeout_recv_response(Some(options.stall_timeout))
        .timeout_per_read(Some(options.stall_timeout))
        .user_agent(concat!("cargo-image-runner/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    // A deadline too far away for the clock is no deadline.
    let deadline = options
        .deadline
        .and_then(|d| Some((Instant::now().checked_add(d)?, d)));
    let past_deadline = |deadline: Option<(Instant, Duration)>| {
        deadline.filter(|(until, _)| Instant::now() >= *until).map(|(_, d)| {
            Error::plugin(
                "ovmf",
                format!(
                    "downloading {url} did not finish within {} s (`ovmf.download-timeout`); the mirror is too slow. Raise `ovmf.download-timeout` (0: no limit), set `ovmf.url` to a faster mirror, or place the archive in the cache by hand",
                    d.as_secs_f64()
                ),
            )
        })
    };
    let attempts = options.attempts.max(1);
    let mut wait = options.backoff;
    let mut last = String::new();
    for attempt in 1..=attempts {
        let result = attempt_once(&agent, url, dest, options, deadline.map(|(until, _)| until));
        // Whatever broke off an attempt at the deadline, the deadline is the reason.
        if result.is_err()
            && let Some(e) = past_deadline(deadline)
        {
            return Err(e);
        }
        match result {
            Ok(sum) => return Ok(sum),
            Err(Failure::Permanent(why)) => {
                return Err(Error::plugin("ovmf", format!("downloading {url}: {why}")));
            }
            Err(Failure::Transient(why)) => {
                last = why;
                if attempt < attempts {
                    eprintln!("warning: downloading {url}: {last}; trying again");
                    // Never sleeping past the deadline.
                    let left = deadline.map_or(wait, |(until, _)| {
                        wait.min(until.saturating_duration_since(Instant::now()))
                    });
                    std::thread::sleep(left);
                    if let Some(e) = past_deadline(deadline) {
                        return Err(e);
                    }
                    wait *= 2;
                }
            }
        }
    }
    Err(Error::plugin(
        "ovmf",
        format!(
            "downloading {url} failed {attempts} times, last: {last}. Check the network and the proxy (HTTPS_PROXY, NO_PROXY), or set `ovmf.url` to a mirror"
        ),
    ))
}

fn attempt_once(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    options: &DownloadOptions,
    until: Option<Instant>,
) -> Result<String, Failure> {
    let mut request = agent.get(url);
    if let Some(until) = until {
        // The client stops waiting at the deadline too, whatever it is waiting for.
        let left = until.saturating_duration_since(Instant::now());
        request = request.config().timeout_global(Some(left)).build();
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Timeout(_) => Failure::Transient(format!(
            "the server did not answer within {} s (`ovmf.timeout`)",
            options.stall_timeout.as_secs_f64()
        )),
        ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl => Failure::Permanent(e.to_string()),
        e => Failure::Transient(e.to_string()),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        let why = format!("the server answered HTTP {status}");
        // Timeouts and overload may pass; anything else in 4xx will not.
        return Err(if status >= 500 || status == 408 || status == 429 {
            Failure::Transient(why)
        } else {
            Failure::Permanent(why)
        });
    }
    let expected: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if let Some(len) = expected
        && len > MAX_ARCHIVE_BYTES
    {
        return Err(Failure::Permanent(format!(
            "the archive is {len} bytes, more than the {MAX_ARCHIVE_BYTES} accepted"
        )));
    }
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(MAX_ARCHIVE_BYTES + 1)
        .reader();
    let mut file = File::create(dest)
        .map_err(|e| Failure::Permanent(format!("cannot create {}: {e}", dest.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got: u64 = 0;
    let mut shown = Instant::now();
    // The span the speed is measured over, and the bytes at its start.
    let (mut span_start, mut span_bytes) = (Instant::now(), 0u64);
    let span = options.stall_timeout.max(Duration::from_millis(1));
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let stalled = e.kind() == std::io::ErrorKind::TimedOut
                    || e.to_string().to_ascii_lowercase().contains("timeout");
                return Err(Failure::Transient(if stalled {
                    format!(
                        "the server stalled after {got} bytes: nothing for {} s (`ovmf.timeout`)",
                        options.stall_timeout.as_secs_f64()
                    )
                } else {
                    format!("the connection broke after {got} bytes: {e}")
                }));
            }
        };
        got += n as u64;
        if got > MAX_ARCHIVE_BYTES {
            return Err(Failure::Permanent(format!(
                "the archive is larger than the {MAX_ARCHIVE_BYTES} bytes accepted"
            )));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| Failure::Permanent(format!("cannot write {}: {e}", dest.display())))?;
        let spent = span_start.elapsed();
        if spent >= span {
            let sent = got - span_bytes;
            let wanted = u128::from(options.low_speed_limit) * spent.as_millis() / 1000;
            if u128::from(sent) < wanted {
                return Err(Failure::Transient(format!(
                    "the server sent only {sent} bytes in {:.1} s, less than `ovmf.low-speed-limit` = {} bytes a second over `ovmf.timeout` = {} s (after {got} bytes)",
                    spent.as_secs_f64(),
                    options.low_speed_limit,
                    options.stall_timeout.as_secs_f64()
                )));
            }
            (span_start, span_bytes) = (Instant::now(), got);
        }
        if options.progress && shown.elapsed() > Duration::from_millis(200) {
            shown = Instant::now();
            progress(got, expected);
        }
    }
    if options.progress {
        progress(got, expected);
        eprintln!();
    }
    if let Some(len) = expected
        && got != len
    {
        return Err(Failure::Transient(format!(
            "the body ended after {got} of {len} bytes"
        )));
    }
    file.sync_all()
        .map_err(|e| Failure::Permanent(format!("cannot write {}: {e}", dest.display())))?;
    Ok(hex(&hasher.finalize()))
}

fn progress(got: u64, total: Option<u64>) {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    match total {
        Some(total) => eprint!(
            "\r Downloading UEFI firmware: {:.1} / {:.1} MiB",
            mib(got),
            mib(total)
        ),
        None => eprint!("\r Downloading UEFI firmware: {:.1} MiB", mib(got)),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
