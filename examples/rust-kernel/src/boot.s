/*
 * Entry point, reached through the PVH boot protocol: QEMU (`-kernel`)
 * finds the note below and jumps to pvh_start in 32-bit protected mode with
 * paging off. Rust code needs 64-bit long mode, so this sets up the bare
 * minimum for it (page tables, PAE, EFER.LME, a GDT) and calls kernel_main
 * with the address of the PVH start info (which holds the command line).
 * AT&T syntax because it is the least trouble for mixed 32/64-bit code.
 */

    /* PVH: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), the 32-bit
     * physical entry address. Must end up in a PT_NOTE segment. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start

    .section .text.boot, "ax", @progbits
    .code32
    .globl pvh_start
pvh_start:
    cli
    cld

    /* Loaders are not required to clear .bss, and it holds the page
     * tables, the stack and Rust's zero-initialised statics. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $boot_stack_top, %esp

    /* Identity-map the first 1 GiB with 2 MiB pages: the kernel is linked
     * at its physical address, so nothing moves when paging comes on. */
    mov $boot_pdpt, %eax
    or $0x3, %eax                   /* present, writable */
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    mov %eax, boot_pdpt
    mov $boot_pd, %edi
    mov $0x83, %eax                 /* present, writable, 2 MiB page */
    mov $512, %ecx
1:
    mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    mov $boot_pml4, %eax
    mov %eax, %cr3

    /* CR4: PAE (required for long mode), and OSFXSR + OSXMMEXCPT because
     * compiled Rust (even core) uses SSE registers. */
    mov %cr4, %eax
    or $0x620, %eax
    mov %eax, %cr4

    /* EFER.LME: long mode becomes active when paging is turned on. */
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr

    /* CR0: paging on; EM and TS off and MP on so SSE does not trap. */
    mov %cr0, %eax
    and $~0xc, %eax
    or $0x80000002, %eax
    mov %eax, %cr0

    /* Still running 32-bit code until CS holds a 64-bit descriptor. */
    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode

    .code64
long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    /* kernel_main(start_info): EBX still holds the PVH start info's
     * physical address (nothing above touches it); the 32-bit move clears
     * the upper half. boot_stack_top is 16-byte aligned, as the SysV ABI
     * wants at a call. */
    mov %ebx, %edi
    call kernel_main
2:
    cli
    hlt
    jmp 2b

    /* Writable: the CPU sets the "accessed" bit when loading a selector. */
    .section .data.boot, "aw", @progbits
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, ring 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, ring 0 */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096
    .balign 16
    .skip 64 * 1024
boot_stack_top:
