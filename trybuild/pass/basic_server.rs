//! A small server's tools: context, validated strings, structured (`Json`) and text output.

use mcp_secure::{Ctx, Json, ToolError, ToolHandler, Tools, roles, tool, tools};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App {
    greeting: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Customer {
    id: String,
    name: String,
}

/// Get one customer.
///
/// Returns the customer's public record.
#[tool(kind = "read", role = "read-only", rate = "60/min")]
pub async fn get_customer(
    ctx: Ctx<App>,
    /// The customer's id.
    #[validate(length(min = 1, max = 64))]
    customer_id: String,
) -> Result<Json<Customer>, ToolError> {
    Ok(Json(Customer {
        id: customer_id,
        name: ctx.greeting.clone(),
    }))
}

/// Say hello.
#[tool(kind = "read", role = "read-only")]
async fn hello(ctx: Ctx<App>) -> Result<String, ToolError> {
    Ok(ctx.state().greeting.clone())
}

mod orders {
    use mcp_secure::{Ctx, ToolError, tool};

    /// Mark an order as shipped.
    #[tool(kind = "write", role = "editor")]
    pub async fn ship_order(_ctx: Ctx<super::App>, order_id: u64) -> Result<String, ToolError> {
        Ok(format!("shipped {order_id}"))
    }
}

fn main() {
    let list: Tools<App> = tools![get_customer, hello, orders::ship_order,];
    assert_eq!(
        format!("{list:?}"),
        r#"["get_customer", "hello", "ship_order"]"#
    );

    let t = __mcs_tool_get_customer;
    let spec = ToolHandler::<App>::spec(&t);
    assert_eq!(
        spec.description,
        "Get one customer.\n\nReturns the customer's public record."
    );
    assert_eq!(
        spec.rate,
        mcp_secure::Rate::new(60, std::time::Duration::from_secs(60))
    );
    assert_eq!(spec.approval, mcp_secure::Approval::None);
    assert!(spec.secret_fields.is_empty());

    let schema = serde_json::Value::Object(ToolHandler::<App>::input_schema(&t));
    let field = &schema["properties"]["customer_id"];
    assert_eq!(field["maxLength"], 64, "{schema}");
    assert_eq!(field["minLength"], 1, "{schema}");
    assert_eq!(field["description"], "The customer's id.", "{schema}");
    assert_eq!(schema["required"], json!(["customer_id"]), "{schema}");
    assert!(ToolHandler::<App>::output_schema(&t).is_some());
    assert!(ToolHandler::<App>::output_schema(&__mcs_tool_hello).is_none());

    let args = |v: serde_json::Value| v.as_object().cloned().unwrap();
    assert!(ToolHandler::<App>::parse(&t, &args(json!({ "customer_id": "c-1" }))).is_ok());
    assert!(ToolHandler::<App>::parse(&t, &args(json!({ "customer_id": "" }))).is_err());
    assert!(ToolHandler::<App>::parse(&t, &args(json!({ "customer_id": "c-1", "x": 1 }))).is_err());

    let ship = ToolHandler::<App>::spec(&orders::__mcs_tool_ship_order);
    assert_eq!(ship.approval, mcp_secure::Approval::Explicit);
    assert_eq!(ROLES.len(), 3);
}
