//! `cpp_ops/tf_swap.h` is hand-written (STYLE: "checked against the Rust
//! exports with bindgen in a test"). This reads the header through bindgen
//! and every file of `rust/ffi/` through syn, and fails on any export,
//! `#[repr(C)]` struct, status code or constant that exists on one side only
//! or differs in names, types or order. Nothing is listed by hand, so new
//! exports are covered as they are added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use syn::{Attribute, Expr, FnArg, Item, Lit, Pat, ReturnType, Signature, Type};

const HEADER: &str = "cpp_ops/tf_swap.h";
const FFI_DIR: &str = "rust/ffi";

/// One side of the ABI, normalized so that both sides spell alike: type
/// paths by their last segment, C names `tf_swap_foo` as `TfSwapFoo`,
/// enum constants `TF_SWAP_FOO_BAR` as `FooBar`, array lengths as digits.
#[derive(Debug, Default)]
struct Api {
    /// Export name -> (parameter name, type)s and return type.
    functions: BTreeMap<String, (Vec<(String, String)>, String)>,
    /// `#[repr(C)]` struct -> fields in order.
    structs: BTreeMap<String, Vec<(String, String)>>,
    /// Enum -> repr and (variant, value)s in order.
    enums: BTreeMap<String, (String, Vec<(String, String)>)>,
    /// `TF_SWAP_*` constant -> value digits.
    consts: BTreeMap<String, String>,
    /// What could not be read; reported as mismatches.
    problems: Vec<String>,
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn c_name(name: &str) -> String {
    if name.starts_with("tf_swap_") {
        camel(name)
    } else {
        name.to_owned()
    }
}

fn int_digits(expr: &Expr, consts: &BTreeMap<String, String>) -> Option<String> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => Some(int.base10_digits().to_owned()),
            _ => None,
        },
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => int_digits(expr, consts).map(|digits| format!("-{digits}")),
        Expr::Path(path) => consts
            .get(&path.path.segments.last()?.ident.to_string())
            .cloned(),
        Expr::Group(group) => int_digits(&group.expr, consts),
        Expr::Paren(paren) => int_digits(&paren.expr, consts),
        _ => None,
    }
}

fn type_name(ty: &Type, consts: &BTreeMap<String, String>) -> Result<String, &'static str> {
    Ok(match ty {
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last().ok_or("empty path")?;
            if !last.arguments.is_none() {
                return Err("generic type");
            }
            c_name(&last.ident.to_string())
        }
        Type::Ptr(ptr) => {
            let mutability = if ptr.mutability.is_some() {
                "mut"
            } else {
                "const"
            };
            format!("*{mutability} {}", type_name(&ptr.elem, consts)?)
        }
        Type::Array(array) => {
            let len = int_digits(&array.len, consts).ok_or("array length is not a number")?;
            format!("[{}; {len}]", type_name(&array.elem, consts)?)
        }
        Type::Tuple(tuple) if tuple.elems.is_empty() => "()".to_owned(),
        Type::Never(_) => "!".to_owned(),
        Type::Group(group) => type_name(&group.elem, consts)?,
        Type::Paren(paren) => type_name(&paren.elem, consts)?,
        _ => return Err("a type this check does not understand"),
    })
}

fn has_attr(attrs: &[Attribute], outer: &str, inner: &str) -> bool {
    attrs.iter().any(|attr| match &attr.meta {
        syn::Meta::List(list) if list.path.is_ident(outer) => list
            .tokens
            .to_string()
            .split(',')
            .any(|token| token.trim() == inner),
        syn::Meta::Path(path) => outer.is_empty() && path.is_ident(inner),
        _ => false,
    })
}

fn is_bindgen_opaque(item: &syn::ItemStruct) -> bool {
    let mut fields = item.fields.iter();
    let only = fields.next();
    fields.next().is_none()
        && only.is_some_and(|f| f.ident.as_ref().is_some_and(|i| i == "_unused"))
}

fn repr_of(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        syn::Meta::List(list) if list.path.is_ident("repr") => {
            Some(list.tokens.to_string().replace(' ', ""))
        }
        _ => None,
    })
}

