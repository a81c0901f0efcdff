"""The shop's customer pages: sign in and out, account information, order history and detail,
address book, wish list, and checkout (which needs a signed-in customer)."""

from __future__ import annotations

import re
import sqlite3
from datetime import date

from agentforge.evals.envs.shop import pages
from agentforge.evals.envs.shop.catalog import cart_rows, find_product
from agentforge.evals.envs.shop.web import (
    Request,
    Response,
    login_required,
    on,
    page,
    redirect,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _customer(req: Request) -> sqlite3.Row:
    return req.db.execute("SELECT * FROM customers WHERE id = ?", (req.session["user"],)).fetchone()


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/account"


@on("GET", "/login")
def login_form(req: Request) -> Response:
    if req.session.get("user"):
        return redirect(_safe_next(req.query.get("next", "/account")))
    return page(req, "Customer Login", pages.login(req.query.get("next", "/account")))


@on("POST", "/login")
def login(req: Request) -> Response:
    username = req.form.get("username", "").strip()
    row = req.db.execute("SELECT id, password FROM customers WHERE username = ? OR email = ?",
                         (username, username)).fetchone()
    if row is None or row["password"] != req.form.get("password", ""):
        req.session["error"] = "The username or password you entered is incorrect."
        return page(req, "Customer Login", pages.login(req.form.get("next", "/account")))
    req.session["user"] = row["id"]
    return redirect(_safe_next(req.form.get("next", "/account")))


@on("POST", "/logout")
def logout(req: Request) -> Response:
    req.session["user"] = None
    req.session["notice"] = "You are signed out."
    return redirect("/")


@on("GET", "/account")
def account(req: Request) -> Response:
    return login_required(req) or page(req, "My Account", pages.account(_customer(req)))


@on("POST", "/account")
def account_save(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    email, phone = req.form.get("email", "").strip(), req.form.get("phone", "").strip()
    if not _EMAIL.match(email) or not phone:
        req.session["error"] = "Enter a valid email address and a phone number."
    else:
        req.db.execute("UPDATE customers SET email = ?, phone = ? WHERE id = ?",
                       (email, phone, req.session["user"]))
        req.session["notice"] = "You saved the account information."
    return redirect("/account")


@on("GET", "/account/orders")
def orders(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    rows = req.db.execute(
        "SELECT o.id, o.created, o.status, SUM(i.quantity * i.price_cents) AS total FROM orders o "
        "JOIN order_items i ON i.order_id = o.id WHERE o.customer_id = ? GROUP BY o.id "
        "ORDER BY o.created DESC, o.id DESC", (req.session["user"],)).fetchall()
    return page(req, "My Orders", pages.orders(rows))


@on("GET", "/account/orders/([0-9]+)")
def order(req: Request, order_id: str) -> Response:
    if denied := login_required(req):
        return denied
    o = req.db.execute("SELECT * FROM orders WHERE id = ? AND customer_id = ?",
                       (int(order_id), req.session["user"])).fetchone()
    if o is None:
        return page(req, "Page not found", pages.not_found("No such order."), status=404)
    items = req.db.execute("SELECT p.name, p.sku, i.quantity, i.price_cents FROM order_items i "
                           "JOIN products p ON p.id = i.product_id WHERE i.order_id = ?",
                           (o["id"],)).fetchall()
    return page(req, f"Order #{o['id']}", pages.order(o, items))


@on("GET", "/account/addresses")
def addresses(req: Request) -> Response:
    return login_required(req) or page(req, "Address Book", pages.addresses(_customer(req)))


@on("GET", "/account/wishlist")
def wishlist(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    rows = req.db.execute("SELECT p.* FROM wishlist w JOIN products p ON p.id = w.product_id "
                          "WHERE w.customer_id = ? ORDER BY p.name",
                          (req.session["user"],)).fetchall()
    return page(req, "My Wish List", pages.wishlist(rows))


@on("POST", "/wishlist/add")
def wishlist_add(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    p = find_product(req, req.form.get("sku", ""))
    if p is None:
        return redirect("/account/wishlist")
    req.db.execute("INSERT OR IGNORE INTO wishlist VALUES (?, ?)", (req.session["user"], p["id"]))
    req.session["notice"] = f"{p['name']} has been added to your Wish List."
    return redirect("/account/wishlist")


@on("POST", "/wishlist/remove")
def wishlist_remove(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    p = find_product(req, req.form.get("sku", ""))
    if p is not None:
        req.db.execute("DELETE FROM wishlist WHERE customer_id = ? AND product_id = ?",
                       (req.session["user"], p["id"]))
        req.session["notice"] = f"{p['name']} has been removed from your Wish List."
    return redirect("/account/wishlist")


@on("GET", "/checkout")
def checkout_form(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    rows = cart_rows(req)
    if not rows:
        return redirect("/cart")
    c = _customer(req)
    address = {key: c[key] for key, _ in pages.ADDRESS_FIELDS}
    return page(req, "Checkout", pages.checkout(rows, address))


@on("POST", "/checkout")
def checkout(req: Request) -> Response:
    if denied := login_required(req):
        return denied
    rows = cart_rows(req)
    if not rows:
        return redirect("/cart")
    address = [req.form.get(key, "").strip() for key, _ in pages.ADDRESS_FIELDS]
    if not all(address):
        req.session["error"] = "Fill in every field of the shipping address."
        return redirect("/checkout")
    order_id = req.db.execute(
        "INSERT INTO orders (customer_id, created, status, ship_name, ship_street, ship_city, "
        "ship_state, ship_zip) VALUES (?, ?, 'Pending', ?, ?, ?, ?, ?)",
        (req.session["user"], date.today().isoformat(), *address)).lastrowid
    req.db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)",
                       [(order_id, r["id"], r["quantity"], r["price_cents"]) for r in rows])
    req.db.execute("DELETE FROM cart_items WHERE session = ?", (req.session["token"],))
    return redirect(f"/checkout/success/{order_id}")


@on("GET", "/checkout/success/([0-9]+)")
def confirmation(req: Request, order_id: str) -> Response:
    if denied := login_required(req):
        return denied
    return page(req, "Thank you for your purchase!", pages.confirmation(int(order_id)))
