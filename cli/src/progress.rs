//! Progress of an online run, on stderr only (stdout carries nothing but the final result).
//!
//! Not a terminal (CI logs, `2>file`): one plain line per finished statement and per batch,
//!   `pgrepair: [1/3] line 12 CREATE INDEX CONCURRENTLY … done (1.24 s)`
//!   `pgrepair: [3/3] batch 7: 5000 rows (35000 so far)`
//! A terminal: one status line with a spinner and the running time, redrawn in place by a ticker
//! thread (a statement may run for hours without a word from the server), and the same plain
//! line for each finished statement. Batches only update the status line there.
//!
//! Statement text is the server's (it was reviewed, but it is still text from the database): it
//! is folded onto one line, shortened and escaped before it is shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pg_repair_core::text_safety;

use crate::output;

/// Which statement, for display.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// 1-based number and how many there are.
    pub n: i32,
    pub total: usize,
    /// File line of the statement's first line.
    pub line: i32,
    pub sql: &'a str,
}

/// What the online driver reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    Started(Step<'a>),
    /// One batch of a batch statement affected `rows` (> 0) rows.
    Batch {
        step: Step<'a>,
        batch: u32,
        rows: u64,
        so_far: u64,
    },
    /// The statement completed. `batches`: for a batch statement, how often it ran (the last
    /// time affecting 0 rows).
    Done {
        step: Step<'a>,
        batches: Option<u32>,
        rows: u64,
        elapsed: Duration,
    },
    Failed {
        step: Step<'a>,
        elapsed: Duration,
        reason: String,
    },
    /// A line of its own (`pgrepair: …`), e.g. that the run is being aborted.
    Message(String),
}

