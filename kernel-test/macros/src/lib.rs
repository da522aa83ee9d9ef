//! `#[kernel_test]`: registers a function as a test of a `no_std` kernel by placing an entry for
//! it in the `kernel_tests` linker section (see the `kernel-test` crate and its PROTOCOL.md).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, ItemFn, Lit, LitStr, Meta, ReturnType, parse_macro_input};

/// Longest `expected` text (the runtime matcher keeps a window of this many bytes).
const MAX_EXPECTED: usize = 256;

/// Marks a function as a kernel test.
///
/// ```text
/// #[kernel_test]
/// fn maps_pages() { /* ... */ }
///
/// #[kernel_test(should_panic(expected = "out of frames"), timeout = "2s")]
/// fn exhausts_frames() { /* ... */ }
///
/// #[kernel_test(ignore)]
/// fn slow() { /* ... */ }
/// ```
///
/// Options (comma-separated): `should_panic`, `should_panic(expected = "text")`, `ignore`
/// (or `ignore = "reason"`), `timeout = <milliseconds>` or `timeout = "<n>ms" | "<n>s" |
/// "<n>m"`. The standard `#[should_panic]`, `#[should_panic(expected = "...")]`,
/// `#[should_panic = "..."]` and `#[ignore]` attributes after `#[kernel_test]` work as well.
///
/// The function takes no arguments and returns `()`. Its test name is its module path without
/// the crate name, then its own name: `paging::maps_pages`.
#[proc_macro_attribute]
pub fn kernel_test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.parse_option(meta));
    parse_macro_input!(args with parser);
    let mut function = parse_macro_input!(item as ItemFn);
    match expand(&mut options, &mut function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    should_panic: bool,
    expected: Option<LitStr>,
    ignore: bool,
    timeout_ms: u32,
}

