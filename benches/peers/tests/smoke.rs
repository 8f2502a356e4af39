//! Every case with the smoke sizes on both runtimes, in process, and the binary's interleaved
//! run: every checksum must match. Correctness only — nothing here looks at a time.

use std::process::Command;

use bubus_peers::{Case, FamilyImpl, RuntimeFlavor, Sizes, Subject, Work, run_case_blocking};

const RUNTIMES: [RuntimeFlavor; 2] = [
    RuntimeFlavor::CurrentThread,
    RuntimeFlavor::MultiThread { workers: 2 },
];

fn check(case: Case) {
    for runtime in RUNTIMES {
        let outcome = run_case_blocking(case, runtime, &Sizes::SMOKE);
        assert_eq!(
            outcome.error,
            None,
            "{case} on {}: {outcome:#?}",
            runtime.name()
        );
        assert_eq!(outcome.checksum, outcome.expected_checksum, "{case}");
        assert!(outcome.expected_checksum > 0, "{case}: an empty checksum");
        assert!(outcome.units > 0, "{case}: no units");
    }
}

fn check_work(work: Work) {
    for subject in Subject::ALL {
        check(Case::Work(work, subject));
    }
}

#[test]
fn w1_sequential_on_every_subject() {
    check_work(Work::W1Seq);
}

#[test]
fn w1_batched_on_every_subject() {
    check_work(Work::W1Batch);
}

#[test]
fn w2_fan_out_on_every_subject() {
    check_work(Work::W2);
}

#[test]
fn w3_fire_and_forget_on_every_subject() {
    check_work(Work::W3);
}

#[test]
fn family_scenarios_on_bubus() {
    for index in 0..bubus_peers::family::SCENARIOS.len() {
        check(Case::Family(index, FamilyImpl::Bubus));
    }
}

/// S1–S4 on the abxbus crate. Its S5 is run by the binary's test below, which tolerates the
/// crate's own failures there (docs/performance.md: a parent forwarded to a second bus after
/// the first completed it is skipped, a race between the crate's bus threads). Its S4 also comes
/// out with a wrong checksum now and then (about 3 runs in 16, a race of the crate's own), so
/// each case gets a few attempts: the harness is right when one attempt's checksum matches.
#[test]
fn family_scenarios_s1_to_s4_on_abxbus() {
    const ATTEMPTS: usize = 5;
    for index in 0..4 {
        let case = Case::Family(index, FamilyImpl::Abxbus);
        for runtime in RUNTIMES {
            let mut outcomes = Vec::new();
            let passed = (0..ATTEMPTS).any(|_| {
                let outcome = run_case_blocking(case, runtime, &Sizes::SMOKE);
                let ok = outcome.error.is_none()
                    && outcome.checksum == outcome.expected_checksum
                    && outcome.expected_checksum > 0
                    && outcome.units > 0;
                outcomes.push(outcome);
                ok
            });
            assert!(
                passed,
                "{case} on {}: no attempt of {ATTEMPTS} matched: {outcomes:#?}",
                runtime.name()
            );
        }
    }
}

#[test]
fn case_ids_read_back() {
    for case in Case::all() {
        assert_eq!(Case::parse(&case.to_string()), Some(case));
    }
    assert_eq!(Case::parse("w9/bubus"), None);
}

#[test]
fn scaling_multiplies_only_the_messages() {
    let scaled = Sizes::SMOKE.scaled(3);
    assert_eq!(scaled.w1_messages, Sizes::SMOKE.w1_messages * 3);
    assert_eq!(scaled.w2_messages, Sizes::SMOKE.w2_messages * 3);
    assert_eq!(scaled.family.s1_events, Sizes::SMOKE.family.s1_events * 3);
    assert_eq!(scaled.w1_batch, Sizes::SMOKE.w1_batch);
    assert_eq!(scaled.w2_handlers, Sizes::SMOKE.w2_handlers);
    assert_eq!(scaled.warmup, Sizes::SMOKE.warmup);
}

/// The command the docs name, in smoke mode: one child process per run, both runtimes, both
/// tables, exit status 0.
#[test]
fn the_binary_prints_both_tables() {
    let out = Command::new(env!("CARGO_BIN_EXE_bubus-peers"))
        .args([
            "--smoke", "--only", "w1-seq", "--only", "w3/", "--only", "s1/", "--only", "s5/",
        ])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| W1 request/response, sequential |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| W3 fire-and-forget + wait until idle |"),
        "{stdout}"
    );
    assert!(stdout.contains("| S1 1 bus x 50k events"), "{stdout}");
    assert!(stdout.contains("tokio current-thread"), "{stdout}");
    assert!(stdout.contains("tokio multi-thread"), "{stdout}");
    assert!(!stderr.contains("bubus-peers: "), "{stderr}");
}

/// Every failure of bubus, a peer or the floor fails the command, a wrong checksum first;
/// the abxbus crate's own failures are reported instead.
#[test]
fn which_failures_fail_the_command() {
    let runtime = RuntimeFlavor::CurrentThread;
    let failed = |case: Case, why: &str| bubus_peers::Outcome::failed(case, runtime, why);
    let bubus_s5 = Case::Family(4, FamilyImpl::Bubus);
    let abxbus_s5 = Case::Family(4, FamilyImpl::Abxbus);
    let ractor_w1 = Case::Work(Work::W1Seq, Subject::Ractor);
    assert!(failed(bubus_s5, "checksum 1 != expected 2").is_fatal());
    assert!(failed(bubus_s5, "hung").is_fatal());
    assert!(failed(ractor_w1, "call timed out").is_fatal());
    assert!(!failed(abxbus_s5, "checksum 1 != expected 2").is_fatal());
    assert!(!failed(abxbus_s5, "bus B handled 44 of 50 parents").is_fatal());
    let ok = run_case_blocking(ractor_w1, runtime, &Sizes::SMOKE);
    assert!(!ok.is_fatal(), "{ok:?}");
}

/// `one` on an unknown case is a usage error.
#[test]
fn an_unknown_case_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_bubus-peers"))
        .args(["one", "w9/nobody", "--smoke"])
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
}
