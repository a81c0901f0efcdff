"""The shop's HTML, rendered server-side: plain forms and links with visible labels, so an agent
reading the accessibility tree finds every control by its name. Every value is escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from sqlite3 import Row
from urllib.parse import quote

STYLE = """body{font-family:sans-serif;margin:0;color:#222}header{background:#233;color:#fff;
padding:8px 16px;display:flex;gap:16px;align-items:center}header a{color:#fff}main{padding:16px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.price{font-weight:bold}.notice{background:#efe;padding:8px}.error{background:#fee;padding:8px}
ul.grid{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}
ul.grid li{border:1px solid #ddd;padding:8px;width:220px}"""


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def product_url(sku: str) -> str:
    return f"/product/{quote(sku.lower())}"


def layout(title: str, body: str, *, user: str | None, cart_count: int,
           notice: str = "", error: str = "", query: str = "") -> str:
    account = (
        f'<a href="/account">My Account ({escape(user)})</a>'
        '<form method="post" action="/logout" style="display:inline">'
        '<button type="submit">Sign Out</button></form>'
        if user else '<a href="/login">Sign In</a>'
    )
    flash = (f'<p class="notice" role="status">{escape(notice)}</p>' if notice else "") + (
        f'<p class="error" role="alert">{escape(error)}</p>' if error else "")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} | One Stop Market</title><style>{STYLE}</style></head><body>
<header><a href="/"><strong>One Stop Market</strong></a>
<form method="get" action="/search" role="search">
<label for="q">Search products</label>
<input id="q" name="q" type="search" value="{escape(query)}">
<button type="submit">Search</button></form>
<a href="/cart">Cart ({cart_count})</a> {account}</header>
<main>{flash}<h1>{escape(title)}</h1>
{body}</main></body></html>"""


def product_list(products: Iterable[Row]) -> str:
    items = "".join(
        f'<li><a href="{product_url(p["sku"])}">{escape(p["name"])}</a>'
        f'<div class="price">{money(p["price_cents"])}</div></li>'
        for p in products
    )
    return f'<ul class="grid">{items}</ul>' if items else "<p>No products found.</p>"


def home(categories: Sequence[Row], featured: Sequence[Row]) -> str:
    links = "".join(
        f'<li><a href="/category/{escape(c["slug"])}">{escape(c["name"])}</a> '
        f'({c["n"]} products)</li>' for c in categories
    )
    return (f"<h2>Shop by category</h2><ul>{links}</ul>"
            f"<h2>Featured products</h2>{product_list(featured)}")


SORTS = {"name": "Name", "price_asc": "Price: low to high", "price_desc": "Price: high to low"}


def category(slug: str, sort: str, products: Sequence[Row]) -> str:
    options = "".join(
        f'<option value="{key}"{" selected" if key == sort else ""}>{label}</option>'
        for key, label in SORTS.items()
    )
    return (f'<form method="get" action="/category/{escape(slug)}">'
            f'<label for="sort">Sort by</label> <select id="sort" name="sort">{options}</select>'
            f' <button type="submit">Apply</button></form>'
            f"<p>{len(products)} products</p>{product_list(products)}")


def search(query: str, products: Sequence[Row]) -> str:
    noun = "result" if len(products) == 1 else "results"
    return (f'<p id="result-count">{len(products)} {noun} for "{escape(query)}"</p>'
            f"{product_list(products)}")


def product(p: Row, reviews: Sequence[Row]) -> str:
    stock = f"In stock ({p['stock']} available)" if p["stock"] else "Out of stock"
    review_html = "".join(
        f'<li><strong>{escape(r["author"])}</strong> rated it {r["rating"]} out of 5: '
        f'{escape(r["body"])}</li>' for r in reviews
    ) or "<li>No reviews yet.</li>"
    return f"""<p class="price" id="price">{money(p["price_cents"])}</p>
<p>SKU: <span id="sku">{escape(p["sku"])}</span></p>
<p>Category: <a href="/category/{escape(p["slug"])}">{escape(p["category"])}</a></p>
<p id="stock">{stock}</p><p>{escape(p["description"])}</p>
<form method="post" action="/cart/add"><input type="hidden" name="sku" value="{escape(p["sku"])}">
<label for="qty">Quantity</label> <input id="qty" name="qty" type="number" min="1" value="1">
<button type="submit">Add to Cart</button></form>
<form method="post" action="/wishlist/add"><input type="hidden" name="sku"
 value="{escape(p["sku"])}"><button type="submit">Add to Wish List</button></form>
<h2>Customer reviews ({len(reviews)})</h2><ul>{review_html}</ul>"""


def cart(rows: Sequence[Row]) -> str:
    if not rows:
        return '<p>Your shopping cart is empty.</p><a href="/">Continue shopping</a>'
    body = "".join(
        f'<tr data-sku="{escape(r["sku"])}"><td><a href="{product_url(r["sku"])}">'
        f'{escape(r["name"])}</a></td><td>{money(r["price_cents"])}</td><td>'
        f'<form method="post" action="/cart/update"><input type="hidden" name="sku" '
        f'value="{escape(r["sku"])}"><label for="qty-{escape(r["sku"])}">Quantity of '
        f'{escape(r["name"])}</label> <input id="qty-{escape(r["sku"])}" name="qty" '
        f'type="number" min="0" value="{r["quantity"]}"> <button type="submit">Update '
        f'{escape(r["name"])}</button></form></td><td>{money(r["quantity"] * r["price_cents"])}'
        f'</td><td><form method="post" action="/cart/remove"><input type="hidden" name="sku" '
        f'value="{escape(r["sku"])}"><button type="submit">Remove {escape(r["name"])}</button>'
        f"</form></td></tr>" for r in rows
    )
    subtotal = sum(r["quantity"] * r["price_cents"] for r in rows)
    return (f"<table><tr><th>Product</th><th>Price</th><th>Quantity</th><th>Total</th><th></th>"
            f'</tr>{body}</table><p>Subtotal: <span id="subtotal">{money(subtotal)}</span></p>'
            '<a href="/checkout">Proceed to Checkout</a>')


ADDRESS_FIELDS = [("name", "Full name"), ("street", "Street address"), ("city", "City"),
                  ("state", "State"), ("zip", "ZIP code")]


def checkout(rows: Sequence[Row], address: dict[str, str]) -> str:
    lines = "".join(f"<li>{escape(r['name'])} × {r['quantity']}: "
                    f"{money(r['quantity'] * r['price_cents'])}</li>" for r in rows)
    total = sum(r["quantity"] * r["price_cents"] for r in rows)
    fields = "".join(
        f'<p><label for="{key}">{label}</label> <input id="{key}" name="{key}" required '
        f'value="{escape(address.get(key, ""))}"></p>' for key, label in ADDRESS_FIELDS
    )
    return (f"<h2>Order summary</h2><ul>{lines}</ul><p>Order total: {money(total)}</p>"
            f'<h2>Shipping address</h2><form method="post" action="/checkout">{fields}'
            '<button type="submit">Place Order</button></form>')


def confirmation(order_id: int) -> str:
    return (f'<p>Thank you for your purchase! Your order number is <strong id="order-number">'
            f'{order_id}</strong>.</p><a href="/account/orders/{order_id}">View order '
            f"#{order_id}</a>")


def login(next_url: str) -> str:
    return f"""<form method="post" action="/login"><input type="hidden" name="next"
 value="{escape(next_url)}"><p><label for="username">Username</label>
<input id="username" name="username" autocomplete="username"></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password"></p>
<button type="submit">Sign In</button></form>"""


ACCOUNT_NAV = ('<nav><a href="/account">Account information</a> | '
               '<a href="/account/orders">My Orders</a> | '
               '<a href="/account/addresses">Address Book</a> | '
               '<a href="/account/wishlist">My Wish List</a></nav>')


def account(c: Row) -> str:
    return f"""{ACCOUNT_NAV}<p>Name: {escape(c["name"])}</p>
<p>Username: {escape(c["username"])}</p>
<form method="post" action="/account"><p><label for="email">Email</label>
<input id="email" name="email" type="email" value="{escape(c["email"])}"></p>
<p><label for="phone">Phone number</label>
<input id="phone" name="phone" type="tel" value="{escape(c["phone"])}"></p>
<button type="submit">Save Account Information</button></form>"""


def orders(rows: Sequence[Row]) -> str:
    if not rows:
        return f"{ACCOUNT_NAV}<p>You have placed no orders.</p>"
    body = "".join(
        f'<tr class="order-row"><td><a href="/account/orders/{r["id"]}">#{r["id"]}</a></td>'
        f'<td>{escape(r["created"])}</td><td>{money(r["total"])}</td>'
        f'<td>{escape(r["status"])}</td></tr>' for r in rows
    )
    return (f"{ACCOUNT_NAV}<table><tr><th>Order #</th><th>Date</th><th>Order Total</th>"
            f"<th>Status</th></tr>{body}</table>")


def order(o: Row, items: Sequence[Row]) -> str:
    body = "".join(
        f'<tr><td><a href="{product_url(i["sku"])}">{escape(i["name"])}</a></td>'
        f'<td>{escape(i["sku"])}</td><td>{i["quantity"]}</td><td>{money(i["price_cents"])}</td>'
        f'<td>{money(i["quantity"] * i["price_cents"])}</td></tr>' for i in items
    )
    total = sum(i["quantity"] * i["price_cents"] for i in items)
    address = ", ".join(escape(o[f"ship_{k}"]) for k, _ in ADDRESS_FIELDS)
    return f"""{ACCOUNT_NAV}<p>Order date: {escape(o["created"])}</p>
<p>Status: <span id="status">{escape(o["status"])}</span></p>
<table><tr><th>Product</th><th>SKU</th><th>Qty</th><th>Price</th><th>Subtotal</th></tr>
{body}</table><p>Grand total: {money(total)}</p><p>Ship to: {address}</p>"""


def addresses(c: Row) -> str:
    return (f"{ACCOUNT_NAV}<h2>Default shipping address</h2><address>{escape(c['name'])}<br>"
            f"{escape(c['street'])}<br>{escape(c['city'])}, {escape(c['state'])} "
            f"{escape(c['zip'])}<br>Phone: {escape(c['phone'])}</address>")


def wishlist(rows: Sequence[Row]) -> str:
    if not rows:
        return f"{ACCOUNT_NAV}<p>Your wish list is empty.</p>"
    body = "".join(
        f'<li data-sku="{escape(r["sku"])}"><a href="{product_url(r["sku"])}">'
        f'{escape(r["name"])}</a> {money(r["price_cents"])} '
        f'<form method="post" action="/wishlist/remove" style="display:inline">'
        f'<input type="hidden" name="sku" value="{escape(r["sku"])}">'
        f'<button type="submit">Remove {escape(r["name"])} from wish list</button></form></li>'
        for r in rows
    )
    return f"{ACCOUNT_NAV}<ul>{body}</ul>"


def not_found(what: str) -> str:
    return f'<p>{escape(what)}</p><a href="/">Back to the home page</a>'
