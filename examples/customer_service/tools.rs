//! The eight tools of the customer-service server. Each is a plain async function; the
//! attribute says who may call it, how often, and what approval it needs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mcp_secure::auth::ApiKeyStore;
use mcp_secure::types::sql::{QueryLimits, QueryRows, ReadOnlySql, open_read_only, query_sqlite};
use mcp_secure::{Bounded, Ctx, Json, ToolError, tool};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::db::{self, Customer, Order, Product};

/// The server's state.
pub struct App {
    pub db: Mutex<Connection>,
    pub db_path: PathBuf,
    pub keys_path: PathBuf,
    pub keys: ApiKeyStore,
    pub rotated_dir: PathBuf,
}

/// Runs blocking database work off the async threads.
async fn with_db<T: Send + 'static>(
    ctx: &Ctx<App>,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, ToolError> {
    let app: Arc<App> = ctx.state_arc();
    tokio::task::spawn_blocking(move || {
        let conn = app.db.lock().unwrap_or_else(|p| p.into_inner());
        work(&conn)
    })
    .await
    .map_err(ToolError::internal)?
    .map_err(ToolError::internal)
}

/// Look up one customer by id.
#[tool(kind = "read", role = "read-only", rate = "60/min", timeout = "5s")]
pub async fn get_customer(
    ctx: Ctx<App>,
    /// The customer's id, e.g. `c-1001`.
    #[validate(length(min = 1, max = 64))]
    customer_id: String,
) -> Result<Json<Customer>, ToolError> {
    let id = customer_id.clone();
    match with_db(&ctx, move |c| db::customer(c, &id)).await? {
        Some(c) => Ok(Json(c)),
        None => Err(ToolError::not_found(format!("no customer `{customer_id}`"))),
    }
}

/// A page of orders.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrderList {
    pub orders: Vec<Order>,
}

/// List a customer's most recent orders.
#[tool(kind = "read", role = "read-only", rate = "60/min", timeout = "5s")]
pub async fn list_orders(
    ctx: Ctx<App>,
    /// The customer's id.
    #[validate(length(min = 1, max = 64))]
    customer_id: String,
    /// How many orders, newest first (1 to 100).
    #[validate(range(min = 1, max = 100))]
    limit: u32,
) -> Result<Json<OrderList>, ToolError> {
    let orders = with_db(&ctx, move |c| db::orders(c, &customer_id, limit)).await?;
    Ok(Json(OrderList { orders }))
}

/// Matching products.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProductList {
    pub products: Vec<Product>,
}

/// Search products by name or category.
#[tool(kind = "read", role = "read-only", rate = "60/min", timeout = "5s")]
pub async fn search_products(
    ctx: Ctx<App>,
    /// Words to look for in product names and categories.
    #[validate(length(min = 1, max = 200))]
    query: String,
) -> Result<Json<ProductList>, ToolError> {
    let products = with_db(&ctx, move |c| db::search_products(c, &query)).await?;
    Ok(Json(ProductList { products }))
}

/// Run a read-only SQL query (a single SELECT) on the customer database.
#[tool(
    kind = "read",
    role = "editor",
    rate = "30/min",
    timeout = "10s",
    concurrency = 2
)]
pub async fn execute_query(
    ctx: Ctx<App>,
    /// One read-only SELECT statement (at most 1000 characters).
    query: ReadOnlySql,
) -> Result<Json<QueryRows>, ToolError> {
    let path = ctx.db_path.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let conn = open_read_only(&path).map_err(ToolError::internal)?;
        query_sqlite(&conn, &query, QueryLimits::default()).map_err(ToolError::from)
    })
    .await
    .map_err(ToolError::internal)??;
    Ok(Json(rows))
}

/// The statuses an order can be set to.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Shipped,
    Delivered,
    Cancelled,
}

impl Bounded for OrderStatus {}

