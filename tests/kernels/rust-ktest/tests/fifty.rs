//! Fifty small, quick, passing tests (`quick::t00` ... `quick::t49`): a benchmark of one boot
//! per test against one boot for all. Expected outcome: every test ok.

#![no_std]
#![no_main]

rust_ktest::test_kernel!();

mod quick {
    use core::hint::black_box;

    use kernel_test::kernel_test;

    macro_rules! quick_tests {
        ($($name:ident = $n:literal),* $(,)?) => {$(
            #[kernel_test]
            fn $name() {
                // Sum of 0..=n computed two ways.
                let n: u64 = black_box($n);
                let looped: u64 = (0..=n).sum();
                assert_eq!(looped, n * (n + 1) / 2);
            }
        )*};
    }

    quick_tests!(
        t00 = 0,
        t01 = 1,
        t02 = 2,
        t03 = 3,
        t04 = 4,
        t05 = 5,
        t06 = 6,
        t07 = 7,
        t08 = 8,
        t09 = 9,
        t10 = 10,
        t11 = 11,
        t12 = 12,
        t13 = 13,
        t14 = 14,
        t15 = 15,
        t16 = 16,
        t17 = 17,
        t18 = 18,
        t19 = 19,
        t20 = 20,
        t21 = 21,
        t22 = 22,
        t23 = 23,
        t24 = 24,
        t25 = 25,
        t26 = 26,
        t27 = 27,
        t28 = 28,
        t29 = 29,
        t30 = 30,
        t31 = 31,
        t32 = 32,
        t33 = 33,
        t34 = 34,
        t35 = 35,
        t36 = 36,
        t37 = 37,
        t38 = 38,
        t39 = 39,
        t40 = 40,
        t41 = 41,
        t42 = 42,
        t43 = 43,
        t44 = 44,
        t45 = 45,
        t46 = 46,
        t47 = 47,
        t48 = 48,
        t49 = 49,
    );
}
