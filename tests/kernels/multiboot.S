/*
 * 32-bit test kernel that every x86 "load an ELF and jump" loader accepts:
 * it carries a Multiboot 1 header (QEMU -kernel, GRUB, Limine), a
 * Multiboot 2 header (GRUB, Limine) and a Xen PVH note (QEMU -kernel,
 * cloud hypervisors), so one fixture covers all of those boot paths.
 *
 * QEMU -kernel prefers Multiboot 1 when both it and the PVH note are present.
 * All three protocols enter in 32-bit protected mode with flat segments and
 * paging off; only the stack is ours to provide. The register contents the
 * protocols hand over (magic, info pointer) are not needed.
 */
#include "common.h"

#define MB1_MAGIC 0x1badb002
/*
 * No flags: ELF kernels take load addresses from their program headers, and
 * no memory map or video mode is needed. The video bit would let Limine
 * boot this as Multiboot 1 on UEFI (it refuses text mode there), but QEMU
 * -kernel then warns on stderr; Limine's Multiboot 2 works on UEFI anyway.
 */
#define MB1_FLAGS 0

#define MB2_MAGIC 0xe85250d6
#define MB2_ARCH_I386 0
#define MB2_TAG_END 0
#define MB2_TAG_ENTRY_ADDRESS 3

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Checksums are "sum of the fields is 0 mod 2^32"; spelled positive to
 * keep the assembler from warning about truncation. */
#define CHECKSUM(sum) (0x100000000 - (sum))

	/* Placed first by multiboot.ld: loaders only search the start of
	 * the file (8 KiB for Multiboot 1, 32 KiB for Multiboot 2). */
	.section .multiboot_headers, "a"
	.balign 4
mb1_header:
	.long	MB1_MAGIC
	.long	MB1_FLAGS
	.long	CHECKSUM(MB1_MAGIC + MB1_FLAGS)

	.balign 8
mb2_header:
	.long	MB2_MAGIC
	.long	MB2_ARCH_I386
	.long	mb2_header_end - mb2_header
	.long	CHECKSUM(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
	/* Tags are 8-byte aligned. The entry tag is redundant with the ELF
	 * entry point but makes the intent explicit to every loader. */
	.balign 8
	.short	MB2_TAG_ENTRY_ADDRESS, 0
	.long	12
	.long	_start
	.balign 8
	.short	MB2_TAG_END, 0
	.long	8
mb2_header_end:

	/* PVH: QEMU and others find this through the PT_NOTE program
	 * header and enter at the 32-bit physical address it holds. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4			/* name size, including the NUL */
	.long	4			/* descriptor size */
	.long	XEN_ELFNOTE_PHYS32_ENTRY
	.asciz	"Xen"
	.balign 4
	.long	_start

	.text
	.code32
	.globl	_start
_start:
	movl	$stack_top, %esp
	cld
	movl	$message, %esi
	serial_puts
#if defined(VARIANT_TRIPLE)
	/* An exception with an empty IDT faults again, then double-faults: the CPU resets. */
	lidt	null_idt
	int3
#elif defined(VARIANT_INPUT)
	movl	$prompt, %esi
	serial_puts
	serial_getc
	movl	$0x11, %ecx
	cmpb	$'y', %al
	jne	6f
	movl	$0x10, %ecx
6:	movl	%ecx, %eax
	outl	%eax, $DEBUG_EXIT_PORT
#elif defined(VARIANT_POWEROFF)
	/* ACPI soft-off: SLP_EN with sleep type 0 in the PM1a control register, which the
	 * firmware puts at 0x604 on QEMU's q35 (ICH9) and pc (PIIX4) machines. */
	movw	$0x2000, %ax
	movw	$0x604, %dx
	outw	%ax, %dx
#endif
	finish

	.section .rodata
message:
	KERNEL_MESSAGE("multiboot")
#if defined(VARIANT_TRIPLE)
	.balign 8
null_idt:
	.word	0
	.long	0
#elif defined(VARIANT_INPUT)
prompt:
	.asciz	"login: "
#endif

	.bss
	.balign 16
	.skip	16384
stack_top:

	.section .note.GNU-stack, "", @progbits
