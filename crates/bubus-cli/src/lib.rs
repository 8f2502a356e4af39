//! The `bubus` command: tail, replay and convert [`bubus`] write-ahead logs, print event trees,
//! and watch a live bus.
//!
//! ```console
//! $ cargo install bubus-cli        # or: cargo run -p bubus-cli -- <command> …
//! $ bubus tail -f orders.jsonl     # watch a live bus
//! $ bubus tree orders.jsonl        # the parent/child tree of everything it did
//! $ bubus monitor orders.jsonl     # a live web page over the log
//! ```
//!
//! This crate is the command; its library part only holds this manual and [`run`], which the
//! binary calls. `bubus help <command>` prints the same text for each command.
//!
//! # Inputs
//!
//! * A **write-ahead log** (WAL): the JSONL file [`bubus::wal::WalMiddleware`] (or
//!   `EventBus::builder(..).wal(path)`) writes — a dispatch record when an event is dispatched and
//!   a completion record, with every handler's result, when it completes. Logs written by the
//!   Python runtime's `WALEventBusMiddleware` and by Python `bubus` 1.x read too. A bad line is
//!   reported on stderr as `warning: FILE:LINE: what is wrong` and the lines after it are read.
//! * A **history mirror**: the SQLite database [`bubus_sqlite::SqliteHistoryMirror`] (or the
//!   Python runtime's `SQLiteHistoryMirrorMiddleware`) writes, tables `events_log` and
//!   `event_results_log`. Opened read-only, so a live mirror can be read while it is written. A
//!   row whose id or JSON is not text (NULL, a BLOB) or does not decode is reported like a bad
//!   line and skipped; the event's other rows still count.
//! * A **bridge table**: the `abxbus_events` table (or another name, `--table`) that SQLite
//!   bridges write — `bubus_sqlite::SqliteTransport` or the Python and TypeScript
//!   `SQLiteEventBridge` — one row per event, read in insertion order. `tree`, `tail` (with
//!   `--follow`, polling for new rows) and `convert` (to a log) read it; a database with a
//!   history mirror's tables is read as a mirror unless `--table` is given. A row that does not
//!   make an event is reported as `warning: FILE: TABLE row ROWID: what is wrong` and skipped.
//!
//! # Commands
//!
//! ## `bubus tail <WAL> [-f] [--json] [--from-start | -n N]`
//!
//! One line per record, like `tail`: the last 10 lines of the log by default (`-n N`, or
//! `--from-start` for all of it):
//!
//! ```text
//! 16:40:37.772 Shop#3e1f OrderPlaced#d6f9 dispatched
//! 16:40:37.772 Shop#3e1f ChargeCard#5f4b dispatched child of OrderPlaced#d6f9
//! 16:40:37.773 Shop#3e1f ChargeCard#5f4b completed (812µs) child of OrderPlaced#d6f9  ✅ shop::charge (40µs) → "charged 1999 cents"
//! 16:40:37.773 Shop#3e1f OrderPlaced#d6f9 completed (1.3ms)  ✅ shop::place_order (1.1ms) → 1999  ❌ shop::audit (15µs) ☠ AuditError: disk full
//! ```
//!
//! Each line holds the record's time (UTC: the dispatch time of a dispatch record, the completion
//! time of a completion record), the buses the event went through (its `event_path`), the event
//! (`Type#` and the last four hex digits of its id), `dispatched` or `completed` with the time
//! from dispatch to completion, the parent event when it has one, and each handler's outcome with
//! its run time: `✅ handler → result` (compact JSON, cut at 60 characters; `forwarded` for a
//! forwarding handler) or `❌ handler ☠ ErrorType: message`. Handler names lose their leading
//! module path (`my_app::shop::charge` → `shop::charge`).
//!
//! `--json` prints each record as one line of canonical JSON instead
//! ([`AnyEvent::to_json`](bubus::AnyEvent::to_json), and
//! [`to_json_with_results`](bubus::AnyEvent::to_json_with_results) for completion records): the
//! same form whatever runtime wrote the log, ready for `jq`.
//!
//! ### The live monitor: `--follow`
//!
//! `bubus tail -f app.jsonl` watches a bus that writes a log: it prints the last lines, then every
//! record as it is appended — each event once when it is dispatched and once when it completes,
//! with its duration and every handler's outcome. It follows the log across truncation and
//! rotation, waits for it to be created if it does not exist yet, and stops on Ctrl-C (or
//! SIGTERM) with exit status 0. `-n 0 -f` shows only what happens from now on: for a log that
//! does not exist yet, that is every line of it once it appears.
//!
//! ## `bubus tree <FILE> [--format auto|wal|sqlite]`
//!
//! The parent/child tree of the events in a log or a mirror, as
//! [`EventBus::log_tree`](bubus::EventBus::log_tree) draws it:
//!
//! ```text
//! └── OrderPlaced#d6f9 [16:40:37.772 (0.001s)]
//!     ├── ✅ Shop#3e1f.shop::place_order#8eab [16:40:37.772 (0.001s)] → 1999
//!     │   └── ChargeCard#5f4b [16:40:37.772 (0.001s)]
//!     │       └── ✅ Shop#3e1f.shop::charge#c421 [16:40:37.773 (0.000s)] → 'charged 1999 cents'
//!     └── ❌ Shop#3e1f.shop::audit#0b7e [16:40:37.773 (0.000s)] ☠️ AuditError: disk full
//! ```
//!
//! Each event is rebuilt from its latest state — the last record of it in a log; its last
//! `events_log` row and the last row of each of its results in a mirror — and drawn as read by
//! [`bubus::tree::write_tree`], a line at a time. An event whose parent is not in the input is a root;
//! past 32 levels the indentation is a `┆+N` count, so any depth prints in linear output; events
//! on a parent cycle are drawn after the trees, marked `↻`. The format is found from the
//! content (an SQLite database starts with `SQLite format 3`); `--format` overrides it.
//!
//! ## `bubus replay <WAL> [--to FILE|-] [--children skip|skip-if-parent-replayed|all]`
//!
//! Feeds the log into a fresh bus (`--bus-name`, default `Replay`) with
//! [`wal::replay_with`](bubus::wal::replay_with): each event once, in log order, as a fresh
//! pending event with its logged id, lineage and payload. The bus's one handler (`"*"`) forwards
//! every event it receives, as a line of canonical JSON, to `--to` (appended to, created if
//! missing; stdout by default) — the stream a JSONL bridge would carry, to feed another bus or
//! runtime. Child events are skipped by default, because the handlers that receive their parents
//! recreate them; `--children all` writes every logged event. A summary goes to stderr at the
//! end:
//!
//! ```text
//! note: replayed 2 events from shop.jsonl to stdout in 1.2ms (2 duplicate records, 2 child events skipped)
//! ```
//!
//! ## `bubus convert <IN> <OUT> [--from auto|wal|sqlite] [--force]`
//!
//! * **WAL → SQLite**: the rows a [`SqliteHistoryMirror`](bubus_sqlite::SqliteHistoryMirror) on
//!   the logging bus would have written, written by the mirror itself (its `Middleware` hooks are
//!   called with each record): a dispatch record is an `events_log` row with phase `pending`; a
//!   completion record is an `event_results_log` row per result (phase `completed`) and then an
//!   `events_log` row (phase `completed`). An event row names the bus the event was dispatched on
//!   (from `event_path`); its full id comes from the handler results of the log, or, if the log
//!   never names it in full, is made up so the label (`Name#ab12`) is the same.
//! * **SQLite → WAL**: one record per event, in dispatch order: its latest state with the latest
//!   row of each of its results — a completion record (with results) for a completed event.
//!
//! So `convert app.jsonl app.sqlite3 && convert app.sqlite3 back.jsonl` keeps every event, with
//! its lineage, payload and results. OUT is written beside itself under a temporary name and
//! moved into place when complete; it must not exist (or must be empty) unless `--force`.
//!
//! ## `bubus monitor <SOURCE>… [--replay-to TARGET] [--group NAME] [--host IP] [--port N] [--token T]`
//!
//! The live web monitor ([`bubus_monitor`]): serves a page at `http://127.0.0.1:7474/` (the URL
//! is printed on stdout) over one or more sources at once — logs being written (followed),
//! history mirrors (polled) and bridges — merged by event id: event trees across buses and
//! processes that grow in place, one row per handler, failures grouped by error type and
//! handler, counts, rates and latency percentiles, filters, search, pause, deep links
//! (`#event=ID`), the raw JSON, durable bridges' dead letters, and Prometheus metrics at
//! `/metrics`. A SOURCE is `wal:PATH`, `sqlite:PATH`, a path whose content tells, or a bridge —
//! none of them takes an event from a real consumer:
//!
//! * `jsonl:PATH`: the lines appended from then on;
//! * `unix:PATH` (or `unix://PATH`): a socket of the monitor's own, bound at PATH (never one a
//!   live listener serves), that senders write to;
//! * `http://host:port/path`: a listener of the monitor's own that senders POST to;
//! * `redis://…`, `nats://…`, `postgresql://…` (the family's forms): the plain mode, one more
//!   subscriber;
//! * `redis+durable://…`, `nats+durable://…`, `postgresql+durable://…`: Redis Streams,
//!   JetStream, the PostgreSQL outbox, read through a consumer group of the monitor's own
//!   (`--group`, default `bubus-monitor`; created with new events only, kept on the server),
//!   which gets its own copy of every event — and the engine's dead letters, listed on the page
//!   and replayed from it after a confirmation.
//!
//! With `--replay-to inbox.jsonl` (or a bridge: `jsonl:`, `unix:`, `http://`, an engine's URL)
//! the page replays an event or a failure group (after a confirmation) as fresh copies. Bound to
//! a non-loopback `--host`, it requires an access token (`--token`, `BUBUS_MONITOR_TOKEN`, or a
//! generated one, carried by the printed URL). Ctrl-C stops it (status 0).
//!
//! ```console
//! $ bubus monitor shop.jsonl --replay-to shop-inbox.jsonl
//! bubus monitor: http://127.0.0.1:7474/
//! ```
//!
//! # Output, colours and progress
//!
//! Records and trees go to stdout; diagnostics (`warning:` for a bad line or row, `error:` when
//! the command cannot go on, `note:` for summaries) to stderr. `--color auto` (the default)
//! colours only output that goes to a terminal, and not when `NO_COLOR` is set
//! (`CLICOLOR_FORCE=1` forces colours); `--color always` and `--color never` decide for you.
//! `replay` and `convert` show a progress bar on stderr when it is a terminal and the log has at
//! least 10 000 lines (`--no-progress` to hide it). A closed stdout (`bubus tail log | head -1`)
//! ends the command quietly.
//!
//! # Exit status
//!
//! | status | when |
//! | --- | --- |
//! | 0 | success (bad lines are reported but do not fail the command), or `tail -f` stopped by Ctrl-C |
//! | 1 | `--strict`, and the input had bad lines or rows |
//! | 2 | a usage error, or a file that cannot be opened, read or written |

