//! The grammars of attribute values (`"60/min"`, `"30s"`, `"16KiB"`, tool names) and the scan
//! for invisible characters. Plain `fn(&str) -> Result<T, String>`: the error is the message the
//! user sees, so each says what is wrong and what to write instead.
//!
//! A proc macro cannot depend on the runtime, so `rate` is this crate's own copy of the grammar
//! of `mcp_secure::Rate::parse`; the two are kept in step by their unit tests.

use crate::ast::{Approval, FsEntry, FsTarget, Kind, Net, Rate};

/// The most calls a rate may allow per period.
pub(crate) const MAX_RATE: u32 = 1_000_000;
/// The longest timeout, in milliseconds (24 hours).
pub(crate) const MAX_TIMEOUT_MS: u64 = 24 * 3_600_000;
/// The largest `max_input`, in bytes (64 MiB).
pub(crate) const MAX_INPUT: u64 = 64 * 1024 * 1024;
/// The longest tool name.
pub(crate) const MAX_NAME: usize = 64;

/// `"read" | "write" | "delete" | "admin"`.
pub(crate) fn kind(text: &str) -> Result<Kind, String> {
    match text {
        "read" => Ok(Kind::Read),
        "write" => Ok(Kind::Write),
        "delete" => Ok(Kind::Delete),
        "admin" => Ok(Kind::Admin),
        other => Err(format!(
            "unknown kind `{other}`; expected one of: `read`, `write`, `delete`, `admin`"
        )),
    }
}

/// `"none" | "explicit" | "human"`.
pub(crate) fn approval(text: &str) -> Result<Approval, String> {
    match text {
        "none" => Ok(Approval::None),
        "explicit" => Ok(Approval::Explicit),
        "human" => Ok(Approval::Human),
        other => Err(format!(
            "unknown approval `{other}`; expected one of: `none`, `explicit`, `human`"
        )),
    }
}

/// `"N/unit"`: `N` calls (1 to 1,000,000) per `sec`, `min`, `hour` or `day` (also `s`,
/// `second`, `m`, `minute`, `h`, `d`).
pub(crate) fn rate(text: &str) -> Result<Rate, String> {
    let Some((count, unit)) = text.split_once('/') else {
        return Err(format!(
            "rate `{text}` must look like `60/min`: a number of calls, `/`, then `sec`, `min`, `hour` or `day`"
        ));
    };
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "rate `{text}` must start with a whole number of calls, like `60/min`"
        ));
    }
    let per_secs = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        other => {
            return Err(format!(
                "rate unit `{other}` is not one of `sec`, `min`, `hour`, `day`; write e.g. `60/min`"
            ));
        }
    };
    let unit = unit.trim();
    let count = match count.parse::<u64>() {
        Ok(0) => {
            return Err(format!(
                "rate `{text}` allows no call at all; write at least `1/{unit}`, or remove `rate`"
            ));
        }
        Ok(n) if n <= u64::from(MAX_RATE) => n as u32,
        _ => {
            return Err(format!(
                "rate `{text}` is more than {MAX_RATE} calls; write at most `{MAX_RATE}/{unit}`, or remove `rate`"
            ));
        }
    };
    Ok(Rate { count, per_secs })
}

/// `"500ms" | "30s" | "2m" | "1h"`: a positive whole number and a unit, at most 24 hours.
/// Returns milliseconds.
pub(crate) fn timeout(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "timeout `{text}` must be a whole number followed by `ms`, `s`, `m` or `h`, like `30s`"
        ));
    }
    let per_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "timeout `{text}` has no unit; write `{text}s` or `{text}ms`"
            ));
        }
        u if u.starts_with('.') => {
            return Err(format!(
                "timeout `{text}` must be a whole number; write it in a smaller unit, like `1500ms`"
            ));
        }
        other => {
            return Err(format!(
                "timeout unit `{other}` is not one of `ms`, `s`, `m`, `h`; write e.g. `30s`"
            ));
        }
    };
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_ms));
    match ms {
        Some(0) => Err(format!(
            "a timeout of `{text}` would stop every call at once; write a positive duration such as `30s`"
        )),
        Some(ms) if ms <= MAX_TIMEOUT_MS => Ok(ms),
        _ => Err(format!(
            "timeout `{text}` is longer than the maximum; write at most `24h`"
        )),
    }
}

