/*
 * Boot headers and entry of the C test kernel (c_ktest.c): the same three
 * ways in as multiboot.S (Multiboot 1 for QEMU -kernel and GRUB's
 * `multiboot`, Multiboot 2 for GRUB's `multiboot2`), minus the PVH note,
 * since the kernel reads its command line from the Multiboot information.
 * The loader's magic (%eax) and information pointer (%ebx) are handed to
 * kmain(magic, info).
 */
#define MB1_MAGIC 0x1badb002
#define MB1_FLAGS 0
#define MB2_MAGIC 0xe85250d6
#define MB2_ARCH_I386 0
#define MB2_TAG_END 0
#define MB2_TAG_ENTRY_ADDRESS 3
#define CHECKSUM(sum) (0x100000000 - (sum))

	.section .multiboot_headers, "a"
	.balign 4
	.long	MB1_MAGIC
	.long	MB1_FLAGS
	.long	CHECKSUM(MB1_MAGIC + MB1_FLAGS)

	.balign 8
mb2_header:
	.long	MB2_MAGIC
	.long	MB2_ARCH_I386
	.long	mb2_header_end - mb2_header
	.long	CHECKSUM(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
	.balign 8
	.short	MB2_TAG_ENTRY_ADDRESS, 0
	.long	12
	.long	_start
	.balign 8
	.short	MB2_TAG_END, 0
	.long	8
mb2_header_end:

	.text
	.code32
	.globl	_start
_start:
	movl	$stack_top, %esp
	cld
	pushl	%ebx
	pushl	%eax
	call	kmain
1:	cli
	hlt
	jmp	1b

	.bss
	.balign 16
	.skip	16384
stack_top:

	.section .note.GNU-stack, "", @progbits
