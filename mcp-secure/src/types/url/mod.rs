//! Outbound URLs from untrusted callers: [`PublicUrl`], a URL that may be fetched, the
//! [`UrlPolicy`] that resolves and checks it, and the [`Fetcher`] that fetches it without
//! being turned against the network it runs in.
//!
//! # Threat model
//!
//! A tool that fetches a URL given by a model or a client is a proxy into the server's own
//! network (server-side request forgery, SSRF). The attacker wants to reach
//!
//! - the server itself (`http://127.0.0.1:6379/`, `http://localhost/admin`, `http://0.0.0.0/`),
//!   its neighbours (`10.0.0.0/8`, `192.168.0.0/16`, `100.64.0.0/10`, `fc00::/7`, `fe80::/10`),
//!   and above all the **cloud metadata service** (`http://169.254.169.254/latest/meta-data/`,
//!   `http://metadata.google.internal/`, `fd00:ec2::254`), which hands out credentials;
//! - through spellings a filter does not recognize: `http://2130706433/`, `http://0x7f.1/`,
//!   `http://0177.0.0.1/`, `http://127.1/` (all `127.0.0.1`), `http://[::ffff:127.0.0.1]/`
//!   (IPv4-mapped), `http://[::127.0.0.1]/`, NAT64 `64:ff9b::a00:1`, 6to4 `2002:7f00:1::`,
//!   `http://ⓛocalhost/`, `http://localhost./`, `http://public.example@127.0.0.1/`;
//! - through a name it controls: `evil.example` resolving to `127.0.0.1`, or to a public and
//!   a private address at once, or to a public address when checked and a private one when
//!   connected (**DNS rebinding**: the check and the connection each resolve the name);
//! - through a **redirect**: a public page that answers `302 Location:
//!   http://169.254.169.254/...`, which an HTTP client follows without asking;
//! - or it wants to exhaust the server: an endless body, a server that never answers.
//!
//! # The layers
//!
//! 1. **The type** ([`PublicUrl`]): [`PublicUrl::parse`] (and deserialization, which calls it)
//!    caps the length, refuses control characters, parses with the `url` crate (the WHATWG URL
//!    standard, so the IPv4 spellings above are read as the address they mean, as browsers and
//!    most clients read them), then checks the scheme (`http`, `https`), refuses credentials
//!    in the URL, local and metadata host names, and an IP literal host that is not public.
//!    Each refusal is a [`UrlRejection`] naming its [`UrlRule`]. As a `#[tool]` parameter,
//!    `PublicUrl` is [`Bounded`](crate::Bounded) and a refusal is `invalid_input`.
//!
//! 2. **Resolution** ([`UrlPolicy::resolve`]): the name is resolved once, through an
//!    injectable [`Resolver`] ([`SystemResolver`] by default, [`FixedResolver`] in tests), and
//!    **every** address is checked against the IANA special-purpose registries; IPv6 forms
//!    that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4, Teredo) are
//!    judged by that address. The result, a [`CheckedUrl`], lists the addresses to connect
//!    to.
//!
//! 3. **The fetch** ([`Fetcher`]): connects only to a checked address (never resolving the
//!    name again), sends the original `Host` (and SNI), follows at most
//!    [`FetchPolicy::max_redirects`] redirects, checking each target from step 1, caps the
//!    body ([`FetchPolicy::max_bytes`], streaming, aborted past the cap) and the total time
//!    ([`FetchPolicy::timeout`]), ignores proxy environment variables, and speaks `http` and
//!    `https` (rustls, Mozilla roots).
//!
//! ```no_run
//! use mcp_secure::types::url::{FetchPolicy, Fetcher, PublicUrl};
//! use mcp_secure::{Ctx, ToolError, roles, tool};
//!
//! roles! { "reader" }
//!
//! struct App {
//!     fetcher: Fetcher,
//! }
//!
//! /// Fetches a web page as text.
//! #[tool(kind = "read", role = "reader", timeout = "15s")]
//! async fn fetch_page(
//!     ctx: Ctx<App>,
//!     /// The page's URL.
//!     url: PublicUrl,
//! ) -> Result<String, ToolError> {
//!     // A refused URL or redirect becomes `invalid_input` naming its rule.
//!     let page = ctx.fetcher.get(&url).await?;
//!     Ok(String::from_utf8_lossy(&page.body).into_owned())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App { fetcher: Fetcher::new(FetchPolicy::new())? };
//! # Ok(()) }
//! ```
//!
//! # What this does not cover
//!
//! - What a public host answers: treat the body as untrusted input (it may carry a prompt
//!   injection).
//! - Networks where "public" addresses are internal: a VPC peered with public ranges, or an
//!   egress that rewrites addresses. Add the ranges you know are internal with a custom
//!   [`Resolver`] that refuses them, or better, fetch from a network segment that can reach
//!   nothing private; an egress firewall is the layer that does not depend on this code.
//! - Other schemes and protocols (`ftp`, `gopher`, `file`, WebSockets): refused.

#[cfg(feature = "fetch")]
mod fetch;
mod ip;
mod policy;
mod public_url;
mod rejection;
mod resolve;

#[cfg(feature = "fetch")]
pub use fetch::{FetchError, FetchPolicy, FetchResponse, Fetcher};
pub use policy::{CheckedUrl, Scheme, UrlPolicy};
pub use public_url::PublicUrl;
pub use rejection::{UrlRejection, UrlRule};
pub use resolve::{FixedResolver, Resolver, SystemResolver};
