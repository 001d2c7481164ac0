//! `otel-run summary`: the first question about every HPC run — which rank was slow, where, by
//! how much. Per span name: count, total, mean and max duration, and across ranks the
//! min/mean/max of each rank's total time in it and the imbalance (max/mean); per rank: wall time
//! and exit status from otel-run's process spans, and the slowest rank.
//!
//! Memory grows with names × ranks, never with the number of spans.

use crate::cli::{SummaryArgs, SummaryFormat};
use crate::input::{self, Counts};
use crate::{attr, semconv};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

pub fn main(args: SummaryArgs) -> anyhow::Result<()> {
    let result = run(args);
    // Said even when the run failed: the values were read as they were kept.
    crate::format::repair::warn_lossy();
    result
}

fn run(args: SummaryArgs) -> anyhow::Result<()> {
    let inputs = input::expand(&args.input.inputs)?;
    let mut counts = Counts::default();
    let mut summary = Summary::default();
    input::read_all(
        &inputs,
        args.input.skip_invalid,
        &mut counts,
        |_, _, data| {
            summary.add(&data);
            Ok(())
        },
    )?;
    // An empty table would read as "nothing ran", not as "nothing could be read".
    counts.require_spans("summarise")?;
    let text = match args.format {
        SummaryFormat::Table => summary.table(colour()),
        SummaryFormat::Csv => summary.csv(),
        SummaryFormat::Json => summary.json(),
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Default)]
struct NameStats {
    count: u64,
    total: u64,
    max: u64,
    /// rank → total time of this name on that rank.
    per_rank: BTreeMap<i64, u64>,
}

#[derive(Default, Clone)]
struct RankInfo {
    host: String,
    wall: u64,
    exit: String,
    error: bool,
}

#[derive(Default)]
pub struct Summary {
    names: BTreeMap<String, NameStats>,
    ranks: BTreeMap<i64, Option<RankInfo>>,
}

/// Across-rank figures of one span name.
struct Spread {
    ranks: usize,
    min: u64,
    mean: u64,
    max: u64,
    imbalance: f64,
}

impl NameStats {
    fn spread(&self) -> Option<Spread> {
        let totals: Vec<u64> = self.per_rank.values().copied().collect();
        let n = totals.len() as u64;
        if n == 0 {
            return None;
        }
        let sum: u128 = totals.iter().map(|t| *t as u128).sum();
        let mean = (sum / n as u128) as u64;
        let max = *totals.iter().max().expect("non-empty");
        Some(Spread {
            ranks: totals.len(),
            min: *totals.iter().min().expect("non-empty"),
            mean,
            max,
            imbalance: if sum == 0 {
                1.0
            } else {
                max as f64 * n as f64 / sum as f64
            },
        })
    }
}

