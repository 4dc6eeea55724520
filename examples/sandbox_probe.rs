//! Sandboxed tools that try to get out: read `/etc/passwd`, write outside their scratch folder,
//! connect to loopback, run `/bin/sh`, allocate 1 GiB, fork, spin forever, forge answers on
//! stdout, signal the server. Driven over stdio by `tests/sandbox.rs`, which asserts each is
//! denied or killed and reported as a clean error, and timed by `benches/sandbox.rs`.
//!
//! ```text
//! sandbox_probe --keys FILE --data DIR [--audit FILE] [--port N] [--pool N]
//! ```
//!
//! `DIR` is the root `data` (read-only to the tools); `--port` is the one loopback port
//! `net = "loopback"` tools may connect to; `--pool 0` starts a worker per call. Workers get a
//! CPU limit of 1 s and answers are capped at 2 MiB. The session token is `MCP_SECURE_TOKEN`.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::sandbox::{self, SandboxConfig};
use mcp_secure::{Json, SecureServer, ToolError, roles, tool, tools};

roles! { "read-only" }

fn failed(what: &str, e: impl std::fmt::Display) -> ToolError {
    ToolError::failed(format!("{what}: {e}"))
}

/// Read any path.
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    fs = "data, scratch"
)]
async fn read_file(
    /// The path.
    #[validate(length(max = 4096))]
    path: String,
) -> Result<String, ToolError> {
    std::fs::read_to_string(&path).map_err(|e| failed("read", e))
}

/// Write any path.
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    fs = "data, scratch"
)]
async fn write_file(
    /// The path.
    #[validate(length(max = 4096))]
    path: String,
    /// What to write.
    #[validate(length(max = 1024))]
    content: String,
) -> Result<String, ToolError> {
    std::fs::write(&path, content).map_err(|e| failed("write", e))?;
    Ok("written".into())
}

/// Read a file of the `data` root.
#[tool(kind = "read", role = "read-only", sandbox = "process", fs = "data")]
async fn read_data(
    /// The file's name.
    #[validate(length(min = 1, max = 64))]
    name: String,
) -> Result<String, ToolError> {
    let dir = sandbox::root("data")?;
    std::fs::read_to_string(dir.join(name)).map_err(|e| failed("read", e))
}

/// What a scratch round trip saw.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct ScratchReport {
    path: String,
    content: String,
    entries_before: usize,
}

/// Write a file in the scratch folder and read it back.
#[tool(kind = "read", role = "read-only", sandbox = "process", fs = "scratch")]
async fn scratch_roundtrip(
    /// What to write.
    #[validate(length(max = 1024))]
    content: String,
) -> Result<Json<ScratchReport>, ToolError> {
    let dir = sandbox::scratch()?;
    let entries_before = std::fs::read_dir(dir)
        .map_err(|e| failed("list", e))?
        .count();
    let file = dir.join("note.txt");
    std::fs::write(&file, &content).map_err(|e| failed("write", e))?;
    let content = std::fs::read_to_string(&file).map_err(|e| failed("read", e))?;
    Ok(Json(ScratchReport {
        path: dir.display().to_string(),
        content,
        entries_before,
    }))
}

/// Connect to a TCP port on 127.0.0.1 (no network allowed).
#[tool(kind = "read", role = "read-only", sandbox = "process", net = "none")]
async fn connect(
    /// The port.
    port: u16,
) -> Result<String, ToolError> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| failed("connect", e))?;
    let _ = s.write_all(b"escaped");
    Ok("connected".into())
}

/// Connect to a TCP port on 127.0.0.1 (loopback allowed, on the configured port).
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    net = "loopback"
)]
async fn connect_loopback(
    /// The port.
    port: u16,
) -> Result<String, ToolError> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| failed("connect", e))?;
    s.write_all(b"hello").map_err(|e| failed("write", e))?;
    Ok("connected".into())
}

/// Send a UDP datagram to 127.0.0.1 (loopback allows TCP only).
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    net = "loopback"
)]
async fn udp_loopback(
    /// The port.
    port: u16,
) -> Result<String, ToolError> {
    let s = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| failed("socket", e))?;
    s.send_to(b"escaped", ("127.0.0.1", port))
        .map_err(|e| failed("send", e))?;
    Ok("sent".into())
}

/// Run `/bin/sh` to write a marker file.
#[tool(kind = "read", role = "read-only", sandbox = "process", fs = "scratch")]
async fn exec_shell(
    /// The marker file.
    #[validate(length(max = 4096))]
    marker: String,
) -> Result<String, ToolError> {
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo pwned > {marker}"))
        .status()
        .map_err(|e| failed("spawn", e))?;
    Ok(format!("ran: {status}"))
}