impl Api {
    fn add_fn(&mut self, sig: &Signature) {
        let name = sig.ident.to_string();
        let mut params = Vec::new();
        for input in &sig.inputs {
            let FnArg::Typed(arg) = input else {
                self.problems
                    .push(format!("{name}: has a `self` parameter"));
                return;
            };
            let param = match &*arg.pat {
                Pat::Ident(ident) => ident.ident.to_string(),
                Pat::Wild(_) => "_".to_owned(),
                _ => {
                    self.problems
                        .push(format!("{name}: a parameter is a pattern"));
                    return;
                }
            };
            match type_name(&arg.ty, &self.consts) {
                Ok(ty) => params.push((param, ty)),
                Err(why) => {
                    self.problems.push(format!("{name}({param}): {why}"));
                    return;
                }
            }
        }
        if sig.variadic.is_some() {
            self.problems.push(format!("{name}: variadic"));
        }
        let ret = match &sig.output {
            ReturnType::Default => Ok("()".to_owned()),
            ReturnType::Type(_, ty) => type_name(ty, &self.consts),
        };
        match ret {
            Ok(ret) => {
                if self.functions.insert(name.clone(), (params, ret)).is_some() {
                    self.problems.push(format!("{name}: defined twice"));
                }
            }
            Err(why) => self.problems.push(format!("{name} -> {why}")),
        }
    }

    /// A type C sees only behind a pointer: bindgen's `{ _unused: [u8; 0] }`
    /// in the header, a public struct without `#[repr(C)]` in Rust.
    fn add_opaque(&mut self, item: &syn::ItemStruct) {
        let name = c_name(&item.ident.to_string());
        let fields = vec![("opaque".to_owned(), String::new())];
        if self.structs.insert(name.clone(), fields).is_some() {
            self.problems.push(format!("struct {name}: defined twice"));
        }
    }

    fn add_struct(&mut self, item: &syn::ItemStruct) {
        let name = c_name(&item.ident.to_string());
        let mut fields = Vec::new();
        for (k, field) in item.fields.iter().enumerate() {
            let field_name = field
                .ident
                .as_ref()
                .map_or(k.to_string(), ToString::to_string);
            match type_name(&field.ty, &self.consts) {
                Ok(ty) => fields.push((field_name, ty)),
                Err(why) => self.problems.push(format!("{name}.{field_name}: {why}")),
            }
        }
        if self.structs.insert(name.clone(), fields).is_some() {
            self.problems.push(format!("struct {name}: defined twice"));
        }
    }

    fn add_enum(&mut self, item: &syn::ItemEnum, repr: String) {
        let name = c_name(&item.ident.to_string());
        let mut variants = Vec::new();
        for variant in &item.variants {
            let ident = variant.ident.to_string();
            let short = match ident.strip_prefix("TF_SWAP_") {
                Some(rest) => camel(rest),
                None => ident.clone(),
            };
            match variant
                .discriminant
                .as_ref()
                .and_then(|(_, e)| int_digits(e, &self.consts))
            {
                Some(value) => variants.push((short, value)),
                None => self
                    .problems
                    .push(format!("{name}::{ident}: no literal value")),
            }
        }
        if self.enums.insert(name.clone(), (repr, variants)).is_some() {
            self.problems.push(format!("enum {name}: defined twice"));
        }
    }

    fn add_const(&mut self, item: &syn::ItemConst) {
        let name = item.ident.to_string();
        match int_digits(&item.expr, &self.consts) {
            Some(value) => {
                self.consts.insert(name, value);
            }
            None => self
                .problems
                .push(format!("const {name}: not an integer literal")),
        }
    }

    /// What bindgen made of the header.
    fn from_bindgen(file: &syn::File) -> Self {
        let mut api = Self::default();
        // Constants first: array lengths may name them.
        for item in &file.items {
            if let Item::Const(item) = item {
                api.add_const(item);
            }
        }
        for item in &file.items {
            match item {
                Item::ForeignMod(block) => {
                    for foreign in &block.items {
                        match foreign {
                            syn::ForeignItem::Fn(f) => api.add_fn(&f.sig),
                            _ => api
                                .problems
                                .push("header: a non-function extern item".to_owned()),
                        }
                    }
                }
                Item::Struct(item) if is_bindgen_opaque(item) => api.add_opaque(item),
                Item::Struct(item) => api.add_struct(item),
                Item::Enum(item) => {
                    let repr = repr_of(&item.attrs).unwrap_or_default();
                    api.add_enum(item, repr);
                }
                Item::Const(_) => {}
                Item::Type(alias) => {
                    api.problems
                        .push(format!("header: typedef {} is not checked", alias.ident));
                }
                _ => api
                    .problems
                    .push("header: an item this check does not understand".to_owned()),
            }
        }
        api
    }