/// `"16KiB"`: a positive whole number and a unit (`B`, `KiB`, `MiB`, `KB`, `MB`), at most
/// 64 MiB. Returns bytes.
pub(crate) fn max_input(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "max_input `{text}` must be a whole number followed by `B`, `KiB`, `MiB`, `KB` or `MB`, like `16KiB`"
        ));
    }
    let per: u64 = match unit {
        "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "KB" => 1000,
        "MB" => 1_000_000,
        "" => {
            return Err(format!(
                "max_input `{text}` has no unit; write `{text}B` or `{text}KiB`"
            ));
        }
        other => {
            return Err(format!(
                "max_input unit `{other}` is not one of `B`, `KiB`, `MiB`, `KB`, `MB`; write e.g. `16KiB`"
            ));
        }
    };
    let bytes = number.parse::<u64>().ok().and_then(|n| n.checked_mul(per));
    match bytes {
        Some(0) => Err(format!(
            "a max_input of `{text}` would refuse every call; write a positive size such as `16KiB`"
        )),
        Some(b) if b <= MAX_INPUT => Ok(b),
        _ => Err(format!(
            "max_input `{text}` is more than the maximum; write at most `64MiB`"
        )),
    }
}

/// `"process"`: the only sandbox so far.
pub(crate) fn sandbox(text: &str) -> Result<(), String> {
    match text {
        "process" => Ok(()),
        other => Err(format!(
            "unknown sandbox `{other}`; the only sandbox is `process`: write `sandbox = \"process\"`"
        )),
    }
}

/// `"none" | "loopback" | "any"`.
pub(crate) fn net(text: &str) -> Result<Net, String> {
    match text {
        "none" => Ok(Net::None),
        "loopback" => Ok(Net::Loopback),
        "any" => Ok(Net::Any),
        other => Err(format!(
            "unknown net `{other}`; expected one of: `none`, `loopback`, `any`"
        )),
    }
}

/// The longest root name in `fs`.
pub(crate) const MAX_ROOT_NAME: usize = 64;

/// `"reports, scratch, /srv/cache:rw"`: entries separated by commas, each the name of a root
/// configured at run time, `scratch` (the call's private folder, always read-write) or an
/// absolute path; read-only unless followed by `:rw` (`:ro` spells the default out).
pub(crate) fn fs(text: &str) -> Result<Vec<FsEntry>, String> {
    if text.trim().is_empty() {
        return Err(
            "`fs` is empty; list what the tool may use, like `fs = \"reports, scratch\"`, or remove `fs`"
                .into(),
        );
    }
    let mut entries: Vec<FsEntry> = Vec::new();
    for raw in text.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            return Err(format!(
                "`fs = \"{text}\"` has an empty entry; separate entries with single commas, like `fs = \"reports, scratch\"`"
            ));
        }
        let (target, mode) = match entry.rsplit_once(':') {
            Some((target, mode)) => (target.trim(), Some(mode.trim())),
            None => (entry, None),
        };
        if target.is_empty() {
            return Err(format!(
                "`{entry}` names nothing; write a root name, `scratch` or an absolute path before the mode, like `reports:rw`"
            ));
        }
        let write = match mode {
            None | Some("ro") => false,
            Some("rw") => true,
            Some(other) => {
                return Err(format!(
                    "unknown mode `{other}` in `{entry}`; write `{target}` (read-only) or `{target}:rw` (read-write)"
                ));
            }
        };
        let target = if target.starts_with('/') {
            FsTarget::Path(absolute_path(target)?)
        } else if target.contains('/') {
            return Err(format!(
                "`{target}` is a relative path; write an absolute path such as `/{target}`, or the name of a root configured with `SandboxConfig::root`"
            ));
        } else if target == "scratch" {
            if mode == Some("ro") {
                return Err("`scratch` is always read-write; write `scratch`".into());
            }
            FsTarget::Scratch
        } else {
            root_name(target)?;
            FsTarget::Root(target.to_owned())
        };
        if entries.iter().any(|e| e.target == target) {
            let shown = match &target {
                FsTarget::Root(name) => name.as_str(),
                FsTarget::Path(path) => path.as_str(),
                FsTarget::Scratch => "scratch",
            };
            return Err(format!("`{shown}` is listed twice in `fs`; list it once"));
        }
        let write = write || target == FsTarget::Scratch;
        entries.push(FsEntry { target, write });
    }
    Ok(entries)
}

