/*
 * x86_64 UEFI application that prints its load options (the arguments a
 * UEFI shell passes, as UTF-16) on COM1 as one line "ARGS: <text>", each
 * character above 0x7e written as '?', then leaves QEMU like the other
 * kernels (isa-debug-exit). Linked like efi_app.S by GNU ld's i386pep
 * emulation; everything is RIP-relative, so it needs no base relocations.
 */
#include "common.h"

/* Offsets in the UEFI tables (UEFI 2.x, 64-bit). */
#define ST_BOOT_SERVICES	96	/* EFI_SYSTEM_TABLE.BootServices */
#define BS_HANDLE_PROTOCOL	152	/* EFI_BOOT_SERVICES.HandleProtocol */
#define LI_OPTIONS_SIZE		48	/* EFI_LOADED_IMAGE_PROTOCOL.LoadOptionsSize */
#define LI_OPTIONS		56	/* EFI_LOADED_IMAGE_PROTOCOL.LoadOptions */

	.text
	.globl	efi_main
/* efi_main(ImageHandle in %rcx, SystemTable in %rdx), Microsoft x64 ABI. */
efi_main:
	cld
	pushq	%rbx			/* the stack is now 16-byte aligned */
	subq	$48, %rsp		/* 32 bytes of shadow space + the out slot */
	movq	$0, 32(%rsp)
	/* HandleProtocol(ImageHandle, &EFI_LOADED_IMAGE_PROTOCOL_GUID, &slot) */
	movq	ST_BOOT_SERVICES(%rdx), %rax
	leaq	loaded_image_guid(%rip), %rdx
	leaq	32(%rsp), %r8
	call	*BS_HANDLE_PROTOCOL(%rax)

	leaq	prefix(%rip), %rsi
	serial_puts

	movq	32(%rsp), %rax
	testq	%rax, %rax
	jz	9f
	movl	LI_OPTIONS_SIZE(%rax), %ecx
	shrl	$1, %ecx		/* UTF-16 code units */
	movq	LI_OPTIONS(%rax), %rbx
	testq	%rbx, %rbx
	jz	9f
6:	testl	%ecx, %ecx
	jz	9f
	movzwl	(%rbx), %eax
	testl	%eax, %eax
	jz	9f
	cmpl	$0x7e, %eax
	jbe	7f
	movl	$'?', %eax
7:	movb	%al, %ah
	movw	$COM1_LSR, %dx
8:	inb	%dx, %al		/* wait until the transmitter can take a byte */
	testb	$LSR_THRE, %al
	jz	8b
	movb	%ah, %al
	movw	$COM1_DATA, %dx
	outb	%al, %dx
	addq	$2, %rbx
	decl	%ecx
	jmp	6b
9:
	leaq	suffix(%rip), %rsi
	serial_puts
	leaq	message(%rip), %rsi
	serial_puts
	finish

	.section .rodata
	.balign	8
loaded_image_guid:
	.long	0x5B1B31A1
	.word	0x9562, 0x11d2
	.byte	0x8E, 0x3F, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B
prefix:
	.asciz	"\nARGS: "
suffix:
	.asciz	"\n"
message:
	KERNEL_MESSAGE("efi-args")

	.section .note.GNU-stack, "", @progbits