    /// The C ABI side of the Rust sources: `#[unsafe(no_mangle)]` functions,
    /// `#[repr(C)]` structs, enums with an integer repr, `TF_SWAP_*` consts.
    fn from_rust(files: &[(PathBuf, syn::File)]) -> Self {
        let mut api = Self::default();
        let mut items = Vec::new();
        for (_, file) in files {
            flatten(&file.items, &mut items);
        }
        for item in &items {
            if let Item::Const(c) = item
                && matches!(c.vis, syn::Visibility::Public(_))
                && c.ident.to_string().starts_with("TF_SWAP_")
            {
                api.add_const(c);
            }
        }
        for item in items {
            match item {
                Item::Fn(f)
                    if has_attr(&f.attrs, "unsafe", "no_mangle")
                        || has_attr(&f.attrs, "", "no_mangle") =>
                {
                    let name = f.sig.ident.to_string();
                    let extern_c = f
                        .sig
                        .abi
                        .as_ref()
                        .is_some_and(|abi| abi.name.as_ref().is_some_and(|n| n.value() == "C"));
                    if !extern_c || !matches!(f.vis, syn::Visibility::Public(_)) {
                        api.problems
                            .push(format!("{name}: no_mangle but not `pub extern \"C\"`"));
                    }
                    api.add_fn(&f.sig);
                }
                Item::Struct(s) if has_attr(&s.attrs, "repr", "C") => api.add_struct(s),
                Item::Struct(s)
                    if matches!(s.vis, syn::Visibility::Public(_))
                        && s.ident.to_string().starts_with("TfSwap") =>
                {
                    api.add_opaque(s)
                }
                Item::Enum(e) => {
                    if let Some(repr) = repr_of(&e.attrs) {
                        api.add_enum(e, repr);
                    }
                }
                _ => {}
            }
        }
        api
    }
}

fn flatten<'a>(items: &'a [Item], out: &mut Vec<&'a Item>) {
    for item in items {
        match item {
            Item::Mod(module) => {
                if let Some((_, inner)) = &module.content {
                    flatten(inner, out);
                }
            }
            _ => out.push(item),
        }
    }
}

fn compare_lists(
    what: &str,
    header: &[(String, String)],
    rust: &[(String, String)],
    out: &mut Vec<String>,
) {
    if header.len() != rust.len() {
        out.push(format!(
            "{what}: header has {} entries, Rust {}",
            header.len(),
            rust.len()
        ));
    }
    for (k, (h, r)) in header.iter().zip(rust).enumerate() {
        if h != r {
            out.push(format!(
                "{what} #{k}: header `{}: {}`, Rust `{}: {}`",
                h.0, h.1, r.0, r.1
            ));
        }
    }
}

