//! `bubus tail` without `--follow`: pretty and JSON records, where it starts, bad lines, colours.

mod support;

use bubus::AnyEvent;
use bubus::wal::WalReader;
use support::{golden, path_str, run, shop_wal, stderr, stdout, temp_dir};

#[test]
fn pretty_lines_show_each_record_of_a_real_bus() {
    let dir = temp_dir("tail-pretty");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);
    let records: Vec<_> = WalReader::open(&wal)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let bus = records[0].event.event_path()[0].clone();
    let (order, charge) = (records[0].event.label(), records[1].event.label());

    let output = run(&["tail", "--from-start", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");

    // `HH:MM:SS.mmm bus Type#abcd status …`
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0].len(), 12);
    assert_eq!(fields[1..], [bus.as_str(), order.as_str(), "dispatched"]);
    assert!(lines[1].ends_with(&format!("{charge} dispatched child of {order}")));
    assert!(
        lines[2].contains(&format!("{charge} completed (")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains(&format!("child of {order}  ✅ support::charge_card (")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(r#") → "charged 1999 cents""#),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("✅ support::place_order ("),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains(") → 1999"), "{}", lines[3]);
    // A handler returning nothing has no arrow.
    assert!(lines[3].ends_with(")"), "{}", lines[3]);
    assert!(lines[3].contains("✅ support::audit ("), "{}", lines[3]);
    // The second order's audit failed.
    assert!(
        lines[7].contains("❌ support::audit (") && lines[7].ends_with("☠ AuditError: disk full"),
        "{}",
        lines[7]
    );
}

#[test]
fn tail_starts_with_the_last_ten_lines_like_tail() {
    let dir = temp_dir("tail-lines");
    let wal = dir.join("pings.jsonl");
    let text: String = (1..=25).map(support::ping_line).collect();
    std::fs::write(&wal, text).unwrap();

    let ids = |args: &[&str]| -> Vec<u64> {
        let output = run(args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let path = path_str(&wal);
    assert_eq!(
        ids(&["tail", "--json", path]),
        (16..=25).collect::<Vec<_>>()
    );
    assert_eq!(ids(&["tail", "--json", "-n", "3", path]), [23, 24, 25]);
    assert_eq!(
        ids(&["tail", "--json", "--lines", "0", path]),
        Vec::<u64>::new()
    );
    assert_eq!(ids(&["tail", "--json", "-n", "100", path]).len(), 25);
    assert_eq!(ids(&["tail", "--json", "--from-start", path]).len(), 25);
}

#[test]
fn json_lines_are_the_canonical_records() {
    let dir = temp_dir("tail-json");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);

    let output = run(&["tail", "--json", "--from-start", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let original: Vec<serde_json::Value> = std::fs::read_to_string(&wal)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let printed: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(printed.len(), 8);
    // A log written by this crate comes out as it went in (a completion record with its results).
    for (printed, original) in printed.iter().zip(&original) {
        assert_eq!(printed["event_id"], original["event_id"]);
        assert_eq!(printed["event_status"], original["event_status"]);
        assert_eq!(printed.get("event_results"), original.get("event_results"));
    }
    assert_eq!(printed[3], original[3]);
}

#[test]
fn json_lines_of_other_runtimes_logs_come_out_canonical() {
    for (name, records) in [
        ("wal/python_wal.jsonl", 2),
        ("wal/seed_1x.jsonl", 2),
        ("wire/python156/py_wal.jsonl", 4),
        ("wire/events/seed15_wal.jsonl", 3),
    ] {
        let path = golden(name);
        let output = run(&["tail", "--json", "--from-start", path_str(&path)]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let out = stdout(&output);
        assert_eq!(out.lines().count(), records, "{name}: {out}");
        for line in out.lines() {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            // Canonical: every `event_*` key, 30-character timestamps.
            assert!(json.get("event_version").is_some(), "{name}: {line}");
            assert!(json.get("event_schema").is_none(), "{name}: {line}");
            assert_eq!(json["event_created_at"].as_str().unwrap().len(), 30);
            AnyEvent::from_json(&json).unwrap();
        }
        // And the pretty form reads them too.
        let output = run(&["tail", "--from-start", path_str(&path)]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(stdout(&output).lines().count(), records);
    }
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let dir = temp_dir("tail-bad");
    let wal = dir.join("pings.jsonl");
    let text = [
        support::ping_line(1),
        "not json\n".to_owned(),
        "\n".to_owned(),
        r#"{"event_type":"Ping","event_status":"bogus"}"#.to_owned() + "\n",
        support::ping_line(5),
        r#"{"event_type":"Ping","#.to_owned(),
    ]
    .concat();
    std::fs::write(&wal, text).unwrap();
    let path = path_str(&wal);

    let output = run(&["tail", "--from-start", path]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 2);
    let err = stderr(&output);
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(warnings.len(), 3, "{err}");
    assert!(
        warnings[0].starts_with(&format!("warning: {path}:2: invalid JSON")),
        "{err}"
    );
    assert!(
        warnings[1].starts_with(&format!("warning: {path}:4: invalid `event_status`")),
        "{err}"
    );
    assert!(
        warnings[2].starts_with(&format!("warning: {path}:6: incomplete last line")),
        "{err}"
    );

    // Line numbers stay those of the file when tailing starts part-way.
    let output = run(&["tail", "-n", "3", path]);
    assert_eq!(stdout(&output).lines().count(), 1);
    let err = stderr(&output);
    assert!(err.contains(&format!("{path}:4: ")), "{err}");
    assert!(err.contains(&format!("{path}:6: ")), "{err}");
    assert!(!err.contains(&format!("{path}:2: ")), "{err}");

    // --strict: the same output, and exit status 1.
    let output = run(&["--strict", "tail", "--from-start", path]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output).lines().count(), 2);
    assert!(stderr(&output).ends_with("error: 3 bad lines in the input (--strict)\n"));
    let output = run(&[
        "tail",
        "--strict",
        "-n",
        "1",
        path_str(&golden("wal/python_wal.jsonl")),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn colours_only_when_asked_or_on_a_terminal() {
    let dir = temp_dir("tail-colour");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);
    let path = path_str(&wal);
    let coloured = |output: std::process::Output| {
        assert!(output.status.success());
        stdout(&output).contains('\x1b')
    };

    assert!(coloured(run(&["tail", "--color", "always", path])));
    assert!(!coloured(run(&["tail", "--color", "never", path])));
    // Auto: the tests' pipe is not a terminal.
    assert!(!coloured(run(&["tail", path])));
    assert!(coloured(
        support::bubus()
            .args(["tail", path])
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap()
    ));
    assert!(!coloured(
        support::bubus()
            .args(["tail", path])
            .env("CLICOLOR_FORCE", "1")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    ));
    // The words are the same either way.
    let plain = stdout(&run(&["tail", "--color", "never", path]));
    let always = stdout(&run(&["tail", "--color", "always", path]));
    assert_eq!(strip_ansi(&always), plain);
    // JSON is never coloured.
    assert!(!coloured(run(&[
        "tail", "--json", "--color", "always", path
    ])));
}

/// Removes `ESC [ … m` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_missing_log_is_an_error() {
    let dir = temp_dir("tail-missing");
    let missing = dir.join("nope.jsonl");
    let output = run(&["tail", path_str(&missing)]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!("error: cannot open {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_ends_tail_quietly() {
    let dir = temp_dir("tail-pipe");
    let wal = dir.join("pings.jsonl");
    let text: String = (1..=20_000).map(support::ping_line).collect();
    std::fs::write(&wal, text).unwrap();
    let mut child = support::bubus()
        .args(["tail", "--from-start", path_str(&wal)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("Ping#"));
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stderr(&output), "");
}