#![warn(missing_docs)]

mod bridge_table;
mod cli;
mod convert;
mod dead_letters;
mod mirror;
mod monitor;
mod output;
mod pretty;
mod replay;
mod tail;
mod tree;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use output::{Diagnostics, Failure};

/// Runs the `bubus` command with the process's arguments and returns its exit status (see the
/// [crate docs](crate#exit-status)).
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let diag = Diagnostics::new(cli.color);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            diag.error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match &cli.command {
            Command::Tail(args) => tail::run(args, cli.color, &diag).await,
            Command::Tree(args) => tree::run(args, cli.color, &diag),
            Command::Replay(args) => replay::run(args, &diag).await,
            Command::Convert(args) => convert::run(args, &diag),
            Command::DeadLetters(args) => dead_letters::run(args).await,
            Command::Monitor(args) => monitor::run(args, &diag).await,
        }
    });
    match outcome {
        Ok(()) | Err(Failure::BrokenPipe) => {}
        Err(failure) => {
            diag.error(failure);
            return ExitCode::from(2);
        }
    }
    let bad = diag.bad_count();
    if cli.strict && bad > 0 {
        diag.error(format_args!(
            "{bad} bad {} in the input (--strict)",
            if bad == 1 { "line" } else { "lines" }
        ));
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
