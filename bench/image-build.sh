#!/usr/bin/env bash
# Image build speed as a user meets it: the whole `cargo-image-runner build` process, started
# from a shell, against the usual tools on the same tree, each pair in ONE hyperfine run.
#
# The tree: a stand-in EFI application (the tests' `efi_app.S`, assembled here), a 64 MiB file of
# pseudo-random bytes and 200 files of 1-8 KiB under one folder. The runner builds it with the
# built-in `none` bootloader (the EFI app goes to /EFI/BOOT/BOOTX64.EFI) and `extra-files` for the
# rest, `boot = "uefi"`, `format = "fat"` or `"iso"`.
#
#   (a) cold FAT build (output folder removed first) vs `mkfs.fat -C` + `mcopy -s` of the tree
#   (b) cold ISO build vs `xorriso -as mkisofs -R -J` of the tree
#   (c) no-op rebuild (nothing changed: the image is reused)
#   (d) rebuild after the 64 MiB file changed (same size, new bytes: the reuse check must read it
#       to tell, then the image is rebuilt over the previous one), against the tools rebuilding
#
# Usage: bench/image-build.sh            (builds the release runner first)
# Environment:
#   BEFORE=/path/to/cargo-image-runner   another build of the runner to compare in the same runs
#   NO_BUILD=1                           use target/release/cargo-image-runner as it is
#   WORK=/some/dir                       where the tree and images go (default: a new temporary
#                                        folder; put it on the file system you care about)
#   HYPERFINE_ARGS="--runs 30"           extra hyperfine arguments
#
# Needs hyperfine, dosfstools (mkfs.fat), mtools (mcopy), xorriso, gcc, ld, openssl.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
for tool in hyperfine mkfs.fat mcopy xorriso gcc ld openssl; do
    command -v "$tool" >/dev/null || { echo "image-build.sh: \`$tool\` is needed" >&2; exit 1; }
done

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$repo" && cargo build --release -p image-runner-cli)
fi
after=$repo/target/release/cargo-image-runner
before=${BEFORE:-}

work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/image-build-bench.XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)
tree=$work/tree
echo "work folder: $work"

# --- the tree -------------------------------------------------------------------------------
rm -rf "$tree"
mkdir -p "$tree/EFI/BOOT" "$tree/boot/modules" "$work/obj"
gcc -c -m64 -nostdlib -ffreestanding -DVARIANT_PASS -o "$work/obj/efi-app.o" \
    "$repo/tests/kernels/efi_app.S"
ld -m i386pep --subsystem 10 --entry efi_main --no-insert-timestamp -nostdlib \
    -o "$tree/EFI/BOOT/BOOTX64.EFI" "$work/obj/efi-app.o"
# Pseudo-random but the same on every run: AES-CTR of zeros under a fixed key.
openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 0 </dev/zero 2>/dev/null |
    {
        head -c $((64 << 20)) >"$tree/boot/kernel"
        for i in $(seq 0 199); do
            head -c $((1024 * (1 + i % 8))) >"$(printf '%s/boot/modules/module-%03d.bin' "$tree" "$i")"
        done
    } || true
[[ $(stat -c %s "$tree/boot/kernel") -eq $((64 << 20)) ]] || { echo "tree not made" >&2; exit 1; }

# --- one project per runner binary (own output folder, own stamps) ---------------------------
make_project() { # $1: folder
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir/target/debug"
    cp "$tree/EFI/BOOT/BOOTX64.EFI" "$dir/target/debug/k.efi"
    {
        printf '[package]\nname = "bench-kernel"\nversion = "0.1.0"\nedition = "2024"\n\n'
        printf '[package.metadata.image-runner]\nbootloader = "none"\nboot = "uefi"\nformat = "fat"\n\n'
        printf '[package.metadata.image-runner.extra-files]\n'
        printf '"boot/kernel" = "%s"\n' "$tree/boot/kernel"
        for f in "$tree"/boot/modules/*; do
            printf '"boot/modules/%s" = "%s"\n' "$(basename "$f")" "$f"
        done
    } >"$dir/Cargo.toml"
}
make_project "$work/after"
names=(after)
declare -A bins=([after]=$after)
if [[ -n $before ]]; then
    make_project "$work/before"
    names=(before after)
    bins[before]=$before
fi

# The runner's FAT image decides the size mkfs.fat gets.
fat_image=$(cd "$work/after" && "$after" build target/debug/k.efi)
fat_kib=$(($(stat -c %s "$fat_image") / 1024))
out_rel=target/image-runner/k

hf=(hyperfine --warmup 3 ${HYPERFINE_ARGS:-})
# Prints the hyperfine command line (shell-quoted), then runs it.
run_hyperfine() {
    echo
    printf '%q ' "${hf[@]}" "$@"
    echo
    "${hf[@]}" "$@"
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) FAT
args=()
for n in "${names[@]}"; do
    args+=(--prepare "rm -rf $work/$n/$out_rel"
        -n "$n: cargo-image-runner build (fat, cold)"
        "${bins[$n]} build --manifest-dir $work/$n $work/$n/target/debug/k.efi")
done
args+=(--prepare "rm -f $work/ref.fat"
    -n "mkfs.fat -C + mcopy -s"
    "mkfs.fat -C $work/ref.fat $fat_kib >/dev/null && mcopy -s -i $work/ref.fat $tree/EFI $tree/boot ::/")
run_hyperfine "${args[@]}"

# (b) ISO
args=()
for n in "${names[@]}"; do
    args+=(--prepare "rm -rf $work/$n/$out_rel"
        -n "$n: cargo-image-runner build (iso, cold)"
        "${bins[$n]} build --set format=iso --manifest-dir $work/$n $work/$n/target/debug/k.efi")
done
args+=(--prepare "rm -f $work/ref.iso"
    -n "xorriso -as mkisofs -R -J"
    "xorriso -as mkisofs -quiet -R -J -o $work/ref.iso $tree")
run_hyperfine "${args[@]}"

# (c) no-op rebuild: no shell needed (and none wanted: hyperfine cannot subtract a shell's
# start-up precisely enough for runs of a few milliseconds).
args=()
for n in "${names[@]}"; do
    (cd "$work/$n" && "${bins[$n]}" build target/debug/k.efi >/dev/null)
    args+=(-n "$n: cargo-image-runner build (fat, no-op)"
        "${bins[$n]} build --manifest-dir $work/$n $work/$n/target/debug/k.efi")
done
run_hyperfine -N "${args[@]}"

# (d) rebuild after the big file changed in place (its first bytes: a new value every run).
change="date +%N | dd of=$tree/boot/kernel conv=notrunc status=none"
args=()
for n in "${names[@]}"; do
    args+=(--prepare "$change"
        -n "$n: cargo-image-runner build (fat, kernel changed)"
        "${bins[$n]} build --manifest-dir $work/$n $work/$n/target/debug/k.efi")
done
args+=(--prepare "$change && rm -f $work/ref.fat"
    -n "mkfs.fat -C + mcopy -s"
    "mkfs.fat -C $work/ref.fat $fat_kib >/dev/null && mcopy -s -i $work/ref.fat $tree/EFI $tree/boot ::/")
run_hyperfine "${args[@]}"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ -z ${WORK:-} ]]; then
    rm -rf "$work"
fi