impl Options {
    fn parse_option(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        if meta.path.is_ident("should_panic") {
            self.should_panic = true;
            if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("expected") {
                        self.expected = Some(inner.value()?.parse()?);
                        Ok(())
                    } else {
                        Err(inner.error("expected `expected = \"text\"`"))
                    }
                })?;
            } else if meta.input.peek(syn::Token![=]) {
                self.expected = Some(meta.value()?.parse()?);
            }
            Ok(())
        } else if meta.path.is_ident("ignore") {
            self.ignore = true;
            if meta.input.peek(syn::Token![=]) {
                let _reason: LitStr = meta.value()?.parse()?;
            }
            Ok(())
        } else if meta.path.is_ident("timeout") {
            let value: Lit = meta.value()?.parse()?;
            self.timeout_ms = parse_timeout(&value)?;
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[kernel_test] option; expected `should_panic`, \
                 `should_panic(expected = \"...\")`, `ignore` or `timeout = ...`",
            ))
        }
    }

    /// Takes in a standard `#[should_panic]` or `#[ignore]` attribute; false for any other.
    fn take_attribute(&mut self, attr: &Attribute) -> syn::Result<bool> {
        if attr.path().is_ident("should_panic") {
            self.should_panic = true;
            match &attr.meta {
                Meta::Path(_) => {}
                Meta::List(_) => attr.parse_nested_meta(|inner| {
                    if inner.path.is_ident("expected") {
                        self.expected = Some(inner.value()?.parse()?);
                        Ok(())
                    } else {
                        Err(inner.error("expected `expected = \"text\"`"))
                    }
                })?,
                Meta::NameValue(nv) => self.expected = Some(string_literal(&nv.value)?),
            }
            Ok(true)
        } else if attr.path().is_ident("ignore") {
            self.ignore = true;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

fn string_literal(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

/// `500` (milliseconds), `"500ms"`, `"30s"`, `"2m"`.
fn parse_timeout(value: &Lit) -> syn::Result<u32> {
    let bad = |span| {
        syn::Error::new(
            span,
            "timeout: expected milliseconds (`timeout = 500`) or a string such as \
             \"500ms\", \"30s\" or \"2m\"",
        )
    };
    let too_long = |span| syn::Error::new(span, "timeout: longer than u32::MAX milliseconds");
    match value {
        Lit::Int(int) => int.base10_parse::<u32>().map_err(|_| too_long(int.span())),
        Lit::Str(text) => {
            let s = text.value();
            let (digits, scale) = if let Some(d) = s.strip_suffix("ms") {
                (d, 1)
            } else if let Some(d) = s.strip_suffix('s') {
                (d, 1000)
            } else if let Some(d) = s.strip_suffix('m') {
                (d, 60_000)
            } else {
                return Err(bad(text.span()));
            };
            let digits = digits.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(text.span()));
            }
            digits
                .parse::<u32>()
                .ok()
                .and_then(|n| n.checked_mul(scale))
                .ok_or_else(|| too_long(text.span()))
        }
        other => Err(bad(other.span())),
    }
}

fn expand(options: &mut Options, function: &mut ItemFn) -> syn::Result<TokenStream2> {
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut function.attrs) {
        if !options.take_attribute(&attr)? {
            kept.push(attr);
        }
    }
    function.attrs = kept;

    let sig = &function.sig;
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "a kernel test takes no arguments",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a kernel test cannot be generic",
        ));
    }
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "a kernel test cannot be async",
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "a kernel test cannot be an unsafe fn (use an unsafe block inside)",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let unit = matches!(&**ty, syn::Type::Tuple(t) if t.elems.is_empty());
        if !unit {
            return Err(syn::Error::new_spanned(ty, "a kernel test returns `()`"));
        }
    }
    if let Some(expected) = &options.expected
        && expected.value().len() > MAX_EXPECTED
    {
        return Err(syn::Error::new(
            expected.span(),
            format!("should_panic: the expected text is longer than {MAX_EXPECTED} bytes"),
        ));
    }

    let ident = &sig.ident;
    let name = ident.to_string();
    let mut flags = quote!(0);
    if options.should_panic {
        flags = quote!(#flags | ::kernel_test::__private::FLAG_SHOULD_PANIC);
    }
    if options.ignore {
        flags = quote!(#flags | ::kernel_test::__private::FLAG_IGNORE);
    }
    let timeout_ms = options.timeout_ms;
    let (expected_ptr, expected_len) = match &options.expected {
        Some(text) => (quote!(#text.as_ptr()), quote!(#text.len())),
        None => (quote!(::core::ptr::null()), quote!(0)),
    };
    let run = syn::Ident::new(&format!("__kernel_test_run_{name}"), Span::call_site());

    Ok(quote! {
        #function

        const _: () = {
            const PATH: &str = ::core::module_path!();
            const NAME_LEN: usize = ::kernel_test::__private::test_name_len(PATH, #name);
            static NAME: [u8; NAME_LEN] =
                ::kernel_test::__private::test_name::<NAME_LEN>(PATH, #name);
            // Checks at compile time that the name is valid UTF-8.
            const _: &str = ::kernel_test::__private::as_str(
                &::kernel_test::__private::test_name::<NAME_LEN>(PATH, #name),
            );

            extern "C" fn #run() {
                #ident()
            }

            #[used]
            #[unsafe(link_section = "kernel_tests")]
            static ENTRY: ::kernel_test::__private::TestEntry =
                ::kernel_test::__private::TestEntry {
                    magic: ::kernel_test::__private::MAGIC,
                    flags: #flags,
                    timeout_ms: #timeout_ms,
                    reserved: 0,
                    name_ptr: &raw const NAME as *const u8,
                    name_len: NAME_LEN,
                    expected_ptr: #expected_ptr,
                    expected_len: #expected_len,
                    run: #run,
                };
        };
    })
}

#[cfg(test)]
mod tests {
    use syn::parse::Parser;

    use super::*;

    fn options(args: TokenStream2) -> syn::Result<Options> {
        let mut options = Options::default();
        syn::meta::parser(|meta| options.parse_option(meta)).parse2(args)?;
        Ok(options)
    }

    fn expand_str(args: TokenStream2, item: TokenStream2) -> syn::Result<String> {
        let mut options = options(args)?;
        let mut function: ItemFn = syn::parse2(item)?;
        expand(&mut options, &mut function).map(|t| t.to_string())
    }

    #[test]
    fn options_are_read() {
        let o = options(quote!(
            should_panic(expected = "boom"),
            ignore,
            timeout = "2s"
        ))
        .expect("valid");
        assert!(o.should_panic && o.ignore);
        assert_eq!(o.expected.map(|e| e.value()), Some("boom".to_owned()));
        assert_eq!(o.timeout_ms, 2000);
        assert_eq!(
            options(quote!(timeout = 750)).expect("valid").timeout_ms,
            750
        );
        assert_eq!(
            options(quote!(timeout = "3m")).expect("valid").timeout_ms,
            180_000
        );
        assert_eq!(
            options(quote!(timeout = "40ms")).expect("valid").timeout_ms,
            40
        );
        assert!(
            options(quote!(should_panic = "x"))
                .expect("valid")
                .expected
                .is_some()
        );
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        let error = |args| {
            options(args)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(error(quote!(timeout = "2h")).contains("\"30s\""));
        assert!(error(quote!(timeout = "s")).contains("timeout"));
        assert!(error(quote!(timeout = 99999999999)).contains("u32::MAX"));
        assert!(error(quote!(timeout = "9999999m")).contains("u32::MAX"));
        assert!(error(quote!(should_panic(wanted = "x"))).contains("expected = "));
        assert!(error(quote!(serial)).contains("unknown #[kernel_test] option"));
    }

    #[test]
    fn standard_attributes_are_taken_in_and_removed() {
        let out = expand_str(
            quote!(),
            quote!(
                #[ignore]
                #[should_panic(expected = "bad")]
                #[inline(never)]
                fn t() {}
            ),
        )
        .expect("expands");
        assert!(
            out.contains("FLAG_SHOULD_PANIC") && out.contains("FLAG_IGNORE"),
            "{out}"
        );
        assert!(out.contains("\"bad\" . as_ptr ()"), "{out}");
        assert!(
            out.contains("# [inline (never)]"),
            "other attributes stay: {out}"
        );
        assert!(!out.contains("# [ignore]"), "{out}");
        assert!(out.contains("link_section = \"kernel_tests\""), "{out}");
    }

    #[test]
    fn functions_a_test_cannot_be_are_refused() {
        let error = |item| expand_str(quote!(), item).err().map(|e| e.to_string());
        assert_eq!(
            error(quote!(
                fn t(x: u8) {}
            ))
            .as_deref(),
            Some("a kernel test takes no arguments")
        );
        assert_eq!(
            error(quote!(
                fn t<T>() {}
            ))
            .as_deref(),
            Some("a kernel test cannot be generic")
        );
        assert_eq!(
            error(quote!(
                async fn t() {}
            ))
            .as_deref(),
            Some("a kernel test cannot be async")
        );
        assert!(
            error(quote!(
                unsafe fn t() {}
            ))
            .is_some()
        );
        assert_eq!(
            error(quote!(
                fn t() -> u32 {
                    1
                }
            ))
            .as_deref(),
            Some("a kernel test returns `()`")
        );
        assert_eq!(
            error(quote!(
                fn t() -> () {}
            )),
            None
        );
        let long = "x".repeat(MAX_EXPECTED + 1);
        assert!(
            expand_str(
                quote!(should_panic(expected = #long)),
                quote!(
                    fn t() {}
                )
            )
            .expect_err("too long")
            .to_string()
            .contains("longer than 256")
        );
    }
}
