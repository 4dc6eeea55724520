//! The generated code uses absolute paths only: shadowing prelude names beside a tool changes
//! nothing. (`Some`/`None` are not shadowed here: `validator`'s derive names them unqualified.)

#![allow(dead_code)]

use mcp_secure::{Ctx, ToolError, ToolHandler, Tools, roles, tool, tools};

roles! { "read-only" }

struct Option;
struct Result;
struct String;
struct Box;
struct Vec;
struct Send;
struct Sync;
mod core {}
mod std {}
mod serde {}
mod schemars {}
mod validator {}

pub struct App;

/// Echo a word.
#[tool(kind = "read", role = "read-only")]
async fn echo(
    _ctx: Ctx<App>,
    /// The word.
    #[validate(length(max = 32))]
    word: ::std::string::String,
    count: ::core::option::Option<u8>,
) -> ::core::result::Result<::std::string::String, ToolError> {
    ::core::result::Result::Ok(word.repeat(::core::convert::From::from(count.unwrap_or(1))))
}

/// Without context.
#[tool(kind = "read", role = "read-only")]
async fn ping() -> ::core::result::Result<::std::string::String, ToolError> {
    ::core::result::Result::Ok(::std::string::String::from("pong"))
}

fn main() {
    let list: Tools<App> = tools![echo, ping];
    assert_eq!(list.len(), 2);
    assert_eq!(ToolHandler::<App>::spec(&__mcs_tool_echo).name, "echo");
}
