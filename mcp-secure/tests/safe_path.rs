//! `SafePath` against the attack and allowed corpora, `SafeRoot` on a real directory with
//! symlinks that escape it, a `SafePath` tool parameter through the whole pipeline, and
//! property tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::types::path::{PathError, PathRule, SafePath, SafeRoot, Symlinks};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Corpus

fn corpus(name: &str) -> Vec<(usize, Option<String>, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/path_corpus")
        .join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (rule, json) = match raw.split_once('\t') {
            Some((rule, json)) => (Some(rule.to_owned()), json),
            None => (None, raw),
        };
        let value: String = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{name}:{}: not a JSON string: {e}", i + 1));
        lines.push((i + 1, rule, value));
    }
    lines
}

#[test]
fn every_attack_is_refused_by_its_rule() {
    let attacks = corpus("attacks.txt");
    assert!(attacks.len() >= 30, "only {} attacks", attacks.len());
    let mut failures = Vec::new();
    for (line, rule, path) in &attacks {
        let rule = rule.as_deref().expect("attack lines name a rule");
        assert!(
            PathRule::from_name(rule).is_some(),
            "line {line}: unknown rule `{rule}`"
        );
        match SafePath::parse(path) {
            Ok(_) => failures.push(format!(
                "line {line}: accepted, expected `{rule}`: {path:?}"
            )),
            Err(e) if e.rule().as_str() != rule => failures.push(format!(
                "line {line}: refused by `{}` ({}), expected `{rule}`: {path:?}",
                e.rule(),
                e.detail()
            )),
            Err(e) => {
                // The message never repeats the path.
                if path.len() > 3 && e.to_string().contains(path.as_str()) {
                    failures.push(format!("line {line}: message echoes the path: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn generated_attacks_are_refused() {
    let long = "a/".repeat(600);
    assert_eq!(
        SafePath::parse(&long).unwrap_err().rule(),
        PathRule::TooLong
    );
    let long_name = "x".repeat(SafePath::MAX_COMPONENT_LEN + 1);
    assert_eq!(
        SafePath::parse(&format!("dir/{long_name}"))
            .unwrap_err()
            .rule(),
        PathRule::ComponentTooLong
    );
    // Every C0 control character, DEL and the C1 range.
    for c in (0u32..0x20).chain(0x7f..0xa0) {
        let c = char::from_u32(c).unwrap();
        let rule = SafePath::parse(&format!("a{c}b")).unwrap_err().rule();
        let want = if c == '\0' {
            PathRule::NulByte
        } else {
            PathRule::ControlChar
        };
        assert_eq!(rule, want, "U+{:04X}", u32::from(c));
    }
}

#[test]
fn every_allowed_path_is_accepted() {
    let allowed = corpus("allowed.txt");
    assert!(allowed.len() >= 20);
    for (line, _, path) in &allowed {
        let p = SafePath::parse(path).unwrap_or_else(|e| panic!("line {line}: {e}: {path:?}"));
        assert_eq!(p.as_str(), path);
    }
}

#[test]
fn refusals_say_where() {
    let e = SafePath::parse("a/b/../../../etc/passwd").unwrap_err();
    assert_eq!(
        e.to_string(),
        "path refused by rule `parent_dir`: component 3 is `..`"
    );
    let e = SafePath::parse("report\u{0}.png").unwrap_err();
    assert_eq!(e.detail(), "NUL byte at byte 6");
    let e = SafePath::parse("x\u{202E}gpj.exe").unwrap_err();
    assert_eq!(
        e.detail(),
        "control or invisible character U+202E at byte 1"
    );
}

// ---------------------------------------------------------------------------------------------
// A real directory with symlinks

/// `base/root` is the root; `base/outside` holds a secret next to it.
struct Tree {
    _base: tempfile::TempDir,
    root_path: PathBuf,
    outside: PathBuf,
}

fn tree() -> Tree {
    let base = tempfile::tempdir().unwrap();
    let root_path = base.path().join("root");
    let outside = base.path().join("outside");
    fs::create_dir_all(root_path.join("docs/sub")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "top secret").unwrap();
    fs::write(root_path.join("file.txt"), "hello").unwrap();
    fs::write(root_path.join("docs/a.md"), "# A").unwrap();
    fs::write(root_path.join("big.bin"), vec![7u8; 10_000]).unwrap();
    fs::write(root_path.join("latin1.txt"), [0xe9u8, 0x74, 0xe9]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let root_abs = fs::canonicalize(&root_path).unwrap();
        // Inside the root: followed by default.
        symlink("file.txt", root_path.join("link_in")).unwrap();
        symlink("../file.txt", root_path.join("docs/up")).unwrap();
        symlink("docs", root_path.join("docs_link")).unwrap();
        // Escapes.
        symlink("/etc/passwd", root_path.join("leak_abs")).unwrap();
        symlink("/etc", root_path.join("etc_dir")).unwrap();
        symlink("../outside/secret.txt", root_path.join("leak_rel")).unwrap();
        symlink("../outside", root_path.join("leak_dir")).unwrap();
        symlink("../../outside", root_path.join("docs/deep_leak")).unwrap();
        symlink("sub/../../../outside", root_path.join("docs/dotdot_leak")).unwrap();
        // Absolute, even though it points inside: refused.
        symlink(root_abs.join("file.txt"), root_path.join("abs_in")).unwrap();
        // Dangling escape: creating through it must not create outside.
        symlink("../outside/new.txt", root_path.join("dangling")).unwrap();
        symlink("loop", root_path.join("loop")).unwrap();
    }
    Tree {
        _base: base,
        root_path,
        outside,
    }
}

fn p(s: &str) -> SafePath {
    SafePath::parse(s).unwrap()
}

fn rule_of(r: Result<impl Sized, PathError>) -> Option<&'static str> {
    match r {
        Ok(_) => None,
        Err(e) => Some(e.rule().map(|r| r.as_str()).unwrap_or("io")),
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.insert(entry.path(), fs::read(entry.path()).unwrap_or_default());
    }
    out
}

#[test]
fn reads_files_inside_the_root() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap();
    assert_eq!(root.read(&p("file.txt")).unwrap(), b"hello");
    assert_eq!(root.read_to_string(&p("docs/a.md")).unwrap(), "# A");
    assert_eq!(
        root.read_to_string_capped(&p("file.txt"), 5).unwrap(),
        "hello"
    );
    assert!(root.exists(&p("docs/a.md")));
    assert!(!root.exists(&p("docs/missing.md")));
    assert_eq!(root.metadata(&p("big.bin")).unwrap().len(), 10_000);
}

#[cfg(unix)]
#[test]
fn symlinks_inside_the_root_are_followed_by_default() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap();
    assert_eq!(root.read(&p("link_in")).unwrap(), b"hello");
    assert_eq!(root.read(&p("docs/up")).unwrap(), b"hello");
    assert_eq!(root.read(&p("docs_link/a.md")).unwrap(), b"# A");
}

#[cfg(unix)]
#[test]
fn symlinks_that_escape_are_refused() {
    let t = tree();
    let before = snapshot(&t.outside);
    let root = SafeRoot::new(&t.root_path).unwrap();
    for path in [
        "leak_abs",
        "etc_dir/passwd",
        "etc_dir/hostname",
        "leak_rel",
        "leak_dir/secret.txt",
        "docs/deep_leak/secret.txt",
        "docs/dotdot_leak/secret.txt",
        "abs_in",
    ] {
        assert_eq!(
            rule_of(root.read(&p(path))),
            Some("escapes_root"),
            "read {path}"
        );
        assert_eq!(
            rule_of(root.open(&p(path))),
            Some("escapes_root"),
            "open {path}"
        );
        assert!(!root.exists(&p(path)), "{path}");
    }
    // Writes through escaping links neither create nor change anything outside.
    for path in [
        "leak_rel",
        "leak_dir/secret.txt",
        "leak_dir/new.txt",
        "dangling",
    ] {
        assert_eq!(
            rule_of(root.write(&p(path), "pwned")),
            Some("escapes_root"),
            "write {path}"
        );
        assert_eq!(
            rule_of(root.append(&p(path))),
            Some("escapes_root"),
            "append {path}"
        );
    }
    assert_eq!(
        rule_of(root.create_new(&p("leak_dir/fresh.txt"))),
        Some("escapes_root")
    );
    assert_eq!(
        rule_of(root.create_dir_all(&p("leak_dir/newdir/x"))),
        Some("escapes_root")
    );
    assert_eq!(snapshot(&t.outside), before, "nothing outside changed");
    assert_eq!(
        fs::read_to_string(t.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
    // A symlink loop is an I/O error, not a hang.
    assert!(root.read(&p("loop")).is_err());
}

#[cfg(unix)]
#[test]
fn refuse_mode_refuses_every_symlink() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path)
        .unwrap()
        .symlinks(Symlinks::Refuse);
    assert_eq!(root.read(&p("file.txt")).unwrap(), b"hello");
    assert_eq!(root.read(&p("docs/a.md")).unwrap(), b"# A");
    for (path, rule) in [
        ("link_in", "symlink"),
        ("docs/up", "symlink"),
        ("docs_link/a.md", "symlink"),
        ("leak_dir/secret.txt", "symlink"),
        ("leak_abs", "symlink"),
    ] {
        assert_eq!(rule_of(root.read(&p(path))), Some(rule), "{path}");
    }
    let e = root.read(&p("docs_link/a.md")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "path refused by rule `symlink`: component 1 is a symlink"
    );
    assert_eq!(rule_of(root.write(&p("link_in"), "x")), Some("symlink"));
    assert_eq!(root.read(&p("file.txt")).unwrap(), b"hello");
    assert_eq!(
        rule_of(root.remove_file(&p("docs_link/a.md"))),
        Some("symlink")
    );
}

#[test]
fn dot_dot_that_would_stay_inside_is_refused_at_parse() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap();
    // `docs/../file.txt` would name `file.txt`, which exists and is readable...
    assert_eq!(root.read(&p("file.txt")).unwrap(), b"hello");
    // ...but is refused before anything is opened.
    let e = SafePath::parse("docs/../file.txt").unwrap_err();
    assert_eq!(e.rule(), PathRule::ParentDir);
    // The same for `.` and empty components.
    assert_eq!(
        SafePath::parse("./file.txt").unwrap_err().rule(),
        PathRule::CurrentDir
    );
    assert_eq!(
        SafePath::parse("docs//a.md").unwrap_err().rule(),
        PathRule::EmptyComponent
    );
}

#[test]
fn caps_and_file_kinds() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap().max_read(1000);
    assert_eq!(rule_of(root.read(&p("big.bin"))), Some("too_large"));
    assert_eq!(
        root.read_capped(&p("big.bin"), 10_000).unwrap().len(),
        10_000
    );
    assert_eq!(
        rule_of(root.read_to_string_capped(&p("file.txt"), 4)),
        Some("too_large")
    );
    assert_eq!(rule_of(root.read(&p("docs"))), Some("not_a_file"));
    assert_eq!(rule_of(root.create(&p("docs"))), Some("io"));
    let e = root.read_to_string(&p("latin1.txt")).unwrap_err();
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::InvalidData));
    let e = root.read(&p("missing.txt")).unwrap_err();
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
    assert_eq!(ToolError::from(e).code().as_str(), "not_found");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let t = tree();
    let fifo = t.root_path.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo unavailable; skipped");
        return;
    }
    let root = SafeRoot::new(&t.root_path).unwrap();
    // Without O_NONBLOCK this open would wait for a writer forever.
    assert_eq!(rule_of(root.read(&p("pipe"))), Some("not_a_file"));
}

