//! What differs between CPUs: leaving the emulator, and returning from a panicking test.
//!
//! Only x86_64 can be built and tested where this crate is developed; the aarch64 and riscv64
//! parts are short and follow the semihosting and SiFive test-device specifications, but have
//! not been compiled there.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
mod no_resume;
#[cfg(not(target_arch = "x86_64"))]
pub use self::no_resume::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::exit;

#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "riscv64")]
pub use self::riscv64::exit;

/// Type-checks the fallback on the development host too.
#[cfg(all(test, target_arch = "x86_64"))]
#[allow(dead_code)]
mod no_resume;
