//! Span file path templates (`--jsonlines-path`, `OTEL_EXPORTER_JSONLINES_PATH`): each `*` becomes
//! 8 random `[a-z0-9]` (bsb-otel's rule), and `{rank}`, `{size}`, `{job}`, `{step}`, `{host}`,
//! `{pid}` are replaced with this rank's values.

use rand::Rng;

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
    fn rejects_unknown_and_unclosed_placeholders() {
        assert!(expand("{ranks}.jsonl", &P)
            .unwrap_err()
            .contains("unknown placeholder {ranks}"));
        assert!(expand("{rank.jsonl", &P).unwrap_err().contains("unclosed"));
    }
}
