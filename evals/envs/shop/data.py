"""The shop's seeded data: 80 products in 8 categories, two customers and their order history,
generated deterministically from a fixed seed, and the SQLite schema they are written into.

`seed_data()` is pure (the task generator reads it too); `build_db(path)` writes it.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240611

# username, password, full name, email, phone, street, city, state, zip
CUSTOMERS = [
    ("emma.lopez", "Password.123", "Emma Lopez", "emma.lopez@example.com", "555-0142",
     "101 S San Mateo Dr", "San Mateo", "CA", "94010"),
    ("john.smith", "Password.456", "John Smith", "john.smith@example.com", "555-0177",
     "42 Harbor Way", "Portland", "OR", "97209"),
]

# category: (slug, code, typical price of each noun in dollars, brands, adjectives, nouns)
CATALOG: dict[str, tuple[str, str, tuple[int, ...], list[str], list[str], list[str]]] = {
    "Kitchen": (
        "kitchen", "KIT", (45, 35, 90, 25, 120, 280, 15, 22, 40, 30),
        ["Cuisina", "Ironleaf", "Marlow & Co"],
        ["Stainless", "Nonstick", "Ceramic", "Cast Iron", "Bamboo"],
        ["Chef's Knife", "Frying Pan", "Dutch Oven", "Cutting Board", "Espresso Maker",
         "Stand Mixer", "Measuring Cups", "Salad Spinner", "Tea Kettle", "Spice Rack"],
    ),
    "Home Office": (
        "home-office", "OFF", (240, 420, 45, 90, 80, 35, 150, 70, 25, 30),
        ["Deskly", "Northpine", "Orbis"],
        ["Ergonomic", "Adjustable", "Compact", "Wireless", "Walnut"],
        ["Office Chair", "Standing Desk", "Desk Lamp", "Monitor Arm", "Keyboard", "Mouse",
         "Filing Cabinet", "Webcam", "Desk Organizer", "Footrest"],
    ),
    "Outdoor & Camping": (
        "outdoor-camping", "OUT", (220, 130, 60, 25, 110, 70, 40, 45, 150, 55),
        ["Trailhead", "Summitline", "Pinecrest"],
        ["Ultralight", "Waterproof", "Insulated", "Packable", "Rugged"],
        ["Tent", "Sleeping Bag", "Camp Stove", "Headlamp", "Backpack", "Trekking Poles",
         "Water Filter", "Camp Chair", "Cooler", "Hammock"],
    ),
    "Fitness": (
        "fitness", "FIT", (35, 180, 45, 20, 12, 25, 40, 450, 18, 160),
        ["Corefit", "Pulse Athletics", "Ironform"],
        ["Adjustable", "Non-Slip", "Heavy-Duty", "Foldable", "Premium"],
        ["Yoga Mat", "Dumbbell Set", "Kettlebell", "Resistance Bands", "Jump Rope", "Foam Roller",
         "Pull-Up Bar", "Exercise Bike", "Ab Wheel", "Weight Bench"],
    ),
    "Audio": (
        "audio", "AUD", (180, 120, 90, 250, 300, 110, 40, 350, 280, 150),
        ["Sonique", "Bassline", "Auralis"],
        ["Wireless", "Noise-Cancelling", "Portable", "Studio", "Bluetooth"],
        ["Headphones", "Earbuds", "Speaker", "Soundbar", "Turntable", "Microphone", "Radio",
         "Amplifier", "Subwoofer", "DAC"],
    ),
    "Pet Supplies": (
        "pet-supplies", "PET", (65, 120, 55, 18, 35, 50, 9, 15, 40, 30),
        ["Pawsome", "Tailwind", "Furrow"],
        ["Orthopedic", "Chew-Proof", "Automatic", "Reflective", "Washable"],
        ["Dog Bed", "Cat Tree", "Pet Feeder", "Dog Leash", "Litter Box", "Pet Carrier",
         "Chew Toy", "Grooming Brush", "Water Fountain", "Scratching Post"],
    ),
    "Garden": (
        "garden", "GAR", (40, 25, 80, 20, 140, 22, 90, 30, 28, 26),
        ["Greenway", "Bloomfield", "Terra"],
        ["Galvanized", "Ergonomic", "Expandable", "Solar", "Raised"],
        ["Garden Hose", "Pruning Shears", "Planter Box", "Watering Can", "Wheelbarrow",
         "Garden Kneeler", "Compost Bin", "String Lights", "Bird Feeder", "Rake"],
    ),
    "Bath & Beauty": (
        "bath-beauty", "BTH", (50, 25, 60, 30, 15, 14, 45, 55, 10, 80),
        ["Lumiere", "Puresoak", "Velvet Bay"],
        ["Organic", "Lavender", "Hydrating", "Travel", "Luxury"],
        ["Bath Towel Set", "Shower Caddy", "Hair Dryer", "Face Serum", "Bath Bombs",
         "Body Lotion", "Makeup Mirror", "Bath Robe", "Shampoo Bar", "Electric Toothbrush"],
    ),
}

REVIEWERS = ["Ava M.", "Liam K.", "Sophia R.", "Noah T.", "Mia L.", "Ethan W.", "Grace P."]
REVIEW_TEXT = {
    5: "Excellent quality, exactly as described. Would buy again.",
    4: "Works well for the price; shipping was quick.",
    3: "It's okay. Does the job but feels a bit cheap.",
    2: "Not great: it stopped working properly after a few weeks.",
    1: "Disappointed. Returned it the next day.",
}
STATUSES = ["Complete", "Complete", "Complete", "Canceled", "Processing", "Shipped", "Pending"]
FIRST_ORDER_ID = 100231


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    name: str
    category: str
    price_cents: int
    stock: int
    description: str
    reviews: tuple[tuple[str, int, str], ...] = ()

    @property
    def price(self) -> str:
        return f"${self.price_cents / 100:,.2f}"


@dataclass(frozen=True)
class Order:
    id: int
    customer: str  # username
    created: str  # YYYY-MM-DD
    status: str
    items: tuple[tuple[str, int, int], ...]  # sku, quantity, unit price in cents

    @property
    def total_cents(self) -> int:
        return sum(q * p for _, q, p in self.items)


@dataclass(frozen=True)
class SeedData:
    products: list[Product]
    orders: list[Order]
    wishlist: dict[str, list[str]] = field(default_factory=dict)  # username -> skus

    def product(self, sku: str) -> Product:
        return next(p for p in self.products if p.sku == sku)

    def orders_of(self, username: str) -> list[Order]:
        """The customer's orders, oldest first."""
        return [o for o in self.orders if o.customer == username]