/// Every difference between the header and the Rust side, one line each.
fn compare(header: &Api, rust: &Api) -> Vec<String> {
    let mut out: Vec<String> = header
        .problems
        .iter()
        .map(|p| format!("header: {p}"))
        .collect();
    out.extend(rust.problems.iter().map(|p| format!("Rust: {p}")));
    fn sides<'a, V>(
        h: &'a BTreeMap<String, V>,
        r: &'a BTreeMap<String, V>,
        kind: &str,
        out: &mut Vec<String>,
    ) -> Vec<(&'a String, &'a V, &'a V)> {
        for name in h.keys().filter(|k| !r.contains_key(*k)) {
            out.push(format!("{kind} {name} is in the header but not in Rust"));
        }
        for name in r.keys().filter(|k| !h.contains_key(*k)) {
            out.push(format!("{kind} {name} is in Rust but not in the header"));
        }
        h.iter()
            .filter_map(|(k, hv)| r.get(k).map(|rv| (k, hv, rv)))
            .collect()
    }
    for (name, (hp, hr), (rp, rr)) in
        sides(&header.functions, &rust.functions, "function", &mut out)
    {
        compare_lists(&format!("{name} parameters"), hp, rp, &mut out);
        if hr != rr {
            out.push(format!("{name} returns: header `{hr}`, Rust `{rr}`"));
        }
    }
    for (name, hf, rf) in sides(&header.structs, &rust.structs, "struct", &mut out) {
        compare_lists(&format!("struct {name} fields"), hf, rf, &mut out);
    }
    for (name, (hrepr, hv), (rrepr, rv)) in sides(&header.enums, &rust.enums, "enum", &mut out) {
        if hrepr != rrepr {
            out.push(format!(
                "enum {name}: header repr({hrepr}), Rust repr({rrepr})"
            ));
        }
        let (mut hv, mut rv) = (hv.clone(), rv.clone());
        hv.sort();
        rv.sort();
        compare_lists(&format!("enum {name} values"), &hv, &rv, &mut out);
    }
    // A Rust constant need not be in the header, but one the header
    // defines must match Rust's.
    for (name, value) in &header.consts {
        match rust.consts.get(name) {
            None => out.push(format!("const {name} is in the header but not in Rust")),
            Some(r) if r != value => out.push(format!("const {name}: header {value}, Rust {r}")),
            Some(_) => {}
        }
    }
    out
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// TensorFlow's pip package depends on the `libclang` wheel, so the
/// project's `.venv` always has one.
fn venv_libclang() -> Option<PathBuf> {
    let lib = manifest_dir().join(".venv/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("site-packages/clang/native")))
        .filter(|dir| dir.join("libclang.so").is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn ensure_libclang() {
    static FOUND: Once = Once::new();
    FOUND.call_once(|| {
        if std::env::var_os("LIBCLANG_PATH").is_some() {
            return;
        }
        let dir = venv_libclang().unwrap_or_else(|| {
            panic!(
                "libclang not found: set LIBCLANG_PATH to the folder holding libclang.so, or \
                 create the project's .venv (`make rust-test` does; TensorFlow's `libclang` \
                 wheel puts it in .venv/lib/python3.*/site-packages/clang/native/)"
            )
        });
        // SAFETY: std's own environment accesses are serialized; the hazard
        // is C code reading the environment concurrently, and the only C
        // code in this test binary is libclang, loaded after this returns.
        unsafe { std::env::set_var("LIBCLANG_PATH", dir) };
    });
}

/// The wheel's libclang has no builtin headers (`stddef.h`, `stdbool.h`);
/// borrow the C compiler's, which the build needs anyway.
fn compiler_include_dir() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=include")
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    Path::new(&dir).join("stddef.h").is_file().then_some(dir)
}

/// Bindgen output for the header text `contents`, parsed.
fn bindgen_api(contents: &str) -> Api {
    ensure_libclang();
    let mut builder = bindgen::builder()
        .header_contents("tf_swap.h", contents)
        .allowlist_item("tf_swap.*|TF_SWAP.*")
        .rustified_enum(".*")
        .layout_tests(false)
        .generate_comments(false);
    if let Some(dir) = compiler_include_dir() {
        builder = builder.clang_arg("-isystem").clang_arg(dir);
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("bindgen on {HEADER}: {e}"));
    let file = syn::parse_file(&bindings.to_string()).expect("bindgen output parses");
    Api::from_bindgen(&file)
}

fn rust_sources(dir: &Path, out: &mut Vec<(PathBuf, syn::File)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable source");
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path, file));
        }
    }
}

fn rust_api() -> Api {
    let mut files = Vec::new();
    rust_sources(&manifest_dir().join(FFI_DIR), &mut files);
    Api::from_rust(&files)
}

fn header_text() -> String {
    std::fs::read_to_string(manifest_dir().join(HEADER)).expect("header is readable")
}

