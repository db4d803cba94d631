//! `#[derive(Item)]` for `mantle-store`.
//!
//! Reads a plain struct with named fields and writes its `Item`
//! implementation plus one typed attribute constant per field (`TITLE` for
//! `title`) for queries. Use it through `mantle_store::Item`.
//!
//! ```ignore
//! #[derive(Item)]
//! #[item(name = "note", version = 2, index(author, created))]
//! pub struct Note {
//!     #[item(index)]
//!     pub title: String,
//!     #[item(on_delete = "cascade")]
//!     pub author: Id<Person>,
//!     pub created: Timestamp,
//! }
//! ```
//!
//! Struct options: `name` (required: the stored type name), `version`
//! (default 1), `index(a, b, …)` (a compound index; repeatable). Field
//! options: `index`, `on_delete = "cascade" | "nullify" | "forbid"`. Each
//! option but `index(…)` is given at most once. A raw identifier
//! (`r#type`) is stored as its name without `r#` (`type`).
//!
//! The store's rules are checked at compile time too: a type name is 1 to
//! 64 ASCII letters, digits and `_`, starting with a letter; no field name
//! starts with `_`; `on_delete = "nullify"` is for an `Option<Id<_>>`
//! field.
//!
//! What it refuses, and with which message, is tested in `tests/ui/`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::Parse;
use syn::{Data, DeriveInput, Fields, Ident, LitInt, LitStr, parse_macro_input};

