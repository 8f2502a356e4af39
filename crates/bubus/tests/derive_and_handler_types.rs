//! Compile-time checks: `#[derive(Event)]` input validation, and handlers whose return type does
//! not match the event's result type are rejected by the compiler.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