#[test]
fn writes_stay_inside() {
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap();
    root.create_dir_all(&p("out/2024")).unwrap();
    root.write(&p("out/2024/r.txt"), "report").unwrap();
    assert_eq!(
        fs::read_to_string(t.root_path.join("out/2024/r.txt")).unwrap(),
        "report"
    );
    let e = root.create_new(&p("out/2024/r.txt")).unwrap_err();
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::AlreadyExists));
    {
        use std::io::Write;
        let mut f = root.append(&p("out/2024/r.txt")).unwrap();
        f.write_all(b"!").unwrap();
    }
    assert_eq!(root.read(&p("out/2024/r.txt")).unwrap(), b"report!");
    root.remove_file(&p("out/2024/r.txt")).unwrap();
    assert!(!root.exists(&p("out/2024/r.txt")));
}

#[test]
fn errors_become_tool_errors() {
    let e: ToolError = SafePath::parse("../x").unwrap_err().into();
    assert_eq!(e.code().as_str(), "invalid_input");
    let t = tree();
    let root = SafeRoot::new(&t.root_path).unwrap().max_read(10);
    let e: ToolError = root.read(&p("big.bin")).unwrap_err().into();
    assert_eq!(e.code().as_str(), "invalid_input");
}

// ---------------------------------------------------------------------------------------------
// As a tool parameter, through the whole pipeline