#[test]
fn header_matches_rust_exports() {
    let header = bindgen_api(&header_text());
    let rust = rust_api();
    assert!(
        header.functions.len() >= 10 && !header.structs.is_empty() && !header.enums.is_empty(),
        "bindgen found too little in {HEADER}: {header:#?}"
    );
    let problems = compare(&header, &rust);
    assert!(
        problems.is_empty(),
        "{HEADER} and {FFI_DIR}/ disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// The end-to-end check fails on a header edited to disagree.
#[test]
fn edited_header_is_caught() {
    let real = header_text();
    let from = "tf_swap_status_str(uint32_t status)";
    assert!(
        real.contains(from),
        "{HEADER} no longer declares `{from}`; update this test"
    );
    let edited = real.replace(from, "tf_swap_status_str(int32_t status)");
    let problems = compare(&bindgen_api(&edited), &rust_api());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tf_swap_status_str") && p.contains("i32") && p.contains("u32")),
        "the edited parameter type went unnoticed: {problems:?}"
    );
}

fn parse(source: &str) -> syn::File {
    syn::parse_file(source).expect("test source parses")
}

const BINDGEN_LIKE: &str = r#"
    #[repr(u32)]
    pub enum tf_swap_status { TF_SWAP_OK = 0, TF_SWAP_INDEX_OUT_OF_RANGE = 5 }
    #[repr(C)]
    pub struct tf_swap_error { pub message: [::std::os::raw::c_char; 256usize] }
    unsafe extern "C" {
        pub fn tf_swap_f(out: *mut tf_swap_error, n: usize) -> u32;
    }
"#;

const RUST_LIKE: &str = r#"
    pub const TF_SWAP_CAPACITY: usize = 256;
    #[repr(u32)]
    pub enum TfSwapStatus { Ok = 0, IndexOutOfRange = 5 }
    #[repr(C)]
    pub struct TfSwapError { pub message: [c_char; TF_SWAP_CAPACITY] }
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn tf_swap_f(out: *mut TfSwapError, n: usize) -> u32 { 0 }
    fn helper() {}
"#;

fn compare_sources(header: &str, rust: &str) -> Vec<String> {
    compare(
        &Api::from_bindgen(&parse(header)),
        &Api::from_rust(&[(PathBuf::from("x.rs"), parse(rust))]),
    )
}

#[test]
fn normalization_matches_equivalent_spellings() {
    assert_eq!(
        compare_sources(BINDGEN_LIKE, RUST_LIKE),
        Vec::<String>::new()
    );
}

/// Each edit makes the two sides disagree; the comparison must say where.
#[test]
fn each_kind_of_mismatch_is_reported() {
    let edits: [(&str, &str, bool, &str); 9] = [
        (
            "n: usize) -> u32;",
            "n: u32) -> u32;",
            true,
            "tf_swap_f parameters",
        ),
        (
            "n: usize) -> u32;",
            "count: usize) -> u32;",
            true,
            "tf_swap_f parameters",
        ),
        ("-> u32 { 0 }", "-> i32 { 0 }", false, "tf_swap_f returns"),
        (
            "*mut TfSwapError, n",
            "*const TfSwapError, n",
            false,
            "tf_swap_f parameters",
        ),
        ("256usize", "255usize", true, "struct TfSwapError fields"),
        (
            "IndexOutOfRange = 5",
            "IndexOutOfRange = 6",
            false,
            "enum TfSwapStatus values",
        ),
        (
            "#[unsafe(no_mangle)]",
            "",
            false,
            "tf_swap_f is in the header but not in Rust",
        ),
        (
            "fn helper() {}",
            "#[unsafe(no_mangle)] pub unsafe extern \"C\" fn tf_swap_g() {}",
            false,
            "tf_swap_g is in Rust but not in the header",
        ),
        (
            "#[repr(C)]\n    pub struct TfSwapError",
            "pub struct TfSwapError",
            false,
            // Without repr(C) a public struct is opaque to C: its fields
            // no longer match the header's.
            "header `message: [c_char; 256]`, Rust `opaque: `",
        ),
    ];
    for (from, to, in_header, needle) in edits {
        let (mut header, mut rust) = (BINDGEN_LIKE.to_owned(), RUST_LIKE.to_owned());
        let target = if in_header { &mut header } else { &mut rust };
        assert!(target.contains(from), "test edit `{from}` does not apply");
        *target = target.replace(from, to);
        let problems = compare_sources(&header, &rust);
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "edit `{from}` -> `{to}`: no problem mentions `{needle}`: {problems:?}"
        );
    }
}