/// Derives `mantle_store::Item`. See the crate documentation.
#[proc_macro_derive(Item, attributes(item))]
pub fn derive_item(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Sets an option given at most once (`name`, `version`, `index`, …):
/// a second one is an error rather than silently winning.
fn once<T>(
    meta: &syn::meta::ParseNestedMeta<'_>,
    slot: &mut Option<T>,
    value: T,
) -> syn::Result<()> {
    if slot.is_some() {
        let option = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        return Err(meta.error(format!("`{option}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// The store's rule for type names (see `mantle_store`'s schema).
fn valid_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Whether `ty` is written as an `Option<…>` (by its last path segment,
/// as a derive sees only the tokens; an alias is caught at registration).
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

struct FieldSpec {
    ident: Ident,
    ty: syn::Type,
    /// `Some` when the field has `#[item(index)]`.
    indexed: Option<()>,
    on_delete: Option<Ident>,
}

fn expand(input: DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Item)] does not support generic structs",
        ));
    }
    let mut type_name: Option<LitStr> = None;
    let mut version: Option<u32> = None;
    let mut indexes: Vec<Vec<Ident>> = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("item")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                once(&meta, &mut type_name, meta.value()?.parse()?)?;
            } else if meta.path.is_ident("version") {
                let lit: LitInt = meta.value()?.parse()?;
                if lit.base10_parse::<u32>()? == 0 {
                    return Err(syn::Error::new_spanned(lit, "version starts at 1"));
                }
                once(&meta, &mut version, lit.base10_parse()?)?;
            } else if meta.path.is_ident("index") {
                let list;
                syn::parenthesized!(list in meta.input);
                if list.is_empty() {
                    return Err(meta.error("index(...) needs at least one attribute"));
                }
                let mut cols: Vec<Ident> = Vec::new();
                for ident in list.parse_terminated(Ident::parse, syn::Token![,])? {
                    if cols.contains(&ident) {
                        return Err(syn::Error::new_spanned(
                            ident,
                            "this index already names that field",
                        ));
                    }
                    cols.push(ident);
                }
                indexes.push(cols);
            } else {
                return Err(meta.error("expected `name`, `version` or `index(...)`"));
            }
            Ok(())
        })?;
    }
    let type_name = type_name.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "#[derive(Item)] needs #[item(name = \"...\")]",
        )
    })?;
    // The store's rules, checked here so that a mistake fails the build
    // rather than the registration (which checks them again, for items
    // implemented by hand).
    if !valid_type_name(&type_name.value()) {
        return Err(syn::Error::new_spanned(
            &type_name,
            "an item type name is 1 to 64 ASCII letters, digits and '_', starting with a letter",
        ));
    }
    let version = version.unwrap_or(1);

    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Item)] works on structs",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Item)] needs a struct with named fields",
        ));
    };

    let mut fields = Vec::new();
    for f in &named.named {
        let ident = f.ident.clone().expect("named field");
        let mut spec = FieldSpec {
            ident,
            ty: f.ty.clone(),
            indexed: None,
            on_delete: None,
        };
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("item")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("index") {
                    once(&meta, &mut spec.indexed, ())?;
                } else if meta.path.is_ident("on_delete") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let variant = match lit.value().as_str() {
                        "cascade" => "Cascade",
                        "nullify" => "Nullify",
                        "forbid" => "Forbid",
                        _ => {
                            return Err(syn::Error::new_spanned(
                                lit,
                                "on_delete is \"cascade\", \"nullify\" or \"forbid\"",
                            ));
                        }
                    };
                    once(&meta, &mut spec.on_delete, Ident::new(variant, lit.span()))?;
                } else {
                    return Err(meta.error("expected `index` or `on_delete = \"...\"`"));
                }
                Ok(())
            })?;
        }
        if spec.ident.unraw().to_string().starts_with('_') {
            return Err(syn::Error::new_spanned(
                &spec.ident,
                "attribute names may not start with '_' (the store's own columns do)",
            ));
        }
        if spec.on_delete.as_ref().is_some_and(|p| p == "Nullify") && !is_option(&spec.ty) {
            return Err(syn::Error::new_spanned(
                &spec.ty,
                "on_delete = \"nullify\" needs an Option<Id<_>> field (nullify sets it to None)",
            ));
        }
        fields.push(spec);
    }
    for idx in &indexes {
        for col in idx {
            if !fields.iter().any(|f| f.ident == *col) {
                return Err(syn::Error::new_spanned(col, "index names an unknown field"));
            }
        }
    }

    let name = &input.ident;
    let vis = &input.vis;
    let defs = fields.iter().map(|f| {
        let fname = f.ident.unraw().to_string();
        let ty = &f.ty;
        let mut def = quote!(::mantle_store::AttributeDef::new::<#ty>(#fname));
        if f.indexed.is_some() {
            def = quote!(#def.indexed());
        }
        if let Some(p) = &f.on_delete {
            def = quote!(#def.on_delete(::mantle_store::OnDelete::#p));
        }
        def
    });
    let index_lists = indexes.iter().map(|cols| {
        let names = cols.iter().map(|c| c.unraw().to_string());
        quote!(vec![#(#names),*])
    });
    let binds = fields.iter().map(|f| {
        let id = &f.ident;
        quote!(out.bind(&self.#id)?;)
    });
    let decodes = fields.iter().map(|f| {
        let id = &f.ident;
        let fname = id.unraw().to_string();
        quote!(#id: row.next(#fname)?,)
    });
    let consts = fields.iter().map(|f| {
        let id = &f.ident;
        let ty = &f.ty;
        let fname = id.unraw().to_string();
        let cname = format_ident!("{}", fname.to_uppercase());
        let doc = format!("The `{fname}` attribute, for queries.");
        quote! {
            #[doc = #doc]
            #vis const #cname: ::mantle_store::Attr<#name, #ty> = ::mantle_store::Attr::new(#fname);
        }
    });

    Ok(quote! {
        impl ::mantle_store::Item for #name {
            const TYPE_NAME: &'static str = #type_name;
            const VERSION: u32 = #version;
            fn attributes() -> ::std::vec::Vec<::mantle_store::AttributeDef> {
                vec![#(#defs),*]
            }
            fn indexes() -> ::std::vec::Vec<::std::vec::Vec<&'static str>> {
                vec![#(#index_lists),*]
            }
            fn bind(&self, out: &mut ::mantle_store::Binder<'_, '_>) -> ::mantle_store::Result<()> {
                #(#binds)*
                Ok(())
            }
            fn decode(row: &mut ::mantle_store::Decoder<'_, '_>) -> ::mantle_store::Result<Self> {
                Ok(Self { #(#decodes)* })
            }
        }
        #[allow(dead_code)]
        impl #name {
            #(#consts)*
        }
    })
}
