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

// ---------------------------------------------------------------------------------------------
// More spellings, special files, links and races

#[test]
fn dot_dot_in_every_spelling_is_refused() {
    for (path, rule) in [
        ("a/../..", PathRule::ParentDir),
        ("a/./../../b", PathRule::CurrentDir),
        ("a/b/..", PathRule::ParentDir),
        ("..", PathRule::ParentDir),
        ("a/..\\..", PathRule::Backslash),
        ("/etc/passwd", PathRule::Absolute),
        ("", PathRule::Empty),
        ("a\0b", PathRule::NulByte),
        ("a\\b", PathRule::Backslash),
        ("\u{FF0E}\u{FF0E}/x", PathRule::LookalikeChar),
        ("a\u{2215}b", PathRule::LookalikeChar),
        // What NFKC (a "careless normalization") turns into `..`, `...` or a `/`.
        ("\u{2025}/\u{2025}/etc/passwd", PathRule::LookalikeChar),
        ("\u{FE30}/\u{FE30}/etc/passwd", PathRule::LookalikeChar),
        ("a\u{2100}b", PathRule::LookalikeChar),
        ("a\u{2105}b", PathRule::LookalikeChar),
    ] {
        assert_eq!(
            SafePath::parse(path).map_err(|e| e.rule()),
            Err(rule),
            "{path:?}"
        );
    }
    // Deep nesting and long paths are bounded by the text rules.
    let deep = vec!["d"; SafePath::MAX_COMPONENTS + 1].join("/");
    assert_eq!(
        SafePath::parse(&deep).unwrap_err().rule(),
        PathRule::TooManyComponents
    );
    assert_eq!(
        SafePath::parse(&"a".repeat(SafePath::MAX_LEN + 1))
            .unwrap_err()
            .rule(),
        PathRule::TooLong
    );
}

#[cfg(unix)]
#[test]
fn every_operation_refuses_escapes_by_rule() {
    let t = tree();
    let before = snapshot(&t.outside);
    let root = SafeRoot::new(&t.root_path).unwrap();
    for path in [
        "leak_dir/secret.txt",
        "docs/deep_leak/secret.txt",
        "etc_dir/passwd",
    ] {
        assert_eq!(
            rule_of(root.remove_file(&p(path))),
            Some("escapes_root"),
            "remove {path}"
        );
        assert_eq!(
            rule_of(root.metadata(&p(path))),
            Some("escapes_root"),
            "metadata {path}"
        );
    }
    for path in ["leak_abs", "leak_rel", "etc_dir", "abs_in"] {
        assert_eq!(
            rule_of(root.metadata(&p(path))),
            Some("escapes_root"),
            "metadata {path}"
        );
    }
    assert_eq!(
        rule_of(root.create_dir_all(&p("etc_dir/x"))),
        Some("escapes_root")
    );
    assert_eq!(
        rule_of(root.create_new(&p("dangling"))),
        Some("io"),
        "create_new never follows the last symlink"
    );
    assert_eq!(snapshot(&t.outside), before, "nothing outside changed");
    // Removing an escaping symlink removes the link (inside), not its target.
    root.remove_file(&p("leak_rel")).unwrap();
    assert!(t.outside.join("secret.txt").exists());
}

#[cfg(unix)]
#[test]
fn symlink_chains_deep_nesting_and_proc() {
    use std::os::unix::fs::symlink;
    let t = tree();
    let r = &t.root_path;
    symlink("c2", r.join("c1")).unwrap();
    symlink("c3", r.join("c2")).unwrap();
    symlink("file.txt", r.join("c3")).unwrap();
    symlink("e2", r.join("e1")).unwrap();
    symlink("docs/../../outside/secret.txt", r.join("e2")).unwrap();
    symlink(".", r.join("s")).unwrap();
    // Out of the root and back in: refused (never above the root, even on the way).
    symlink("../root/file.txt", r.join("out_and_in")).unwrap();
    symlink("/proc/self/root/etc/passwd", r.join("proc")).unwrap();
    symlink("/proc/self/cwd", r.join("cwd")).unwrap();
    let root = SafeRoot::new(r).unwrap();
    assert_eq!(root.read(&p("c1")).unwrap(), b"hello");
    assert_eq!(rule_of(root.read(&p("e1"))), Some("escapes_root"));
    assert_eq!(rule_of(root.read(&p("out_and_in"))), Some("escapes_root"));
    assert_eq!(rule_of(root.read(&p("proc"))), Some("escapes_root"));
    assert_eq!(
        rule_of(root.read(&p("cwd/Cargo.toml"))),
        Some("escapes_root")
    );
    let deep = format!(
        "{}/file.txt",
        vec!["s"; SafePath::MAX_COMPONENTS - 1].join("/")
    );
    assert_eq!(root.read(&p(&deep)).unwrap(), b"hello");
}