/// An absolute path in `fs`: no `.`, `..` or empty components, not `/` itself.
fn absolute_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(
            "`/` would open the whole filesystem to the tool; name the folders it needs".into(),
        );
    }
    for part in trimmed[1..].split('/') {
        match part {
            "" => {
                return Err(format!(
                    "path `{path}` has an empty component (`//`); write it with single slashes"
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "path `{path}` contains `{part}`; write the path without `.` or `..` components"
                ));
            }
            _ => {}
        }
    }
    if let Some(c) = trimmed.chars().find(|c| c.is_control()) {
        return Err(format!(
            "path `{}` contains {}; write a plain path",
            path.escape_debug(),
            code_point(c)
        ));
    }
    Ok(trimmed.to_owned())
}

/// A root name in `fs`: 1 to 64 of `A-Z a-z 0-9 _ -`.
fn root_name(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        let shown = if c.is_whitespace() || c.is_control() || invisible(&c.to_string()).is_some() {
            code_point(c)
        } else {
            format!("`{c}`")
        };
        return Err(format!(
            "root name `{}` contains {shown}; root names use only ASCII letters, digits, `_` and `-` (write an absolute path with a leading `/`)",
            name.escape_debug()
        ));
    }
    if name.chars().count() > MAX_ROOT_NAME {
        return Err(format!(
            "root name `{name}` is longer than {MAX_ROOT_NAME} characters; use a shorter name"
        ));
    }
    Ok(())
}

/// A tool name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub(crate) fn name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(
            "the tool name is empty; write a name such as `name = \"get_customer\"`".into(),
        );
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        let shown = if c.is_whitespace() || c.is_control() || invisible(&c.to_string()).is_some() {
            format!("U+{:04X}", c as u32)
        } else {
            format!("`{c}`")
        };
        return Err(format!(
            "tool name `{}` contains {shown}; names may use only ASCII letters, digits, `_`, `-` and `.`",
            text.escape_debug()
        ));
    }
    let len = text.chars().count();
    if len > MAX_NAME {
        return Err(format!(
            "tool name `{text}` is {len} characters long; write a name of at most {MAX_NAME}"
        ));
    }
    Ok(())
}

/// The first invisible or bidirectional-control character in `text`, if any. Such characters
/// let a tool description say something to the model that a human reviewer does not see
/// (tool poisoning).
pub(crate) fn invisible(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        matches!(
            c as u32,
            // C0 controls but tab and line breaks, DEL and C1 controls
            0x00..=0x08
                | 0x0B..=0x0C
                | 0x0E..=0x1F
                | 0x7F..=0x9F
                | 0x00AD
                | 0x034F
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x2028..=0x2029
                | 0x3164
                | 0xFFA0
                | 0xFFF9..=0xFFFB
                | 0x1D173..=0x1D17A
                | 0xE0100..=0xE01EF
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x2064
                | 0x2066..=0x206F
                | 0xFEFF
                | 0x1BCA0..=0x1BCA3
                | 0xE0000..=0xE007F
        )
    })
}

