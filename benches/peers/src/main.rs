//! Runs bubus side by side with ractor, kameo, jaeb, tokio-events, a tokio floor and the
//! `abxbus` crate, and prints the tables of `docs/performance.md` ("Against other Rust crates").
//!
//! ```text
//! cargo run --release -p bubus-peers                       # every case, both runtimes, 5 rounds
//! cargo run --release -p bubus-peers -- --smoke            # tiny counts, checksums only
//! cargo run --release -p bubus-peers -- one w1-seq/bubus --runtime current
//! ```
//!
//! Each run is a child process (`one <case>`), so no run inherits another's heap, threads or
//! global state; the cases of a round run one after the other in an order that rotates from
//! round to round, both runtimes in every round.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bubus_peers::report::Runs;
use bubus_peers::{Case, FamilyImpl, Outcome, RuntimeFlavor, Sizes, run_case_blocking};

const USAGE: &str = "\
Runs bubus side by side with other Rust crates on identical work (docs/performance.md).

USAGE:
    bubus-peers [options]              every case, interleaved rounds, both tables
    bubus-peers one <case> [options]   one run of one case in this process, one JSON line out
    bubus-peers --list                 the case ids

OPTIONS:
    --rounds <n>        rounds (default 5; 1 with --smoke)
    --runtime <which>   current, multi or both (default both)
    --workers <n>       worker threads of the multi-thread runtime (default 2)
    --only <prefix>     only the cases whose id starts with this (repeatable): w1-seq, w2/,
                        s1/, s4/abxbus; `w` for every workload, `s` for every scenario
    --smoke             tiny counts: the same code, every checksum checked, nothing measured
    --scale <k>         `one` only: k times the messages (for instruction counts per message)
    --json              also print every run as a JSON line
    -h, --help          this text

Exit status: 1 when a run of bubus, a peer or the floor failed or computed a wrong checksum.
Failed runs of the abxbus crate are counted in its cells (failed k/n) and listed after the
tables; they do not fail the command.
";

struct Args {
    one: Option<Case>,
    rounds: Option<usize>,
    runtimes: Vec<RuntimeFlavor>,
    only: Vec<String>,
    sizes: Sizes,
    scale: u64,
    json: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        one: None,
        rounds: None,
        runtimes: Vec::new(),
        only: Vec::new(),
        sizes: Sizes::FULL,
        scale: 1,
        json: false,
    };
    let mut which = "both".to_owned();
    let mut workers = 2;
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> Result<u64, String> {
        v.and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or(format!("{what} needs a positive number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "one" => {
                let id = it.next().ok_or("one needs a case; try --list")?;
                args.one = Some(Case::parse(&id).ok_or(format!("unknown case {id:?}"))?);
            }
            "--rounds" => args.rounds = Some(number(it.next(), "--rounds")? as usize),
            "--runtime" => which = it.next().ok_or("--runtime needs a value")?,
            "--workers" => workers = number(it.next(), "--workers")? as usize,
            "--only" => args.only.push(it.next().ok_or("--only needs a prefix")?),
            "--smoke" => args.sizes = Sizes::SMOKE,
            "--scale" => args.scale = number(it.next(), "--scale")?,
            "--json" => args.json = true,
            "--list" => {
                for case in Case::all() {
                    println!("{case}");
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    let multi = RuntimeFlavor::MultiThread { workers };
    args.runtimes = match which.as_str() {
        "current" | "current-thread" => vec![RuntimeFlavor::CurrentThread],
        "multi" | "multi-thread" => vec![multi],
        "both" => vec![RuntimeFlavor::CurrentThread, multi],
        other => {
            return Err(format!(
                "--runtime takes current, multi or both, not {other:?}"
            ));
        }
    };
    Ok(Some(args))
}

/// The flags a child needs to run `case` as this process would.
fn child_args(case: Case, runtime: RuntimeFlavor, smoke: bool) -> Vec<String> {
    let mut args = vec!["one".to_owned(), case.to_string(), "--runtime".to_owned()];
    match runtime {
        RuntimeFlavor::CurrentThread => args.push("current".into()),
        RuntimeFlavor::MultiThread { workers } => {
            args.push("multi".into());
            args.extend(["--workers".into(), workers.to_string()]);
        }
    }
    if smoke {
        args.push("--smoke".into());
    }
    args
}

/// Runs one case in a child process and reads its JSON line back; a child that crashes, hangs
/// past `limit` or prints nothing is a failed run.
fn run_in_child(case: Case, runtime: RuntimeFlavor, smoke: bool, limit: Duration) -> Outcome {
    let failed = |why: String| Outcome::failed(case, runtime, why);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return failed(format!("cannot find this executable: {err}")),
    };
    let mut child = match Command::new(exe)
        .args(child_args(case, runtime, smoke))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => return failed(format!("cannot start the child: {err}")),
    };
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("hung: killed after {}s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for the child failed: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = match status {
        Ok(status) => status,
        Err(why) => return failed(why),
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    match line {
        Some(line) => serde_json::from_str(line)
            .unwrap_or_else(|e| failed(format!("unreadable child JSON: {e}"))),
        None => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            failed(format!(
                "child exited with {status} and no result: {}",
                last.unwrap_or("")
            ))
        }
    }
}

fn rotated<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    let n = items.len().max(1);
    (0..items.len()).map(|i| items[(i + by) % n]).collect()
}

