/*
 * A test kernel written in C that speaks the kernel test protocol
 * (kernel-test/PROTOCOL.md) without the kernel-test crate: a 32-bit
 * Multiboot 1/2 kernel, so its test table is the ELF32 layout (W = 4,
 * 36-byte entries).
 *
 * Tests, in section order (the index names a test in `ktest=` and in the
 * KTEST lines):
 *
 *   0 c::adds            passes
 *   1 c::fails           panics: "assertion failed: 1 + 1 == 3"
 *   2 c::hangs           timeout_ms 1000; spins with interrupts off
 *   3 c::ignored         flagged ignore; would pass
 *   4 c::panics_expected should_panic, expects "boom"; panics "boom in C"
 *   5 c::then_runs       passes (runs after the hang, in a second boot)
 *
 * The request comes from the Multiboot command line (Multiboot 1: info
 * flags bit 2, cmdline at offset 16; Multiboot 2: tag type 1), the lines go
 * to COM1, and the kernel leaves QEMU through isa-debug-exit (0x10 when
 * every requested test passed, else 0x11).
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define KTEST_MAGIC 0x4B540001u
#define KTEST_SHOULD_PANIC 1u
#define KTEST_IGNORE 2u

#define MB1_BOOT_MAGIC 0x2BADB002u
#define MB1_INFO_CMDLINE 4u
#define MB2_BOOT_MAGIC 0x36D76289u
#define MB2_TAG_CMDLINE 1u

#define COM1_DATA 0x3f8
#define COM1_LSR 0x3fd
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xf4

/* One entry of the `kernel_tests` section, ELF32 layout (36 bytes). */
struct ktest {
    u32 magic;
    u32 flags;
    u32 timeout_ms;
    u32 reserved;
    const char *name;
    u32 name_len;
    const char *expected;
    u32 expected_len;
    void (*run)(void);
};

_Static_assert(sizeof(struct ktest) == 36, "ELF32 entry size");

static void adds(void);
static void fails(void);
static void hangs(void);
static void ignored(void);
static void panics_expected(void);
static void then_runs(void);

#define STR_LEN(s) (sizeof(s) - 1)
#define TEST(nm, fl, timeout, fn) { KTEST_MAGIC, fl, timeout, 0, nm, STR_LEN(nm), 0, 0, fn }
#define SHOULD_PANIC(nm, exp, fn) \
    { KTEST_MAGIC, KTEST_SHOULD_PANIC, 0, 0, nm, STR_LEN(nm), exp, STR_LEN(exp), fn }

/* One array, so the entries keep this order in the section. */
__attribute__((used, section("kernel_tests"), aligned(4)))
static const struct ktest tests[] = {
    TEST("c::adds", 0, 0, adds),
    TEST("c::fails", 0, 0, fails),
    TEST("c::hangs", 0, 1000, hangs),
    TEST("c::ignored", KTEST_IGNORE, 0, ignored),
    SHOULD_PANIC("c::panics_expected", "boom", panics_expected),
    TEST("c::then_runs", 0, 0, then_runs),
};

extern const struct ktest __start_kernel_tests[];
extern const struct ktest __stop_kernel_tests[];

/* ---- port I/O and serial output ---- */

