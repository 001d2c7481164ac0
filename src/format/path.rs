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
                    "job" => p.job.to_string(),
                    "step" => p.step.to_string(),
                    "host" => p.host.to_string(),
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
    fn rejects_unknown_and_unclosed_placeholders() {
        assert!(expand("{ranks}.jsonl", &P)
            .unwrap_err()
            .contains("unknown placeholder {ranks}"));
        assert!(expand("{rank.jsonl", &P).unwrap_err().contains("unclosed"));
    }
}