impl Summary {
    pub fn add(&mut self, data: &opentelemetry_proto::tonic::trace::v1::TracesData) {
        for rs in &data.resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| &r.attributes[..])
                .unwrap_or(&[]);
            let host = attr::get_str(resource, semconv::HOST_NAME).unwrap_or("");
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let duration = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano);
                let stats = self.names.entry(span.name.clone()).or_default();
                stats.count += 1;
                stats.total += duration;
                stats.max = stats.max.max(duration);
                let Some(rank) = attr::rank(resource, &span.attributes) else {
                    continue;
                };
                *stats.per_rank.entry(rank).or_default() += duration;
                let slot = self.ranks.entry(rank).or_default();
                let is_process = attr::get_str(&span.attributes, semconv::SPAN_ROLE)
                    == Some(semconv::ROLE_PROCESS);
                if !is_process || slot.as_ref().is_some_and(|r| r.wall >= duration) {
                    continue;
                }
                let exit = match (
                    attr::get_str(&span.attributes, semconv::PROCESS_EXIT_SIGNAL_NAME),
                    attr::get_int(&span.attributes, semconv::PROCESS_EXIT_CODE),
                ) {
                    (Some(signal), _) => signal.to_string(),
                    (None, Some(code)) => code.to_string(),
                    (None, None) => "?".to_string(),
                };
                let error = span
                    .status
                    .as_ref()
                    .is_some_and(|s| s.code == StatusCode::Error as i32);
                *slot = Some(RankInfo {
                    host: host.to_string(),
                    wall: duration,
                    exit,
                    error,
                });
            }
        }
    }

    /// Span names by total time, largest first.
    fn rows(&self) -> Vec<(&String, &NameStats)> {
        let mut rows: Vec<_> = self.names.iter().collect();
        rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
        rows
    }

    fn slowest(&self) -> Option<(i64, &RankInfo, f64)> {
        let walls: Vec<(i64, &RankInfo)> = self
            .ranks
            .iter()
            .filter_map(|(r, i)| Some((*r, i.as_ref()?)))
            .collect();
        let (rank, info) = walls
            .iter()
            .max_by(|a, b| a.1.wall.cmp(&b.1.wall).then(b.0.cmp(&a.0)))?;
        let mean = walls.iter().map(|(_, i)| i.wall as f64).sum::<f64>() / walls.len() as f64;
        Some((
            *rank,
            info,
            if mean > 0.0 {
                info.wall as f64 / mean
            } else {
                1.0
            },
        ))
    }

    pub fn table(&self, colour: bool) -> String {
        let bold = |s: String| {
            if colour {
                format!("\x1b[1m{s}\x1b[0m")
            } else {
                s
            }
        };
        let mut out = String::new();
        let header = [
            "span name",
            "count",
            "total s",
            "mean s",
            "max s",
            "ranks",
            "rank min s",
            "rank mean s",
            "rank max s",
            "imbalance",
        ];
        let mut cells: Vec<Vec<String>> = Vec::new();
        for (name, s) in self.rows() {
            let mut row = vec![
                name.clone(),
                s.count.to_string(),
                secs(s.total),
                secs(s.total / s.count.max(1)),
                secs(s.max),
            ];
            match s.spread() {
                Some(sp) => row.extend([
                    sp.ranks.to_string(),
                    secs(sp.min),
                    secs(sp.mean),
                    secs(sp.max),
                    format!("{:.2}", sp.imbalance),
                ]),
                None => row.extend(["-", "-", "-", "-", "-"].map(String::from)),
            }
            cells.push(row);
        }
        out.push_str(&aligned(&header, &SPAN_LEFT, &cells, &bold));
        if !self.ranks.is_empty() {
            out.push('\n');
            let header = ["rank", "host", "wall s", "exit"];
            let cells: Vec<Vec<String>> = self
                .ranks
                .iter()
                .map(|(rank, info)| match info {
                    Some(i) => vec![
                        rank.to_string(),
                        i.host.clone(),
                        secs(i.wall),
                        if i.error {
                            format!("{} (error)", i.exit)
                        } else {
                            i.exit.clone()
                        },
                    ],
                    None => vec![
                        rank.to_string(),
                        "-".into(),
                        "-".into(),
                        "no process span".into(),
                    ],
                })
                .collect();
            out.push_str(&aligned(
                &header,
                &[false, true, false, true],
                &cells,
                &bold,
            ));
            if let Some((rank, info, factor)) = self.slowest() {
                out.push_str(&format!(
                    "\nslowest rank: {rank} ({} s wall, {factor:.2}x the mean)\n",
                    secs(info.wall)
                ));
            }
        }
        out
    }

    /// One CSV table: `span` rows fill the span columns, `rank` rows the rank columns;
    /// durations in nanoseconds.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "kind,name,count,total_ns,mean_ns,max_ns,ranks,rank_min_ns,rank_mean_ns,rank_max_ns,\
             imbalance,rank,host,wall_ns,exit,error\n",
        );
        for (name, s) in self.rows() {
            let spread = s.spread().map_or(",,,,".to_string(), |sp| {
                format!(
                    "{},{},{},{},{}",
                    sp.ranks, sp.min, sp.mean, sp.max, sp.imbalance
                )
            });
            out.push_str(&format!(
                "span,{},{},{},{},{},{spread},,,,,\n",
                csv_field(name),
                s.count,
                s.total,
                s.total / s.count.max(1),
                s.max
            ));
        }
        for (rank, info) in &self.ranks {
            match info {
                Some(i) => out.push_str(&format!(
                    "rank,,,,,,,,,,,{rank},{},{},{},{}\n",
                    csv_field(&i.host),
                    i.wall,
                    csv_field(&i.exit),
                    i.error
                )),
                None => out.push_str(&format!("rank,,,,,,,,,,,{rank},,,,\n")),
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let spans: Vec<_> = self
            .rows()
            .into_iter()
            .map(|(name, s)| {
                let mut v = json!({
                    "name": name,
                    "count": s.count,
                    "total_ns": s.total,
                    "mean_ns": s.total / s.count.max(1),
                    "max_ns": s.max,
                });
                if let Some(sp) = s.spread() {
                    v["ranks"] = sp.ranks.into();
                    v["rank_min_ns"] = sp.min.into();
                    v["rank_mean_ns"] = sp.mean.into();
                    v["rank_max_ns"] = sp.max.into();
                    v["imbalance"] = sp.imbalance.into();
                }
                v
            })
            .collect();
        let ranks: Vec<_> = self
            .ranks
            .iter()
            .map(|(rank, info)| match info {
                Some(i) => json!({"rank": rank, "host": i.host, "wall_ns": i.wall,
                                  "exit": i.exit, "error": i.error}),
                None => json!({"rank": rank, "process_span": false}),
            })
            .collect();
        let slowest = self.slowest().map(
            |(rank, info, factor)| json!({"rank": rank, "wall_ns": info.wall, "vs_mean": factor}),
        );
        let doc = json!({"spans": spans, "ranks": ranks, "slowest_rank": slowest});
        let mut s = serde_json::to_string_pretty(&doc).expect("serialising a Value");
        s.push('\n');
        s
    }
}

const SPAN_LEFT: [bool; 10] = [
    true, false, false, false, false, false, false, false, false, false,
];

/// Seconds with microsecond digits: exact for what people compare, and fixed-width.
fn secs(nanos: u64) -> String {
    format!(
        "{}.{:06}",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000 / 1000
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Columns padded to their widest cell: text (`left`) left-aligned, numbers right-aligned.
fn aligned(
    header: &[&str],
    left: &[bool],
    rows: &[Vec<String>],
    bold: &dyn Fn(String) -> String,
) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if left[i] {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = bold(line(header.iter().map(|s| s.to_string()).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_keep_microseconds() {
        assert_eq!(secs(1_234_567_890), "1.234567");
        assert_eq!(secs(999), "0.000000");
    }

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