roles! { "reader" }

struct Docs {
    root: SafeRoot,
}

/// Reads a document from the documents folder.
#[tool(kind = "read", role = "reader")]
async fn read_doc(
    ctx: Ctx<Docs>,
    /// The document's path, relative to the documents folder.
    path: SafePath,
) -> Result<String, ToolError> {
    Ok(ctx.root.read_to_string_capped(&path, 4096)?)
}

#[tokio::test]
async fn a_safe_path_parameter_is_checked_before_the_tool_runs() {
    let t = tree();
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rita", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    let server = SecureServer::builder(Docs {
        root: SafeRoot::new(&t.root_path).unwrap(),
    })
    .name("safe-path-test", "1.0.0")
    .roles(ROLES)
    .tools(tools![read_doc])
    .authenticator(keys)
    .build()
    .unwrap();
    let who = Credential::new(token, CredentialSource::RequestMeta);
    let call = |args: Value| {
        let server = &server;
        let who = who.clone();
        async move {
            server
                .call("read_doc", args.as_object().cloned(), Some(who), None)
                .await
        }
    };
    let error = |r: &rmcp::model::CallToolResult| -> (String, String) {
        let e = &r.structured_content.as_ref().expect("structured error")["error"];
        (
            e["code"].as_str().unwrap().to_owned(),
            e["message"].as_str().unwrap().to_owned(),
        )
    };

    let ok = call(json!({"path": "docs/a.md"})).await;
    assert_ne!(ok.is_error, Some(true), "{ok:?}");
    assert_eq!(
        ok.content[0].as_text().map(|t| t.text.as_str()),
        Some("# A")
    );

    let (code, message) = error(&call(json!({"path": "../outside/secret.txt"})).await);
    assert_eq!(code, "invalid_input");
    assert!(message.contains("parent_dir"), "{message}");
    assert!(!message.contains("secret"), "{message}");

    let (code, message) = error(&call(json!({"path": "/etc/passwd"})).await);
    assert_eq!(code, "invalid_input");
    assert!(message.contains("absolute"), "{message}");

    #[cfg(unix)]
    {
        // Valid text, but the symlink leads outside: refused by the root, in the tool.
        let (code, message) = error(&call(json!({"path": "leak_dir/secret.txt"})).await);
        assert_eq!(code, "invalid_input");
        assert!(message.contains("escapes_root"), "{message}");
    }

    let (code, _) = error(&call(json!({"path": "docs/nope.md"})).await);
    assert_eq!(code, "not_found");

    // The generated schema bounds the parameter (`#[tool]` asked for no length rule).
    let schema = mcp_secure::ToolHandler::<Docs>::input_schema(&__mcs_tool_read_doc);
    let path = &schema["properties"]["path"];
    assert_eq!(path["type"], "string");
    assert_eq!(path["maxLength"], SafePath::MAX_LEN);
}