#[cfg(unix)]
#[test]
fn special_files_never_block() {
    use std::os::unix::net::UnixListener;
    let t = tree();
    let r = &t.root_path;
    let root = SafeRoot::new(r).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(r.join("pipe"))
        .status()
        .is_ok_and(|s| s.success());
    if made {
        // Writing to a FIFO without a reader: no wait, an error.
        let (tx, rx) = std::sync::mpsc::channel();
        let root2 = SafeRoot::new(r).unwrap();
        std::thread::spawn(move || {
            let w = rule_of(root2.write(&p("pipe"), "x"));
            let a = rule_of(root2.append(&p("pipe")));
            let c = rule_of(root2.create(&p("pipe")));
            let m = root2.metadata(&p("pipe")).map(|m| m.is_file());
            tx.send((w, a, c, m.ok())).unwrap();
        });
        let (w, a, c, m) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("writing to a FIFO blocked");
        assert!(
            w.is_some() && a.is_some() && c.is_some(),
            "{w:?} {a:?} {c:?}"
        );
        assert_eq!(m, Some(false));
        // With a reader holding it open, the open succeeds and is refused as not a file.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(r.join("pipe"))
            .unwrap();
        assert_eq!(rule_of(root.write(&p("pipe"), "x")), Some("not_a_file"));
        drop(reader);
    }
    let _sock = UnixListener::bind(r.join("sock")).unwrap();
    assert!(root.read(&p("sock")).is_err());
    // A device node (needs CAP_MKNOD): /dev/null's numbers.
    let dev = std::ffi::CString::new(r.join("null").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string and plain integer arguments.
    let rc = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if rc == 0 {
        assert_eq!(rule_of(root.read(&p("null"))), Some("not_a_file"));
        assert_eq!(rule_of(root.write(&p("null"), "x")), Some("not_a_file"));
    }
}

#[cfg(unix)]
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

#[cfg(unix)]
impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// A hard link inside the root to a file outside *is* that file: documented, shown here.
#[cfg(unix)]
#[test]
fn a_hard_link_is_the_file_as_documented() {
    let t = tree();
    if fs::hard_link(t.outside.join("secret.txt"), t.root_path.join("hard")).is_err() {
        return;
    }
    let root = SafeRoot::new(&t.root_path).unwrap();
    assert_eq!(root.read(&p("hard")).unwrap(), b"top secret");
}

/// Swaps `docs` between a directory and a symlink out of the root while another thread
/// opens `docs/secret.txt`: the open is resolved beneath the handle, so it never reads the
/// secret, in either mode.
#[cfg(unix)]
#[test]
fn a_symlink_swapped_in_never_leads_outside() {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let t = tree();
    let r = t.root_path.clone();
    fs::create_dir(r.join("swap")).unwrap();
    fs::write(r.join("swap/secret.txt"), "inside").unwrap();
    symlink("../outside", r.join("swap_link")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        let r = r.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // rename(2) is atomic: `swap` is always one or the other.
                let _ = fs::rename(r.join("swap"), r.join("swap_dir"));
                let _ = fs::rename(r.join("swap_link"), r.join("swap"));
                let _ = fs::rename(r.join("swap"), r.join("swap_link"));
                let _ = fs::rename(r.join("swap_dir"), r.join("swap"));
            }
        })
    };
    let mut inside = 0;
    for mode in [Symlinks::FollowInsideRoot, Symlinks::Refuse] {
        let root = SafeRoot::new(&r).unwrap().symlinks(mode);
        for _ in 0..3000 {
            if let Ok(bytes) = root.read(&p("swap/secret.txt")) {
                assert_ne!(bytes, b"top secret", "{mode:?}");
                inside += 1;
            }
            let _ = root.write(&p("swap/new.txt"), "x");
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(inside > 0);
    assert!(!t.outside.join("new.txt").exists());
    assert_eq!(
        fs::read_to_string(t.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
}
