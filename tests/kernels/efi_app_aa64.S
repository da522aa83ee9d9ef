/*
 * AArch64 UEFI application for QEMU's `virt` machine: the smallest thing
 * AAVMF (edk2 for ARM) starts from \EFI\BOOT\BOOTAA64.EFI.
 *
 * GNU ld has no AArch64 PE emulation, so build.rs links an ELF with
 * efi_app_aa64.ld and converts it with `objcopy -O pei-aarch64-little
 * --subsystem efi-app` (binutils 2.38 or later).
 *
 * Like the x86_64 application it bypasses ConOut and writes the plain bytes
 * of its line straight to the UART, here virt's PL011 at 0x09000000: the
 * firmware maps it (it is its own serial console), and the output is then
 * the same bytes as the other kernels print, without UTF-16 or escape
 * sequences. There is no isa-debug-exit on ARM: pass and fail leave QEMU
 * through the semihosting SYS_EXIT call, which needs
 * `-semihosting-config enable=on,target=native`. Without it the `hlt` is an
 * undefined instruction; AAVMF then reports a "Synchronous Exception" and
 * stops, and QEMU never exits by itself.
 */
#include "cross_common.h"

#define PL011_BASE	0x09000000	/* first UART of QEMU virt */
#define PL011_DR	0x00		/* data register */
#define PL011_FR	0x18		/* flag register */
#define PL011_FR_TXFF	5		/* bit: transmit FIFO full */

#define SYS_EXIT			0x18
#define ADP_STOPPED_APPLICATION_EXIT	0x20026

	.text
	.globl	efi_main
/* efi_main(ImageHandle in x0, SystemTable in x1), AAPCS64. Neither is
 * needed. Everything is addressed PC-relative, so the image needs no base
 * relocations and runs wherever the firmware loads it. */
efi_main:
	adr	x0, message
	mov	x1, PL011_BASE
1:	ldrb	w2, [x0], 1
	cbz	w2, 3f
2:	ldr	w3, [x1, PL011_FR]	/* wait for room in the FIFO */
	tbnz	w3, PL011_FR_TXFF, 2b
	str	w2, [x1, PL011_DR]
	b	1b
3:
#ifdef EXIT_STATUS
	/* AArch64 SYS_EXIT takes a parameter block {reason, subcode}; for
	 * ADP_Stopped_ApplicationExit QEMU exits with the subcode as status. */
	mov	w0, SYS_EXIT
	adr	x1, exit_block
	hlt	0xf000
#endif
	/* Hang quietly: mask interrupts and stop the timers so neither the
	 * firmware's timer tick nor its 5-minute boot watchdog (which would
	 * reset the machine) ever runs again, and wfi really sleeps. */
	msr	daifset, 0xf
	msr	cntp_ctl_el0, xzr
	msr	cntv_ctl_el0, xzr
	isb
4:	wfi
	b	4b

	.section .rodata
	.balign	8
exit_block:
#ifdef EXIT_STATUS
	.quad	ADP_STOPPED_APPLICATION_EXIT, EXIT_STATUS
#endif
message:
	KERNEL_MESSAGE("efi-app-aa64")

/*
 * One empty base relocation block ({page RVA 0, block size 8}, no entries).
 * It becomes the PE .reloc section; without one objcopy marks the image
 * "relocations stripped", and firmware may then only load it at its image
 * base (0 here), which edk2 refuses.
 */
	.section .reloc, "a"
	.balign	4
	.long	0, 8
