//! The command line: every subcommand, flag and default, with the help text `--help` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status: 0 when all went well; 1 with --strict when the input had bad lines or rows (they are
reported on stderr and skipped either way); 2 on a usage error or when a file cannot be read or
written.

Colours: --color auto (the default) colours only what goes to a terminal, and never when NO_COLOR
is set; CLICOLOR_FORCE=1 forces them on.

Examples:
  bubus tail -f orders.jsonl           watch a live bus that writes orders.jsonl
  bubus tail --json --from-start orders.jsonl | jq .event_type
  bubus tree orders.jsonl              the parent/child tree, with every handler's outcome
  bubus tree history.sqlite3           the same from a SqliteHistoryMirror database
  bubus replay orders.jsonl --to replayed.jsonl
  bubus convert orders.jsonl history.sqlite3
  bubus convert history.sqlite3 orders.jsonl
  bubus monitor orders.jsonl           a live web page over the log (http://127.0.0.1:7474/)
  bubus monitor a.jsonl b.sqlite3 --replay-to inbox.jsonl
  bubus monitor unix:/tmp/monitor.sock http://127.0.0.1:8788/events
  bubus monitor redis+durable://127.0.0.1:6379/0/orders   events and dead letters

  bubus dead-letters list redis://127.0.0.1:6379/0/orders
  bubus dead-letters replay --all nats://127.0.0.1:4222/orders";

/// Tail, replay and convert bubus write-ahead logs, print event trees, watch a live bus.
///
/// A write-ahead log (WAL) is the JSONL file `bubus::wal::WalMiddleware` writes: a dispatch record
/// when an event is dispatched and a completion record, with every handler's result, when it
/// completes. Logs written by the Python runtime's WALEventBusMiddleware and by Python bubus 1.x
/// read too. A history mirror is the SQLite database `bubus_sqlite::SqliteHistoryMirror` (or the
/// Python runtime's SQLiteHistoryMirrorMiddleware) writes.
#[derive(Debug, Parser)]
#[command(name = "bubus", version, after_help = AFTER_HELP, max_term_width = 100)]
pub(crate) struct Cli {
    /// When to colour the output: auto (only on a terminal, and not when NO_COLOR is set),
    /// always, never.
    #[arg(
        long,
        value_enum,
        global = true,
        value_name = "WHEN",
        default_value_t = ColorWhen::Auto
    )]
    pub(crate) color: ColorWhen,

    /// Exit with status 1 if the input has bad lines (or rows). They are reported on stderr and
    /// skipped with or without this flag.
    #[arg(long, global = true)]
    pub(crate) strict: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Tail(TailArgs),
    Tree(TreeArgs),
    Replay(ReplayArgs),
    Convert(ConvertArgs),
    DeadLetters(DeadLettersArgs),
    Monitor(MonitorArgs),
}

/// Print the records of a write-ahead log, one line each; with --follow, watch a live bus.
///
/// Each record is shown as: the time (UTC; dispatch time for dispatch records, completion time
/// for completion records), the buses it went through (`event_path`), the event (`Type#abcd`),
/// `dispatched` or `completed` with the event's duration, its parent, and every handler's
/// outcome with its duration: `✅ handler → result` or `❌ handler ☠ ErrorType: message`.
///
/// Like tail(1), it starts with the last 10 lines of the log (--lines N for more, --from-start
/// for all of it). Bad lines are reported on stderr with their line number, and tailing goes on.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The write-ahead log.
    #[arg(value_name = "WAL")]
    pub(crate) wal: PathBuf,

    /// Keep going as the log grows: print each record as it is appended, until Ctrl-C (which
    /// exits with status 0). Follows the log across truncation and rotation, and waits for it
    /// to be created if it does not exist yet.
    #[arg(short, long)]
    pub(crate) follow: bool,

    /// Print each record as one line of canonical JSON (the form every bubus runtime reads;
    /// completion records with their `event_results`) instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,

    /// Start at the first line of the log.
    #[arg(long, conflicts_with = "lines")]
    pub(crate) from_start: bool,

    /// Start with the last N lines of the log (0 with --follow: only what is appended from now
    /// on). [default: 10]
    #[arg(short = 'n', long, value_name = "N")]
    pub(crate) lines: Option<u64>,

    /// The bridge table to read when WAL is a bridge database (the table SQLite bridges write;
    /// default: the only one, or `abxbus_events`).
    #[arg(long, value_name = "NAME")]
    pub(crate) table: Option<String>,
}

/// Print the parent/child tree of the events in a write-ahead log, a history mirror or a bridge
/// table.
///
/// The events are rebuilt from their latest state: the last record of each event in a log, or
/// the last `events_log` row of each event in a mirror with the latest row of each of its
/// results. The tree is `EventBus::log_tree`'s: each event with its creation time and duration,
/// each handler with its status, duration and result or error, and the events each handler
/// dispatched nested under it. Events whose parent is not in the input are shown as roots; events
/// whose parents form a cycle are drawn after the trees, marked ↻.
#[derive(Debug, Args)]
pub(crate) struct TreeArgs {
    /// The write-ahead log (JSONL), history mirror or bridge database (SQLite) to read.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The kind of FILE. auto: an SQLite database if it starts like one (or is empty and named
    /// *.sqlite, *.sqlite3 or *.db), a write-ahead log otherwise.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub(crate) format: Format,

