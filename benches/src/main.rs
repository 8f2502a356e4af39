//! Runs the reference performance scenarios and prints the reference's table.
//!
//! ```text
//! cargo run --release -p bubus-benches -- --all [--json] [--in-process] [--runtime current]
//! ```
//!
//! By default each scenario runs in a process of its own: this binary re-executes itself with
//! `--scenario <id> --child-json` and reads back one JSON line. See `docs/performance.md`.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bubus_benches::{Counts, Options, RuntimeFlavor, SCENARIOS, ScenarioResult, report};

const USAGE: &str = "\
Runs the bubus reference performance scenarios (see docs/performance.md).

USAGE:
    bubus-benches [--all | --scenario <id>...] [options]

OPTIONS:
    --all                 every scenario (the default)
    --scenario <id>       only this scenario (repeatable)
    --json                also print one JSON line per scenario
    --in-process          run every scenario in this process instead of one process each
    --runtime <flavor>    multi (tokio multi-thread, the default) or current (current-thread)
    --workers <n>         worker threads of the multi-thread runtime (default 2)
    --smoke               reduced counts: checks every checksum, measures nothing
    --no-warmup           skip the warm-up run before each scenario
    --runs <n>            run each scenario n times and report the median run (default 5;
                          1 with --smoke)
    --list                print the scenario ids
    -h, --help            this text
";

#[derive(Debug)]
struct Args {
    scenarios: Vec<String>,
    json: bool,
    in_process: bool,
    child_json: bool,
    runs: Option<usize>,
    options: Options,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        scenarios: Vec::new(),
        json: false,
        in_process: false,
        child_json: false,
        runs: None,
        options: Options::full(),
    };
    let mut workers = 2;
    let mut current_thread = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--all" => {}
            "--scenario" => {
                let id = it.next().ok_or("--scenario needs an id")?;
                if bubus_benches::scenario(&id).is_none() {
                    return Err(format!("unknown scenario {id:?}; try --list"));
                }
                args.scenarios.push(id);
            }
            "--json" => args.json = true,
            "--in-process" => args.in_process = true,
            "--child-json" => args.child_json = true,
            "--runtime" => match it.next().as_deref() {
                Some("multi" | "multi-thread") => current_thread = false,
                Some("current" | "current-thread") => current_thread = true,
                other => return Err(format!("--runtime takes multi or current, not {other:?}")),
            },
            "--workers" => {
                workers = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--workers needs a positive number")?;
            }
            "--smoke" => {
                args.options.counts = Counts::SMOKE;
                args.options.hang_guard = Options::smoke(RuntimeFlavor::default()).hang_guard;
            }
            "--no-warmup" => args.options.warmup = false,
            "--runs" => {
                args.runs = Some(
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--runs needs a positive number")?,
                );
            }
            "--list" => {
                for s in &SCENARIOS {
                    println!("{}\t{}", s.id, s.column);
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
    args.options.runtime = if current_thread {
        RuntimeFlavor::CurrentThread
    } else {
        RuntimeFlavor::MultiThread { workers }
    };
    if args.scenarios.is_empty() {
        args.scenarios = SCENARIOS.iter().map(|s| s.id.to_owned()).collect();
    }
    Ok(Some(args))
}

/// The flags a child needs to run one scenario exactly as this process would.
fn child_args(id: &str, options: &Options) -> Vec<String> {
    let mut args = vec![
        "--scenario".to_owned(),
        id.to_owned(),
        "--child-json".to_owned(),
    ];
    match options.runtime {
        RuntimeFlavor::CurrentThread => args.extend(["--runtime".into(), "current".into()]),
        RuntimeFlavor::MultiThread { workers } => {
            args.extend(["--runtime".into(), "multi".into()]);
            args.extend(["--workers".into(), workers.to_string()]);
        }
    }
    if options.counts == Counts::SMOKE {
        args.push("--smoke".into());
    }
    if !options.warmup {
        args.push("--no-warmup".into());
    }
    args
}

/// Runs one scenario in a child process and reads its JSON line back. A child that crashes, hangs
/// past the hang guard (plus a margin) or prints no result becomes a failed result.
fn run_in_child(id: &str, options: &Options) -> ScenarioResult {
    let failed = |why: String| ScenarioResult::failed(id, options, why);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return failed(format!("cannot find this executable: {err}")),
    };
    let mut child = match Command::new(exe)
        .args(child_args(id, options))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => return failed(format!("cannot start the child process: {err}")),
    };
    // Read both pipes on their own threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });

    let limit = options.hang_guard + Duration::from_secs(60);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("child killed after {}s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => break Err(format!("waiting for the child failed: {err}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let last_stderr = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");

    let status = match status {
        Ok(status) => status,
        Err(why) => return failed(why),
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    match (status.success(), line) {
        (true, Some(line)) => serde_json::from_str(line)
            .unwrap_or_else(|e| failed(format!("unreadable child JSON: {e}"))),
        (true, None) => failed("the child printed no result".to_owned()),
        (false, _) => failed(format!("child exited with {status}: {last_stderr}")),
    }
}

/// Runs per scenario of a measurement; the median one is reported.
const DEFAULT_RUNS: usize = 5;

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bubus-benches: {err}");
            return ExitCode::from(2);
        }
    };
    let options = args.options;

    if args.child_json {
        // One scenario, one JSON line: what the parent reads back.
        let Some(id) = args.scenarios.first() else {
            return ExitCode::from(2);
        };
        let result = bubus_benches::run_scenario_blocking(id, &options);
        match serde_json::to_string(&result) {
            Ok(line) => println!("{line}"),
            Err(err) => {
                eprintln!("bubus-benches: cannot encode the result: {err}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }

    println!(
        "[rust] runtime perf harness starting ({}, {}{})",
        options.runtime.describe(),
        if args.in_process {
            "all scenarios in this process"
        } else {
            "one process per scenario"
        },
        if options.is_smoke() {
            "; SMOKE counts: correctness only, the numbers are not measurements"
        } else {
            ""
        }
    );
    let runs = args
        .runs
        .unwrap_or(if options.is_smoke() { 1 } else { DEFAULT_RUNS });
    let mut results = Vec::with_capacity(args.scenarios.len());
    for id in &args.scenarios {
        let attempts: Vec<_> = (0..runs)
            .map(|_| {
                if args.in_process {
                    bubus_benches::run_scenario_blocking(id, &options)
                } else {
                    run_in_child(id, &options)
                }
            })
            .collect();
        let result = report::median_run(attempts);
        println!("{}", report::detail_line(&result));
        results.push(result);
    }
    println!("[rust] runtime perf harness complete");
    println!();
    println!("Markdown matrix row:");
    print!(
        "{}",
        report::table(&format!("Rust ({})", options.runtime.describe()), &results)
    );
    if let Some(line) = report::floor_line(&results) {
        println!("{line}");
    }

    if args.json {
        println!();
        for result in &results {
            match serde_json::to_string(result) {
                Ok(line) => println!("{line}"),
                Err(err) => eprintln!("bubus-benches: cannot encode a result: {err}"),
            }
        }
    }

    if results.iter().all(|r| r.ok && r.floor_error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