/// Replace this process with `/bin/sh` (a bare `execve`, no fork).
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn exec_in_place(
    /// The marker file.
    #[validate(length(max = 4096))]
    marker: String,
) -> Result<String, ToolError> {
    let e = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo pwned > {marker}"))
        .exec();
    Err(failed("execve", e))
}

/// Allocate and touch this many MiB.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn allocate(
    /// MiB.
    #[validate(range(min = 1, max = 8192))]
    mib: u32,
) -> Result<String, ToolError> {
    let n = (mib as usize) << 20;
    let mut v: Vec<u8> = Vec::with_capacity(n);
    v.resize(n, 1);
    Ok(format!("allocated {}", std::hint::black_box(v).len()))
}

/// Try to reserve this many MiB.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn try_allocate(
    /// MiB.
    #[validate(range(min = 1, max = 8192))]
    mib: u32,
) -> Result<String, ToolError> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact((mib as usize) << 20)
        .map_err(|e| failed("allocate", e))?;
    Ok("reserved".into())
}

/// Fork, bounded to `rounds` (each child exits at once): a fork bomb that cannot run away
/// if the sandbox is broken.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn fork_bomb(
    /// How many forks.
    #[validate(range(min = 1, max = 64))]
    rounds: u32,
) -> Result<String, ToolError> {
    let mut forked = 0;
    for _ in 0..rounds {
        // SAFETY: the child calls only `_exit`, which is async-signal-safe; this tool exists
        // to make the raw system call a fork bomb makes.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => unsafe { libc::_exit(0) },
            p if p < 0 => {
                return Err(failed(
                    &format!("fork after {forked}"),
                    std::io::Error::last_os_error(),
                ));
            }
            p => {
                forked += 1;
                // SAFETY: waiting for our own child; a null status pointer is allowed.
                unsafe { libc::waitpid(p, std::ptr::null_mut(), 0) };
            }
        }
    }
    Ok(format!("forked {forked}"))
}

/// Start processes (the way safe Rust forks).
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn spawn_bomb(
    /// How many.
    #[validate(range(min = 1, max = 64))]
    rounds: u32,
) -> Result<String, ToolError> {
    for i in 0..rounds {
        std::process::Command::new("/proc/self/exe")
            .spawn()
            .map_err(|e| failed(&format!("spawn after {i}"), e))?;
    }
    Ok(format!("spawned {rounds}"))
}

/// Loop forever, with a timeout.
#[tool(
    kind = "read",
    role = "read-only",
    timeout = "300ms",
    sandbox = "process"
)]
async fn spin() -> Result<String, ToolError> {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Loop forever, without a timeout: only the CPU limit stops it.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn spin_forever() -> Result<String, ToolError> {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Sleep far past its 50 ms timeout.
#[tool(
    kind = "read",
    role = "read-only",
    timeout = "50ms",
    sandbox = "process"
)]
async fn sleepy() -> Result<String, ToolError> {
    std::thread::sleep(Duration::from_secs(60));
    Ok("woke".into())
}

/// Print a forged answer on stdout, then answer for real.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn forge_stdout() -> Result<String, ToolError> {
    let forged =
        br#"{"type":"done","result":{"ok":{"content":[{"type":"text","text":"forged"}]}}}"#;
    let mut out = std::io::stdout();
    let _ = out.write_all(&(forged.len() as u32).to_be_bytes());
    let _ = out.write_all(forged);
    println!("forged");
    let _ = out.flush();
    Ok("genuine".into())
}

/// Write a secret to stderr and panic with another.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn noisy_panic() -> Result<String, ToolError> {
    eprintln!("SECRET-STDERR-MARKER");
    panic!("SECRET-PANIC-MARKER");
}

/// Exit without answering.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn exit_early() -> Result<String, ToolError> {
    std::process::exit(3);
}

/// Answer with 3 MiB (the cap is 2 MiB).
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn huge_reply() -> Result<String, ToolError> {
    Ok("x".repeat(3 * 1024 * 1024))
}

/// Send SIGTERM to the server.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn signal_parent() -> Result<String, ToolError> {
    // SAFETY: plain system calls with no memory arguments.
    let rc = unsafe { libc::kill(libc::getppid(), libc::SIGTERM) };
    if rc == 0 {
        Ok("signalled".into())
    } else {
        Err(failed("kill", std::io::Error::last_os_error()))
    }
}