    /// The bridge table to read when FILE is a bridge database (the table SQLite bridges write;
    /// default: the only one, or `abxbus_events`). Without it, a database with a history
    /// mirror's tables is read as a mirror.
    #[arg(long, value_name = "NAME")]
    pub(crate) table: Option<String>,
}

/// Replay a write-ahead log through a fresh bus that writes each event to a JSONL file or stdout.
///
/// This is `bubus::wal::replay_with` into a new bus (named by --bus-name) whose only handler
/// forwards every event it receives, as one line of canonical JSON, to the target: in log order,
/// each event once (a dispatch record and a completion record are one event), with the id,
/// lineage and payload it was logged with, as a fresh pending event. Lines are appended to the
/// target (created if missing); the target can be fed to another bus or runtime.
///
/// A summary goes to stderr at the end; a progress bar too while a long log replays on a terminal.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The write-ahead log to replay.
    #[arg(value_name = "WAL")]
    pub(crate) wal: PathBuf,

    /// Where to append the events, one JSON line each; `-` is stdout.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub(crate) to: PathBuf,

    /// Which logged child events (those with a parent) to replay. skip: none, as their parents'
    /// handlers recreate them when the output is dispatched again; skip-if-parent-replayed: those
    /// whose parent is not in the log; all: every event.
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = Children::Skip)]
    pub(crate) children: Children,

    /// The name of the replaying bus (it shows up in every event's `event_path`).
    #[arg(long, value_name = "NAME", default_value = "Replay")]
    pub(crate) bus_name: String,

    /// How many replayed events may be in flight at once.
    #[arg(long, value_name = "N", default_value_t = bubus::wal::DEFAULT_MAX_IN_FLIGHT)]
    pub(crate) max_in_flight: usize,

    /// Never show a progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// Convert a write-ahead log to a history mirror (SQLite), or a history mirror to a log.
///
/// WAL → SQLite: each dispatch record becomes an `events_log` row (phase `pending`), each
/// completion record an `event_results_log` row per handler result (phase `completed`) and an
/// `events_log` row (phase `completed`), written by `bubus_sqlite::SqliteHistoryMirror` itself,
/// so the tables are exactly a mirror's. Rows name the bus from the event's `event_path` (the bus
/// it was dispatched on; its id is taken from the log's handler results, or made up from the
/// label's four hex digits when the log never names it in full).
///
/// SQLite → WAL: one record per event, in dispatch order: its latest `events_log` state with the
/// latest row of each of its results — a completion record for a completed event.
///
/// OUT is written to a temporary file first and moved into place at the end. It must not exist
/// (or be empty) unless --force is given.
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The log or database to read.
    #[arg(value_name = "IN")]
    pub(crate) input: PathBuf,

    /// The database or log to write: the other kind of file.
    #[arg(value_name = "OUT")]
    pub(crate) output: PathBuf,

    /// The kind of IN (auto: an SQLite database if it starts like one, a write-ahead log
    /// otherwise).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub(crate) from: Format,

    /// The bridge table to read when IN is a bridge database (the table SQLite bridges write;
    /// default: the only one, or `abxbus_events`). Without it, a database with a history
    /// mirror's tables is read as a mirror.
    #[arg(long, value_name = "NAME")]
    pub(crate) table: Option<String>,

    /// Replace OUT if it exists.
    #[arg(long)]
    pub(crate) force: bool,

    /// Never show a progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// Serve a live web page over logs, history mirrors and bridges: event trees, handlers, failures,
