//! Links the kernel as a freestanding ELF with our own linker script instead
//! of as a Linux program: no C runtime, no libc, no dynamic linking, no PIE.

fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/linker.ld");
    println!("cargo::rerun-if-changed={script}");
    for arg in [
        &format!("-T{script}"),
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
    ] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}
