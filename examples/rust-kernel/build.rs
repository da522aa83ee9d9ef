//! Links the kernel and its test kernel as freestanding ELF files with our own
//! linker script instead of as Linux programs: no C runtime, no libc, no
//! dynamic linking, no PIE. `-u pvh_start` makes sure the boot code in the
//! library is linked in although nothing calls it.

fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/linker.ld");
    println!("cargo::rerun-if-changed={script}");
    for arg in [
        &format!("-T{script}"),
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,-u,pvh_start",
    ] {
        println!("cargo::rustc-link-arg-bins={arg}");
        println!("cargo::rustc-link-arg-tests={arg}");
    }
}
