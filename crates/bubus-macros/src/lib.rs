//! Derive macros for [`bubus`](https://docs.rs/bubus).
//!
//! This crate is re-exported by `bubus` behind its default `macros` feature; depend on `bubus`
//! and write `#[derive(bubus::Event)]` rather than using this crate directly.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{
    Data, DeriveInput, Expr, ExprLit, ExprUnary, Fields, Lit, LitStr, Meta, Token, Type, UnOp,
    parse::ParseStream, parse_macro_input, spanned::Spanned,
};

/// Payload keys the reference runtimes reserve for their own API (`event.bus`, `event.first()`, and
/// the TypeScript object protocol). A field with one of these names could not cross into Python or
/// TypeScript, so it is rejected at compile time.
const RESERVED_FIELDS: &[&str] = &["bus", "first", "toString", "toJSON", "fromJSON"];

/// Derives [`bubus::Event`](https://docs.rs/bubus/latest/bubus/trait.Event.html) for a serde struct.
///
/// ```ignore
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, bubus::Event)]
/// #[event(result = String, name = "UserLoginEvent", version = "1.0.0", timeout = 30.0)]
/// struct UserLoginEvent {
///     username: String,
///     is_admin: bool,
/// }
/// ```
///
/// Every attribute key is optional:
///
/// | key | meaning | default |
/// | --- | --- | --- |
/// | `result = T` | the type every handler of this event returns | `()` |
/// | `name = "..."` | the `event_type` string on the wire and in patterns | the struct's name |
/// | `version = "..."` | `event_version` | `"0.0.1"` |
/// | `timeout = secs` | default `event_timeout` | unset (the bus decides) |
/// | `slow_timeout = secs` | default `event_slow_timeout` | unset |
/// | `handler_timeout = secs` | default `event_handler_timeout` | unset |
/// | `handler_slow_timeout = secs` | default `event_handler_slow_timeout` | unset |
///
/// A timeout is a number of seconds as a literal (`30`, `0.5`), as the reference runtimes write
/// it, or any constant expression of type `std::time::Duration`
/// (`timeout = Duration::from_millis(500)`).
/// | `concurrency = "global-serial" \| "bus-serial" \| "parallel"` | default `event_concurrency` | unset |
/// | `handler_concurrency = "serial" \| "parallel"` | default `event_handler_concurrency` | unset |
/// | `handler_completion = "all" \| "first"` | default `event_handler_completion` | unset |
///
/// Field names starting with `event_` or `model_`, and the names `bus`, `first`, `toString`,
/// `toJSON` and `fromJSON`, are rejected: the Python and TypeScript runtimes reserve them.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