def seed_data(seed: int = SEED) -> SeedData:
    rng = random.Random(seed)
    products: list[Product] = []
    for category, (_, code, typical, brands, adjectives, nouns) in CATALOG.items():
        for i, noun in enumerate(nouns):
            name = f"{rng.choice(brands)} {rng.choice(adjectives)} {noun}"
            dollars = max(1, round(typical[i] * rng.uniform(0.75, 1.3)) - 1)
            cents = dollars * 100 + rng.choice([99, 49, 95, 99])
            reviews = tuple(
                (rng.choice(REVIEWERS), rating, REVIEW_TEXT[rating])
                for rating in (rng.choice([5, 5, 4, 4, 3, 2, 1]) for _ in range(rng.randint(0, 3)))
            )
            products.append(Product(
                id=len(products) + 1, sku=f"{code}-{1001 + i}", name=name, category=category,
                price_cents=cents, stock=rng.choice([0, *range(3, 60)]),
                description=(f"The {name} from our {category} range. {rng.choice(adjectives)} "
                             f"design, built to last, backed by a one-year warranty."),
                reviews=reviews,
            ))
    return SeedData(products=products, orders=_orders(rng, products),
                    wishlist={"emma.lopez": [products[3].sku, products[41].sku]})


def _orders(rng: random.Random, products: list[Product]) -> list[Order]:
    dated = []
    for customer, count in (("emma.lopez", 16), ("john.smith", 4)):
        for _ in range(count):
            month, day = rng.randint(1, 12), rng.randint(1, 28)
            items = tuple(
                (p.sku, rng.randint(1, 3), p.price_cents)
                for p in rng.sample(products, rng.randint(1, 3))
            )
            dated.append((f"2023-{month:02d}-{day:02d}", customer, rng.choice(STATUSES), items))
    dated.sort()
    return [Order(FIRST_ORDER_ID + i, customer, created, status, items)
            for i, (created, customer, status, items) in enumerate(dated)]


SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, username TEXT UNIQUE, password TEXT,
  name TEXT, email TEXT, phone TEXT, street TEXT, city TEXT, state TEXT, zip TEXT);
CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT, slug TEXT UNIQUE);
CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, name TEXT, category_id INTEGER,
  price_cents INTEGER, stock INTEGER, description TEXT);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, author TEXT, rating INTEGER,
  body TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, created TEXT, status TEXT,
  ship_name TEXT, ship_street TEXT, ship_city TEXT, ship_state TEXT, ship_zip TEXT);
CREATE TABLE order_items (order_id INTEGER, product_id INTEGER, quantity INTEGER,
  price_cents INTEGER);
CREATE TABLE cart_items (session TEXT, product_id INTEGER, quantity INTEGER,
  PRIMARY KEY (session, product_id));
CREATE TABLE wishlist (customer_id INTEGER, product_id INTEGER,
  PRIMARY KEY (customer_id, product_id));
"""


def build_db(path: Path, data: SeedData | None = None) -> None:
    """Write the seeded database to `path` (replacing it)."""
    data = data or seed_data()
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO customers (username, password, name, email, phone, street,"
                       " city, state, zip) VALUES (?,?,?,?,?,?,?,?,?)", CUSTOMERS)
        cat_ids = {}
        for name, (slug, *_rest) in CATALOG.items():
            cat_ids[name] = db.execute("INSERT INTO categories (name, slug) VALUES (?, ?)",
                                       (name, slug)).lastrowid
        for p in data.products:
            db.execute("INSERT INTO products VALUES (?,?,?,?,?,?,?)", (
                p.id, p.sku, p.name, cat_ids[p.category], p.price_cents, p.stock, p.description))
            db.executemany("INSERT INTO reviews (product_id, author, rating, body) "
                           "VALUES (?,?,?,?)", [(p.id, *r) for r in p.reviews])
        _write_orders(db, data)
        db.commit()
    finally:
        db.close()


def _write_orders(db: sqlite3.Connection, data: SeedData) -> None:
    users = {u: (i + 1, c) for i, (u, *c) in enumerate(CUSTOMERS)}
    ids = {p.sku: p.id for p in data.products}
    for o in data.orders:
        cid, c = users[o.customer]
        db.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)",
                   (o.id, cid, o.created, o.status, c[1], c[4], c[5], c[6], c[7]))
        db.executemany("INSERT INTO order_items VALUES (?,?,?,?)",
                       [(o.id, ids[sku], q, price) for sku, q, price in o.items])
    for user, skus in data.wishlist.items():
        db.executemany("INSERT INTO wishlist VALUES (?, ?)",
                       [(users[user][0], ids[sku]) for sku in skus])
