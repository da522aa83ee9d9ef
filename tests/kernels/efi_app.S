/*
 * x86_64 UEFI application: the smallest thing OVMF will start from
 * \EFI\BOOT\BOOTX64.EFI (or from QEMU -kernel). Linked straight into a PE32+
 * image by GNU ld's i386pep emulation, so no objcopy or EFI headers needed.
 *
 * It talks to COM1 with port I/O instead of going through ConOut:
 * UEFI applications run at ring 0 with I/O allowed, the output is then the
 * exact same bytes as the other kernels, and nothing depends on the
 * firmware's console (which adds escape sequences and may not be on COM1).
 * Boot services are never exited; the firmware state does not matter since
 * the application never returns.
 */
#include "common.h"

	.text
	.globl	efi_main
/* efi_main(ImageHandle in %rcx, SystemTable in %rdx), Microsoft x64 ABI.
 * Neither argument is needed. */
efi_main:
	cld
	/* RIP-relative, so the image needs no base relocations. */
	leaq	message(%rip), %rsi
	serial_puts
	finish

	.section .rodata
message:
	KERNEL_MESSAGE("efi-app")

	.section .note.GNU-stack, "", @progbits