/// `U+202E`, the way messages name a character.
pub(crate) fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_approvals() {
        assert_eq!(kind("read"), Ok(Kind::Read));
        assert_eq!(kind("admin"), Ok(Kind::Admin));
        assert_eq!(
            kind("reed").unwrap_err(),
            "unknown kind `reed`; expected one of: `read`, `write`, `delete`, `admin`"
        );
        assert!(kind("Read").is_err());
        assert_eq!(approval("human"), Ok(Approval::Human));
        assert!(approval("manual").unwrap_err().contains("`manual`"));
    }

    #[test]
    fn rate_accepts_every_unit_spelling() {
        for (text, count, per) in [
            ("60/min", 60, 60),
            ("5/sec", 5, 1),
            ("5/s", 5, 1),
            ("5/second", 5, 1),
            ("2/m", 2, 60),
            ("2/minute", 2, 60),
            ("10/hour", 10, 3_600),
            ("10/h", 10, 3_600),
            ("1/day", 1, 86_400),
            ("1/d", 1, 86_400),
            (" 7 / min ", 7, 60),
            ("1000000/sec", 1_000_000, 1),
        ] {
            assert_eq!(
                rate(text),
                Ok(Rate {
                    count,
                    per_secs: per
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn rate_refuses_nonsense() {
        assert!(rate("0/min").unwrap_err().contains("allows no call"));
        assert!(rate("60/fortnight").unwrap_err().contains("`fortnight`"));
        assert!(rate("-1/min").unwrap_err().contains("whole number"));
        assert!(rate("+1/min").unwrap_err().contains("whole number"));
        assert!(rate("1.5/min").unwrap_err().contains("whole number"));
        assert!(rate("60").unwrap_err().contains("must look like `60/min`"));
        assert!(rate("/min").is_err());
        assert!(rate("").is_err());
        assert!(
            rate("1000001/sec")
                .unwrap_err()
                .contains("at most `1000000/sec`")
        );
        assert!(
            rate("99999999999999999999999/sec")
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn timeout_grammar() {
        assert_eq!(timeout("500ms"), Ok(500));
        assert_eq!(timeout("30s"), Ok(30_000));
        assert_eq!(timeout("2m"), Ok(120_000));
        assert_eq!(timeout("1h"), Ok(3_600_000));
        assert_eq!(timeout("24h"), Ok(MAX_TIMEOUT_MS));
        assert!(timeout("-1s").unwrap_err().contains("whole number"));
        assert!(timeout("0s").unwrap_err().contains("positive"));
        assert!(timeout("0ms").unwrap_err().contains("positive"));
        assert!(timeout("1.5s").unwrap_err().contains("`1500ms`"));
        assert!(timeout("10x").unwrap_err().contains("unit `x`"));
        assert!(timeout("30").unwrap_err().contains("no unit"));
        assert!(timeout("25h").unwrap_err().contains("at most `24h`"));
        assert!(timeout("1441m").unwrap_err().contains("at most `24h`"));
        assert!(
            timeout("99999999999999999999h")
                .unwrap_err()
                .contains("at most")
        );
        assert!(timeout("").is_err());
        assert!(timeout(" 30s").is_err());
        assert!(timeout("30 s").is_err());
    }

    #[test]
    fn max_input_grammar() {
        assert_eq!(max_input("16KiB"), Ok(16 * 1024));
        assert_eq!(max_input("512B"), Ok(512));
        assert_eq!(max_input("2MiB"), Ok(2 * 1024 * 1024));
        assert_eq!(max_input("10KB"), Ok(10_000));
        assert_eq!(max_input("3MB"), Ok(3_000_000));
        assert_eq!(max_input("64MiB"), Ok(MAX_INPUT));
        assert!(max_input("65MiB").unwrap_err().contains("at most `64MiB`"));
        assert!(max_input("0KiB").unwrap_err().contains("positive"));
        assert!(max_input("16kib").unwrap_err().contains("unit `kib`"));
        assert!(max_input("16GB").unwrap_err().contains("unit `GB`"));
        assert!(max_input("16").unwrap_err().contains("no unit"));
        assert!(max_input("-1B").unwrap_err().contains("whole number"));
        assert!(max_input("KiB").is_err());
    }

    #[test]
    fn sandbox_and_net() {
        assert_eq!(sandbox("process"), Ok(()));
        assert!(sandbox("container").unwrap_err().contains("`container`"));
        assert_eq!(net("none"), Ok(Net::None));
        assert_eq!(net("loopback"), Ok(Net::Loopback));
        assert_eq!(net("any"), Ok(Net::Any));
        assert_eq!(
            net("internet").unwrap_err(),
            "unknown net `internet`; expected one of: `none`, `loopback`, `any`"
        );
    }

    #[test]
    fn fs_grammar() {
        let root = |n: &str, write| FsEntry {
            target: FsTarget::Root(n.into()),
            write,
        };
        let path = |p: &str, write| FsEntry {
            target: FsTarget::Path(p.into()),
            write,
        };
        let scratch = FsEntry {
            target: FsTarget::Scratch,
            write: true,
        };
        assert_eq!(fs("reports"), Ok(vec![root("reports", false)]));
        assert_eq!(
            fs(" reports:rw , scratch, /srv/cache/ , /etc/app.toml:ro, out_2-b"),
            Ok(vec![
                root("reports", true),
                scratch.clone(),
                path("/srv/cache", false),
                path("/etc/app.toml", false),
                root("out_2-b", false),
            ])
        );
        assert_eq!(fs("scratch:rw"), Ok(vec![scratch]));
        assert!(fs("").unwrap_err().contains("`fs` is empty"));
        assert!(fs("a,,b").unwrap_err().contains("empty entry"));
        assert!(fs("a,").unwrap_err().contains("empty entry"));
        assert!(fs(":rw").unwrap_err().contains("names nothing"));
        assert_eq!(
            fs("reports:write").unwrap_err(),
            "unknown mode `write` in `reports:write`; write `reports` (read-only) or `reports:rw` (read-write)"
        );
        assert!(
            fs("data/reports")
                .unwrap_err()
                .contains("`data/reports` is a relative path")
        );
        assert!(fs("scratch:ro").unwrap_err().contains("always read-write"));
        assert!(fs("/").unwrap_err().contains("whole filesystem"));
        assert!(fs("/srv/../etc").unwrap_err().contains("`..`"));
        assert!(fs("/srv//x").unwrap_err().contains("empty component"));
        assert!(fs("my reports").unwrap_err().contains("U+0020"));
        assert!(fs("rep.orts").unwrap_err().contains("`.`"));
        assert!(fs(&"r".repeat(65)).unwrap_err().contains("longer than 64"));
        assert!(fs("a, a:rw").unwrap_err().contains("listed twice"));
    }

    #[test]
    fn name_grammar() {
        assert_eq!(name("get_customer"), Ok(()));
        assert_eq!(name("orders.v2-list"), Ok(()));
        assert_eq!(name(&"a".repeat(64)), Ok(()));
        assert!(name(&"a".repeat(65)).unwrap_err().contains("65 characters"));
        assert!(name("").unwrap_err().contains("empty"));
        assert!(name("get customer").unwrap_err().contains("U+0020"));
        assert!(name("get/customer").unwrap_err().contains("`/`"));
        assert!(name("café").unwrap_err().contains("`é`"));
        assert!(name("a\u{200B}b").unwrap_err().contains("U+200B"));
    }

    #[test]
    fn invisible_characters_are_found() {
        assert_eq!(invisible("Get one customer.\nBy id.\r\n\tIndented."), None);
        // Emoji presentation selectors are ordinary text.
        assert_eq!(invisible("heart \u{2764}\u{FE0F}"), None);
        assert_eq!(invisible("accents é, emoji 🦀, CJK 顧客"), None);
        for c in [
            '\u{00AD}',
            '\u{0000}',
            '\u{001B}',
            '\u{007F}',
            '\u{0085}',
            '\u{034F}',
            '\u{061C}',
            '\u{115F}',
            '\u{17B4}',
            '\u{180E}',
            '\u{2028}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FFFB}',
            '\u{1D173}',
            '\u{E0100}',
            '\u{200B}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{E0000}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{206A}',
            '\u{206F}',
            '\u{1BCA0}',
            '\u{1BCA3}',
        ] {
            assert_eq!(
                invisible(&format!("ok {c} ok")),
                Some(c),
                "{}",
                code_point(c)
            );
        }
        assert_eq!(invisible("\u{2065}\u{2010}\u{E0080}"), None);
        assert_eq!(code_point('\u{202E}'), "U+202E");
        assert_eq!(code_point('\u{E0041}'), "U+E0041");
    }
}
