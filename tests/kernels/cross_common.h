/*
 * Shared pieces of the aarch64 and riscv64 test kernels (common.h is the
 * x86 counterpart and is not included here: its macros are x86 code).
 *
 * build.rs runs these sources through the host C preprocessor
 * (`gcc -E -undef -x assembler-with-cpp`) with exactly one of the variant
 * defines, then hands the result to the cross assembler. Only cross
 * binutils are needed, no cross compiler.
 *
 * The kernels end QEMU with the same statuses as the x86 kernels do through
 * isa-debug-exit, so one runner setting for "test passed" fits every
 * architecture:
 *
 *   -DVARIANT_PASS  "KERNEL: <name> pass", QEMU exit status 33
 *   -DVARIANT_FAIL  "KERNEL: <name> fail", QEMU exit status 35
 *   -DVARIANT_HANG  "KERNEL: <name> hang", never exits (tests the timeout)
 *
 * The line text and the statuses must stay in sync with tests/src/kernels.rs.
 */
#ifndef KERNELS_CROSS_COMMON_H
#define KERNELS_CROSS_COMMON_H

#if defined(VARIANT_PASS) + defined(VARIANT_FAIL) + defined(VARIANT_HANG) != 1
#error "define exactly one of VARIANT_PASS, VARIANT_FAIL, VARIANT_HANG"
#endif

#if defined(VARIANT_PASS)
#define VARIANT_WORD "pass"
#define EXIT_STATUS 33
#elif defined(VARIANT_FAIL)
#define VARIANT_WORD "fail"
#define EXIT_STATUS 35
#else
#define VARIANT_WORD "hang"
#endif

/*
 * The NUL-terminated line. As in common.h, the leading newline puts it on
 * a line of its own even after firmware output without a final newline.
 */
#define KERNEL_MESSAGE(name) .asciz "\nKERNEL: " name " " VARIANT_WORD "\n"

#endif
