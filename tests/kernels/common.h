/*
 * Shared pieces of the test kernels.
 *
 * Every kernel prints one line on COM1 and then either leaves QEMU through
 * the isa-debug-exit device or halts for ever. The variant is picked on the
 * command line so one source yields all three fixtures the host tests need:
 *
 *   -DVARIANT_PASS  "KERNEL: <name> pass", writes 0x10 (QEMU exit status 33)
 *   -DVARIANT_FAIL  "KERNEL: <name> fail", writes 0x11 (QEMU exit status 35)
 *   -DVARIANT_HANG  "KERNEL: <name> hang", never exits (tests the timeout)
 *
 * and, for the multiboot kernel only:
 *
 *   -DVARIANT_TRIPLE "KERNEL: <name> triple", then a triple fault (QEMU exits 0 under
 *                    -no-reboot, which must not count as a pass)
 *   -DVARIANT_INPUT  "KERNEL: <name> input", then the prompt "login: "; reads one byte from
 *                    COM1 and exits with 0x10 if it is 'y', else 0x11 (tests typed input)
 *   -DVARIANT_POWEROFF "KERNEL: <name> poweroff", then an ACPI power-off (QEMU exits 0, like
 *                    for a reset under -no-reboot; QMP tells the two apart)
 *
 * The line text must stay in sync with tests/src/kernels.rs.
 */
#ifndef KERNELS_COMMON_H
#define KERNELS_COMMON_H

#if defined(VARIANT_PASS) + defined(VARIANT_FAIL) + defined(VARIANT_HANG) \
    + defined(VARIANT_TRIPLE) + defined(VARIANT_INPUT) + defined(VARIANT_POWEROFF) != 1
#error "define exactly one VARIANT_*"
#endif

#if defined(VARIANT_PASS)
#define VARIANT_WORD "pass"
#define EXIT_VALUE 0x10
#elif defined(VARIANT_FAIL)
#define VARIANT_WORD "fail"
#define EXIT_VALUE 0x11
#elif defined(VARIANT_TRIPLE)
#define VARIANT_WORD "triple"
#elif defined(VARIANT_INPUT)
#define VARIANT_WORD "input"
#elif defined(VARIANT_POWEROFF)
#define VARIANT_WORD "poweroff"
#else
#define VARIANT_WORD "hang"
#endif

#define COM1_DATA 0x3f8
#define COM1_LSR  0x3fd
#define LSR_THRE  0x20
#define DEBUG_EXIT_PORT 0xf4

/*
 * The NUL-terminated line, for the read-only data of each kernel. The
 * leading newline puts it on a line of its own even when firmware left
 * escape sequences or a partial line on the serial console before it.
 */
#define KERNEL_MESSAGE(name) .asciz "\nKERNEL: " name " " VARIANT_WORD "\n"

/*
 * Write the NUL-terminated string at %esi/%rsi to COM1. Only instructions
 * whose encoding means the same in 32- and 64-bit mode are used (lodsb
 * follows the address size of the mode), so every kernel can share it.
 * The UART is left as the loader/firmware set it up: QEMU does not care
 * about the baud rate, and reprogramming it under OVMF would fight the
 * firmware's own serial console.
 */
.macro serial_puts
1:	lodsb
	testb	%al, %al
	jz	3f
	movb	%al, %ah
	movw	$COM1_LSR, %dx
2:	inb	%dx, %al		/* wait until the transmitter can take a byte */
	testb	$LSR_THRE, %al
	jz	2b
	movb	%ah, %al
	movw	$COM1_DATA, %dx
	outb	%al, %dx
	jmp	1b
3:
.endm

/* Wait for one byte on COM1 and leave it in %al. */
.macro serial_getc
5:	movw	$COM1_LSR, %dx
	inb	%dx, %al
	testb	$1, %al			/* data ready */
	jz	5b
	movw	$COM1_DATA, %dx
	inb	%dx, %al
.endm

/*
 * Leave QEMU with the variant's status; halt if that did not work (no
 * isa-debug-exit device) or if this is the hang variant.
 */
.macro finish
#ifdef EXIT_VALUE
	movl	$EXIT_VALUE, %eax
	outl	%eax, $DEBUG_EXIT_PORT
#endif
4:	cli
	hlt
	jmp	4b
.endm

#endif
