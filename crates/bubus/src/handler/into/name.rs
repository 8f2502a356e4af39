//! Handler names: the readable default name of a function, closure or method handler, from its
//! Rust type name.

use std::any::TypeId;
use std::borrow::Cow;
use std::cell::Cell;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::memo::Memo;

/// The default name of handler type `F`: [`handler_name`] of its type name, except that distinct
/// closures of one function get distinct names — the first closure type registered from
/// `app::main` is `app::main::<closure>`, the next `app::main::<closure#2>`, and so on — so
/// their results, keyed by handler name, do not merge. A closure registered again (its type is
/// the same) keeps its name.
pub(crate) fn handler_name_of<F: ?Sized + 'static>() -> Cow<'static, str> {
    // Looked up once per handler type (a read lock and a `TypeId` hash on later registrations,
    // instead of scanning and hashing the type name); numbering a closure takes one lock over
    // both of its maps, so each closure type gets exactly one number.
    static BY_TYPE: Memo<TypeId, &'static str> = Memo::new();
    // The thread's last answer, in front of the table: a handler type registered again and
    // again (a one-off closure) skips the lock and the hash.
    std::thread_local! {
        static LAST: Cell<Option<(TypeId, &'static str)>> = const { Cell::new(None) };
    }
    let ty = TypeId::of::<F>();
    if let Ok(Some((known, name))) = LAST.try_with(Cell::get) {
        if known == ty {
            return Cow::Borrowed(name);
        }
    }
    let name = BY_TYPE.get_or_insert_with(ty, || {
        let name = handler_name(std::any::type_name::<F>());
        if !name.ends_with(CLOSURE) {
            return match name {
                Cow::Borrowed(name) => name,
                Cow::Owned(name) => Box::leak(name.into_boxed_str()),
            };
        }
        number_closure(ty, name)
    });
    let _ = LAST.try_with(|last| last.set(Some((ty, name))));
    Cow::Borrowed(name)
}

const CLOSURE: &str = "::<closure>";

fn number_closure(ty: TypeId, name: Cow<'static, str>) -> &'static str {
    type Numbering = (FxHashMap<TypeId, &'static str>, FxHashMap<String, usize>);
    static NUMBERING: Mutex<Option<Numbering>> = parking_lot::const_mutex(None);
    let mut guard = NUMBERING.lock();
    let (named, counts) = guard.get_or_insert_with(Default::default);
    if let Some(done) = named.get(&ty) {
        return done;
    }
    let count = counts.entry(name.to_string()).or_insert(0);
    *count += 1;
    let numbered: &'static str = match (*count, name) {
        (1, Cow::Borrowed(name)) => name,
        (1, Cow::Owned(name)) => Box::leak(name.into_boxed_str()),
        (n, name) => {
            let base = name.strip_suffix(CLOSURE).unwrap_or(&name);
            Box::leak(format!("{base}::<closure#{n}>").into_boxed_str())
        }
    };
    named.insert(ty, numbered);
    numbered
}

/// A readable handler name from a Rust type name: generic arguments are dropped and closures are
/// written `path::<closure>` (`app::main::{{closure}}::{{closure}}` → `app::main::<closure>`).
pub(crate) fn handler_name(type_name: &'static str) -> Cow<'static, str> {
    if !type_name.contains('<') && !type_name.contains("{{closure}}") {
        return Cow::Borrowed(type_name);
    }
    // Cleaned once per handler type: a program has finitely many, and a handler registered
    // again and again (a one-off closure) should not pay for the string work each time.
    static NAMES: Memo<&'static str, &'static str> = Memo::new();
    Cow::Borrowed(NAMES.get_or_insert_with(type_name, || {
        Box::leak(clean_type_name(type_name).into_boxed_str())
    }))
}

fn clean_type_name(type_name: &str) -> String {
    let mut depth = 0usize;
    let mut plain = String::with_capacity(type_name.len());
    for ch in type_name.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(ch),
            _ => {}
        }
    }
    // Only the last segment says whether the handler itself is a closure: a named function
    // declared inside an async block (`main::{{closure}}::handler`) is not one.
    let is_closure = plain.ends_with("{{closure}}");
    let mut name: String = plain
        .split("::")
        .filter(|segment| *segment != "{{closure}}")
        .collect::<Vec<_>>()
        .join("::");
    if is_closure {
        name.push_str("::<closure>");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::handler_name;

    #[test]
    fn handler_names_are_readable() {
        assert_eq!(handler_name("app::handle_login"), "app::handle_login");
        assert_eq!(
            handler_name("app::main::{{closure}}::{{closure}}"),
            "app::main::<closure>"
        );
        assert_eq!(handler_name("app::Svc<u8>::handle"), "app::Svc::handle");
        assert_eq!(
            handler_name("app::main::{{closure}}::handle_login"),
            "app::main::handle_login"
        );
    }
}