/// Where the driver's events go: the terminal, or (in tests) a list.
pub trait Progress {
    fn event(&mut self, e: Event<'_>);
}

/// How much of a statement a progress line shows.
const SQL_CHARS: usize = 72;

/// `[1/3] line 12 CREATE INDEX …`: the statement on one line, shortened, escaped.
pub fn label(step: &Step<'_>) -> String {
    format!(
        "[{}/{}] line {} {}",
        step.n,
        step.total,
        step.line,
        one_line(step.sql, SQL_CHARS)
    )
}

/// Whitespace runs (line ends included) become one space; controls and bidi characters become
/// visible escapes; more than `max` characters are cut with `…`.
pub fn one_line(sql: &str, max: usize) -> String {
    let folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    output::ellipsize(&text_safety::visible_line(&folded), max)
}

/// `1.24 s`, `4 min 05 s`, `2 h 03 min`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2} s")
    } else if s < 3600.0 {
        let s = s as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = s as u64 / 60;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

fn rows(n: u64) -> String {
    if n == 1 {
        "1 row".to_string()
    } else {
        format!("{n} rows")
    }
}

/// The plain line for an event (without the `pgrepair: ` prefix); None for `Started`, which
/// only the terminal's status line shows.
pub fn plain_line(e: &Event<'_>) -> Option<String> {
    match e {
        Event::Started(_) => None,
        Event::Batch {
            step,
            batch,
            rows: n,
            so_far,
        } => Some(format!(
            "[{}/{}] batch {batch}: {} ({so_far} so far)",
            step.n,
            step.total,
            rows(*n)
        )),
        Event::Done {
            step,
            batches,
            rows: n,
            elapsed: d,
        } => {
            let what = match batches {
                Some(b) => format!(
                    "done: {} {}, {}",
                    b,
                    if *b == 1 { "batch" } else { "batches" },
                    rows(*n)
                ),
                None if *n > 0 => format!("done: {}", rows(*n)),
                None => "done".to_string(),
            };
            Some(format!("{} {what} ({})", label(step), elapsed(*d)))
        }
        Event::Failed {
            step,
            elapsed: d,
            reason,
        } => Some(format!(
            "{} failed ({}): {}",
            label(step),
            elapsed(*d),
            one_line(reason, 200)
        )),
        Event::Message(m) => Some(m.clone()),
    }
}

/// The live display: plain lines, plus a status line when stderr is a terminal.
pub struct Display {
    live: Option<Live>,
}

struct Live {
    state: Arc<Mutex<LiveState>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct LiveState {
    /// What runs now (empty: nothing to show).
    label: String,
    since: Option<Instant>,
    /// (batch number, rows so far) of a batch statement.
    batch: Option<(u32, u64)>,
    frame: usize,
}

const SPINNER: [char; 4] = ['-', '\\', '|', '/'];

impl Display {
    /// A status line only on a terminal that can take one (not `TERM=dumb`).
    pub fn new() -> Display {
        let terminal = crate::output::stderr_takes_status_line();
        Display {
            live: terminal.then(Live::start),
        }
    }
}

impl Live {
    fn start() -> Live {
        let state = Arc::new(Mutex::new(LiveState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        draw(&mut lock(&state));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .ok()
        };
        Live {
            state,
            stop,
            ticker,
        }
    }
}

fn lock(state: &Mutex<LiveState>) -> MutexGuard<'_, LiveState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Redraws the status line; called with the state locked, so a statement that just ended (its
/// label cleared under the same lock) is never drawn again.
fn draw(s: &mut LiveState) {
    let Some(since) = s.since.filter(|_| !s.label.is_empty()) else {
        return;
    };
    s.frame = (s.frame + 1) % SPINNER.len();
    output::live_set(&status_text(
        SPINNER[s.frame],
        &s.label,
        s.batch,
        since.elapsed(),
        terminal_width(),
    ));
}

/// `- [1/3] line 12 CREATE INDEX … 12.30 s`, narrower than `width` (the last column stays
/// free, so the terminal never wraps the line).
fn status_text(
    spin: char,
    label: &str,
    batch: Option<(u32, u64)>,
    running: Duration,
    width: usize,
) -> String {
    let mut tail = String::new();
    if let Some((batch, so_far)) = batch {
        tail.push_str(&format!(" batch {batch}, {so_far} rows so far,"));
    }
    tail.push_str(&format!(" {}", elapsed(running)));
    let width = width.saturating_sub(1).max(1);
    let room = width.saturating_sub(2 + tail.chars().count());
    let text = format!("{spin} {}{tail}", output::ellipsize(label, room.max(8)));
    text.chars().take(width).collect()
}

impl Progress for Display {
    fn event(&mut self, e: Event<'_>) {
        if let Some(live) = &self.live {
            let mut s = lock(&live.state);
            match &e {
                Event::Started(step) => {
                    s.label = label(step);
                    s.since = Some(Instant::now());
                    s.batch = None;
                    draw(&mut s);
                    return;
                }
                Event::Batch { batch, so_far, .. } => {
                    s.batch = Some((*batch, *so_far));
                    return;
                }
                Event::Done { .. } | Event::Failed { .. } => {
                    s.label.clear();
                    output::live_clear();
                }
                Event::Message(_) => {}
            }
        }
        if let Some(line) = plain_line(&e) {
            errln!("pgrepair: {line}");
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(live) = &mut self.live {
            live.stop.store(true, Ordering::Relaxed);
            if let Some(t) = live.ticker.take() {
                let _ = t.join();
            }
            output::live_clear();
        }
    }
}

/// Columns of the terminal on stderr (80 when it cannot be told).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the zeroed local we pass; fd 2 is only read.
    let cols = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            ws.ws_col as usize
        } else {
            0
        }
    };
    if cols == 0 {
        80
    } else {
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(sql: &str) -> Step<'_> {
        Step {
            n: 1,
            total: 3,
            line: 12,
            sql,
        }
    }

    #[test]
    fn statement_lines() {
        let sql = "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_idx\n    ON public.orders (customer_id)";
        let done = plain_line(&Event::Done {
            step: step(sql),
            batches: None,
            rows: 0,
            elapsed: Duration::from_millis(1240),
        })
        .unwrap();
        assert_eq!(
            done,
            "[1/3] line 12 CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_idx ON \
             publi… done (1.24 s)"
        );
        let batch = plain_line(&Event::Batch {
            step: Step { n: 3, ..step(sql) },
            batch: 7,
            rows: 5000,
            so_far: 35000,
        })
        .unwrap();
        assert_eq!(batch, "[3/3] batch 7: 5000 rows (35000 so far)");
        let last = plain_line(&Event::Done {
            step: step("UPDATE t SET x = 1"),
            batches: Some(8),
            rows: 35000,
            elapsed: Duration::from_secs(245),
        })
        .unwrap();
        assert_eq!(
            last,
            "[1/3] line 12 UPDATE t SET x = 1 done: 8 batches, 35000 rows (4 min 05 s)"
        );
        let failed = plain_line(&Event::Failed {
            step: step("ALTER TABLE t VALIDATE CONSTRAINT c"),
            elapsed: Duration::from_millis(200),
            reason: "check constraint \"c\" is violated\nby some row".into(),
        })
        .unwrap();
        assert_eq!(
            failed,
            "[1/3] line 12 ALTER TABLE t VALIDATE CONSTRAINT c failed (0.20 s): check \
             constraint \"c\" is violated by some row"
        );
        assert!(plain_line(&Event::Started(step("x"))).is_none());
    }

    #[test]
    fn statement_text_cannot_act_on_the_terminal() {
        let l = label(&step("UPDATE t\r\n SET a = '\u{1b}[2J\u{202e}'\t"));
        assert_eq!(l, "[1/3] line 12 UPDATE t SET a = '\\x1b[2J\\u202e'");
        assert!(!l.chars().any(text_safety::is_unsafe));
        assert_eq!(one_line(&"x".repeat(100), 10).chars().count(), 10);
    }

    #[test]
    fn the_status_line_fits_the_terminal() {
        let l = label(&step(
            "UPDATE t SET x = 1 WHERE id IN (SELECT id FROM t LIMIT 5000)",
        ));
        let t = status_text('-', &l, None, Duration::from_millis(12300), 200);
        assert_eq!(
            t,
            "- [1/3] line 12 UPDATE t SET x = 1 WHERE id IN (SELECT id FROM t LIMIT 5000) 12.30 s"
        );
        let t = status_text('|', &l, Some((7, 35000)), Duration::from_secs(3), 60);
        assert_eq!(t.chars().count(), 59, "{t}");
        assert!(t.ends_with("… batch 7, 35000 rows so far, 3.00 s"), "{t}");
        assert!(
            status_text('/', &l, None, Duration::ZERO, 0)
                .chars()
                .count()
                <= 1
        );
    }

    #[test]
    fn durations() {
        assert_eq!(elapsed(Duration::from_millis(250)), "0.25 s");
        assert_eq!(elapsed(Duration::from_secs(61)), "1 min 01 s");
        assert_eq!(elapsed(Duration::from_secs(7380)), "2 h 03 min");
    }
}