static inline void outb(u16 port, u8 value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(u16 port, u32 value) {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline u8 inb(u16 port) {
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static void putc(char c) {
    while (!(inb(COM1_LSR) & LSR_THRE)) {
    }
    outb(COM1_DATA, (u8)c);
}

static void puts(const char *s) {
    while (*s) {
        putc(*s++);
    }
}

static void put_bytes(const char *s, u32 len) {
    for (u32 i = 0; i < len; i++) {
        putc(s[i]);
    }
}

static void put_u32(u32 n) {
    char digits[10];
    int i = 0;
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (i) {
        putc(digits[--i]);
    }
}

/* A message on one line: `\` as `\\`, newline as `\n`, CR as `\r`, other
 * control characters as `\xHH`. */
static void put_escaped(const char *s) {
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        u8 c = (u8)*s;
        if (c == '\\') {
            puts("\\\\");
        } else if (c == '\n') {
            puts("\\n");
        } else if (c == '\r') {
            puts("\\r");
        } else if (c < 0x20 || c == 0x7f) {
            puts("\\x");
            putc(hex[c >> 4]);
            putc(hex[c & 15]);
        } else {
            putc((char)c);
        }
    }
}

/* `KTEST <word> <index>` and, if `rest`, a space and `rest` escaped. */
static void ktest_line(const char *word, u32 index, const char *rest) {
    puts("KTEST ");
    puts(word);
    putc(' ');
    put_u32(index);
    if (rest) {
        putc(' ');
        put_escaped(rest);
    }
    putc('\n');
}

static __attribute__((noreturn)) void qemu_exit(u32 value) {
    outl(DEBUG_EXIT_PORT, value);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

/* ---- running tests ---- */

/* Where a panic in the running test returns to (GCC's builtin setjmp
 * buffer: five words, no C library needed). */
static void *panic_jump[5];
static const char *panic_message;
static int failures;

static __attribute__((noreturn)) void kpanic(const char *message) {
    panic_message = message;
    __builtin_longjmp(panic_jump, 1);
}

static int contains(const char *hay, const char *needle, u32 needle_len) {
    for (; *hay; hay++) {
        u32 i = 0;
        while (i < needle_len && hay[i] == needle[i]) {
            i++;
        }
        if (i == needle_len) {
            return 1;
        }
    }
    return needle_len == 0;
}

static __attribute__((noinline)) int run_guarded(void (*run)(void)) {
    if (__builtin_setjmp(panic_jump)) {
        return 1;
    }
    run();
    return 0;
}

static void run_test(u32 index) {
    const struct ktest *t = &__start_kernel_tests[index];
    puts("KTEST start ");
    put_u32(index);
    putc(' ');
    put_bytes(t->name, t->name_len);
    putc('\n');

    int panicked = run_guarded(t->run);
    int should_panic = (t->flags & KTEST_SHOULD_PANIC) != 0;
    if (panicked) {
        ktest_line("panic", index, panic_message);
    }
    if (!should_panic && !panicked) {
        ktest_line("ok", index, 0);
    } else if (!should_panic) {
        ktest_line("failed", index, 0);
        failures++;
    } else if (!panicked) {
        ktest_line("failed", index, "test did not panic as expected");
        failures++;
    } else if (t->expected && !contains(panic_message, t->expected, t->expected_len)) {
        ktest_line("failed", index, "panic did not contain expected string");
        failures++;
    } else {
        ktest_line("ok", index, 0);
    }
}

/* ---- the request ---- */

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* The number at *p, advancing *p past it; -1 when there is none. */
static int parse_number(const char **p) {
    const char *s = *p;
    if (!is_digit(*s)) {
        return -1;
    }
    u32 n = 0;
    while (is_digit(*s)) {
        n = n * 10 + (u32)(*s++ - '0');
    }
    *p = s;
    return (int)n;
}

/* The value of the `ktest=` token of the command line, or 0. */
static const char *find_request(const char *cmdline) {
    static const char key[] = "ktest=";
    for (const char *s = cmdline; s && *s; s++) {
        if (s == cmdline || s[-1] == ' ') {
            u32 i = 0;
            while (i < STR_LEN(key) && s[i] == key[i]) {
                i++;
            }
            if (i == STR_LEN(key)) {
                return s + i;
            }
        }
    }
    return 0;
}

/*
 * Walks the items of `request` (`7`, `3-9`, comma-separated). With `run`
 * zero it only counts the tests; otherwise it runs them. Returns the count,
 * or -1 for a malformed request or an index past the table.
 */
static int walk_request(const char *request, u32 count, int run) {
    const char *p = request;
    int total = 0;
    while (*p && *p != ' ') {
        int first = parse_number(&p);
        int last = first;
        if (*p == '-') {
            p++;
            last = parse_number(&p);
        }
        if (first < 0 || last < first || (u32)last >= count) {
            return -1;
        }
        for (int i = first; i <= last; i++) {
            if (run) {
                run_test((u32)i);
            }
            total++;
        }
        if (*p == ',') {
            p++;
        } else if (*p && *p != ' ') {
            return -1;
        }
    }
    return total;
}

/* The command line from the Multiboot 1 or 2 information, or 0. */
static const char *boot_cmdline(u32 magic, const u8 *info) {
    if (magic == MB1_BOOT_MAGIC) {
        u32 flags = *(const u32 *)info;
        if (flags & MB1_INFO_CMDLINE) {
            return (const char *)*(const u32 *)(info + 16);
        }
    } else if (magic == MB2_BOOT_MAGIC) {
        u32 total = *(const u32 *)info;
        for (u32 off = 8; off + 8 <= total;) {
            u32 type = *(const u32 *)(info + off);
            u32 size = *(const u32 *)(info + off + 4);
            if (type == 0) {
                break;
            }
            if (type == MB2_TAG_CMDLINE) {
                return (const char *)(info + off + 8);
            }
            off += (size + 7) & ~7u;
        }
    }
    return 0;
}

void kmain(u32 magic, const u8 *info);

void kmain(u32 magic, const u8 *info) {
    u32 count = (u32)(__stop_kernel_tests - __start_kernel_tests);
    const char *request = find_request(boot_cmdline(magic, info));

    putc('\n');
    if (request) {
        int total = walk_request(request, count, 0);
        if (total < 0) {
            puts("bad ktest= request: ");
            put_escaped(request);
            putc('\n');
            qemu_exit(0x11);
        }
        puts("KTEST begin 1 ");
        put_u32((u32)total);
        putc('\n');
        walk_request(request, count, 1);
    } else {
        puts("KTEST begin 1 ");
        put_u32(count);
        putc('\n');
        for (u32 i = 0; i < count; i++) {
            if (__start_kernel_tests[i].flags & KTEST_IGNORE) {
                ktest_line("ignored", i, 0);
            } else {
                run_test(i);
            }
        }
    }
    puts("KTEST done\n");
    qemu_exit(failures ? 0x11 : 0x10);
}

/* ---- the tests ---- */

/* Values the compiler cannot fold, so the checks run at run time. */
static volatile u32 one = 1;
static volatile u32 two = 2;

static void adds(void) {
    if (one + one != two) {
        kpanic("assertion failed: 1 + 1 == 2");
    }
    puts("1 + 1 = ");
    put_u32(one + one);
    putc('\n');
}

static void fails(void) {
    if (one + one != 3) {
        kpanic("assertion failed: 1 + 1 == 3");
    }
}

static void hangs(void) {
    __asm__ volatile("cli");
    for (;;) {
        __asm__ volatile("" ::: "memory");
    }
}

static void ignored(void) {
}

static void panics_expected(void) {
    if (one) {
        kpanic("boom in C");
    }
}

static void then_runs(void) {
    if (two - one != one) {
        kpanic("assertion failed: 2 - 1 == 1");
    }
}
