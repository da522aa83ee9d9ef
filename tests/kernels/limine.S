/*
 * 64-bit higher-half test kernel for the Limine boot protocol.
 *
 * Limine enters in long mode with its own page tables (the kernel mapped at
 * its link address), a GDT, a stack and interrupts off, so the entry point
 * can print right away. The only thing the kernel must carry is the request
 * area: the base revision tag between the start and end markers, which
 * tells Limine this is a Limine-protocol kernel and which revision of the
 * protocol it speaks. No other requests are made: serial output and
 * isa-debug-exit need nothing from the loader.
 */
#include "common.h"

/* Base revision 3 is the newest one Limine 8.x understands. */
#define LIMINE_BASE_REVISION 3

	.text
	.globl	_start
_start:
	cld
	/* RIP-relative: the kernel lives at 0xffffffff80000000 and up. */
	leaq	message(%rip), %rsi
	serial_puts
	finish

	.section .rodata
message:
	KERNEL_MESSAGE("limine")

	/*
	 * Limine only honours requests between the last start marker and
	 * the first end marker (mandatory from base revision 2), each on an
	 * 8-byte boundary. The section is writable because Limine patches
	 * the base revision tag to report what it accepted.
	 */
	.section .requests, "aw"
	.balign 8
	.globl	limine_requests_start_marker
limine_requests_start_marker:
	.quad	0xf6b8f4b39de7d1ae, 0xfab91a6940fcb9cf
	.quad	0x785c6ed015d3e316, 0x181e920a7852b9d9
	.globl	limine_base_revision
limine_base_revision:
	.quad	0xf9562b2d5c95a6c8, 0x6a7b384944536bdc
	.quad	LIMINE_BASE_REVISION
	.globl	limine_requests_end_marker
limine_requests_end_marker:
	.quad	0xadc0e0531bb10d03, 0x9572709f31764c62

	.section .note.GNU-stack, "", @progbits
