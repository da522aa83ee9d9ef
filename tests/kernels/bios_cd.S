/*
 * A 16-bit El Torito "no emulation" boot image: the BIOS loads it at
 * 0000:7C00 in real mode and jumps to its first byte. It prints its line on
 * COM1 through port I/O and leaves through isa-debug-exit, like the other
 * kernels.
 *
 * Bytes 8 to 63 are the boot info table an ISO writer patches in (PVD block,
 * this image's block, its length, a checksum). Before printing, the image
 * checks that the table names block 16 as the primary volume descriptor and
 * its own length as 2048 bytes; if not, it exits with the failure value
 * (0x11) without printing, so a test can tell "booted but not patched" from
 * "booted".
 *
 * Linked flat at 0x7C00 (ld --oformat binary) and padded to 2048 bytes, one
 * CD block: BIOSes load 4 virtual sectors of it.
 */
#include "common.h"

#define IMAGE_SIZE 2048
#define PVD_BLOCK 16

	.code16
	.text
	.globl	_start
_start:
	jmp	start
	.org	8
boot_info:
bi_pvd:		.long	0
bi_file:	.long	0
bi_length:	.long	0
bi_checksum:	.long	0
		.fill	40, 1, 0

start:
	cli
	/* Some BIOSes enter at 07C0:0000: use segment 0 for everything. */
	ljmp	$0, $1f
1:	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0x7C00, %sp
	cld
	cmpl	$PVD_BLOCK, bi_pvd
	jne	no_table
	cmpl	$IMAGE_SIZE, bi_length
	jne	no_table
	movw	$message, %si
	serial_puts
	finish

no_table:
	movl	$0x11, %eax
	outl	%eax, $DEBUG_EXIT_PORT
2:	hlt
	jmp	2b

message:
	KERNEL_MESSAGE("bios-cd")

	/* Pad to one CD block. */
	.org	IMAGE_SIZE - 1
	.byte	0

	.section .note.GNU-stack, "", @progbits