impl OrderStatus {
    fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// Change an order's status.
#[tool(
    kind = "write",
    role = "editor",
    approval = "explicit",
    rate = "20/min",
    timeout = "5s"
)]
pub async fn update_order(
    ctx: Ctx<App>,
    /// The order's id, e.g. `o-5001`.
    #[validate(length(min = 1, max = 64))]
    order_id: String,
    /// The new status.
    status: OrderStatus,
) -> Result<Json<Order>, ToolError> {
    let id = order_id.clone();
    match with_db(&ctx, move |c| {
        db::update_order_status(c, &id, status.as_str())
    })
    .await?
    {
        Some(order) => Ok(Json(order)),
        None => Err(ToolError::not_found(format!("no order `{order_id}`"))),
    }
}

/// Open a support ticket.
#[tool(
    kind = "write",
    role = "editor",
    approval = "explicit",
    rate = "20/min",
    timeout = "5s"
)]
pub async fn create_ticket(
    ctx: Ctx<App>,
    /// A one-line summary.
    #[validate(length(min = 1, max = 200))]
    subject: String,
    /// The ticket's text.
    #[validate(length(min = 1, max = 5000))]
    body: String,
) -> Result<String, ToolError> {
    let user = ctx.principal().user.clone();
    let id = with_db(&ctx, move |c| db::create_ticket(c, &subject, &body, &user)).await?;
    Ok(format!("ticket #{id} created"))
}

/// Delete a customer and all of their orders. This cannot be undone.
#[tool(
    kind = "delete",
    role = "editor",
    approval = "human",
    rate = "5/min",
    timeout = "5s"
)]
pub async fn delete_customer(
    ctx: Ctx<App>,
    /// The customer's id.
    #[validate(length(min = 1, max = 64))]
    customer_id: String,
) -> Result<String, ToolError> {
    let id = customer_id.clone();
    if with_db(&ctx, move |c| db::delete_customer(c, &id)).await? {
        Ok(format!("customer `{customer_id}` deleted"))
    } else {
        Err(ToolError::not_found(format!("no customer `{customer_id}`")))
    }
}

/// Revoke an API key and issue its replacement for the same user and roles. The new token is
/// written to a file only the operator can read; it is never returned to the model.
#[tool(
    kind = "admin",
    role = "admin",
    approval = "human",
    rate = "5/min",
    timeout = "10s"
)]
pub async fn rotate_api_key(
    ctx: Ctx<App>,
    /// The id of the key to replace.
    #[validate(length(min = 1, max = 64))]
    key_id: String,
) -> Result<String, ToolError> {
    let app = ctx.state_arc();
    tokio::task::spawn_blocking(move || rotate(&app, &key_id))
        .await
        .map_err(ToolError::internal)?
}

fn rotate(app: &App, key_id: &str) -> Result<String, ToolError> {
    // Only keys of this server's environment: a `test` server never touches a `live` key.
    let Some(old) = app
        .keys
        .entries()
        .into_iter()
        .find(|k| k.id == key_id && k.env == app.keys.environment())
    else {
        return Err(ToolError::not_found(format!("no key `{key_id}`")));
    };
    if old.revoked {
        return Err(ToolError::failed(format!(
            "key `{key_id}` is already revoked"
        )));
    }
    if old
        .expires
        .is_some_and(|e| e <= time::OffsetDateTime::now_utc())
    {
        return Err(ToolError::failed(format!(
            "key `{key_id}` has expired; make a new key with `keygen`"
        )));
    }
    let new =
        ApiKeyStore::append_to_file(&app.keys_path, &old.user, &old.roles, old.env, old.expires)
            .map_err(ToolError::internal)?;
    std::fs::create_dir_all(&app.rotated_dir).map_err(ToolError::internal)?;
    let token_path = app.rotated_dir.join(format!("{}.token", new.entry.id));
    write_private(&token_path, &new.token).map_err(ToolError::internal)?;
    ApiKeyStore::revoke_in_file(&app.keys_path, key_id).map_err(ToolError::internal)?;
    app.keys
        .reload(&app.keys_path)
        .map_err(ToolError::internal)?;
    Ok(format!(
        "key `{key_id}` revoked; its replacement `{}` for user `{}` is in the data folder's \
         `rotated-keys/{}.token` for the operator to hand over",
        new.entry.id, old.user, new.entry.id
    ))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