#[derive(Default)]
struct EventArgs {
    result: Option<Type>,
    name: Option<LitStr>,
    version: Option<LitStr>,
    timeout: Option<TokenStream2>,
    slow_timeout: Option<TokenStream2>,
    handler_timeout: Option<TokenStream2>,
    handler_slow_timeout: Option<TokenStream2>,
    concurrency: Option<TokenStream2>,
    handler_concurrency: Option<TokenStream2>,
    handler_completion: Option<TokenStream2>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let args = parse_args(input)?;
    check_fields(input)?;

    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let result = args
        .result
        .map(|ty| quote!(#ty))
        .unwrap_or_else(|| quote!(()));
    let name = match args.name {
        Some(name) => {
            if name.value().is_empty() {
                return Err(syn::Error::new(name.span(), "event name must not be empty"));
            }
            name
        }
        None => LitStr::new(&ident.to_string(), ident.span()),
    };
    let version = args
        .version
        .map(|v| quote!(const EVENT_VERSION: &'static str = #v;));

    let opt = |value: Option<TokenStream2>| match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let shallow = shallow_payload(input);
    let timeout = opt(args.timeout);
    let slow_timeout = opt(args.slow_timeout);
    let handler_timeout = opt(args.handler_timeout);
    let handler_slow_timeout = opt(args.handler_slow_timeout);
    let concurrency = opt(args.concurrency);
    let handler_concurrency = opt(args.handler_concurrency);
    let handler_completion = opt(args.handler_completion);

    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::bubus::Event for #ident #ty_generics #where_clause {
            type Result = #result;
            const EVENT_TYPE: &'static str = #name;
            #version
            const EVENT_DEFAULTS: ::bubus::event::EventConfig = ::bubus::event::EventConfig::UNSET
                .with_event_timeout(#timeout)
                .with_event_slow_timeout(#slow_timeout)
                .with_event_concurrency(#concurrency)
                .with_event_handler_timeout(#handler_timeout)
                .with_event_handler_slow_timeout(#handler_slow_timeout)
                .with_event_handler_concurrency(#handler_concurrency)
                .with_event_handler_completion(#handler_completion);

            fn __result_schema() -> ::core::option::Option<::bubus::__private::Value> {
                #[allow(unused_imports)]
                use ::bubus::__private::{NoSchema as _, ViaJsonSchema as _};
                (&::bubus::__private::SchemaProbe::<#result>::new()).result_schema()
            }

            #shallow
        }
    })
}

/// `const __SHALLOW_PAYLOAD` for a struct whose JSON cannot nest (see the `Event` trait): no
/// generics, no serde attribute that changes how the struct or a field is written, and every
/// field's type a scalar (`ShallowProbe`, resolved by the compiler). Nothing (the trait's
/// `false`) otherwise.
fn shallow_payload(input: &DeriveInput) -> TokenStream2 {
    // Serde attributes that leave each field written as its type writes it.
    const KEEPS_SHAPE: &[&str] = &[
        "rename",
        "rename_all",
        "alias",
        "default",
        "deny_unknown_fields",
        "skip",
        "skip_serializing",
        "skip_deserializing",
        "skip_serializing_if",
    ];
    let keeps_shape = |attrs: &[syn::Attribute]| {
        attrs
            .iter()
            .filter(|a| a.path().is_ident("serde"))
            .all(|attr| {
                let Meta::List(list) = &attr.meta else {
                    return false;
                };
                list.parse_nested_meta(|meta| {
                    if KEEPS_SHAPE.iter().any(|k| meta.path.is_ident(k)) {
                        if let Ok(value) = meta.value() {
                            value.parse::<Expr>()?;
                        }
                        Ok(())
                    } else {
                        Err(meta.error("changes the shape"))
                    }
                })
                .is_ok()
            })
    };
    let Data::Struct(data) = &input.data else {
        return TokenStream2::new();
    };
    if !input.generics.params.is_empty() || !keeps_shape(&input.attrs) {
        return TokenStream2::new();
    }
    let mut types = Vec::new();
    for field in &data.fields {
        if !keeps_shape(&field.attrs) {
            return TokenStream2::new();
        }
        types.push(&field.ty);
    }
    quote! {
        const __SHALLOW_PAYLOAD: bool = {
            #[allow(unused_imports)]
            use ::bubus::__private::NotShallow as _;
            true #(&& ::bubus::__private::ShallowProbe::<#types>::SHALLOW)*
        };
    }
}

fn parse_args(input: &DeriveInput) -> syn::Result<EventArgs> {
    let mut args = EventArgs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_args_with(|stream: ParseStream<'_>| {
            loop {
                if stream.is_empty() {
                    break;
                }
                let key: syn::Ident = stream.parse()?;
                stream.parse::<Token![=]>()?;
                match key.to_string().as_str() {
                    "result" => set(&mut args.result, stream.parse::<Type>()?, &key)?,
                    "name" => set(&mut args.name, stream.parse::<LitStr>()?, &key)?,
                    "version" => set(&mut args.version, stream.parse::<LitStr>()?, &key)?,
                    "timeout" => set(&mut args.timeout, seconds(stream)?, &key)?,
                    "slow_timeout" => set(&mut args.slow_timeout, seconds(stream)?, &key)?,
                    "handler_timeout" => set(&mut args.handler_timeout, seconds(stream)?, &key)?,
                    "handler_slow_timeout" => {
                        set(&mut args.handler_slow_timeout, seconds(stream)?, &key)?
                    }
                    "concurrency" => set(
                        &mut args.concurrency,
                        mode(
                            stream,
                            "EventConcurrency",
                            &[
                                ("global-serial", "GlobalSerial"),
                                ("bus-serial", "BusSerial"),
                                ("parallel", "Parallel"),
                            ],
                        )?,
                        &key,
                    )?,
                    "handler_concurrency" => set(
                        &mut args.handler_concurrency,
                        mode(
                            stream,
                            "HandlerConcurrency",
                            &[("serial", "Serial"), ("parallel", "Parallel")],
                        )?,
                        &key,
                    )?,
                    "handler_completion" => set(
                        &mut args.handler_completion,
                        mode(
                            stream,
                            "HandlerCompletion",
                            &[("all", "All"), ("first", "First")],
                        )?,
                        &key,
                    )?,
                    other => {
                        return Err(syn::Error::new(
                            key.span(),
                            format!(
                                "unknown #[event] key `{other}`; expected one of: result, name, \
                                 version, timeout, slow_timeout, handler_timeout, \
                                 handler_slow_timeout, concurrency, handler_concurrency, \
                                 handler_completion"
                            ),
                        ));
                    }
                }
                if stream.is_empty() {
                    break;
                }
                stream.parse::<Token![,]>()?;
            }
            Ok(())
        })?;
    }
    Ok(args)
}

fn set<T>(slot: &mut Option<T>, value: T, key: &syn::Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("duplicate #[event] key `{key}`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// A timeout: a non-negative number of seconds written as an integer or float literal, turned
/// into a `Duration` here; any other expression is passed through as a constant `Duration`.
fn seconds(stream: ParseStream<'_>) -> syn::Result<TokenStream2> {
    let expr: Expr = stream.parse()?;
    let (lit, negative) = match &expr {
        Expr::Lit(ExprLit { lit, .. }) => (lit, false),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit { lit, .. }) => (lit, true),
            _ => return Err(syn::Error::new(expr.span(), "expected a number of seconds")),
        },
        _ => return Ok(quote!(#expr)),
    };
    let value: f64 = match lit {
        Lit::Float(f) => f.base10_parse()?,
        Lit::Int(i) => i.base10_parse::<u64>()? as f64,
        _ => return Err(syn::Error::new(lit.span(), "expected a number of seconds")),
    };
    if negative || !value.is_finite() {
        return Err(syn::Error::new(
            expr.span(),
            "timeouts must be finite and not negative",
        ));
    }
    // Whole nanoseconds, as `Duration::from_secs_f64` rounds them.
    let nanos = (value * 1e9).round();
    if nanos >= u64::MAX as f64 {
        return Err(syn::Error::new(expr.span(), "timeout too large"));
    }
    let nanos = nanos as u64;
    let secs = nanos / 1_000_000_000;
    let subsec = (nanos % 1_000_000_000) as u32;
    Ok(quote!(::core::time::Duration::new(#secs, #subsec)))
}

fn mode(
    stream: ParseStream<'_>,
    enum_name: &str,
    variants: &[(&str, &str)],
) -> syn::Result<TokenStream2> {
    let lit: LitStr = stream.parse()?;
    let value = lit.value();
    let Some((_, variant)) = variants.iter().find(|(wire, _)| *wire == value) else {
        let expected: Vec<String> = variants.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        return Err(syn::Error::new(
            lit.span(),
            format!("expected one of {}", expected.join(", ")),
        ));
    };
    let enum_ident = syn::Ident::new(enum_name, Span::call_site());
    let variant_ident = syn::Ident::new(variant, Span::call_site());
    Ok(quote!(::bubus::event::#enum_ident::#variant_ident))
}

fn check_fields(input: &DeriveInput) -> syn::Result<()> {
    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(_) | Data::Union(_) => {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Event)] needs a struct: an event's payload is a JSON object",
            ));
        }
    };
    let Fields::Named(named) = fields else {
        if matches!(fields, Fields::Unit) {
            return Ok(());
        }
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Event)] needs named fields (or none): an event's payload is a JSON object",
        ));
    };
    for field in &named.named {
        let Some(ident) = &field.ident else { continue };
        let mut wire_name = ident.to_string();
        if let Some(stripped) = wire_name.strip_prefix("r#") {
            wire_name = stripped.to_owned();
        }
        let mut flattened = false;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            if let Meta::List(list) = &attr.meta {
                // Best effort: honour `rename = "..."` and skip `flatten` fields, whose keys we
                // cannot see at compile time.
                let _ = list.parse_nested_meta(|meta| {
                    if meta.path.is_ident("rename") {
                        if let Ok(value) = meta.value() {
                            if let Ok(lit) = value.parse::<LitStr>() {
                                wire_name = lit.value();
                            }
                        }
                    } else if meta.path.is_ident("flatten") {
                        flattened = true;
                    } else if let Ok(value) = meta.value() {
                        let _ = value.parse::<Expr>();
                    }
                    Ok(())
                });
            }
        }
        if flattened {
            continue;
        }
        if wire_name.starts_with("event_") {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "payload field `{wire_name}` starts with `event_`, which bubus reserves for \
                     event metadata"
                ),
            ));
        }
        if wire_name.starts_with("model_") {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "payload field `{wire_name}` starts with `model_`, which the Python and \
                     TypeScript runtimes reserve"
                ),
            ));
        }
        if RESERVED_FIELDS.contains(&wire_name.as_str()) {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "payload field `{wire_name}` is reserved by the bubus runtimes (reserved: {})",
                    RESERVED_FIELDS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