/// The cases of round `round`, in that round's order: the workloads (their order and the
/// subjects' order within each rotated by the round), then the scenarios (the implementations'
/// order alternating).
fn round_order(cases: &[Case], round: usize) -> Vec<Case> {
    let works: Vec<_> = bubus_peers::Work::ALL.to_vec();
    let subjects: Vec<_> = bubus_peers::Subject::ALL.to_vec();
    let mut order = Vec::new();
    for work in rotated(&works, round) {
        for subject in rotated(&subjects, round) {
            order.push(Case::Work(work, subject));
        }
    }
    for index in 0..bubus_peers::family::SCENARIOS.len() {
        for imp in rotated(&FamilyImpl::ALL, round) {
            order.push(Case::Family(index, imp));
        }
    }
    order.retain(|c| cases.contains(c));
    order
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bubus-peers: {err}");
            return ExitCode::from(2);
        }
    };
    let smoke = args.sizes.is_smoke();

    if let Some(case) = args.one {
        let runtime = args.runtimes[0];
        let outcome = run_case_blocking(case, runtime, &args.sizes.scaled(args.scale));
        match serde_json::to_string(&outcome) {
            Ok(line) => println!("{line}"),
            Err(err) => eprintln!("bubus-peers: {err}"),
        }
        if let Some(error) = &outcome.error {
            eprintln!("bubus-peers: {case} failed: {error}");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }

    let cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|case| {
            let id = case.to_string();
            args.only.is_empty() || args.only.iter().any(|p| id.starts_with(p.as_str()))
        })
        .collect();
    if cases.is_empty() {
        eprintln!("bubus-peers: no case matches --only; try --list");
        return ExitCode::from(2);
    }
    let rounds = args.rounds.unwrap_or(if smoke { 1 } else { 5 });
    let limit = Duration::from_secs(if smoke { 120 } else { 900 });
    eprintln!(
        "[peers] {} cases x {} runtime(s) x {rounds} round(s){}",
        cases.len(),
        args.runtimes.len(),
        if smoke {
            " (smoke: not a measurement)"
        } else {
            ""
        }
    );

    let mut runs = Runs::default();
    for round in 0..rounds {
        let runtimes = rotated(&args.runtimes, round);
        for case in round_order(&cases, round) {
            for &runtime in &runtimes {
                let outcome = run_in_child(case, runtime, smoke, limit);
                match &outcome.error {
                    None => eprintln!(
                        "[peers] round {} {case} {}: {:.4} µs/{}",
                        round + 1,
                        runtime.name(),
                        outcome.us_per_unit(),
                        outcome.unit
                    ),
                    Some(error) => eprintln!(
                        "[peers] round {} {case} {}: FAILED: {error}",
                        round + 1,
                        runtime.name()
                    ),
                }
                if args.json
                    && let Ok(line) = serde_json::to_string(&outcome)
                {
                    println!("{line}");
                }
                runs.add(case, runtime, outcome);
            }
        }
    }

    let any_work = cases.iter().any(|c| matches!(c, Case::Work(..)));
    let any_family = cases.iter().any(|c| matches!(c, Case::Family(..)));
    for &runtime in &args.runtimes {
        if any_work {
            println!(
                "{}",
                runs.work_table(runtime, rounds, args.sizes.w2_handlers)
            );
        }
        if any_family {
            println!("{}", runs.family_table(runtime, rounds));
        }
    }
    for outcome in runs.all().filter(|o| o.error.is_some() && !o.is_fatal()) {
        println!(
            "not counted: {} on {}: {}",
            outcome.case,
            outcome.runtime,
            outcome.error.as_deref().unwrap_or("")
        );
    }
    let fatal: Vec<&Outcome> = runs.all().filter(|o| o.is_fatal()).collect();
    for outcome in &fatal {
        eprintln!(
            "bubus-peers: {} on {} failed: {}",
            outcome.case,
            outcome.runtime,
            outcome.error.as_deref().unwrap_or("")
        );
    }
    if fatal.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
