"""Seeded, natural-looking short memory texts and queries for the memory benchmarks.

Four families of memories an agent keeps (agent lessons, user facts, tool notes, web-task
observations), each a set of templates over vocabularies large enough that 100k+ distinct texts of
8-30 words come out. Every stored text keeps the slot values it was made from, and queries are
paraphrases built from the slots of stored texts ("how do I export invoices on Shopwise?"), so each
query has related memories, yet no query is identical to a stored text.

    corpus = make_corpus(10_000, seed=7)
    corpus.texts            # 10,000 unique texts
    corpus.queries(300)     # 300 unique queries about them, disjoint from the texts
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

FIRST = """Ada Alan Alice Amara Amir Ana Anders Anika Arjun Asha Ayla Beatriz Ben Bianca Boris
Bruno Camila Carlos Chen Chiara Chloe Clara Dana Daniel Dario Diego Dmitri Elena Eli Elif Emma
Enzo Erik Esther Ethan Fatima Felix Fiona Freya Gabriel Grace Hana Hannah Hugo Ibrahim Ines Ingrid
Isaac Ivan Jada Jamal Javier Jin Joao Jonas Jorge Julia Kai Karim Kate Kenji Kira Lars Laura Layla
Lena Leo Liam Lina Lucas Lucia Luis Maya Mei Mia Miguel Mila Mina Nadia Naomi Nia Nico Nina Noah
Nora Olga Omar Oscar Paula Pedro Priya Quinn Rafael Rahul Rania Rosa Ruth Sami Sara Sofia Tariq
Tess Theo Tomas Uma Vera Victor Wen Yara Yuki Zane Zara Zoe""".split()

LAST = """Abbott Adeyemi Alvarez Andersen Bauer Becker Bergstrom Bianchi Brandt Carter Castillo
Chowdhury Costa Dubois Eriksen Fischer Garcia Gomez Haddad Hansen Hartmann Holm Ivanova Jansen
Kaplan Kim Kowalski Kruger Larsen Laurent Lindqvist Lopez Marino Martins Meyer Moreau Muller
Nakamura Nguyen Novak Okafor Olsen Ortiz Park Patel Petrov Ramos Rossi Sato Schmidt Silva Singh
Sorensen Tanaka Torres Vargas Weber Wong Yilmaz Zhang""".split()

CITIES = """Lisbon Porto Madrid Seville Valencia Lyon Marseille Paris Brussels Antwerp Utrecht
Rotterdam Hamburg Munich Berlin Leipzig Vienna Graz Zurich Basel Milan Turin Bologna Naples
Copenhagen Aarhus Oslo Bergen Stockholm Gothenburg Helsinki Tallinn Riga Vilnius Warsaw Krakow
Prague Brno Budapest Zagreb Athens Istanbul Cairo Nairobi Lagos Accra Toronto Montreal Vancouver
Boston Chicago Denver Austin Seattle Portland Atlanta Miami Lima Bogota Santiago Osaka Kyoto Seoul
Busan Taipei Manila Jakarta Singapore Bangalore Pune Mumbai Dubai Sydney Melbourne Auckland
Wellington Dublin Cork Edinburgh Glasgow Manchester Leeds Bristol Cardiff""".split()

SITES = """Shopwise Cartly BuyNest Marketon DealHub PriceRush Gearbox Bookly ReadMore FlightDeck
TripNest StayEasy RoomHop CarShare RideLoop FoodFleet MealDash GroceryGo FreshCart PetPals
HomeFix TaskRabbit CodeHost GitPort IssueBox WikiBase DocuSpace NoteHive FormBuilder PollTime
CalendarPro MeetRoom ChatLine MailBox InvoiceIQ PayFlow BankNow TaxDesk HealthHub ClinicLink
PharmaGo JobBoard HireLane CourseCraft LearnLoop VideoVault MusicBay TicketHut EventSpace
GymPass CloudDrive PhotoDock MapQuest WeatherNow NewsDesk ForumPlace RedditLike""".split()

TASKS = """export invoices|download the monthly report|cancel a subscription|change the shipping
address|reset the password|add a product to the cart|apply a discount code|book a return
flight|reserve a hotel room|update billing details|merge two pull requests|close a stale
issue|create a new repository|invite a team member|schedule a meeting|upload a profile
photo|filter orders by date|compare two plans|request a refund|track a parcel|renew a
prescription|submit a job application|enroll in a course|rate a past purchase|change the
notification settings|delete an old address|add a second payment card|search the order
history|print a boarding pass|split a bill with friends|archive old messages|export contacts to
CSV|change the display language|turn on two-factor login|transfer money between
accounts|download tax forms|book a table for four|reschedule a delivery|add a calendar
reminder|share a folder with a colleague""".replace("\n", " ").split("|")

STEPS = """open the account menu|scroll to the bottom of the page|switch to the advanced
view|wait for the spinner to disappear|clear the search box|select the right date
range|expand the collapsed section|log in again|accept the terms checkbox|close the chat
widget|pick the billing tab|choose the correct country|reload the page once|use the site search
instead of the menu|sort the table by date|open the item in a new tab|dismiss the promo
popup|confirm the email code|enable the beta toggle|zoom out so the button is
visible""".replace("\n", " ").split("|")

CAUSES = """the session had expired|the button was hidden behind a cookie banner|the page was still
loading|the date picker rejected typed dates|the form silently dropped the postcode|an A/B test
showed a different layout|the search index was stale|the item was out of stock|two tabs fought
over the same cart|the redirect lost the query string|a captcha appeared after three tries|the
currency defaulted to euros|the modal trapped keyboard focus|the list was paginated at twenty
rows|the API returned an empty page""".replace("\n", " ").split("|")

ELEMENTS = """Save button|Export link|Submit button|download icon|filter panel|settings
gear|Next arrow|checkout button|confirmation dialog|search field|date picker|dropdown
menu|sidebar|breadcrumb trail|Apply button|upload area|status badge|order
table""".replace("\n", " ").split("|")

MENUS = "Account|Settings|Billing|Tools|More|Orders|Help|Profile|Admin|Reports".split("|")

FEATURES = """invoice history|order tracking|team management|API keys|saved addresses|payment
methods|notification preferences|privacy controls|export tools|subscription plans|loyalty
points|gift cards|returns center|travel documents|usage reports""".replace("\n", " ").split("|")

PRODUCTS = """wireless headphones|standing desk|espresso machine|running shoes|hiking
backpack|mechanical keyboard|air purifier|electric kettle|yoga mat|phone case|desk lamp|office
chair|rain jacket|water bottle|robot vacuum|camping tent|e-reader|smart watch|blender|winter
boots""".replace("\n", " ").split("|")

PREFERENCES = """window seats on long flights|vegetarian restaurants|quiet hotel
rooms|morning meetings|short bullet-point answers|metric units|dark mode
everywhere|email over phone calls|aisle seats|trains over planes|paper receipts|weekly
summaries|spicy food|early check-in|direct flights only|budget options first|detailed
explanations|Friday afternoons free""".replace("\n", " ").split("|")

FORMATS = "weekly|daily|one-line|detailed|bulleted|spreadsheet|PDF|plain-text".split("|")

RELATIONS = """sister|brother|manager|partner|daughter|son|landlord|dentist|accountant|best
friend|cousin|neighbour|mentor|colleague|assistant""".replace("\n", " ").split("|")

JOBS = """data analyst|nurse|product manager|civil engineer|teacher|pharmacist|software
developer|architect|chef|lawyer|photographer|researcher|sales lead|designer|pilot|electrician
|translator|journalist|veterinarian|accountant""".replace("\n", " ").split("|")

COMPANIES = """Northwind|Acme Labs|Blue Harbor|Globex|Initech|Umbrella Health|Stark
Logistics|Wayne Foods|Tyrell Data|Soylent Farms|Hooli|Pied Piper|Vandelay Imports|Cyberdyne|Aperture
Research|Oceanic Air|Massive Dynamic|Dunder Paper""".replace("\n", " ").split("|")

ALLERGENS = "peanuts|shellfish|gluten|lactose|sesame|soy|eggs|tree nuts|kiwi".split("|")
DISHES = """pad thai|seafood paella|pasta|cheesecake|sushi|tofu bowls|omelettes|pesto|fruit
tarts|satay""".replace("\n", " ").split("|")
GIFTS = """books|board games|plants|concert tickets|good coffee|wine|chocolate|vinyl
records|cooking classes|fountain pens""".replace("\n", " ").split("|")
MONTHS = """January February March April May June July August September October November
December""".split()

TOOLS = """browser.click|browser.type|browser.goto|browser.screenshot|http.fetch|python.run
|files.read|files.write|memory.recall|memory.retain|search.web|pdf.extract|email.send|calendar.create
|sheets.append|shell.exec|csv.parse|image.ocr|translate.text|maps.route""".replace("\n", "").split(
    "|"
)

TOOL_ERRORS = """a timeout|an empty result|a 403 Forbidden|a 429 Too Many Requests|a stale element
error|a JSON decode error|a missing selector error|an encoding error|a permission denied
error|a connection reset|a truncated file|a 500 server error""".replace("\n", " ").split("|")

CONDITIONS = """the page uses infinite scroll|the file is larger than ten megabytes|the selector
contains a colon|the site requires a login|the request has no user agent|the input has emoji|the
network is slow|the PDF is scanned|two calls run at once|the URL has a fragment|the sheet has
merged cells|the text is right-to-left|the cookie jar is empty|the server is in another time
zone""".replace("\n", " ").split("|")

ARGS = """timeout|retries|wait_for|encoding|headers|max_pages|scroll|user_agent|chunk_size|strict
|locale|follow_redirects""".replace("\n", "").split("|")

VALUES = """30 seconds|3|networkidle|utf-8|a browser user agent|5|true|false|4096|en-US|a fresh
session|visible""".replace("\n", " ").split("|")

PURPOSES = """reading tables from PDFs|filling long forms|checking prices|sending follow-up
emails|collecting search results|scraping product pages|summarising articles|booking
appointments|downloading reports|extracting dates from text""".replace("\n", " ").split("|")

SORTS = "price|date|rating|relevance|popularity|name|distance".split("|")
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
TIMES = "8:30|9:00|9:30|10:00|11:00|13:30|14:00|15:30|16:00|17:00".split("|")

TAILS = """|| (seen twice this week)| This was confirmed on a second run.| Worth remembering for
similar tasks.| Noted after a retry.| The user mentioned this again later.| Checked in
{month}.""".replace("\n", " ").split("|")

VOCAB: dict[str, list[str]] = {
    "first": FIRST,
    "last": LAST,
    "city": CITIES,
    "site": SITES,
    "task": [t.strip() for t in TASKS],
    "step": [s.strip() for s in STEPS],
    "cause": [c.strip() for c in CAUSES],
    "element": [e.strip() for e in ELEMENTS],
    "menu": MENUS,
    "feature": [f.strip() for f in FEATURES],
    "product": [p.strip() for p in PRODUCTS],
    "pref": [p.strip() for p in PREFERENCES],
    "format": FORMATS,
    "relation": [r.strip() for r in RELATIONS],
    "job": [j.strip() for j in JOBS],
    "company": [c.strip() for c in COMPANIES],
    "allergen": ALLERGENS,
    "dish": [d.strip() for d in DISHES],
    "gift": [g.strip() for g in GIFTS],
    "month": MONTHS,
    "day": [str(d) for d in range(1, 29)],
    "tool": [t.strip() for t in TOOLS],
    "error": [e.strip() for e in TOOL_ERRORS],
    "condition": [c.strip() for c in CONDITIONS],
    "arg": [a.strip() for a in ARGS],
    "value": [v.strip() for v in VALUES],
    "purpose": [p.strip() for p in PURPOSES],
    "sort": SORTS,
    "weekday": WEEKDAYS,
    "time": TIMES,
    "num": [str(n) for n in (5, 10, 12, 20, 25, 30, 40, 50, 60, 100)],
    "secs": [str(n) for n in (2, 3, 5, 10, 15, 30, 60)],
    "ms": [str(n) for n in (80, 120, 250, 400, 600, 900, 1500, 2500)],
    "count": [str(n) for n in (10, 12, 20, 24, 25, 50, 100)],
    "price": [str(n) for n in (9, 15, 19, 25, 29, 39, 49, 59, 79, 99, 129, 199, 249)],
    "factor": ["twice", "three times", "five times", "ten times"],
}


@dataclass(frozen=True)
class Template:
    """A statement to store and the paraphrased questions that should recall it."""

    family: str
    statement: str
    queries: tuple[str, ...]


TEMPLATES: tuple[Template, ...] = (
    # agent lessons
    Template(
        "lesson",
        "When trying to {task} on {site}, {step} first; the {element} only appears after that.",
        ("how do I {task} on {site}", "{site}: {element} missing when I {task}"),
    ),
    Template(
        "lesson",
        "Lesson from a failed run: trying to {task} on {site} broke because {cause}. "
        "Next time {step}.",
        ("why did my attempt to {task} on {site} fail", "I can't {task} on {site}"),
    ),
    Template(
        "lesson",
        "To {task} on {site}, {step}, then {step2}, and check that the {element} shows the change.",
        ("steps to {task} using {site}", "what is the right way to {task} on {site}"),
    ),
    Template(
        "lesson",
        "{site} blocks clients that {task} more than {num} times a minute; wait {secs} seconds "
        "between attempts.",
        ("rate limit on {site} when I {task}", "{site} blocked me after several tries"),
    ),
    Template(
        "lesson",
        "Managed to {task} on {site} only after noticing that {cause}.",
        ("tips to {task} on {site}", "{site} gotcha when you {task}"),
    ),
    # user facts
    Template(
        "fact",
        "{first} {last} prefers {pref} and usually asks for {format} summaries.",
        ("what does {first} {last} prefer", "how does {first} like summaries written"),
    ),
    Template(
        "fact",
        "{first} {last}'s {relation} is called {first2} and lives in {city}.",
        ("who is {first} {last}'s {relation}", "where does {first}'s {relation} live"),
    ),
    Template(
        "fact",
        "{first} {last} is allergic to {allergen}, so avoid suggesting {dish} for dinner.",
        ("food restrictions for {first} {last}", "can {first} eat {dish}"),
    ),
    Template(
        "fact",
        "{first} {last} works as a {job} at {company} in {city} and prefers meetings at {time}.",
        ("where does {first} {last} work", "what is {first} {last}'s job"),
    ),
    Template(
        "fact",
        "{first} {last}'s birthday is on {month} {day}; gifts like {gift} always go down well.",
        ("when is {first} {last}'s birthday", "gift ideas for {first} {last}"),
    ),
    Template(
        "fact",
        "{first} {last} moved from {city} to {city2} last {month} and now shops on {site}.",
        ("where does {first} {last} live now", "which city did {first} {last} move to"),
    ),
    # tool notes
    Template(
        "tool",
        "The {tool} tool returns {error} when {condition}; retry with {arg} set to {value}.",
        ("{tool} gives {error}", "how to fix {tool} when {condition}"),
    ),
    Template(
        "tool",
        "{tool} calls take about {ms} ms on average, but they run {factor} slower when "
        "{condition}.",
        ("how slow is {tool}", "{tool} latency when {condition}"),
    ),
    Template(
        "tool",
        "Use {tool} rather than {tool2} for {purpose}; it copes when {condition}.",
        ("which tool is best for {purpose}", "{tool2} alternative for {purpose}"),
    ),
    Template(
        "tool",
        "Calling {tool} with {arg} set to {value} fixed {error} while trying to {task} on {site}.",
        ("{error} from {tool} on {site}", "fix for {tool} errors while I {task}"),
    ),
    # web-task observations
    Template(
        "web",
        "On {site}, the {feature} page lists results sorted by {sort} and shows {count} per page.",
        ("how is {feature} sorted on {site}", "{site} {feature} page size"),
    ),
    Template(
        "web",
        "The {element} for {feature} on {site} sits under the {menu} menu, not in settings.",
        ("where is {feature} on {site}", "find the {element} on {site}"),
    ),
    Template(
        "web",
        "{site} shows a cookie banner on {weekday} mornings that hides the {element}; dismiss it "
        "before clicking.",
        ("cookie banner on {site} hides buttons", "can't click the {element} on {site}"),
    ),
    Template(
        "web",
        "On {site}, the {product} starts at {price} dollars and ships from {city} within "
        "{secs} days.",
        ("price of a {product} on {site}", "where does {site} ship the {product} from"),
    ),
    Template(
        "web",
        "Searching {site} for a {product} works better with the {sort} filter than with the "
        "default order.",
        ("best way to search {site} for a {product}", "{site} search {product} filter"),
    ),
)

_FORMATTER = string.Formatter()


def _fields(text: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(text) if name]


def _vocab_of(slot: str) -> list[str]:
    """`city2` draws from `city`, distinct from `city` in the same text."""
    return VOCAB[slot.rstrip("0123456789")]


def _fill(template: Template, rng: random.Random) -> dict[str, str]:
    slots: dict[str, str] = {}
    for name in _fields(template.statement):
        if name in slots:
            continue
        while True:
            value = rng.choice(_vocab_of(name))
            base = name.rstrip("0123456789")
            if name == base or value != slots.get(base):
                break
        slots[name] = value
    return slots


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class Corpus:
    """`n` unique memory texts and the slot values they were made from."""

    texts: list[str]
    seed: int
    _made: list[tuple[int, dict[str, str]]] = field(repr=False, default_factory=list)

    def queries(self, m: int, *, seed: int | None = None, among: int | None = None) -> list[str]:
        """`m` unique queries, each a paraphrase about one of the first `among` stored texts;
        none equals a stored text. Different `seed`s give different (overlapping) sets."""
        rng = random.Random(self.seed * 7919 + 1 if seed is None else seed)
        pool = self._made[: among or len(self._made)]
        stored = set(self.texts)
        out: dict[str, None] = {}
        attempts = 0
        while len(out) < m:
            attempts += 1
            if attempts > 50 * m + 1000:
                raise ValueError(f"cannot make {m} unique queries from {len(pool)} texts")
            index, slots = rng.choice(pool)
            query = _capitalise(rng.choice(TEMPLATES[index].queries).format(**slots))
            query += rng.choice(("?", "?", "", "."))
            if query not in stored:
                out.setdefault(query, None)
        return list(out)


def make_corpus(n: int, *, seed: int = 7, min_words: int = 8, max_words: int = 30) -> Corpus:
    """`n` unique texts of `min_words`..`max_words` words, deterministic for a seed."""
    rng = random.Random(seed)
    texts: list[str] = []
    made: list[tuple[int, dict[str, str]]] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise ValueError(f"vocabularies too small for {n} unique texts")
        index = rng.randrange(len(TEMPLATES))
        slots = _fill(TEMPLATES[index], rng)
        text = _capitalise(TEMPLATES[index].statement.format(**slots))
        tail = rng.choice(TAILS)
        if tail:
            text += tail.format(month=rng.choice(MONTHS))
        words = len(text.split())
        if text in seen or not min_words <= words <= max_words:
            continue
        seen.add(text)
        texts.append(text)
        made.append((index, slots))
    return Corpus(texts=texts, seed=seed, _made=made)


def disjoint_query_sets(corpus: Corpus, sizes: list[int], *, among: int | None = None) -> list:
    """Several query lists with no query in two of them (e.g. cold, concurrency rounds)."""
    total = sum(sizes)
    pool = corpus.queries(total, among=among)
    out, start = [], 0
    for size in sizes:
        out.append(pool[start : start + size])
        start += size
    return out


if __name__ == "__main__":  # a peek at the data
    corpus = make_corpus(12, seed=1)
    for text in corpus.texts:
        print(f"[{len(text.split()):2d}w] {text}")
    print()
    for query in corpus.queries(8):
        print("Q:", query)
