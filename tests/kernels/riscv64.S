/*
 * RISC-V 64 kernel for QEMU's `virt` machine, started in S-mode by the
 * OpenSBI firmware that comes with QEMU
 * (`-bios default -kernel riscv64-*.elf`).
 *
 * It prints its line on the NS16550A UART at 0x10000000 (OpenSBI has set it
 * up for its own banner) and ends QEMU through virt's SiFive test device at
 * 0x100000: writing `(status << 16) | 0x3333` ("fail") makes QEMU exit with
 * that status. (0x5555, "pass", exits 0, like a reset under -no-reboot,
 * which is why it is not used.) OpenSBI leaves S-mode access to all of
 * MMIO, so no SBI call is needed.
 *
 * QEMU starts the kernel at the lowest address it loads, not at the ELF
 * entry, so riscv64.ld puts _start first at 0x80200000 (OpenSBI's default
 * next address) and keeps the ELF headers out of the loaded segments.
 */
#include "cross_common.h"

#define UART_BASE	0x10000000	/* NS16550A */
#define UART_THR	0		/* transmit holding register */
#define UART_LSR	5		/* line status register */
#define LSR_THRE	0x20		/* transmitter can take a byte */

#define TEST_BASE	0x100000	/* SiFive test finisher */
#define TEST_FAIL	0x3333

	.section .text.entry, "ax"
	.globl	_start
/* a0 = hart id, a1 = device tree; neither is needed, nor is a stack. */
_start:
	lla	a0, message
	li	a1, UART_BASE
1:	lbu	a2, 0(a0)
	beqz	a2, 3f
2:	lbu	a3, UART_LSR(a1)
	andi	a3, a3, LSR_THRE
	beqz	a3, 2b
	sb	a2, UART_THR(a1)
	addi	a0, a0, 1
	j	1b
3:
#ifdef EXIT_STATUS
	li	a1, TEST_BASE
	li	a2, (EXIT_STATUS << 16) | TEST_FAIL
	sw	a2, 0(a1)
#endif
	/* Hang: with no interrupt enabled, wfi sleeps for ever. */
	csrw	sie, zero
	csrci	sstatus, 2		/* SIE */
4:	wfi
	j	4b

	.section .rodata
message:
	KERNEL_MESSAGE("riscv64")