/// rates, dead letters.
///
/// Each SOURCE is one of:
///
/// * a write-ahead log being written (followed as it grows, waited for if it does not exist
///   yet) or an SQLite history mirror (polled for new rows); `wal:PATH` and `sqlite:PATH` say
///   which, otherwise its content (or name) tells;
/// * `jsonl:PATH`, a JSONL bridge: the lines appended from then on;
/// * `unix:PATH` (or `unix://PATH`), a socket bridge: the monitor binds its own socket at PATH
///   (never one a live listener serves) and shows what senders write to it — point a process's
///   socket bridge (or a second one) at it;
/// * `http://host:port/path`, an HTTP bridge: the monitor listens there itself (port 0: on a
///   free port), prints the URL it listens on under the page's, and shows what is POSTed to it —
///   point a process's HTTP bridge (or a second one) at it. An address taken at start is warned
///   about and tried again;
/// * a bridge engine's URL in the family's form — `redis://host:port/db/channel`,
///   `nats://host:port/subject`, `postgresql://…/db[/table]` — listened to in its plain mode
///   (pub/sub, core NATS, LISTEN): every listener gets every event, so the monitor takes
///   nothing from the other consumers;
/// * the same with `+durable` (`redis+durable://…`, `nats+durable://…`,
///   `postgresql+durable://…/db[/table]`): Redis Streams, JetStream, the PostgreSQL outbox,
///   read through a consumer group of the monitor's own (--group), which gets its own copy of
///   every event: acking it there never takes work from the real consumers' groups. The group
///   starts with the events published from then on and stays on the server (a restarted
///   monitor first shows what was published while it was away). The page also lists the
///   engine's dead letters (every group's) and replays them, after a confirmation.
///
/// Events from every source are merged by event id into one view: trees across buses and
/// processes, one row per handler, failures grouped by error type and handler, counts, rates
/// and latency percentiles, and Prometheus metrics at /metrics.
///
/// With --replay-to, the page can replay an event or a failure group (after a confirmation):
/// fresh copies (new ids, same payload) are appended to the JSONL inbox, which the process
/// dispatches from, or sent on a bridge (`jsonl:PATH`, `unix:PATH`, `http://…`, an engine's
/// URL, `redis+durable://…`, `nats+durable://…`).
///
/// Binds 127.0.0.1 by default. Bound to another address, it requires an access token
/// (--token, or a generated one): the printed URL carries it.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Logs (JSONL), history mirrors (SQLite), bridges (jsonl:PATH, unix:PATH,
    /// http://host:port/path) and bridge URLs (redis://, nats://, postgresql://, and their
    /// +durable forms) to watch.
    #[arg(value_name = "SOURCE", required = true)]
    pub(crate) sources: Vec<String>,

    /// The address to listen on. Anything but a loopback address requires a token.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,

    /// The port to listen on (0: any free port; the URL printed tells which).
    #[arg(long, value_name = "PORT", default_value_t = 7474)]
    pub(crate) port: u16,

    /// The access token the page and /metrics require (default: none on a loopback address,
    /// a generated one elsewhere).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BUBUS_MONITOR_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// A JSONL inbox replayed events are appended to, or a bridge they are sent on (jsonl:PATH,
    /// unix:PATH, http://…, redis://…, nats://…, redis+durable://…, nats+durable://…); repeat
    /// for several, the page lets you choose. Without it the page cannot replay events (dead
    /// letters replay without it).
    #[arg(long, value_name = "TARGET")]
    pub(crate) replay_to: Vec<PathBuf>,

    /// The most events kept in memory; the oldest completed trees are evicted first.
    #[arg(long, value_name = "N", default_value_t = bubus_monitor::DEFAULT_MAX_EVENTS)]
    pub(crate) max_events: usize,

    /// The consumer group (Redis Streams group, JetStream durable consumer, PostgreSQL outbox
    /// group) the monitor reads durable sources through. It is the monitor's own: the groups of
    /// the real consumers lose nothing. Give each monitor watching the same bridge its own.
    #[arg(long, value_name = "NAME", default_value = "bubus-monitor")]
    pub(crate) group: String,
}

/// `--color`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// `tree --format`, `convert --from`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Auto,
    Wal,
    Sqlite,
}

/// `replay --children`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Children {
    Skip,
    SkipIfParentReplayed,
    All,
}

impl From<Children> for bubus::wal::ReplayChildren {
    fn from(children: Children) -> Self {
        match children {
            Children::Skip => bubus::wal::ReplayChildren::Skip,
            Children::SkipIfParentReplayed => bubus::wal::ReplayChildren::SkipIfParentReplayed,
            Children::All => bubus::wal::ReplayChildren::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

/// List or replay the dead letters of a durable bridge: the events that kept failing on the
/// receiving side (Redis Streams: the stream `bubus:<channel>:dead`; NATS JetStream: the
/// stream `<stream>_DEAD`).
///
/// URL is the bridge's: `redis[s]://host:port/<db>/<channel>`, `nats://host:port/<subject>`
/// (channel and subject default to `abxbus_events`) or `postgresql://user@host:port/db[/table]`;
/// the `+durable` forms `bubus monitor` takes (`redis+durable://…`) are the same.
#[derive(Clone, Debug, Args)]
pub(crate) struct DeadLettersArgs {
    #[command(subcommand)]
    pub(crate) action: DeadLettersAction,
}

#[derive(Clone, Debug, Subcommand)]
pub(crate) enum DeadLettersAction {
    /// One line per dead letter, oldest first: its id, the event (`Type#abcd`), how many times it
    /// was delivered, the consumer group it failed in, and the last error.
    List {
        /// The bridge's URL.
        url: String,
        /// At most this many.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: usize,
        /// One JSON object per line, with the event itself.
        #[arg(long)]
        json: bool,
        /// NATS: the stream's name, when it is not the default `BUBUS_<subject>`.
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// PostgreSQL: only this consumer group's.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// Put a dead letter (or all of them) back on its stream: every group receives it again,
    /// and groups that already handled it skip it.
    Replay {
        /// The bridge's URL.
        url: String,
        /// The dead letter's id (as `list` prints it).
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// NATS: the stream's name, when it is not the default `BUBUS_<subject>`.
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// PostgreSQL: only this consumer group's.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
}
