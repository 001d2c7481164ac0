//! Span file path templates (`--jsonlines-path`, `OTEL_EXPORTER_JSONLINES_PATH`): each `*` becomes
//! 8 random `[a-z0-9]` (bsb-otel's rule), and `{rank}`, `{size}`, `{job}`, `{step}`, `{host}`,
//! `{pid}` are replaced with this rank's values.

use rand::Rng;
use std::path::{Path, PathBuf};

pub const DEFAULT_TEMPLATE: &str = "traces_*.jsonlines";

/// Values for the placeholders.
pub struct Placeholders<'a> {
    pub rank: u32,
    pub size: u32,
    pub job: &'a str,
    pub step: &'a str,
    pub host: &'a str,
    pub pid: u32,
}

pub fn expand(template: &str, p: &Placeholders) -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match c {
            '*' => {
                out.extend((0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char));
                rest = &rest[1..];
            }
            '{' => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in path template {template:?}"))?;
                let value = match &rest[1..end] {
                    "rank" => p.rank.to_string(),
                    "size" => p.size.to_string(),
                    "job" => safe(p.job),
                    "step" => safe(p.step),
                    "host" => safe(p.host),
                    "pid" => p.pid.to_string(),
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}} in path template {template:?} (known: {{rank}} {{size}} {{job}} {{step}} {{host}} {{pid}} and *)"
                        ))
                    }
                };
                out.push_str(&value);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(out)
}

/// Whether expanding `template` makes up a new random name (a `*`): such a file must not exist.
pub fn makes_new_name(template: &str) -> bool {
    template.contains('*')
}

/// The infix of a program's own span file beside the rank's (`traces_x.jsonlines` →
/// `traces_x.program.jsonlines`).
const PROGRAM_INFIX: &str = ".program";

/// Where a program with a jsonlines exporter of its own writes while the sink writes the rank's
/// file: beside it, with `.program` before the extension, so the glob that finds the rank files
/// (`traces_*.jsonlines`) finds it too, and one file never has two writers.
pub fn program_file(span_file: &Path) -> PathBuf {
    let name = span_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{}{PROGRAM_INFIX}{}", &name[..i], &name[i..]),
        None => format!("{name}{PROGRAM_INFIX}"),
    };
    span_file.with_file_name(name)
}

/// The rank's span file of a program file ([`program_file`]'s inverse), if `path` is one.
pub fn rank_file_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let at = name.rfind(PROGRAM_INFIX)?;
    let rest = &name[at + PROGRAM_INFIX.len()..];
    if !(rest.is_empty() || rest.starts_with('.') && !rest[1..].contains('.')) {
        return None;
    }
    Some(path.with_file_name(format!("{}{rest}", &name[..at])))
}

/// A value from the environment (`SLURM_JOB_ID`, a host name), reduced to a safe file-name
/// alphabet: `[A-Za-z0-9._+-]`, anything else becomes `_`, and a leading `.` too, so it can
/// neither climb out of the directory (`../x`) nor add one (`a/b`) nor hide the file.
fn safe(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '+' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Placeholders = Placeholders {
        rank: 3,
        size: 4,
        job: "77",
        step: "0",
        host: "n1",
        pid: 99,
    };

    #[test]
    fn expands_placeholders_and_stars() {
        assert_eq!(
            expand("t_{job}.{step}_{rank}of{size}@{host}-{pid}.jsonl", &P).unwrap(),
            "t_77.0_3of4@n1-99.jsonl"
        );
        let s = expand("traces_*.jsonlines", &P).unwrap();
        assert_eq!(s.len(), "traces_.jsonlines".len() + 8);
        assert!(s[7..15]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(expand("*", &P).unwrap(), expand("*", &P).unwrap());
    }

    #[test]
    fn environment_values_cannot_leave_the_directory() {
        let p = Placeholders {
            job: "../x",
            step: "a/b",
            host: "..",
            ..P
        };
        assert_eq!(
            expand("t_{job}_{step}_{host}.jsonl", &p).unwrap(),
            "t__._x_a_b__..jsonl"
        );
        assert_eq!(expand("{job}", &p).unwrap(), "_._x");
        assert_eq!(expand("{host}", &p).unwrap(), "_.");
        let p = Placeholders {
            job: "",
            host: "n1.cluster-a",
            ..P
        };
        assert_eq!(expand("{job}@{host}", &p).unwrap(), "_@n1.cluster-a");
        assert!(makes_new_name("t_*.jsonl") && !makes_new_name("t_{rank}.jsonl"));
    }

    #[test]
    fn the_safe_file_name_rule() {
        // The same table as in sdk/src/jsonlines.rs: the two copies of the rule must agree.
        for (value, safe_name) in [
            ("../x", "_._x"),
            ("..", "_."),
            ("a/b", "a_b"),
            ("", "_"),
            (".hidden", "_hidden"),
            ("12345.0", "12345.0"),
            ("n1.cluster-a", "n1.cluster-a"),
            ("a b+c\\d", "a_b+c_d"),
            ("nœud\0", "n_ud_"),
        ] {
            assert_eq!(safe(value), safe_name, "{value:?}");
        }
    }

    #[test]
    fn program_files_sit_beside_the_rank_file() {
        for (rank, program) in [
            (
                "/d/traces_ab12cd34.jsonlines",
                "/d/traces_ab12cd34.program.jsonlines",
            ),
            ("/d/job.3.jsonl", "/d/job.3.program.jsonl"),
            ("/d/spans", "/d/spans.program"),
            ("/d/.hidden", "/d/.hidden.program"),
        ] {
            let got = program_file(Path::new(rank));
            assert_eq!(got, Path::new(program));
            assert_eq!(rank_file_of(&got).as_deref(), Some(Path::new(rank)));
        }
        assert_eq!(rank_file_of(Path::new("/d/traces_x.jsonlines")), None);
        assert_eq!(rank_file_of(Path::new("/d/a.program.x.jsonl")), None);
    }

    #[test]
    fn rejects_unknown_and_unclosed_placeholders() {
        assert!(expand("{ranks}.jsonl", &P)
            .unwrap_err()
            .contains("unknown placeholder {ranks}"));
        assert!(expand("{rank.jsonl", &P).unwrap_err().contains("unclosed"));
    }
}
