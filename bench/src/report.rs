//! Timing helpers and the markdown/JSON report.

use std::time::{Duration, Instant};

/// Runs `f` `runs` times (after one warm-up) and returns the median duration.
pub fn median<R>(runs: usize, mut f: impl FnMut() -> R) -> Duration {
    std::hint::black_box(f());
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// A markdown table being built.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a title and column headers.
    pub fn new(title: &str, header: &[&str]) -> Table {
        Table { title: title.into(), header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Markdown text.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n| {} |\n|{}\n", self.title, self.header.join(" | "), "---|".repeat(self.header.len()));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }

    /// JSON value (title, header, rows).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"title": self.title, "header": self.header, "rows": self.rows})
    }
}

/// Rows per second, human readable (e.g. `12.3M/s`).
pub fn rate(rows: usize, time: Duration) -> String {
    let per_sec = rows as f64 / time.as_secs_f64();
    if per_sec >= 1e6 { format!("{:.1}M/s", per_sec / 1e6) } else { format!("{:.0}k/s", per_sec / 1e3) }
}

/// Microseconds with one decimal.
pub fn micros(time: Duration) -> String {
    format!("{:.1} µs", time.as_secs_f64() * 1e6)
}

/// A ratio with two decimals and an `x`.
pub fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

/// Prints a finished suite's tables under `## {heading}` (then `footer`) as
/// markdown and writes them with `meta` to `target/bench-results/{name}.json`;
/// returns the markdown.
pub fn publish(name: &str, heading: &str, tables: &[Table], mut meta: serde_json::Value, footer: &str) -> std::io::Result<String> {
    let mut markdown = format!("## {heading}\n\n");
    for table in tables {
        markdown.push_str(&table.markdown());
        markdown.push('\n');
    }
    markdown.push_str(footer);
    println!("{markdown}");
    let dir = weir_tests::repo_root().join("target/bench-results");
    std::fs::create_dir_all(&dir)?;
    meta["tables"] = tables.iter().map(Table::json).collect();
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&meta)?)?;
    Ok(markdown)
}

/// Whether to run the table named `table`: `WEIR_BENCH_TABLES` (a comma
/// list, e.g. `same,decode`) picks tables; all run when it is unset.
pub fn wanted(table: &str) -> bool {
    std::env::var("WEIR_BENCH_TABLES").map_or(true, |picked| picked.split(',').any(|t| t.trim() == table))
}
