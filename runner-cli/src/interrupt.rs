//! Ctrl-C, SIGTERM and SIGHUP before the guest starts (or while `ovmf fetch|list` works): the
//! unfinished image, download or any other temporary being written is removed and the runner
//! exits with the interrupted code, 130. Once QEMU is about to start, the runner plugin takes
//! the signals over (it stops QEMU).

/// Signal handling for the preparation phase; ends when dropped.
#[derive(Debug)]
pub struct Preparing {
    #[cfg(unix)]
    handle: signal_hook::iterator::Handle,
    #[cfg(unix)]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Preparing {
    /// Installs the handling; `None` where signals cannot be watched.
    pub fn install() -> Option<Preparing> {
        Self::install_saying("before the guest started")
    }

    /// Installs the handling, whose message says what was interrupted: `interrupted by
    /// SIGTERM <what>`. `None` where signals cannot be watched.
    #[cfg(unix)]
    pub fn install_saying(what: &'static str) -> Option<Preparing> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                eprintln!("error: interrupted by {name} {what}");
                image_runner_core::fs::exit_removing_temporaries(
                    image_runner_core::exit_code::INTERRUPTED,
                );
            }
        });
        Some(Preparing {
            handle,
            thread: Some(thread),
        })
    }

    /// Installs the handling; `None` where signals cannot be watched.
    #[cfg(not(unix))]
    pub fn install_saying(_what: &'static str) -> Option<Preparing> {
        None
    }
}

impl Drop for Preparing {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            self.handle.close();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