// ---------------------------------------------------------------------------------------------
// Properties

const PIECES: &[&str] = &[
    "a",
    "b",
    "file.txt",
    "docs",
    "sub",
    "..",
    ".",
    "/",
    "//",
    "\\",
    "~",
    ":",
    "C:",
    "\0",
    "\n",
    "\u{202E}",
    "\u{FF0F}",
    " ",
    "link_in",
    "leak_dir",
    "leak_rel",
    "etc_dir",
    "docs_link",
    "deep_leak",
    "dotdot_leak",
    "abs_in",
    "dangling",
    "secret.txt",
    "passwd",
    "up",
    "CON",
    "x.",
];

fn path_like() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..10).prop_map(|v| v.concat())
}

/// The file a descriptor is open on, as the kernel sees it.
#[cfg(target_os = "linux")]
fn real_path(file: &fs::File) -> PathBuf {
    use std::os::fd::AsRawFd;
    fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in any::<String>()) {
        if let Ok(path) = SafePath::parse(&s) {
            // Whatever is accepted is accepted again from its own text.
            prop_assert_eq!(SafePath::parse(path.as_str()).unwrap(), path);
        }
    }

    #[test]
    fn random_path_like_strings_never_panic(s in path_like()) {
        let _ = SafePath::parse(&s);
    }
}

#[cfg(unix)]
#[test]
fn accepted_paths_never_resolve_outside_the_root() {
    let t = tree();
    let root_real = fs::canonicalize(&t.root_path).unwrap();
    let before = snapshot(&t.outside);
    let root = SafeRoot::new(&t.root_path).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    });
    let opened = std::cell::Cell::new(0usize);
    runner
        .run(&path_like(), |s| {
            let Ok(path) = SafePath::parse(&s) else {
                return Ok(());
            };
            if let Ok(file) = root.open(&path) {
                opened.set(opened.get() + 1);
                #[cfg(target_os = "linux")]
                {
                    let real = real_path(&file);
                    prop_assert!(
                        real.starts_with(&root_real),
                        "{path} opened {}",
                        real.display()
                    );
                }
                let _ = file;
            }
            // Writing is confined too (what it creates inside is fine).
            let _ = root.write(&path, "x");
            Ok(())
        })
        .unwrap();
    assert!(opened.get() > 0, "the strategy never opened a file");
    assert_eq!(snapshot(&t.outside), before, "nothing outside changed");
    assert!(!t.outside.join("new.txt").exists());
}
