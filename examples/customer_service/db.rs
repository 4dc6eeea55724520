//! The customer-service database: an embedded SQLite file, created and seeded on first run.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Opens (creating and seeding if new) the read-write database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )?;
    let fresh: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'customers'",
        [],
        |r| r.get(0),
    )?;
    if fresh == 0 {
        seed(&conn)?;
    }
    Ok(conn)
}

fn seed(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE customers (
             id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, tier TEXT NOT NULL,
             created_at TEXT NOT NULL);
         CREATE TABLE products (
             id TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
             price_cents INTEGER NOT NULL, stock INTEGER NOT NULL);
         CREATE TABLE orders (
             id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
             product_id TEXT NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
             status TEXT NOT NULL, created_at TEXT NOT NULL);
         CREATE TABLE tickets (
             id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, body TEXT NOT NULL,
             created_by TEXT NOT NULL, created_at TEXT NOT NULL);
         CREATE INDEX orders_by_customer ON orders(customer_id);",
    )?;
    let customers = [
        (
            "c-1001",
            "Ada Lovelace",
            "ada@example.com",
            "gold",
            "2024-01-15",
        ),
        (
            "c-1002",
            "Grace Hopper",
            "grace@example.com",
            "silver",
            "2024-02-03",
        ),
        (
            "c-1003",
            "Alan Turing",
            "alan@example.com",
            "bronze",
            "2024-03-22",
        ),
        (
            "c-1004",
            "Katherine Johnson",
            "katherine@example.com",
            "gold",
            "2024-05-09",
        ),
        (
            "c-1005",
            "Edsger Dijkstra",
            "edsger@example.com",
            "silver",
            "2024-07-30",
        ),
    ];
    for c in customers {
        conn.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.0, c.1, c.2, c.3, c.4],
        )?;
    }
    let products = [
        ("p-1", "Mechanical keyboard", "peripherals", 12900, 40),
        ("p-2", "USB-C dock", "peripherals", 18900, 15),
        ("p-3", "27-inch monitor", "displays", 32900, 8),
        ("p-4", "Noise-cancelling headphones", "audio", 24900, 22),
        ("p-5", "Laptop stand", "accessories", 4900, 60),
        ("p-6", "Webcam 4K", "peripherals", 15900, 0),
    ];
    for p in products {
        conn.execute(
            "INSERT INTO products VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.0, p.1, p.2, p.3, p.4],
        )?;
    }
    let orders = [
        ("o-5001", "c-1001", "p-1", 1, "delivered", "2025-01-10"),
        ("o-5002", "c-1001", "p-3", 2, "shipped", "2025-02-14"),
        ("o-5003", "c-1002", "p-2", 1, "pending", "2025-03-01"),
        ("o-5004", "c-1003", "p-4", 1, "cancelled", "2025-03-05"),
        ("o-5005", "c-1004", "p-5", 3, "delivered", "2025-04-18"),
        ("o-5006", "c-1004", "p-1", 1, "pending", "2025-05-02"),
        ("o-5007", "c-1005", "p-6", 1, "pending", "2025-06-11"),
    ];
    for o in orders {
        conn.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![o.0, o.1, o.2, o.3, o.4, o.5],
        )?;
    }
    conn.execute_batch("COMMIT;")
}

/// A customer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub tier: String,
    pub created_at: String,
}

/// An order.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub product_id: String,
    pub quantity: i64,
    pub status: String,
    pub created_at: String,
}

/// A product.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
}

pub fn customer(conn: &Connection, id: &str) -> rusqlite::Result<Option<Customer>> {
    conn.query_row(
        "SELECT id, name, email, tier, created_at FROM customers WHERE id = ?1",
        [id],
        |r| {
            Ok(Customer {
                id: r.get(0)?,
                name: r.get(1)?,
                email: r.get(2)?,
                tier: r.get(3)?,
                created_at: r.get(4)?,
            })
        },
    )
    .optional()
}

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: r.get(0)?,
        customer_id: r.get(1)?,
        product_id: r.get(2)?,
        quantity: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn orders(conn: &Connection, customer_id: &str, limit: u32) -> rusqlite::Result<Vec<Order>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, customer_id, product_id, quantity, status, created_at FROM orders
         WHERE customer_id = ?1 ORDER BY created_at DESC LIMIT ?2",
    )?;
    stmt.query_map(params![customer_id, limit], order_row)?
        .collect()
}

pub fn search_products(conn: &Connection, query: &str) -> rusqlite::Result<Vec<Product>> {
    // The query is a bound parameter, and LIKE's own wildcards in it are escaped.
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, category, price_cents, stock FROM products
         WHERE name LIKE ?1 ESCAPE '\\' OR category LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 50",
    )?;
    stmt.query_map([pattern], |r| {
        Ok(Product {
            id: r.get(0)?,
            name: r.get(1)?,
            category: r.get(2)?,
            price_cents: r.get(3)?,
            stock: r.get(4)?,
        })
    })?
    .collect()
}

pub fn update_order_status(
    conn: &Connection,
    order_id: &str,
    status: &str,
) -> rusqlite::Result<Option<Order>> {
    let n = conn.execute(
        "UPDATE orders SET status = ?2 WHERE id = ?1",
        params![order_id, status],
    )?;
    if n == 0 {
        return Ok(None);
    }
    conn.query_row(
        "SELECT id, customer_id, product_id, quantity, status, created_at FROM orders WHERE id = ?1",
        [order_id],
        order_row,
    )
    .optional()
}

pub fn create_ticket(
    conn: &Connection,
    subject: &str,
    body: &str,
    user: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO tickets (subject, body, created_by, created_at) VALUES (?1, ?2, ?3, datetime('now'))",
        params![subject, body, user],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn delete_customer(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM customers WHERE id = ?1", [id])? > 0)
}
