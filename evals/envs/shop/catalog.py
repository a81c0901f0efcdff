"""The shop's catalogue and cart pages: home, category listings, search, product pages, cart."""

from __future__ import annotations

import sqlite3

from agentforge.evals.envs.shop import pages
from agentforge.evals.envs.shop.web import Request, Response, on, page, redirect

PRODUCT_SQL = ("SELECT p.*, c.name AS category, c.slug FROM products p "
               "JOIN categories c ON c.id = p.category_id")


@on("GET", "")
def home(req: Request) -> Response:
    cats = req.db.execute(
        "SELECT c.name, c.slug, COUNT(p.id) AS n FROM categories c JOIN products p "
        "ON p.category_id = c.id GROUP BY c.id ORDER BY c.id").fetchall()
    featured = req.db.execute(f"{PRODUCT_SQL} WHERE p.id % 10 = 1 ORDER BY p.id").fetchall()
    return page(req, "Welcome to One Stop Market", pages.home(cats, featured))


@on("GET", "/category/([a-z0-9-]+)")
def category(req: Request, slug: str) -> Response:
    cat = req.db.execute("SELECT * FROM categories WHERE slug = ?", (slug,)).fetchone()
    if cat is None:
        return page(req, "Page not found", pages.not_found("No such category."), status=404)
    sort = req.query.get("sort", "name")
    order = {"price_asc": "p.price_cents, p.name", "price_desc": "p.price_cents DESC, p.name"}
    rows = req.db.execute(f"{PRODUCT_SQL} WHERE c.slug = ? ORDER BY {order.get(sort, 'p.name')}",
                          (slug,)).fetchall()
    return page(req, cat["name"], pages.category(slug, sort if sort in pages.SORTS else "name",
                                                 rows))


@on("GET", "/search")
def search(req: Request) -> Response:
    q = req.query.get("q", "").strip()
    words = q.lower().split()
    rows = [] if not words else req.db.execute(
        f"{PRODUCT_SQL} WHERE " + " AND ".join(
            ["(lower(p.name) LIKE ? OR lower(p.sku) LIKE ? OR lower(c.name) LIKE ?)"] * len(words)
        ) + " ORDER BY p.name",
        [f"%{w}%" for w in words for _ in range(3)],
    ).fetchall()
    return page(req, f"Search results for '{q}'", pages.search(q, rows), query=q)


def find_product(req: Request, sku: str) -> sqlite3.Row | None:
    return req.db.execute(f"{PRODUCT_SQL} WHERE lower(p.sku) = lower(?)", (sku,)).fetchone()


@on("GET", "/product/([A-Za-z0-9-]+)")
def product(req: Request, sku: str) -> Response:
    p = find_product(req, sku)
    if p is None:
        return page(req, "Page not found", pages.not_found("No such product."), status=404)
    reviews = req.db.execute("SELECT * FROM reviews WHERE product_id = ? ORDER BY id",
                             (p["id"],)).fetchall()
    return page(req, p["name"], pages.product(p, reviews))


def _quantity(req: Request, default: int = 1) -> int | None:
    try:
        qty = int(req.form.get("qty", default))
    except ValueError:
        return None
    return qty if 0 <= qty <= 999 else None


@on("POST", "/cart/add")
def cart_add(req: Request) -> Response:
    p, qty = find_product(req, req.form.get("sku", "")), _quantity(req)
    if p is None or not qty:
        req.session["error"] = "Enter a quantity between 1 and 999."
        return redirect(pages.product_url(p["sku"]) if p else "/")
    req.db.execute("INSERT INTO cart_items VALUES (?, ?, ?) ON CONFLICT (session, product_id) "
                   "DO UPDATE SET quantity = quantity + excluded.quantity",
                   (req.session["token"], p["id"], qty))
    req.session["notice"] = f"You added {qty} × {p['name']} to your shopping cart."
    return redirect("/cart")


@on("POST", "/cart/update")
def cart_update(req: Request) -> Response:
    p, qty = find_product(req, req.form.get("sku", "")), _quantity(req)
    if p is not None and qty is not None:
        if qty == 0:
            req.db.execute("DELETE FROM cart_items WHERE session = ? AND product_id = ?",
                           (req.session["token"], p["id"]))
        else:
            req.db.execute("UPDATE cart_items SET quantity = ? WHERE session = ? AND "
                           "product_id = ?", (qty, req.session["token"], p["id"]))
        req.session["notice"] = "Your shopping cart was updated."
    return redirect("/cart")


@on("POST", "/cart/remove")
def cart_remove(req: Request) -> Response:
    p = find_product(req, req.form.get("sku", ""))
    if p is not None:
        req.db.execute("DELETE FROM cart_items WHERE session = ? AND product_id = ?",
                       (req.session["token"], p["id"]))
        req.session["notice"] = f"You removed {p['name']} from your shopping cart."
    return redirect("/cart")


def cart_rows(req: Request) -> list[sqlite3.Row]:
    return req.db.execute("SELECT p.*, ci.quantity FROM cart_items ci JOIN products p ON "
                          "p.id = ci.product_id WHERE ci.session = ? ORDER BY p.name",
                          (req.session["token"],)).fetchall()


@on("GET", "/cart")
def cart(req: Request) -> Response:
    return page(req, "Shopping Cart", pages.cart(cart_rows(req)))