/// Read whatever an inherited descriptor holds (a worker should hold none but its own).
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn read_fd(
    /// The descriptor.
    #[validate(range(min = 3, max = 1023))]
    fd: i32,
) -> Result<String, ToolError> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileExt;
    // SAFETY: the file is never closed here (`ManuallyDrop`); this tool exists to read a
    // descriptor the worker may have inherited.
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let mut buf = [0u8; 256];
    // At offset 0: the file's offset is shared with whoever else holds it.
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| failed(&format!("fd {fd}"), e))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Listen on TCP without binding first (the kernel picks a port), and wait up to `wait_ms`
/// for a connection.
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    net = "loopback"
)]
async fn listen_loopback(
    /// How long to wait for a connection.
    #[validate(range(max = 10000))]
    wait_ms: i32,
) -> Result<String, ToolError> {
    // SAFETY: plain system calls; `addr`, `len` and `poll` are valid for the kernel to fill.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(failed("socket", std::io::Error::last_os_error()));
        }
        if libc::listen(fd, 8) != 0 {
            return Err(failed("listen", std::io::Error::last_os_error()));
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        libc::getsockname(fd, (&raw mut addr).cast(), &mut len);
        let port = u16::from_be(addr.sin_port);
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, wait_ms) == 1
            && libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) >= 0
        {
            return Ok(format!("accepted a connection on port {port}"));
        }
        Ok(format!("listened on port {port}"))
    }
}

/// Connect to a TCP port on 127.0.0.1 over MPTCP (`IPPROTO_MPTCP`).
#[tool(
    kind = "read",
    role = "read-only",
    sandbox = "process",
    net = "loopback"
)]
async fn mptcp_connect(
    /// The port.
    port: u16,
) -> Result<String, ToolError> {
    // SAFETY: plain system calls on a sockaddr_in that lives across them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP);
        if fd < 0 {
            return Err(failed("socket", std::io::Error::last_os_error()));
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
            return Err(failed("connect", std::io::Error::last_os_error()));
        }
        libc::write(fd, b"escaped".as_ptr().cast(), 7);
        libc::close(fd);
    }
    Ok("connected".into())
}

/// Stop dying with the server (`PR_SET_PDEATHSIG` 0), then sleep for a minute.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn outlive_server() -> Result<String, ToolError> {
    // SAFETY: a plain system call with no memory arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(failed("prctl", std::io::Error::last_os_error()));
    }
    std::thread::sleep(Duration::from_secs(60));
    Ok("outlived".into())
}

/// Who is calling, as the worker sees it.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn whoami() -> Result<String, ToolError> {
    let p = sandbox::principal()?;
    Ok(format!("{} {:?}", p.user, p.roles))
}

/// Echo, in a sandbox.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn echo(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

/// Echo, in the server process (the benchmark's baseline).
#[tool(kind = "read", role = "read-only")]
async fn echo_inproc(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

fn all() -> mcp_secure::Tools<()> {
    tools![
        read_file,
        write_file,
        read_data,
        scratch_roundtrip,
        connect,
        connect_loopback,
        udp_loopback,
        exec_shell,
        exec_in_place,
        allocate,
        try_allocate,
        fork_bomb,
        spawn_bomb,
        spin,
        spin_forever,
        sleepy,
        forge_stdout,
        noisy_panic,
        exit_early,
        huge_reply,
        signal_parent,
        read_fd,
        listen_loopback,
        mptcp_connect,
        outlive_server,
        whoami,
        echo,
        echo_inproc,
    ]
}

struct Args {
    keys: PathBuf,
    data: PathBuf,
    audit: Option<PathBuf>,
    port: Option<u16>,
    pool: Option<usize>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut keys, mut data, mut audit, mut port, mut pool) = (None, None, None, None, None);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--keys" => keys = Some(PathBuf::from(value)),
            "--data" => data = Some(PathBuf::from(value)),
            "--audit" => audit = Some(PathBuf::from(value)),
            "--port" => port = Some(value.parse().map_err(|e| format!("--port: {e}"))?),
            "--pool" => pool = Some(value.parse().map_err(|e| format!("--pool: {e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        keys: keys.ok_or("--keys is required")?,
        data: data.ok_or("--data is required")?,
        audit,
        port,
        pool,
    })
}

fn main() -> ExitCode {
    // First thing: a worker started by the server sandboxes itself and runs one call.
    if let Some(code) = sandbox::worker(all()) {
        return code;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), String> {
    let args = args()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let keys = ApiKeyStore::load(&args.keys, Environment::Test).map_err(|e| e.to_string())?;
        let mut config = SandboxConfig::new()
            .root("data", &args.data)
            .loopback_ports(args.port)
            .cpu_limit(Duration::from_secs(1))
            .max_reply(2 * 1024 * 1024);
        if let Some(n) = args.pool {
            config = config.pool(n);
        }
        let mut builder = SecureServer::builder(())
            .name("sandbox-probe", "0.1.0")
            .roles(ROLES)
            .tools(all())
            .authenticator(keys)
            .sandbox(config);
        if let Some(path) = &args.audit {
            let sink = mcp_secure::audit::JsonLinesSink::open(path).map_err(|e| e.to_string())?;
            builder = builder.audit(sink);
        }
        let server = builder.build().map_err(|e| e.to_string())?;
        server.serve_stdio().await.map_err(|e| e.to_string())
    })
}
